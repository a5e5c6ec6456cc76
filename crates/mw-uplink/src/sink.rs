//! The uplink's bus sink: every batch's samples and events go into the disk buffer, and the
//! delivery is committed once the buffer has them durably (under its `fsync` policy), so the
//! end-to-end acknowledgement of a write means "in the uplink's buffer". The sink runs the
//! forwarder beside it and stops it when the bus closes.
//!
//! Disconnect (of the upstream): nothing changes here — the sink keeps appending; the buffer's
//! full policy decides when it is full: `block` holds the delivery until the forwarder frees
//! space (the bus queue then fills and backpressure reaches the sources), `drop_oldest`
//! deletes the oldest segment (counted by the buffer) and commits, `drop_newest` refuses the
//! records (counted) and fails the delivery. Overload (of the bus): its queue blocks; it takes
//! every queued delivery at once into one buffer append (one fsync). Restart: the buffer reopens
//! with everything committed before.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::FutureExt;
use mw_buffer::{Buffer, BufferError, format::framed_len};
use mw_bus::{BoxFuture, Delivery, Sink, SinkInput, SinkOptions};
use mw_model::TagPath;
use tokio::sync::watch;

use crate::forward::{self, ForwarderConfig, StatusHandle};
use crate::wire;

/// Deliveries taken into one append at most.
const GROUP: usize = 256;

/// The sink (see the module docs).
pub struct UplinkSink {
    pub(crate) opts: SinkOptions,
    pub(crate) buffer: Buffer,
    pub(crate) forwarder: ForwarderConfig,
    /// Unit of each tag that has one.
    pub(crate) units: Arc<HashMap<TagPath, String>>,
    pub(crate) status: StatusHandle,
    /// Largest bytes appended at once (half a segment).
    pub(crate) chunk_bytes: u64,
    /// Samples per buffer record (`[[uplink]] pack`).
    pub(crate) pack: usize,
    /// Set: the upstream is VictoriaMetrics, not NATS (the forwarder's URLs are unused).
    pub(crate) victoria_metrics: Option<crate::vm::VmUrl>,
    /// VictoriaMetrics: how long a record is held after its 2xx.
    pub(crate) hold: std::time::Duration,
    /// Set: the upstream is this MQTT broker, not NATS.
    pub(crate) mqtt: Option<crate::mqtt::MqttUpstream>,
}

impl UplinkSink {
    /// The status the forwarder reports.
    pub fn status(&self) -> StatusHandle {
        self.status.clone()
    }

    /// The buffer (for tests and benchmarks).
    pub fn buffer(&self) -> Buffer {
        self.buffer.clone()
    }
}

impl Sink for UplinkSink {
    fn options(&self) -> SinkOptions {
        self.opts.clone()
    }

    fn run(mut self: Box<Self>, mut input: SinkInput) -> BoxFuture<()> {
        Box::pin(async move {
            let (stop_tx, stop_rx) = watch::channel(false);
            let mqtt = self.mqtt.take();
            let fwd = match (&self.victoria_metrics, mqtt) {
                (_, Some(up)) => tokio::spawn(forward::run_upstream(
                    self.forwarder.name.clone(),
                    self.forwarder.batch,
                    up,
                    self.buffer.clone(),
                    self.status.clone(),
                    stop_rx,
                )),
                (None, None) => tokio::spawn(forward::run(
                    self.forwarder.clone(),
                    self.buffer.clone(),
                    self.status.clone(),
                    stop_rx,
                )),
                (Some(url), None) => tokio::spawn(forward::run_upstream(
                    self.forwarder.name.clone(),
                    self.forwarder.batch,
                    crate::vm::VmUpstream::new(url.clone(), &self.forwarder.name, self.hold),
                    self.buffer.clone(),
                    self.status.clone(),
                    stop_rx,
                )),
            };
            let site = self.forwarder.site.clone();
            let mut warned = false;
            while let Some(first) = input.recv().await {
                let mut group = vec![first];
                while group.len() < GROUP {
                    match input.recv().now_or_never() {
                        Some(Some(d)) => group.push(d),
                        _ => break,
                    }
                }
                match self.store(&site, &group).await {
                    Ok(()) => {
                        warned = false;
                        group.into_iter().for_each(Delivery::commit);
                    }
                    Err(e) => {
                        if !warned {
                            tracing::error!(uplink = %self.forwarder.name, error = %e,
                                "uplink cannot buffer samples; they are not acknowledged");
                            warned = true;
                        }
                        let reason = e.to_string();
                        for d in group {
                            d.fail(reason.clone());
                        }
                    }
                }
            }
            let _ = stop_tx.send(true);
            let _ = fwd.await;
            let b = self.buffer.clone();
            let _ = tokio::task::spawn_blocking(move || b.close()).await;
        })
    }
}

impl UplinkSink {
    fn unit(&self, s: &mw_model::Sample) -> Option<&str> {
        self.units.get(&s.tag).map(String::as_str)
    }

    async fn store(&self, site: &str, group: &[Delivery]) -> Result<(), BufferError> {
        let mut chunk: Vec<(i64, Vec<u8>)> = Vec::new();
        let mut bytes = 0u64;
        let records: Vec<(i64, Vec<u8>)> = if self.pack > 1 {
            // packs span the group's deliveries (what one append holds), in bus order; the
            // group's events follow them
            let all: Vec<&mw_model::Sample> =
                group.iter().flat_map(|d| d.batch.samples.iter()).collect();
            all.chunks(self.pack)
                .map(|p| {
                    let rec = wire::encode_pack(site, p.iter().map(|s| (*s, self.unit(s))));
                    (p[0].receive_ts, rec)
                })
                .chain(
                    group
                        .iter()
                        .filter(|_| self.victoria_metrics.is_none())
                        .flat_map(|d| {
                            d.batch
                                .events
                                .iter()
                                .map(|e| (e.ts, wire::encode_event(site, e)))
                        }),
                )
                .collect()
        } else {
            group
                .iter()
                .flat_map(|d| {
                    d.batch
                        .samples
                        .iter()
                        .map(|s| (s.receive_ts, wire::encode_sample(site, s, self.unit(s))))
                        .chain(
                            d.batch
                                .events
                                .iter()
                                // VictoriaMetrics keeps samples only
                                .filter(|_| self.victoria_metrics.is_none())
                                .map(|e| (e.ts, wire::encode_event(site, e))),
                        )
                })
                .collect()
        };
        for r in records {
            let n = framed_len(r.1.len());
            if bytes + n > self.chunk_bytes && !chunk.is_empty() {
                self.buffer
                    .append_batch_async(std::mem::take(&mut chunk))
                    .await?;
                bytes = 0;
            }
            bytes += n;
            chunk.push(r);
        }
        if !chunk.is_empty() {
            self.buffer.append_batch_async(chunk).await?;
        }
        Ok(())
    }
}
