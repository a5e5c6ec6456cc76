//! Faulty devices next to a good one, all polled at the same time on real loopback sockets:
//! a device that refuses connections, one that answers with exceptions and one that never
//! answers. The good device must keep its pace; the refusing one is picked up once it comes up.

mod common;

use std::time::Duration;

use common::*;
use mw_bus::SourceState;
use mw_modbus::config::{RegisterTable::*, WordOrder::*};
use mw_model::DataType::{F32, U16};
use mw_model::Value;
use tokio::net::TcpListener;

/// Accepts connections and never answers (keeps them open until the test ends).
async fn silent_device() -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let h = tokio::spawn(async move {
        let mut held = Vec::new();
        // Bounded: at most 1000 connections, and the task is aborted at the end of the test.
        while held.len() < 1000 {
            match listener.accept().await {
                Ok((s, _)) => held.push(s),
                Err(_) => break,
            }
        }
    });
    (addr.to_string(), h)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faulty_devices_do_not_disturb_a_good_one() {
    let (good_ep, _srv, _h) = start_server(image_with_holding(&[7, 8])).await;
    // A port nobody listens on (yet).
    let refused_addr = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let (silent_ep, silent) = silent_device().await;

    let mut good = device(
        "good",
        good_ep.clone(),
        vec![tag("g/x", HoldingRegister, 0, U16, Abcd)],
    );
    good.poll_interval = Duration::from_millis(100);
    let refusing = device(
        "refusing",
        refused_addr.to_string(),
        vec![tag("r/x", HoldingRegister, 0, U16, Abcd)],
    );
    let exceptions = device(
        "exceptions",
        good_ep,
        vec![tag("e/x", HoldingRegister, 500, U16, Abcd)],
    );
    let mut hanging = device(
        "hanging",
        silent_ep,
        vec![tag("h/x", HoldingRegister, 0, F32, Abcd)],
    );
    hanging.timeout = Duration::from_millis(1000);

    let mut hs = spawn(vec![good, refusing, exceptions, hanging]);
    hs.wait_until(WAIT, "every device reported its failure", |m| {
        is_good(m, "g/x")
            && reason_is(m, "r/x", "disconnected: connection refused")
            && reason_is(m, "e/x", "modbus exception: illegal data address (2)")
            && reason_is(m, "h/x", "timeout after 1000 ms")
    })
    .await;
    assert!(
        hs.registry.all_polling(),
        "every device completed a cycle, failed ones included"
    );
    let snap = hs.registry.snapshot();
    assert_eq!(snap[0].state, SourceState::Up);
    assert_eq!(
        snap[1].state,
        SourceState::Down("disconnected: connection refused".into())
    );
    assert_eq!(snap[2].state, SourceState::Up);
    // Accepting connections is not enough to be up: the hanging device never answered.
    assert_eq!(
        snap[3].state,
        SourceState::Down("disconnected: timeout after 1000 ms".into())
    );

    // The good device keeps its 100 ms pace while the hanging one sits in 1 s timeouts.
    hs.all.clear();
    hs.record_for(Duration::from_millis(2000)).await;
    let good_ts: Vec<i64> = hs
        .all
        .iter()
        .filter(|s| s.tag.as_str() == "g/x")
        .map(|s| s.receive_ts)
        .collect();
    assert!(
        hs.all
            .iter()
            .filter(|s| s.tag.as_str() == "g/x")
            .all(|s| s.quality.is_good() && s.value == Value::U64(7))
    );
    assert!(
        // 20 expected; a device stalled behind the 1 s timeouts would manage ~2. Generous for loaded CI.
        good_ts.len() >= 8,
        "good device delivered only {} samples in 2 s",
        good_ts.len()
    );
    let max_gap = good_ts.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(
        // a stall behind the hanging device would show as a gap of ≥ 1000 ms (its timeout)
        max_gap < 950_000_000,
        "good device stalled for {} ms",
        max_gap / 1_000_000
    );
    // Faulty devices keep reporting bad samples every cycle, too.
    let refused_count = hs.all.iter().filter(|s| s.tag.as_str() == "r/x").count();
    assert!(
        refused_count >= 10,
        "refusing device published {refused_count} bad samples"
    );
    assert!(
        hs.all
            .iter()
            .filter(|s| s.tag.as_str() == "h/x")
            .all(|s| !s.quality.is_good())
    );

    // The refusing device comes up: reconnect within the backoff (max 500 ms here).
    let listener = TcpListener::bind(refused_addr).await.unwrap();
    let (_stop, rx) = tokio::sync::watch::channel(false);
    let _srv2 = tokio::spawn(mw_modbus::serve(listener, image_with_holding(&[99]), rx));
    hs.wait_until(WAIT, "refusing device reconnected", |m| is_good(m, "r/x"))
        .await;
    assert_eq!(hs.latest["r/x"].value, Value::U64(99));
    assert_eq!(hs.registry.snapshot()[1].state, SourceState::Up);

    // Shutdown is prompt, even with the hanging device in the middle of a 1 s timeout.
    hs.stop(Duration::from_millis(500)).await;
    silent.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_mid_request_is_prompt() {
    let (silent_ep, silent) = silent_device().await;
    let mut hanging = device(
        "hanging",
        silent_ep,
        vec![tag("h/x", HoldingRegister, 0, U16, Abcd)],
    );
    hanging.timeout = Duration::from_secs(30);
    let mut hs = spawn(vec![hanging]);
    // Connected and waiting for an answer that never comes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        hs.registry.snapshot()[0].cycles,
        0,
        "still inside the first request"
    );
    hs.stop(Duration::from_millis(500)).await;
    silent.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unresolvable_endpoint_is_reported_bad() {
    let dev = device(
        "nowhere",
        "host.invalid:502".into(),
        vec![tag("n/x", HoldingRegister, 0, U16, Abcd)],
    );
    let mut hs = spawn(vec![dev]);
    hs.wait_until(WAIT, "bad", |m| {
        m.get("n/x")
            .and_then(|s| s.quality.reason())
            .is_some_and(|r| r.starts_with("disconnected: "))
    })
    .await;
    assert!(hs.registry.all_polling());
    hs.stop(Duration::from_millis(500)).await;
}
