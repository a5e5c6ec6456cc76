//! The edge node session as a pure state machine: [`EdgeNode::step`] takes an [`EdgeEvent`] and
//! returns [`EdgeAction`]s for the runtime (MQTT client, persistence, tag writes) to execute.
//!
//! - Before each connection ([`EdgeEvent::Connecting`]) the node hands out the will (an NDEATH
//!   carrying this session's `bdSeq`) and asks the runtime to persist the *next* session's bdSeq
//!   (0–255, wrapping), so a restart never reuses a bdSeq a host has seen.
//! - Once connected it subscribes to its NCMD/DCMD topics and publishes NBIRTH (seq 0, `bdSeq`,
//!   `Node Control/Rebirth`, every node metric with its alias) and one DBIRTH per device.
//! - Every later message (DBIRTH, NDATA, DDATA, DDEATH) takes the next `seq` (0–255, wrapping).
//! - Updates are reported by exception: a metric is published (by alias only) when its value
//!   differs from the last published one; while offline, the next birth carries it.
//! - `Node Control/Rebirth = true` in an NCMD republishes every birth (seq restarts at 0, same
//!   bdSeq: the session and its will are unchanged). Other command metrics become
//!   [`EdgeAction::Write`] when the metric is writable, [`EdgeAction::Refused`] otherwise.
//! - Each [`Reading`] carries a quality, sent as the `Quality` property ([`crate::quality`]);
//!   a bad reading is published as null (`is_null`), never as a value. A change of quality
//!   alone is reported like a change of value.
//! - [`EdgeEvent::Define`] adds metrics (or changes a metric's data type) while the node runs:
//!   a device's new metrics are announced by a new DBIRTH of that device (not by DDATA a host
//!   could not resolve), node metrics by a rebirth of everything (NBIRTH defines them).
//! - A device is **dead** while every one of its metrics is bad or stale (its source cannot read
//!   it: a Modbus device that stopped answering reports every tag bad). The update that makes it
//!   so publishes a DDEATH (seq, timestamp, no metrics) instead of DDATA; nothing more is
//!   published for it until a reading is good or uncertain again, which publishes its DBIRTH
//!   (every current value) instead of DDATA. A birth of a dead device (a rebirth, a reconnection,
//!   new metrics) is followed by its DDEATH, so a host learns the model and that it is dead.
//! - [`EdgeEvent::Stopping`] is an intentional disconnect: the node publishes its NDEATH
//!   itself before the runtime sends DISCONNECT (the broker drops the will then).

use std::collections::{BTreeMap, BTreeSet};

use mw_model::Quality;

use crate::payload::{Metric, MetricValue, Payload, decode, encode};
use crate::topic::{MessageType, Topic};
use crate::{BD_SEQ, DataType, REBIRTH, quality};

/// A metric the node (or one of its devices) publishes.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricDef {
    pub name: String,
    pub datatype: DataType,
    /// Initial value (`None`: null until updated).
    pub value: Option<MetricValue>,
    /// Whether an NCMD/DCMD may write it.
    pub writable: bool,
}

/// A new value (`None`: null) and quality of one metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub name: String,
    pub value: Option<MetricValue>,
    pub quality: Quality,
    /// When the value was true (ms since the Unix epoch); `None`: the event's time.
    pub timestamp: Option<u64>,
}

impl From<(String, Option<MetricValue>)> for Reading {
    /// A reading of good quality.
    fn from((name, value): (String, Option<MetricValue>)) -> Reading {
        Reading {
            name,
            value,
            quality: Quality::Good,
            timestamp: None,
        }
    }
}

/// What a metric holds on the wire: its value (null when bad) and quality code.
type Wire = (Option<MetricValue>, i32);

#[derive(Debug, Clone, PartialEq)]
struct Entry {
    def: MetricDef,
    alias: u64,
    current: Wire,
    /// The time of the current value (`None`: the birth's).
    ts: Option<u64>,
    /// What the last birth or data message said (`None`: never published).
    published: Option<Wire>,
}

impl Entry {
    fn new(def: MetricDef, alias: u64) -> Entry {
        Entry {
            current: (def.value.clone(), quality::GOOD),
            ts: None,
            published: None,
            alias,
            def,
        }
    }
}

/// Where the session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeState {
    Offline,
    Connecting,
    Online,
}

/// What happens to the node.
#[derive(Debug, Clone, PartialEq)]
pub enum EdgeEvent {
    /// The runtime is about to open an MQTT connection (it needs the will first).
    Connecting,
    /// The connection is up (CONNACK received).
    Connected { now: u64 },
    /// The connection is gone.
    ConnectionLost,
    /// The runtime is about to disconnect on purpose: publish the NDEATH first.
    Stopping,
    /// New values for the node's (`device: None`) or a device's metrics.
    Update {
        device: Option<String>,
        values: Vec<Reading>,
        now: u64,
    },
    /// Adds metrics to the node (`device: None`) or a device (created if new); a known name
    /// with another data type is redefined. Online, whatever changed is born again: the
    /// device's DBIRTH, or every birth for node metrics.
    Define {
        device: Option<String>,
        metrics: Vec<MetricDef>,
        now: u64,
    },
    /// A message arrived on a subscribed topic (NCMD/DCMD).
    Message {
        topic: String,
        payload: Vec<u8>,
        now: u64,
    },
}

/// What the runtime must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum EdgeAction {
    /// Store this bdSeq; pass it to [`EdgeNode::new`] after a restart.
    PersistBdSeq(u8),
    /// Use this as the MQTT will of the coming connection (QoS 1, not retained).
    SetWill {
        topic: String,
        payload: Vec<u8>,
    },
    Subscribe(String),
    Publish {
        topic: String,
        payload: Vec<u8>,
        qos: u8,
    },
    /// An NCMD/DCMD asks to write a writable metric.
    Write {
        device: Option<String>,
        name: String,
        value: Option<MetricValue>,
    },
    /// A command that was not executed, and why.
    Refused {
        reason: String,
    },
}

/// One edge node and its devices.
#[derive(Debug, Clone)]
pub struct EdgeNode {
    group: String,
    edge: String,
    state: EdgeState,
    bd_seq: u8,
    seq: u8,
    /// The last alias handed out.
    alias: u64,
    node: Vec<Entry>,
    devices: BTreeMap<String, Vec<Entry>>,
    /// Devices whose last announcement was a DDEATH.
    dead: BTreeSet<String>,
}

/// Whether no metric of a device has a usable value (bad or stale, every one).
fn all_bad(es: &[Entry]) -> bool {
    !es.is_empty()
        && es
            .iter()
            .all(|e| e.current.1 == quality::BAD || e.current.1 == quality::STALE)
}

fn entries(defs: Vec<MetricDef>, next_alias: &mut u64) -> Vec<Entry> {
    defs.into_iter()
        .map(|def| {
            *next_alias += 1;
            Entry::new(def, *next_alias)
        })
        .collect()
}

impl EdgeNode {
    /// A node with its metrics and devices; `bd_seq` is what the last [`EdgeAction::PersistBdSeq`]
    /// said (0 on first start). Aliases are numbered from 1 across the node and its devices.
    pub fn new(
        group: &str,
        edge: &str,
        bd_seq: u8,
        node: Vec<MetricDef>,
        devices: Vec<(String, Vec<MetricDef>)>,
    ) -> EdgeNode {
        let mut alias = 0;
        let node = entries(node, &mut alias);
        let devices = devices
            .into_iter()
            .map(|(d, defs)| (d, entries(defs, &mut alias)))
            .collect();
        EdgeNode {
            group: group.to_owned(),
            edge: edge.to_owned(),
            state: EdgeState::Offline,
            bd_seq,
            seq: 0,
            alias,
            node,
            devices,
            dead: BTreeSet::new(),
        }
    }

    /// Whether the device's last announcement was a DDEATH (see the module's rules).
    pub fn is_dead(&self, device: &str) -> bool {
        self.dead.contains(device)
    }

    /// Whether the node or device (`device: None`: the node) has a metric of that name, and
    /// its data type.
    pub fn datatype(&self, device: Option<&str>, name: &str) -> Option<DataType> {
        let es = match device {
            None => &self.node,
            Some(d) => self.devices.get(d)?,
        };
        es.iter()
            .find(|e| e.def.name == name)
            .map(|e| e.def.datatype)
    }

    /// The number of metrics of the node and all its devices.
    pub fn metric_count(&self) -> usize {
        self.node.len() + self.devices.values().map(Vec::len).sum::<usize>()
    }

    pub fn state(&self) -> EdgeState {
        self.state
    }

    /// The bdSeq of the current (or next) session.
    pub fn bd_seq(&self) -> u8 {
        self.bd_seq
    }

    fn topic(&self, kind: MessageType, device: Option<&str>) -> String {
        Topic::message(&self.group, kind, &self.edge, device).to_string()
    }

    fn next_seq(&mut self) -> u64 {
        let s = self.seq;
        self.seq = self.seq.wrapping_add(1);
        u64::from(s)
    }

    fn publish(
        &mut self,
        kind: MessageType,
        device: Option<&str>,
        metrics: Vec<Metric>,
        now: u64,
    ) -> EdgeAction {
        let seq = self.next_seq();
        let payload = Payload {
            timestamp: Some(now),
            metrics,
            seq: Some(seq),
            uuid: None,
            body: None,
        };
        EdgeAction::Publish {
            topic: self.topic(kind, device),
            payload: encode_ok(&payload),
            qos: 0,
        }
    }

    fn births(&mut self, now: u64) -> Vec<EdgeAction> {
        self.seq = 0;
        let mut metrics = vec![
            Metric::new(BD_SEQ, MetricValue::Int64(i64::from(self.bd_seq))),
            Metric::new(REBIRTH, MetricValue::Boolean(false)),
        ];
        metrics.extend(self.node.iter_mut().map(|e| birth_metric(e, now)));
        let mut out = vec![self.publish(MessageType::NBirth, None, metrics, now)];
        let names: Vec<String> = self.devices.keys().cloned().collect();
        for d in names {
            out.extend(self.device_birth(&d, now));
        }
        out
    }

    /// The device's DBIRTH, followed by its DDEATH when it is dead.
    fn device_birth(&mut self, d: &str, now: u64) -> Vec<EdgeAction> {
        let Some(es) = self.devices.get_mut(d) else {
            return vec![];
        };
        let metrics = es.iter_mut().map(|e| birth_metric(e, now)).collect();
        let dead = all_bad(es);
        let mut out = vec![self.publish(MessageType::DBirth, Some(d), metrics, now)];
        if dead {
            out.push(self.publish(MessageType::DDeath, Some(d), vec![], now));
            self.dead.insert(d.to_owned());
        } else {
            self.dead.remove(d);
        }
        out
    }

    fn define(
        &mut self,
        device: Option<String>,
        defs: Vec<MetricDef>,
        now: u64,
    ) -> Vec<EdgeAction> {
        let mut alias = self.alias;
        let es = match &device {
            None => &mut self.node,
            Some(d) => self.devices.entry(d.clone()).or_default(),
        };
        let mut changed = es.is_empty();
        for def in defs {
            match es.iter_mut().find(|e| e.def.name == def.name) {
                Some(e) if e.def.datatype == def.datatype && e.def.writable == def.writable => {}
                Some(e) => {
                    // a new data type: the old value means nothing any more
                    e.current = (def.value.clone(), quality::GOOD);
                    e.def = def;
                    changed = true;
                }
                None => {
                    alias += 1;
                    es.push(Entry::new(def, alias));
                    changed = true;
                }
            }
        }
        self.alias = alias;
        if !changed || self.state != EdgeState::Online {
            return vec![];
        }
        match device {
            None => self.births(now),
            Some(d) => self.device_birth(&d, now),
        }
    }

    fn death(&self) -> Vec<u8> {
        encode_ok(&Payload {
            metrics: vec![Metric::new(
                BD_SEQ,
                MetricValue::Int64(i64::from(self.bd_seq)),
            )],
            ..Payload::default()
        })
    }

    /// Applies one event.
    pub fn step(&mut self, event: EdgeEvent) -> Vec<EdgeAction> {
        match event {
            EdgeEvent::Connecting => {
                self.state = EdgeState::Connecting;
                vec![
                    EdgeAction::PersistBdSeq(self.bd_seq.wrapping_add(1)),
                    EdgeAction::SetWill {
                        topic: self.topic(MessageType::NDeath, None),
                        payload: self.death(),
                    },
                ]
            }
            EdgeEvent::Connected { now } => {
                if self.state != EdgeState::Connecting {
                    return vec![EdgeAction::Refused {
                        reason: "connected without Connecting first: no will with this session's bdSeq was set".into(),
                    }];
                }
                self.state = EdgeState::Online;
                let mut out = vec![
                    EdgeAction::Subscribe(self.topic(MessageType::NCmd, None)),
                    EdgeAction::Subscribe(format!(
                        "{}/+",
                        self.topic(MessageType::DCmd, None).trim_end_matches('/')
                    )),
                ];
                out.extend(self.births(now));
                out
            }
            EdgeEvent::Stopping => {
                if self.state != EdgeState::Online {
                    return vec![];
                }
                let death = EdgeAction::Publish {
                    topic: self.topic(MessageType::NDeath, None),
                    payload: self.death(),
                    qos: 1,
                };
                self.state = EdgeState::Offline;
                self.bd_seq = self.bd_seq.wrapping_add(1);
                vec![death]
            }
            EdgeEvent::Define {
                device,
                metrics,
                now,
            } => self.define(device, metrics, now),
            EdgeEvent::ConnectionLost => {
                if self.state != EdgeState::Offline {
                    self.state = EdgeState::Offline;
                    self.bd_seq = self.bd_seq.wrapping_add(1);
                }
                vec![]
            }
            EdgeEvent::Update {
                device,
                values,
                now,
            } => self.update(device, values, now),
            EdgeEvent::Message {
                topic,
                payload,
                now,
            } => self.command(&topic, &payload, now),
        }
    }

    fn update(
        &mut self,
        device: Option<String>,
        values: Vec<Reading>,
        now: u64,
    ) -> Vec<EdgeAction> {
        let online = self.state == EdgeState::Online;
        let es = match &device {
            None => &mut self.node,
            Some(d) => match self.devices.get_mut(d) {
                Some(es) => es,
                None => {
                    return vec![EdgeAction::Refused {
                        reason: format!("update for unknown device {d:?}"),
                    }];
                }
            },
        };
        let mut refused = Vec::new();
        let mut changed = Vec::new();
        for Reading {
            name,
            value,
            quality: q,
            timestamp,
        } in values
        {
            let Some(e) = es.iter_mut().find(|e| e.def.name == name) else {
                refused.push(EdgeAction::Refused {
                    reason: format!("update for unknown metric {name:?}"),
                });
                continue;
            };
            if let Some(v) = &value
                && v.datatype() != e.def.datatype
            {
                refused.push(EdgeAction::Refused {
                    reason: format!(
                        "metric {name:?} is {:?}, update is {:?}",
                        e.def.datatype,
                        v.datatype()
                    ),
                });
                continue;
            }
            let code = quality::code(&q);
            // a bad reading has no value that could be taken for a good one
            e.current = (
                if code == quality::BAD || code == quality::STALE {
                    None
                } else {
                    value
                },
                code,
            );
            e.ts = timestamp;
            if online && Some(&e.current) != e.published.as_ref() {
                let was_good = e.published.as_ref().is_none_or(|p| p.1 == quality::GOOD);
                e.published = Some(e.current.clone());
                changed.push(Metric {
                    name: None,
                    alias: Some(e.alias),
                    timestamp: Some(timestamp.unwrap_or(now)),
                    datatype: e.def.datatype,
                    is_historical: false,
                    is_transient: false,
                    metadata: None,
                    properties: (code != quality::GOOD || !was_good)
                        .then(|| quality::property(code)),
                    value: e.current.0.clone(),
                });
            }
        }
        if let Some(d) = device.as_deref().filter(|_| online) {
            let dead = self.devices.get(d).is_some_and(|es| all_bad(es));
            match (self.dead.contains(d), dead) {
                (false, true) => {
                    self.dead.insert(d.to_owned());
                    refused.push(self.publish(MessageType::DDeath, Some(d), vec![], now));
                    return refused;
                }
                (true, true) => return refused,
                (true, false) => {
                    refused.extend(self.device_birth(d, now));
                    return refused;
                }
                (false, false) => {}
            }
        }
        if !changed.is_empty() {
            let kind = if device.is_some() {
                MessageType::DData
            } else {
                MessageType::NData
            };
            refused.push(self.publish(kind, device.as_deref(), changed, now));
        }
        refused
    }

    fn command(&mut self, topic: &str, payload: &[u8], now: u64) -> Vec<EdgeAction> {
        let refuse = |reason: String| vec![EdgeAction::Refused { reason }];
        let device = match Topic::parse(topic) {
            Ok(Topic::Message {
                group,
                kind: MessageType::NCmd,
                edge,
                ..
            }) if group == self.group && edge == self.edge => None,
            Ok(Topic::Message {
                group,
                kind: MessageType::DCmd,
                edge,
                device,
            }) if group == self.group && edge == self.edge => device,
            _ => return refuse(format!("{topic}: not a command for this node")),
        };
        let p = match decode(payload) {
            Ok(p) => p,
            Err(e) => return refuse(format!("{topic}: {e}")),
        };
        let mut out = Vec::new();
        for m in p.metrics {
            if device.is_none() && m.name.as_deref() == Some(REBIRTH) {
                if m.value == Some(MetricValue::Boolean(true)) && self.state == EdgeState::Online {
                    out.extend(self.births(now));
                }
                continue;
            }
            let es = match &device {
                None => &self.node,
                Some(d) => match self.devices.get(d) {
                    Some(es) => es,
                    None => {
                        out.push(EdgeAction::Refused {
                            reason: format!("{topic}: unknown device {d:?}"),
                        });
                        break;
                    }
                },
            };
            let found = es.iter().find(|e| match (&m.name, m.alias) {
                (Some(n), _) => &e.def.name == n,
                (None, Some(a)) => e.alias == a,
                (None, None) => false,
            });
            match found {
                Some(e) if !e.def.writable => out.push(EdgeAction::Refused {
                    reason: format!("{topic}: metric {:?} is not writable", e.def.name),
                }),
                Some(e)
                    if m.value
                        .as_ref()
                        .is_some_and(|v| v.datatype() != e.def.datatype) =>
                {
                    out.push(EdgeAction::Refused {
                        reason: format!(
                            "{topic}: metric {:?} is {:?}, command carries {:?}",
                            e.def.name, e.def.datatype, m.datatype
                        ),
                    })
                }
                Some(e) => out.push(EdgeAction::Write {
                    device: device.clone(),
                    name: e.def.name.clone(),
                    value: m.value,
                }),
                None => out.push(EdgeAction::Refused {
                    reason: format!("{topic}: unknown metric {:?} (alias {:?})", m.name, m.alias),
                }),
            }
        }
        out
    }
}

fn birth_metric(e: &mut Entry, now: u64) -> Metric {
    e.published = Some(e.current.clone());
    let code = e.current.1;
    Metric {
        name: Some(e.def.name.clone()),
        alias: Some(e.alias),
        timestamp: Some(e.ts.unwrap_or(now)),
        datatype: e.def.datatype,
        is_historical: false,
        is_transient: false,
        metadata: None,
        properties: (code != quality::GOOD).then(|| quality::property(code)),
        value: e.current.0.clone(),
    }
}

/// Our own payloads always match their data types (checked on update), so encoding cannot fail;
/// should it ever, the metric values are dropped rather than panicking.
fn encode_ok(p: &Payload) -> Vec<u8> {
    encode(p).unwrap_or_default()
}
