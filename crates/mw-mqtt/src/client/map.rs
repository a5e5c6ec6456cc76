//! Messages of a subscription → samples, without I/O: the tag from the topic (a template), the
//! value from the payload (`plain`, `json` with a field path, `sparkplug`). A payload that does
//! not give a value becomes one bad-quality sample without value (`F64(NaN)`, which every sink
//! writes as `null`), so a broken sender never reads as a valid reading. Never panics.

use mw_model::{Quality, Sample, TagPath, Value};

use super::config::{PayloadMap, PlainType, Subscription, TagPart};

/// Why a message gave no sample at all (the tag itself could not be made).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    #[error("topic {topic:?} gives tag path {path:?}: {why}")]
    BadTag {
        topic: String,
        path: String,
        why: String,
    },
}

/// What one message gave: samples (good, or bad with the reason) and the problems met.
#[derive(Debug, Default, PartialEq)]
pub struct Mapped {
    pub samples: Vec<Sample>,
    /// One text per payload problem (the bad samples' reasons), for counting and logging.
    pub bad_payloads: Vec<String>,
    /// Tags that could not be made (the sample was dropped).
    pub errors: Vec<MapError>,
}

/// A character a tag path segment does not allow becomes `_`.
fn clean_segment(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn clean_path(s: &str) -> String {
    s.split('/')
        .map(clean_segment)
        .collect::<Vec<_>>()
        .join("/")
}

/// The tag path of `topic` (and `metric`, for Sparkplug) by the template. Topic levels and
/// metric names keep their `/` as path separators; other characters a path does not allow
/// become `_`.
pub fn tag_for(parts: &[TagPart], topic: &str, metric: Option<&str>) -> Result<TagPath, MapError> {
    let mut path = String::new();
    for p in parts {
        match p {
            TagPart::Text(s) => path.push_str(s),
            TagPart::Topic => path.push_str(&clean_path(topic)),
            TagPart::Level(n) => {
                // `{N}` of a `#` filter may reach beyond the topic: an empty level then
                if let Some(l) = topic.split('/').nth(n - 1) {
                    path.push_str(&clean_segment(l));
                }
            }
            TagPart::Metric => path.push_str(&clean_path(metric.unwrap_or(""))),
        }
    }
    TagPath::new(&path).map_err(|e| MapError::BadTag {
        topic: topic.to_owned(),
        path: path.clone(),
        why: e.to_string(),
    })
}

fn bad(tag: TagPath, reason: String, now: i64) -> Sample {
    Sample {
        tag,
        value: Value::F64(f64::NAN),
        quality: Quality::Bad(reason),
        source_ts: now,
        receive_ts: now,
    }
}

fn plain(ty: PlainType, payload: &[u8]) -> Result<Value, String> {
    let text = std::str::from_utf8(payload).map_err(|_| "payload is not UTF-8 text".to_owned())?;
    let t = text.trim();
    let shown = || {
        let mut s: String = t.chars().take(40).collect();
        if t.chars().count() > 40 {
            s.push('…');
        }
        s
    };
    match ty {
        PlainType::String => Ok(Value::string(text)),
        PlainType::Bool => match t.to_ascii_lowercase().as_str() {
            "true" | "1" | "on" => Ok(Value::Bool(true)),
            "false" | "0" | "off" => Ok(Value::Bool(false)),
            _ => Err(format!("payload {:?} is not a boolean", shown())),
        },
        PlainType::Number => {
            if let Ok(i) = t.parse::<i64>() {
                return Ok(Value::I64(i));
            }
            match t.parse::<f64>() {
                Ok(f) if f.is_finite() => Ok(Value::F64(f)),
                _ => Err(format!("payload {:?} is not a number", shown())),
            }
        }
    }
}

fn lookup<'a>(v: &'a serde_json::Value, path: &[String]) -> Option<&'a serde_json::Value> {
    path.iter().try_fold(v, |cur, key| match cur {
        serde_json::Value::Object(m) => m.get(key),
        serde_json::Value::Array(a) => a.get(key.parse::<usize>().ok()?),
        _ => None,
    })
}

fn json_value(v: &serde_json::Value) -> Result<Value, String> {
    match v {
        serde_json::Value::Bool(b) => Ok(Value::Bool(*b)),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(Value::I64(i))
            } else if let Some(u) = n.as_u64() {
                Ok(Value::U64(u))
            } else {
                n.as_f64()
                    .filter(|f| f.is_finite())
                    .map(Value::F64)
                    .ok_or_else(|| format!("number {n} is out of range"))
            }
        }
        serde_json::Value::String(s) => Ok(Value::string(s)),
        serde_json::Value::Null => Err("the value is null".into()),
        serde_json::Value::Array(_) => Err("the value is an array".into()),
        serde_json::Value::Object(_) => Err("the value is an object".into()),
    }
}

/// A timestamp in JSON: RFC 3339 text, or a number of milliseconds since the epoch.
fn json_ts(v: &serde_json::Value) -> Option<i64> {
    match v {
        serde_json::Value::String(s) => mw_model::parse_rfc3339_ns(s),
        serde_json::Value::Number(n) => {
            if let Some(ms) = n.as_i64() {
                return ms.checked_mul(1_000_000);
            }
            let ms = n.as_f64()?;
            let ns = ms * 1e6;
            (ns.is_finite() && ns.abs() < 9.2e18).then_some(ns as i64)
        }
        _ => None,
    }
}

/// Maps one message received at `now` under every entry of `subs` whose filter matches its
/// topic (a topic two entries match gives the samples of both, in entry order). What both the
/// client's subscriptions and the broker's `[[mqtt.broker.ingest]]` rules use.
pub fn map_matching<'a>(
    subs: impl IntoIterator<Item = &'a Subscription>,
    topic: &str,
    payload: &[u8],
    now: i64,
) -> Mapped {
    let mut out = Mapped::default();
    for s in subs
        .into_iter()
        .filter(|s| crate::topic::matches(topic, &s.filter))
    {
        let m = map_message(s, topic, payload, now);
        out.samples.extend(m.samples);
        out.bad_payloads.extend(m.bad_payloads);
        out.errors.extend(m.errors);
    }
    out
}

/// Maps one message of `sub` received at `now` (ns since the epoch).
pub fn map_message(sub: &Subscription, topic: &str, payload: &[u8], now: i64) -> Mapped {
    let mut out = Mapped::default();
    if let PayloadMap::Sparkplug = sub.payload {
        sparkplug(sub, topic, payload, now, &mut out);
        return out;
    }
    let tag = match tag_for(&sub.tag, topic, None) {
        Ok(t) => t,
        Err(e) => {
            out.errors.push(e);
            return out;
        }
    };
    let got = match &sub.payload {
        PayloadMap::Plain(ty) => plain(*ty, payload).map(|v| (v, now)),
        PayloadMap::Json { field, ts } => match serde_json::from_slice::<serde_json::Value>(payload) {
            Err(e) => Err(format!("payload is not valid JSON ({e})")),
            Ok(doc) => match lookup(&doc, field) {
                None => Err(format!("payload has no field {:?}", field.join("."))),
                Some(v) => json_value(v)
                    .map_err(|e| format!("field {:?}: {e}", field.join(".")))
                    .and_then(|v| match ts {
                        None => Ok((v, now)),
                        Some(path) => match lookup(&doc, path).and_then(json_ts) {
                            Some(t) => Ok((v, t)),
                            None => Err(format!(
                                "payload has no valid timestamp at {:?} (RFC 3339 text or ms since the epoch)",
                                path.join(".")
                            )),
                        },
                    }),
            },
        },
        PayloadMap::Sparkplug => unreachable!("handled above"),
    };
    match got {
        Ok((value, ts)) => out.samples.push(Sample {
            tag,
            value,
            quality: Quality::Good,
            source_ts: ts,
            receive_ts: now,
        }),
        Err(reason) => {
            out.bad_payloads.push(reason.clone());
            out.samples.push(bad(tag, reason, now));
        }
    }
    out
}

fn sparkplug(sub: &Subscription, topic: &str, payload: &[u8], now: i64, out: &mut Mapped) {
    let p = match mw_sparkplug::decode(payload) {
        Ok(p) => p,
        Err(e) => {
            // no metric names: the tag is the template without them
            let reason = format!("payload is not a Sparkplug B payload ({e})");
            out.bad_payloads.push(reason.clone());
            match tag_for(&sub.tag, topic, Some("payload")) {
                Ok(tag) => out.samples.push(bad(tag, reason, now)),
                Err(e) => out.errors.push(e),
            }
            return;
        }
    };
    let payload_ts = p.timestamp.and_then(|ms| i64::try_from(ms).ok());
    for m in &p.metrics {
        let Some(name) = m.name.as_deref() else {
            // data by alias only: without the birth there is no name to map
            out.bad_payloads
                .push(format!("metric with alias {:?} has no name", m.alias));
            continue;
        };
        let tag = match tag_for(&sub.tag, topic, Some(name)) {
            Ok(t) => t,
            Err(e) => {
                out.errors.push(e);
                continue;
            }
        };
        let ts = m
            .timestamp
            .and_then(|ms| i64::try_from(ms).ok())
            .or(payload_ts)
            .and_then(|ms| ms.checked_mul(1_000_000))
            .unwrap_or(now);
        match m.value.as_ref().map(|v| v.to_model()) {
            Some(Some(value)) => out.samples.push(Sample {
                tag,
                value,
                quality: Quality::Good,
                source_ts: ts,
                receive_ts: now,
            }),
            Some(None) => {
                let reason = format!("metric {name:?} of type {:?} has no tag value", m.datatype);
                out.bad_payloads.push(reason.clone());
                out.samples.push(bad(tag, reason, now));
            }
            None => {
                let reason = format!("metric {name:?} is null");
                out.samples.push(bad(tag, reason, now));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::config::parse_tag_template;

    fn sub(payload: PayloadMap, tag: &str) -> Subscription {
        Subscription {
            filter: "#".into(),
            qos: 0,
            payload,
            tag: parse_tag_template(tag).unwrap(),
            unit: None,
        }
    }

    fn one(m: Mapped) -> Sample {
        assert!(m.errors.is_empty(), "{:?}", m.errors);
        assert_eq!(m.samples.len(), 1, "{:?}", m.samples);
        m.samples.into_iter().next().unwrap()
    }

    #[test]
    fn plain_payloads() {
        let s = sub(PayloadMap::Plain(PlainType::Number), "acme/{1}/{3}");
        let got = one(map_message(&s, "plant/x/temp", b" 21.5\n", 7));
        assert_eq!(got.tag.as_str(), "acme/plant/temp");
        assert_eq!(
            (got.value, got.quality, got.source_ts),
            (Value::F64(21.5), Quality::Good, 7)
        );
        assert_eq!(
            one(map_message(&s, "a/b/c", b"-42", 7)).value,
            Value::I64(-42)
        );
        for bad in [&b"hot"[..], b"NaN", b"inf", b"", b"\xff\xfe"] {
            let m = map_message(&s, "a/b/c", bad, 7);
            assert_eq!(m.bad_payloads.len(), 1, "{bad:?}");
            let got = one(m);
            assert!(matches!(got.quality, Quality::Bad(_)), "{bad:?}");
            assert!(matches!(got.value, Value::F64(v) if v.is_nan()), "{bad:?}");
        }
        let b = sub(PayloadMap::Plain(PlainType::Bool), "acme/b");
        assert_eq!(one(map_message(&b, "t", b"ON", 1)).value, Value::Bool(true));
        assert_eq!(one(map_message(&b, "t", b"0", 1)).value, Value::Bool(false));
        assert!(!one(map_message(&b, "t", b"maybe", 1)).quality.is_good());
        let t = sub(PayloadMap::Plain(PlainType::String), "acme/s");
        assert_eq!(
            one(map_message(&t, "t", b"running", 1)).value,
            Value::Str("running".into())
        );
    }

    #[test]
    fn json_payloads() {
        let s = sub(
            PayloadMap::Json {
                field: vec!["data".into(), "temp".into()],
                ts: Some(vec!["ts".into()]),
            },
            "acme/{topic}",
        );
        let got = one(map_message(
            &s,
            "line 1/temp",
            br#"{"data":{"temp":20.25},"ts":"2026-12-04T10:00:00Z"}"#,
            5,
        ));
        assert_eq!(got.tag.as_str(), "acme/line_1/temp", "a space becomes _");
        assert_eq!(got.value, Value::F64(20.25));
        assert_eq!(
            got.source_ts,
            mw_model::parse_rfc3339_ns("2026-12-04T10:00:00Z").unwrap()
        );
        assert_eq!(got.receive_ts, 5);
        let got = one(map_message(
            &s,
            "t",
            br#"{"data":{"temp":3},"ts":1700000000123}"#,
            5,
        ));
        assert_eq!(
            (got.value, got.source_ts),
            (Value::I64(3), 1_700_000_000_123_000_000)
        );
        for (bad, why) in [
            (&br#"{"data":{"temp":1}"#[..], "not valid JSON"),
            (br#"{"data":{}, "ts": 1}"#, "no field \"data.temp\""),
            (br#"{"data":{"temp":null}, "ts": 1}"#, "null"),
            (br#"{"data":{"temp":[1]}, "ts": 1}"#, "array"),
            (br#"{"data":{"temp":1}}"#, "no valid timestamp"),
            (b"17", "no field"),
        ] {
            let got = one(map_message(&s, "t", bad, 5));
            match &got.quality {
                Quality::Bad(r) => assert!(r.contains(why), "{r:?} should say {why:?}"),
                q => panic!("{q:?} for {bad:?}"),
            }
        }
    }

    #[test]
    fn sparkplug_payloads() {
        use mw_sparkplug::{Metric, MetricValue, Payload};
        let s = sub(PayloadMap::Sparkplug, "acme/{4}/{metric}");
        let p = Payload {
            timestamp: Some(1_000),
            metrics: vec![
                Metric::new("Motor/Speed", MetricValue::Double(1450.5)),
                Metric::new("Running", MetricValue::Boolean(true)),
                Metric::new("Blob", MetricValue::Bytes(vec![1, 2])),
            ],
            seq: Some(0),
            uuid: None,
            body: None,
        };
        let bytes = mw_sparkplug::encode(&p).unwrap();
        let m = map_message(&s, "spBv1.0/g/NDATA/edge1", &bytes, 9);
        assert_eq!(m.samples.len(), 3);
        assert_eq!(m.samples[0].tag.as_str(), "acme/edge1/Motor/Speed");
        assert_eq!(m.samples[0].value, Value::F64(1450.5));
        assert_eq!(m.samples[0].source_ts, 1_000_000_000);
        assert_eq!(m.samples[1].value, Value::Bool(true));
        assert!(!m.samples[2].quality.is_good(), "bytes have no tag value");
        let m = map_message(&s, "spBv1.0/g/NDATA/edge1", b"\xff\xff\xff", 9);
        assert_eq!(m.bad_payloads.len(), 1);
        assert!(!one(m).quality.is_good());
    }

    #[test]
    fn unmappable_topics_are_errors() {
        let s = sub(PayloadMap::Plain(PlainType::Number), "acme/{topic}");
        let deep = "a/b/c/d/e/f/g/h/i/j/k";
        let m = map_message(&s, deep, b"1", 1);
        assert!(m.samples.is_empty() && m.errors.len() == 1, "{m:?}");
    }
}
