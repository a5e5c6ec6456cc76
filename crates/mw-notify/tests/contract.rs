//! The notification sink against the bus's sink contract (`mw_bus::testkit::check_sink`, the
//! events variant): everything published reaches the target in order, a stalled sink drops the
//! oldest (never holds the bus back), and it never holds an acknowledgement. Each check's sink
//! posts to its own real HTTP receiver (axum on 127.0.0.1:0), whose bodies' `value`s are what
//! the sink "holds".

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use mw_bus::testkit::{SinkLimits, check_sink};
use mw_bus::{Overload, Sink};
use mw_notify::config::NotifySection;
use mw_notify::{ManualClock, NotifySink};

type Values = Arc<Mutex<Vec<f64>>>;

async fn hook(State(v): State<Values>, body: Bytes) -> StatusCode {
    let j: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if let Some(x) = j["value"].as_f64() {
        v.lock().unwrap().push(x);
    }
    StatusCode::OK
}

async fn receiver() -> (Values, u16) {
    let v = Values::default();
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(v.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(l, app).await });
    (v, port)
}

fn section(port: u16) -> NotifySection {
    let toml = format!(
        "[[notify.webhook]]\nname = \"contract\"\nurl = \"http://127.0.0.1:{port}/hook\"\ndedup = \"0s\"\nmax_per_minute = 0\n"
    );
    let reg = mw_bus::config_registry(&[&mw_notify::NotifyComponent as &dyn mw_bus::Component]);
    let cfg = reg.parse(&toml, "t.toml").unwrap_or_else(|d| panic!("{d}"));
    cfg.section::<NotifySection>().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notification_sink_keeps_the_sink_contract() {
    let mut receivers = Vec::new();
    let mut sections = Vec::new();
    for _ in 0..3 {
        let (v, port) = receiver().await;
        receivers.push(v);
        sections.push(section(port));
    }
    let clock = Arc::new(ManualClock::new(1_800_000_000_000_000_000));
    let report = check_sink(
        |i| {
            NotifySink::build(&sections[i], "Plant 1", 16, Box::new(clock.clone()))
                .expect("the sink builds")
        },
        |i| receivers[i].lock().unwrap().clone(),
        SinkLimits {
            // the sink gives queued notifications up to 5 s to go out at its stop
            settle_within: Duration::from_secs(15),
            ..SinkLimits::default()
        },
    )
    .await
    .unwrap();
    assert!(
        report.accepted_while_stalled > 16,
        "drop_oldest: a stalled sink never holds the bus back: {report:?}"
    );
    assert_eq!(
        NotifySink::build(&sections[0], "Plant 1", 16, Box::new(clock.clone()))
            .unwrap()
            .options()
            .overload,
        Overload::DropOldest
    );
}
