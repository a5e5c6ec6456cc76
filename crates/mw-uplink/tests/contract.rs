//! The uplink sink against mw-bus's sink contract (`testkit::check_sink`): it receives in order,
//! blocks when stalled (its queue's policy), commits every acknowledgement (it is durable:
//! committed = in its buffer) and finishes when the bus closes. No server runs: what it received
//! is read back from its buffer.

mod common;

use std::sync::Mutex;

use common::{config, free_port, temp_dir, uplink};
use mw_bus::AckOutcome;
use mw_bus::testkit::{SinkLimits, check_sink};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_uplink_sink_keeps_the_sink_contract() {
    let dir = temp_dir("contract");
    let url = format!("nats://127.0.0.1:{}", free_port()); // nothing listens: all stays buffered
    let buffers = Mutex::new(Vec::new());
    let report = check_sink(
        |i| {
            let s = uplink(&config(&url, &dir.join(format!("buf{i}")), ""));
            buffers.lock().unwrap().push(s.buffer());
            s
        },
        |i| {
            let b = buffers.lock().unwrap()[i].clone();
            b.read_from(0, 100_000)
                .unwrap()
                .iter()
                .map(|r| {
                    let (_, body) = mw_uplink::wire::decode(&r.payload, false).expect("ours");
                    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    v["value"].as_f64().expect("a number")
                })
                .collect()
        },
        SinkLimits::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        report
            .outcomes
            .iter()
            .all(|o| o == &AckOutcome::Committed { sinks: 1 }),
        "{:?}",
        report.outcomes
    );
    let _ = std::fs::remove_dir_all(&dir);
}
