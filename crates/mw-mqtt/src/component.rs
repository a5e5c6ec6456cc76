//! The broker as a Millwright component: `[mqtt.broker]` (off unless present), a source that
//! runs the listener, and — with `uns_prefix` — a sink publishing every sample under the UNS
//! tree `{uns_prefix}/{tag path}` as retained JSON `{"value", "unit", "quality", "ts"}`.
//!
//! ```toml
//! [mqtt.broker]
//! address = "127.0.0.1:1883"     # the listener policy applies: loopback, TLS, or insecure = true
//! anonymous = true               # clients without username (loopback only)
//! uns_prefix = "millwright/demo" # publish the plant's samples (retained)
//! max_connections = 10000
//! max_packet_size = 1048576
//! max_queued = 10000             # per session; beyond, publishers wait (online) or drop (offline)
//! max_publish_wait_ms = 5000     # longest a publisher waits for a full subscriber queue
//! session_expiry_max_s = 86400
//! ingest_queue = 10000           # messages queued for the ingest rules (flow control beyond)
//! [[mqtt.broker.acl]]
//! user = "line1"                 # leave out for every client
//! topic = "plant/%u/#"
//! access = "readwrite"           # read | write | readwrite
//! [[mqtt.broker.ingest]]         # what clients publish here becomes samples (crate::ingest)
//! topic = "plant/+/temp"         # + the keys of [[mqtt.client.subscribe]] but qos
//! tag = "acme/p1/{2}/temp"
//! ```
//!
//! Users and passwords are Millwright's (`millwright user add`, under `<site.data_dir>/security`).
//! Persistent sessions and retained messages survive a restart (`<site.data_dir>/mqtt/`, see
//! [`crate::persist`]). Publishes of clients matching an ingest rule become samples
//! ([`crate::ingest`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mw_bus::{
    BoxFuture, BuildError, Component, Overload, Parts, Sink, SinkInput, SinkOptions, Source,
    SourceContext, Wants,
};
use mw_config::{Config, Cx, ListenerConfig, Section, SectionValue, Table};
use mw_model::{Quality, Sample, TagPath, Value};

use crate::client::config::Subscription;
use crate::{Access, Acl, AclRule, Broker, BrokerConfig, Message};

/// The checked `[mqtt.broker]` section.
#[derive(Clone, Debug, PartialEq)]
pub struct MqttBrokerConfig {
    pub enabled: bool,
    pub listener: ListenerConfig,
    pub anonymous: bool,
    pub uns_prefix: Option<String>,
    pub acl: Vec<AclRule>,
    pub max_connections: usize,
    pub max_packet_size: usize,
    pub max_queued: usize,
    pub max_publish_wait: Duration,
    pub session_expiry_max: Duration,
    /// `[[mqtt.broker.ingest]]` rules.
    pub ingest: Vec<Subscription>,
    /// Deliveries queued for the ingest source.
    pub ingest_queue: usize,
}

impl Default for MqttBrokerConfig {
    fn default() -> Self {
        let b = BrokerConfig::default();
        MqttBrokerConfig {
            enabled: false,
            listener: ListenerConfig {
                address: SocketAddr::from(([127, 0, 0, 1], 1883)),
                tls: None,
                insecure: false,
            },
            anonymous: false,
            uns_prefix: None,
            acl: Vec::new(),
            max_connections: b.max_connections,
            max_packet_size: b.max_packet_size,
            max_queued: b.max_queued,
            max_publish_wait: b.max_publish_wait,
            session_expiry_max: b.max_session_expiry,
            ingest: Vec::new(),
            ingest_queue: b.max_queued,
        }
    }
}

const KEYS: &[&str] = &[
    "address",
    "tls",
    "insecure",
    "anonymous",
    "uns_prefix",
    "acl",
    "max_connections",
    "max_packet_size",
    "max_queued",
    "max_publish_wait_ms",
    "session_expiry_max_s",
    "ingest",
    "ingest_queue",
];

struct BrokerSection;

impl Section for BrokerSection {
    fn key(&self) -> &'static str {
        "mqtt.broker"
    }

    fn check(&self, root: Table<'_, '_>, cx: &mut Cx<'_>) -> Box<dyn SectionValue> {
        let mut out = MqttBrokerConfig::default();
        let Some(t) = root
            .child("mqtt", "[mqtt]")
            .and_then(|m| cx.table(m, "broker", false, "[mqtt.broker]"))
        else {
            return Box::new(out);
        };
        let t = t.v;
        out.enabled = true;
        cx.unknown_keys(t, KEYS);
        out.listener = cx.listener(t, "MQTT", out.listener.clone());
        if let Some(f) = cx.boolean(t, "anonymous", false) {
            if f.v && !out.listener.address.ip().is_loopback() {
                cx.err(
                    f.span.start,
                    format!(
                        "\"anonymous = true\" in [mqtt.broker] is allowed on a loopback address only \
                         ({} is not): clients elsewhere must sign in with a Millwright user",
                        out.listener.address
                    ),
                );
            } else {
                out.anonymous = f.v;
            }
        }
        if let Some(f) = cx.string(t, "uns_prefix", false) {
            let p = f.v.trim_matches('/');
            match crate::topic::valid_filter(p) {
                Ok(()) if !p.contains(['+', '#']) => out.uns_prefix = Some(p.to_string()),
                _ => cx.err(
                    f.span.start,
                    format!(
                        "\"uns_prefix\" in [mqtt.broker] is {:?}: a topic without wildcards, e.g. \"acme/plant1\"",
                        f.v
                    ),
                ),
            }
        }
        if let Some(f) = cx.integer(t, "max_connections", false, 1..=1_000_000) {
            out.max_connections = f.v as usize;
        }
        if let Some(f) = cx.integer(t, "max_packet_size", false, 1024..=268_435_455) {
            out.max_packet_size = f.v as usize;
        }
        if let Some(f) = cx.integer(t, "max_queued", false, 1..=10_000_000) {
            out.max_queued = f.v as usize;
        }
        if let Some(f) = cx.integer(t, "max_publish_wait_ms", false, 0..=600_000) {
            out.max_publish_wait = Duration::from_millis(f.v as u64);
        }
        if let Some(f) = cx.integer(t, "session_expiry_max_s", false, 0..=(u32::MAX as i128 - 1)) {
            out.session_expiry_max = Duration::from_secs(f.v as u64);
        }
        if let Some(f) = cx.integer(t, "ingest_queue", false, 1..=10_000_000) {
            out.ingest_queue = f.v as usize;
        }
        for (i, item) in cx
            .array_of_tables(t, "ingest", "mqtt.broker.ingest")
            .into_iter()
            .enumerate()
        {
            let name = format!("[[mqtt.broker.ingest]] #{}", i + 1);
            let r = item.table(&name);
            if let Some(at) = r.key_start("qos") {
                cx.err(
                    at,
                    format!(
                        "\"qos\" does not apply to {name}: the ingest takes every matching publish \
                         as it was published (QoS 1 is acknowledged once routed to the ingest)"
                    ),
                );
            }
            if let Some(sub) = crate::client::config::subscription(r, cx) {
                out.ingest.push(sub);
            }
        }
        for item in cx.array_of_tables(t, "acl", "mqtt.broker.acl") {
            let r = item.table("[[mqtt.broker.acl]]");
            cx.unknown_keys(r, &["user", "topic", "access"]);
            cx.require(r, &["topic", "access"]);
            let user = cx.string(r, "user", false).map(|f| f.v.to_string());
            let topic = cx.string(r, "topic", false).and_then(|f| {
                let probe = f.v.replace("%u", "u").replace("%c", "c");
                match crate::topic::valid_filter(&probe) {
                    Ok(()) => Some(f.v.to_string()),
                    Err(e) => {
                        cx.err(
                            f.span.start,
                            format!("\"topic\" in [[mqtt.broker.acl]]: {e}"),
                        );
                        None
                    }
                }
            });
            let access = cx.choice(
                r,
                "access",
                "access",
                &[
                    ("read", Access::Read),
                    ("write", Access::Write),
                    ("readwrite", Access::ReadWrite),
                ],
            );
            if let (Some(topic), Some(access)) = (topic, access) {
                out.acl.push(AclRule {
                    user,
                    pattern: topic,
                    access: access.v,
                });
            }
        }
        Box::new(out)
    }
}

/// The component: `[mqtt.broker]`, its listener source, the UNS sink, and the [`Broker`] as a
/// handle (for other layers that publish or subscribe as the process).
pub struct MqttBrokerComponent;

impl Component for MqttBrokerComponent {
    fn name(&self) -> &'static str {
        "mqtt-broker"
    }

    fn sections(&self) -> Vec<Box<dyn Section>> {
        vec![Box::new(BrokerSection)]
    }

    fn build(&self, cfg: &Config, parts: &mut Parts) -> Result<(), BuildError> {
        let mc = cfg
            .section::<MqttBrokerConfig>()
            .cloned()
            .unwrap_or_default();
        if !mc.enabled {
            return Ok(());
        }
        let err = |message: String| BuildError {
            component: "mqtt-broker",
            message,
        };
        let tls = match &mc.listener.tls {
            None => None,
            Some(t) => Some(Arc::new(
                mw_security::certs::server_config_files(&t.cert, &t.key, t.client_ca.as_deref())
                    .map_err(|e| err(format!("cannot load the MQTT listener's TLS certificate ([mqtt.broker] tls): {e}")))?,
            )),
        };
        let security_dir = mw_security::security_dir(&cfg.site.data_dir);
        let auth: Arc<dyn mw_security::Authenticator> = Arc::new(
            mw_security::LocalAuthenticator::open(&security_dir)
                .map_err(|e| err(format!("cannot read the users for [mqtt.broker]: {e}")))?,
        );
        let acl = Acl::new(mc.acl.clone()).map_err(err)?;
        let bc = BrokerConfig {
            max_connections: mc.max_connections,
            max_packet_size: mc.max_packet_size,
            max_queued: mc.max_queued,
            max_publish_wait: mc.max_publish_wait,
            max_session_expiry: mc.session_expiry_max,
            allow_anonymous: mc.anonymous,
            ..BrokerConfig::default()
        };
        // bound now, so a port in use is a start-up error naming the address
        let listener = std::net::TcpListener::bind(mc.listener.address)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|e| {
                err(format!(
                    "cannot listen on {} ([mqtt.broker] address): {e}",
                    mc.listener.address
                ))
            })?;
        let address = listener.local_addr().unwrap_or(mc.listener.address);
        let broker = Broker::new(bc, Some(auth), acl);
        let state = Arc::new(crate::persist::StateFile::new(
            Box::new(mw_storage::FsStorage),
            &cfg.site.data_dir.join("mqtt"),
        ));
        match state.load() {
            Ok(None) => {}
            Ok(Some(snap)) => match broker.restore(snap) {
                Ok((sessions, retained, queued)) => tracing::info!(
                    sessions, retained, queued, path = %state.path().display(),
                    "MQTT broker state restored"
                ),
                Err(e) => tracing::error!(error = %e, path = %state.path().display(),
                    "MQTT broker state unreadable; starting without it"),
            },
            Err(e) => tracing::error!("MQTT broker: {e}"),
        }
        tracing::info!(%address, anonymous = mc.anonymous, tls = tls.is_some(), "MQTT broker listening");
        parts.add_source(Box::new(ListenerSource {
            broker: broker.clone(),
            listener,
            address,
            tls,
            state,
        }));
        if !mc.ingest.is_empty() {
            let ingest =
                crate::ingest::IngestSource::new(&broker, mc.ingest.clone(), mc.ingest_queue)
                    .map_err(|e| err(format!("[[mqtt.broker.ingest]]: {e}")))?;
            parts.add_source(Box::new(ingest));
        }
        if let Some(prefix) = mc.uns_prefix {
            let units = cfg
                .tags
                .iter()
                .chain(&cfg.published)
                .filter_map(|d| Some((d.path.clone(), d.unit.clone()?)))
                .collect();
            parts.add_sink(Box::new(UnsSink {
                broker: broker.clone(),
                prefix,
                units,
                opts: SinkOptions::new("mqtt-uns", cfg.pipeline.sink_capacity)
                    .wants(Wants::Samples)
                    .overload(Overload::DropOldest),
            }));
        }
        parts.provide(broker);
        Ok(())
    }
}

/// Runs the broker's listener. Disconnect: clients come and go; each is served on its own task.
/// Overload: connections beyond `max_connections` are refused with "server busy", and every
/// session's queue is bounded. Shutdown: every client gets DISCONNECT "server shutting down".
/// Restart: persistent sessions and retained messages are saved under
/// `<site.data_dir>/mqtt/broker-state.json` (every 2 s while changing, and at the stop) and
/// restored at start.
struct ListenerSource {
    broker: Broker,
    listener: std::net::TcpListener,
    address: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    state: Arc<crate::persist::StateFile>,
}

impl Source for ListenerSource {
    fn component(&self) -> &'static str {
        "mqtt-broker"
    }

    fn instance(&self) -> String {
        self.address.to_string()
    }

    fn run(self: Box<Self>, cx: SourceContext) -> BoxFuture<()> {
        Box::pin(async move {
            let listener = match tokio::net::TcpListener::from_std(self.listener) {
                Ok(l) => l,
                Err(e) => {
                    cx.status
                        .set_state(mw_bus::SourceState::Down(format!("listener: {e}")));
                    tracing::error!(error = %e, "MQTT listener failed");
                    return;
                }
            };
            cx.status.set_state(mw_bus::SourceState::Up);
            let saver = tokio::spawn(crate::keep_saved(self.broker.clone(), self.state.clone()));
            let mut shutdown = cx.shutdown.clone();
            tokio::select! {
                _ = crate::listen(self.broker.clone(), listener, self.tls) => {}
                _ = shutdown.wait() => {}
            }
            self.broker.shutdown();
            let _ = saver.await;
        })
    }
}

/// Publishes samples under the UNS tree, retained at QoS 0 (a subscriber gets the latest value
/// of every tag at once). Overload: drops the oldest batch (a live view, not a record).
struct UnsSink {
    broker: Broker,
    prefix: String,
    units: HashMap<TagPath, String>,
    opts: SinkOptions,
}

/// The UNS JSON of one sample: the value as it came (an f32 in its shortest form), its unit,
/// its quality (a bad sample carries no value) and the source timestamp (RFC 3339).
pub fn uns_json(s: &Sample, unit: Option<&str>) -> String {
    let value = match (&s.quality, &s.value) {
        (Quality::Bad(_), _) => "null".to_string(),
        (_, Value::Bool(b)) => b.to_string(),
        (_, Value::I64(v)) => v.to_string(),
        (_, Value::U64(v)) => v.to_string(),
        (_, Value::F64(v)) if v.is_finite() => format!("{v}"),
        (_, Value::F32(v)) if v.is_finite() => format!("{v}"),
        (_, Value::F64(_) | Value::F32(_)) => "null".to_string(),
        (_, Value::Str(v)) => serde_json::to_string(v).unwrap_or_else(|_| "null".into()),
    };
    let quality = match &s.quality {
        Quality::Good => "\"good\"".to_string(),
        Quality::Uncertain(r) => format!(
            "\"uncertain\",\"reason\":{}",
            serde_json::to_string(r).unwrap_or_default()
        ),
        Quality::Bad(r) => format!(
            "\"bad\",\"reason\":{}",
            serde_json::to_string(r).unwrap_or_default()
        ),
    };
    let unit = unit
        .map(|u| serde_json::to_string(u).unwrap_or_default())
        .unwrap_or_else(|| "null".into());
    format!(
        "{{\"value\":{value},\"unit\":{unit},\"quality\":{quality},\"ts\":\"{}\"}}",
        mw_model::format_rfc3339_ns(s.source_ts)
    )
}

impl Sink for UnsSink {
    fn options(&self) -> SinkOptions {
        self.opts.clone()
    }

    fn run(self: Box<Self>, mut input: SinkInput) -> BoxFuture<()> {
        Box::pin(async move {
            while let Some(d) = input.recv().await {
                for s in &d.batch.samples {
                    let topic = format!("{}/{}", self.prefix, s.tag.as_str());
                    let payload = uns_json(s, self.units.get(&s.tag).map(String::as_str));
                    self.broker.publish(Message::new(topic, payload, 0, true));
                }
                d.commit();
            }
        })
    }
}
