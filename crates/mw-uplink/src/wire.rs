//! What goes over the wire, and what the buffer keeps of it (pure: no I/O).
//!
//! # Subjects
//! * a sample: `mw.{site}.{tag path}` with each `/` turned into `.` and each `.` inside a
//!   segment into `~` (tag segments may hold dots; NATS tokens may not), e.g.
//!   `acme/plant1/pump1/flow` → `mw.plant1.acme.plant1.pump1.flow`;
//! * an event: `mw.{site}.$events.{kind}` (`alarm_transition`, `connection_change`, …); `$`
//!   cannot start a tag segment, so the two never collide.
//!
//! * packed samples (`[[uplink]] pack` > 1): `mw.{site}.$samples`, see [`encode_pack`].
//!
//! # Payload (JSON, one message per sample or event, or per pack of samples)
//! ```json
//! {"tag":"acme/plant1/pump1/flow","ts":1764792000123000000,"value":12.5,"quality":"good",
//!  "unit":"m3/h","receive_ts":1764792000124000000,"historical":false}
//! ```
//! `ts` and `receive_ts` are ns since the Unix epoch (exact; `time` formatting is the
//! consumer's); `value` is a JSON number, boolean or string, `null` for a NaN; `quality` is
//! `good`, `uncertain` or `bad`, with `reason` for the latter two; `unit` (UCUM) is present when
//! the tag has one. An event is the model's `Event` as JSON (`ts`, `source`, `asset`, `kind`
//! with its `type`) plus `historical`. `historical` is true for a message sent from the backlog
//! (data that was buffered while the upstream was unreachable), false for live data. JSON was
//! chosen over protobuf: every consumer (central, `nats sub`, a VictoriaMetrics bridge) reads it
//! without a schema, and the bytes cost is small next to JetStream's per-message overhead.
//!
//! # Buffer record
//! `subject length: u16 LE`, the subject, the JSON without its closing `}` — the forwarder
//! appends `,"historical":…}` when it sends it, so the flag reflects the flow that sent it.

use mw_model::{Event, Quality, Sample, Value};
use serde::Serialize;

/// A sample as JSON (see the module docs).
#[derive(Serialize)]
struct Msg<'a> {
    tag: &'a str,
    ts: i64,
    value: &'a Value,
    quality: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unit: Option<&'a str>,
    receive_ts: i64,
}

impl<'a> Msg<'a> {
    fn new(s: &'a Sample, unit: Option<&'a str>) -> Msg<'a> {
        Msg {
            tag: s.tag.as_str(),
            ts: s.source_ts,
            value: &s.value,
            quality: s.quality.status(),
            reason: match &s.quality {
                Quality::Good => None,
                q => q.reason(),
            },
            unit,
            receive_ts: s.receive_ts,
        }
    }
}

/// Encodes a sample as a buffer record.
pub fn encode_sample(site: &str, s: &Sample, unit: Option<&str>) -> Vec<u8> {
    record(&sample_subject(site, s.tag.as_str()), &Msg::new(s, unit))
}

/// Encodes several samples (with their units) as one buffer record, sent as one message on
/// `mw.{site}.$samples`: `{"samples":[…each as encode_sample's JSON…],"historical":…}` —
/// `[[uplink]] pack` (docs/uplink.md). The order is kept.
pub fn encode_pack<'a>(
    site: &str,
    samples: impl IntoIterator<Item = (&'a Sample, Option<&'a str>)>,
) -> Vec<u8> {
    #[derive(Serialize)]
    struct Pack<'a> {
        samples: Vec<Msg<'a>>,
    }
    let pack = Pack {
        samples: samples
            .into_iter()
            .map(|(s, unit)| Msg::new(s, unit))
            .collect(),
    };
    record(&pack_subject(site), &pack)
}

/// The subject of packed samples (`$` cannot start a tag segment: no tag's subject).
pub fn pack_subject(site: &str) -> String {
    format!("mw.{site}.$samples")
}

/// Encodes an event as a buffer record.
pub fn encode_event(site: &str, e: &Event) -> Vec<u8> {
    let subject = format!("mw.{site}.$events.{}", e.kind.name());
    record(&subject, e)
}

fn record(subject: &str, msg: &impl Serialize) -> Vec<u8> {
    // serializing plain model values into a Vec cannot fail (no maps with non-string keys)
    let json = serde_json::to_vec(msg).unwrap_or_else(|_| b"{}".to_vec());
    let mut out = Vec::with_capacity(2 + subject.len() + json.len());
    out.extend_from_slice(&(subject.len() as u16).to_le_bytes());
    out.extend_from_slice(subject.as_bytes());
    out.extend_from_slice(&json[..json.len() - 1]); // without the closing brace
    out
}

/// The subject of a sample of `tag` (see the module docs).
pub fn sample_subject(site: &str, tag: &str) -> String {
    let mut s = String::with_capacity(4 + site.len() + tag.len());
    s.push_str("mw.");
    s.push_str(site);
    for seg in tag.split('/') {
        s.push('.');
        for c in seg.chars() {
            s.push(if c == '.' { '~' } else { c });
        }
    }
    s
}

/// A buffer record split into its subject and the message body with the `historical` flag.
/// `None` for a record this version did not write (it is skipped and counted).
pub fn decode(record: &[u8], historical: bool) -> Option<(String, Vec<u8>)> {
    let len = u16::from_le_bytes([*record.first()?, *record.get(1)?]) as usize;
    let subject = std::str::from_utf8(record.get(2..2 + len)?).ok()?;
    let json = record.get(2 + len..)?;
    if json.first() != Some(&b'{') {
        return None;
    }
    let mut body = Vec::with_capacity(json.len() + 20);
    body.extend_from_slice(json);
    if json.len() > 1 {
        body.push(b',');
    }
    body.extend_from_slice(if historical {
        b"\"historical\":true}"
    } else {
        b"\"historical\":false}"
    });
    Some((subject.to_owned(), body))
}

/// The `Nats-Msg-Id` of a record: unique per edge and buffer sequence number, so a record sent
/// again (after a reconnect or a restart) is dropped by the server's duplicate window.
pub fn msg_id(edge: &str, seq: u64) -> String {
    format!("{edge}-{seq}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use mw_model::{EventKind, TagPath};

    fn json(rec: &[u8], historical: bool) -> (String, serde_json::Value) {
        let (subj, body) = decode(rec, historical).expect("decodes");
        (subj, serde_json::from_slice(&body).expect("valid JSON"))
    }

    #[test]
    fn a_sample_round_trips_with_its_flag() {
        let s = Sample {
            tag: TagPath::new("acme/line.1/pump1/flow").unwrap(),
            value: Value::F32(60.263_14),
            quality: Quality::Bad("timeout after 1000 ms".into()),
            source_ts: 1_764_792_000_123_456_789,
            receive_ts: 1_764_792_000_200_000_000,
        };
        let rec = encode_sample("plant1", &s, Some("m3/h"));
        let (subj, v) = json(&rec, true);
        assert_eq!(subj, "mw.plant1.acme.line~1.pump1.flow");
        assert_eq!(v["tag"], "acme/line.1/pump1/flow");
        assert_eq!(v["ts"], 1_764_792_000_123_456_789_i64);
        assert_eq!(v["value"].to_string(), "60.26314");
        assert_eq!(v["quality"], "bad");
        assert_eq!(v["reason"], "timeout after 1000 ms");
        assert_eq!(v["unit"], "m3/h");
        assert_eq!(v["historical"], true);
        let (_, v) = json(&rec, false);
        assert_eq!(v["historical"], false);
    }

    #[test]
    fn a_pack_keeps_every_sample_in_order_with_its_unit() {
        let a = Sample::good(TagPath::new("a/b").unwrap(), Value::F64(1.5), 5);
        let b = Sample {
            quality: Quality::Bad("comm".into()),
            ..Sample::good(TagPath::new("a/c").unwrap(), Value::Bool(true), 6)
        };
        let rec = encode_pack("s1", [(&a, Some("bar")), (&b, None)]);
        let (subj, v) = json(&rec, true);
        assert_eq!(subj, "mw.s1.$samples");
        assert_eq!(v["historical"], true);
        let list = v["samples"].as_array().expect("samples");
        assert_eq!(list.len(), 2);
        assert_eq!(
            (list[0]["tag"].as_str(), list[0]["value"].as_f64()),
            (Some("a/b"), Some(1.5))
        );
        assert_eq!(list[0]["unit"], "bar");
        assert_eq!(
            (list[1]["tag"].as_str(), list[1]["ts"].as_i64()),
            (Some("a/c"), Some(6))
        );
        assert_eq!(list[1]["reason"], "comm");
        // each element is what encode_sample would send, without the flag
        let (_, one) = json(&encode_sample("s1", &a, Some("bar")), false);
        let mut one = one.as_object().unwrap().clone();
        one.remove("historical");
        assert_eq!(list[0], serde_json::Value::Object(one));
    }

    #[test]
    fn good_quality_has_no_reason_and_nan_is_null() {
        let s = Sample::good(TagPath::new("a/b").unwrap(), Value::F64(f64::NAN), 5);
        let (_, v) = json(&encode_sample("s", &s, None), false);
        assert!(v.get("reason").is_none() && v.get("unit").is_none(), "{v}");
        assert!(v["value"].is_null());
        assert_eq!(v["quality"], "good");
    }

    #[test]
    fn an_event_goes_to_the_events_subject() {
        let e = Event::new(
            7,
            "modbus/plc1",
            EventKind::ConnectionChange {
                up: false,
                reason: Some("refused".into()),
            },
        );
        let (subj, v) = json(&encode_event("s1", &e), false);
        assert_eq!(subj, "mw.s1.$events.connection_change");
        assert_eq!(v["kind"]["type"], "connection_change");
        assert_eq!(v["ts"], 7);
        assert_eq!(v["historical"], false);
    }

    #[test]
    fn foreign_records_are_refused_not_panicked_on() {
        for bad in [
            &b""[..],
            b"\x05",
            b"\x05\x00ab",
            b"\x01\x00a",
            b"\x01\x00a[1]",
        ] {
            assert_eq!(decode(bad, false), None, "{bad:?}");
        }
        assert_eq!(msg_id("gw1", 42), "gw1-42");
    }
}
