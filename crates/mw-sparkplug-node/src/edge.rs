//! The edge node runtime: a bus sink of the pipeline's samples and one connection task (a bus
//! source, for its status and connection events) that runs [`mw_sparkplug::edge::EdgeNode`] and
//! executes its actions on an MQTT connection.
//!
//! - Samples become metrics by [`crate::mapping::EdgeMapping`]. A tag seen for the first time is
//!   *defined*: once online, its device is born again (DBIRTH with every metric it has), never
//!   sent as DDATA a host could not resolve. Values are reported by exception; a bad sample goes
//!   out as null with its `Quality` property ([`mw_sparkplug::quality`]).
//! - Each connection is a new rumqttc client whose last will is the NDEATH of that session's
//!   bdSeq; the next bdSeq is persisted ([`crate::bdseq`]) before connecting.
//! - NCMD `Node Control/Rebirth = true` republishes every birth.
//! - **Writes**: a metric whose tag has an owner in the process's [`mw_bus::WriteRegistry`] (a
//!   Modbus tag configured `writable = true`) is defined writable (`MetricDef::writable`), so the
//!   state machine accepts commands for it. A DCMD (or NCMD) for it is handed to that owner
//!   ([`WRITE_TIMEOUT`], at most [`MAX_WRITES_IN_FLIGHT`] at once, each in its own task so the
//!   session never waits for a device); the new value comes back as DDATA once the owner's next
//!   reading shows it — Sparkplug has no command acknowledgement, so the data is the answer.
//!   Every write is logged and audited (`Audit` event, actor `sparkplug`, action `tag.write`,
//!   outcome `ok` / `refused` / `failed` / `busy` / `timeout` …, detail with the topic and value).
//!   Commands for metrics that are not writable, of the wrong type, or for unknown devices or
//!   metrics are refused by the state machine; refusals and failed writes are counted in
//!   `mw_errors_total{component="sparkplug-edge",stage="processing",error_type="write_refused"}`
//!   and `…error_type="write_failed"`.
//!
//! # Disconnect
//! The source goes `Down(reason)`, a `ConnectionChange` event (`source = "sparkplug-edge/EDGE"`)
//! marks each transition, and the next connection comes after a backoff (100 ms doubling up to
//! `backoff_max_ms`). Samples taken meanwhile update the node's values; the births of the next
//! session carry the latest of each. Publishes queued for the lost session are dropped.
//!
//! # Overload
//! The sink is `drop_oldest` (counted by the bus): a slow broker loses intermediate values, not
//! the latest. A delivery is taken only once every publish of the previous one was handed to
//! rumqttc. More than `max_metrics` metrics: further tags are discarded and counted
//! (`mw_discarded_samples_total{reason="too_many_metrics"}`), as are tags the mapping refuses
//! (`reason="unmapped"`).
//!
//! # Restart and stop
//! A stop publishes the NDEATH (QoS 1), then DISCONNECT. A crash leaves the will to the broker.
//! The bdSeq file makes the next process start with the next bdSeq.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use mw_bus::{
    BoxFuture, Delivery, Overload, Publisher, Sink, SinkInput, SinkOptions, Source, SourceContext,
    SourceState, Wants, WriteRegistry,
};
use mw_model::{Event, EventKind, Quality, Sample, TagPath, now_ns};
use mw_mqtt::client::conn::{self, Client, Ev, Will};
use mw_sparkplug::MetricValue;
use mw_sparkplug::edge::{EdgeAction, EdgeEvent, EdgeNode, MetricDef, Reading};
use tokio::sync::mpsc;

use crate::bdseq::BdSeqFile;
use crate::config::EdgeConfig;
use crate::mapping::EdgeMapping;
use crate::session::{self, BACKOFF_MIN, CHANNEL, now_ms};

/// How long a write may take before the command is reported as timed out (the device's own
/// timeout is usually far shorter).
pub const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Writes carried out at once; a command beyond that is refused (`busy`).
pub const MAX_WRITES_IN_FLIGHT: usize = 32;

/// The sink half: hands each delivery to the connection task.
pub struct EdgeSink {
    tx: mpsc::Sender<Delivery>,
    opts: SinkOptions,
}

impl Sink for EdgeSink {
    fn options(&self) -> SinkOptions {
        self.opts.clone()
    }

    fn run(self: Box<Self>, mut input: SinkInput) -> BoxFuture<()> {
        Box::pin(async move {
            while let Some(d) = input.recv().await {
                if self.tx.send(d).await.is_err() {
                    break; // the connection task stopped; the rest fails as the input drops
                }
            }
        })
    }
}

/// The connection task.
pub struct EdgeSource {
    cfg: EdgeConfig,
    password: Option<String>,
    tls: Option<Arc<rustls::ClientConfig>>,
    bdseq: BdSeqFile,
    deliveries: mpsc::Receiver<Delivery>,
    writes: WriteRegistry,
}

/// Makes the two halves of an edge node: reads the password and TLS files, the bdSeq file is
/// read when the task starts. `default_queue` is the sink's queue unless `queue` is set.
pub fn build(
    cfg: EdgeConfig,
    bdseq: BdSeqFile,
    default_queue: usize,
    writes: WriteRegistry,
) -> Result<(EdgeSource, EdgeSink), String> {
    let (password, tls) = conn::load_secrets(&cfg.connection, "[sparkplug.edge]")?;
    let (tx, rx) = mpsc::channel(1);
    let opts = SinkOptions::new(
        format!("sparkplug-edge-{}", cfg.edge_node_id),
        cfg.queue.unwrap_or(default_queue).max(1),
    )
    .wants(Wants::Samples)
    .overload(Overload::DropOldest);
    Ok((
        EdgeSource {
            cfg,
            password,
            tls,
            bdseq,
            deliveries: rx,
            writes,
        },
        EdgeSink { tx, opts },
    ))
}

impl Source for EdgeSource {
    fn component(&self) -> &'static str {
        "sparkplug-edge"
    }

    fn instance(&self) -> String {
        self.cfg.edge_node_id.clone()
    }

    fn run(self: Box<Self>, cx: SourceContext) -> BoxFuture<()> {
        Box::pin(run(*self, cx))
    }
}

struct Counters {
    sent: metrics::Counter,
    unmapped: metrics::Counter,
    too_many: metrics::Counter,
    refused: metrics::Counter,
    write_failed: metrics::Counter,
    conn_errors: metrics::Counter,
    publish_errors: metrics::Counter,
}

/// Turns samples into node events: definitions of new metrics first (per device), then the
/// readings (per device, in sample order).
struct Feeder {
    cfg_tags: Vec<mw_model::TagPattern>,
    mapping: EdgeMapping,
    max_metrics: usize,
    warned: std::collections::HashSet<String>,
    writes: WriteRegistry,
    /// device → metric → tag and its latest value, for commands and their audit records.
    tags: std::collections::HashMap<
        String,
        std::collections::HashMap<String, (TagPath, mw_model::Value)>,
    >,
}

impl Feeder {
    fn events(
        &mut self,
        node: &EdgeNode,
        samples: &[Sample],
        now: u64,
        c: &Counters,
    ) -> Vec<EdgeEvent> {
        let mut defs: BTreeMap<String, Vec<MetricDef>> = BTreeMap::new();
        let mut readings: BTreeMap<String, Vec<Reading>> = BTreeMap::new();
        let mut count = node.metric_count();
        for s in samples {
            if !self.cfg_tags.is_empty() && !self.cfg_tags.iter().any(|p| p.matches(&s.tag)) {
                continue;
            }
            let (device, metric) = match self.mapping.locate(&s.tag) {
                Ok(x) => x,
                Err(e) => {
                    c.unmapped.increment(1);
                    if self.warned.len() < 1000 && self.warned.insert(s.tag.as_str().to_owned()) {
                        tracing::warn!(tag = %s.tag, "sparkplug edge: tag not published: {e}");
                    }
                    continue;
                }
            };
            // the latest value per metric, updated in place (no allocation once a metric is known)
            match self
                .tags
                .get_mut(device.as_str())
                .and_then(|m| m.get_mut(metric.as_str()))
            {
                Some(slot) => slot.1 = s.value.clone(),
                None => {
                    self.tags
                        .entry(device.clone())
                        .or_default()
                        .insert(metric.clone(), (s.tag.clone(), s.value.clone()));
                }
            }
            let bad = matches!(s.quality, Quality::Bad(_));
            let value = MetricValue::from_model(&s.value);
            let known = node.datatype(Some(&device), &metric);
            let pending = defs
                .get(&device)
                .and_then(|ds| ds.iter().find(|d| d.name == metric))
                .map(|d| d.datatype);
            let current = pending.or(known);
            if current.is_none() || (!bad && current != Some(value.datatype())) {
                if current.is_none() {
                    if count >= self.max_metrics {
                        c.too_many.increment(1);
                        if self.warned.len() < 1000 && self.warned.insert(s.tag.as_str().to_owned())
                        {
                            tracing::warn!(tag = %s.tag, max = self.max_metrics,
                                "sparkplug edge: max_metrics reached; tag not published");
                        }
                        continue;
                    }
                    count += 1;
                }
                let ds = defs.entry(device.clone()).or_default();
                ds.retain(|d| d.name != metric);
                ds.push(MetricDef {
                    name: metric.clone(),
                    datatype: value.datatype(),
                    value: (!bad).then(|| value.clone()),
                    writable: self.writes.owner(s.tag.as_str()).is_some(),
                });
            }
            // a bad sample of a metric of another type: its value means nothing anyway
            let value = (!bad || current.is_none_or(|t| t == value.datatype())).then_some(value);
            readings.entry(device).or_default().push(Reading {
                name: metric,
                value,
                quality: s.quality.clone(),
                timestamp: u64::try_from(s.source_ts / 1_000_000).ok(),
            });
        }
        let mut out: Vec<EdgeEvent> = defs
            .into_iter()
            .map(|(d, metrics)| EdgeEvent::Define {
                device: Some(d),
                metrics,
                now,
            })
            .collect();
        out.extend(readings.into_iter().map(|(d, values)| EdgeEvent::Update {
            device: Some(d),
            values,
            now,
        }));
        out
    }
}

/// Publishes handed to rumqttc in order; what does not fit waits for room.
#[derive(Default)]
struct Outbox {
    queue: VecDeque<(String, Bytes, u8)>,
}

impl Outbox {
    fn flush(&mut self, client: &Client, c: &Counters) {
        while let Some((topic, payload, qos)) = self.queue.pop_front() {
            if client
                .try_publish(&topic, qos, false, payload.clone())
                .is_err()
            {
                self.queue.push_front((topic, payload, qos));
                return;
            }
            c.sent.increment(1);
        }
    }
}

/// What carrying out a command's writes needs.
struct Writer<'a> {
    feeder: &'a Feeder,
    publisher: &'a Publisher,
    in_flight: &'a Arc<tokio::sync::Semaphore>,
    source: &'a str,
}

impl Writer<'_> {
    /// Starts one write in its own task; its outcome is logged, counted and audited there.
    fn start(
        &self,
        device: Option<String>,
        name: String,
        value: Option<MetricValue>,
        c: &Counters,
    ) {
        let edge = self.source.to_owned();

        let what = match &device {
            Some(d) => format!("DCMD {d}/{name}"),
            None => format!("NCMD {name}"),
        };
        let found = self
            .feeder
            .tags
            .get(device.as_deref().unwrap_or_default())
            .and_then(|m| m.get(name.as_str()))
            .cloned();
        let Some((tag, old)) = found else {
            c.refused.increment(1);
            tracing::warn!(
                edge,
                "sparkplug edge: {what}: refused: no tag behind this metric"
            );
            return;
        };
        let Some(value) = value.as_ref().and_then(MetricValue::to_model) else {
            c.refused.increment(1);
            tracing::warn!(edge, tag = %tag, "sparkplug edge: {what}: refused: the command carries no scalar value");
            return;
        };
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            // not audited: nothing reached the equipment, and an audit task per refused command
            // would be an unbounded queue under a command flood; logged and counted instead
            c.write_failed.increment(1);
            tracing::warn!(edge, tag = %tag, "sparkplug edge: {what}: refused: {MAX_WRITES_IN_FLIGHT} writes already in progress");
            return;
        };
        let registry = self.feeder.writes.clone();
        let publisher = self.publisher.clone();
        let (refused, failed) = (c.refused.clone(), c.write_failed.clone());
        tokio::spawn(async move {
            let origin = format!("sparkplug {what}");
            let result = registry
                .write(&tag, value.clone(), origin, WRITE_TIMEOUT)
                .await;
            let ev = match &result {
                Ok(()) => {
                    tracing::info!(edge, tag = %tag, value = %value, "sparkplug edge: {what}: written");
                    audit(
                        &edge,
                        &tag,
                        "ok",
                        format!("tag={tag} old={old} value={value} via {what}"),
                    )
                }
                Err(e) => {
                    if matches!(
                        e,
                        mw_bus::WriteError::Refused { .. } | mw_bus::WriteError::NotWritable(_)
                    ) {
                        refused.increment(1);
                    } else {
                        failed.increment(1);
                    }
                    tracing::warn!(edge, tag = %tag, value = %value, "sparkplug edge: {what}: {e}");
                    audit(
                        &edge,
                        &tag,
                        e.kind(),
                        format!("tag={tag} old={old} value={value} via {what}: {e}"),
                    )
                }
            };
            let _ = publisher.publish_events(vec![ev]).await;
            // held until the audit record is on the bus: at most MAX_WRITES_IN_FLIGHT tasks
            // exist, however slow the bus is
            drop(permit);
        });
    }
}

/// The audit record of one commanded write (its target is the tag).
fn audit(source: &str, tag: &TagPath, outcome: &str, detail: String) -> Event {
    Event::new(
        now_ns(),
        source.to_owned(),
        EventKind::Audit {
            actor: "sparkplug".to_owned(),
            action: "tag.write".to_owned(),
            outcome: outcome.to_owned(),
            detail,
        },
    )
    .for_asset(tag.as_str())
}

/// Executes the actions that need no connection, returns the will and queues the rest.
async fn execute(
    actions: Vec<EdgeAction>,
    bdseq: &BdSeqFile,
    client: Option<&Client>,
    outbox: &mut Outbox,
    c: &Counters,
    edge: &str,
    writer: Option<&Writer<'_>>,
) -> Option<Will> {
    let mut will = None;
    for a in actions {
        match a {
            EdgeAction::PersistBdSeq(n) => {
                let f = bdseq.clone();
                let r = tokio::task::spawn_blocking(move || f.save(n)).await;
                match r {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        c.publish_errors.increment(1);
                        tracing::error!(edge, file = %bdseq.path().display(), error = %e,
                            "sparkplug edge: cannot persist bdSeq; a restart may reuse this session's bdSeq");
                    }
                    Err(e) => {
                        tracing::error!(edge, error = %e, "sparkplug edge: bdSeq task failed")
                    }
                }
            }
            EdgeAction::SetWill { topic, payload } => {
                will = Some(Will {
                    topic,
                    payload: Bytes::from(payload),
                    qos: 1,
                    retain: false,
                });
            }
            EdgeAction::Subscribe(filter) => {
                if let Some(cl) = client
                    && let Err(e) = cl.try_subscribe(&filter, 1)
                {
                    tracing::error!(edge, filter, error = %e, "sparkplug edge: cannot subscribe");
                }
            }
            EdgeAction::Publish {
                topic,
                payload,
                qos,
            } => outbox.queue.push_back((topic, Bytes::from(payload), qos)),
            EdgeAction::Write {
                device,
                name,
                value,
            } => match writer {
                Some(w) => w.start(device, name, value, c),
                None => {
                    c.refused.increment(1);
                    tracing::warn!(edge, device = ?device, metric = %name,
                        "sparkplug edge: write refused: the node is not online");
                }
            },
            EdgeAction::Refused { reason } => {
                c.refused.increment(1);
                tracing::warn!(edge, "sparkplug edge: command refused: {reason}");
            }
        }
    }
    if let Some(cl) = client {
        outbox.flush(cl, c);
    }
    will
}

async fn connection_event(
    cx: &SourceContext,
    source: &str,
    up: bool,
    reason: Option<String>,
) -> bool {
    let ev = Event::new(
        now_ns(),
        source.to_owned(),
        EventKind::ConnectionChange { up, reason },
    );
    cx.publisher.publish_events(vec![ev]).await.is_ok()
}

async fn run(src: EdgeSource, cx: SourceContext) {
    let EdgeSource {
        cfg,
        password,
        tls,
        bdseq,
        mut deliveries,
        writes,
    } = src;
    let edge = cfg.edge_node_id.clone();
    let event_source = format!("sparkplug-edge/{edge}");
    let label = |n: &'static str| metrics::counter!(n, "component" => "sparkplug-edge", "instance" => edge.clone());
    let err = |t: &'static str, stage: &'static str| {
        metrics::counter!("mw_errors_total",
        "component" => "sparkplug-edge", "instance" => edge.clone(), "stage" => stage, "error_type" => t)
    };
    let discarded = |r: &'static str| {
        metrics::counter!("mw_discarded_samples_total",
        "component" => "sparkplug-edge", "instance" => edge.clone(), "reason" => r)
    };
    let c = Counters {
        sent: metrics::counter!("mw_sparkplug_messages_sent_total", "component" => "sparkplug-edge", "instance" => edge.clone()),
        unmapped: discarded("unmapped"),
        too_many: discarded("too_many_metrics"),
        refused: err("write_refused", "processing"),
        write_failed: err("write_failed", "processing"),
        conn_errors: err("connection", "sending"),
        publish_errors: err("bdseq_persist", "processing"),
    };
    let received = label("mw_received_samples_total");
    let bd_seq = match bdseq.load() {
        Ok(b) => b.unwrap_or(0),
        Err(e) => {
            tracing::error!(edge = %edge, "sparkplug edge: {e}; starting at bdSeq 0");
            0
        }
    };
    tracing::info!(edge = %edge, group = %cfg.group_id, bd_seq, host = %cfg.connection.host,
        port = cfg.connection.port, "sparkplug edge node starting");
    let mut node = EdgeNode::new(&cfg.group_id, &edge, bd_seq, vec![], vec![]);
    let mut feeder = Feeder {
        cfg_tags: cfg.tags.clone(),
        mapping: EdgeMapping::new(cfg.devices.clone()),
        max_metrics: cfg.max_metrics,
        warned: Default::default(),
        writes,
        tags: Default::default(),
    };
    let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_WRITES_IN_FLIGHT));
    let mut shutdown = cx.shutdown.clone();
    let mut backoff = BACKOFF_MIN;
    let mut reported: Option<bool> = None;
    cx.status.set_state(SourceState::Down("connecting".into()));
    'session: loop {
        let mut outbox = Outbox::default();
        let actions = node.step(EdgeEvent::Connecting);
        let will = execute(actions, &bdseq, None, &mut outbox, &c, &edge, None).await;
        outbox.queue.clear();
        let (client, lp) = conn::connect(
            &cfg.connection,
            password.as_deref(),
            tls.as_ref(),
            will,
            CHANNEL,
        );
        let mut poll = session::poll(lp);
        let mut connected = false;
        loop {
            let room = outbox.queue.is_empty();
            tokio::select! {
                biased;
                _ = shutdown.wait() => {
                    let actions = node.step(EdgeEvent::Stopping);
                    if connected {
                        execute(actions, &bdseq, Some(&client), &mut outbox, &c, &edge, None).await;
                        session::finish(&client, poll).await;
                    }
                    break 'session;
                }
                (lp, r) = &mut poll => {
                    poll = session::poll(lp);
                    match r {
                        Err(e) => {
                            c.conn_errors.increment(1);
                            node.step(EdgeEvent::ConnectionLost);
                            cx.status.set_state(SourceState::Down(e.clone()));
                            if reported != Some(false) {
                                reported = Some(false);
                                tracing::warn!(edge = %edge, error = %e, retry_in_ms = backoff.as_millis() as u64,
                                    "sparkplug edge: disconnected");
                                if !connection_event(&cx, &event_source, false, Some(e)).await {
                                    break 'session;
                                }
                            }
                            drop(poll);
                            drop(client);
                            if !session::back_off(&mut shutdown, &mut backoff, cfg.connection.backoff_max).await {
                                break 'session;
                            }
                            continue 'session;
                        }
                        Ok(Ev::Connected { .. }) => {
                            connected = true;
                            backoff = BACKOFF_MIN;
                            let actions = node.step(EdgeEvent::Connected { now: now_ms() });
                            execute(actions, &bdseq, Some(&client), &mut outbox, &c, &edge, None).await;
                            cx.status.set_state(SourceState::Up);
                            tracing::info!(edge = %edge, bd_seq = node.bd_seq(), "sparkplug edge: online");
                            if reported != Some(true) {
                                reported = Some(true);
                                if !connection_event(&cx, &event_source, true, None).await {
                                    break 'session;
                                }
                            }
                        }
                        Ok(Ev::Message { topic, payload }) => {
                            let actions = node.step(EdgeEvent::Message {
                                topic,
                                payload: payload.to_vec(),
                                now: now_ms(),
                            });
                            let writer = Writer {
                                feeder: &feeder,
                                publisher: &cx.publisher,
                                in_flight: &in_flight,
                                source: &event_source,
                            };
                            execute(actions, &bdseq, Some(&client), &mut outbox, &c, &edge, Some(&writer)).await;
                        }
                        Ok(_) => outbox.flush(&client, &c),
                    }
                }
                d = deliveries.recv(), if room => {
                    let Some(d) = d else { break 'session };
                    let now = now_ms();
                    received.increment(d.batch.samples.len() as u64);
                    for ev in feeder.events(&node, &d.batch.samples, now, &c) {
                        let actions = node.step(ev);
                        let cl = connected.then_some(&client);
                        execute(actions, &bdseq, cl, &mut outbox, &c, &edge, None).await;
                    }
                    if !connected {
                        outbox.queue.clear();
                    }
                    d.commit();
                }
            }
        }
    }
    tracing::info!(edge = %edge, "sparkplug edge node stopped");
}
