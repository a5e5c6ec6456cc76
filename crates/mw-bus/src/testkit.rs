//! Contract tests that any [`Source`] or [`Sink`] runs, and the test sinks they use.
//!
//! * [`check_source`]: it publishes, keeps per-tag order, backpressures when the bus is full
//!   (publishes at most a bounded number of batches into a stalled bus, and resumes), and stops
//!   within a bound after shutdown.
//! * [`check_sink`]: it receives what was published, in order; its overload policy does what it
//!   says while it is stalled (`Block` holds the publisher, `DropNewest` keeps the first batches,
//!   `DropOldest` the last); acknowledgement outcomes match its durability; it finishes within a
//!   bound once the bus closes. A sink that wants only events gets [`contract_event`]s instead
//!   of samples, one per batch.
//!
//! Each check returns `Err(message)` naming the violated rule, so a test can `unwrap()` it.
//! Every wait is bounded.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mw_model::{Event, Sample, TagPath, Value};

use crate::{
    AckOutcome, Batch, BoxFuture, BusBuilder, BusConfig, Delivery, Overload, SinkInput,
    SinkOptions, Source, SourceRegistry, Wants,
};

type Check<T> = Result<T, String>;

fn fail<T>(msg: impl Into<String>) -> Check<T> {
    Err(msg.into())
}

/// What a durable [`RecordingSink`] does with each delivery.
#[derive(Clone, Debug, PartialEq)]
pub enum Commit {
    /// Commits as soon as it has recorded the batch.
    Immediately,
    /// Commits this long after recording it (a slow disk: the acknowledgement waits).
    After(Duration),
    /// Fails every delivery with this reason.
    Fail(String),
}

/// What a [`RecordingSink`] received, shared with the test.
#[derive(Clone, Default)]
pub struct Recorded(Arc<Mutex<(Vec<Sample>, Vec<Event>)>>);

impl Recorded {
    pub fn samples(&self) -> Vec<Sample> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).0.clone()
    }

    pub fn events(&self) -> Vec<Event> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).1.clone()
    }

    fn push(&self, b: &Batch) {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        g.0.extend(b.samples.iter().cloned());
        g.1.extend(b.events.iter().cloned());
    }
}

/// A sink that records what it receives; durable when given a [`Commit`] behaviour.
pub struct RecordingSink {
    opts: SinkOptions,
    commit: Option<Commit>,
    recorded: Recorded,
}

impl RecordingSink {
    /// A non-durable sink of samples and events, blocking when full.
    pub fn new(name: &str, capacity: usize) -> RecordingSink {
        RecordingSink {
            opts: SinkOptions::new(name, capacity).wants(Wants::Both),
            commit: None,
            recorded: Recorded::default(),
        }
    }

    /// The same sink, durable, settling each delivery as `commit` says.
    pub fn durable(mut self, commit: Commit) -> RecordingSink {
        self.opts.durable = true;
        self.commit = Some(commit);
        self
    }

    pub fn overload(mut self, overload: Overload) -> RecordingSink {
        self.opts.overload = overload;
        self
    }

    pub fn wants(mut self, wants: Wants) -> RecordingSink {
        self.opts.wants = wants;
        self
    }

    pub fn recorded(&self) -> Recorded {
        self.recorded.clone()
    }
}

impl crate::Sink for RecordingSink {
    fn options(&self) -> SinkOptions {
        self.opts.clone()
    }

    fn run(self: Box<Self>, mut input: SinkInput) -> BoxFuture<()> {
        Box::pin(async move {
            while let Some(d) = input.recv().await {
                self.recorded.push(&d.batch);
                settle(d, self.commit.as_ref());
            }
        })
    }
}

fn settle(d: Delivery, commit: Option<&Commit>) {
    match commit {
        None | Some(Commit::Immediately) => d.commit(),
        Some(Commit::Fail(reason)) => d.fail(reason.clone()),
        Some(Commit::After(delay)) => {
            let delay = *delay;
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                d.commit();
            });
        }
    }
}

/// Bounds for [`check_source`].
#[derive(Clone, Debug)]
pub struct SourceLimits {
    /// It must publish at least this many samples…
    pub min_samples: usize,
    /// …within this time.
    pub publish_within: Duration,
    /// How long the bus is stalled in the overload check.
    pub stall: Duration,
    /// It must return this soon after shutdown.
    pub shutdown_within: Duration,
}

impl Default for SourceLimits {
    fn default() -> Self {
        SourceLimits {
            min_samples: 1,
            publish_within: Duration::from_secs(10),
            stall: Duration::from_millis(500),
            shutdown_within: Duration::from_secs(1),
        }
    }
}

/// What [`check_source`] saw.
#[derive(Clone, Debug)]
pub struct SourceReport {
    pub samples: Vec<Sample>,
    pub events: Vec<Event>,
    /// Batches that entered the stalled bus (bounded by its queues).
    pub batches_while_stalled: usize,
}

/// Batches a stalled bus can hold — ingress (1), the fan-out's hand (1), the sink queue (1) —
/// plus the one a source holds while it waits on `publish`, and one it may have been producing
/// when the stall began.
const STALL_BOUND: usize = 5;

/// Runs the contract checks on sources made by `make` (called once per check). The overload
/// check reads when each batch was produced from its samples' `receive_ts` (and events' `ts`),
/// which a source stamps with the wall clock ([`mw_model::now_ns`]) as the sample model says.
pub async fn check_source(
    make: impl Fn() -> Box<dyn Source>,
    limits: SourceLimits,
) -> Check<SourceReport> {
    // 1. publishes, in order per tag
    let registry = SourceRegistry::new();
    let mut bus = BusBuilder::new(BusConfig::default());
    let sink = RecordingSink::new("contract", 1024);
    let rec = sink.recorded();
    bus.sink(Box::new(sink));
    bus.source(make());
    let running = bus.start(&registry);
    let deadline = tokio::time::Instant::now() + limits.publish_within;
    while rec.samples().len() < limits.min_samples {
        if tokio::time::Instant::now() >= deadline {
            return fail(format!(
                "publish: the source published {} sample(s) within {:?}, expected at least {}",
                rec.samples().len(),
                limits.publish_within,
                limits.min_samples
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if registry.snapshot().len() != 1 {
        return fail("status: the source was not registered exactly once");
    }
    // 3. shutdown within the bound (while running normally)
    let started = tokio::time::Instant::now();
    if !running.stop(limits.shutdown_within).await {
        return fail(format!(
            "shutdown: the source did not stop within {:?} of the signal",
            limits.shutdown_within
        ));
    }
    let stopped_in = started.elapsed();
    let samples = rec.samples();
    let events = rec.events();
    check_order(&samples).map_err(|e| format!("order: {e}"))?;
    tracing::debug!(
        ?stopped_in,
        samples = samples.len(),
        "source contract: publish/order/shutdown ok"
    );

    // 2. overload: a stalled sink must stall the source, not grow a queue of its own. Every
    //    batch stamped (receive_ts / event ts) before the stall ended was produced while the bus
    //    was full; only as many as the bus holds may exist.
    let registry = SourceRegistry::new();
    let mut bus = BusBuilder::new(BusConfig {
        capacity: 1,
        max_pending_acks: 16,
    });
    let gate = Arc::new(tokio::sync::Notify::new());
    let stamps = Arc::new(Mutex::new(Vec::new()));
    bus.sink(Box::new(GatedSink {
        gate: gate.clone(),
        stamps: stamps.clone(),
    }));
    bus.source(make());
    let running = bus.start(&registry);
    tokio::time::sleep(limits.stall).await;
    let stall_end = mw_model::now_ns();
    gate.notify_one();
    let resumed_by = tokio::time::Instant::now() + limits.publish_within;
    let resumed = loop {
        if stamps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|&t| t > stall_end)
        {
            break true;
        }
        if tokio::time::Instant::now() >= resumed_by {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    if !running.stop(limits.shutdown_within).await {
        return fail(format!(
            "shutdown: the source did not stop within {:?} after an overload",
            limits.shutdown_within
        ));
    }
    if !resumed {
        return fail("overload: the source did not resume publishing after the bus drained");
    }
    let stalled = stamps
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|&&t| t <= stall_end)
        .count();
    if stalled > STALL_BOUND {
        return fail(format!(
            "overload: {stalled} batches were produced while the bus was full for {:?}; a source \
             that waits on publish produces at most {STALL_BOUND}",
            limits.stall
        ));
    }
    Ok(SourceReport {
        samples,
        events,
        batches_while_stalled: stalled,
    })
}

/// A sink that reads nothing until its gate opens, then records when each batch was produced
/// (the latest sample `receive_ts` or event `ts` in it).
struct GatedSink {
    gate: Arc<tokio::sync::Notify>,
    stamps: Arc<Mutex<Vec<i64>>>,
}

impl crate::Sink for GatedSink {
    fn options(&self) -> SinkOptions {
        SinkOptions::new("gated", 1).wants(Wants::Both)
    }

    fn run(self: Box<Self>, mut input: SinkInput) -> BoxFuture<()> {
        Box::pin(async move {
            self.gate.notified().await;
            while let Some(d) = input.recv().await {
                let b = &d.batch;
                let t = b
                    .samples
                    .iter()
                    .map(|s| s.receive_ts)
                    .chain(b.events.iter().map(|e| e.ts))
                    .max()
                    .unwrap_or(i64::MIN);
                self.stamps
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(t);
                d.commit();
            }
        })
    }
}

/// Per-tag order: `source_ts` never goes back for a tag.
pub fn check_order(samples: &[Sample]) -> Result<(), String> {
    let mut last: std::collections::HashMap<&TagPath, i64> = Default::default();
    for s in samples {
        if let Some(prev) = last.insert(&s.tag, s.source_ts)
            && s.source_ts < prev
        {
            return Err(format!(
                "{}: a sample at {} came after one at {prev}",
                s.tag, s.source_ts
            ));
        }
    }
    Ok(())
}

/// Bounds for [`check_sink`].
#[derive(Clone, Debug)]
pub struct SinkLimits {
    /// Batches published in the order and overload checks.
    pub batches: usize,
    /// How long a publisher may wait before it counts as blocked.
    pub blocked_after: Duration,
    /// The sink must finish this soon after its input closes; acks must settle this soon.
    pub settle_within: Duration,
}

impl Default for SinkLimits {
    fn default() -> Self {
        SinkLimits {
            batches: 50,
            blocked_after: Duration::from_millis(200),
            settle_within: Duration::from_secs(5),
        }
    }
}

/// The test tag the sink checks publish: one sample per batch, values 0, 1, 2, … and
/// `source_ts` = value.
pub fn contract_tag() -> TagPath {
    TagPath::new("contract/test/value").unwrap_or_else(|_| unreachable!("a valid literal path"))
}

/// Event `i` of the sink checks for a sink that wants only events: a critical alarm of
/// [`contract_tag`] (alarm id `contract/test/value:{i}`, a new one each time, so no dedup
/// merges them) becoming `unack_active`, value `i`, `ts` = `i`.
pub fn contract_event(i: usize) -> Event {
    Event::new(
        i as i64,
        "contract/test",
        mw_model::EventKind::AlarmTransition {
            alarm: format!("{}:{i}", contract_tag()),
            tag: contract_tag().as_str().to_owned(),
            priority: "critical".to_owned(),
            area: "contract".to_owned(),
            from: "normal".to_owned(),
            to: "unack_active".to_owned(),
            value: Some(Value::F64(i as f64)),
            message: format!("contract {i}"),
        },
    )
}

fn numbered(i: usize, wants: Wants) -> Batch {
    match wants {
        Wants::Events => Batch::from_events(vec![contract_event(i)]),
        _ => Batch::from_samples(vec![Sample::good(
            contract_tag(),
            Value::F64(i as f64),
            i as i64,
        )]),
    }
}

/// What [`check_sink`] saw.
#[derive(Clone, Debug, PartialEq)]
pub struct SinkReport {
    /// Batches the stalled sink's bus accepted before the publisher was held back (all of them
    /// unless the policy is `Block`).
    pub accepted_while_stalled: usize,
    /// The values of the contract tag the sink holds after the stall check, in order.
    pub kept_after_stall: Vec<f64>,
    /// The acknowledgement outcomes of the ack check, in publish order.
    pub outcomes: Vec<AckOutcome>,
}

/// Runs the contract checks on sinks made by `make` (called once per check). `seen` reads back,
/// from the sink just checked, the values of [`contract_tag`] it holds in order (for a sink
/// that wants only events: the values of the [`contract_event`]s it passed on) (`None` values
/// for a sink that keeps only the latest are fine as long as what it keeps is in order): it is
/// given the sink's index (0, 1, 2 — one per check) so the caller can keep a handle per sink.
pub async fn check_sink<S: crate::Sink>(
    make: impl Fn(usize) -> S,
    seen: impl Fn(usize) -> Vec<f64>,
    limits: SinkLimits,
) -> Check<SinkReport> {
    let n = limits.batches;
    let registry = SourceRegistry::new();

    // 1. receives everything published, in order, and finishes when the bus closes
    let mut bus = BusBuilder::new(BusConfig::default());
    let sink = make(0);
    let opts = sink.options();
    bus.sink(Box::new(sink));
    let p = bus.publisher();
    let running = bus.start(&registry);
    for i in 0..n {
        if p.send(numbered(i, opts.wants)).await.is_err() {
            return fail("publish: the bus closed while the sink was running");
        }
    }
    drop(p);
    if !running.stop(limits.settle_within).await {
        return fail(format!(
            "shutdown: the sink did not finish within {:?} after its input closed",
            limits.settle_within
        ));
    }
    let got = seen(0);
    if got.is_empty() {
        return fail("publish: the sink holds none of the published samples");
    }
    if got.windows(2).any(|w| w[0] >= w[1]) {
        return fail(format!(
            "order: the sink holds {got:?}, not in publish order"
        ));
    }
    // a running sink may still drop under `drop_newest` if it is slower than the publisher,
    // but the newest batch always reaches a blocking or `drop_oldest` sink
    if opts.overload != Overload::DropNewest && got.last() != Some(&((n - 1) as f64)) {
        return fail(format!(
            "publish: the last value the sink holds is {:?}, expected {}",
            got.last(),
            n - 1
        ));
    }

    // 2. overload: the sink is stalled (not started yet) while more than its queue holds is
    //    published; its own policy decides
    let mut bus = BusBuilder::new(BusConfig {
        capacity: 1,
        max_pending_acks: 16,
    });
    let sink = make(1);
    let opts1 = sink.options();
    let cap = opts1.capacity.max(1);
    let input = bus.subscribe(opts1.clone());
    let p = bus.publisher();
    let running = bus.start(&registry);
    let total = cap + 4;
    let mut blocked_at = None;
    for i in 0..total {
        match tokio::time::timeout(limits.blocked_after, p.send(numbered(i, opts1.wants))).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return fail("overload: the bus closed"),
            Err(_) => {
                blocked_at = Some(i);
                break;
            }
        }
    }
    let published = blocked_at.unwrap_or(total);
    match (opts1.overload, blocked_at) {
        (Overload::Block, None) => {
            return fail(format!(
                "overload: policy block, but {total} batches were accepted by a stalled sink with a queue of {cap}"
            ));
        }
        (Overload::DropNewest | Overload::DropOldest, Some(i)) => {
            return fail(format!(
                "overload: policy {:?}, but the publisher was held back at batch {i}",
                opts1.overload
            ));
        }
        _ => {}
    }
    // now let the sink run
    let sink_task = tokio::spawn(Box::new(sink).run(input));
    drop(p);
    let _ = running.stop(limits.settle_within).await;
    if tokio::time::timeout(limits.settle_within, sink_task)
        .await
        .is_err()
    {
        return fail("shutdown: the sink did not finish after the stall");
    }
    let kept = seen(1);
    // The sink starts while the fan-out may still hold batches not yet offered to its queue
    // (one in the ingress queue of capacity 1, one in hand): those arrive after the sink took
    // some, so up to that many older ones are kept beside the queue's `cap`.
    let in_flight = 2;
    let expect_first = match opts1.overload {
        Overload::Block => 0.0,
        Overload::DropNewest => 0.0,
        Overload::DropOldest => published.saturating_sub(cap + in_flight) as f64,
    };
    if opts1.overload == Overload::DropNewest && kept.last().is_some_and(|&v| v > (cap + 1) as f64)
    {
        return fail(format!(
            "overload: drop_newest kept {kept:?}; only the first batches fit"
        ));
    }
    if opts1.overload == Overload::DropOldest && kept.last() != Some(&((published - 1) as f64)) {
        return fail(format!(
            "overload: drop_oldest kept {kept:?}; the newest batch {} must be kept",
            published - 1
        ));
    }
    if let Some(&first) = kept.first()
        && first < expect_first
        && opts1.overload == Overload::DropOldest
    {
        return fail(format!(
            "overload: drop_oldest kept {kept:?}; the oldest ones should have gone"
        ));
    }

    // 4. acknowledgements: durable sinks settle them, others never hold them back
    let mut bus = BusBuilder::new(BusConfig::default());
    let sink = make(2);
    let (durable, wants) = (sink.options().durable, sink.options().wants);
    bus.sink(Box::new(sink));
    let p = bus.publisher();
    let running = bus.start(&registry);
    let mut outcomes = Vec::new();
    for i in 0..4 {
        let rx = p
            .send_with_ack(numbered(i, wants))
            .await
            .map_err(|_| "ack: the bus closed".to_owned())?;
        match tokio::time::timeout(limits.settle_within, rx.outcome()).await {
            Ok(o) => outcomes.push(o),
            Err(_) => {
                return fail(format!(
                    "ack: no outcome within {:?} (a {} sink)",
                    limits.settle_within,
                    if durable { "durable" } else { "non-durable" }
                ));
            }
        }
    }
    drop(p);
    let _ = running.stop(limits.settle_within).await;
    if !durable
        && outcomes
            .iter()
            .any(|o| o != &AckOutcome::Committed { sinks: 0 })
    {
        return fail(format!(
            "ack: a non-durable sink must never hold an acknowledgement: {outcomes:?}"
        ));
    }
    Ok(SinkReport {
        accepted_while_stalled: published,
        kept_after_stall: kept,
        outcomes,
    })
}
