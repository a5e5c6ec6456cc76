//! Measures (prints, asserts nothing): the policy's evaluation rate (transitions per second
//! through `Engine::on_event`, no I/O), and webhook delivery through the real sink to an axum
//! receiver on loopback — notifications per second (one at a time, a new connection each) and
//! the latency from the transition's timestamp to the POST's arrival, p50/p99.
//!
//! `cargo run --release -p mw-notify --example notify_rate [N]` (default N = 5000).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use mw_bus::{Batch, BusBuilder, BusConfig, SourceRegistry};
use mw_model::{Event, EventKind, Value};
use mw_notify::config::NotifySection;
use mw_notify::policy::Engine;
use mw_notify::{NotifySink, SystemClock};

fn transition(ts: i64, i: usize) -> Event {
    Event::new(
        ts,
        "alarms/engine",
        EventKind::AlarmTransition {
            alarm: format!("a{i}"),
            tag: format!("acme/plant1/t{i}"),
            priority: "high".into(),
            area: "acme/plant1".into(),
            from: "normal".into(),
            to: "unack_active".into(),
            value: Some(Value::F64(1.0)),
            message: "limit exceeded".into(),
        },
    )
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5000);
    let arrivals: Arc<Mutex<Vec<i64>>> = Arc::default();
    let a = arrivals.clone();
    let app = Router::new()
        .route(
            "/hook",
            post(
                |State(a): State<Arc<Mutex<Vec<i64>>>>, body: Bytes| async move {
                    let now = mw_model::now_ns();
                    let j: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    let ts = j["ts"]
                        .as_str()
                        .and_then(mw_model::parse_rfc3339_ns)
                        .unwrap_or(now);
                    a.lock().unwrap().push(now - ts);
                    "ok"
                },
            ),
        )
        .with_state(a);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(l, app).await });

    let toml = format!(
        "[[notify.webhook]]\nname = \"bench\"\nurl = \"http://127.0.0.1:{port}/hook\"\nmax_per_minute = 0\ndedup = \"0s\"\nqueue = {}\n",
        n.max(1)
    );
    let reg = mw_bus::config_registry(&[&mw_notify::NotifyComponent as &dyn mw_bus::Component]);
    let cfg = reg.parse(&toml, "bench.toml").unwrap();
    let section = cfg.section::<NotifySection>().unwrap().clone();

    // 1. the policy alone
    let mut engine = Engine::new(&section, "bench", "host", 0);
    let evals = 1_000_000;
    let events: Vec<Event> = (0..1000).map(|i| transition(0, i)).collect();
    let t = Instant::now();
    let mut out = 0usize;
    for k in 0..evals {
        out += engine.on_event(&events[k % 1000], k as i64).out.len();
    }
    let dt = t.elapsed().as_secs_f64();
    println!(
        "policy: {evals} transitions in {dt:.3} s = {:.0} /s ({out} notifications)",
        evals as f64 / dt
    );

    // 2. webhook delivery through the sink
    let sink = NotifySink::build(&section, "bench", 1024, Box::new(SystemClock)).unwrap();
    let mut bus = BusBuilder::new(BusConfig::default());
    bus.sink(Box::new(sink));
    let p = bus.publisher();
    let running = bus.start(&SourceRegistry::new());
    let t = Instant::now();
    for i in 0..n {
        p.send(Batch::from_events(vec![transition(mw_model::now_ns(), i)]))
            .await
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    while arrivals.lock().unwrap().len() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let dt = t.elapsed().as_secs_f64();
    let mut lat = arrivals.lock().unwrap().clone();
    lat.sort_unstable();
    let pct = |q: f64| lat[((lat.len() as f64 - 1.0) * q) as usize] as f64 / 1e6;
    println!(
        "webhook: {} of {n} delivered in {dt:.2} s = {:.0} /s; transition -> arrival p50 {:.2} ms, p99 {:.2} ms (queued behind each other)",
        lat.len(),
        lat.len() as f64 / dt,
        pct(0.5),
        pct(0.99)
    );
    // one at a time, unloaded: the latency of a single notification
    let mut single = Vec::new();
    for i in 0..200 {
        let before = arrivals.lock().unwrap().len();
        p.send(Batch::from_events(vec![transition(
            mw_model::now_ns(),
            n + i,
        )]))
        .await
        .unwrap();
        while arrivals.lock().unwrap().len() == before {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        single.push(*arrivals.lock().unwrap().last().unwrap());
    }
    single.sort_unstable();
    println!(
        "webhook, one at a time (200): transition -> arrival p50 {:.2} ms, p99 {:.2} ms",
        single[100] as f64 / 1e6,
        single[197] as f64 / 1e6
    );
    drop(p);
    running.stop(Duration::from_secs(10)).await;
}
