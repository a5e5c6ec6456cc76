//! Webhooks against a real HTTP receiver (axum on 127.0.0.1:0, started here): retries then
//! success, the body's fields, the HMAC signature and the header read from a file; a 4xx not
//! retried; dedup and the rate limit's summary; escalation fired once and cancelled by the
//! acknowledgement. Time is a `ManualClock` where the policy depends on it; the bus is the real
//! one.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use mw_bus::{Batch, BusBuilder, BusConfig, Publisher, RunningBus, SourceRegistry};
use mw_model::{Event, EventKind, Value};
use mw_notify::config::NotifySection;
use mw_notify::{ManualClock, NotifySink};

const S: i64 = 1_000_000_000;
const T0: i64 = 1_800_000_000 * S;

/// The receiver: answers each request with the next scripted status (200 when none is left)
/// and records the bodies it answered 2xx, with their headers.
#[derive(Clone)]
struct Receiver {
    script: Arc<Mutex<VecDeque<u16>>>,
    hits: Arc<Mutex<usize>>,
    /// `/hook` answers only once it gets a permit here (`open` gives plenty).
    gate: Arc<tokio::sync::Semaphore>,
    got: Arc<Mutex<Vec<(HeaderMap, serde_json::Value, Bytes)>>>,
    /// Bodies posted to `/probe` (a second target, used to know what the sink has processed).
    probe: Arc<Mutex<Vec<serde_json::Value>>>,
}

async fn probe(State(r): State<Receiver>, body: Bytes) -> StatusCode {
    let j = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    r.probe.lock().unwrap().push(j);
    StatusCode::OK
}

async fn hook(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    *r.hits.lock().unwrap() += 1;
    if let Ok(p) = r.gate.acquire().await {
        p.forget();
    }
    let status = r.script.lock().unwrap().pop_front().unwrap_or(200);
    if status == 200 {
        let j = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        r.got.lock().unwrap().push((headers, j, body));
    }
    StatusCode::from_u16(status).unwrap()
}

impl Receiver {
    async fn start(script: &[u16]) -> (Receiver, u16) {
        Receiver::start_on(script, 0).await
    }

    /// [`Receiver::start`] on a given port (0: any).
    async fn start_on(script: &[u16], port: u16) -> (Receiver, u16) {
        let r = Receiver::start_gated_on(script, port).await;
        r.0.open();
        r
    }

    /// A receiver whose `/hook` holds every request until [`Receiver::open`].
    async fn start_gated(script: &[u16]) -> (Receiver, u16) {
        Receiver::start_gated_on(script, 0).await
    }

    async fn start_gated_on(script: &[u16], port: u16) -> (Receiver, u16) {
        let r = Receiver {
            script: Arc::default(),
            hits: Arc::default(),
            gate: Arc::new(tokio::sync::Semaphore::new(0)),
            got: Arc::default(),
            probe: Arc::default(),
        };
        r.script.lock().unwrap().extend(script);
        let app = Router::new()
            .route("/hook", post(hook))
            .route("/probe", post(probe))
            .with_state(r.clone());
        let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(l, app).await });
        (r, port)
    }

    fn open(&self) {
        self.gate.add_permits(1 << 20);
    }

    /// Waits (bounded) until `/hook` was hit `n` times.
    async fn wait_hits(&self, n: usize) {
        for _ in 0..500 {
            if self.hits() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{n} hits expected, got {}", self.hits());
    }

    fn bodies(&self) -> Vec<serde_json::Value> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|(_, j, _)| j.clone())
            .collect()
    }

    fn hits(&self) -> usize {
        *self.hits.lock().unwrap()
    }

    /// Waits (bounded) until `n` bodies arrived; then returns them.
    async fn wait_for(&self, n: usize) -> Vec<serde_json::Value> {
        for _ in 0..500 {
            if self.got.lock().unwrap().len() >= n {
                return self.bodies();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{n} bodies expected, got {:?}", self.bodies());
    }

    /// Waits (bounded) until the probe target got `n` bodies.
    async fn wait_probe(&self, n: usize) {
        for _ in 0..500 {
            if self.probe.lock().unwrap().len() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{n} probe bodies expected");
    }
}

/// A second target that takes only `out_of_service` transitions: sending one and waiting for
/// it shows the sink processed everything published before.
fn probe_target(port: u16) -> String {
    format!(
        "[[notify.webhook]]\nname = \"probe\"\nurl = \"http://127.0.0.1:{port}/probe\"\nstates = [\"out_of_service\"]\ndedup = \"0s\"\nmax_per_minute = 0\n"
    )
}

async fn sync(p: &Publisher, rx: &Receiver, n: usize, ts: i64) {
    send(
        p,
        transition(ts, &format!("probe{n}"), "low", "normal", "out_of_service"),
    )
    .await;
    rx.wait_probe(n).await;
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mw-notify-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn section(toml: &str) -> NotifySection {
    let reg = mw_bus::config_registry(&[&mw_notify::NotifyComponent as &dyn mw_bus::Component]);
    let cfg = reg.parse(toml, "t.toml").unwrap_or_else(|d| panic!("{d}"));
    cfg.section::<NotifySection>().unwrap().clone()
}

fn start(section: &NotifySection, clock: &Arc<ManualClock>) -> (Publisher, RunningBus) {
    let sink = NotifySink::build(section, "Plant 1", 64, Box::new(clock.clone()))
        .unwrap()
        .tick_every(Duration::from_secs(3600));
    let mut bus = BusBuilder::new(BusConfig::default());
    bus.sink(Box::new(sink));
    let p = bus.publisher();
    (p, bus.start(&SourceRegistry::new()))
}

fn transition(ts: i64, alarm: &str, priority: &str, from: &str, to: &str) -> Event {
    Event::new(
        ts,
        "alarms/engine",
        EventKind::AlarmTransition {
            alarm: alarm.into(),
            tag: format!("acme/plant1/gas/{alarm}/lel"),
            priority: priority.into(),
            area: "gas".into(),
            from: from.into(),
            to: to.into(),
            value: Some(Value::F64(67.6)),
            message: format!("{alarm} at 67.6 %LEL"),
        },
    )
    .for_asset(format!("acme/plant1/gas/{alarm}"))
}

async fn send(p: &Publisher, e: Event) {
    p.send(Batch::from_events(vec![e])).await.unwrap();
}

#[tokio::test]
async fn retries_then_delivers_a_signed_body() {
    let (rx, port) = Receiver::start(&[500, 503]).await;
    let dir = temp_dir("signed");
    std::fs::write(dir.join("key"), "hook-secret\n").unwrap();
    std::fs::write(dir.join("auth"), "Bearer abc123\n").unwrap();
    let sec = section(&format!(
        r#"
[[notify.webhook]]
name = "ops"
url = "http://127.0.0.1:{port}/hook"
secret_file = "{key}"
header_files = [{{ name = "Authorization", file = "{auth}" }}]
headers = [{{ name = "X-Team", value = "gas" }}]
retries = 3
backoff = "10ms"
backoff_max = "50ms"
"#,
        key = dir.join("key").display(),
        auth = dir.join("auth").display()
    ));
    let clock = Arc::new(ManualClock::new(T0));
    let (p, running) = start(&sec, &clock);
    send(
        &p,
        transition(T0, "gd1_lel_hihi", "critical", "normal", "unack_active"),
    )
    .await;
    let got = rx.wait_for(1).await;
    assert_eq!(rx.hits(), 3, "two 500s, then the delivery");
    let j = &got[0];
    assert_eq!(j["type"], "alarm");
    assert_eq!(j["alarm"], "gd1_lel_hihi");
    assert_eq!(j["tag"], "acme/plant1/gas/gd1_lel_hihi/lel");
    assert_eq!(j["asset"], "acme/plant1/gas/gd1_lel_hihi");
    assert_eq!(j["area"], "gas");
    assert_eq!(j["priority"], "critical");
    assert_eq!(
        (j["from"].as_str(), j["to"].as_str()),
        (Some("normal"), Some("unack_active"))
    );
    assert_eq!(j["value"], 67.6);
    assert_eq!(j["message"], "gd1_lel_hihi at 67.6 %LEL");
    assert_eq!(j["ts"], mw_model::format_rfc3339_ns(T0));
    assert_eq!(j["site"], "Plant 1");
    assert_eq!(j["host"], mw_notify::sink::host_name());
    assert_eq!(j["escalation"], 0);
    let (headers, _, raw) = rx.got.lock().unwrap()[0].clone();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"hook-secret");
    let sig = headers["x-millwright-signature"].to_str().unwrap();
    let hex = sig.strip_prefix("sha256=").unwrap();
    let tag: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    ring::hmac::verify(&key, &raw, &tag).expect("the signature verifies over the body");
    assert_eq!(headers["authorization"], "Bearer abc123");
    assert_eq!(headers["x-team"], "gas");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(
        headers["x-millwright-notification"],
        j["id"].as_str().unwrap()
    );
    drop(p);
    assert!(running.stop(Duration::from_secs(10)).await);
}

#[tokio::test]
async fn a_client_error_is_not_retried() {
    let (rx, port) = Receiver::start(&[400]).await;
    let sec = section(&format!(
        "[[notify.webhook]]\nname = \"ops\"\nurl = \"http://127.0.0.1:{port}/hook\"\nbackoff = \"10ms\"\n"
    ));
    let clock = Arc::new(ManualClock::new(T0));
    let (p, running) = start(&sec, &clock);
    send(&p, transition(T0, "a", "high", "normal", "unack_active")).await;
    send(&p, transition(T0, "b", "high", "normal", "unack_active")).await;
    let got = rx.wait_for(1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["alarm"], "b");
    assert_eq!(rx.hits(), 2, "the 400 was final");
    drop(p);
    assert!(running.stop(Duration::from_secs(10)).await);
}

#[tokio::test]
async fn duplicates_dropped_and_the_rate_limit_summarised() {
    let (rx, port) = Receiver::start(&[]).await;
    let sec = section(&format!(
        "[[notify.webhook]]\nname = \"ops\"\nurl = \"http://127.0.0.1:{port}/hook\"\nmax_per_minute = 3\ndedup = \"1m\"\n{}",
        probe_target(port)
    ));
    let clock = Arc::new(ManualClock::new(T0));
    let (p, running) = start(&sec, &clock);
    send(&p, transition(T0, "a", "high", "normal", "unack_active")).await;
    send(&p, transition(T0, "a", "high", "ack_active", "normal")).await;
    // chattering: the same alarm active again within a minute
    send(&p, transition(T0, "a", "high", "normal", "unack_active")).await;
    send(&p, transition(T0, "b", "high", "normal", "unack_active")).await;
    // bucket empty now (3 sent): these two are suppressed
    send(&p, transition(T0, "c", "high", "normal", "unack_active")).await;
    send(&p, transition(T0, "d", "high", "normal", "unack_active")).await;
    sync(&p, &rx, 1, T0).await;
    // 20 s later one token is back: the summary goes out
    clock.advance(Duration::from_secs(20));
    sync(&p, &rx, 2, T0 + 20 * S).await;
    let got = rx.wait_for(4).await;
    let seen: Vec<(String, String)> = got
        .iter()
        .map(|j| {
            (
                j["type"].as_str().unwrap().to_owned(),
                j["alarm"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("alarm".to_owned(), "a".to_owned()),
            ("alarm".to_owned(), "a".to_owned()),
            ("alarm".to_owned(), "b".to_owned()),
            ("suppressed".to_owned(), String::new()),
        ]
    );
    assert_eq!(got[3]["suppressed"], 2);
    assert_eq!(
        got[3]["message"],
        "2 more notifications suppressed by the rate limit"
    );
    drop(p);
    assert!(running.stop(Duration::from_secs(10)).await);
    assert_eq!(rx.bodies().len(), 4);
}

#[tokio::test]
async fn escalation_fires_once_and_the_ack_cancels_it() {
    let (rx, port) = Receiver::start(&[]).await;
    let sec = section(&format!(
        r#"
[[notify.webhook]]
name = "ops"
url = "http://127.0.0.1:{port}/hook"
states = ["unack_active"]
dedup = "0s"
{probe}
[[notify.escalation]]
name = "critical-unacked"
after = "5m"
repeat = "1m"
targets = ["ops"]
"#,
        probe = probe_target(port)
    ));
    let clock = Arc::new(ManualClock::new(T0));
    let (p, running) = start(&sec, &clock);
    let at = |s: i64| {
        clock.set(T0 + s * S);
        T0 + s * S
    };
    send(
        &p,
        transition(at(0), "g", "critical", "normal", "unack_active"),
    )
    .await;
    send(&p, transition(at(0), "h", "high", "normal", "unack_active")).await;
    sync(&p, &rx, 1, at(0)).await;
    // the sink ticks after each delivery, at the clock's time
    sync(&p, &rx, 2, at(299)).await;
    sync(&p, &rx, 3, at(300)).await;
    rx.wait_for(3).await;
    send(
        &p,
        transition(at(330), "g", "critical", "unack_active", "ack_active"),
    )
    .await;
    sync(&p, &rx, 4, at(330)).await;
    // the repeat would have been due at 360 s
    send(
        &p,
        transition(at(1000), "m2", "low", "normal", "unack_active"),
    )
    .await;
    let got = rx.wait_for(4).await;
    let seen: Vec<(&str, &str, u64)> = got
        .iter()
        .map(|j| {
            (
                j["type"].as_str().unwrap(),
                j["alarm"].as_str().unwrap(),
                j["escalation"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("alarm", "g", 0),
            ("alarm", "h", 0),
            ("escalation", "g", 1),
            ("alarm", "m2", 0),
        ],
        "the high-priority alarm never escalates; the acknowledged one stops"
    );
    assert_eq!(got[2]["escalation_name"], "critical-unacked");
    assert_eq!(got[2]["priority"], "critical");
    assert_eq!(got[2]["to"], "unack_active");
    assert_eq!(got[2]["ts"], mw_model::format_rfc3339_ns(T0 + 300 * S));
    drop(p);
    assert!(running.stop(Duration::from_secs(10)).await);
    assert_eq!(rx.bodies().len(), 4);
}

#[tokio::test]
async fn a_stuck_receiver_never_holds_the_bus_and_critical_goes_first() {
    let (rx, port) = Receiver::start_gated(&[]).await;
    let sec = section(&format!(
        "[[notify.webhook]]\nname = \"ops\"\nurl = \"http://127.0.0.1:{port}/hook\"\ntimeout = \"60s\"\nqueue = 4\nmax_per_minute = 0\n{}",
        probe_target(port)
    ));
    let clock = Arc::new(ManualClock::new(T0));
    let (p, running) = start(&sec, &clock);
    // the first one is in flight, held by the receiver
    send(&p, transition(T0, "low0", "low", "normal", "unack_active")).await;
    rx.wait_hits(1).await;
    // far more than the target's queue: every publish goes through at once
    for i in 1..=50 {
        send(
            &p,
            transition(T0, &format!("low{i}"), "low", "normal", "unack_active"),
        )
        .await;
    }
    send(
        &p,
        transition(T0, "gas", "critical", "normal", "unack_active"),
    )
    .await;
    sync(&p, &rx, 1, T0).await;
    rx.open();
    let got = rx.wait_for(5).await;
    let alarms: Vec<&str> = got.iter().map(|j| j["alarm"].as_str().unwrap()).collect();
    // the queue (4) kept the critical one and the newest others; the critical one went first
    assert_eq!(alarms, ["low0", "gas", "low48", "low49", "low50"]);
    drop(p);
    assert!(running.stop(Duration::from_secs(10)).await);
    assert_eq!(rx.bodies().len(), 5);
}

#[tokio::test]
async fn a_receiver_that_is_down_gets_the_notification_once_it_listens() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sec = section(&format!(
        "[[notify.webhook]]\nname = \"ops\"\nurl = \"http://127.0.0.1:{port}/hook\"\nretries = 50\nbackoff = \"20ms\"\nbackoff_max = \"100ms\"\n"
    ));
    let clock = Arc::new(ManualClock::new(T0));
    let (p, running) = start(&sec, &clock);
    send(
        &p,
        transition(T0, "g", "critical", "normal", "unack_active"),
    )
    .await;
    // connection refused for a while (the sink retries with backoff), then the receiver is up
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (rx, _) = Receiver::start_on(&[], port).await;
    let got = rx.wait_for(1).await;
    assert_eq!(got[0]["alarm"], "g");
    assert_eq!(rx.hits(), 1, "delivered once");
    drop(p);
    assert!(running.stop(Duration::from_secs(10)).await);
}
