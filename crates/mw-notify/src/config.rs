//! The `[notify]` section: notification targets (`[[notify.webhook]]`, `[[notify.mqtt]]`) and
//! escalations (`[[notify.escalation]]`). Off unless present. One checker owns the whole table,
//! so an escalation's `targets` are checked against the names defined beside it.
//!
//! ```toml
//! [[notify.webhook]]
//! name = "ops"                           # required, unique over every target
//! url = "https://hooks.example.com/x"    # required; http:// or https://
//! ca = "/etc/millwright/hooks-ca.pem"    # https: trust only this CA (default: the system roots)
//! headers = [{ name = "X-Team", value = "utilities" }]   # plain headers (no credentials)
//! header_files = [{ name = "Authorization", file = "/etc/millwright/hook-auth" }]  # value: the file's
//! secret_file = "/etc/millwright/hook-key"   # HMAC-SHA256 of the body, hex, in signature_header
//! signature_header = "X-Millwright-Signature" # value "sha256=<hex>"
//! timeout = "5s"                         # per attempt
//! retries = 5                            # attempts after the first (5xx, 408, 429, network)
//! backoff = "500ms"                      # first retry delay, doubling, ±25 % jitter, up to backoff_max
//! backoff_max = "30s"
//! # common to every target:
//! min_priority = "low"                   # critical, high, medium, low
//! areas = ["utilities"]                  # default every area
//! states = ["unack_active", "normal"]    # the lifecycle states whose entry notifies
//! max_per_minute = 30                    # token bucket (burst of as many); 0 = unlimited
//! dedup = "1m"                           # the same alarm entering the same state again within it: sent once
//! queue = 256                            # notifications waiting for this target (critical first)
//!
//! [[notify.mqtt]]
//! name = "scada"
//! url = "mqtt://127.0.0.1:1883"          # the connection keys of [[mqtt.client]] apply
//! topic = "alarms/{area}/{priority}/{alarm}"
//! retain = false                         # QoS is 1
//!
//! [[notify.escalation]]
//! name = "critical-unacked"
//! min_priority = "critical"              # default critical
//! areas = []                             # default every area
//! after = "5m"                           # unacknowledged (unack_active or rtn_unack) this long
//! repeat = "10m"                         # optional: again every `repeat` while still unacknowledged
//! targets = ["ops", "scada"]
//! ```
//! Secrets are never in this value: only the files holding them, read when the component is
//! built. A webhook's `Debug` output and every log line show the URL's origin only (a URL path
//! can carry a token).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use mw_config::{Cx, EntryKeys, Field, Item, Section, SectionValue, Table};
use mw_mqtt::client::ClientConfig;
use mw_mqtt::client::config::{CONNECTION_KEYS, check_connection};

/// Alarm priorities, lowest first (so `>=` means "at least as urgent").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    Low,
    Medium,
    High,
    Critical,
}

impl Priority {
    pub const NAMES: [(&'static str, Priority); 4] = [
        ("critical", Priority::Critical),
        ("high", Priority::High),
        ("medium", Priority::Medium),
        ("low", Priority::Low),
    ];

    /// The priority named `s`; an unknown name counts as `low` (it still notifies targets
    /// that take every priority).
    pub fn parse(s: &str) -> Priority {
        Priority::NAMES
            .iter()
            .find(|(n, _)| *n == s)
            .map_or(Priority::Low, |(_, p)| *p)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Critical => "critical",
            Priority::High => "high",
            Priority::Medium => "medium",
            Priority::Low => "low",
        }
    }
}

/// The alarm lifecycle states (mw-alarms' names) a filter may list.
pub const STATES: &[&str] = &[
    "normal",
    "unack_active",
    "ack_active",
    "rtn_unack",
    "shelved",
    "suppressed",
    "out_of_service",
];

/// The states that notify by default: becoming active, and the alarm being over.
pub const DEFAULT_STATES: &[&str] = &["unack_active", "normal"];

/// Which alarm transitions a target is told about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    pub min_priority: Priority,
    /// Empty: every area.
    pub areas: Vec<String>,
    /// The `to` states that notify.
    pub states: Vec<String>,
}

impl Default for Filter {
    fn default() -> Self {
        Filter {
            min_priority: Priority::Low,
            areas: Vec::new(),
            states: DEFAULT_STATES.iter().map(|s| (*s).to_owned()).collect(),
        }
    }
}

/// A webhook's endpoint, split once at check time.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub https: bool,
    /// Without IPv6 brackets.
    pub host: String,
    pub port: u16,
    /// Path and query (`/` at least).
    pub path: String,
}

impl Endpoint {
    /// `scheme://host:port`, what logs and `Debug` show (the path may carry a token).
    pub fn origin(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}", self.host, self.port)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }

    /// The `Host` header value.
    pub fn authority(&self) -> String {
        let default = if self.https { 443 } else { 80 };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/…", self.origin())
    }
}

/// Retries of a webhook delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retry {
    pub retries: u32,
    pub backoff: Duration,
    pub backoff_max: Duration,
}

/// `[[notify.webhook]]`'s own keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookConfig {
    pub endpoint: Endpoint,
    pub ca: Option<PathBuf>,
    pub headers: Vec<(String, String)>,
    pub header_files: Vec<(String, PathBuf)>,
    pub secret_file: Option<PathBuf>,
    pub signature_header: String,
    pub timeout: Duration,
    pub retry: Retry,
}

/// `[[notify.mqtt]]`'s own keys.
#[derive(Clone, Debug, PartialEq)]
pub struct MqttConfig {
    pub connection: ClientConfig,
    pub topic: String,
    pub retain: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum TargetKind {
    Webhook(WebhookConfig),
    Mqtt(MqttConfig),
}

/// One notification target.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetConfig {
    pub name: String,
    pub kind: TargetKind,
    pub filter: Filter,
    /// 0: unlimited.
    pub max_per_minute: u32,
    /// Zero: no deduplication.
    pub dedup: Duration,
    pub queue: usize,
}

impl TargetConfig {
    /// A webhook target with every default posting to `url` (`millwright demo --webhook`).
    pub fn webhook(name: &str, url: &str) -> Result<TargetConfig, String> {
        Ok(TargetConfig {
            name: name.to_owned(),
            kind: TargetKind::Webhook(WebhookConfig {
                endpoint: parse_url(url)?,
                ca: None,
                headers: Vec::new(),
                header_files: Vec::new(),
                secret_file: None,
                signature_header: DEFAULT_SIGNATURE_HEADER.to_owned(),
                timeout: DEFAULT_TIMEOUT,
                retry: Retry {
                    retries: DEFAULT_RETRIES,
                    backoff: DEFAULT_BACKOFF,
                    backoff_max: DEFAULT_BACKOFF_MAX,
                },
            }),
            filter: Filter::default(),
            max_per_minute: DEFAULT_MAX_PER_MINUTE,
            dedup: DEFAULT_DEDUP,
            queue: DEFAULT_QUEUE,
        })
    }
}

/// One `[[notify.escalation]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EscalationConfig {
    pub name: String,
    pub min_priority: Priority,
    pub areas: Vec<String>,
    pub after: Duration,
    pub repeat: Option<Duration>,
    /// Indexes into [`NotifySection::targets`].
    pub targets: Vec<usize>,
}

/// The checked `[notify]` section (empty when absent).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NotifySection {
    pub targets: Vec<TargetConfig>,
    pub escalations: Vec<EscalationConfig>,
}

pub const DEFAULT_MAX_PER_MINUTE: u32 = 30;
pub const DEFAULT_DEDUP: Duration = Duration::from_secs(60);
pub const DEFAULT_QUEUE: usize = 256;
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_RETRIES: u32 = 5;
pub const DEFAULT_BACKOFF: Duration = Duration::from_millis(500);
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(30);
pub const DEFAULT_SIGNATURE_HEADER: &str = "X-Millwright-Signature";

/// A duration like `"500ms"`, `"30s"`, `"5m"`, `"2h"`, `"1d"`: a whole number and one unit.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "invalid duration {s:?} (expected a whole number and a unit: ms, s, m, h or d, e.g. \"5m\")"
        )
    };
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = t.split_at(split);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let ms = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad()),
    };
    n.checked_mul(ms)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("duration {s:?} is too long"))
}

const TARGET_COMMON: &[&str] = &[
    "name",
    "min_priority",
    "areas",
    "states",
    "max_per_minute",
    "dedup",
    "queue",
];
const WEBHOOK_OWN: &[&str] = &[
    "url",
    "ca",
    "headers",
    "header_files",
    "secret_file",
    "signature_header",
    "timeout",
    "retries",
    "backoff",
    "backoff_max",
];
const MQTT_OWN: &[&str] = &["topic", "retain"];
const ESCALATION: EntryKeys = EntryKeys {
    id: "name",
    required: &["name", "after", "targets"],
    allowed: &[
        "name",
        "min_priority",
        "areas",
        "after",
        "repeat",
        "targets",
    ],
};

/// Header names that carry credentials: their values come from `header_files` only.
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
];

pub(crate) struct Checker;

impl Section for Checker {
    fn key(&self) -> &'static str {
        "notify"
    }

    fn check(&self, root: Table<'_, '_>, cx: &mut Cx<'_>) -> Box<dyn SectionValue> {
        let mut out = NotifySection::default();
        let Some(n) = cx.table(root, "notify", false, "[notify]") else {
            return Box::new(out);
        };
        let n = n.v;
        cx.unknown_keys(n, &["webhook", "mqtt", "escalation"]);
        let mut names = HashMap::new();
        for item in cx.array_of_tables(n, "webhook", "notify.webhook") {
            if let Some(t) = webhook(item, cx, &mut names) {
                out.targets.push(t);
            }
        }
        for item in cx.array_of_tables(n, "mqtt", "notify.mqtt") {
            if let Some(t) = mqtt(item, cx, &mut names) {
                out.targets.push(t);
            }
        }
        let mut esc_names = HashMap::new();
        for item in cx.array_of_tables(n, "escalation", "notify.escalation") {
            if let Some(e) = escalation(item, cx, &mut esc_names, &names, &out.targets) {
                out.escalations.push(e);
            }
        }
        Box::new(out)
    }
}

/// A target name: 1 to 64 characters of `A-Z a-z 0-9 _ - .` (it labels metrics and logs).
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
}

fn name_field(
    cx: &mut Cx<'_>,
    f: &Field<&str>,
    what: &str,
    label: &str,
    names: &mut HashMap<String, usize>,
) -> bool {
    if !valid_name(f.v) {
        cx.err(
            f.span.start,
            format!(
                "{what} {:?} in {label}: 1 to 64 characters of A-Z, a-z, 0-9, '_', '-', '.'",
                f.v
            ),
        );
        return false;
    }
    cx.define_once(what, f, names);
    true
}

fn duration(cx: &mut Cx<'_>, t: Table<'_, '_>, key: &str, min: Duration) -> Option<Duration> {
    let f = cx.string(t, key, false)?;
    match parse_duration(f.v) {
        Ok(d) if d >= min => Some(d),
        Ok(_) => {
            cx.err(
                f.span.start,
                format!(
                    "\"{key}\" in {} is {:?}: it must be at least {} ms",
                    t.name(),
                    f.v,
                    min.as_millis()
                ),
            );
            None
        }
        Err(e) => {
            cx.err(f.span.start, format!("\"{key}\" in {}: {e}", t.name()));
            None
        }
    }
}

fn strings(cx: &mut Cx<'_>, t: Table<'_, '_>, key: &str, what: &str) -> Option<Vec<String>> {
    let f = cx.array(t, key, false, &format!("array of {what}"))?;
    let mut out = Vec::new();
    for el in f.v {
        match el.as_str() {
            Some(s) => out.push(s.to_owned()),
            None => cx.wrong_elem_type(&format!("{key:?}"), t.name(), "string", el),
        }
    }
    Some(out)
}

fn priority(cx: &mut Cx<'_>, t: Table<'_, '_>, default: Priority) -> Priority {
    cx.choice(t, "min_priority", "priority", &Priority::NAMES)
        .map_or(default, |f| f.v)
}

/// The keys every target has.
fn common(cx: &mut Cx<'_>, t: Table<'_, '_>) -> (Filter, u32, Duration, usize) {
    let mut filter = Filter {
        min_priority: priority(cx, t, Priority::Low),
        ..Filter::default()
    };
    if let Some(a) = strings(cx, t, "areas", "area names") {
        filter.areas = a;
    }
    if let Some(f) = cx.array(t, "states", false, "array of alarm states") {
        let mut states = Vec::new();
        for el in f.v {
            match el.as_str() {
                Some(s) if STATES.contains(&s) => states.push(s.to_owned()),
                Some(s) => {
                    let hint = did_you_mean(s, STATES)
                        .map(|c| format!("; did you mean {c:?}?"))
                        .unwrap_or_default();
                    cx.err(
                        el.start(),
                        format!(
                            "unknown alarm state {s:?} in \"states\" of {}{hint} (expected one of: {})",
                            t.name(),
                            STATES.join(", ")
                        ),
                    );
                }
                None => cx.wrong_elem_type("\"states\"", t.name(), "string", el),
            }
        }
        // An empty list is allowed: the target then receives escalations only.
        filter.states = states;
    }
    let max_per_minute = cx
        .integer(t, "max_per_minute", false, 0..=100_000)
        .map_or(DEFAULT_MAX_PER_MINUTE, |f| f.v as u32);
    let dedup = if t.contains_key("dedup") {
        duration(cx, t, "dedup", Duration::ZERO).unwrap_or(DEFAULT_DEDUP)
    } else {
        DEFAULT_DEDUP
    };
    let queue = cx
        .integer(t, "queue", false, 1..=100_000)
        .map_or(DEFAULT_QUEUE, |f| f.v as usize);
    (filter, max_per_minute, dedup, queue)
}

fn did_you_mean<'a>(s: &str, options: &[&'a str]) -> Option<&'a str> {
    options
        .iter()
        .map(|o| (edit_distance(s, o), *o))
        .filter(|(d, o)| *d <= 2.max(o.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, o)| o)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Checks a target entry's name, unknown and required keys; returns its name.
fn head(
    cx: &mut Cx<'_>,
    t: Table<'_, '_>,
    name: Option<Field<&str>>,
    own: &[&str],
    required: &[&str],
    names: &mut HashMap<String, usize>,
) -> String {
    let allowed: Vec<&str> = TARGET_COMMON.iter().chain(own).copied().collect();
    cx.unknown_keys(t, &allowed);
    let req: Vec<&str> = ["name"].iter().chain(required).copied().collect();
    cx.require(t, &req);
    match name {
        Some(f) if name_field(cx, &f, "notification target name", t.name(), names) => {
            f.v.to_owned()
        }
        _ => String::new(),
    }
}

fn header_name_ok(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 64
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
}

/// `key = [{ name = "…", VALUE_KEY = "…" }, …]`: (header name, value, offset of the value).
fn header_list(
    cx: &mut Cx<'_>,
    t: Table<'_, '_>,
    key: &str,
    value_key: &str,
) -> Vec<(String, String, usize)> {
    let mut out = Vec::new();
    let label = t.name();
    for item in cx.array_of_tables(t, key, &format!("{label} {key}")) {
        let what = format!("element {} of \"{key}\" in {label}", item.index);
        let ht = item.table(&what);
        cx.unknown_keys(ht, &["name", value_key]);
        cx.require(ht, &["name", value_key]);
        let name = cx.string(ht, "name", false);
        let value = cx.string(ht, value_key, false);
        if let Some(n) = &name
            && !header_name_ok(n.v)
        {
            cx.err(
                n.span.start,
                format!(
                    "header name {:?} in {what} is not a valid HTTP header name",
                    n.v
                ),
            );
            continue;
        }
        if let (Some(n), Some(v)) = (name, value) {
            out.push((n.v.to_owned(), v.v.to_owned(), v.span.start));
        }
    }
    out
}

fn webhook(
    item: Item<'_, '_>,
    cx: &mut Cx<'_>,
    names: &mut HashMap<String, usize>,
) -> Option<TargetConfig> {
    let anon = format!("[[notify.webhook]] #{}", item.index);
    let name_f = cx.string(item.table(&anon), "name", false);
    let label = name_f
        .as_ref()
        .map_or_else(|| anon.clone(), |f| format!("notify.webhook {:?}", f.v));
    let t = item.table(&label);
    let name = head(cx, t, name_f, WEBHOOK_OWN, &["url"], names);
    let (filter, max_per_minute, dedup, queue) = common(cx, t);
    let endpoint = cx
        .string(t, "url", false)
        .and_then(|f| match parse_url(f.v) {
            Ok(e) => Some(e),
            Err(why) => {
                cx.err(f.span.start, format!("invalid \"url\" in {label}: {why}"));
                None
            }
        });
    let ca = cx.string(t, "ca", false).map(|f| PathBuf::from(f.v));
    if let (Some(e), Some(_)) = (&endpoint, &ca)
        && !e.https
        && let Some(at) = t.key_start("ca")
    {
        cx.err(at, format!("\"ca\" in {label} needs an https:// url"));
    }
    let mut headers = Vec::new();
    for (h, v, at) in header_list(cx, t, "headers", "value") {
        if SECRET_HEADERS.contains(&h.to_ascii_lowercase().as_str()) {
            cx.err(
                at,
                format!(
                    "header {h:?} in {label} carries a credential: put its value in a file and name it in \"header_files\""
                ),
            );
        } else if v.contains(['\r', '\n']) {
            cx.err(
                at,
                format!("header {h:?} in {label}: the value holds a line break"),
            );
        } else {
            headers.push((h, v));
        }
    }
    let header_files = header_list(cx, t, "header_files", "file")
        .into_iter()
        .map(|(h, v, _)| (h, PathBuf::from(v)))
        .collect();
    let secret_file = cx
        .string(t, "secret_file", false)
        .map(|f| PathBuf::from(f.v));
    let signature_header = match cx.string(t, "signature_header", false) {
        Some(f) if header_name_ok(f.v) => f.v.to_owned(),
        Some(f) => {
            cx.err(
                f.span.start,
                format!(
                    "\"signature_header\" in {label} is {:?}: not a valid HTTP header name",
                    f.v
                ),
            );
            DEFAULT_SIGNATURE_HEADER.to_owned()
        }
        None => DEFAULT_SIGNATURE_HEADER.to_owned(),
    };
    let timeout = duration(cx, t, "timeout", Duration::from_millis(10)).unwrap_or(DEFAULT_TIMEOUT);
    let retries = cx
        .integer(t, "retries", false, 0..=100)
        .map_or(DEFAULT_RETRIES, |f| f.v as u32);
    let backoff = duration(cx, t, "backoff", Duration::from_millis(1)).unwrap_or(DEFAULT_BACKOFF);
    let backoff_max =
        duration(cx, t, "backoff_max", Duration::from_millis(1)).unwrap_or(DEFAULT_BACKOFF_MAX);
    if backoff_max < backoff
        && let Some(at) = t.key_start("backoff_max")
    {
        cx.err(
            at,
            format!("\"backoff_max\" in {label} is shorter than \"backoff\""),
        );
    }
    Some(TargetConfig {
        name,
        kind: TargetKind::Webhook(WebhookConfig {
            endpoint: endpoint?,
            ca,
            headers,
            header_files,
            secret_file,
            signature_header,
            timeout,
            retry: Retry {
                retries,
                backoff,
                backoff_max,
            },
        }),
        filter,
        max_per_minute,
        dedup,
        queue,
    })
}

/// `http://host[:port][/path]` or `https://…`. No user info (credentials go in `header_files`).
pub fn parse_url(s: &str) -> Result<Endpoint, String> {
    let s = s.trim();
    let (https, rest) = if let Some(r) = s.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = s.strip_prefix("http://") {
        (false, r)
    } else {
        return Err("expected http://HOST[:PORT]/PATH or https://…".to_owned());
    };
    let (auth, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if auth.contains('@') {
        return Err(
            "user info in the url is not allowed (put credentials in \"header_files\")".to_owned(),
        );
    }
    if path.contains(|c: char| c.is_ascii_control() || c == ' ' || c == '#') {
        return Err("the path holds a space, a control character or a fragment".to_owned());
    }
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_owned()
    };
    let default = if https { 443 } else { 80 };
    let (host, port) = if let Some(r) = auth.strip_prefix('[') {
        let end = r.find(']').ok_or("unclosed '[' in the host")?;
        let host = &r[..end];
        let port = match &r[end + 1..] {
            "" => default,
            p => p
                .strip_prefix(':')
                .and_then(|p| p.parse::<u16>().ok())
                .ok_or("invalid port")?,
        };
        (host.to_owned(), port)
    } else {
        match auth.rsplit_once(':') {
            Some((h, p)) => (
                h.to_owned(),
                p.parse::<u16>()
                    .map_err(|_| format!("invalid port {p:?}"))?,
            ),
            None => (auth.to_owned(), default),
        }
    };
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._:".contains(c))
    {
        return Err(format!("invalid host {host:?}"));
    }
    if port == 0 {
        return Err("port 0".to_owned());
    }
    Ok(Endpoint {
        https,
        host,
        port,
        path,
    })
}

/// Checks a topic template: placeholders `{area}`, `{priority}`, `{alarm}`, no wildcards.
pub fn check_topic(t: &str) -> Result<(), String> {
    if t.is_empty() || t.len() > 512 {
        return Err("must have 1 to 512 characters".to_owned());
    }
    let mut rest = t;
    while let Some(i) = rest.find('{') {
        let Some(j) = rest[i..].find('}') else {
            return Err("unclosed '{'".to_owned());
        };
        let p = &rest[i + 1..i + j];
        if !["area", "priority", "alarm"].contains(&p) {
            return Err(format!(
                "unknown placeholder {{{p}}} (expected {{area}}, {{priority}} or {{alarm}})"
            ));
        }
        rest = &rest[i + j + 1..];
    }
    if t.contains(['+', '#', '\0']) {
        return Err("a topic to publish to holds no wildcard ('+', '#')".to_owned());
    }
    Ok(())
}

fn mqtt(
    item: Item<'_, '_>,
    cx: &mut Cx<'_>,
    names: &mut HashMap<String, usize>,
) -> Option<TargetConfig> {
    let anon = format!("[[notify.mqtt]] #{}", item.index);
    let name_f = cx.string(item.table(&anon), "name", false);
    let label = name_f
        .as_ref()
        .map_or_else(|| anon.clone(), |f| format!("notify.mqtt {:?}", f.v));
    let t = item.table(&label);
    let name = head(
        cx,
        t,
        name_f,
        &[CONNECTION_KEYS, MQTT_OWN].concat(),
        &["url", "topic"],
        names,
    );
    let (filter, max_per_minute, dedup, queue) = common(cx, t);
    let mut connection = ClientConfig::new(&format!("notify-{name}"), "", 1883);
    check_connection(t, cx, &label, &mut connection);
    let topic = cx
        .string(t, "topic", false)
        .and_then(|f| match check_topic(f.v) {
            Ok(()) => Some(f.v.to_owned()),
            Err(why) => {
                cx.err(f.span.start, format!("\"topic\" in {label}: {why}"));
                None
            }
        });
    let retain = cx.boolean(t, "retain", false).is_some_and(|f| f.v);
    Some(TargetConfig {
        name,
        kind: TargetKind::Mqtt(MqttConfig {
            connection,
            topic: topic?,
            retain,
        }),
        filter,
        max_per_minute,
        dedup,
        queue,
    })
}

fn escalation(
    item: Item<'_, '_>,
    cx: &mut Cx<'_>,
    names: &mut HashMap<String, usize>,
    defined: &HashMap<String, usize>,
    targets: &[TargetConfig],
) -> Option<EscalationConfig> {
    let anon = format!("[[notify.escalation]] #{}", item.index);
    let (id, label) = cx.entry_head(item.table(&anon), &ESCALATION, |n| {
        format!("notify.escalation {n:?}")
    });
    let t = item.table(&label);
    let mut name = String::new();
    if let Some(f) = id
        && name_field(cx, &f, "escalation name", &label, names)
    {
        name = f.v.to_owned();
    }
    let min_priority = priority(cx, t, Priority::Critical);
    let areas = strings(cx, t, "areas", "area names").unwrap_or_default();
    let after = duration(cx, t, "after", Duration::from_millis(1));
    let repeat = duration(cx, t, "repeat", Duration::from_millis(1));
    let mut idx = Vec::new();
    if let Some(f) = cx.array(t, "targets", false, "array of target names") {
        if f.v.is_empty() {
            cx.err(f.span.start, format!("\"targets\" in {label} is empty"));
        }
        // every defined name counts, also of a target with a mistake (reported already)
        let mut known: Vec<&str> = defined.keys().map(String::as_str).collect();
        known.sort_unstable();
        for el in f.v {
            match el.as_str() {
                Some(s) if known.contains(&s) => {
                    if let Some(i) = targets.iter().position(|t| t.name == s) {
                        idx.push(i);
                    }
                }
                Some(s) => {
                    let hint = did_you_mean(s, &known)
                        .map(|c| format!(" (did you mean {c:?}?)"))
                        .unwrap_or_default();
                    cx.err(
                            el.start(),
                            format!(
                                "unknown notification target {s:?} in \"targets\" of {label}{hint}; targets are the names of [[notify.webhook]] and [[notify.mqtt]] entries"
                            ),
                        );
                }
                None => cx.wrong_elem_type("\"targets\"", &label, "string", el),
            }
        }
    }
    Some(EscalationConfig {
        name,
        min_priority,
        areas,
        after: after?,
        repeat,
        targets: idx,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let e = parse_url("https://hooks.example.com/a/b?x=1").unwrap();
        assert_eq!(
            (e.https, e.host.as_str(), e.port, e.path.as_str()),
            (true, "hooks.example.com", 443, "/a/b?x=1")
        );
        assert_eq!(e.authority(), "hooks.example.com");
        let e = parse_url("http://[::1]:8081").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.path.as_str()),
            ("::1", 8081, "/")
        );
        assert_eq!(e.origin(), "http://[::1]:8081");
        assert_eq!(e.authority(), "[::1]:8081");
        for bad in [
            "ftp://x",
            "http://",
            "http://u:p@host/",
            "http://host:99999/",
            "http://host:0/",
            "http://ho st/",
            "http://host/a b",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
        // the path is not in Debug (it may carry a token)
        let e = parse_url("https://h/secret-token").unwrap();
        assert!(!format!("{e:?}").contains("secret-token"));
    }

    #[test]
    fn durations_and_topics() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("-5s").is_err());
        assert!(parse_duration("5 weeks").is_err());
        assert!(check_topic("alarms/{area}/{priority}/{alarm}").is_ok());
        assert!(check_topic("alarms/{zone}").is_err());
        assert!(check_topic("alarms/#").is_err());
        assert!(check_topic("alarms/{area").is_err());
        assert!(check_topic("").is_err());
    }

    #[test]
    fn priorities_order() {
        assert!(Priority::Critical > Priority::High);
        assert!(Priority::Medium > Priority::Low);
        assert_eq!(Priority::parse("critical"), Priority::Critical);
        assert_eq!(Priority::parse("whatever"), Priority::Low);
    }
}
