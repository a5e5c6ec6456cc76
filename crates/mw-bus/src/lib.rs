//! The bounded pipeline between sources and sinks, and the contracts components implement.
//!
//! ```text
//! sources ──publish().await──► ingress queue (bounded) ──► processors ──► fan-out ──► one bounded queue per sink
//! ```
//! * What travels is a [`Batch`]: samples and [`mw_model::Event`]s (alarm transitions, operator
//!   actions, connection changes, …), in the order the source produced them.
//! * Sources await [`Publisher::send`]: when the ingress queue is full they wait (backpressure).
//! * The fan-out hands each batch to every sink that [`Wants`] something in it. When a sink's
//!   queue is full it follows **that sink's** [`Overload`] policy: `Block` waits (backpressure
//!   reaches the sources through the ingress queue); `DropNewest` drops the new batch and
//!   `DropOldest` the oldest queued one, *for that sink only*, counting the samples in
//!   `mw_discarded_samples_total{component="bus",instance=SINK,reason="sink_full"}`.
//! * End-to-end acknowledgements ([`ack`]): a source may publish with
//!   [`Publisher::send_with_ack`] and learn whether every durable sink committed the batch.
//! * Nothing here is unbounded: ingress (`capacity` batches), each sink queue (its own
//!   capacity), pending acknowledgements (`max_pending_acks`). Batches are shared (`Arc`) so
//!   fan-out never copies samples.
//! * Order per source (and so per tag) is preserved: one ingress queue, one fan-out task, FIFO
//!   sink queues, processors keep order.
//!
//! Shutdown: [`RunningBus::stop`] signals the sources and waits for them; once every
//! [`Publisher`] is dropped the fan-out drains the ingress queue, then closes the sink queues;
//! each [`SinkInput::recv`] returns `None` after the last batch and the sinks finish.
//!
//! Tag writes go the other way, from a consumer back to the source that owns the tag, through
//! the [`WriteRegistry`] ([`writes`]): bounded per owner, answered by the owner.
//!
//! The contracts ([`Source`], [`Processor`], [`Sink`]) say what an implementation must do on
//! disconnect, overload and shutdown; [`Component`] is how a component crate registers its
//! config sections and builds its parts; [`testkit`] checks an implementation against its
//! contract.

pub mod ack;
mod batch;
mod component;
pub mod config_watch;
mod contract;
mod processor;
mod queue;
mod sources;
pub mod testkit;
pub mod writes;

use std::sync::Arc;
use std::time::Duration;

use mw_model::{Event, Sample};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;

pub use ack::{AckOutcome, AckReceiver, AckShare};
pub use batch::{Batch, Wants};
pub use component::{BuildError, Component, Parts, config_registry};
pub use config_watch::{ConfigOutcome, ConfigRevision, ConfigWatch};
pub use contract::{BoxFuture, Shutdown, Sink, SinkOptions, Source, SourceContext};
pub use processor::{DeadbandComponent, DeadbandProcessor, Processor};
pub use sources::{SourceHandle, SourceRegistry, SourceState, SourceStatus};
pub use writes::{WriteError, WriteReceiver, WriteRegistry, WriteRequest};

use ack::AckInner;
use queue::{Pushed, Queue};

/// What the fan-out does when a sink's queue is full. Set per sink.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Overload {
    /// Wait for the sink (backpressure to the sources).
    #[default]
    Block,
    /// Drop the incoming batch for that sink and count it.
    DropNewest,
    /// Drop the oldest queued batch for that sink, queue the new one, and count it.
    DropOldest,
}

impl Overload {
    /// The policy a config file names.
    pub fn from_config(p: mw_config::OverloadPolicy) -> Overload {
        match p {
            mw_config::OverloadPolicy::Block => Overload::Block,
            mw_config::OverloadPolicy::DropNewest => Overload::DropNewest,
            mw_config::OverloadPolicy::DropOldest => Overload::DropOldest,
        }
    }
}

/// Bus sizing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusConfig {
    /// Batches queued between sources and the fan-out.
    pub capacity: usize,
    /// Acknowledgements that may be pending at once.
    pub max_pending_acks: usize,
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig {
            capacity: 1024,
            max_pending_acks: 4096,
        }
    }
}

impl BusConfig {
    pub fn from_config(p: &mw_config::PipelineConfig) -> BusConfig {
        BusConfig {
            capacity: p.bus_capacity,
            max_pending_acks: p.max_pending_acks,
        }
    }
}

/// The bus is closed (shutdown in progress).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusClosed;

impl std::fmt::Display for BusClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the bus is closed")
    }
}

impl std::error::Error for BusClosed {}

/// A batch in the ingress queue, with the fan-out's hold on its acknowledgement.
struct Envelope {
    batch: Batch,
    ack: Option<Arc<AckInner>>,
}

/// Handle a source uses to publish batches. Cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    tx: mpsc::Sender<Envelope>,
    acks: Arc<Semaphore>,
}

impl Publisher {
    /// Publishes samples, waiting while the ingress queue is full. Empty batches are ignored.
    pub async fn publish(&self, samples: Vec<Sample>) -> Result<(), BusClosed> {
        self.send(Batch::from_samples(samples)).await
    }

    /// Publishes events, waiting while the ingress queue is full.
    pub async fn publish_events(&self, events: Vec<Event>) -> Result<(), BusClosed> {
        self.send(Batch::from_events(events)).await
    }

    /// Publishes a batch, waiting while the ingress queue is full. Empty batches are ignored.
    pub async fn send(&self, batch: Batch) -> Result<(), BusClosed> {
        if batch.is_empty() {
            return Ok(());
        }
        let env = Envelope { batch, ack: None };
        self.tx.send(env).await.map_err(|_| BusClosed)
    }

    /// Publishes a batch and returns its acknowledgement. Waits first for a pending-ack slot,
    /// then while the ingress queue is full. An empty batch is committed at once.
    pub async fn send_with_ack(&self, batch: Batch) -> Result<AckReceiver, BusClosed> {
        let permit = self
            .acks
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| BusClosed)?;
        let (inner, rx) = AckInner::new(Some(permit));
        if batch.is_empty() {
            return Ok(rx);
        }
        let env = Envelope {
            batch,
            ack: Some(inner),
        };
        self.tx.send(env).await.map_err(|_| BusClosed)?;
        Ok(rx)
    }

    /// Free slots in the ingress queue.
    pub fn free_capacity(&self) -> usize {
        self.tx.capacity()
    }

    /// Acknowledgements that may still be asked for before `send_with_ack` waits.
    pub fn free_ack_slots(&self) -> usize {
        self.acks.available_permits()
    }
}

/// One batch handed to one sink, with that sink's share of the acknowledgement (durable sinks
/// only).
pub struct Delivery {
    pub batch: Arc<Batch>,
    ack: Option<AckShare>,
}

impl Delivery {
    /// Settles the delivery as durable (a no-op for non-durable sinks).
    pub fn commit(mut self) {
        if let Some(a) = self.ack.take() {
            a.commit();
        }
    }

    /// Settles the delivery as failed (a no-op for non-durable sinks).
    pub fn fail(mut self, reason: impl Into<String>) {
        if let Some(a) = self.ack.take() {
            a.fail(reason);
        }
    }

    /// Takes the acknowledgement share out, to settle it later (after a group commit).
    pub fn take_ack(&mut self) -> Option<AckShare> {
        self.ack.take()
    }

    /// True if somebody waits for this delivery to be settled.
    pub fn has_ack(&self) -> bool {
        self.ack.is_some()
    }

    fn dropped(mut self, reason: &str) {
        if let Some(a) = self.ack.take() {
            a.dropped(reason);
        }
    }
}

/// A sink's end of the bus: its own bounded queue.
pub struct SinkInput {
    name: Arc<str>,
    queue: Arc<Queue>,
}

impl SinkInput {
    /// The next delivery, in publish order; `None` once the bus is closed and all delivered.
    pub async fn recv(&mut self) -> Option<Delivery> {
        self.queue.pop().await
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for SinkInput {
    fn drop(&mut self) {
        for d in self.queue.close_receiver() {
            d.fail(format!("sink {} stopped", self.name));
        }
    }
}

struct SinkSlot {
    name: Arc<str>,
    overload: Overload,
    wants: Wants,
    durable: bool,
    queue: Arc<Queue>,
    depth: metrics::Gauge,
    sent: metrics::Counter,
    sent_events: metrics::Counter,
    discarded: metrics::Counter,
}

/// Assembles the bus: publishers, processors, sinks and sources, then [`BusBuilder::start`].
pub struct BusBuilder {
    tx: mpsc::Sender<Envelope>,
    rx: mpsc::Receiver<Envelope>,
    acks: Arc<Semaphore>,
    processors: Vec<Box<dyn Processor>>,
    slots: Vec<SinkSlot>,
    sinks: Vec<(Box<dyn Sink>, SinkInput)>,
    sources: Vec<Box<dyn Source>>,
}

impl BusBuilder {
    pub fn new(config: BusConfig) -> BusBuilder {
        let (tx, rx) = mpsc::channel(config.capacity.max(1));
        BusBuilder {
            tx,
            rx,
            acks: Arc::new(Semaphore::new(config.max_pending_acks.max(1))),
            processors: Vec::new(),
            slots: Vec::new(),
            sinks: Vec::new(),
            sources: Vec::new(),
        }
    }

    pub fn publisher(&self) -> Publisher {
        Publisher {
            tx: self.tx.clone(),
            acks: self.acks.clone(),
        }
    }

    /// Adds a processor; processors run in the order added, before the fan-out.
    pub fn processor(&mut self, p: Box<dyn Processor>) {
        self.processors.push(p);
    }

    /// Adds a sink's queue and returns its end (for sinks driven by hand; [`BusBuilder::sink`]
    /// runs a [`Sink`]).
    pub fn subscribe(&mut self, opts: SinkOptions) -> SinkInput {
        let name: Arc<str> = Arc::from(opts.name.as_str());
        let queue = Arc::new(Queue::new(opts.capacity));
        let label = |n: &'static str| metrics::counter!(n, "component" => "bus", "instance" => opts.name.clone());
        self.slots.push(SinkSlot {
            name: name.clone(),
            overload: opts.overload,
            wants: opts.wants,
            durable: opts.durable,
            queue: queue.clone(),
            depth: metrics::gauge!("mw_queue_depth", "component" => "bus", "instance" => opts.name.clone()),
            sent: label("mw_sent_samples_total"),
            sent_events: label("mw_sent_events_total"),
            discarded: metrics::counter!("mw_discarded_samples_total", "component" => "bus",
                "instance" => opts.name.clone(), "reason" => "sink_full"),
        });
        SinkInput { name, queue }
    }

    /// Adds a sink, run as its own task from [`BusBuilder::start`].
    pub fn sink(&mut self, sink: Box<dyn Sink>) {
        let input = self.subscribe(sink.options());
        self.sinks.push((sink, input));
    }

    /// Adds a source, started from [`BusBuilder::start`] with a publisher, a status handle and
    /// the shutdown signal.
    pub fn source(&mut self, source: Box<dyn Source>) {
        self.sources.push(source);
    }

    /// Adds every part a component built.
    pub fn parts(&mut self, parts: Parts) {
        let Parts {
            sources,
            processors,
            sinks,
            ..
        } = parts;
        for p in processors {
            self.processor(p);
        }
        for s in sinks {
            self.sink(s);
        }
        for s in sources {
            self.source(s);
        }
    }

    /// Starts the fan-out, the sinks and the sources (each registered in `registry` for its
    /// status). The builder's own publisher handle is dropped here, so the bus shuts down once
    /// the sources stopped and every other publisher handed out was dropped.
    pub fn start(self, registry: &SourceRegistry) -> RunningBus {
        let BusBuilder {
            tx,
            rx,
            acks,
            processors,
            slots,
            sinks,
            sources,
        } = self;
        let fan_out = tokio::spawn(fan_out(rx, processors, slots));
        let sinks = sinks
            .into_iter()
            .map(|(sink, input)| tokio::spawn(sink.run(input)))
            .collect();
        let (stop, shutdown) = Shutdown::channel();
        let sources = sources
            .into_iter()
            .map(|s| {
                let cx = SourceContext {
                    publisher: Publisher {
                        tx: tx.clone(),
                        acks: acks.clone(),
                    },
                    status: registry.register(s.component(), &s.instance()),
                    shutdown: shutdown.clone(),
                };
                tokio::spawn(s.run(cx))
            })
            .collect();
        drop(tx);
        RunningBus {
            stop,
            shutdown,
            sources,
            fan_out,
            sinks,
        }
    }
}

/// A started bus: its tasks and the shutdown signal its sources watch.
pub struct RunningBus {
    stop: watch::Sender<bool>,
    shutdown: Shutdown,
    sources: Vec<JoinHandle<()>>,
    fan_out: JoinHandle<()>,
    sinks: Vec<JoinHandle<()>>,
}

impl RunningBus {
    /// The signal the sources watch (other tasks may watch it too).
    pub fn shutdown_signal(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Signals the sources to stop and waits, in order, for the sources, the fan-out (which
    /// ends once every other publisher is dropped too) and the sinks (which drain their queues).
    /// Gives up after `grace`, returning false.
    pub async fn stop(self, grace: Duration) -> bool {
        let _ = self.stop.send(true);
        let orderly = async {
            for s in self.sources {
                let _ = s.await;
            }
            let _ = self.fan_out.await;
            for s in self.sinks {
                let _ = s.await;
            }
        };
        tokio::time::timeout(grace, orderly).await.is_ok()
    }
}

async fn fan_out(
    mut rx: mpsc::Receiver<Envelope>,
    mut processors: Vec<Box<dyn Processor>>,
    mut sinks: Vec<SinkSlot>,
) {
    let ingress_depth =
        metrics::gauge!("mw_queue_depth", "component" => "bus", "instance" => "ingress");
    while let Some(Envelope { mut batch, ack }) = rx.recv().await {
        ingress_depth.set(rx.len() as f64);
        for p in processors.iter_mut() {
            p.process(&mut batch);
        }
        if batch.is_empty() {
            continue; // `ack` drops here: nothing was left to keep
        }
        let batch = Arc::new(batch);
        let n = batch.samples.len() as u64;
        let n_events = batch.events.len() as u64;
        let mut closed = Vec::new();
        for (i, sink) in sinks.iter().enumerate() {
            if !sink.wants.accepts(&batch) {
                continue;
            }
            let share = match (&ack, sink.durable) {
                (Some(a), true) => Some(a.share(&sink.name)),
                _ => None,
            };
            let d = Delivery {
                batch: batch.clone(),
                ack: share,
            };
            let delivered = match sink.overload {
                Overload::Block => match sink.queue.push(d).await {
                    Ok(()) => true,
                    Err(back) => {
                        back.fail(format!("sink {} stopped", sink.name));
                        false
                    }
                },
                policy => match sink.queue.try_push(d, policy == Overload::DropOldest) {
                    Pushed::Queued => true,
                    Pushed::Full(dropped) => {
                        discard(sink, dropped);
                        continue;
                    }
                    Pushed::Evicted(old) => {
                        discard(sink, old);
                        true
                    }
                    Pushed::Closed(back) => {
                        back.fail(format!("sink {} stopped", sink.name));
                        false
                    }
                },
            };
            if delivered {
                sink.sent.increment(n);
                if n_events > 0 {
                    sink.sent_events.increment(n_events);
                }
            } else {
                closed.push(i);
            }
            sink.depth.set(sink.queue.len() as f64);
        }
        drop(ack);
        for i in closed.into_iter().rev() {
            tracing::warn!(sink = %sinks[i].name, "sink stopped reading; it receives no more batches");
            sinks.remove(i);
        }
    }
    for s in &sinks {
        s.queue.close_sender();
    }
    tracing::debug!("bus ingress closed; fan-out finished");
}

/// Counts and settles a delivery the sink's overload policy dropped.
fn discard(sink: &SinkSlot, d: Delivery) {
    let n = d.batch.samples.len() as u64;
    sink.discarded.increment(n);
    tracing::debug!(sink = %sink.name, samples = n, policy = ?sink.overload, "sink queue full, batch dropped");
    d.dropped(match sink.overload {
        Overload::DropOldest => "queue full (drop_oldest)",
        _ => "queue full (drop_newest)",
    });
}

#[cfg(test)]
mod tests;
