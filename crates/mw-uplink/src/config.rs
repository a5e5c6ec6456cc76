//! The `[[uplink]]` section: one entry per upstream NATS JetStream system.
//!
//! ```toml
//! [[uplink]]
//! name = "cloud"                          # required, unique; metrics' `instance`, buffer dir name
//! url = "nats://10.0.0.5:4222"            # required; several: "nats://a:4222,nats://b:4222"
//! site = "acme-plant1"                    # subject token; default: [site] name, lower case, [a-z0-9_-]
//! stream = "MW_ACME-PLANT1"               # default: "MW_" + site in upper case
//! edge_id = "plant1-gw1"                  # default: generated once, kept in <buffer dir>/edge-id
//! batch = 256                             # messages awaiting a PubAck per flow (live, backlog)
//! pack = 1                                # samples per message: > 1 sends them packed on mw.{site}.$samples
//! duplicate_window_s = 120                # the stream's dedup window, when the uplink creates it
//! replicas = 1                            # the stream's replicas, when the uplink creates it (3 on a cluster)
//! user = "edge1"                          # with password_file; or token_file instead
//! password_file = "/etc/millwright/nats-password"
//! tls = { ca = "ca.pem" }                 # optional: TLS, trusting this CA (cert + key: client auth)
//!
//! [uplink.buffer]                         # mw-buffer's BufferConfig, same keys and defaults,
//! max_bytes = 1073741824                  # but dir defaults to <site.data_dir>/uplink/<name>
//! full_policy = "block"                   # or "drop_oldest", "drop_newest"
//! fsync = "always"
//! ```
//! Secrets are never in this value: only the paths of the files that hold them, read when the
//! component is built.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use mw_buffer::config::FsyncMode;
use mw_buffer::{BufferConfig, FullPolicy};
use mw_config::{Cx, EntryKeys, Field, Item, Section, SectionValue, Table};

/// The checked `[[uplink]]` section: every entry, in file order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UplinkSection {
    pub uplinks: Vec<UplinkConfig>,
}

/// One `[[uplink]]` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct UplinkConfig {
    pub name: String,
    /// `nats://HOST:PORT` (or `tls://`), at least one — unless the uplink goes to
    /// VictoriaMetrics.
    pub urls: Vec<String>,
    /// `url = "http://HOST:PORT[/prefix]"`: the uplink writes samples to this VictoriaMetrics
    /// (InfluxDB line protocol on `/write`) instead of NATS; events are not forwarded.
    pub victoria_metrics: Option<crate::vm::VmUrl>,
    /// VictoriaMetrics only: how long a record stays in the buffer after its 2xx (longer than
    /// the server's `-inmemoryDataFlushInterval`).
    pub hold: Duration,
    /// `url = "mqtt://HOST:PORT"` (or `mqtts://`): the uplink publishes to this MQTT broker
    /// (`crate::mqtt`) instead of NATS.
    pub mqtt: Option<crate::mqtt::MqttTarget>,
    /// `None`: derived from `[site] name` ([`site_token`]).
    pub site: Option<String>,
    /// `None`: `MW_` + the site in upper case.
    pub stream: Option<String>,
    /// `None`: generated and kept in the buffer directory.
    pub edge_id: Option<String>,
    /// Messages awaiting a PubAck per flow.
    pub batch: usize,
    /// Samples per message: 1 = one message per sample on its tag's subject; more = packs of
    /// up to this many on `mw.{site}.$samples` (`wire::encode_pack`).
    pub pack: usize,
    pub duplicate_window: Duration,
    /// Replicas of the stream when the uplink creates it (1, or 3/5 on a JetStream cluster).
    pub replicas: usize,
    pub auth: Auth,
    pub tls: Option<TlsFiles>,
    /// `dir` empty: `<site.data_dir>/uplink/<name>`.
    pub buffer: BufferConfig,
}

/// How the uplink authenticates: the files holding the secrets, never the secrets.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Auth {
    #[default]
    None,
    UserPassword {
        user: String,
        password_file: PathBuf,
    },
    Token {
        token_file: PathBuf,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    /// Client certificate and key (both or neither).
    pub client: Option<(PathBuf, PathBuf)>,
}

impl UplinkConfig {
    /// An uplink named `name` to the comma-separated `urls` with every other key at its
    /// default (what `millwright demo --uplink URL` adds), or why a URL is refused.
    pub fn new(name: &str, urls: &str) -> Result<UplinkConfig, String> {
        check_token(name, 64).map_err(|why| format!("invalid uplink name {name:?}: {why}"))?;
        let mut out = Vec::new();
        for u in urls.split(',').map(str::trim) {
            check_url(u)?;
            out.push(u.to_owned());
        }
        Ok(UplinkConfig {
            name: name.to_owned(),
            urls: out,
            ..UplinkConfig::defaults()
        })
    }

    fn defaults() -> UplinkConfig {
        UplinkConfig {
            name: String::new(),
            urls: Vec::new(),
            site: None,
            stream: None,
            edge_id: None,
            batch: 256,
            pack: 1,
            victoria_metrics: None,
            hold: Duration::from_millis(6000),
            mqtt: None,
            duplicate_window: Duration::from_secs(120),
            replicas: 1,
            auth: Auth::None,
            tls: None,
            buffer: BufferConfig {
                dir: PathBuf::new(),
                ..BufferConfig::default()
            },
        }
    }

    /// The subject token of the site: the configured one, or `[site] name` made a token.
    pub fn site_for(&self, site_name: &str) -> String {
        self.site.clone().unwrap_or_else(|| site_token(site_name))
    }

    /// The stream name for `site`.
    pub fn stream_for(&self, site: &str) -> String {
        self.stream
            .clone()
            .unwrap_or_else(|| format!("MW_{}", site.to_ascii_uppercase()))
    }
}

/// A site name as a subject token: lower case, runs of anything but `a-z 0-9 _ -` become one
/// `-`, trimmed of `-`; `site` if nothing is left. `"Acme Plant 1 (simulated)"` →
/// `"acme-plant-1-simulated"`.
pub fn site_token(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let t = out.trim_matches('-');
    if t.is_empty() {
        "site".to_owned()
    } else {
        t.chars().take(64).collect()
    }
}

/// Why a string is not a usable token (site, stream, edge id, name).
pub(crate) fn check_token(s: &str, max: usize) -> Result<(), String> {
    if s.is_empty() {
        return Err("it is empty".into());
    }
    if s.len() > max {
        return Err(format!("it is {} bytes long (at most {max})", s.len()));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(format!(
            "character {c:?} is not allowed (use A-Z a-z 0-9 _ -)"
        ));
    }
    Ok(())
}

/// Checks one URL: `nats://HOST:PORT` or `tls://HOST:PORT`, no credentials inside. The error
/// never repeats a URL that carries credentials.
pub fn check_url(u: &str) -> Result<(), String> {
    if u.contains('@') {
        return Err(
            "the URL carries credentials; put them in \"user\" + \"password_file\" or \
             \"token_file\" instead (the URL is not repeated here)"
                .into(),
        );
    }
    let Some((scheme, rest)) = u.split_once("://") else {
        return Err(format!(
            "{u:?} is not a NATS URL (expected nats://HOST:PORT)"
        ));
    };
    if scheme != "nats" && scheme != "tls" {
        return Err(format!(
            "unknown URL scheme {scheme:?} (expected nats:// or tls://)"
        ));
    }
    let Some((host, port)) = rest.rsplit_once(':') else {
        return Err(format!("{u:?} has no port (expected {scheme}://HOST:PORT)"));
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || "/?#".contains(c)) {
        return Err(format!("{u:?} has no valid host"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(format!("{u:?} has an invalid port {port:?} (1 ..= 65535)")),
    }
}

pub(crate) struct Checker;

const ENTRY: EntryKeys = EntryKeys {
    id: "name",
    required: &["name", "url"],
    allowed: &[
        "name",
        "url",
        "site",
        "stream",
        "edge_id",
        "batch",
        "pack",
        "hold_ms",
        "topic_prefix",
        "duplicate_window_s",
        "replicas",
        "user",
        "password_file",
        "token_file",
        "tls",
        "buffer",
    ],
};

const BUFFER_KEYS: &[&str] = &[
    "dir",
    "max_bytes",
    "segment_bytes",
    "full_policy",
    "fsync",
    "fsync_interval_ms",
    "block_timeout_ms",
    "ack_persist_ms",
];

impl Section for Checker {
    fn key(&self) -> &'static str {
        "uplink"
    }

    fn check(&self, root: Table<'_, '_>, cx: &mut Cx<'_>) -> Box<dyn SectionValue> {
        let mut out = UplinkSection::default();
        let mut names = HashMap::new();
        for item in cx.array_of_tables(root, "uplink", "uplink") {
            out.uplinks.push(entry(item, cx, &mut names));
        }
        Box::new(out)
    }
}

fn token_field(cx: &mut Cx<'_>, f: &Field<&str>, what: &str, label: &str, max: usize) -> bool {
    match check_token(f.v, max) {
        Ok(()) => true,
        Err(why) => {
            cx.err(
                f.span.start,
                format!("invalid {what} {:?} in {label}: {why}", f.v),
            );
            false
        }
    }
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

fn entry(item: Item<'_, '_>, cx: &mut Cx<'_>, names: &mut HashMap<String, usize>) -> UplinkConfig {
    let anon = format!("[[uplink]] entry #{}", item.index);
    let (name_field, label) = cx.entry_head(item.table(&anon), &ENTRY, |n| format!("uplink {n:?}"));
    let t = item.table(&label);
    let mut u = UplinkConfig::defaults();
    if let Some(n) = name_field {
        if token_field(cx, &n, "uplink name", &anon, 64) {
            cx.define_once("uplink name", &n, names);
        }
        u.name = n.v.to_owned();
    }
    match cx.string(t, "url", false) {
        Some(f) if f.v.trim_start().starts_with("http") => {
            match crate::vm::VmUrl::parse(f.v.trim()) {
                Ok(v) => u.victoria_metrics = Some(v),
                Err(why) => cx.err(f.span.start, format!("invalid \"url\" in {label}: {why}")),
            }
            // VictoriaMetrics holds records for seconds: a wide window, and packs, by default
            u.batch = 8192;
            u.pack = 64;
            for k in [
                "stream",
                "duplicate_window_s",
                "replicas",
                "user",
                "password_file",
                "token_file",
                "tls",
            ] {
                if let Some(at) = t.key_start(k) {
                    cx.err(
                        at,
                        format!("{k:?} in {label} applies to NATS uplinks only (this one writes to VictoriaMetrics)"),
                    );
                }
            }
        }
        Some(f) if f.v.trim_start().starts_with("mqtt") => {
            match crate::mqtt::MqttTarget::parse(f.v.trim()) {
                Ok(m) => u.mqtt = Some(m),
                Err(why) => cx.err(f.span.start, format!("invalid \"url\" in {label}: {why}")),
            }
            for k in ["stream", "duplicate_window_s", "replicas", "token_file"] {
                if let Some(at) = t.key_start(k) {
                    cx.err(
                        at,
                        format!("{k:?} in {label} applies to NATS uplinks only (this one publishes to MQTT)"),
                    );
                }
            }
        }
        Some(f) => nats_urls(&f, t.name(), cx, &mut u.urls),
        None => {}
    }
    if let Some(f) = cx.string(t, "site", false)
        && token_field(cx, &f, "site", &label, 64)
    {
        u.site = Some(f.v.to_owned());
    }
    if let Some(f) = cx.string(t, "stream", false)
        && token_field(cx, &f, "stream name", &label, 200)
    {
        u.stream = Some(f.v.to_owned());
    }
    if let Some(f) = cx.string(t, "edge_id", false)
        && token_field(cx, &f, "edge_id", &label, 64)
    {
        u.edge_id = Some(f.v.to_owned());
    }
    if let Some(f) = cx.integer(t, "batch", false, 1..=65_536) {
        u.batch = f.v as usize;
    }
    if let Some(f) = cx.integer(t, "pack", false, 1..=1024) {
        u.pack = f.v as usize;
    }
    if let Some(f) = cx.string(t, "topic_prefix", false) {
        let p = f.v.trim_end_matches('/');
        if u.mqtt.is_none() {
            cx.err(
                f.span.start,
                format!(
                    "\"topic_prefix\" in {label} applies to MQTT uplinks only (url = \"mqtt://…\")"
                ),
            );
        } else if p.is_empty() || p.contains(['+', '#', '\0']) || p.starts_with('$') {
            cx.err(
                f.span.start,
                format!("invalid \"topic_prefix\" {:?} in {label}: a topic without wildcards, not starting with $", f.v),
            );
        } else if let Some(m) = &mut u.mqtt {
            m.topic_prefix = Some(p.to_owned());
        }
    }
    if let Some(f) = cx.integer(t, "hold_ms", false, 0..=600_000) {
        if u.victoria_metrics.is_none() {
            cx.err(
                f.span.start,
                format!("\"hold_ms\" in {label} applies to VictoriaMetrics uplinks only (url = \"http://…\")"),
            );
        }
        u.hold = Duration::from_millis(f.v as u64);
    }
    if let Some(f) = cx.integer(t, "duplicate_window_s", false, 1..=86_400) {
        u.duplicate_window = Duration::from_secs(f.v as u64);
    }
    if let Some(f) = cx.integer(t, "replicas", false, 1..=5) {
        u.replicas = f.v as usize;
    }
    u.auth = auth(t, cx);
    u.tls = tls(t, cx, &label);
    if let Some(m) = &u.mqtt {
        match (m.tls, u.tls.is_some()) {
            (true, false) => cx.err(
                t.key_start("url").unwrap_or(t.start()),
                format!("{label}: mqtts:// needs tls = {{ ca = \"…\" }} (the CA that signed the broker's certificate)"),
            ),
            (false, true) => cx.err(
                t.key_start("tls").unwrap_or(t.start()),
                format!("{label}: tls is given but the url is mqtt://; use mqtts:// for TLS"),
            ),
            _ => {}
        }
    }
    if let Some(f) = cx.table(t, "buffer", false, "buffer") {
        let buf_name = format!("[uplink.buffer] of {label}");
        let bt = f.v.named(&buf_name);
        buffer(bt, f.span.start, cx, &mut u.buffer);
    }
    u
}

/// The optional `tls = { ca, cert, key }` table of `t` (named `label` in messages).
pub(crate) fn tls(t: Table<'_, '_>, cx: &mut Cx<'_>, label: &str) -> Option<TlsFiles> {
    tls_table(t, cx, "tls", label)
}

/// The optional `key = { ca, cert, key }` table of `t` (named `label` in messages): the CA
/// file is required, a client certificate and key go together. Also `[central]`'s `tls` and
/// `postgres_tls`.
pub fn tls_table(t: Table<'_, '_>, cx: &mut Cx<'_>, key: &str, label: &str) -> Option<TlsFiles> {
    let f = cx.table(t, key, false, key)?;
    let tls_name = format!("{key} of {label}");
    let tt = f.v.named(&tls_name);
    cx.unknown_keys(tt, &["ca", "cert", "key"]);
    let ca = path_field(cx, tt, "ca");
    if ca.is_none() && !tt.contains_key("ca") {
        cx.err(
            f.span.start,
            format!("{key} of {label} needs \"ca\": the CA certificate file that signed the server's certificate"),
        );
    }
    let cert = path_field(cx, tt, "cert");
    let key_file = path_field(cx, tt, "key");
    let client = match (cert, key_file) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => {
            cx.err(
                f.span.start,
                format!(
                    "{key} of {label}: \"cert\" and \"key\" go together (client authentication)"
                ),
            );
            None
        }
    };
    Some(TlsFiles { ca: ca?, client })
}

pub(crate) fn urls(t: Table<'_, '_>, cx: &mut Cx<'_>, out: &mut Vec<String>) {
    // one string; several servers separated by commas, as NATS tools take them
    if let Some(f) = cx.string(t, "url", false) {
        nats_urls(&f, t.name(), cx, out);
    }
}

/// The comma-separated NATS URLs of `f` (the `url` of the table called `name`).
fn nats_urls(f: &Field<&str>, name: &str, cx: &mut Cx<'_>, out: &mut Vec<String>) {
    for part in f.v.split(',') {
        let u = part.trim();
        match check_url(u) {
            Ok(()) => out.push(u.to_owned()),
            Err(why) => cx.err(f.span.start, format!("invalid \"url\" in {name}: {why}")),
        }
    }
}

pub(crate) fn auth(t: Table<'_, '_>, cx: &mut Cx<'_>) -> Auth {
    let user = cx.string(t, "user", false);
    let password = path_field(cx, t, "password_file");
    let token = path_field(cx, t, "token_file");
    let at = |k: &str| t.key_start(k).unwrap_or(t.start());
    match (user, password, token) {
        (None, None, None) => Auth::None,
        (Some(u), Some(p), None) if !u.v.is_empty() => Auth::UserPassword {
            user: u.v.to_owned(),
            password_file: p,
        },
        (None, None, Some(tk)) => Auth::Token { token_file: tk },
        (_, _, Some(_)) if t.contains_key("user") || t.contains_key("password_file") => {
            cx.err(
                at("token_file"),
                format!(
                    "{} has both \"token_file\" and \"user\"/\"password_file\"; keep one way to authenticate",
                    t.name()
                ),
            );
            Auth::None
        }
        (Some(u), _, _) if u.v.is_empty() => {
            cx.err(u.span.start, format!("\"user\" in {} is empty", t.name()));
            Auth::None
        }
        (Some(_), None, _) if !t.contains_key("password_file") => {
            cx.err(
                at("user"),
                format!(
                    "{} has \"user\" but no \"password_file\" (the file holding the password)",
                    t.name()
                ),
            );
            Auth::None
        }
        (None, Some(_), _) => {
            cx.err(
                at("password_file"),
                format!("{} has \"password_file\" but no \"user\"", t.name()),
            );
            Auth::None
        }
        _ => Auth::None, // a bad value was reported where it was read
    }
}

fn buffer(t: Table<'_, '_>, start: usize, cx: &mut Cx<'_>, b: &mut BufferConfig) {
    cx.unknown_keys(t, BUFFER_KEYS);
    if let Some(d) = path_field(cx, t, "dir") {
        b.dir = d;
    }
    let int = |cx: &mut Cx<'_>, k: &str, lo: i128, hi: i128| cx.integer(t, k, false, lo..=hi);
    if let Some(f) = int(cx, "max_bytes", 1, i128::from(u64::MAX)) {
        b.max_bytes = f.v as u64;
    }
    if let Some(f) = int(cx, "segment_bytes", 1, i128::from(u64::MAX)) {
        b.segment_bytes = f.v as u64;
    }
    if let Some(f) = cx.choice(
        t,
        "full_policy",
        "full policy",
        &[
            ("block", FullPolicy::Block),
            ("drop_oldest", FullPolicy::DropOldest),
            ("drop_newest", FullPolicy::DropNewest),
        ],
    ) {
        b.full_policy = f.v;
    }
    if let Some(f) = cx.choice(
        t,
        "fsync",
        "fsync policy",
        &[
            ("always", FsyncMode::Always),
            ("interval", FsyncMode::Interval),
        ],
    ) {
        b.fsync = f.v;
    }
    for (k, slot) in [
        ("fsync_interval_ms", &mut b.fsync_interval_ms),
        ("block_timeout_ms", &mut b.block_timeout_ms),
        ("ack_persist_ms", &mut b.ack_persist_ms),
    ] {
        if let Some(f) = int(cx, k, 0, 86_400_000) {
            *slot = f.v as u64;
        }
    }
    // the buffer's own rules (segment vs max bytes, ranges), each at its key
    if let Err(problems) = b.check() {
        for p in problems {
            let at = t.key_start(p.field).unwrap_or(start);
            cx.err(at, format!("{} ({})", p.message, path_label(t, p.field)));
        }
    }
}

fn path_label(t: Table<'_, '_>, field: &str) -> String {
    format!("\"{field}\" in {}", t.name())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mw_config::Registry;

    fn parse(src: &str) -> Result<UplinkSection, String> {
        Registry::new()
            .with(Box::new(Checker))
            .parse(src, "t.toml")
            .map(|c| c.section::<UplinkSection>().cloned().unwrap())
            .map_err(|d| d.to_string())
    }

    #[test]
    fn an_http_url_makes_a_victoria_metrics_uplink_with_its_own_defaults() {
        let s = parse("[[uplink]]\nname = \"vm\"\nurl = \"http://10.0.0.9:8428\"\n").unwrap();
        let u = &s.uplinks[0];
        assert_eq!(
            u.victoria_metrics.as_ref().unwrap().authority,
            "10.0.0.9:8428"
        );
        assert!(u.urls.is_empty());
        assert_eq!(
            (u.batch, u.pack, u.hold),
            (8192, 64, Duration::from_secs(6))
        );
        let s = parse(
            "[[uplink]]\nname = \"vm\"\nurl = \"http://h:1\"\nbatch = 10\npack = 1\nhold_ms = 0\n",
        )
        .unwrap();
        assert_eq!(
            (s.uplinks[0].batch, s.uplinks[0].pack, s.uplinks[0].hold),
            (10, 1, Duration::ZERO)
        );
        let e = parse(
            "[[uplink]]\nname = \"vm\"\nurl = \"http://h:1\"\nstream = \"S\"\nreplicas = 3\n",
        )
        .unwrap_err();
        assert!(
            e.contains("t.toml:4:") && e.contains("\"stream\"") && e.contains("NATS uplinks only"),
            "{e}"
        );
        assert!(e.contains("t.toml:5:") && e.contains("\"replicas\""), "{e}");
        let e = parse("[[uplink]]\nname = \"n\"\nurl = \"nats://h:1\"\nhold_ms = 5\n").unwrap_err();
        assert!(e.contains("VictoriaMetrics uplinks only"), "{e}");
        let e = parse("[[uplink]]\nname = \"vm\"\nurl = \"https://h:1\"\n").unwrap_err();
        assert!(e.contains("not an http:// URL"), "{e}");
    }

    #[test]
    fn an_mqtt_url_makes_an_mqtt_uplink() {
        let s = parse(
            "[[uplink]]\nname = \"m\"\nurl = \"mqtt://broker:1883\"\ntopic_prefix = \"acme/uns/\"\n\
             user = \"edge\"\npassword_file = \"/p\"\n",
        )
        .unwrap();
        let m = s.uplinks[0].mqtt.as_ref().unwrap();
        assert_eq!((m.host.as_str(), m.port, m.tls), ("broker", 1883, false));
        assert_eq!(m.topic_prefix.as_deref(), Some("acme/uns"));
        assert_eq!((s.uplinks[0].batch, s.uplinks[0].pack), (256, 1));
        let e = parse(
            "[[uplink]]\nname = \"m\"\nurl = \"mqtts://b:8883\"\nstream = \"S\"\ntopic_prefix = \"a/#\"\n",
        )
        .unwrap_err();
        assert!(
            e.contains("t.toml:4:") && e.contains("NATS uplinks only"),
            "{e}"
        );
        assert!(
            e.contains("t.toml:5:") && e.contains("invalid \"topic_prefix\""),
            "{e}"
        );
        assert!(e.contains("mqtts:// needs tls"), "{e}");
        let e = parse("[[uplink]]\nname = \"n\"\nurl = \"nats://h:1\"\ntopic_prefix = \"x\"\n")
            .unwrap_err();
        assert!(e.contains("MQTT uplinks only"), "{e}");
    }

    #[test]
    fn absent_means_no_uplink() {
        assert_eq!(parse("").unwrap(), UplinkSection::default());
    }

    #[test]
    fn every_key_is_read() {
        let s = parse(
            r#"
[[uplink]]
name = "cloud"
url = "nats://10.0.0.5:4222, tls://nats.example.com:4443"
site = "plant1"
stream = "MW_P1"
edge_id = "gw-1"
batch = 64
pack = 32
duplicate_window_s = 600
replicas = 3
user = "edge1"
password_file = "/etc/mw/pw"
tls = { ca = "ca.pem", cert = "c.pem", key = "k.pem" }

[uplink.buffer]
dir = "/var/lib/mw/up"
max_bytes = 1048576
segment_bytes = 65536
full_policy = "drop_oldest"
fsync = "interval"
fsync_interval_ms = 200
"#,
        )
        .unwrap();
        let u = &s.uplinks[0];
        assert_eq!(u.name, "cloud");
        assert_eq!(
            u.urls,
            ["nats://10.0.0.5:4222", "tls://nats.example.com:4443"]
        );
        assert_eq!(u.site.as_deref(), Some("plant1"));
        assert_eq!(u.stream_for("plant1"), "MW_P1");
        assert_eq!(u.edge_id.as_deref(), Some("gw-1"));
        assert_eq!(u.batch, 64);
        assert_eq!(u.pack, 32);
        assert_eq!(u.duplicate_window, Duration::from_secs(600));
        assert_eq!(u.replicas, 3);
        assert_eq!(
            u.auth,
            Auth::UserPassword {
                user: "edge1".into(),
                password_file: "/etc/mw/pw".into()
            }
        );
        let tls = u.tls.as_ref().unwrap();
        assert_eq!(tls.ca, PathBuf::from("ca.pem"));
        assert!(tls.client.is_some());
        assert_eq!(u.buffer.full_policy, FullPolicy::DropOldest);
        assert_eq!(u.buffer.fsync, FsyncMode::Interval);
        assert_eq!(u.buffer.max_bytes, 1 << 20);
        assert_eq!(u.buffer.dir, PathBuf::from("/var/lib/mw/up"));
    }

    #[test]
    fn defaults() {
        let s = parse("[[uplink]]\nname = \"a\"\nurl = \"nats://127.0.0.1:4222\"\n").unwrap();
        let u = &s.uplinks[0];
        assert_eq!(
            u.site_for("Acme Plant 1 (simulated)"),
            "acme-plant-1-simulated"
        );
        assert_eq!(
            u.stream_for("acme-plant-1-simulated"),
            "MW_ACME-PLANT-1-SIMULATED"
        );
        assert_eq!(u.batch, 256);
        assert_eq!(u.pack, 1);
        assert_eq!(u.auth, Auth::None);
        assert!(
            u.buffer.dir.as_os_str().is_empty(),
            "resolved at build time"
        );
        assert_eq!(u.buffer.max_bytes, BufferConfig::default().max_bytes);
    }

    #[test]
    fn every_problem_is_reported_at_its_place() {
        let e = parse(
            r#"[[uplink]]
name = "a b"
url = "ftp://x:1"
site = "p.1"
batch = 0
token_file = "t"
user = "u"

[uplink.buffer]
max_bytes = 1000
full_policy = "drop"

[[uplink]]
url = "nats://h"
"#,
        )
        .unwrap_err();
        for want in [
            "t.toml:2:8: invalid uplink name \"a b\" in [[uplink]] entry #1: character ' ' is not allowed",
            "t.toml:3:7: invalid \"url\" in uplink \"a b\": unknown URL scheme \"ftp\"",
            "t.toml:4:8: invalid site \"p.1\"",
            "t.toml:5:9: \"batch\" in uplink \"a b\" is 0, out of range",
            "t.toml:6:1: uplink \"a b\" has both \"token_file\" and \"user\"/\"password_file\"",
            "t.toml:10:1: 1000 must be at least twice segment_bytes",
            "t.toml:11:15: unknown full policy \"drop\"",
            "t.toml:13:1: missing required key \"name\" in [[uplink]] entry #2",
            "t.toml:14:7: invalid \"url\" in [[uplink]] entry #2: \"nats://h\" has no port",
        ] {
            assert!(e.contains(want), "missing {want:?} in:\n{e}");
        }
    }

    #[test]
    fn a_secret_never_appears_in_an_error() {
        let e =
            parse("[[uplink]]\nname = \"a\"\nurl = \"nats://edge:hunter2@h:4222\"\n").unwrap_err();
        assert!(e.contains("carries credentials"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        let e = parse("[[uplink]]\nname = \"a\"\nurl = \"edge:hunter2@h:4222\"\n").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn duplicate_names_and_half_credentials() {
        let e = parse(
            "[[uplink]]\nname = \"a\"\nurl = \"nats://h:1\"\nuser = \"u\"\n\
             [[uplink]]\nname = \"a\"\nurl = \"nats://h:1\"\npassword_file = \"p\"\n\
             tls = { cert = \"c\" }\n",
        )
        .unwrap_err();
        for want in [
            "has \"user\" but no \"password_file\"",
            "duplicate uplink name \"a\" (first defined at line 2)",
            "has \"password_file\" but no \"user\"",
            "needs \"ca\"",
            "\"cert\" and \"key\" go together",
        ] {
            assert!(e.contains(want), "missing {want:?} in:\n{e}");
        }
    }

    #[test]
    fn the_constructor_checks_like_the_section() {
        let u = UplinkConfig::new("demo", "nats://127.0.0.1:4222").unwrap();
        let s = parse("[[uplink]]\nname = \"demo\"\nurl = \"nats://127.0.0.1:4222\"\n").unwrap();
        assert_eq!(u, s.uplinks[0]);
        assert!(
            UplinkConfig::new("demo", "127.0.0.1:4222")
                .unwrap_err()
                .contains("not a NATS URL")
        );
        assert!(
            !UplinkConfig::new("demo", "nats://u:pw@h:1")
                .unwrap_err()
                .contains("pw")
        );
    }

    #[test]
    fn site_tokens() {
        assert_eq!(site_token("Millwright"), "millwright");
        assert_eq!(site_token("  ***  "), "site");
        assert_eq!(site_token("a__b--c"), "a__b--c");
        assert!(check_token(&site_token("Ünïcode Plant №1"), 64).is_ok());
    }
}
