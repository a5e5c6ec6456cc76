//! The host application as a pure state machine: [`HostApp::step`] takes a [`HostEvent`] and
//! returns [`HostAction`]s for the runtime (MQTT client, the tag model) to execute. Times are
//! passed in (ms since the Unix epoch); nothing here reads the clock or touches a socket.
//!
//! - Before each connection ([`HostEvent::Connecting`]) the host hands out its will: the 3.0
//!   `STATE` message `{"online":false,"timestamp":T}` on `spBv1.0/STATE/{host_id}`, retained,
//!   QoS 1. Once connected it subscribes to `spBv1.0/{group}/#` per configured group (or
//!   `spBv1.0/#`) and to its own `STATE` topic, then publishes `{"online":true,"timestamp":T}`
//!   retained, QoS 1, with the will's timestamp `T` (the specification demands the same one). An
//!   offline `STATE` for itself while online (another session's will) is answered by publishing
//!   the online one again.
//! - NBIRTH and DBIRTH build the model: per edge node and device, metrics by name with their data
//!   type and alias. NDATA and DDATA are resolved by alias (or name) into
//!   [`HostAction::Update`]s, of the quality their `Quality` property gives (good without one,
//!   [`crate::quality`]); a metric without a data type takes the birth's.
//! - Every metric of a node turns stale ([`Quality::Bad`] `"stale: …"`) on an NDEATH whose
//!   `bdSeq` matches the NBIRTH's (another `bdSeq` is an older session's will and is ignored),
//!   every metric of a device on its DDEATH, and every metric of every node when the host itself
//!   loses its connection; they stay stale until the node's next birth.
//! - `seq` is tracked per node (0–255, wrapping, across NBIRTH, DBIRTH, NDATA, DDATA, DDEATH).
//!   A gap, data from a node or device without a birth (or stale since the host reconnected), an
//!   unknown alias or name, a DBIRTH before its NBIRTH or an undecodable payload yields a
//!   [`HostAction::Error`] naming the topic and asks for a rebirth: an NCMD with
//!   `Node Control/Rebirth = true`, at most one per node per
//!   [`HostConfig::rebirth_interval_ms`]. Data that arrives after a gap is still applied (its
//!   aliases are the current birth's); the rebirth resynchronises what was lost. On (re)connect
//!   the host asks every node it knows for a rebirth, since it missed whatever they published.
//! - [`HostEvent::Stopping`] (an intentional disconnect) publishes the offline `STATE` with the
//!   session's timestamp before the runtime sends DISCONNECT.
//! - [`HostApp::write`] builds the NCMD/DCMD that writes one metric (by alias when the birth gave
//!   one), refused with a [`WriteError`] when the node, device or metric is unknown or offline.

use std::collections::BTreeMap;
use std::fmt;

use mw_model::Quality;

use crate::payload::{
    Limits, Metric, MetricValue, Payload, decode_in_session, decode_with, encode,
};
use crate::topic::{MessageType, StatePayload, Topic, TopicError};
use crate::{BD_SEQ, DataType, DecodeError, EncodeError, REBIRTH};

/// The default of [`HostConfig::rebirth_interval_ms`].
pub const DEFAULT_REBIRTH_INTERVAL_MS: u64 = 5_000;

/// What the host application is and listens to.
#[derive(Debug, Clone, PartialEq)]
pub struct HostConfig {
    /// The `sparkplug_host_id` of `spBv1.0/STATE/{host_id}`.
    pub host_id: String,
    /// Groups to subscribe to (`spBv1.0/{group}/#` each); empty: every group (`spBv1.0/#`).
    pub groups: Vec<String>,
    /// At most one rebirth request per node in this many ms (default 5000).
    pub rebirth_interval_ms: u64,
    /// What a payload may be (see [`Limits`]).
    pub limits: Limits,
    /// Most edge nodes tracked (default 10 000); messages of further nodes are refused.
    pub max_nodes: usize,
    /// Most devices tracked per node (default 10 000); further DBIRTHs are refused.
    pub max_devices_per_node: usize,
}

impl HostConfig {
    /// A host listening to every group, with the defaults.
    pub fn new(host_id: &str) -> HostConfig {
        HostConfig {
            host_id: host_id.to_owned(),
            groups: Vec::new(),
            rebirth_interval_ms: DEFAULT_REBIRTH_INTERVAL_MS,
            limits: Limits::default(),
            max_nodes: 10_000,
            max_devices_per_node: 10_000,
        }
    }
}

/// An edge node: `{group}/{edge}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    pub group: String,
    pub edge: String,
}

impl NodeId {
    pub fn new(group: &str, edge: &str) -> NodeId {
        NodeId {
            group: group.to_owned(),
            edge: edge.to_owned(),
        }
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.group, self.edge)
    }
}

/// Where the host's own session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostState {
    Offline,
    Connecting,
    Online,
}

/// What the host knows of an edge node's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    /// Messages seen, but no NBIRTH yet (the host started after the node, or lost it).
    NoBirth,
    /// Born and alive: its data is applied.
    Online,
    /// Its NDEATH (with the birth's bdSeq) arrived.
    Dead,
    /// The host lost its connection since the birth: stale until the next NBIRTH.
    Stale,
}

/// Why metrics turned stale (the reason of their [`Quality::Bad`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaleReason {
    /// The node's NDEATH.
    NodeDeath,
    /// The device's DDEATH.
    DeviceDeath,
    /// The host lost its MQTT connection.
    HostDisconnected,
    /// The node was born again: its devices wait for their DBIRTH, metrics missing from the new
    /// birth are gone.
    Rebirth,
}

impl StaleReason {
    /// The quality metrics get.
    pub fn quality(self) -> Quality {
        Quality::Bad(self.to_string())
    }
}

impl fmt::Display for StaleReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StaleReason::NodeDeath => "stale: NDEATH",
            StaleReason::DeviceDeath => "stale: DDEATH",
            StaleReason::HostDisconnected => "stale: host disconnected",
            StaleReason::Rebirth => "stale: not in the new birth",
        })
    }
}

/// What happens to the host.
#[derive(Debug, Clone, PartialEq)]
pub enum HostEvent {
    /// The runtime is about to open an MQTT connection (it needs the will first).
    Connecting { now: u64 },
    /// The connection is up (CONNACK received).
    Connected { now: u64 },
    /// The connection is gone.
    ConnectionLost { now: u64 },
    /// The runtime is about to disconnect on purpose: publish the offline `STATE` first.
    Stopping,
    /// A message arrived on a subscribed topic.
    Message {
        topic: String,
        payload: Vec<u8>,
        now: u64,
    },
}

/// What the runtime must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum HostAction {
    /// Use this as the MQTT will of the coming connection.
    SetWill {
        topic: String,
        payload: Vec<u8>,
        qos: u8,
        retain: bool,
    },
    Subscribe {
        filter: String,
        qos: u8,
    },
    Publish {
        topic: String,
        payload: Vec<u8>,
        qos: u8,
        retain: bool,
    },
    /// A node (`device: None`) or device was born.
    Online {
        node: NodeId,
        device: Option<String>,
    },
    /// A node or device died (or the host lost sight of it).
    Offline {
        node: NodeId,
        device: Option<String>,
        reason: StaleReason,
    },
    /// A metric's value or quality changed. `value: None` is a null.
    Update {
        node: NodeId,
        device: Option<String>,
        metric: String,
        value: Option<MetricValue>,
        /// ms since the Unix epoch: the metric's, else the payload's, else the event's time.
        timestamp: u64,
        quality: Quality,
    },
    /// Something in a message was wrong; handled as documented on [`HostError`].
    Error(HostError),
}

/// A problem with a received message; each names its topic. All but [`HostError::Topic`],
/// [`HostError::NotConnecting`], [`HostError::TooManyNodes`], [`HostError::TooManyDevices`] and
/// [`HostError::NoBdSeq`] come with a rebirth request (rate-limited): a rebirth cannot cure those.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HostError {
    #[error("{0}")]
    Topic(TopicError),
    #[error("{topic}: {error}")]
    Decode { topic: String, error: DecodeError },
    #[error("connected without Connecting first: no will with a STATE timestamp was set")]
    NotConnecting,
    #[error("{topic}: more than {max} edge nodes; message dropped")]
    TooManyNodes { topic: String, max: usize },
    #[error("{topic}: more than {max} devices on this node; DBIRTH dropped")]
    TooManyDevices { topic: String, max: usize },
    #[error("{topic}: NBIRTH has no integer bdSeq metric; birth refused")]
    NoBdSeq { topic: String },
    #[error("{topic}: no NBIRTH seen for this node (or it is dead or stale); message dropped")]
    NoBirth { topic: String },
    #[error("{topic}: no DBIRTH seen for this device (or it is dead); message dropped")]
    NoDeviceBirth { topic: String },
    #[error("{topic}: seq {got:?} where {expected} was expected")]
    SeqGap {
        topic: String,
        expected: u8,
        got: Option<u64>,
    },
    #[error("{topic}: metric {name:?} (alias {alias:?}) is not in the birth certificate")]
    UnknownMetric {
        topic: String,
        name: Option<String>,
        alias: Option<u64>,
    },
    #[error("{topic}: metric {metric:?} was born {birth:?} but carries {got:?}")]
    TypeMismatch {
        topic: String,
        metric: String,
        birth: DataType,
        got: DataType,
    },
    #[error("{topic}: birth metric {index} has no name")]
    UnnamedBirthMetric { topic: String, index: usize },
}

/// Why [`HostApp::write`] built no command.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WriteError {
    #[error("write to {node}: unknown edge node")]
    UnknownNode { node: NodeId },
    #[error("write to {node}: the node is offline ({state:?})")]
    NodeOffline { node: NodeId, state: NodeState },
    #[error("write to {node}/{device}: unknown device")]
    UnknownDevice { node: NodeId, device: String },
    #[error("write to {node}/{device}: the device is offline")]
    DeviceOffline { node: NodeId, device: String },
    #[error("write to {node}{}: unknown metric {metric:?}", dev(.device))]
    UnknownMetric {
        node: NodeId,
        device: Option<String>,
        metric: String,
    },
    #[error("write to {node}{}: metric {metric:?} is {birth:?}, the value is {got:?}", dev(.device))]
    TypeMismatch {
        node: NodeId,
        device: Option<String>,
        metric: String,
        birth: DataType,
        got: DataType,
    },
    #[error("write to {node}: {error}")]
    Encode { node: NodeId, error: EncodeError },
}

fn dev(d: &Option<String>) -> String {
    d.as_deref().map(|d| format!("/{d}")).unwrap_or_default()
}

/// What the host knows of one metric.
#[derive(Debug, Clone, PartialEq)]
pub struct HostMetric {
    pub datatype: DataType,
    pub alias: Option<u64>,
    pub value: Option<MetricValue>,
    /// ms since the Unix epoch of the last value or quality change.
    pub timestamp: u64,
    pub quality: Quality,
}

/// Metrics of a node or a device, by name, with their aliases.
#[derive(Debug, Clone, Default)]
struct Scope {
    metrics: BTreeMap<String, HostMetric>,
    aliases: BTreeMap<u64, String>,
}

impl Scope {
    fn datatype(&self, name: Option<&str>, alias: Option<u64>) -> Option<DataType> {
        self.resolve(name, alias)
            .and_then(|n| self.metrics.get(n))
            .map(|m| m.datatype)
    }

    /// The metric's name: by alias when it has one the birth declared, else by name.
    fn resolve<'a>(&'a self, name: Option<&'a str>, alias: Option<u64>) -> Option<&'a str> {
        if let Some(n) = alias.and_then(|a| self.aliases.get(&a)) {
            return Some(n);
        }
        name.filter(|n| self.metrics.contains_key(*n))
    }
}

#[derive(Debug, Clone)]
struct Device {
    online: bool,
    scope: Scope,
}

#[derive(Debug, Clone)]
struct Node {
    state: NodeState,
    bd_seq: Option<u64>,
    next_seq: u8,
    last_rebirth_request: Option<u64>,
    scope: Scope,
    devices: BTreeMap<String, Device>,
}

impl Node {
    fn new() -> Node {
        Node {
            state: NodeState::NoBirth,
            bd_seq: None,
            next_seq: 0,
            last_rebirth_request: None,
            scope: Scope::default(),
            devices: BTreeMap::new(),
        }
    }
}

/// One host application and its model of every edge node it has seen.
#[derive(Debug, Clone)]
pub struct HostApp {
    config: HostConfig,
    state: HostState,
    /// The timestamp of this session's will and online STATE.
    state_ts: Option<u64>,
    nodes: BTreeMap<NodeId, Node>,
}

impl HostApp {
    pub fn new(config: HostConfig) -> HostApp {
        HostApp {
            config,
            state: HostState::Offline,
            state_ts: None,
            nodes: BTreeMap::new(),
        }
    }

    pub fn state(&self) -> HostState {
        self.state
    }

    /// What the host knows of a node's session; `None` if it never heard of it.
    pub fn node_state(&self, node: &NodeId) -> Option<NodeState> {
        self.nodes.get(node).map(|n| n.state)
    }

    /// The nodes the host knows, in order.
    pub fn nodes(&self) -> impl Iterator<Item = (&NodeId, NodeState)> {
        self.nodes.iter().map(|(id, n)| (id, n.state))
    }

    /// What the host knows of one metric of a node (`device: None`) or device.
    pub fn metric(&self, node: &NodeId, device: Option<&str>, name: &str) -> Option<&HostMetric> {
        let n = self.nodes.get(node)?;
        let scope = match device {
            None => &n.scope,
            Some(d) => &n.devices.get(d)?.scope,
        };
        scope.metrics.get(name)
    }

    fn state_topic(&self) -> String {
        Topic::State {
            host_id: self.config.host_id.clone(),
        }
        .to_string()
    }

    fn state_payload(&self, online: bool, timestamp: u64) -> Vec<u8> {
        StatePayload { online, timestamp }.to_json()
    }

    fn online_state(&self, ts: u64) -> HostAction {
        HostAction::Publish {
            topic: self.state_topic(),
            payload: self.state_payload(true, ts),
            qos: 1,
            retain: true,
        }
    }

    /// Applies one event.
    pub fn step(&mut self, event: HostEvent) -> Vec<HostAction> {
        match event {
            HostEvent::Connecting { now } => {
                self.state = HostState::Connecting;
                self.state_ts = Some(now);
                vec![HostAction::SetWill {
                    topic: self.state_topic(),
                    payload: self.state_payload(false, now),
                    qos: 1,
                    retain: true,
                }]
            }
            HostEvent::Connected { now } => {
                let (HostState::Connecting, Some(ts)) = (self.state, self.state_ts) else {
                    return vec![HostAction::Error(HostError::NotConnecting)];
                };
                self.state = HostState::Online;
                let mut out: Vec<HostAction> = if self.config.groups.is_empty() {
                    vec![HostAction::Subscribe {
                        filter: "spBv1.0/#".into(),
                        qos: 1,
                    }]
                } else {
                    self.config
                        .groups
                        .iter()
                        .map(|g| HostAction::Subscribe {
                            filter: format!("spBv1.0/{g}/#"),
                            qos: 1,
                        })
                        .collect()
                };
                out.push(HostAction::Subscribe {
                    filter: self.state_topic(),
                    qos: 1,
                });
                out.push(self.online_state(ts));
                // Whatever the nodes published while we were away is lost: ask for it again.
                let ids: Vec<NodeId> = self.nodes.keys().cloned().collect();
                for id in ids {
                    self.request_rebirth(&id, now, &mut out);
                }
                out
            }
            HostEvent::Stopping => {
                let (HostState::Online, Some(ts)) = (self.state, self.state_ts) else {
                    return vec![];
                };
                self.state = HostState::Offline;
                vec![HostAction::Publish {
                    topic: self.state_topic(),
                    payload: self.state_payload(false, ts),
                    qos: 1,
                    retain: true,
                }]
            }
            HostEvent::ConnectionLost { now } => {
                self.state = HostState::Offline;
                let mut out = Vec::new();
                for (id, n) in &mut self.nodes {
                    if n.state == NodeState::Online {
                        n.state = NodeState::Stale;
                        stale_node(id, n, now, StaleReason::HostDisconnected, &mut out);
                    }
                }
                out
            }
            HostEvent::Message {
                topic,
                payload,
                now,
            } => self.message(&topic, &payload, now),
        }
    }

    fn message(&mut self, topic: &str, payload: &[u8], now: u64) -> Vec<HostAction> {
        let mut out = Vec::new();
        let (id, kind, device) = match Topic::parse(topic) {
            Err(e) => return vec![HostAction::Error(HostError::Topic(e))],
            Ok(Topic::State { host_id }) => {
                if host_id == self.config.host_id
                    && self.state == HostState::Online
                    && let Some(ts) = self.state_ts
                    && StatePayload::from_json(payload).is_ok_and(|s| !s.online)
                {
                    out.push(self.online_state(ts));
                }
                return out;
            }
            Ok(Topic::Message {
                group,
                kind,
                edge,
                device,
            }) => (NodeId { group, edge }, kind, device),
        };
        if !self.config.groups.is_empty() && !self.config.groups.contains(&id.group) {
            return out;
        }
        if matches!(kind, MessageType::NCmd | MessageType::DCmd) {
            return out; // commands (ours or another host's) are not the model
        }
        if !self.nodes.contains_key(&id) {
            if self.nodes.len() >= self.config.max_nodes {
                out.push(HostAction::Error(HostError::TooManyNodes {
                    topic: topic.to_owned(),
                    max: self.config.max_nodes,
                }));
                return out;
            }
            self.nodes.insert(id.clone(), Node::new());
        }
        let t = Msg {
            topic,
            id: &id,
            device: device.as_deref(),
            now,
        };
        let ok = match kind {
            MessageType::NBirth => self.nbirth(&t, payload, &mut out),
            MessageType::NDeath => self.ndeath(&t, payload, &mut out),
            MessageType::DBirth => self.dbirth(&t, payload, &mut out),
            MessageType::DDeath => self.ddeath(&t, payload, &mut out),
            MessageType::NData | MessageType::DData => self.data(&t, payload, &mut out),
            MessageType::NCmd | MessageType::DCmd => true,
        };
        if !ok {
            self.request_rebirth(&id, now, &mut out);
        }
        out
    }

    /// Publishes an NCMD `Node Control/Rebirth = true` unless one went to this node less than
    /// `rebirth_interval_ms` ago.
    fn request_rebirth(&mut self, id: &NodeId, now: u64, out: &mut Vec<HostAction>) {
        let interval = self.config.rebirth_interval_ms;
        let Some(n) = self.nodes.get_mut(id) else {
            return;
        };
        if let Some(last) = n.last_rebirth_request
            && now >= last
            && now - last < interval
        {
            return;
        }
        n.last_rebirth_request = Some(now);
        let mut m = Metric::new(REBIRTH, MetricValue::Boolean(true));
        m.timestamp = Some(now);
        let payload = Payload {
            timestamp: Some(now),
            metrics: vec![m],
            ..Payload::default()
        };
        // A boolean metric always matches its data type, so encoding cannot fail.
        if let Ok(payload) = encode(&payload) {
            out.push(HostAction::Publish {
                topic: Topic::message(&id.group, MessageType::NCmd, &id.edge, None).to_string(),
                payload,
                qos: 0,
                retain: false,
            });
        }
    }

    fn decode(&self, t: &Msg, payload: &[u8], out: &mut Vec<HostAction>) -> Option<Payload> {
        match decode_with(payload, &self.config.limits) {
            Ok(p) => Some(p),
            Err(error) => {
                out.push(t.decode_error(error));
                None
            }
        }
    }

    /// Returns whether the message was fine (`false`: ask for a rebirth).
    fn nbirth(&mut self, t: &Msg, payload: &[u8], out: &mut Vec<HostAction>) -> bool {
        let Some(p) = self.decode(t, payload, out) else {
            return false;
        };
        let Some(bd_seq) = p
            .metrics
            .iter()
            .find(|m| m.name.as_deref() == Some(BD_SEQ))
            .and_then(|m| m.value.as_ref())
            .and_then(as_u64)
        else {
            out.push(HostAction::Error(HostError::NoBdSeq {
                topic: t.topic.to_owned(),
            }));
            return true; // a rebirth would carry no bdSeq either
        };
        let Some(n) = self.nodes.get_mut(t.id) else {
            return true;
        };
        let mut ok = true;
        let seq = match p.seq {
            Some(s) if s <= 255 => s as u8,
            got => {
                out.push(HostAction::Error(HostError::SeqGap {
                    topic: t.topic.to_owned(),
                    expected: 0,
                    got,
                }));
                ok = false;
                0
            }
        };
        let (scope, good) = birth_scope(t, &p, out);
        ok &= good;
        let old = std::mem::replace(&mut n.scope, scope);
        n.state = NodeState::Online;
        n.bd_seq = Some(bd_seq);
        n.next_seq = seq.wrapping_add(1);
        // Metrics of the old session that the new birth does not declare are gone.
        for (name, m) in old.metrics {
            if m.quality.is_good() && !n.scope.metrics.contains_key(&name) {
                out.push(stale_update(
                    t.id,
                    None,
                    &name,
                    &m,
                    t.now,
                    StaleReason::Rebirth,
                ));
            }
        }
        // Devices wait for their DBIRTH of this session.
        for (d, dev) in &mut n.devices {
            if dev.online {
                dev.online = false;
                out.push(HostAction::Offline {
                    node: t.id.clone(),
                    device: Some(d.clone()),
                    reason: StaleReason::Rebirth,
                });
                stale_scope(
                    t.id,
                    Some(d),
                    &mut dev.scope,
                    t.now,
                    StaleReason::Rebirth,
                    out,
                );
            }
        }
        out.push(HostAction::Online {
            node: t.id.clone(),
            device: None,
        });
        birth_updates(t, None, &n.scope, &p, out);
        ok
    }

    fn ndeath(&mut self, t: &Msg, payload: &[u8], out: &mut Vec<HostAction>) -> bool {
        let Some(p) = self.decode(t, payload, out) else {
            return false;
        };
        let Some(n) = self.nodes.get_mut(t.id) else {
            return true;
        };
        let bd_seq = p
            .metrics
            .iter()
            .find(|m| m.name.as_deref() == Some(BD_SEQ))
            .and_then(|m| m.value.as_ref())
            .and_then(as_u64);
        let live = matches!(n.state, NodeState::Online | NodeState::Stale);
        if !live || bd_seq.is_none() || bd_seq != n.bd_seq {
            return true; // an older session's will: this session is not affected
        }
        n.state = NodeState::Dead;
        let ts = p.timestamp.unwrap_or(t.now);
        stale_node(t.id, n, ts, StaleReason::NodeDeath, out);
        true
    }

    /// The node, when it is online; otherwise reports [`HostError::NoBirth`].
    fn online_node(&mut self, t: &Msg, out: &mut Vec<HostAction>) -> Option<&mut Node> {
        match self.nodes.get_mut(t.id) {
            Some(n) if n.state == NodeState::Online => Some(n),
            _ => {
                out.push(HostAction::Error(HostError::NoBirth {
                    topic: t.topic.to_owned(),
                }));
                None
            }
        }
    }

    fn dbirth(&mut self, t: &Msg, payload: &[u8], out: &mut Vec<HostAction>) -> bool {
        let Some(p) = self.decode(t, payload, out) else {
            return false;
        };
        let max = self.config.max_devices_per_node;
        let Some(n) = self.online_node(t, out) else {
            return false;
        };
        let Some(d) = t.device else { return true };
        let mut ok = check_seq(t, n, p.seq, out);
        if !n.devices.contains_key(d) && n.devices.len() >= max {
            out.push(HostAction::Error(HostError::TooManyDevices {
                topic: t.topic.to_owned(),
                max,
            }));
            return ok;
        }
        let (scope, good) = birth_scope(t, &p, out);
        ok &= good;
        let old = n.devices.insert(
            d.to_owned(),
            Device {
                online: true,
                scope,
            },
        );
        let Some(dev) = n.devices.get(d) else {
            return ok;
        };
        if let Some(old) = old {
            for (name, m) in old.scope.metrics {
                if m.quality.is_good() && !dev.scope.metrics.contains_key(&name) {
                    out.push(stale_update(
                        t.id,
                        Some(d),
                        &name,
                        &m,
                        t.now,
                        StaleReason::Rebirth,
                    ));
                }
            }
        }
        out.push(HostAction::Online {
            node: t.id.clone(),
            device: Some(d.to_owned()),
        });
        birth_updates(t, Some(d), &dev.scope, &p, out);
        ok
    }

    fn ddeath(&mut self, t: &Msg, payload: &[u8], out: &mut Vec<HostAction>) -> bool {
        let Some(p) = self.decode(t, payload, out) else {
            return false;
        };
        let Some(n) = self.online_node(t, out) else {
            return false;
        };
        let ok = check_seq(t, n, p.seq, out);
        let Some(d) = t.device else { return ok };
        let Some(dev) = n.devices.get_mut(d).filter(|dev| dev.online) else {
            return ok; // already dead, or never born: nothing to stale
        };
        dev.online = false;
        let ts = p.timestamp.unwrap_or(t.now);
        out.push(HostAction::Offline {
            node: t.id.clone(),
            device: Some(d.to_owned()),
            reason: StaleReason::DeviceDeath,
        });
        stale_scope(
            t.id,
            Some(d),
            &mut dev.scope,
            ts,
            StaleReason::DeviceDeath,
            out,
        );
        ok
    }

    fn data(&mut self, t: &Msg, payload: &[u8], out: &mut Vec<HostAction>) -> bool {
        let limits = self.config.limits;
        let Some(n) = self.online_node(t, out) else {
            return false;
        };
        let scope = match t.device {
            None => &n.scope,
            Some(d) => match n.devices.get(d).filter(|dev| dev.online) {
                Some(dev) => &dev.scope,
                None => {
                    out.push(HostAction::Error(HostError::NoDeviceBirth {
                        topic: t.topic.to_owned(),
                    }));
                    return false;
                }
            },
        };
        let p =
            match decode_in_session(payload, &limits, &|name, alias| scope.datatype(name, alias)) {
                Ok(p) => p,
                Err(error) => {
                    out.push(t.decode_error(error));
                    return false;
                }
            };
        let mut ok = check_seq(t, n, p.seq, out);
        let scope = match t.device {
            None => &mut n.scope,
            Some(d) => match n.devices.get_mut(d) {
                Some(dev) => &mut dev.scope,
                None => return false,
            },
        };
        for m in p.metrics {
            let Some(name) = scope.resolve(m.name.as_deref(), m.alias).map(str::to_owned) else {
                out.push(HostAction::Error(HostError::UnknownMetric {
                    topic: t.topic.to_owned(),
                    name: m.name,
                    alias: m.alias,
                }));
                ok = false;
                continue;
            };
            let Some(hm) = scope.metrics.get_mut(&name) else {
                continue;
            };
            if let Some(v) = &m.value
                && v.datatype() != hm.datatype
            {
                out.push(HostAction::Error(HostError::TypeMismatch {
                    topic: t.topic.to_owned(),
                    metric: name,
                    birth: hm.datatype,
                    got: v.datatype(),
                }));
                ok = false;
                continue;
            }
            hm.quality = crate::quality::quality_of(&m);
            hm.value = m.value;
            hm.timestamp = m.timestamp.or(p.timestamp).unwrap_or(t.now);
            out.push(HostAction::Update {
                node: t.id.clone(),
                device: t.device.map(str::to_owned),
                metric: name,
                value: hm.value.clone(),
                timestamp: hm.timestamp,
                quality: hm.quality.clone(),
            });
        }
        ok
    }

    /// The NCMD (`device: None`) or DCMD that writes `value` to a metric, by alias when the birth
    /// gave one (else by name). Refused when the node or device is unknown or offline, the metric
    /// unknown, or the value not of the metric's data type.
    pub fn write(
        &self,
        node: &NodeId,
        device: Option<&str>,
        metric: &str,
        value: MetricValue,
        now: u64,
    ) -> Result<HostAction, WriteError> {
        let n = self
            .nodes
            .get(node)
            .ok_or_else(|| WriteError::UnknownNode { node: node.clone() })?;
        if n.state != NodeState::Online {
            return Err(WriteError::NodeOffline {
                node: node.clone(),
                state: n.state,
            });
        }
        let scope = match device {
            None => &n.scope,
            Some(d) => {
                let dev = n.devices.get(d).ok_or_else(|| WriteError::UnknownDevice {
                    node: node.clone(),
                    device: d.to_owned(),
                })?;
                if !dev.online {
                    return Err(WriteError::DeviceOffline {
                        node: node.clone(),
                        device: d.to_owned(),
                    });
                }
                &dev.scope
            }
        };
        let hm = scope
            .metrics
            .get(metric)
            .ok_or_else(|| WriteError::UnknownMetric {
                node: node.clone(),
                device: device.map(str::to_owned),
                metric: metric.to_owned(),
            })?;
        if value.datatype() != hm.datatype {
            return Err(WriteError::TypeMismatch {
                node: node.clone(),
                device: device.map(str::to_owned),
                metric: metric.to_owned(),
                birth: hm.datatype,
                got: value.datatype(),
            });
        }
        let m = Metric {
            name: hm.alias.is_none().then(|| metric.to_owned()),
            alias: hm.alias,
            timestamp: Some(now),
            ..Metric::new("", value)
        };
        let payload = encode(&Payload {
            timestamp: Some(now),
            metrics: vec![m],
            ..Payload::default()
        })
        .map_err(|error| WriteError::Encode {
            node: node.clone(),
            error,
        })?;
        let kind = if device.is_some() {
            MessageType::DCmd
        } else {
            MessageType::NCmd
        };
        Ok(HostAction::Publish {
            topic: Topic::message(&node.group, kind, &node.edge, device).to_string(),
            payload,
            qos: 0,
            retain: false,
        })
    }
}

/// The message being handled.
struct Msg<'a> {
    topic: &'a str,
    id: &'a NodeId,
    device: Option<&'a str>,
    now: u64,
}

impl Msg<'_> {
    fn decode_error(&self, error: DecodeError) -> HostAction {
        HostAction::Error(HostError::Decode {
            topic: self.topic.to_owned(),
            error,
        })
    }
}

fn as_u64(v: &MetricValue) -> Option<u64> {
    use MetricValue as V;
    match *v {
        V::Int8(x) => u64::try_from(x).ok(),
        V::Int16(x) => u64::try_from(x).ok(),
        V::Int32(x) => u64::try_from(x).ok(),
        V::Int64(x) => u64::try_from(x).ok(),
        V::UInt8(x) => Some(u64::from(x)),
        V::UInt16(x) => Some(u64::from(x)),
        V::UInt32(x) => Some(u64::from(x)),
        V::UInt64(x) => Some(x),
        _ => None,
    }
}

/// Checks and advances the node's `seq`; `false` on a gap (the message is still applied).
fn check_seq(t: &Msg, n: &mut Node, seq: Option<u64>, out: &mut Vec<HostAction>) -> bool {
    let expected = n.next_seq;
    match seq {
        Some(s) if s == u64::from(expected) => {
            n.next_seq = expected.wrapping_add(1);
            true
        }
        got => {
            if let Some(s) = got.and_then(|s| u8::try_from(s).ok()) {
                n.next_seq = s.wrapping_add(1);
            }
            out.push(HostAction::Error(HostError::SeqGap {
                topic: t.topic.to_owned(),
                expected,
                got,
            }));
            false
        }
    }
}

/// The model of a birth certificate (every named metric but `bdSeq`); `false` if a metric had
/// no name.
fn birth_scope(t: &Msg, p: &Payload, out: &mut Vec<HostAction>) -> (Scope, bool) {
    let mut scope = Scope::default();
    let mut ok = true;
    for (index, m) in p.metrics.iter().enumerate() {
        let Some(name) = &m.name else {
            out.push(HostAction::Error(HostError::UnnamedBirthMetric {
                topic: t.topic.to_owned(),
                index,
            }));
            ok = false;
            continue;
        };
        if name == BD_SEQ && t.device.is_none() {
            continue;
        }
        if let Some(a) = m.alias {
            scope.aliases.insert(a, name.clone());
        }
        scope.metrics.insert(
            name.clone(),
            HostMetric {
                datatype: m.datatype,
                alias: m.alias,
                value: m.value.clone(),
                timestamp: m.timestamp.or(p.timestamp).unwrap_or(t.now),
                quality: crate::quality::quality_of(m),
            },
        );
    }
    (scope, ok)
}

/// One good [`HostAction::Update`] per metric of a birth, in the birth's order.
fn birth_updates(
    t: &Msg,
    device: Option<&str>,
    scope: &Scope,
    p: &Payload,
    out: &mut Vec<HostAction>,
) {
    for m in &p.metrics {
        let Some(name) = &m.name else { continue };
        let Some(hm) = scope.metrics.get(name) else {
            continue;
        };
        out.push(HostAction::Update {
            node: t.id.clone(),
            device: device.map(str::to_owned),
            metric: name.clone(),
            value: hm.value.clone(),
            timestamp: hm.timestamp,
            quality: hm.quality.clone(),
        });
    }
}

fn stale_update(
    id: &NodeId,
    device: Option<&str>,
    name: &str,
    m: &HostMetric,
    ts: u64,
    reason: StaleReason,
) -> HostAction {
    HostAction::Update {
        node: id.clone(),
        device: device.map(str::to_owned),
        metric: name.to_owned(),
        value: m.value.clone(),
        timestamp: ts,
        quality: reason.quality(),
    }
}

/// Marks every good metric of a scope stale, one update each.
fn stale_scope(
    id: &NodeId,
    device: Option<&str>,
    scope: &mut Scope,
    ts: u64,
    reason: StaleReason,
    out: &mut Vec<HostAction>,
) {
    for (name, m) in &mut scope.metrics {
        if m.quality.is_good() {
            m.quality = reason.quality();
            m.timestamp = ts;
            out.push(stale_update(id, device, name, m, ts, reason));
        }
    }
}

/// Marks a node and its online devices offline and every good metric stale.
fn stale_node(id: &NodeId, n: &mut Node, ts: u64, reason: StaleReason, out: &mut Vec<HostAction>) {
    out.push(HostAction::Offline {
        node: id.clone(),
        device: None,
        reason,
    });
    stale_scope(id, None, &mut n.scope, ts, reason, out);
    for (d, dev) in &mut n.devices {
        let was_online = std::mem::replace(&mut dev.online, false);
        if was_online {
            out.push(HostAction::Offline {
                node: id.clone(),
                device: Some(d.clone()),
                reason,
            });
        }
        stale_scope(id, Some(d), &mut dev.scope, ts, reason, out);
    }
}
