//! The host application runtime: a bus source that runs [`mw_sparkplug::host::HostApp`] on an
//! MQTT connection and turns its updates into samples.
//!
//! - Each connection is a new rumqttc client whose last will is the offline `STATE`
//!   (`spBv1.0/STATE/{host_id}`, retained, QoS 1, 3.0 JSON); once connected the host subscribes
//!   and publishes the online `STATE` retained, then asks every node it knew for a rebirth.
//! - Births and data become samples of the tags [`crate::mapping::host_tag`] names, with the
//!   metric's timestamp and the quality of its `Quality` property. A null becomes NaN, bad
//!   `"null"` (unless its quality says more). Values without a model type (arrays, bytes,
//!   DataSet, Template) are discarded and counted (`reason="unsupported_type"`).
//! - An NDEATH (with the birth's bdSeq), a DDEATH, or the loss of the host's own connection
//!   turn every metric concerned bad `"stale: …"` (samples of their last value), and each node or
//!   device going on or off line is a `ConnectionChange` event (`source =
//!   "sparkplug-host/GROUP/EDGE[/DEVICE]"`). Sequence gaps, data before a birth and unknown
//!   aliases make the state machine request a rebirth (rate-limited); the runtime publishes it.
//!
//! # Disconnect
//! The source goes `Down(reason)` (a `ConnectionChange` event with `source =
//! "sparkplug-host/HOST_ID"`), every metric turns stale, and the next connection comes after a
//! backoff (100 ms doubling up to `backoff_max_ms`).
//!
//! # Overload
//! Samples of one message are published onto the bus before the next message is read: a full
//! bus stops the socket being read (TCP backpressure to the broker).
//!
//! # Restart and stop
//! A stop publishes the offline `STATE` (retained), then DISCONNECT. Nothing is kept on disk:
//! after a restart the retained births are gone from the broker, so the host learns the nodes
//! from their next messages and asks each for a rebirth.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mw_bus::{BoxFuture, Source, SourceContext, SourceState};
use mw_model::{Event, EventKind, Quality, Sample, Value, now_ns};
use mw_mqtt::client::conn::{self, Client, Ev, Will};
use mw_sparkplug::host::{HostAction, HostApp, HostEvent, NodeId};

use crate::config::HostConfig;
use crate::mapping::host_tag;
use crate::session::{self, BACKOFF_MIN, CHANNEL, now_ms};

const LOG_EVERY: Duration = Duration::from_secs(60);

/// The host's connection task.
pub struct HostSource {
    cfg: HostConfig,
    password: Option<String>,
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// Reads the password and TLS files and makes the host's source.
pub fn build(cfg: HostConfig) -> Result<HostSource, String> {
    let (password, tls) = conn::load_secrets(&cfg.connection, "[sparkplug.host]")?;
    Ok(HostSource { cfg, password, tls })
}

impl Source for HostSource {
    fn component(&self) -> &'static str {
        "sparkplug-host"
    }

    fn instance(&self) -> String {
        self.cfg.host_id.clone()
    }

    fn run(self: Box<Self>, cx: SourceContext) -> BoxFuture<()> {
        Box::pin(run(*self, cx))
    }
}

struct Out {
    samples: Vec<Sample>,
    events: Vec<Event>,
    will: Option<Will>,
}

struct Counters {
    unsupported: metrics::Counter,
    untaggable: metrics::Counter,
    protocol: metrics::Counter,
    conn_errors: metrics::Counter,
}

/// Executes actions: publishes and subscriptions on `client`, updates into samples, node and
/// device changes into events, errors into (rate-limited) log lines and counts.
fn execute(
    cfg: &HostConfig,
    actions: Vec<HostAction>,
    client: Option<&Client>,
    c: &Counters,
    last_log: &mut Option<Instant>,
) -> Out {
    let mut out = Out {
        samples: Vec::new(),
        events: Vec::new(),
        will: None,
    };
    let receive_ts = now_ns();
    let source = |node: &NodeId, device: &Option<String>| match device {
        None => format!("sparkplug-host/{node}"),
        Some(d) => format!("sparkplug-host/{node}/{d}"),
    };
    for a in actions {
        match a {
            HostAction::SetWill {
                topic,
                payload,
                qos,
                retain,
            } => {
                out.will = Some(Will {
                    topic,
                    payload: Bytes::from(payload),
                    qos,
                    retain,
                })
            }
            HostAction::Subscribe { filter, qos } => {
                if let Some(cl) = client
                    && let Err(e) = cl.try_subscribe(&filter, qos)
                {
                    tracing::error!(host = %cfg.host_id, filter, error = %e, "sparkplug host: cannot subscribe");
                }
            }
            HostAction::Publish {
                topic,
                payload,
                qos,
                retain,
            } => {
                if let Some(cl) = client
                    && let Err(e) = cl.try_publish(&topic, qos, retain, Bytes::from(payload))
                {
                    tracing::warn!(host = %cfg.host_id, topic, error = %e, "sparkplug host: cannot publish");
                }
            }
            HostAction::Online { node, device } => out.events.push(Event::new(
                receive_ts,
                source(&node, &device),
                EventKind::ConnectionChange {
                    up: true,
                    reason: None,
                },
            )),
            HostAction::Offline {
                node,
                device,
                reason,
            } => out.events.push(Event::new(
                receive_ts,
                source(&node, &device),
                EventKind::ConnectionChange {
                    up: false,
                    reason: Some(reason.to_string()),
                },
            )),
            HostAction::Update {
                node,
                device,
                metric,
                value,
                timestamp,
                quality,
            } => {
                let Some(tag) = host_tag(
                    cfg.prefix.as_deref(),
                    &node.group,
                    &node.edge,
                    device.as_deref(),
                    &metric,
                ) else {
                    if !crate::mapping::is_control(&metric) {
                        c.untaggable.increment(1);
                    }
                    continue;
                };
                let (value, quality) = match value {
                    None => (
                        Value::F64(f64::NAN),
                        if quality.is_good() {
                            Quality::Bad("null".into())
                        } else {
                            quality
                        },
                    ),
                    Some(v) => match v.to_model() {
                        Some(m) => (m, quality),
                        None => {
                            c.unsupported.increment(1);
                            continue;
                        }
                    },
                };
                out.samples.push(Sample {
                    tag,
                    value,
                    quality,
                    source_ts: i64::try_from(timestamp)
                        .unwrap_or(0)
                        .saturating_mul(1_000_000),
                    receive_ts,
                });
            }
            HostAction::Error(e) => {
                c.protocol.increment(1);
                let now = Instant::now();
                if last_log.is_none_or(|t| now.duration_since(t) >= LOG_EVERY) {
                    *last_log = Some(now);
                    tracing::warn!(host = %cfg.host_id, "sparkplug host: {e} (further problems within a minute are only counted)");
                }
            }
        }
    }
    out
}

async fn publish(cx: &SourceContext, out: Out) -> bool {
    if !out.events.is_empty() || !out.samples.is_empty() {
        let mut b = mw_bus::Batch::from_samples(out.samples);
        b.events = out.events;
        return cx.publisher.send(b).await.is_ok();
    }
    true
}

async fn run(src: HostSource, cx: SourceContext) {
    let HostSource { cfg, password, tls } = src;
    let host = cfg.host_id.clone();
    let err = |t: &'static str, stage: &'static str| {
        metrics::counter!("mw_errors_total",
        "component" => "sparkplug-host", "instance" => host.clone(), "stage" => stage, "error_type" => t)
    };
    let discarded = |r: &'static str| {
        metrics::counter!("mw_discarded_samples_total",
        "component" => "sparkplug-host", "instance" => host.clone(), "reason" => r)
    };
    let c = Counters {
        unsupported: discarded("unsupported_type"),
        untaggable: discarded("no_tag_path"),
        protocol: err("sparkplug", "processing"),
        conn_errors: err("connection", "receiving"),
    };
    let received = metrics::counter!("mw_received_samples_total", "component" => "sparkplug-host", "instance" => host.clone());
    let received_bytes = metrics::counter!("mw_received_bytes_total", "component" => "sparkplug-host", "instance" => host.clone());
    let mut hc = mw_sparkplug::host::HostConfig::new(&host);
    hc.groups = cfg.groups.clone();
    hc.rebirth_interval_ms = cfg.rebirth_interval_ms;
    let mut app = HostApp::new(hc);
    let mut last_log = None;
    let mut shutdown = cx.shutdown.clone();
    let mut backoff = BACKOFF_MIN;
    let mut reported: Option<bool> = None;
    let own_source = format!("sparkplug-host/{host}");
    tracing::info!(host = %host, broker = %cfg.connection.host, port = cfg.connection.port,
        "sparkplug host application starting");
    cx.status.set_state(SourceState::Down("connecting".into()));
    'session: loop {
        let out = execute(
            &cfg,
            app.step(HostEvent::Connecting { now: now_ms() }),
            None,
            &c,
            &mut last_log,
        );
        let (client, lp) = conn::connect(
            &cfg.connection,
            password.as_deref(),
            tls.as_ref(),
            out.will,
            CHANNEL,
        );
        let mut poll = session::poll(lp);
        let mut connected = false;
        loop {
            tokio::select! {
                biased;
                _ = shutdown.wait() => {
                    let actions = app.step(HostEvent::Stopping);
                    if connected {
                        execute(&cfg, actions, Some(&client), &c, &mut last_log);
                        session::finish(&client, poll).await;
                    }
                    break 'session;
                }
                (lp, r) = &mut poll => {
                    poll = session::poll(lp);
                    let out = match r {
                        Err(e) => {
                            c.conn_errors.increment(1);
                            let out = execute(&cfg, app.step(HostEvent::ConnectionLost { now: now_ms() }),
                                None, &c, &mut last_log);
                            cx.status.set_state(SourceState::Down(e.clone()));
                            let mut ok = publish(&cx, out).await;
                            if reported != Some(false) {
                                reported = Some(false);
                                tracing::warn!(host = %host, error = %e, retry_in_ms = backoff.as_millis() as u64,
                                    "sparkplug host: disconnected");
                                let ev = Event::new(now_ns(), own_source.clone(),
                                    EventKind::ConnectionChange { up: false, reason: Some(e) });
                                ok &= cx.publisher.publish_events(vec![ev]).await.is_ok();
                            }
                            if !ok {
                                break 'session;
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
                            cx.status.set_state(SourceState::Up);
                            tracing::info!(host = %host, "sparkplug host: online");
                            let mut out = execute(&cfg, app.step(HostEvent::Connected { now: now_ms() }),
                                Some(&client), &c, &mut last_log);
                            if reported != Some(true) {
                                reported = Some(true);
                                out.events.push(Event::new(now_ns(), own_source.clone(),
                                    EventKind::ConnectionChange { up: true, reason: None }));
                            }
                            out
                        }
                        Ok(Ev::Message { topic, payload }) => {
                            received_bytes.increment(payload.len() as u64);
                            let out = execute(&cfg, app.step(HostEvent::Message {
                                topic,
                                payload: payload.to_vec(),
                                now: now_ms(),
                            }), Some(&client), &c, &mut last_log);
                            received.increment(out.samples.len() as u64);
                            out
                        }
                        Ok(_) => continue,
                    };
                    let mut stop = shutdown.clone();
                    tokio::select! {
                        ok = publish(&cx, out) => if !ok { break 'session },
                        _ = stop.wait() => break 'session,
                    }
                }
            }
        }
    }
    tracing::info!(host = %host, "sparkplug host application stopped");
}
