//! Events: things that happen, as opposed to measurements. They travel on the bus beside
//! samples (an alarm changing state, an operator acknowledging it, a device going offline, a
//! configuration being applied, an audit record) so that the journal, the UI stream, the broker
//! and the uplink receive them through the same ordered, bounded path as the data.
//!
//! Like [`crate::Sample`], an [`Event`] is a plain value: it needs no registry to be understood.
//! State names inside the payloads (an alarm's `from`/`to`) are strings chosen by the component
//! that owns the state machine, so this crate does not have to know every lifecycle.

use serde::Serialize;

use crate::Value;

/// One event. `ts` is when it happened (ns since the Unix epoch), `source` names the component
/// instance that raised it (`modbus/plc1`, `alarms/engine`, `http/api`), and `asset` the asset
/// it concerns, if any (a full asset path).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    pub ts: i64,
    pub source: String,
    pub asset: Option<String>,
    pub kind: EventKind,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// An alarm moved from one lifecycle state to another (ISA-18.2 states, named by the alarm
    /// engine), with the value that caused it and the rendered message. `tag` is the input it
    /// watches, `priority` its priority name (`critical`, `high`, `medium`, `low`) and `area` its
    /// routing area, so that consumers (notifications, the uplink) can route without the alarm
    /// configuration.
    AlarmTransition {
        alarm: String,
        tag: String,
        priority: String,
        area: String,
        from: String,
        to: String,
        value: Option<Value>,
        message: String,
    },
    /// Somebody did something: acknowledged, shelved, put out of service, injected a fault, …
    OperatorAction {
        user: String,
        action: String,
        target: String,
        comment: String,
    },
    /// A source's connection came up or went down (`reason` says why it went down).
    ConnectionChange { up: bool, reason: Option<String> },
    /// A configuration was applied (at start or on reload).
    ConfigChange { summary: String },
    /// A security-relevant record for the audit trail.
    Audit {
        actor: String,
        action: String,
        outcome: String,
        detail: String,
    },
}

impl EventKind {
    /// The snake-case name of the variant (`alarm_transition`, `connection_change`, …).
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::AlarmTransition { .. } => "alarm_transition",
            EventKind::OperatorAction { .. } => "operator_action",
            EventKind::ConnectionChange { .. } => "connection_change",
            EventKind::ConfigChange { .. } => "config_change",
            EventKind::Audit { .. } => "audit",
        }
    }
}

impl Event {
    pub fn new(ts: i64, source: impl Into<String>, kind: EventKind) -> Event {
        Event {
            ts,
            source: source.into(),
            asset: None,
            kind,
        }
    }

    /// The same event, concerning `asset`.
    pub fn for_asset(mut self, asset: impl Into<String>) -> Event {
        self.asset = Some(asset.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_with_a_type_tag() {
        let e = Event::new(
            5,
            "modbus/plc1",
            EventKind::ConnectionChange {
                up: false,
                reason: Some("connection refused".into()),
            },
        )
        .for_asset("acme/p1");
        let j = serde_json::to_value(&e).unwrap();
        assert_eq!(j["kind"]["type"], "connection_change");
        assert_eq!(j["kind"]["reason"], "connection refused");
        assert_eq!(j["asset"], "acme/p1");
        assert_eq!(e.kind.name(), "connection_change");
    }
}
