//! One log line per failure episode: a webhook answering 500 several times in a row, retried,
//! logs one warning; the delivery that works again logs one line; a later failure starts a new
//! episode. Log lines are captured from the real `tracing` output (a subscriber for this test
//! binary only).

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use mw_bus::{Batch, BusBuilder, BusConfig, SourceRegistry};
use mw_model::{Event, EventKind};
use mw_notify::config::NotifySection;
use mw_notify::{ManualClock, NotifySink};

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    fn lines(&self, needle: &str) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }
}

#[derive(Clone, Default)]
struct Rx {
    script: Arc<Mutex<Vec<u16>>>,
    ok: Arc<Mutex<usize>>,
}

async fn hook(State(r): State<Rx>) -> StatusCode {
    let s = {
        let mut v = r.script.lock().unwrap();
        if v.is_empty() { 200 } else { v.remove(0) }
    };
    if s == 200 {
        *r.ok.lock().unwrap() += 1;
    }
    StatusCode::from_u16(s).unwrap()
}

fn transition(alarm: &str) -> Event {
    Event::new(
        0,
        "alarms/engine",
        EventKind::AlarmTransition {
            alarm: alarm.into(),
            tag: "acme/t".into(),
            priority: "high".into(),
            area: "a".into(),
            from: "normal".into(),
            to: "unack_active".into(),
            value: None,
            message: "m".into(),
        },
    )
}

#[tokio::test]
async fn one_warning_per_failure_episode() {
    let log = Log::default();
    let w = log.clone();
    tracing_subscriber::fmt()
        .with_writer(move || w.clone())
        .with_ansi(false)
        .init();
    let rx = Rx::default();
    rx.script.lock().unwrap().extend([500, 500, 500]);
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(rx.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(l, app).await });
    let toml = format!(
        "[[notify.webhook]]\nname = \"ops\"\nurl = \"http://127.0.0.1:{port}/hook\"\nretries = 5\nbackoff = \"5ms\"\nbackoff_max = \"10ms\"\nmax_per_minute = 0\n"
    );
    let reg = mw_bus::config_registry(&[&mw_notify::NotifyComponent as &dyn mw_bus::Component]);
    let cfg = reg.parse(&toml, "t.toml").unwrap();
    let sec = cfg.section::<NotifySection>().unwrap();
    let sink = NotifySink::build(sec, "s", 16, Box::new(Arc::new(ManualClock::new(0)))).unwrap();
    let mut bus = BusBuilder::new(BusConfig::default());
    bus.sink(Box::new(sink));
    let p = bus.publisher();
    let running = bus.start(&SourceRegistry::new());
    let wait_ok = |n: usize| {
        let rx = rx.clone();
        async move {
            for _ in 0..500 {
                if *rx.ok.lock().unwrap() >= n {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            panic!("{n} deliveries expected");
        }
    };
    p.send(Batch::from_events(vec![transition("a")]))
        .await
        .unwrap();
    wait_ok(1).await;
    p.send(Batch::from_events(vec![transition("b")]))
        .await
        .unwrap();
    wait_ok(2).await;
    // a second episode
    rx.script.lock().unwrap().extend([503, 503]);
    p.send(Batch::from_events(vec![transition("c")]))
        .await
        .unwrap();
    wait_ok(3).await;
    drop(p);
    assert!(running.stop(Duration::from_secs(10)).await);
    assert_eq!(
        log.lines("webhook delivery failing"),
        2,
        "{}",
        String::from_utf8_lossy(&log.0.lock().unwrap())
    );
    assert_eq!(log.lines("webhook delivering again"), 2);
    // the line names the origin, not the path
    assert_eq!(log.lines(&format!("http://127.0.0.1:{port}")), 4);
    assert_eq!(log.lines("/hook"), 0);
}
