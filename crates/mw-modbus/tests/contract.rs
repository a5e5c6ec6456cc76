//! The source contract harness (`mw_bus::testkit::check_source`) run against the Modbus source,
//! polling our own Modbus TCP server on loopback: it publishes, keeps per-tag order, waits when
//! the bus is full instead of queueing, and stops promptly. Plus its connection events.

mod common;

use std::time::Duration;

use common::*;
use mw_bus::testkit::{Recorded, RecordingSink, SourceLimits, check_source};
use mw_bus::{BusBuilder, BusConfig, SourceRegistry};
use mw_modbus::ModbusSource;
use mw_modbus::config::{RegisterTable::*, WordOrder::*};
use mw_model::{DataType::*, EventKind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modbus_source_meets_the_source_contract() {
    let (endpoint, _srv, _h) = start_server(image_with_holding(&[7, 8])).await;
    let mut dev = device(
        "contract",
        endpoint,
        vec![
            tag("c/p/a", HoldingRegister, 0, U16, Abcd),
            tag("c/p/b", HoldingRegister, 1, U16, Abcd),
        ],
    );
    dev.poll_interval = Duration::from_millis(10);
    let report = check_source(
        || Box::new(ModbusSource::new(dev.clone())),
        SourceLimits {
            min_samples: 20,
            publish_within: Duration::from_secs(10),
            stall: Duration::from_millis(500),
            shutdown_within: Duration::from_millis(500),
        },
    )
    .await
    .unwrap_or_else(|e| panic!("contract violated: {e}"));
    assert!(report.samples.iter().all(|s| s.quality.is_good()));
    // at 10 ms per poll, 500 ms of stall would be ~50 batches if polls queued up
    assert!(
        report.batches_while_stalled <= 5,
        "{}",
        report.batches_while_stalled
    );
    // the first answer is reported once as a connection change
    let ups: Vec<_> = report
        .events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::ConnectionChange { up: true, .. }))
        .collect();
    assert_eq!(ups.len(), 1, "{:?}", report.events);
    assert_eq!(ups[0].source, "modbus/contract");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_changes_are_events_in_order() {
    // nothing listens on this port at first: the device is down; then a server appears
    let probe = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let mut dev = device(
        "flaky",
        addr.to_string(),
        vec![tag("c/f/a", HoldingRegister, 0, U16, Abcd)],
    );
    dev.poll_interval = Duration::from_millis(20);
    let mut b = BusBuilder::new(BusConfig::default());
    let sink = RecordingSink::new("events", 64).wants(mw_bus::Wants::Events);
    let rec: Recorded = sink.recorded();
    b.sink(Box::new(sink));
    b.source(Box::new(ModbusSource::new(dev)));
    let running = b.start(&SourceRegistry::new());
    let wait_for = |n: usize, rec: Recorded| async move {
        let deadline = tokio::time::Instant::now() + WAIT;
        while rec.events().len() < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "events: {:?}",
                rec.events()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    wait_for(1, rec.clone()).await;
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let srv = tokio::spawn(mw_modbus::serve(listener, image_with_holding(&[1]), rx));
    wait_for(2, rec.clone()).await;
    let _ = tx.send(true);
    let _ = srv.await;
    wait_for(3, rec.clone()).await;
    assert!(running.stop(Duration::from_secs(1)).await);
    let seq: Vec<bool> = rec
        .events()
        .iter()
        .map(|e| match &e.kind {
            EventKind::ConnectionChange { up, .. } => *up,
            other => panic!("unexpected event {other:?}"),
        })
        .collect();
    assert_eq!(&seq[..3], [false, true, false], "down, up, down again");
    let ts: Vec<i64> = rec.events().iter().map(|e| e.ts).collect();
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "in order: {ts:?}");
}
