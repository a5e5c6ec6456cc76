//! The bounded pipeline between sources and sinks.
//!
//! ```text
//! sources ──publish().await──► ingress queue (bounded) ──► processors ──► fan-out ──► one bounded queue per sink
//! ```
//! * Sources await [`Publisher::publish`]: when the ingress queue is full they wait (backpressure).
//! * The fan-out hands each batch to every sink. When a sink's queue is full it follows the bus's
//!   [`Overload`] policy: `Block` waits (backpressure reaches the sources through the ingress queue);
//!   `DropNewest` drops the batch *for that sink only* and counts the samples in
//!   `mw_discarded_samples_total{component="bus",instance=SINK,reason="sink_full"}`.
//! * Nothing here is unbounded. Batches are shared (`Arc`) so fan-out never copies samples.
//! * Order per tag is preserved: one ingress queue, one fan-out task, FIFO sink queues.
//!
//! Shutdown: when every [`Publisher`] is dropped the fan-out drains the ingress queue, then closes
//! the sink queues; each [`Subscriber::recv`] then returns `None` after the last batch.

mod processor;
mod sources;

use std::sync::Arc;

use mw_model::Sample;
use tokio::sync::mpsc;

pub use processor::{DeadbandProcessor, Processor};
pub use sources::{SourceHandle, SourceRegistry, SourceState, SourceStatus};

/// A batch of samples as carried by the bus (shared between sinks).
pub type Batch = Arc<Vec<Sample>>;

/// What the fan-out does when a sink's queue is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Overload {
    /// Wait for the sink (backpressure to the sources).
    #[default]
    Block,
    /// Drop the batch for that sink and count it.
    DropNewest,
}

/// Bus sizing and policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusConfig {
    /// Batches queued between sources and the fan-out.
    pub capacity: usize,
    /// Batches queued per sink.
    pub sink_capacity: usize,
    pub overload: Overload,
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig {
            capacity: 1024,
            sink_capacity: 1024,
            overload: Overload::Block,
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

/// Handle a source uses to publish batches. Cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    tx: mpsc::Sender<Batch>,
}

impl Publisher {
    /// Publishes one batch, waiting while the ingress queue is full. Empty batches are ignored.
    pub async fn publish(&self, samples: Vec<Sample>) -> Result<(), BusClosed> {
        if samples.is_empty() {
            return Ok(());
        }
        self.tx.send(Arc::new(samples)).await.map_err(|_| BusClosed)
    }

    /// Free slots in the ingress queue.
    pub fn free_capacity(&self) -> usize {
        self.tx.capacity()
    }
}

/// A sink's end of the bus.
pub struct Subscriber {
    name: String,
    rx: mpsc::Receiver<Batch>,
}

impl Subscriber {
    pub async fn recv(&mut self) -> Option<Batch> {
        self.rx.recv().await
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

struct SinkSlot {
    name: String,
    tx: mpsc::Sender<Batch>,
}

/// Assembles the bus: publishers, processors and sinks, then [`BusBuilder::start`].
pub struct BusBuilder {
    config: BusConfig,
    tx: mpsc::Sender<Batch>,
    rx: mpsc::Receiver<Batch>,
    processors: Vec<Box<dyn Processor>>,
    sinks: Vec<SinkSlot>,
}

impl BusBuilder {
    pub fn new(config: BusConfig) -> BusBuilder {
        let config = BusConfig {
            capacity: config.capacity.max(1),
            sink_capacity: config.sink_capacity.max(1),
            overload: config.overload,
        };
        let (tx, rx) = mpsc::channel(config.capacity);
        BusBuilder {
            config,
            tx,
            rx,
            processors: Vec::new(),
            sinks: Vec::new(),
        }
    }

    pub fn publisher(&self) -> Publisher {
        Publisher {
            tx: self.tx.clone(),
        }
    }

    /// Adds a processor; processors run in the order added, before the fan-out.
    pub fn processor(&mut self, p: Box<dyn Processor>) {
        self.processors.push(p);
    }

    /// Adds a sink with its own bounded queue.
    pub fn subscribe(&mut self, name: &str) -> Subscriber {
        let (tx, rx) = mpsc::channel(self.config.sink_capacity);
        self.sinks.push(SinkSlot {
            name: name.to_owned(),
            tx,
        });
        Subscriber {
            name: name.to_owned(),
            rx,
        }
    }

    /// Starts the fan-out task. The builder's own publisher handle is dropped here, so the bus
    /// shuts down once every publisher handed out has been dropped.
    pub fn start(self) -> tokio::task::JoinHandle<()> {
        let BusBuilder {
            config,
            tx,
            rx,
            processors,
            sinks,
        } = self;
        drop(tx);
        tokio::spawn(fan_out(config, rx, processors, sinks))
    }
}

async fn fan_out(
    config: BusConfig,
    mut rx: mpsc::Receiver<Batch>,
    mut processors: Vec<Box<dyn Processor>>,
    mut sinks: Vec<SinkSlot>,
) {
    let ingress_depth =
        metrics::gauge!("mw_queue_depth", "component" => "bus", "instance" => "ingress");
    let depth_gauges: Vec<_> = sinks
        .iter()
        .map(|s| metrics::gauge!("mw_queue_depth", "component" => "bus", "instance" => s.name.clone()))
        .collect();
    while let Some(batch) = rx.recv().await {
        ingress_depth.set(rx.len() as f64);
        let batch = if processors.is_empty() {
            batch
        } else {
            let mut samples = Arc::try_unwrap(batch).unwrap_or_else(|shared| (*shared).clone());
            for p in processors.iter_mut() {
                samples = p.process(samples);
            }
            if samples.is_empty() {
                continue;
            }
            Arc::new(samples)
        };
        let n = batch.len() as u64;
        let mut closed = Vec::new();
        for (i, sink) in sinks.iter().enumerate() {
            let delivered = match config.overload {
                Overload::Block => sink.tx.send(batch.clone()).await.is_ok(),
                Overload::DropNewest => match sink.tx.try_send(batch.clone()) {
                    Ok(()) => true,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        metrics::counter!("mw_discarded_samples_total", "component" => "bus",
                            "instance" => sink.name.clone(), "reason" => "sink_full")
                        .increment(n);
                        tracing::debug!(sink = %sink.name, samples = n, "sink queue full, batch dropped");
                        continue;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => false,
                },
            };
            if delivered {
                metrics::counter!("mw_sent_samples_total", "component" => "bus", "instance" => sink.name.clone())
                    .increment(n);
            } else {
                closed.push(i);
            }
            depth_gauges[i].set((sink.tx.max_capacity() - sink.tx.capacity()) as f64);
        }
        for i in closed.into_iter().rev() {
            tracing::warn!(sink = %sinks[i].name, "sink closed its queue; it receives no more samples");
            sinks.remove(i);
        }
    }
    tracing::debug!("bus ingress closed; fan-out finished");
}

#[cfg(test)]
mod tests {
    use super::*;
    use mw_model::{TagPath, Value};

    fn s(tag: &str, v: f64) -> Sample {
        Sample::good(TagPath::new(tag).unwrap(), Value::F64(v), 0)
    }

    #[tokio::test]
    async fn fans_out_in_order_and_closes() {
        let mut b = BusBuilder::new(BusConfig {
            capacity: 2,
            sink_capacity: 2,
            overload: Overload::Block,
        });
        let p = b.publisher();
        let mut s1 = b.subscribe("one");
        let mut s2 = b.subscribe("two");
        let h = b.start();
        let prod = tokio::spawn(async move {
            for i in 0..50 {
                p.publish(vec![s("a/b", i as f64)]).await.unwrap();
            }
        });
        // with the Block policy a sink that stops reading stalls everyone, so read both in step
        for i in 0..50 {
            for sub in [&mut s1, &mut s2] {
                let batch = sub.recv().await.unwrap();
                assert_eq!(batch[0].value, Value::F64(i as f64));
            }
        }
        prod.await.unwrap();
        assert!(s1.recv().await.is_none());
        assert!(s2.recv().await.is_none());
        h.await.unwrap();
    }

    #[tokio::test]
    async fn block_policy_backpressures_publishers() {
        let mut b = BusBuilder::new(BusConfig {
            capacity: 1,
            sink_capacity: 1,
            overload: Overload::Block,
        });
        let p = b.publisher();
        let mut sub = b.subscribe("slow");
        let _h = b.start();
        // sink queue (1) + fan-out in hand (1) + ingress (1) fill up; the next publish must wait.
        for i in 0..3 {
            p.publish(vec![s("a/b", i as f64)]).await.unwrap();
        }
        tokio::task::yield_now().await;
        let blocked = tokio::time::timeout(std::time::Duration::from_millis(100), async {
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
        while let Ok(Some(batch)) =
            tokio::time::timeout(std::time::Duration::from_millis(50), sub.recv()).await
        {
            got.push(batch[0].value.as_f64().unwrap());
        }
        assert!(got.len() >= 3);
        assert!(
            got.windows(2).all(|w| w[0] < w[1]),
            "order preserved: {got:?}"
        );
    }

    #[tokio::test]
    async fn drop_policy_drops_for_slow_sink_only() {
        let mut b = BusBuilder::new(BusConfig {
            capacity: 8,
            sink_capacity: 2,
            overload: Overload::DropNewest,
        });
        let p = b.publisher();
        let mut slow = b.subscribe("slow");
        let mut fast = b.subscribe("fast");
        let _h = b.start();
        for i in 0..20 {
            p.publish(vec![s("a/b", i as f64)]).await.unwrap();
            // the fast sink keeps up: it reads every batch as soon as it is published
            let got = fast.recv().await.unwrap();
            assert_eq!(got[0].value, Value::F64(i as f64));
        }
        drop(p);
        assert!(fast.recv().await.is_none());
        // the slow sink never read: it holds the first two batches, the rest were dropped for it only
        let mut slow_vals = Vec::new();
        while let Some(batch) = slow.recv().await {
            slow_vals.push(batch[0].value.as_f64().unwrap());
        }
        assert_eq!(slow_vals, vec![0.0, 1.0]);
    }

    #[tokio::test]
    async fn processors_run_before_fan_out() {
        let mut b = BusBuilder::new(BusConfig::default());
        let p = b.publisher();
        let mut dp = DeadbandProcessor::default();
        dp.set_threshold(TagPath::new("a/b").unwrap(), 1.0);
        b.processor(Box::new(dp));
        let mut sub = b.subscribe("x");
        let _h = b.start();
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
        let batch = sub.recv().await.unwrap();
        let vals: Vec<_> = batch
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
}
