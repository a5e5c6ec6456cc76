//! What central reads from the stream and writes to the sinks (pure: no I/O).
//!
//! The input is the uplink's format (`mw_uplink::wire`, docs/uplink.md): a sample on
//! `mw.{site}.{tag tokens}`, packed samples on `mw.{site}.$samples` (`{"samples":[…]}`) and an
//! event on `mw.{site}.$events.{kind}`, one JSON object each.
//!
//! A sample becomes two VictoriaMetrics series, written with `/api/v1/import` (JSON lines):
//! `mw_tag_value{site, tag[, unit]}` (numbers; booleans as 0/1; a string or a NaN value has no
//! point here) and `mw_tag_quality{site, tag}` (0 good, 1 uncertain, 2 bad). VictoriaMetrics
//! keeps milliseconds: the sample's ns `ts` is truncated to ms.
//!
//! An event becomes one row of the PostgreSQL `events` table, keyed by the message's
//! `Nats-Msg-Id` (`{edge}-{seq}`), or `{stream}:{stream sequence}` for a message without one.

use mw_uplink::vm::samples_of;
pub use mw_uplink::vm::{BadMessage, SampleRow, vm_import};

/// One event, as read from a message.
#[derive(Clone, Debug, PartialEq)]
pub struct EventRow {
    pub msg_id: String,
    pub stream: String,
    pub stream_seq: i64,
    pub site: String,
    pub ts_ns: i64,
    pub source: String,
    pub asset: Option<String>,
    pub kind: String,
    /// The whole message, as JSON text (stored as `jsonb`).
    pub body: String,
    pub historical: bool,
}

/// A message, classified.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Sample(SampleRow),
    /// A pack (`mw.{site}.$samples`, `[[uplink]] pack`), in order; written and acknowledged
    /// as one message.
    Samples(Vec<SampleRow>),
    Event(EventRow),
}

/// Where a message came from: its subject, payload, `Nats-Msg-Id` and stream position.
pub struct Envelope<'a> {
    pub subject: &'a str,
    pub payload: &'a [u8],
    pub msg_id: Option<&'a str>,
    pub stream: &'a str,
    pub stream_seq: u64,
}

/// Classifies and parses one message. Never panics on any input.
pub fn parse(m: &Envelope<'_>) -> Result<Item, BadMessage> {
    let mut tokens = m.subject.split('.');
    let (Some("mw"), Some(site), Some(third)) = (tokens.next(), tokens.next(), tokens.next())
    else {
        return Err(BadMessage::Subject(m.subject.chars().take(200).collect()));
    };
    if site.is_empty() {
        return Err(BadMessage::Subject(m.subject.chars().take(200).collect()));
    }
    if third != "$events" {
        let rows = samples_of(m.subject, m.payload)?;
        if third == "$samples" {
            return Ok(Item::Samples(rows));
        }
        return rows
            .into_iter()
            .next()
            .map(Item::Sample)
            .ok_or(BadMessage::Field("value"));
    }
    let v: serde_json::Value =
        serde_json::from_slice(m.payload).map_err(|e| BadMessage::Json(e.to_string()))?;
    let o = v
        .as_object()
        .ok_or(BadMessage::Json("not an object".into()))?;
    let int = |k: &'static str| {
        o.get(k)
            .and_then(|x| x.as_i64())
            .ok_or(BadMessage::Field(k))
    };
    let string = |k: &'static str| {
        o.get(k)
            .and_then(|x| x.as_str())
            .ok_or(BadMessage::Field(k))
    };
    let kind = o
        .get("kind")
        .and_then(|k| k.get("type"))
        .and_then(|t| t.as_str())
        .ok_or(BadMessage::Field("kind.type"))?;
    let msg_id = match m.msg_id {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ => format!("{}:{}", m.stream, m.stream_seq),
    };
    Ok(Item::Event(EventRow {
        msg_id,
        stream: m.stream.to_owned(),
        stream_seq: i64::try_from(m.stream_seq).unwrap_or(i64::MAX),
        site: site.to_owned(),
        ts_ns: int("ts")?,
        source: string("source")?.to_owned(),
        asset: o.get("asset").and_then(|a| a.as_str()).map(str::to_owned),
        kind: kind.to_owned(),
        body: v.to_string(),
        historical: o
            .get("historical")
            .and_then(|h| h.as_bool())
            .unwrap_or(false),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(subject: &'a str, payload: &'a str) -> Envelope<'a> {
        Envelope {
            subject,
            payload: payload.as_bytes(),
            msg_id: Some("gw1-7"),
            stream: "MW_P1",
            stream_seq: 42,
        }
    }

    #[test]
    fn the_uplinks_own_encoding_parses() {
        use mw_model::{Event, EventKind, Quality, Sample, TagPath, Value};
        let s = Sample {
            tag: TagPath::new("acme/line.1/pump1/flow").unwrap(),
            value: Value::F32(60.263_14),
            quality: Quality::Bad("timeout".into()),
            source_ts: 1_764_792_000_123_456_789,
            receive_ts: 1,
        };
        let rec = mw_uplink::wire::encode_sample("p1", &s, Some("m3/h"));
        let (subject, body) = mw_uplink::wire::decode(&rec, true).unwrap();
        let Item::Sample(row) = parse(&env(&subject, std::str::from_utf8(&body).unwrap())).unwrap()
        else {
            panic!("not a sample")
        };
        assert_eq!(row.site, "p1");
        assert_eq!(row.tag, "acme/line.1/pump1/flow");
        assert_eq!(row.ts_ns, 1_764_792_000_123_456_789);
        assert_eq!(row.value, Some(60.26314));
        assert_eq!((row.quality, row.unit.as_deref()), (2, Some("m3/h")));

        let e = Event::new(
            7,
            "modbus/plc1",
            EventKind::ConnectionChange {
                up: false,
                reason: Some("refused".into()),
            },
        );
        let (subject, body) =
            mw_uplink::wire::decode(&mw_uplink::wire::encode_event("p1", &e), true).unwrap();
        let Item::Event(ev) = parse(&env(&subject, std::str::from_utf8(&body).unwrap())).unwrap()
        else {
            panic!("not an event")
        };
        assert_eq!(ev.msg_id, "gw1-7");
        assert_eq!(
            (ev.kind.as_str(), ev.ts_ns, ev.historical),
            ("connection_change", 7, true)
        );
        assert_eq!(ev.source, "modbus/plc1");
        let body: serde_json::Value = serde_json::from_str(&ev.body).unwrap();
        assert_eq!(body["kind"]["reason"], "refused");

        // a pack: every sample, in order, as if each had come alone
        let t = Sample::good(TagPath::new("acme/t").unwrap(), Value::Bool(true), 9);
        let rec = mw_uplink::wire::encode_pack("p1", [(&s, Some("m3/h")), (&t, None)]);
        let (subject, body) = mw_uplink::wire::decode(&rec, false).unwrap();
        let Item::Samples(rows) =
            parse(&env(&subject, std::str::from_utf8(&body).unwrap())).unwrap()
        else {
            panic!("not a pack")
        };
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0], row);
        assert_eq!(
            (rows[1].tag.as_str(), rows[1].value, rows[1].ts_ns),
            ("acme/t", Some(1.0), 9)
        );
    }

    #[test]
    fn values_of_every_type() {
        let p = |v: &str| match parse(&env(
            "mw.s.a.b",
            &format!(r#"{{"tag":"a/b","ts":5,"value":{v},"quality":"good"}}"#),
        )) {
            Ok(Item::Sample(s)) => Ok(s.value),
            Ok(_) => panic!("event"),
            Err(e) => Err(e),
        };
        assert_eq!(p("true"), Ok(Some(1.0)));
        assert_eq!(p("false"), Ok(Some(0.0)));
        assert_eq!(p("18446744073709551615"), Ok(Some(18446744073709551615.0)));
        assert_eq!(p("\"text\""), Ok(None));
        assert_eq!(p("null"), Ok(None));
        assert_eq!(p("[1]"), Err(BadMessage::Field("value")));
    }

    #[test]
    fn bad_messages_are_refused_not_panicked_on() {
        for (subject, payload) in [
            ("x.s.a", r#"{"tag":"a","ts":1,"value":1,"quality":"good"}"#),
            ("mw", "{}"),
            ("mw..a", "{}"),
            ("mw.s.a", "not json"),
            ("mw.s.a", "[1,2]"),
            (
                "mw.s.a",
                r#"{"tag":"a","ts":"1","value":1,"quality":"good"}"#,
            ),
            (
                "mw.s.a",
                r#"{"tag":"a","ts":1,"value":1,"quality":"great"}"#,
            ),
            ("mw.s.$events.audit", r#"{"ts":1,"source":"x","kind":{}}"#),
            ("mw.s.$events.audit", r#"{"ts":1,"kind":{"type":"audit"}}"#),
            ("mw.s.$samples", r#"{"samples":{}}"#),
            ("mw.s.$samples", r#"{"samples":[1]}"#),
            (
                "mw.s.$samples",
                r#"{"samples":[{"tag":"a","ts":1,"value":1,"quality":"good"},{"tag":"b"}]}"#,
            ),
        ] {
            assert!(
                parse(&env(subject, payload)).is_err(),
                "{subject} {payload}"
            );
        }
    }

    #[test]
    fn import_groups_points_per_series_in_ms() {
        let row = |tag: &str, ts_ns: i64, value: Option<f64>, quality: u8| SampleRow {
            site: "s".into(),
            tag: tag.into(),
            ts_ns,
            value,
            quality,
            unit: None,
        };
        let body = vm_import(&[
            row("a/x", 1_000_999_999, Some(1.5), 0),
            row("a/x", 2_000_000_000, None, 2),
            row("a/y", 3_000_000_000, Some(f64::NAN), 0),
        ]);
        let text = String::from_utf8(body).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3, "{text}");
        let find = |name: &str, tag: &str| {
            lines
                .iter()
                .find(|l| l["metric"]["__name__"] == name && l["metric"]["tag"] == tag)
                .unwrap_or_else(|| panic!("{name} {tag} in {text}"))
        };
        assert_eq!(
            find("mw_tag_value", "a/x")["timestamps"],
            serde_json::json!([1000])
        );
        assert_eq!(
            find("mw_tag_value", "a/x")["values"],
            serde_json::json!([1.5])
        );
        assert_eq!(
            find("mw_tag_quality", "a/x")["values"],
            serde_json::json!([0.0, 2.0])
        );
        assert_eq!(
            find("mw_tag_quality", "a/y")["timestamps"],
            serde_json::json!([3000])
        );
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(subject in "[a-z$.~]{0,30}", payload in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = parse(&Envelope { subject: &subject, payload: &payload, msg_id: None, stream: "S", stream_seq: 1 });
        }

        #[test]
        fn parse_never_panics_on_near_valid_json(v in proptest::option::of(-1e300f64..1e300), q in "[a-z]{0,9}", ts in proptest::num::i64::ANY) {
            let body = match v {
                Some(x) => format!(r#"{{"tag":"a/b","ts":{ts},"value":{x},"quality":"{q}"}}"#),
                None => format!(r#"{{"tag":"a/b","ts":{ts},"value":null,"quality":"{q}"}}"#),
            };
            let r = parse(&Envelope { subject: "mw.s.a.b", payload: body.as_bytes(), msg_id: None, stream: "S", stream_seq: 1 });
            if ["good", "uncertain", "bad"].contains(&q.as_str()) {
                let is_sample = matches!(r, Ok(Item::Sample(_)));
                proptest::prop_assert!(is_sample, "{body}: {r:?}");
            }
            if let Ok(Item::Sample(s)) = r {
                let _ = vm_import(&[s]);
            }
        }
    }
}
