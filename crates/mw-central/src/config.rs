//! The `[central]` section of a `millwright central` config file.
//!
//! ```toml
//! [central]
//! url = "nats://10.0.0.5:4222"             # required; several: "nats://a:4222,nats://b:4222"
//! user = "central"                         # with password_file; or token_file; as [[uplink]]
//! password_file = "/etc/millwright/nats-password"
//! tls = { ca = "ca.pem" }                  # optional (cert + key: client authentication)
//! streams = ["MW_PLANT1", "MW_PLANT2"]     # required: the edges' streams
//! filter_subject = "mw.plant1.>"           # optional: only these subjects (one stream only)
//! consumer = "millwright-central"          # the durable pull consumer every replica shares
//! batch = 500                              # messages per fetch (and per write)
//! ack_wait_s = 30                          # redelivered if not acknowledged within this
//! max_deliver = 0                          # 0: redeliver until written; N: give up after N
//! victoria_metrics = "http://127.0.0.1:8428"          # required
//! postgres = "host=127.0.0.1 port=5432 user=mw dbname=millwright"  # optional: events
//! postgres_password_file = "/etc/millwright/pg-password"
//! postgres_tls = { ca = "pg-ca.pem" }    # optional: TLS to PostgreSQL, its certificate verified
//! metrics_address = "127.0.0.1:9465"      # optional: GET /metrics (loopback only)
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use mw_config::{Cx, Section, SectionValue, Table};
pub use mw_uplink::config::{Auth, TlsFiles};

/// The checked `[central]` section (`None` when the file has none).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CentralSection(pub Option<CentralConfig>);

#[derive(Clone, Debug, PartialEq)]
pub struct CentralConfig {
    pub urls: Vec<String>,
    pub auth: Auth,
    pub tls: Option<TlsFiles>,
    pub streams: Vec<String>,
    pub filter_subject: Option<String>,
    pub consumer: String,
    pub batch: usize,
    pub ack_wait: Duration,
    /// 0: unlimited.
    pub max_deliver: i64,
    /// `http://HOST:PORT` (a path prefix is allowed: `http://h:8428/vm`).
    pub victoria_metrics: VmUrl,
    /// A tokio-postgres key=value connection string without a password.
    pub postgres: Option<String>,
    pub postgres_password_file: Option<PathBuf>,
    /// TLS to PostgreSQL (`sslmode=require`, the server's certificate verified against `ca`
    /// and its host name; `cert` + `key`: client authentication).
    pub postgres_tls: Option<TlsFiles>,
    pub metrics_address: Option<SocketAddr>,
}

pub use mw_uplink::vm::VmUrl;

pub(crate) struct Checker;

const KEYS: &[&str] = &[
    "url",
    "user",
    "password_file",
    "token_file",
    "tls",
    "streams",
    "filter_subject",
    "consumer",
    "batch",
    "ack_wait_s",
    "max_deliver",
    "victoria_metrics",
    "postgres",
    "postgres_password_file",
    "postgres_tls",
    "metrics_address",
];

impl Section for Checker {
    fn key(&self) -> &'static str {
        "central"
    }

    fn check(&self, root: Table<'_, '_>, cx: &mut Cx<'_>) -> Box<dyn SectionValue> {
        let Some(f) = cx.table(root, "central", false, "[central]") else {
            return Box::new(CentralSection(None));
        };
        Box::new(CentralSection(Some(central(f.v, f.span.start, cx))))
    }
}

fn token_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 200
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn path(cx: &mut Cx<'_>, t: Table<'_, '_>, key: &str) -> Option<PathBuf> {
    let f = cx.string(t, key, false)?;
    if f.v.trim().is_empty() {
        cx.err(
            f.span.start,
            format!("{key:?} in [central] is empty; give a file path"),
        );
        return None;
    }
    Some(PathBuf::from(f.v))
}

fn central(t: Table<'_, '_>, start: usize, cx: &mut Cx<'_>) -> CentralConfig {
    cx.unknown_keys(t, KEYS);
    cx.require(t, &["url", "streams", "victoria_metrics"]);
    let mut c = CentralConfig {
        urls: Vec::new(),
        auth: Auth::None,
        tls: None,
        streams: Vec::new(),
        filter_subject: None,
        consumer: "millwright-central".into(),
        batch: 500,
        ack_wait: Duration::from_secs(30),
        max_deliver: 0,
        victoria_metrics: VmUrl {
            authority: String::new(),
            prefix: String::new(),
        },
        postgres: None,
        postgres_password_file: None,
        postgres_tls: None,
        metrics_address: None,
    };
    if let Some(f) = cx.string(t, "url", false) {
        for u in f.v.split(',').map(str::trim) {
            match mw_uplink::config::check_url(u) {
                Ok(()) => c.urls.push(u.to_owned()),
                Err(why) => cx.err(f.span.start, format!("invalid \"url\" in [central]: {why}")),
            }
        }
    }
    let user = cx.string(t, "user", false);
    let password = path(cx, t, "password_file");
    let token = path(cx, t, "token_file");
    c.auth = match (user, password, token) {
        (None, None, None) => Auth::None,
        (Some(u), Some(p), None) if !u.v.is_empty() => Auth::UserPassword {
            user: u.v.to_owned(),
            password_file: p,
        },
        (None, None, Some(tk)) => Auth::Token { token_file: tk },
        _ => {
            cx.err(
                start,
                "[central] authenticates with \"user\" + \"password_file\" or with \"token_file\" alone",
            );
            Auth::None
        }
    };
    c.tls = mw_uplink::config::tls_table(t, cx, "tls", "[central]");
    c.postgres_tls = mw_uplink::config::tls_table(t, cx, "postgres_tls", "[central]");
    if c.postgres_tls.is_some() && !t.contains_key("postgres") {
        cx.err(
            t.key_start("postgres_tls").unwrap_or(t.start()),
            "\"postgres_tls\" in [central] without \"postgres\"",
        );
    }
    if let Some(f) = cx.array(t, "streams", false, "array of stream names") {
        if f.v.is_empty() {
            cx.err(
                f.span.start,
                "\"streams\" in [central] is empty; name at least one stream",
            );
        }
        for el in f.v {
            match el.as_str() {
                Some(s) if token_ok(s) => {
                    if c.streams.iter().any(|x| x == s) {
                        cx.err(
                            el.start(),
                            format!("stream {s:?} is listed twice in [central]"),
                        );
                    }
                    c.streams.push(s.to_owned());
                }
                Some(s) => cx.err(
                    el.start(),
                    format!("invalid stream name {s:?} in [central] (use A-Z a-z 0-9 _ -)"),
                ),
                None => cx.wrong_elem_type("element of \"streams\"", "[central]", "string", el),
            }
        }
    }
    if let Some(f) = cx.string(t, "filter_subject", false) {
        if f.v.is_empty() || f.v.contains(char::is_whitespace) {
            cx.err(
                f.span.start,
                format!("invalid \"filter_subject\" {:?} in [central]", f.v),
            );
        } else if c.streams.len() > 1 {
            cx.err(
                f.span.start,
                "\"filter_subject\" in [central] needs exactly one stream in \"streams\"",
            );
        } else {
            c.filter_subject = Some(f.v.to_owned());
        }
    }
    if let Some(f) = cx.string(t, "consumer", false) {
        if token_ok(f.v) {
            c.consumer = f.v.to_owned();
        } else {
            cx.err(
                f.span.start,
                format!(
                    "invalid \"consumer\" {:?} in [central] (use A-Z a-z 0-9 _ -)",
                    f.v
                ),
            );
        }
    }
    if let Some(f) = cx.integer(t, "batch", false, 1..=10_000) {
        c.batch = f.v as usize;
    }
    if let Some(f) = cx.integer(t, "ack_wait_s", false, 1..=3600) {
        c.ack_wait = Duration::from_secs(f.v as u64);
    }
    if let Some(f) = cx.integer(t, "max_deliver", false, 0..=1_000_000) {
        c.max_deliver = f.v as i64;
    }
    if let Some(f) = cx.string(t, "victoria_metrics", false) {
        match VmUrl::parse(f.v) {
            Ok(u) => c.victoria_metrics = u,
            Err(why) => cx.err(
                f.span.start,
                format!("invalid \"victoria_metrics\" in [central]: {why}"),
            ),
        }
    }
    if let Some(f) = cx.string(t, "postgres", false) {
        if f.v.to_ascii_lowercase().contains("password") {
            cx.err(
                f.span.start,
                "\"postgres\" in [central] holds a password; put it in \"postgres_password_file\" (the string is not repeated here)",
            );
        } else if let Err(e) = f.v.parse::<tokio_postgres::Config>() {
            cx.err(
                f.span.start,
                format!("invalid \"postgres\" in [central]: {e}"),
            );
        } else {
            c.postgres = Some(f.v.to_owned());
        }
    }
    c.postgres_password_file = path(cx, t, "postgres_password_file");
    if c.postgres_password_file.is_some() && !t.contains_key("postgres") {
        cx.err(
            start,
            "\"postgres_password_file\" in [central] without \"postgres\"",
        );
    }
    if let Some(f) = cx.string(t, "metrics_address", false) {
        match f.v.parse::<SocketAddr>() {
            Ok(a) if a.ip().is_loopback() => c.metrics_address = Some(a),
            Ok(a) => cx.err(
                f.span.start,
                format!("\"metrics_address\" {a} in [central] is not a loopback address; /metrics has no authentication (put a proxy in front)"),
            ),
            Err(_) => cx.err(
                f.span.start,
                format!("invalid \"metrics_address\" {:?} in [central] (expected IP:PORT)", f.v),
            ),
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> Result<Option<CentralConfig>, String> {
        crate::config_registry()
            .parse(src, "c.toml")
            .map(|c| c.section::<CentralSection>().cloned().unwrap().0)
            .map_err(|d| d.to_string())
    }

    #[test]
    fn every_key_is_read() {
        let c = parse(
            r#"[central]
url = "nats://127.0.0.1:4222, nats://127.0.0.2:4222"
user = "c"
password_file = "/p"
streams = ["MW_A"]
filter_subject = "mw.a.>"
consumer = "cen"
batch = 100
ack_wait_s = 5
max_deliver = 9
victoria_metrics = "http://127.0.0.1:8428/"
postgres = "host=127.0.0.1 port=5432 user=mw dbname=mw"
postgres_password_file = "/pg"
metrics_address = "127.0.0.1:9465"
"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.urls.len(), 2);
        assert_eq!(c.streams, ["MW_A"]);
        assert_eq!(c.filter_subject.as_deref(), Some("mw.a.>"));
        assert_eq!(
            (c.consumer.as_str(), c.batch, c.max_deliver),
            ("cen", 100, 9)
        );
        assert_eq!(c.ack_wait, Duration::from_secs(5));
        assert_eq!(c.victoria_metrics.authority, "127.0.0.1:8428");
        assert_eq!(c.victoria_metrics.prefix, "");
        assert!(matches!(c.auth, Auth::UserPassword { .. }));
        assert!(c.postgres.is_some() && c.postgres_password_file.is_some());
        assert!(c.metrics_address.is_some());
    }

    #[test]
    fn defaults_and_absence() {
        assert_eq!(parse("").unwrap(), None);
        let c = parse(
            "[central]\nurl = \"nats://h:1\"\nstreams = [\"S\"]\nvictoria_metrics = \"http://h:2\"\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (c.consumer.as_str(), c.batch, c.max_deliver),
            ("millwright-central", 500, 0)
        );
        assert_eq!(c.postgres, None);
    }

    #[test]
    fn every_problem_is_reported_at_its_place() {
        let e = parse(
            r#"[central]
url = "nats://u:secret@h:1"
streams = ["a.b", 3]
consumer = "x y"
batch = 0
victoria_metrics = "https://vm:8428"
postgres = "host=h password=hunter2"
metrics_address = "0.0.0.0:9"
colour = "red"
"#,
        )
        .unwrap_err();
        for want in [
            "c.toml:2:7: invalid \"url\" in [central]: the URL carries credentials",
            "c.toml:3:12: invalid stream name \"a.b\"",
            "c.toml:4:12: invalid \"consumer\"",
            "c.toml:5:9: \"batch\" in [central] is 0, out of range",
            "c.toml:6:20: invalid \"victoria_metrics\" in [central]: \"https://vm:8428\" is not an http:// URL",
            "c.toml:7:12: \"postgres\" in [central] holds a password",
            "c.toml:8:19: \"metrics_address\" 0.0.0.0:9 in [central] is not a loopback address",
            "colour",
        ] {
            assert!(e.contains(want), "missing {want:?} in:\n{e}");
        }
        assert!(!e.contains("hunter2") && !e.contains("secret"), "{e}");
        let e = parse("[central]\nbatch = 5\n").unwrap_err();
        for k in ["url", "streams", "victoria_metrics"] {
            assert!(e.contains(&format!("missing required key \"{k}\"")), "{e}");
        }
    }
}
