//! The bus's own behaviour: fan-out order, overload per sink, processors, acknowledgements.

use std::time::Duration;

use mw_model::{Event, EventKind, Sample, TagPath, Value};

use super::*;

fn s(tag: &str, v: f64) -> Sample {
    Sample::good(TagPath::new(tag).unwrap(), Value::F64(v), 0)
}

fn values(batch: &Batch) -> Vec<f64> {
    batch
        .samples
        .iter()
        .map(|x| x.value.as_f64().unwrap())
        .collect()
}

fn bus(capacity: usize) -> BusBuilder {
    BusBuilder::new(BusConfig {
        capacity,
        max_pending_acks: 16,
    })
}

#[tokio::test]
async fn fans_out_in_order_and_closes() {
    let mut b = bus(2);
    let p = b.publisher();
    let mut s1 = b.subscribe(SinkOptions::new("one", 2));
    let mut s2 = b.subscribe(SinkOptions::new("two", 2));
    let running = b.start(&SourceRegistry::new());
    let prod = tokio::spawn(async move {
        for i in 0..50 {
            p.publish(vec![s("a/b", i as f64)]).await.unwrap();
        }
    });
    // with the Block policy a sink that stops reading stalls everyone, so read both in step
    for i in 0..50 {
        for sub in [&mut s1, &mut s2] {
            let d = sub.recv().await.unwrap();
            assert_eq!(values(&d.batch), [i as f64]);
        }
    }
    prod.await.unwrap();
    assert!(s1.recv().await.is_none());
    assert!(s2.recv().await.is_none());
    assert!(running.stop(Duration::from_secs(1)).await);
}

#[tokio::test]
async fn block_policy_backpressures_publishers() {
    let mut b = bus(1);
    let p = b.publisher();
    let mut sub = b.subscribe(SinkOptions::new("slow", 1));
    let _running = b.start(&SourceRegistry::new());
    // sink queue (1) + fan-out in hand (1) + ingress (1) fill up; the next publish must wait.
    for i in 0..3 {
        p.publish(vec![s("a/b", i as f64)]).await.unwrap();
    }
    tokio::task::yield_now().await;
    let blocked = tokio::time::timeout(Duration::from_millis(100), async {
        p.publish(vec![s("a/b", 3.0)]).await.unwrap();
        p.publish(vec![s("a/b", 4.0)]).await.unwrap();
    })
    .await;
    assert!(
        blocked.is_err(),
        "publisher must wait while the sink is full"
    );
    // Nothing was lost: the sink drains everything that was accepted, in order.
    let mut got = Vec::new();
    while let Ok(Some(d)) = tokio::time::timeout(Duration::from_millis(50), sub.recv()).await {
        got.extend(values(&d.batch));
    }
    assert!(got.len() >= 3);
    assert!(
        got.windows(2).all(|w| w[0] < w[1]),
        "order preserved: {got:?}"
    );
}

async fn slow_and_fast(policy: Overload) -> Vec<f64> {
    let mut b = bus(8);
    let p = b.publisher();
    let mut slow = b.subscribe(SinkOptions::new("slow", 2).overload(policy));
    let mut fast = b.subscribe(SinkOptions::new("fast", 2));
    let _running = b.start(&SourceRegistry::new());
    for i in 0..20 {
        p.publish(vec![s("a/b", i as f64)]).await.unwrap();
        // the fast sink keeps up: it reads every batch as soon as it is published
        let got = fast.recv().await.unwrap();
        assert_eq!(values(&got.batch), [i as f64]);
    }
    drop(p);
    assert!(fast.recv().await.is_none());
    let mut slow_vals = Vec::new();
    while let Some(d) = slow.recv().await {
        slow_vals.extend(values(&d.batch));
    }
    slow_vals
}

#[tokio::test]
async fn drop_newest_drops_for_the_slow_sink_only() {
    // the slow sink never read: it holds the first two batches, the rest were dropped for it only
    assert_eq!(slow_and_fast(Overload::DropNewest).await, vec![0.0, 1.0]);
}

#[tokio::test]
async fn drop_oldest_keeps_the_newest_for_the_slow_sink() {
    assert_eq!(slow_and_fast(Overload::DropOldest).await, vec![18.0, 19.0]);
}

#[tokio::test]
async fn processors_run_before_fan_out() {
    let mut b = bus(8);
    let p = b.publisher();
    let mut dp = DeadbandProcessor::default();
    dp.set_threshold(TagPath::new("a/b").unwrap(), 1.0);
    b.processor(Box::new(dp));
    let mut sub = b.subscribe(SinkOptions::new("x", 8));
    let _running = b.start(&SourceRegistry::new());
    p.publish(vec![
        s("a/b", 1.0),
        s("a/b", 1.5),
        s("a/b", 3.0),
        s("a/c", 1.0),
        s("a/c", 1.1),
    ])
    .await
    .unwrap();
    p.publish(vec![s("a/b", 3.2)]).await.unwrap(); // filtered out entirely
    drop(p);
    let d = sub.recv().await.unwrap();
    let vals: Vec<_> = d
        .batch
        .samples
        .iter()
        .map(|x| (x.tag.as_str().to_owned(), x.value.as_f64().unwrap()))
        .collect();
    assert_eq!(
        vals,
        vec![
            ("a/b".into(), 1.0),
            ("a/b".into(), 3.0),
            ("a/c".into(), 1.0),
            ("a/c".into(), 1.1)
        ]
    );
    assert!(
        sub.recv().await.is_none(),
        "an all-filtered batch is not forwarded"
    );
}

/// A processor that emits an event for every sample over 10, after the samples.
struct Threshold;

impl Processor for Threshold {
    fn process(&mut self, batch: &mut Batch) {
        let over: Vec<Event> = batch
            .samples
            .iter()
            .filter(|x| x.value.as_f64().is_some_and(|v| v > 10.0))
            .map(|x| {
                Event::new(
                    x.source_ts,
                    "test/threshold",
                    EventKind::AlarmTransition {
                        alarm: format!("{}/HI", x.tag),
                        tag: x.tag.as_str().to_owned(),
                        priority: "high".into(),
                        area: "test".into(),
                        from: "normal".into(),
                        to: "unack_active".into(),
                        value: Some(x.value.clone()),
                        message: "over 10".into(),
                    },
                )
            })
            .collect();
        batch.events.extend(over);
    }
}

#[tokio::test]
async fn events_reach_only_the_sinks_that_want_them_in_order() {
    let mut b = bus(8);
    let p = b.publisher();
    b.processor(Box::new(Threshold));
    let mut samples_only = b.subscribe(SinkOptions::new("live", 8));
    let mut events_only = b.subscribe(SinkOptions::new("journal", 8).wants(Wants::Events));
    let mut both = b.subscribe(SinkOptions::new("uplink", 8).wants(Wants::Both));
    let _running = b.start(&SourceRegistry::new());
    p.publish(vec![s("a/b", 5.0)]).await.unwrap();
    p.publish_events(vec![Event::new(
        1,
        "modbus/plc1",
        EventKind::ConnectionChange {
            up: false,
            reason: Some("refused".into()),
        },
    )])
    .await
    .unwrap();
    p.publish(vec![s("a/b", 11.0)]).await.unwrap();
    drop(p);
    let mut got = Vec::new();
    while let Some(d) = samples_only.recv().await {
        got.extend(values(&d.batch));
    }
    assert_eq!(
        got,
        [5.0, 11.0],
        "the events-only batch is not queued for it"
    );
    let mut kinds = Vec::new();
    while let Some(d) = events_only.recv().await {
        kinds.extend(d.batch.events.iter().map(|e| e.kind.name()));
    }
    assert_eq!(kinds, ["connection_change", "alarm_transition"]);
    let mut n = 0;
    while let Some(d) = both.recv().await {
        n += 1;
        assert!(!d.batch.is_empty());
    }
    assert_eq!(n, 3);
}

#[tokio::test]
async fn ack_waits_for_every_durable_sink_and_ignores_the_others() {
    let mut b = bus(8);
    let p = b.publisher();
    let mut durable = b.subscribe(SinkOptions::new("historian", 8).durable());
    let mut live = b.subscribe(SinkOptions::new("live", 8));
    let _running = b.start(&SourceRegistry::new());
    let mut rx = p
        .send_with_ack(Batch::from_samples(vec![s("a/b", 1.0)]))
        .await
        .unwrap();
    let l = live.recv().await.unwrap();
    assert!(!l.has_ack(), "a non-durable sink gets no share");
    drop(l);
    let d = durable.recv().await.unwrap();
    assert!(d.has_ack());
    tokio::task::yield_now().await;
    assert_eq!(
        rx.try_outcome(),
        None,
        "pending until the durable sink commits"
    );
    d.commit();
    assert_eq!(rx.outcome().await, AckOutcome::Committed { sinks: 1 });
}

#[tokio::test]
async fn ack_reports_a_drop_by_policy() {
    let mut b = bus(8);
    let p = b.publisher();
    let _stalled = b.subscribe(
        SinkOptions::new("hist", 1)
            .durable()
            .overload(Overload::DropNewest),
    );
    let _running = b.start(&SourceRegistry::new());
    let _first = p
        .send_with_ack(Batch::from_samples(vec![s("a/b", 1.0)]))
        .await
        .unwrap();
    let second = p
        .send_with_ack(Batch::from_samples(vec![s("a/b", 2.0)]))
        .await
        .unwrap();
    assert_eq!(
        second.outcome().await,
        AckOutcome::Dropped {
            sink: "hist".into(),
            reason: "queue full (drop_newest)".into()
        }
    );
}

#[tokio::test]
async fn ack_fails_when_the_sink_stops_before_committing() {
    let mut b = bus(8);
    let p = b.publisher();
    let sub = b.subscribe(SinkOptions::new("hist", 4).durable());
    let _running = b.start(&SourceRegistry::new());
    let rx = p
        .send_with_ack(Batch::from_samples(vec![s("a/b", 1.0)]))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await; // queued for the sink
    drop(sub);
    let out = rx.outcome().await;
    assert!(
        matches!(&out, AckOutcome::Failed { sink, .. } if sink == "hist"),
        "{out:?}"
    );
}

#[tokio::test]
async fn a_filtered_out_batch_is_committed() {
    let mut b = bus(8);
    let p = b.publisher();
    let mut dp = DeadbandProcessor::default();
    dp.set_threshold(TagPath::new("a/b").unwrap(), 10.0);
    b.processor(Box::new(dp));
    let _sub = b.subscribe(SinkOptions::new("hist", 4).durable());
    let _running = b.start(&SourceRegistry::new());
    let first = p
        .send_with_ack(Batch::from_samples(vec![s("a/b", 1.0)]))
        .await
        .unwrap();
    let second = p
        .send_with_ack(Batch::from_samples(vec![s("a/b", 2.0)]))
        .await
        .unwrap();
    assert_eq!(second.outcome().await, AckOutcome::Committed { sinks: 0 });
    drop(first);
}

#[tokio::test]
async fn pending_acks_are_bounded() {
    let mut b = BusBuilder::new(BusConfig {
        capacity: 64,
        max_pending_acks: 3,
    });
    let p = b.publisher();
    let mut sub = b.subscribe(SinkOptions::new("hist", 64).durable());
    let _running = b.start(&SourceRegistry::new());
    let mut pending = Vec::new();
    for i in 0..3 {
        pending.push(
            p.send_with_ack(Batch::from_samples(vec![s("a/b", i as f64)]))
                .await
                .unwrap(),
        );
    }
    assert_eq!(p.free_ack_slots(), 0);
    let fourth = tokio::time::timeout(
        Duration::from_millis(100),
        p.send_with_ack(Batch::from_samples(vec![s("a/b", 3.0)])),
    )
    .await;
    assert!(fourth.is_err(), "a fourth pending ack must wait for a slot");
    sub.recv().await.unwrap().commit();
    let fourth = tokio::time::timeout(
        Duration::from_secs(1),
        p.send_with_ack(Batch::from_samples(vec![s("a/b", 3.0)])),
    )
    .await;
    assert!(fourth.is_ok(), "a settled ack frees its slot");
}

#[tokio::test]
async fn deadband_component_filters_only_tags_with_a_deadband() {
    let mut cfg = mw_config::Config::default();
    let mut with = mw_model::TagDef::new(TagPath::new("a/b").unwrap(), mw_model::DataType::F64);
    with.deadband = Some(mw_model::Deadband::Absolute(1.0));
    cfg.tags.push(with);
    cfg.published.push(mw_model::TagDef::new(
        TagPath::new("a/c").unwrap(),
        mw_model::DataType::F64,
    ));
    let mut parts = Parts::new();
    DeadbandComponent.build(&cfg, &mut parts).unwrap();
    let mut b = bus(8);
    b.parts(parts);
    let mut sub = b.subscribe(SinkOptions::new("x", 8));
    let p = b.publisher();
    let _running = b.start(&SourceRegistry::new());
    p.publish(vec![
        s("a/b", 1.0),
        s("a/b", 1.5),
        s("a/c", 1.0),
        s("a/c", 1.1),
    ])
    .await
    .unwrap();
    let d = sub.recv().await.unwrap();
    assert_eq!(
        values(&d.batch),
        [1.0, 1.0, 1.1],
        "a/b 1.5 is within its deadband"
    );

    let mut none = Parts::new();
    DeadbandComponent
        .build(&mw_config::Config::default(), &mut none)
        .unwrap();
    assert_eq!(
        none.processors.len(),
        0,
        "no deadband configured: no processor"
    );
}
