//! The broker's publishes as a bus source: `[[mqtt.broker.ingest]]` rules (a topic filter, a
//! payload mapping and a tag template, the same keys and mapping as `[[mqtt.client.subscribe]]`,
//! see [`crate::client::map`]) turn what clients publish to the embedded broker into samples,
//! in process — no MQTT client connected to the broker itself.
//!
//! The source reads an internal subscription of the process ([`Broker::tap`]) holding every
//! rule's filter, with a queue of `ingest_queue` deliveries. It takes what clients publish
//! (and their wills), not what the process publishes itself: the UNS sink's messages are
//! samples already, and taking them again would loop.
//!
//! # Overload
//! The source publishes each batch before it takes the next from its queue, so a full bus stops
//! it; its queue then fills, and the broker's flow control applies to the clients publishing into
//! it as to any subscriber: a publisher whose message found the queue full is not read until it
//! drained to ¾, for at most `max_publish_wait_ms`; after that the queue is marked slow and what
//! comes beyond `ingest_queue` is dropped and counted (`mw_mqtt_dropped_total{reason=
//! "slow_consumer"}`, logged by the connection) until it drains. Publishes of the process
//! itself (the UNS sink) never wait.
//!
//! # Acknowledgements
//! A client's QoS 1 PUBACK (QoS 2 PUBREC) for a message an ingest rule takes is sent only once
//! the bus committed its samples — every durable sink (the historian, an uplink) has them — so
//! an acknowledged publish survives a crash ([`crate::broker::Settle`]; the connection keeps
//! its acknowledgements in publish order, a later one waiting for an earlier). If a sink
//! dropped or failed them, an MQTT 5 client gets reason 0x80 (unspecified error) and an MQTT
//! 3.1.1 client, which has no negative acknowledgement, is disconnected so that it publishes
//! again. A payload that gives no sample (no tag could be made) is acknowledged at once. QoS 0
//! publishes are what they are: unacknowledged, lost with the queue on a crash.
//!
//! # Bad payloads
//! As for the client: a payload without a value is a bad sample with the reason, counted in
//! `mw_errors_total{component="mqtt-broker",instance="ingest",stage="processing",
//! error_type="bad_payload"}` (`"bad_tag"` when no tag path could be made; no sample then),
//! logged at most once a minute per topic.
//!
//! # Restart
//! Retained messages restored at start are not ingested again (the subscription is made after
//! the restore and takes no retained messages); only publishes received while running are.

use mw_bus::{BoxFuture, Source, SourceContext, SourceState};

use crate::client::RateLog;
use crate::client::config::Subscription;
use crate::client::map;
use crate::{Broker, Tap};

/// Messages turned into one batch at most (whatever is queued when the source takes the next).
pub const MAX_BATCH_MESSAGES: usize = 256;

/// The ingest source; see the module header.
pub struct IngestSource {
    tap: Tap,
    rules: Vec<Subscription>,
}

impl IngestSource {
    /// Subscribes to every rule's filter on `broker` with a queue of `capacity` deliveries.
    pub fn new(broker: &Broker, rules: Vec<Subscription>, capacity: usize) -> Result<Self, String> {
        let filters: Vec<&str> = rules.iter().map(|r| r.filter.as_str()).collect();
        let tap = broker.tap_acked(&filters, capacity)?;
        Ok(IngestSource { tap, rules })
    }
}

impl Source for IngestSource {
    fn component(&self) -> &'static str {
        "mqtt-broker"
    }

    fn instance(&self) -> String {
        "ingest".into()
    }

    fn run(self: Box<Self>, cx: SourceContext) -> BoxFuture<()> {
        Box::pin(run(*self, cx))
    }
}

async fn run(src: IngestSource, cx: SourceContext) {
    let IngestSource { tap, rules } = src;
    let counter = |n: &'static str| metrics::counter!(n, "component" => "mqtt-broker", "instance" => "ingest");
    let received = counter("mw_received_samples_total");
    let received_bytes = counter("mw_received_bytes_total");
    let bad_payloads = metrics::counter!("mw_errors_total", "component" => "mqtt-broker",
        "instance" => "ingest", "stage" => "processing", "error_type" => "bad_payload");
    let bad_tags = metrics::counter!("mw_errors_total", "component" => "mqtt-broker",
        "instance" => "ingest", "stage" => "processing", "error_type" => "bad_tag");
    let mut log = RateLog::new("mqtt ingest");
    let mut shutdown = cx.shutdown.clone();
    cx.status.set_state(SourceState::Up);
    loop {
        let first = tokio::select! {
            biased;
            _ = shutdown.wait() => break,
            d = tap.recv() => d,
        };
        let now = mw_model::now_ns();
        let mut samples = Vec::new();
        // the QoS 1/2 publishers waiting for this batch's commit
        let mut settles = Vec::new();
        let mut bytes = 0u64;
        let mut next = Some(first);
        let mut taken = 0;
        while let Some(d) = next.take() {
            taken += 1;
            if taken < MAX_BATCH_MESSAGES {
                next = tap.try_recv();
            }
            if d.msg.from.is_none() {
                // the process's own publish (the UNS sink): already a sample
                continue;
            }
            settles.extend(d.settle.clone());
            bytes += d.msg.payload.len() as u64;
            let m = map::map_matching(&rules, &d.msg.topic, &d.msg.payload, now);
            if let Some(why) = m.bad_payloads.first() {
                bad_payloads.increment(m.bad_payloads.len() as u64);
                log.hit("ingest", &d.msg.topic, &format!("bad payload: {why}"));
            }
            if let Some(e) = m.errors.first() {
                bad_tags.increment(m.errors.len() as u64);
                log.hit("ingest", &d.msg.topic, &format!("no tag: {e}"));
            }
            samples.extend(m.samples);
        }
        received_bytes.increment(bytes);
        cx.status.cycle_done(0.0);
        if samples.is_empty() {
            // nothing to keep (payloads without a tag, counted above): taken as they are
            settles.iter().for_each(|s| s.done(true));
            continue;
        }
        received.increment(samples.len() as u64);
        let batch = mw_bus::Batch::from_samples(samples);
        let committed = tokio::select! {
            biased;
            _ = shutdown.wait() => break,
            r = async {
                match cx.publisher.send_with_ack(batch).await {
                    Ok(ack) => Ok(ack.outcome().await),
                    Err(closed) => Err(closed),
                }
            } => match r {
                Ok(outcome) => outcome.is_committed(),
                Err(_) => break,
            },
        };
        // the publishers' PUBACKs (PUBRECs) go out now: after the durable sinks have the
        // samples, or with "not taken" when a sink dropped or failed them
        settles.iter().for_each(|s| s.done(committed));
    }
}
