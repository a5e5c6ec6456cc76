//! Data quality on the wire. Sparkplug 3.0 defines no quality field; the convention its
//! ecosystem follows (Eclipse Tahu, Ignition/MQTT Engine) is a metric property named
//! [`QUALITY`], of type Int32, whose absence means good. We use the OPC DA codes:
//!
//! | [`Quality`] | code |
//! |---|---|
//! | `Good` | 192 ([`GOOD`]; sent only when the metric was not good before, otherwise omitted) |
//! | `Uncertain(_)` | 64 ([`UNCERTAIN`]) |
//! | `Bad(reason)`, reason starting with `"stale"` | 500 ([`STALE`]) |
//! | `Bad(_)` | 0 ([`BAD`]) |
//!
//! Read back, 192 (or no property) is good, 64–191 uncertain, 500 bad `"stale"`, anything
//! else bad `"quality code N"`. A bad metric carries no value (`is_null`), so no consumer can
//! take it for a good one.

use mw_model::Quality;

use crate::DataType;
use crate::payload::Metric;
use crate::pb::payload as pbp;

/// The name of the quality property.
pub const QUALITY: &str = "Quality";
pub const GOOD: i32 = 192;
pub const UNCERTAIN: i32 = 64;
pub const BAD: i32 = 0;
pub const STALE: i32 = 500;

/// The wire code of a quality.
pub fn code(q: &Quality) -> i32 {
    match q {
        Quality::Good => GOOD,
        Quality::Uncertain(_) => UNCERTAIN,
        Quality::Bad(r) if r.starts_with("stale") => STALE,
        Quality::Bad(_) => BAD,
    }
}

/// The quality a code stands for.
pub fn from_code(c: i32) -> Quality {
    match c {
        GOOD => Quality::Good,
        STALE => Quality::Bad("stale".into()),
        64..=191 => Quality::Uncertain(format!("quality code {c}")),
        c => Quality::Bad(format!("quality code {c}")),
    }
}

/// A property set holding only the quality code.
pub fn property(c: i32) -> pbp::PropertySet {
    pbp::PropertySet {
        keys: vec![QUALITY.to_owned()],
        values: vec![pbp::PropertyValue {
            r#type: Some(DataType::Int32 as u32),
            is_null: None,
            // Int32 travels in the uint32 field, two's complement (as metric values do)
            value: Some(pbp::property_value::Value::IntValue(c as u32)),
        }],
    }
}

/// The quality code a metric's properties carry, if any (an integer property named
/// [`QUALITY`]).
pub fn of_metric(m: &Metric) -> Option<i32> {
    let p = m.properties.as_ref()?;
    let i = p.keys.iter().position(|k| k == QUALITY)?;
    match p.values.get(i)?.value.as_ref()? {
        pbp::property_value::Value::IntValue(v) => Some(*v as i32),
        pbp::property_value::Value::LongValue(v) => i32::try_from(*v as i64).ok(),
        _ => None,
    }
}

/// The quality of a received metric: its property's, else good.
pub fn quality_of(m: &Metric) -> Quality {
    of_metric(m).map_or(Quality::Good, from_code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MetricValue;

    #[test]
    fn codes_round_trip_through_a_metric_property() {
        for (q, c) in [
            (Quality::Good, 192),
            (Quality::Uncertain("warm-up".into()), 64),
            (Quality::Bad("timeout".into()), 0),
            (Quality::Bad("stale: NDEATH".into()), 500),
        ] {
            assert_eq!(code(&q), c, "{q:?}");
            let mut m = Metric::new("x", MetricValue::Double(1.0));
            m.properties = Some(property(c));
            let bytes = crate::encode(&crate::Payload {
                metrics: vec![m],
                ..Default::default()
            })
            .unwrap();
            let back = crate::decode(&bytes).unwrap();
            assert_eq!(of_metric(&back.metrics[0]), Some(c));
            assert_eq!(quality_of(&back.metrics[0]).status(), q.status());
        }
        assert!(quality_of(&Metric::new("x", MetricValue::Boolean(true))).is_good());
        assert_eq!(from_code(-5), Quality::Bad("quality code -5".into()));
    }
}
