//! The contract harness run against the test sinks it ships: non-durable, durable and quick,
//! durable and late (the acknowledgement waits), durable and failing (the acknowledgement says
//! failed), and each overload policy.

use std::sync::Mutex;
use std::time::Duration;

use mw_bus::testkit::{Commit, Recorded, RecordingSink, SinkLimits, check_sink, contract_tag};
use mw_bus::{AckOutcome, Batch, BusBuilder, BusConfig, Overload, SourceRegistry};
use mw_model::{Sample, Value};

/// Makes sinks with `make` and remembers what each one recorded, by check index.
struct Sinks {
    recorded: Mutex<Vec<Recorded>>,
}

impl Sinks {
    fn new() -> Sinks {
        Sinks {
            recorded: Mutex::new(Vec::new()),
        }
    }

    fn make(&self, sink: RecordingSink) -> RecordingSink {
        self.recorded.lock().unwrap().push(sink.recorded());
        sink
    }

    fn seen(&self, i: usize) -> Vec<f64> {
        let tag = contract_tag();
        self.recorded.lock().unwrap()[i]
            .samples()
            .iter()
            .filter(|s| s.tag == tag)
            .filter_map(|s| s.value.as_f64())
            .collect()
    }
}

async fn run(build: impl Fn() -> RecordingSink) -> mw_bus::testkit::SinkReport {
    let sinks = Sinks::new();
    check_sink(
        |_| sinks.make(build()),
        |i| sinks.seen(i),
        SinkLimits::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("contract violated: {e}"))
}

#[tokio::test]
async fn non_durable_sink_never_holds_an_ack() {
    let r = run(|| RecordingSink::new("plain", 4)).await;
    assert!(
        r.outcomes
            .iter()
            .all(|o| *o == AckOutcome::Committed { sinks: 0 })
    );
    // queue (4) + the fan-out's hand (1) + ingress (1): the 7th publish waits
    assert_eq!(r.accepted_while_stalled, 6);
    let all: Vec<f64> = (0..6).map(f64::from).collect();
    assert_eq!(r.kept_after_stall, all, "block loses nothing it accepted");
}

#[tokio::test]
async fn durable_sink_commits() {
    let r = run(|| RecordingSink::new("hist", 4).durable(Commit::Immediately)).await;
    assert!(
        r.outcomes
            .iter()
            .all(|o| *o == AckOutcome::Committed { sinks: 1 })
    );
}

#[tokio::test]
async fn durable_sink_that_commits_late_holds_the_ack_until_then() {
    let r = run(|| {
        RecordingSink::new("slow-disk", 4).durable(Commit::After(Duration::from_millis(30)))
    })
    .await;
    assert!(
        r.outcomes
            .iter()
            .all(|o| *o == AckOutcome::Committed { sinks: 1 })
    );

    // and the wait is real: pending before the commit, committed after
    let mut b = BusBuilder::new(BusConfig::default());
    b.sink(Box::new(
        RecordingSink::new("slow-disk", 4).durable(Commit::After(Duration::from_millis(300))),
    ));
    let p = b.publisher();
    let _running = b.start(&SourceRegistry::new());
    let sample = Sample::good(contract_tag(), Value::F64(1.0), 1);
    let mut rx = p
        .send_with_ack(Batch::from_samples(vec![sample]))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(rx.try_outcome(), None, "not durable yet: the ack must wait");
    let out = tokio::time::timeout(Duration::from_secs(5), rx.outcome())
        .await
        .unwrap();
    assert_eq!(out, AckOutcome::Committed { sinks: 1 });
}

#[tokio::test]
async fn durable_sink_that_fails_says_so_in_the_ack() {
    let r = run(|| RecordingSink::new("broken", 4).durable(Commit::Fail("disk full".into()))).await;
    assert!(
        r.outcomes.iter().all(|o| *o
            == AckOutcome::Failed {
                sink: "broken".into(),
                reason: "disk full".into()
            }),
        "{:?}",
        r.outcomes
    );
}

#[tokio::test]
async fn drop_newest_keeps_the_first_batches_of_a_stalled_sink() {
    let r = run(|| RecordingSink::new("ui", 4).overload(Overload::DropNewest)).await;
    // queue of 4 plus the one in the fan-out's hand before it was dropped: the first ones
    assert_eq!(r.kept_after_stall, [0.0, 1.0, 2.0, 3.0]);
}

#[tokio::test]
async fn drop_oldest_keeps_the_last_batches_of_a_stalled_sink() {
    let r = run(|| RecordingSink::new("ui", 4).overload(Overload::DropOldest)).await;
    assert_eq!(r.kept_after_stall, [4.0, 5.0, 6.0, 7.0]);
}

/// A sink that breaks the contract: it records each batch it receives *before* the previous
/// one. The harness must say so.
struct Reversing {
    inner: RecordingSink,
}

impl mw_bus::Sink for Reversing {
    fn options(&self) -> mw_bus::SinkOptions {
        self.inner.options()
    }

    fn run(self: Box<Self>, mut input: mw_bus::SinkInput) -> mw_bus::BoxFuture<()> {
        Box::pin(async move {
            let mut all = Vec::new();
            while let Some(d) = input.recv().await {
                all.push(d.batch.clone());
                d.commit();
            }
            let mut b = BusBuilder::new(BusConfig::default());
            let p = b.publisher();
            b.sink(Box::new(self.inner));
            let running = b.start(&SourceRegistry::new());
            for batch in all.into_iter().rev() {
                let _ = p.send((*batch).clone()).await;
            }
            drop(p);
            running.stop(Duration::from_secs(1)).await;
        })
    }
}

#[tokio::test]
async fn the_harness_catches_a_sink_that_reorders() {
    let sinks = Sinks::new();
    let err = check_sink(
        |_| {
            let inner = sinks.make(RecordingSink::new("reorders", 4));
            Reversing { inner }
        },
        |i| sinks.seen(i),
        SinkLimits::default(),
    )
    .await
    .expect_err("a sink that reorders breaks the contract");
    assert!(err.starts_with("order:"), "{err}");
}

/// A source that breaks the overload rule: it never waits for the bus, it spawns one publish
/// per tick, so a stalled bus grows a pile of pending publishes. The harness must say so.
struct Impatient;

impl mw_bus::Source for Impatient {
    fn component(&self) -> &'static str {
        "test"
    }

    fn instance(&self) -> String {
        "impatient".into()
    }

    fn run(self: Box<Self>, mut cx: mw_bus::SourceContext) -> mw_bus::BoxFuture<()> {
        Box::pin(async move {
            let mut i = 0i64;
            loop {
                tokio::select! {
                    () = cx.shutdown.wait() => return,
                    () = tokio::time::sleep(Duration::from_millis(5)) => {}
                }
                i += 1;
                let p = cx.publisher.clone();
                let s = Sample::good(contract_tag(), Value::F64(i as f64), mw_model::now_ns());
                tokio::spawn(async move { p.publish(vec![s]).await });
            }
        })
    }
}

/// A source that keeps order and waits on publish: within the contract.
struct Patient;

impl mw_bus::Source for Patient {
    fn component(&self) -> &'static str {
        "test"
    }

    fn instance(&self) -> String {
        "patient".into()
    }

    fn run(self: Box<Self>, mut cx: mw_bus::SourceContext) -> mw_bus::BoxFuture<()> {
        Box::pin(async move {
            let mut i = 0i64;
            loop {
                i += 1;
                let s = Sample::good(contract_tag(), Value::F64(i as f64), mw_model::now_ns());
                tokio::select! {
                    () = cx.shutdown.wait() => return,
                    r = async {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        cx.publisher.publish(vec![s]).await
                    } => if r.is_err() { return },
                }
            }
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_harness_passes_a_patient_source_and_catches_an_impatient_one() {
    use mw_bus::testkit::{SourceLimits, check_source};
    let limits = SourceLimits {
        min_samples: 10,
        stall: Duration::from_millis(300),
        ..SourceLimits::default()
    };
    let ok = check_source(|| Box::new(Patient), limits.clone()).await;
    assert!(ok.is_ok(), "{:?}", ok.err());
    let err = check_source(|| Box::new(Impatient), limits)
        .await
        .expect_err("an impatient source breaks the overload rule");
    assert!(err.starts_with("overload:"), "{err}");
}
