//! The sink contract harness (`mw_bus::testkit::check_sink`) run against the live store's sink,
//! once per overload policy the config can give it.

use std::sync::Mutex;

use mw_bus::testkit::{SinkLimits, check_sink, contract_tag};
use mw_bus::{AckOutcome, Overload, SinkOptions};
use mw_live::LiveStore;

async fn check(policy: Overload) -> mw_bus::testkit::SinkReport {
    let stores: Mutex<Vec<LiveStore>> = Mutex::new(Vec::new());
    check_sink(
        |_| {
            let store = LiveStore::new(100);
            stores.lock().unwrap().push(store.clone());
            store.sink(SinkOptions::new("live", 4).overload(policy))
        },
        |i| {
            let store = stores.lock().unwrap()[i].clone();
            store
                .recent(&contract_tag(), 100)
                .unwrap_or_default()
                .iter()
                .filter_map(|s| s.value.as_f64())
                .collect()
        },
        SinkLimits::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("live store sink ({policy:?}) violates the contract: {e}"))
}

#[tokio::test]
async fn live_store_meets_the_sink_contract_blocking() {
    let r = check(Overload::Block).await;
    assert_eq!(r.kept_after_stall.len(), r.accepted_while_stalled);
    assert!(
        r.outcomes
            .iter()
            .all(|o| *o == AckOutcome::Committed { sinks: 0 }),
        "the live store is not durable: it never holds an acknowledgement back"
    );
}

#[tokio::test]
async fn live_store_meets_the_sink_contract_dropping_oldest() {
    let r = check(Overload::DropOldest).await;
    assert_eq!(r.kept_after_stall, [4.0, 5.0, 6.0, 7.0]);
}

#[tokio::test]
async fn live_store_meets_the_sink_contract_dropping_newest() {
    let r = check(Overload::DropNewest).await;
    assert_eq!(r.kept_after_stall, [0.0, 1.0, 2.0, 3.0]);
}

#[test]
fn the_live_store_is_never_durable() {
    let opts = LiveStore::new(1)
        .sink(SinkOptions::new("live", 1).durable())
        .options();
    assert!(!opts.durable, "it keeps nothing across a restart");
}

use mw_bus::Sink as _;

#[test]
fn the_live_component_provides_its_store_and_one_sink() {
    use mw_bus::{Component, Parts};
    let mut cfg = mw_config::Config::default();
    cfg.pipeline.live_window = 7;
    let mut parts = Parts::new();
    mw_live::LiveComponent.build(&cfg, &mut parts).unwrap();
    assert_eq!(parts.sink_count(), 1);
    let store = parts.take::<LiveStore>().expect("the store is provided");
    assert_eq!(store.window(), 7);
}
