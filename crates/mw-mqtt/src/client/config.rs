//! The `[[mqtt.client]]` section: one entry per connection to an external MQTT broker.
//!
//! ```toml
//! [[mqtt.client]]
//! name = "plant-broker"                  # required, unique: metrics' and status' instance
//! url = "mqtt://10.0.0.7:1883"           # required; mqtts://HOST:PORT with `tls`
//! client_id = "millwright-gw1"           # default: "millwright-" + name
//! protocol = "3.1.1"                     # or "5"
//! user = "gw1"                           # with password_file or password_env
//! password_file = "/etc/millwright/mqtt-password"
//! tls = { ca = "ca.pem" }                # cert + key too: client certificate
//! keep_alive_s = 30
//! clean_start = true                     # false: a persistent session at the broker
//! backoff_max_ms = 5000                  # reconnect backoff: 100 ms doubling up to this
//!
//! [[mqtt.client.subscribe]]
//! topic = "plant/+/temp"                 # a filter (wildcards allowed)
//! qos = 1
//! payload = "json"                       # "plain" (default), "json", "sparkplug"
//! field = "data.temp"                    # json: the value's field path
//! ts_field = "ts"                        # json, optional: RFC 3339 text or ms since the epoch
//! tag = "acme/plant1/{2}/temp"           # {N}: topic level N (from 1); {topic}; {metric} (sparkplug)
//! unit = "Cel"
//!
//! [mqtt.client.publish]                  # publish every sample as UNS JSON
//! prefix = "acme/plant1/uns"             # topic: PREFIX/TAG PATH
//! qos = 1                                # 1: a batch is acknowledged once every PUBACK arrived
//! retain = true
//! queue = 64                             # batches queued for the connection (drop_oldest beyond)
//! ```
//! Secrets are never in this value: only the file or the variable holding the password, read
//! when the component is built.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use mw_config::{Cx, EntryKeys, Field, Item, Section, SectionValue, Table};

use crate::topic;

/// The checked `[[mqtt.client]]` section: every entry, in file order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MqttClientSection {
    pub clients: Vec<ClientConfig>,
}

/// MQTT protocol version spoken to the broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    V311,
    V5,
}

/// Where the password is read from when the component is built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PasswordSource {
    File(PathBuf),
    Env(String),
}

/// TLS towards the broker: the CA that signed its certificate, and optionally ours.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub client: Option<(PathBuf, PathBuf)>,
}

/// One `[[mqtt.client]]` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientConfig {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub tls: Option<TlsFiles>,
    pub client_id: String,
    pub protocol: Protocol,
    pub user: Option<(String, PasswordSource)>,
    pub keep_alive: Duration,
    pub clean_start: bool,
    pub backoff_max: Duration,
    pub subscribe: Vec<Subscription>,
    pub publish: Option<PublishConfig>,
}

impl ClientConfig {
    /// An entry with every default, for `name` at `host:port` (tests build them this way).
    pub fn new(name: &str, host: &str, port: u16) -> ClientConfig {
        ClientConfig {
            name: name.to_owned(),
            host: host.to_owned(),
            port,
            tls: None,
            client_id: format!("millwright-{name}"),
            protocol: Protocol::V311,
            user: None,
            keep_alive: Duration::from_secs(30),
            clean_start: true,
            backoff_max: Duration::from_secs(5),
            subscribe: Vec::new(),
            publish: None,
        }
    }
}

/// How the value of a plain payload is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlainType {
    /// An integer (`I64`) or a decimal number (`F64`).
    Number,
    /// `true`/`false`, `1`/`0`, `on`/`off`.
    Bool,
    /// The text itself (UTF-8, truncated to the model's maximum length).
    String,
}

/// How a payload becomes samples.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PayloadMap {
    Plain(PlainType),
    /// JSON: the value at `field` (a dotted path), the timestamp at `ts`.
    Json {
        field: Vec<String>,
        ts: Option<Vec<String>>,
    },
    /// A Sparkplug B payload: one sample per named metric.
    Sparkplug,
}

/// One piece of a tag template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TagPart {
    Text(String),
    /// Topic level N (1-based).
    Level(usize),
    /// The whole topic.
    Topic,
    /// The Sparkplug metric name.
    Metric,
}

/// A `[[mqtt.client.subscribe]]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    pub filter: String,
    pub qos: u8,
    pub payload: PayloadMap,
    pub tag: Vec<TagPart>,
    pub unit: Option<String>,
}

/// `[mqtt.client.publish]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishConfig {
    pub prefix: String,
    pub qos: u8,
    pub retain: bool,
    /// Batches queued for the connection; `None`: `[pipeline] sink_capacity`.
    pub queue: Option<usize>,
}

/// Parses a tag template: `{N}` (1-based topic level), `{topic}`, `{metric}`, other text as is.
pub fn parse_tag_template(s: &str) -> Result<Vec<TagPart>, String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            out.push(TagPart::Text(rest[..open].to_owned()));
        }
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return Err("a '{' without its '}'".into());
        };
        let name = &after[..close];
        out.push(match name {
            "topic" => TagPart::Topic,
            "metric" => TagPart::Metric,
            n => match n.parse::<usize>() {
                Ok(i) if i >= 1 => TagPart::Level(i),
                _ => {
                    return Err(format!(
                        "unknown placeholder {{{n}}} (expected {{1}}, {{2}}, … for topic levels, {{topic}} or {{metric}})"
                    ));
                }
            },
        });
        rest = &after[close + 1..];
    }
    if rest.contains('}') {
        return Err("a '}' without its '{'".into());
    }
    if !rest.is_empty() {
        out.push(TagPart::Text(rest.to_owned()));
    }
    Ok(out)
}

pub(crate) struct ClientChecker;

const ENTRY: EntryKeys = EntryKeys {
    id: "name",
    required: &["name", "url"],
    allowed: &["name", "subscribe", "publish"],
};

/// The keys of one broker connection ([`check_connection`]), for every section that opens one
/// (`[[mqtt.client]]`, `[sparkplug.edge]`, `[sparkplug.host]`); `url` is required.
pub const CONNECTION_KEYS: &[&str] = &[
    "url",
    "client_id",
    "protocol",
    "user",
    "password_file",
    "password_env",
    "tls",
    "keep_alive_s",
    "clean_start",
    "backoff_max_ms",
];

const SUB_KEYS: &[&str] = &[
    "topic", "qos", "payload", "type", "field", "ts_field", "tag", "unit",
];
const PUB_KEYS: &[&str] = &["prefix", "qos", "retain", "queue"];

impl Section for ClientChecker {
    fn key(&self) -> &'static str {
        "mqtt.client"
    }

    fn check(&self, root: Table<'_, '_>, cx: &mut Cx<'_>) -> Box<dyn SectionValue> {
        let mut out = MqttClientSection::default();
        let Some(m) = root.child("mqtt", "[mqtt]") else {
            return Box::new(out);
        };
        let mut names = HashMap::new();
        for item in cx.array_of_tables(m, "client", "mqtt.client") {
            out.clients.push(entry(item, cx, &mut names));
        }
        Box::new(out)
    }
}

/// Checks `mqtt://HOST:PORT` / `mqtts://HOST:PORT` (no credentials): (host, port, tls).
pub fn parse_url(u: &str) -> Result<(String, u16, bool), String> {
    let Some((scheme, rest)) = u.split_once("://") else {
        return Err(format!(
            "{u:?} is not an MQTT URL (expected mqtt://HOST:PORT or mqtts://HOST:PORT)"
        ));
    };
    let tls = match scheme {
        "mqtt" | "tcp" => false,
        "mqtts" | "ssl" => true,
        _ => {
            return Err(format!(
                "unknown URL scheme {scheme:?} (expected mqtt:// or mqtts://)"
            ));
        }
    };
    if rest.contains('@') {
        return Err(
            "the URL carries credentials; put them in \"user\" + \"password_file\" (or \
             \"password_env\") instead"
                .into(),
        );
    }
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
            let p = p
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("{u:?} has an invalid port {p:?} (1 ..= 65535)"))?;
            (h, p)
        }
        _ => (rest, if tls { 8883 } else { 1883 }),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty()
        || host
            .chars()
            .any(|c| c.is_whitespace() || "/?#@".contains(c))
    {
        return Err(format!("{u:?} has no valid host"));
    }
    Ok((host.to_owned(), port, tls))
}

fn path_field(cx: &mut Cx<'_>, t: Table<'_, '_>, key: &str) -> Option<PathBuf> {
    let f = cx.string(t, key, false)?;
    if f.v.trim().is_empty() {
        cx.err(
            f.span.start,
            format!("{key:?} in {} is empty; give a file path", t.name()),
        );
        return None;
    }
    Some(PathBuf::from(f.v))
}

fn qos(cx: &mut Cx<'_>, t: Table<'_, '_>, default: u8) -> u8 {
    cx.integer(t, "qos", false, 0..=2)
        .map_or(default, |f| f.v as u8)
}

fn entry(item: Item<'_, '_>, cx: &mut Cx<'_>, names: &mut HashMap<String, usize>) -> ClientConfig {
    let anon = format!("[[mqtt.client]] entry #{}", item.index);
    // entry_head's work, but "password" is answered below rather than as an unknown key
    let name_field = cx.string(item.table(&anon), ENTRY.id, false);
    let label = name_field
        .as_ref()
        .map_or_else(|| anon.clone(), |f| format!("mqtt client {:?}", f.v));
    let t = item.table(&label);
    cx.require(t, ENTRY.required);
    let allowed: Vec<&str> = ENTRY
        .allowed
        .iter()
        .chain(CONNECTION_KEYS)
        .copied()
        .collect();
    cx.unknown_keys_but(t, &allowed, &["password"]);
    let mut c = ClientConfig::new("", "", 1883);
    if let Some(n) = name_field {
        if n.v.is_empty()
            || n.v.len() > 64
            || !n
                .v
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "_-.".contains(ch))
        {
            cx.err(
                n.span.start,
                format!(
                    "invalid mqtt client name {:?} in {anon}: 1 to 64 characters of a-z, A-Z, 0-9, '_', '-', '.'",
                    n.v
                ),
            );
        } else {
            cx.define_once("mqtt client name", &n, names);
        }
        c.name = n.v.to_owned();
        c.client_id = format!("millwright-{}", n.v);
    }
    check_connection(t, cx, &label, &mut c);
    for (i, s) in cx
        .array_of_tables(t, "subscribe", "mqtt.client.subscribe")
        .into_iter()
        .enumerate()
    {
        let name = format!("[[mqtt.client.subscribe]] #{} of {label}", i + 1);
        if let Some(sub) = subscription(s.table(&name), cx) {
            c.subscribe.push(sub);
        }
    }
    if let Some(f) = cx.table(t, "publish", false, "publish") {
        let name = format!("[mqtt.client.publish] of {label}");
        let pt = f.v.named(&name);
        c.publish = publish(pt, cx);
    }
    if let Some(p) = &c.publish {
        let probe = format!("{}/a/b", p.prefix);
        if let Some(s) = c
            .subscribe
            .iter()
            .find(|s| topic::matches(&probe, &s.filter))
        {
            cx.err(
                t.start(),
                format!(
                    "{label} subscribes to {:?}, which matches its own publishes under {:?}: it would read back what it publishes",
                    s.filter, p.prefix
                ),
            );
        }
    }
    if c.subscribe.is_empty()
        && c.publish.is_none()
        && !t.contains_key("subscribe")
        && !t.contains_key("publish")
    {
        cx.err(
            t.start(),
            format!("{label} neither subscribes nor publishes: add [[mqtt.client.subscribe]] or [mqtt.client.publish]"),
        );
    }
    c
}

/// Checks the connection keys ([`CONNECTION_KEYS`]) of table `t` (named `label` in messages)
/// into `c`: url (host, port, TLS or not), client_id, protocol, user and where the password is,
/// tls files, keep_alive_s, clean_start, backoff_max_ms. Unknown keys and `url` being required
/// are the caller's to check; every problem is reported at its span.
pub fn check_connection(t: Table<'_, '_>, cx: &mut Cx<'_>, label: &str, c: &mut ClientConfig) {
    let mut url_tls = None;
    if let Some(f) = cx.string(t, "url", false) {
        match parse_url(f.v.trim()) {
            Ok((h, p, tls)) => {
                c.host = h;
                c.port = p;
                url_tls = Some((tls, f.span.start));
            }
            Err(why) => cx.err(f.span.start, format!("invalid \"url\" in {label}: {why}")),
        }
    }
    if let Some(f) = cx.string(t, "client_id", false) {
        if f.v.is_empty() || f.v.len() > 128 {
            cx.err(
                f.span.start,
                format!("\"client_id\" in {label} must have 1 to 128 characters"),
            );
        } else {
            c.client_id = f.v.to_owned();
        }
    }
    if let Some(f) = cx.choice(
        t,
        "protocol",
        "MQTT protocol",
        &[
            ("3.1.1", Protocol::V311),
            ("5", Protocol::V5),
            ("5.0", Protocol::V5),
        ],
    ) {
        c.protocol = f.v;
    }
    c.user = user(t, cx, label);
    if let Some(f) = cx.integer(t, "keep_alive_s", false, 5..=65_535) {
        c.keep_alive = Duration::from_secs(f.v as u64);
    }
    if let Some(f) = cx.boolean(t, "clean_start", false) {
        c.clean_start = f.v;
    }
    if let Some(f) = cx.integer(t, "backoff_max_ms", false, 100..=600_000) {
        c.backoff_max = Duration::from_millis(f.v as u64);
    }
    let tls_at = t.key_start("tls");
    if let Some(f) = cx.table(t, "tls", false, "tls") {
        c.tls = tls(f, cx, label);
    }
    match (url_tls, tls_at) {
        (Some((true, at)), None) => cx.err(
            at,
            format!("{label} uses mqtts:// but has no \"tls\": add tls = {{ ca = \"ca.pem\" }} (the CA that signed the broker's certificate)"),
        ),
        (Some((false, _)), Some(at)) => cx.err(
            at,
            format!("{label} has \"tls\" but its url is mqtt://; use mqtts://HOST:PORT"),
        ),
        _ => {}
    }
}

fn user(t: Table<'_, '_>, cx: &mut Cx<'_>, label: &str) -> Option<(String, PasswordSource)> {
    if let Some(at) = t.key_start("password") {
        cx.err(
            at,
            format!(
                "{label}: a password is not written in the config; put it in a file (\"password_file\") or an environment variable (\"password_env\")"
            ),
        );
    }
    let user = cx.string(t, "user", false);
    let file = path_field(cx, t, "password_file");
    let env = cx.string(t, "password_env", false).and_then(|f| {
        if f.v.is_empty() || f.v.contains('=') || f.v.contains('\0') {
            cx.err(
                f.span.start,
                format!("\"password_env\" in {label} is not a valid environment variable name"),
            );
            None
        } else {
            Some(f.v.to_owned())
        }
    });
    let at = |k: &str| t.key_start(k).unwrap_or(t.start());
    let source = match (file, env) {
        (Some(_), Some(_)) => {
            cx.err(
                at("password_env"),
                format!("{label} has both \"password_file\" and \"password_env\"; keep one"),
            );
            return None;
        }
        (Some(f), None) => Some(PasswordSource::File(f)),
        (None, Some(e)) => Some(PasswordSource::Env(e)),
        (None, None) => None,
    };
    match (user, source) {
        (Some(u), _) if u.v.is_empty() => {
            cx.err(u.span.start, format!("\"user\" in {label} is empty"));
            None
        }
        (Some(u), Some(s)) => Some((u.v.to_owned(), s)),
        (Some(_), None) => {
            if !t.contains_key("password_file") && !t.contains_key("password_env") {
                cx.err(
                    at("user"),
                    format!(
                        "{label} has \"user\" but no \"password_file\" or \"password_env\" (where the password is)"
                    ),
                );
            }
            None
        }
        (None, Some(_)) => {
            cx.err(
                at(if t.contains_key("password_file") {
                    "password_file"
                } else {
                    "password_env"
                }),
                format!("{label} has a password but no \"user\""),
            );
            None
        }
        (None, None) => None,
    }
}

fn tls(f: Field<Table<'_, '_>>, cx: &mut Cx<'_>, label: &str) -> Option<TlsFiles> {
    let tls_name = format!("tls of {label}");
    let tt = f.v.named(&tls_name);
    cx.unknown_keys(tt, &["ca", "cert", "key"]);
    let ca = path_field(cx, tt, "ca");
    if ca.is_none() && !tt.contains_key("ca") {
        cx.err(
            f.span.start,
            format!("tls of {label} needs \"ca\": the CA certificate file that signed the broker's certificate"),
        );
    }
    let cert = path_field(cx, tt, "cert");
    let key = path_field(cx, tt, "key");
    let client = match (cert, key) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => {
            cx.err(
                f.span.start,
                format!("tls of {label}: \"cert\" and \"key\" go together (client certificate)"),
            );
            None
        }
    };
    Some(TlsFiles { ca: ca?, client })
}

fn field_path(cx: &mut Cx<'_>, f: &Field<&str>, key: &str, name: &str) -> Option<Vec<String>> {
    let parts: Vec<String> = f.v.split('.').map(str::to_owned).collect();
    if parts.iter().any(String::is_empty) {
        cx.err(
            f.span.start,
            format!(
                "{key:?} in {name} is {:?}: a dotted field path such as \"value\" or \"data.temp\"",
                f.v
            ),
        );
        return None;
    }
    Some(parts)
}

/// Checks one subscription table (`[[mqtt.client.subscribe]]`, and the broker's
/// `[[mqtt.broker.ingest]]`, which has the same keys but `qos`): topic filter, payload mapping
/// and tag template.
pub(crate) fn subscription(t: Table<'_, '_>, cx: &mut Cx<'_>) -> Option<Subscription> {
    let name = t.name();
    cx.unknown_keys(t, SUB_KEYS);
    cx.require(t, &["topic", "tag"]);
    let filter = cx.string(t, "topic", false).and_then(|f| {
        match topic::valid_filter(f.v) {
            Ok(()) if !f.v.starts_with("$share/") => Some(f.v.to_owned()),
            Ok(()) => {
                cx.err(f.span.start, format!("\"topic\" in {name}: shared subscriptions ($share/…) are not supported here"));
                None
            }
            Err(e) => {
                cx.err(f.span.start, format!("\"topic\" in {name}: {e}"));
                None
            }
        }
    });
    let qos = qos(cx, t, 0);
    let kind = cx
        .choice(
            t,
            "payload",
            "payload mapping",
            &[("plain", 0u8), ("json", 1), ("sparkplug", 2)],
        )
        .map_or(0, |f| f.v);
    let ty = cx.choice(
        t,
        "type",
        "plain payload type",
        &[
            ("number", PlainType::Number),
            ("bool", PlainType::Bool),
            ("string", PlainType::String),
        ],
    );
    let field = cx.string(t, "field", false);
    let ts_field = cx.string(t, "ts_field", false);
    let only = |cx: &mut Cx<'_>, key: &str, what: &str| {
        if let Some(at) = t.key_start(key) {
            cx.err(
                at,
                format!("{key:?} in {name} applies to payload = {what:?} only"),
            );
        }
    };
    let payload = match kind {
        0 => {
            only(cx, "field", "json");
            only(cx, "ts_field", "json");
            Some(PayloadMap::Plain(ty.map_or(PlainType::Number, |f| f.v)))
        }
        1 => {
            only(cx, "type", "plain");
            let field = match &field {
                Some(f) => field_path(cx, f, "field", name),
                None => {
                    cx.err(
                        t.start(),
                        format!("{name} has payload = \"json\" but no \"field\" (the value's field path, e.g. \"value\" or \"data.temp\")"),
                    );
                    None
                }
            };
            let ts = match &ts_field {
                Some(f) => Some(field_path(cx, f, "ts_field", name)?),
                None => None,
            };
            field.map(|field| PayloadMap::Json { field, ts })
        }
        _ => {
            only(cx, "type", "plain");
            only(cx, "field", "json");
            only(cx, "ts_field", "json");
            Some(PayloadMap::Sparkplug)
        }
    };
    let tag = cx.string(t, "tag", false).and_then(|f| {
        let parts = match parse_tag_template(f.v) {
            Ok(p) => p,
            Err(e) => {
                cx.err(f.span.start, format!("\"tag\" in {name} is {:?}: {e}", f.v));
                return None;
            }
        };
        let has_metric = parts.contains(&TagPart::Metric);
        if kind == 2 && !has_metric {
            cx.err(
                f.span.start,
                format!("\"tag\" in {name} needs {{metric}} with payload = \"sparkplug\" (one tag per metric)"),
            );
            return None;
        }
        if kind != 2 && has_metric {
            cx.err(
                f.span.start,
                format!("\"tag\" in {name}: {{metric}} applies to payload = \"sparkplug\" only"),
            );
            return None;
        }
        if let Some(filter) = &filter {
            let levels = filter.split('/').count();
            let open = filter.ends_with('#');
            for p in &parts {
                if let TagPart::Level(n) = p
                    && *n > levels
                    && !open
                {
                    cx.err(
                        f.span.start,
                        format!("\"tag\" in {name} uses {{{n}}}, but topic {filter:?} has {levels} level(s)"),
                    );
                    return None;
                }
            }
        }
        let probe: String = parts
            .iter()
            .map(|p| match p {
                TagPart::Text(s) => s.as_str(),
                _ => "x",
            })
            .collect();
        if let Err(e) = mw_model::TagPath::new(&probe) {
            cx.err(
                f.span.start,
                format!("\"tag\" in {name} is {:?}, which does not make a valid tag path: {e}", f.v),
            );
            return None;
        }
        Some(parts)
    });
    let unit = cx.unit(t, name);
    Some(Subscription {
        filter: filter?,
        qos,
        payload: payload?,
        tag: tag?,
        unit,
    })
}

fn publish(t: Table<'_, '_>, cx: &mut Cx<'_>) -> Option<PublishConfig> {
    let name = t.name();
    cx.unknown_keys(t, PUB_KEYS);
    cx.require(t, &["prefix"]);
    let prefix = cx.string(t, "prefix", false).and_then(|f| {
        let p = f.v.trim_matches('/');
        match topic::valid_filter(p) {
            Ok(()) if !p.is_empty() && !p.contains(['+', '#']) => Some(p.to_owned()),
            _ => {
                cx.err(
                    f.span.start,
                    format!("\"prefix\" in {name} is {:?}: a topic without wildcards, e.g. \"acme/plant1\"", f.v),
                );
                None
            }
        }
    });
    let qos = qos(cx, t, 1);
    if qos == 2
        && let Some(at) = t.key_start("qos")
    {
        cx.err(
            at,
            format!("\"qos\" in {name} is 2; publishing supports 0 and 1"),
        );
    }
    let retain = cx.boolean(t, "retain", false).is_some_and(|f| f.v);
    let queue = cx
        .integer(t, "queue", false, 1..=1_000_000)
        .map(|f| f.v as usize);
    Some(PublishConfig {
        prefix: prefix?,
        qos: qos.min(1),
        retain,
        queue,
    })
}
