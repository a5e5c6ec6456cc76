//! The MQTT client (issue 12, item 2): connections to external brokers on rumqttc (3.1.1 or 5,
//! plain or TLS with the workspace's rustls/ring), as a bus source — subscriptions become
//! samples ([`map`]) — and as a bus sink publishing every sample as UNS JSON
//! ([`crate::component::uns_json`], the same payload as the broker's UNS publisher).
//!
//! One `[[mqtt.client]]` entry ([`config`]) is one connection, run by one task (the source;
//! [`MqttClientComponent`] builds it). With `[mqtt.client.publish]`, a sink beside it hands its
//! deliveries to that task through a channel of one delivery.
//!
//! # Disconnect
//! The source's state goes `Down(reason)` and a `ConnectionChange` event (`source =
//! "mqtt-client/NAME"`) is published on each transition; rumqttc reconnects after a backoff
//! of 100 ms doubling up to `backoff_max_ms`, reset by a CONNACK. Subscriptions are made again
//! after each CONNACK. While disconnected the connection takes no deliveries, so the sink's bus
//! queue fills and its `drop_oldest` policy applies (counted by the bus). Publishes not yet
//! acknowledged are kept (at most [`MAX_UNSETTLED`] messages plus one delivery) and sent again
//! after the reconnection: by rumqttc when the broker resumed the session, by us otherwise.
//!
//! # Acknowledgements
//! With `qos = 1` the sink is durable: a delivery is committed once the broker sent a PUBACK
//! for each of its samples, so a source publishing with `send_with_ack` learns that the
//! broker has them. With `qos = 0` the sink is not durable; a message counts as sent once
//! written to the connection. Messages received on QoS 1 subscriptions are acknowledged to the
//! broker by rumqttc when read, before the bus has them (a crash can lose what was in hand).
//!
//! # Overload
//! A received message is published onto the bus before the connection reads the next one:
//! when the bus is full the socket is not read (TCP backpressure to the broker).
//!
//! # Bad payloads
//! A payload that gives no value becomes a bad sample without value (see [`map`]), counted in
//! `mw_errors_total{component="mqtt-client",stage="processing",error_type="bad_payload"}` and
//! logged at most once a minute per topic.
//!
//! # Restart
//! Nothing is kept on disk; with `clean_start = false` the broker keeps the session (its
//! subscriptions and the QoS 1 messages queued meanwhile).

pub mod config;
pub mod conn;
pub mod map;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mw_bus::ack::AckShare;
use mw_bus::{
    BoxFuture, BuildError, Component, Delivery, Overload, Parts, Sink, SinkInput, SinkOptions,
    Source, SourceContext, SourceState, Wants,
};
use mw_config::{Config, Section};
use mw_model::{Event, EventKind, TagPath, now_ns};
use tokio::sync::mpsc;

pub use config::{ClientConfig, MqttClientSection, PasswordSource, Protocol};
use conn::{Client, Ev, poll_owned};

/// Publishes sent and not yet settled (acknowledged, or written at QoS 0) that a connection
/// keeps at most before it stops taking deliveries.
pub const MAX_UNSETTLED: usize = 1000;
/// Room in rumqttc's request channel beyond [`MAX_UNSETTLED`] (subscriptions).
const CHANNEL_SPARE: usize = 64;
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const LOG_EVERY: Duration = Duration::from_secs(60);
const MAX_LOGGED_TOPICS: usize = 1024;

/// The component: one source (the connection) per `[[mqtt.client]]` entry and, with
/// `[mqtt.client.publish]`, its sink.
pub struct MqttClientComponent;

impl Component for MqttClientComponent {
    fn name(&self) -> &'static str {
        "mqtt-client"
    }

    fn sections(&self) -> Vec<Box<dyn Section>> {
        vec![Box::new(config::ClientChecker)]
    }

    fn build(&self, cfg: &Config, parts: &mut Parts) -> Result<(), BuildError> {
        let Some(sec) = cfg.section::<MqttClientSection>() else {
            return Ok(());
        };
        let units: HashMap<TagPath, String> = cfg
            .tags
            .iter()
            .chain(&cfg.published)
            .filter_map(|d| Some((d.path.clone(), d.unit.clone()?)))
            .collect();
        for c in &sec.clients {
            let (source, sink) = build_client(c.clone(), units.clone(), cfg.pipeline.sink_capacity)
                .map_err(|message| BuildError {
                    component: "mqtt-client",
                    message,
                })?;
            parts.add_source(Box::new(source));
            if let Some(s) = sink {
                parts.add_sink(Box::new(s));
            }
        }
        Ok(())
    }
}

/// Reads the password, loads the TLS files and makes the parts of one client. Errors name the
/// entry and the file or variable, never a secret.
pub fn build_client(
    cfg: ClientConfig,
    units: HashMap<TagPath, String>,
    default_queue: usize,
) -> Result<(ClientSource, Option<ClientSink>), String> {
    let label = format!("[[mqtt.client]] {:?}", cfg.name);
    let (password, tls) = conn::load_secrets(&cfg, &label)?;
    let (sink, rx) = match &cfg.publish {
        None => (None, None),
        Some(p) => {
            let (tx, rx) = mpsc::channel(1);
            let mut opts = SinkOptions::new(
                format!("mqtt-client-{}", cfg.name),
                p.queue.unwrap_or(default_queue).max(1),
            )
            .wants(Wants::Samples)
            .overload(Overload::DropOldest);
            if p.qos >= 1 {
                opts = opts.durable();
            }
            (Some(ClientSink { tx, opts }), Some(rx))
        }
    };
    Ok((
        ClientSource {
            cfg,
            password,
            tls,
            deliveries: rx,
            units,
        },
        sink,
    ))
}

/// The sink half: hands each delivery to the connection task.
pub struct ClientSink {
    tx: mpsc::Sender<Delivery>,
    opts: SinkOptions,
}

impl Sink for ClientSink {
    fn options(&self) -> SinkOptions {
        self.opts.clone()
    }

    fn run(self: Box<Self>, mut input: SinkInput) -> BoxFuture<()> {
        Box::pin(async move {
            while let Some(d) = input.recv().await {
                if let Err(back) = self.tx.send(d).await {
                    back.0.fail("the MQTT client connection stopped");
                }
            }
        })
    }
}

/// The connection: subscriptions to samples, deliveries of the sink to publishes.
pub struct ClientSource {
    cfg: ClientConfig,
    password: Option<String>,
    tls: Option<Arc<rustls::ClientConfig>>,
    deliveries: Option<mpsc::Receiver<Delivery>>,
    units: HashMap<TagPath, String>,
}

impl Source for ClientSource {
    fn component(&self) -> &'static str {
        "mqtt-client"
    }

    fn instance(&self) -> String {
        self.cfg.name.clone()
    }

    fn run(self: Box<Self>, cx: SourceContext) -> BoxFuture<()> {
        Box::pin(run(*self, cx))
    }
}

// ---- the publish window ---------------------------------------------------------------------

/// One message to publish, with the delivery it belongs to.
struct Out {
    seq: u64,
    topic: String,
    payload: Bytes,
    ticket: u64,
}

/// A delivery's acknowledgement share and the number of its messages not yet settled.
struct Ticket {
    remaining: usize,
    ack: Option<AckShare>,
}

/// The publishes of one connection between the sink and the broker: `backlog` (taken from a
/// delivery, not yet handed to rumqttc), `queued` (handed to rumqttc, not yet written: FIFO,
/// so each `Sent` event is the front one), `inflight` (QoS 1: written, waiting for PUBACK by
/// packet id). A `Sent` with a packet id already in flight is a retransmission.
struct Window {
    qos: u8,
    retain: bool,
    prefix: String,
    next_seq: u64,
    next_ticket: u64,
    backlog: VecDeque<Out>,
    queued: VecDeque<Out>,
    inflight: HashMap<u16, Out>,
    tickets: HashMap<u64, Ticket>,
    sent: metrics::Counter,
}

impl Window {
    fn unsettled(&self) -> usize {
        self.backlog.len() + self.queued.len() + self.inflight.len()
    }

    fn take(&mut self, mut d: Delivery, units: &HashMap<TagPath, String>) {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let n = d.batch.samples.len();
        for s in &d.batch.samples {
            let payload = crate::component::uns_json(s, units.get(&s.tag).map(String::as_str));
            self.backlog.push_back(Out {
                seq: self.next_seq,
                topic: format!("{}/{}", self.prefix, s.tag.as_str()),
                payload: Bytes::from(payload),
                ticket,
            });
            self.next_seq += 1;
        }
        let ack = d.take_ack();
        if n == 0 {
            if let Some(a) = ack {
                a.commit();
            }
            return;
        }
        self.tickets.insert(ticket, Ticket { remaining: n, ack });
    }

    /// Hands the backlog to rumqttc while its channel has room.
    fn fill(&mut self, client: &Client) {
        while self.queued.len() < MAX_UNSETTLED {
            let Some(o) = self.backlog.pop_front() else {
                break;
            };
            match client.try_publish(&o.topic, self.qos, self.retain, o.payload.clone()) {
                Ok(()) => self.queued.push_back(o),
                Err(e) => {
                    tracing::debug!(error = %e, "mqtt client: request channel full");
                    self.backlog.push_front(o);
                    break;
                }
            }
        }
    }

    fn settle(&mut self, o: Out) {
        self.sent.increment(1);
        if let Some(t) = self.tickets.get_mut(&o.ticket) {
            t.remaining -= 1;
            if t.remaining == 0
                && let Some(t) = self.tickets.remove(&o.ticket)
                && let Some(a) = t.ack
            {
                a.commit();
            }
        }
    }

    fn on_sent(&mut self, pkid: u16) {
        if self.qos == 0 {
            if let Some(o) = self.queued.pop_front() {
                self.settle(o);
            }
        } else if !self.inflight.contains_key(&pkid)
            && let Some(o) = self.queued.pop_front()
        {
            self.inflight.insert(pkid, o);
        }
    }

    fn on_puback(&mut self, pkid: u16) {
        if let Some(o) = self.inflight.remove(&pkid) {
            self.settle(o);
        }
    }

    /// A new session: rumqttc dropped what it had, so everything unsettled goes out again.
    fn restart(&mut self) {
        let mut all: Vec<Out> = self.queued.drain(..).collect();
        all.extend(self.inflight.drain().map(|(_, o)| o));
        all.sort_by_key(|o| o.seq);
        for o in all.into_iter().rev() {
            self.backlog.push_front(o);
        }
    }
}

// ---- the connection task --------------------------------------------------------------------

/// Logs a bad payload or an unmappable topic at most once a minute per topic (and at most
/// [`MAX_LOGGED_TOPICS`] topics a minute); also used by the broker's ingest.
pub(crate) struct RateLog {
    /// Who logs: "mqtt client", "mqtt ingest".
    who: &'static str,
    last: HashMap<String, (Instant, u64)>,
}

impl RateLog {
    pub(crate) fn new(who: &'static str) -> RateLog {
        RateLog {
            who,
            last: HashMap::new(),
        }
    }

    /// `instance`: the client's or listener's name.
    pub(crate) fn hit(&mut self, instance: &str, topic: &str, what: &str) {
        let now = Instant::now();
        if self.last.len() >= MAX_LOGGED_TOPICS && !self.last.contains_key(topic) {
            self.last
                .retain(|_, (t, _)| now.duration_since(*t) < LOG_EVERY);
            if self.last.len() >= MAX_LOGGED_TOPICS {
                return; // too many distinct bad topics: the counter still counts them
            }
        }
        match self.last.get_mut(topic) {
            Some((t, suppressed)) if now.duration_since(*t) < LOG_EVERY => *suppressed += 1,
            Some((t, suppressed)) => {
                tracing::warn!(
                    instance,
                    topic,
                    suppressed = *suppressed,
                    "{}: {what}",
                    self.who
                );
                *t = now;
                *suppressed = 0;
            }
            None => {
                tracing::warn!(instance, topic, "{}: {what}", self.who);
                self.last.insert(topic.to_owned(), (now, 0));
            }
        }
    }
}

async fn run(src: ClientSource, cx: SourceContext) {
    let ClientSource {
        cfg,
        password,
        tls,
        mut deliveries,
        units,
    } = src;
    let name = cfg.name.clone();
    let event_source = format!("mqtt-client/{name}");
    let label = |n: &'static str| metrics::counter!(n, "component" => "mqtt-client", "instance" => name.clone());
    let received = label("mw_received_samples_total");
    let received_bytes = label("mw_received_bytes_total");
    let bad_payloads = metrics::counter!("mw_errors_total", "component" => "mqtt-client",
        "instance" => name.clone(), "stage" => "processing", "error_type" => "bad_payload");
    let bad_tags = metrics::counter!("mw_errors_total", "component" => "mqtt-client",
        "instance" => name.clone(), "stage" => "processing", "error_type" => "bad_tag");
    let conn_errors = metrics::counter!("mw_errors_total", "component" => "mqtt-client",
        "instance" => name.clone(), "stage" => "receiving", "error_type" => "connection");
    let connected_gauge = metrics::gauge!("mw_mqtt_client_connected", "component" => "mqtt-client", "instance" => name.clone());
    let cap = MAX_UNSETTLED + CHANNEL_SPARE + cfg.subscribe.len();
    let (client, lp) = conn::connect(&cfg, password.as_deref(), tls.as_ref(), None, cap);
    let mut window = cfg.publish.as_ref().map(|p| Window {
        qos: p.qos,
        retain: p.retain,
        prefix: p.prefix.clone(),
        next_seq: 0,
        next_ticket: 0,
        backlog: VecDeque::new(),
        queued: VecDeque::new(),
        inflight: HashMap::new(),
        tickets: HashMap::new(),
        sent: label("mw_sent_samples_total"),
    });
    let mut log = RateLog::new("mqtt client");
    let mut shutdown = cx.shutdown.clone();
    let mut reported: Option<bool> = None;
    let mut connected = false;
    let mut backoff = BACKOFF_MIN;
    cx.status.set_state(SourceState::Down("connecting".into()));
    let mut poll = Box::pin(poll_owned(lp, Duration::ZERO));
    tracing::info!(client = %name, host = %cfg.host, port = cfg.port, tls = tls.is_some(),
        protocol = ?cfg.protocol, "mqtt client starting");
    loop {
        let room = connected
            && window
                .as_ref()
                .is_some_and(|w| w.unsettled() < MAX_UNSETTLED);
        let ev = tokio::select! {
            biased;
            _ = shutdown.wait() => break,
            (lp, r) = &mut poll => {
                let delay = if r.is_err() { backoff } else { Duration::ZERO };
                poll = Box::pin(poll_owned(lp, delay));
                r
            }
            d = async { deliveries.as_mut()?.recv().await }, if room => {
                match d {
                    Some(d) => {
                        if let Some(w) = window.as_mut() {
                            w.take(d, &units);
                            w.fill(&client);
                        }
                    }
                    None => deliveries = None,
                }
                continue;
            }
        };
        match ev {
            Err(e) => {
                conn_errors.increment(1);
                cx.status.cycle_done(0.0);
                connected = false;
                connected_gauge.set(0.0);
                cx.status.set_state(SourceState::Down(e.clone()));
                if reported != Some(false) {
                    tracing::warn!(client = %name, error = %e, retry_in_ms = backoff.as_millis() as u64,
                        "mqtt client: disconnected");
                    reported = Some(false);
                    let ev = Event::new(
                        now_ns(),
                        event_source.clone(),
                        EventKind::ConnectionChange {
                            up: false,
                            reason: Some(e),
                        },
                    );
                    if cx.publisher.publish_events(vec![ev]).await.is_err() {
                        break;
                    }
                }
                backoff = (backoff * 2).min(cfg.backoff_max);
            }
            Ok(Ev::Connected { session_present }) => {
                connected = true;
                cx.status.cycle_done(0.0);
                backoff = BACKOFF_MIN;
                connected_gauge.set(1.0);
                cx.status.set_state(SourceState::Up);
                tracing::info!(client = %name, session_present, "mqtt client connected");
                for s in &cfg.subscribe {
                    if let Err(e) = client.try_subscribe(&s.filter, s.qos) {
                        tracing::error!(client = %name, topic = %s.filter, error = %e, "mqtt client: cannot subscribe");
                    }
                }
                if let Some(w) = window.as_mut() {
                    if !session_present {
                        w.restart();
                    }
                    w.fill(&client);
                }
                if reported != Some(true) {
                    reported = Some(true);
                    let ev = Event::new(
                        now_ns(),
                        event_source.clone(),
                        EventKind::ConnectionChange {
                            up: true,
                            reason: None,
                        },
                    );
                    if cx.publisher.publish_events(vec![ev]).await.is_err() {
                        break;
                    }
                }
            }
            Ok(Ev::SubAck { refused }) => {
                if refused > 0 {
                    tracing::error!(client = %name, refused, "mqtt client: the broker refused a subscription");
                }
            }
            Ok(Ev::Message { topic, payload }) => {
                received_bytes.increment(payload.len() as u64);
                let now = now_ns();
                let m = map::map_matching(&cfg.subscribe, &topic, &payload, now);
                if let Some(why) = m.bad_payloads.first() {
                    bad_payloads.increment(m.bad_payloads.len() as u64);
                    log.hit(&name, &topic, &format!("bad payload: {why}"));
                }
                if let Some(e) = m.errors.first() {
                    bad_tags.increment(m.errors.len() as u64);
                    log.hit(&name, &topic, &format!("no tag: {e}"));
                }
                let samples = m.samples;
                if !samples.is_empty() {
                    received.increment(samples.len() as u64);
                    let mut stop = shutdown.clone();
                    tokio::select! {
                        r = cx.publisher.publish(samples) => if r.is_err() { break },
                        _ = stop.wait() => break,
                    }
                }
            }
            Ok(Ev::Sent(id)) => {
                if let Some(w) = window.as_mut() {
                    w.on_sent(id);
                    w.fill(&client);
                }
            }
            Ok(Ev::PubAck(id)) => {
                if let Some(w) = window.as_mut() {
                    w.on_puback(id);
                    w.fill(&client);
                }
            }
            Ok(Ev::Other) => {}
        }
    }
    connected_gauge.set(0.0);
    tracing::info!(client = %name, "mqtt client stopped");
}
