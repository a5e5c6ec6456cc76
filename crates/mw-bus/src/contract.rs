//! The three component contracts: [`Source`], [`crate::Processor`] and [`Sink`].
//!
//! A component is read the same way whatever it speaks: how it starts, what it does when its
//! peer disconnects, when the bus is overloaded, and when it or Millwright restarts.

use std::future::Future;
use std::pin::Pin;

use tokio::sync::watch;

use crate::{Overload, Publisher, SinkInput, SourceHandle, Wants};

/// A boxed, sendable future (what [`Source::run`] and [`Sink::run`] return).
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Turns `true` when the process is shutting down. Cheap to clone.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// A shutdown signal and the sender that triggers it.
    pub fn channel() -> (watch::Sender<bool>, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (tx, Shutdown(rx))
    }

    /// Resolves once shutdown was triggered (or its sender is gone).
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }

    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    /// The underlying watch, for code that selects on it directly.
    pub fn into_watch(self) -> watch::Receiver<bool> {
        self.0
    }
}

/// What a source is started with.
pub struct SourceContext {
    /// Publishes batches onto the bus (waits while the bus is full).
    pub publisher: Publisher,
    /// Reports the source's state (`Up`, `Down(reason)`) and completed cycles, for `/ready`
    /// and `/api/v1/sources`.
    pub status: SourceHandle,
    pub shutdown: Shutdown,
}

/// Something that produces samples and events: a device poller, a listener, a subscription.
///
/// An implementation must:
/// * **publish** through [`SourceContext::publisher`], in the order it observed things, one
///   batch per natural unit of work (a poll cycle, a received message); order per tag is then
///   kept to every sink;
/// * **on disconnect** from its peer: mark its state `Down(reason)`, keep publishing what it
///   knows (e.g. bad-quality samples with the reason, never silence that reads as "fine"),
///   publish a `ConnectionChange` event on each transition, and reconnect with a bounded
///   backoff — never busy-loop, never give up silently;
/// * **on overload**: simply await `publish` — the bus applies backpressure; a source holds at
///   most a bounded amount of unpublished data (a poller skips ticks, a listener stops reading
///   its socket or refuses with its protocol's busy answer) and never queues without bound;
///   with acknowledgements it also waits for a pending-ack slot;
/// * **on shutdown**: return within one scheduler turn of [`Shutdown`] turning true, even in the
///   middle of a request (every wait races the signal or is bounded), and drop its connections;
/// * **on restart** (of the peer or of Millwright): start from its configuration alone; a
///   source that keeps state across restarts (an MQTT session) documents where.
pub trait Source: Send + 'static {
    /// The component name used in metrics and status (`modbus`).
    fn component(&self) -> &'static str;
    /// The instance name (device or listener name).
    fn instance(&self) -> String;
    /// Runs until shutdown or until the bus closes.
    fn run(self: Box<Self>, cx: SourceContext) -> BoxFuture<()>;
}

/// How a sink is fed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SinkOptions {
    /// Instance name in metrics and logs (`live`, `historian`).
    pub name: String,
    /// Batches queued for it (at least 1).
    pub capacity: usize,
    /// What the fan-out does when its queue is full.
    pub overload: Overload,
    pub wants: Wants,
    /// A durable sink settles the acknowledgement share of every delivery it gets: commit once
    /// the batch is durable (on disk, acknowledged upstream), fail otherwise. A non-durable sink
    /// never holds an acknowledgement back.
    pub durable: bool,
}

impl SinkOptions {
    /// A non-durable sink of samples with a queue of `capacity` batches that blocks when full.
    pub fn new(name: impl Into<String>, capacity: usize) -> SinkOptions {
        SinkOptions {
            name: name.into(),
            capacity,
            overload: Overload::Block,
            wants: Wants::Samples,
            durable: false,
        }
    }

    pub fn overload(mut self, overload: Overload) -> Self {
        self.overload = overload;
        self
    }

    pub fn wants(mut self, wants: Wants) -> Self {
        self.wants = wants;
        self
    }

    pub fn durable(mut self) -> Self {
        self.durable = true;
        self
    }
}

/// Something that consumes batches: the live store, the historian, a forwarder, a publisher.
///
/// An implementation must:
/// * **consume** from its own bounded [`SinkInput`] until it returns `None` (the bus is closed
///   and every batch before that was delivered), in order;
/// * **acknowledge** (durable sinks): settle every delivery's share — commit only once the batch
///   is durable, fail with a reason otherwise; a share dropped unsettled counts as failed;
/// * **on overload**: nothing special — its own [`Overload`] policy, set per sink, decides what
///   the fan-out does when its queue is full: `Block` (backpressure reaches the sources, so only
///   sinks that must not lose data should block), `DropNewest` or `DropOldest` (counted in
///   `mw_discarded_samples_total{component="bus",instance=SINK,reason="sink_full"}`, their
///   acknowledgements settle as dropped). A sink with a buffer of its own (a disk buffer) takes
///   deliveries promptly into it and applies that buffer's full policy, counting what it drops;
/// * **on disconnect** from its upstream (a forwarder): keep taking deliveries into its own
///   buffer or fail their acknowledgements — never stall the fan-out for longer than its
///   policy says;
/// * **on shutdown**: drain what is queued and return; the bus closes its input after the
///   sources stopped, so everything they published is offered first;
/// * **on restart**: a durable sink recovers what it committed before (replay its log); what
///   was not committed was never acknowledged, so the source still owns it.
pub trait Sink: Send + 'static {
    fn options(&self) -> SinkOptions;
    /// Runs until its input is closed and drained.
    fn run(self: Box<Self>, input: SinkInput) -> BoxFuture<()>;
}
