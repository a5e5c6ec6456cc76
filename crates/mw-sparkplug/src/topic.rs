//! Sparkplug topics and the 3.0 `STATE` payload.

use std::fmt;

/// The namespace of Sparkplug B topics.
pub const NAMESPACE: &str = "spBv1.0";

/// The message types of the `spBv1.0/{group}/{type}/…` topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    NBirth,
    NData,
    NDeath,
    NCmd,
    DBirth,
    DData,
    DDeath,
    DCmd,
}

impl MessageType {
    pub const ALL: [MessageType; 8] = [
        MessageType::NBirth,
        MessageType::NData,
        MessageType::NDeath,
        MessageType::NCmd,
        MessageType::DBirth,
        MessageType::DData,
        MessageType::DDeath,
        MessageType::DCmd,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::NBirth => "NBIRTH",
            MessageType::NData => "NDATA",
            MessageType::NDeath => "NDEATH",
            MessageType::NCmd => "NCMD",
            MessageType::DBirth => "DBIRTH",
            MessageType::DData => "DDATA",
            MessageType::DDeath => "DDEATH",
            MessageType::DCmd => "DCMD",
        }
    }

    /// Whether the topic of this type names a device.
    pub fn is_device(self) -> bool {
        matches!(
            self,
            MessageType::DBirth | MessageType::DData | MessageType::DDeath | MessageType::DCmd
        )
    }
}

/// A parsed Sparkplug topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Topic {
    /// `spBv1.0/{group}/{type}/{edge}[/{device}]`; `device` is `Some` exactly for D* types.
    Message {
        group: String,
        kind: MessageType,
        edge: String,
        device: Option<String>,
    },
    /// `spBv1.0/STATE/{host_id}` (Sparkplug 3.0).
    State { host_id: String },
}

/// A topic that is not a Sparkplug B topic; says which part is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("topic {0:?} does not start with \"spBv1.0/\"")]
    Namespace(String),
    #[error(
        "topic {topic:?}: unknown message type {kind:?} (expected NBIRTH, NDATA, NDEATH, NCMD, DBIRTH, DDATA, DDEATH, DCMD or STATE)"
    )]
    MessageType { topic: String, kind: String },
    #[error("topic {topic:?}: expected {expected} levels after \"spBv1.0\", found {found}")]
    Levels {
        topic: String,
        expected: &'static str,
        found: usize,
    },
    #[error("topic {topic:?}: {part} is empty or contains '+' or '#'")]
    BadId { topic: String, part: &'static str },
}

fn valid_id(s: &str) -> bool {
    !s.is_empty() && !s.contains(['+', '#', '/'])
}

impl Topic {
    /// A node topic (`NBIRTH`, `NDATA`, …); with `device`, a device topic.
    pub fn message(group: &str, kind: MessageType, edge: &str, device: Option<&str>) -> Topic {
        Topic::Message {
            group: group.to_owned(),
            kind,
            edge: edge.to_owned(),
            device: device.map(str::to_owned),
        }
    }

    /// Parses a topic name.
    pub fn parse(topic: &str) -> Result<Topic, TopicError> {
        let rest = topic
            .strip_prefix("spBv1.0/")
            .ok_or_else(|| TopicError::Namespace(topic.to_owned()))?;
        let parts: Vec<&str> = rest.split('/').collect();
        let bad = |part| TopicError::BadId {
            topic: topic.to_owned(),
            part,
        };
        if parts.first() == Some(&"STATE") {
            if parts.len() != 2 {
                return Err(TopicError::Levels {
                    topic: topic.to_owned(),
                    expected: "2",
                    found: parts.len(),
                });
            }
            if !valid_id(parts[1]) {
                return Err(bad("host id"));
            }
            return Ok(Topic::State {
                host_id: parts[1].to_owned(),
            });
        }
        let kind_str = parts.get(1).copied().unwrap_or("");
        let kind = MessageType::ALL
            .into_iter()
            .find(|k| k.as_str() == kind_str)
            .ok_or_else(|| TopicError::MessageType {
                topic: topic.to_owned(),
                kind: kind_str.to_owned(),
            })?;
        let want = if kind.is_device() { 4 } else { 3 };
        if parts.len() != want {
            return Err(TopicError::Levels {
                topic: topic.to_owned(),
                expected: if kind.is_device() { "4" } else { "3" },
                found: parts.len(),
            });
        }
        if !valid_id(parts[0]) {
            return Err(bad("group id"));
        }
        if !valid_id(parts[2]) {
            return Err(bad("edge node id"));
        }
        let device = if kind.is_device() {
            if !valid_id(parts[3]) {
                return Err(bad("device id"));
            }
            Some(parts[3].to_owned())
        } else {
            None
        };
        Ok(Topic::Message {
            group: parts[0].to_owned(),
            kind,
            edge: parts[2].to_owned(),
            device,
        })
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Topic::Message {
                group,
                kind,
                edge,
                device,
            } => {
                write!(f, "{NAMESPACE}/{group}/{}/{edge}", kind.as_str())?;
                if let Some(d) = device {
                    write!(f, "/{d}")?;
                }
                Ok(())
            }
            Topic::State { host_id } => write!(f, "{NAMESPACE}/STATE/{host_id}"),
        }
    }
}

/// The Sparkplug 3.0 host application `STATE` payload: `{"online":true,"timestamp":1700000000000}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StatePayload {
    pub online: bool,
    /// ms since the Unix epoch.
    pub timestamp: u64,
}

impl StatePayload {
    pub fn to_json(&self) -> Vec<u8> {
        format!(
            "{{\"online\":{},\"timestamp\":{}}}",
            self.online, self.timestamp
        )
        .into_bytes()
    }

    pub fn from_json(bytes: &[u8]) -> Result<StatePayload, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_parse_and_format_back() {
        let cases = [
            (
                "spBv1.0/G1/NBIRTH/E1",
                Topic::message("G1", MessageType::NBirth, "E1", None),
            ),
            (
                "spBv1.0/G1/NDATA/E1",
                Topic::message("G1", MessageType::NData, "E1", None),
            ),
            (
                "spBv1.0/G1/NDEATH/E1",
                Topic::message("G1", MessageType::NDeath, "E1", None),
            ),
            (
                "spBv1.0/G1/NCMD/E1",
                Topic::message("G1", MessageType::NCmd, "E1", None),
            ),
            (
                "spBv1.0/G1/DBIRTH/E1/D1",
                Topic::message("G1", MessageType::DBirth, "E1", Some("D1")),
            ),
            (
                "spBv1.0/G1/DDATA/E1/D1",
                Topic::message("G1", MessageType::DData, "E1", Some("D1")),
            ),
            (
                "spBv1.0/G1/DDEATH/E1/D1",
                Topic::message("G1", MessageType::DDeath, "E1", Some("D1")),
            ),
            (
                "spBv1.0/G1/DCMD/E1/D1",
                Topic::message("G1", MessageType::DCmd, "E1", Some("D1")),
            ),
            (
                "spBv1.0/STATE/scada",
                Topic::State {
                    host_id: "scada".into(),
                },
            ),
        ];
        for (s, t) in cases {
            assert_eq!(Topic::parse(s).as_ref(), Ok(&t), "{s}");
            assert_eq!(t.to_string(), s);
        }
    }

    #[test]
    fn bad_topics_name_the_wrong_part() {
        let cases = [
            ("spAv1.0/G/NDATA/E", "does not start"),
            ("spBv1.0/G/NFOO/E", "unknown message type"),
            ("spBv1.0/G/NDATA/E/D", "expected 3 levels"),
            ("spBv1.0/G/DDATA/E", "expected 4 levels"),
            ("spBv1.0/G/DDATA/E/", "device id"),
            ("spBv1.0//NDATA/E", "group id"),
            ("spBv1.0/G/NDATA/+", "edge node id"),
            ("spBv1.0/STATE", "expected 2 levels"),
            ("spBv1.0/STATE/a/b", "expected 2 levels"),
        ];
        for (s, want) in cases {
            let e = Topic::parse(s).expect_err(s).to_string();
            assert!(e.contains(want), "{s}: {e}");
        }
    }

    #[test]
    fn state_payload_json() {
        let p = StatePayload {
            online: true,
            timestamp: 1_700_000_000_123,
        };
        assert_eq!(p.to_json(), br#"{"online":true,"timestamp":1700000000123}"#);
        assert_eq!(StatePayload::from_json(&p.to_json()).ok(), Some(p));
        assert!(StatePayload::from_json(b"{\"online\":1}").is_err());
    }
}
