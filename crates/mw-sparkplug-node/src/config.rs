//! `[sparkplug.edge]` and `[sparkplug.host]`: each one broker connection (the keys of
//! `[[mqtt.client]]`, checked by [`mw_mqtt::client::config::check_connection`]) plus its own
//! keys. Both are off unless present.
//!
//! ```toml
//! [sparkplug.edge]
//! url = "mqtt://127.0.0.1:1883"      # required; the connection keys of [[mqtt.client]] apply
//! group_id = "millwright"            # default "millwright"
//! edge_node_id = "gw1"               # required
//! tags = ["acme/**"]                 # which tags to publish (globs); default every tag
//! max_metrics = 10000                # metrics of the node and its devices at most
//! queue = 64                         # batches queued for the connection (drop_oldest beyond)
//! [[sparkplug.edge.devices]]         # optional; tags under `prefix` are metrics of `device`
//! device = "pump1"
//! prefix = "acme/plant1/utilities/water/pump1"
//!
//! [sparkplug.host]
//! url = "mqtt://127.0.0.1:1883"
//! host_id = "millwright"             # required
//! groups = ["line1"]                 # default every group
//! prefix = "acme/plant1/spb"         # tag paths start with it; default none
//! rebirth_interval_ms = 5000
//! ```

use mw_config::{Cx, Section, SectionValue, Table};
use mw_model::TagPattern;
use mw_mqtt::client::ClientConfig;
use mw_mqtt::client::config::{CONNECTION_KEYS, check_connection};

/// One `[[sparkplug.edge.devices]]` entry: tags under `prefix` are metrics of `device`, named
/// by the rest of their path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRule {
    pub device: String,
    pub prefix: String,
}

/// `[sparkplug.edge]`.
#[derive(Clone, Debug, PartialEq)]
pub struct EdgeConfig {
    pub connection: ClientConfig,
    pub group_id: String,
    pub edge_node_id: String,
    /// Empty: every tag.
    pub tags: Vec<TagPattern>,
    pub devices: Vec<DeviceRule>,
    pub max_metrics: usize,
    /// `None`: `[pipeline] sink_capacity`.
    pub queue: Option<usize>,
}

impl EdgeConfig {
    /// An edge node with every default, connecting to `host:port` (tests and `millwright sim`
    /// build them this way).
    pub fn new(group_id: &str, edge_node_id: &str, host: &str, port: u16) -> EdgeConfig {
        let mut connection = ClientConfig::new(&format!("spb-{edge_node_id}"), host, port);
        connection.client_id = format!("millwright-spb-{group_id}-{edge_node_id}");
        EdgeConfig {
            connection,
            group_id: group_id.to_owned(),
            edge_node_id: edge_node_id.to_owned(),
            tags: Vec::new(),
            devices: Vec::new(),
            max_metrics: DEFAULT_MAX_METRICS,
            queue: None,
        }
    }
}

/// `[sparkplug.host]`.
#[derive(Clone, Debug, PartialEq)]
pub struct HostConfig {
    pub connection: ClientConfig,
    pub host_id: String,
    /// Empty: every group.
    pub groups: Vec<String>,
    /// Tag paths start with it (its segments); `None`: `{group}/{edge}/…`.
    pub prefix: Option<String>,
    pub rebirth_interval_ms: u64,
}

/// The checked `[sparkplug.edge]`: `None` when absent.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EdgeSection(pub Option<EdgeConfig>);

/// The checked `[sparkplug.host]`: `None` when absent.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HostSection(pub Option<HostConfig>);

pub const DEFAULT_GROUP: &str = "millwright";
pub const DEFAULT_MAX_METRICS: usize = 10_000;

const EDGE_KEYS: &[&str] = &[
    "group_id",
    "edge_node_id",
    "tags",
    "max_metrics",
    "queue",
    "devices",
];
const HOST_KEYS: &[&str] = &["host_id", "groups", "prefix", "rebirth_interval_ms"];

/// Sparkplug ids (group, edge node, device, host) as Millwright accepts them: 1 to 64
/// characters of `A-Z a-z 0-9 _ - .`, not starting with `.` (no topic wildcards or separators,
/// and safe as a directory name for the bdSeq file).
pub fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
}

fn id(cx: &mut Cx<'_>, t: Table<'_, '_>, key: &str, required: bool) -> Option<String> {
    let f = cx.string(t, key, required)?;
    if !valid_id(f.v) {
        cx.err(
            f.span.start,
            format!(
                "{key:?} in {} is {:?}: 1 to 64 characters of A-Z, a-z, 0-9, '_', '-', '.', not starting with '.'",
                t.name(),
                f.v
            ),
        );
        return None;
    }
    Some(f.v.to_owned())
}

/// The table `sparkplug.{child}` and its keys checked: the connection's and `own`.
fn connection_table<'a, 'i>(
    root: Table<'a, 'i>,
    cx: &mut Cx<'_>,
    child: &str,
    name: &'a str,
    own: &[&str],
) -> Option<(Table<'a, 'i>, ClientConfig)> {
    let t = root
        .child("sparkplug", "[sparkplug]")
        .and_then(|s| cx.table(s, child, false, name))?
        .v;
    let allowed: Vec<&str> = CONNECTION_KEYS.iter().chain(own).copied().collect();
    cx.unknown_keys(t, &allowed);
    cx.require(t, &["url"]);
    let mut c = ClientConfig::new(&format!("sparkplug-{child}"), "", 1883);
    check_connection(t, cx, name, &mut c);
    Some((t, c))
}

pub(crate) struct EdgeChecker;

impl Section for EdgeChecker {
    fn key(&self) -> &'static str {
        "sparkplug.edge"
    }

    fn check(&self, root: Table<'_, '_>, cx: &mut Cx<'_>) -> Box<dyn SectionValue> {
        let Some((t, mut connection)) =
            connection_table(root, cx, "edge", "[sparkplug.edge]", EDGE_KEYS)
        else {
            return Box::new(EdgeSection(None));
        };
        cx.require(t, &["edge_node_id"]);
        let group_id = id(cx, t, "group_id", false).unwrap_or_else(|| DEFAULT_GROUP.to_owned());
        let edge_node_id = id(cx, t, "edge_node_id", false).unwrap_or_default();
        if !t.contains_key("client_id") {
            connection.client_id = format!("millwright-spb-{group_id}-{edge_node_id}");
        }
        let mut tags = Vec::new();
        if let Some(f) = cx.array(t, "tags", false, "array of tag globs") {
            for el in f.v {
                match el.as_str().map(TagPattern::new) {
                    Some(Ok(p)) => tags.push(p),
                    Some(Err(e)) => cx.err(
                        el.start(),
                        format!("\"tags\" in [sparkplug.edge]: {e}"),
                    ),
                    None => cx.err(
                        el.start(),
                        "\"tags\" in [sparkplug.edge] holds tag globs (strings), e.g. \"acme/plant1/**\"",
                    ),
                }
            }
        }
        let max_metrics = cx
            .integer(t, "max_metrics", false, 1..=1_000_000)
            .map_or(DEFAULT_MAX_METRICS, |f| f.v as usize);
        let queue = cx
            .integer(t, "queue", false, 1..=1_000_000)
            .map(|f| f.v as usize);
        let mut devices: Vec<DeviceRule> = Vec::new();
        for item in cx.array_of_tables(t, "devices", "sparkplug.edge.devices") {
            let name = format!("[[sparkplug.edge.devices]] #{}", item.index);
            let dt = item.table(&name);
            cx.unknown_keys(dt, &["device", "prefix"]);
            cx.require(dt, &["device", "prefix"]);
            let device = id(cx, dt, "device", false);
            let prefix = cx.string(dt, "prefix", false).and_then(|f| {
                let p = f.v.trim_matches('/');
                let probe = format!("{p}/x");
                match mw_model::TagPath::new(&probe) {
                    Ok(_) if !p.is_empty() => Some(p.to_owned()),
                    _ => {
                        cx.err(
                            f.span.start,
                            format!("\"prefix\" in {name} is {:?}: the start of tag paths, e.g. \"acme/plant1/water/pump1\"", f.v),
                        );
                        None
                    }
                }
            });
            if let (Some(device), Some(prefix)) = (device, prefix) {
                if let Some(other) = devices.iter().find(|d| d.prefix == prefix) {
                    cx.err(
                        dt.start(),
                        format!(
                            "{name}: prefix {prefix:?} is already mapped to device {:?}",
                            other.device
                        ),
                    );
                }
                devices.push(DeviceRule { device, prefix });
            }
        }
        Box::new(EdgeSection(Some(EdgeConfig {
            connection,
            group_id,
            edge_node_id,
            tags,
            devices,
            max_metrics,
            queue,
        })))
    }
}

pub(crate) struct HostChecker;

impl Section for HostChecker {
    fn key(&self) -> &'static str {
        "sparkplug.host"
    }

    fn check(&self, root: Table<'_, '_>, cx: &mut Cx<'_>) -> Box<dyn SectionValue> {
        let Some((t, mut connection)) =
            connection_table(root, cx, "host", "[sparkplug.host]", HOST_KEYS)
        else {
            return Box::new(HostSection(None));
        };
        cx.require(t, &["host_id"]);
        let host_id = id(cx, t, "host_id", false).unwrap_or_default();
        if !t.contains_key("client_id") {
            connection.client_id = format!("millwright-spb-host-{host_id}");
        }
        let mut groups = Vec::new();
        if let Some(f) = cx.array(t, "groups", false, "array of group ids") {
            for el in f.v {
                match el.as_str() {
                    Some(g) if valid_id(g) => groups.push(g.to_owned()),
                    _ => cx.err(
                        el.start(),
                        "\"groups\" in [sparkplug.host] holds group ids: strings of 1 to 64 characters of A-Z, a-z, 0-9, '_', '-', '.'",
                    ),
                }
            }
        }
        let prefix = cx.string(t, "prefix", false).and_then(|f| {
            let p = f.v.trim_matches('/');
            match mw_model::TagPath::new(&format!("{p}/x")) {
                Ok(_) if !p.is_empty() => Some(p.to_owned()),
                _ => {
                    cx.err(
                        f.span.start,
                        format!("\"prefix\" in [sparkplug.host] is {:?}: tag path segments, e.g. \"acme/plant1/spb\"", f.v),
                    );
                    None
                }
            }
        });
        let rebirth_interval_ms = cx
            .integer(t, "rebirth_interval_ms", false, 100..=3_600_000)
            .map_or(mw_sparkplug::host::DEFAULT_REBIRTH_INTERVAL_MS, |f| {
                f.v as u64
            });
        Box::new(HostSection(Some(HostConfig {
            connection,
            host_id,
            groups,
            prefix,
            rebirth_interval_ms,
        })))
    }
}
