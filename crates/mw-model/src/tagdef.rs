use std::collections::HashMap;
use std::fmt;

use crate::{TagPath, Value};

/// Data type of a tag as it arrives from the source (the wire type). Scaled tags become `f64`
/// in engineering units.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataType {
    Bool,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    F32,
    F64,
    String,
}

impl DataType {
    pub const ALL: [DataType; 10] = [
        DataType::Bool,
        DataType::I16,
        DataType::U16,
        DataType::I32,
        DataType::U32,
        DataType::I64,
        DataType::U64,
        DataType::F32,
        DataType::F64,
        DataType::String,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DataType::Bool => "bool",
            DataType::I16 => "i16",
            DataType::U16 => "u16",
            DataType::I32 => "i32",
            DataType::U32 => "u32",
            DataType::I64 => "i64",
            DataType::U64 => "u64",
            DataType::F32 => "f32",
            DataType::F64 => "f64",
            DataType::String => "string",
        }
    }

    pub fn parse(s: &str) -> Option<DataType> {
        DataType::ALL.into_iter().find(|t| t.name() == s)
    }

    /// Comma-separated list of all names, for error messages.
    pub fn expected_list() -> String {
        DataType::ALL.map(DataType::name).join(", ")
    }

    pub fn is_numeric(self) -> bool {
        !matches!(self, DataType::Bool | DataType::String)
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Linear raw → engineering-unit scaling: `raw_lo..raw_hi` maps onto `eu_lo..eu_hi`.
/// With `clamp`, results outside the EU range are clamped to it.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Scaling {
    pub raw_lo: f64,
    pub raw_hi: f64,
    pub eu_lo: f64,
    pub eu_hi: f64,
    pub clamp: bool,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScalingError {
    #[error("raw range is empty (raw low and raw high are both {0})")]
    EmptyRawRange(f64),
    #[error("scaling bounds must be finite numbers")]
    NotFinite,
}

impl Scaling {
    pub fn new(raw: (f64, f64), eu: (f64, f64), clamp: bool) -> Result<Scaling, ScalingError> {
        if ![raw.0, raw.1, eu.0, eu.1].iter().all(|v| v.is_finite()) {
            return Err(ScalingError::NotFinite);
        }
        if raw.0 == raw.1 {
            return Err(ScalingError::EmptyRawRange(raw.0));
        }
        Ok(Scaling {
            raw_lo: raw.0,
            raw_hi: raw.1,
            eu_lo: eu.0,
            eu_hi: eu.1,
            clamp,
        })
    }

    pub fn apply(&self, raw: f64) -> f64 {
        let eu = self.eu_lo
            + (raw - self.raw_lo) * (self.eu_hi - self.eu_lo) / (self.raw_hi - self.raw_lo);
        if self.clamp {
            let (lo, hi) = if self.eu_lo <= self.eu_hi {
                (self.eu_lo, self.eu_hi)
            } else {
                (self.eu_hi, self.eu_lo)
            };
            eu.clamp(lo, hi)
        } else {
            eu
        }
    }

    /// Inverse mapping, EU → raw (no clamping); used by simulators and writes.
    pub fn invert(&self, eu: f64) -> f64 {
        if self.eu_hi == self.eu_lo {
            return self.raw_lo;
        }
        self.raw_lo + (eu - self.eu_lo) * (self.raw_hi - self.raw_lo) / (self.eu_hi - self.eu_lo)
    }

    /// Width of the engineering range (always ≥ 0).
    pub fn eu_span(&self) -> f64 {
        (self.eu_hi - self.eu_lo).abs()
    }
}

/// Report-by-exception deadband: a new numeric value is passed on only if it differs from the
/// last passed value by more than the deadband.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "lowercase")]
pub enum Deadband {
    /// In engineering units.
    Absolute(f64),
    /// Percent of the engineering span (needs a scaling or an explicit span).
    Percent(f64),
}

impl Deadband {
    /// Absolute threshold given the EU span (for `Percent`).
    pub fn threshold(&self, eu_span: Option<f64>) -> f64 {
        match *self {
            Deadband::Absolute(a) => a.abs(),
            Deadband::Percent(p) => eu_span.map(|s| s * p.abs() / 100.0).unwrap_or(0.0),
        }
    }
}

/// Stateful deadband filter over many tags. Non-numeric values, quality changes and the
/// first value of each tag always pass.
#[derive(Debug, Default)]
pub struct DeadbandFilter {
    last: HashMap<TagPath, (f64, bool)>,
}

impl DeadbandFilter {
    /// `threshold` is the absolute deadband; returns whether the sample should be passed on.
    pub fn pass(&mut self, tag: &TagPath, value: &Value, good: bool, threshold: f64) -> bool {
        let Some(v) = value.as_f64() else { return true };
        match self.last.get_mut(tag) {
            Some((last, last_good)) => {
                if *last_good != good
                    || (v - *last).abs() > threshold
                    || v.is_nan() != last.is_nan()
                {
                    *last = v;
                    *last_good = good;
                    true
                } else {
                    false
                }
            }
            None => {
                self.last.insert(tag.clone(), (v, good));
                true
            }
        }
    }
}

/// Definition of one tag.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TagDef {
    pub path: TagPath,
    pub data_type: DataType,
    /// UCUM code, e.g. `m3/h`, `bar`, `Cel`, `%{LEL}`; `None` for dimensionless/bool/string.
    pub unit: Option<String>,
    pub scaling: Option<Scaling>,
    pub deadband: Option<Deadband>,
    pub description: String,
}

impl TagDef {
    pub fn new(path: TagPath, data_type: DataType) -> TagDef {
        TagDef {
            path,
            data_type,
            unit: None,
            scaling: None,
            deadband: None,
            description: String::new(),
        }
    }

    /// Converts a raw numeric reading into the tag's published value (scaled to EU if configured).
    /// An `f32` tag stays single precision, scaled or not: its value carries no more digits than
    /// the register it came from.
    pub fn convert_raw(&self, raw: f64) -> Value {
        if let Some(s) = &self.scaling {
            return match self.data_type {
                DataType::F32 => Value::F32(s.apply(raw) as f32),
                _ => Value::F64(s.apply(raw)),
            };
        }
        match self.data_type {
            DataType::Bool => Value::Bool(raw != 0.0),
            DataType::I16 | DataType::I32 | DataType::I64 => Value::I64(raw as i64),
            DataType::U16 | DataType::U32 | DataType::U64 => Value::U64(raw as u64),
            DataType::F32 => Value::F32(raw as f32),
            DataType::F64 => Value::F64(raw),
            DataType::String => Value::string(&raw.to_string()),
        }
    }

    /// Deadband threshold in EU, if any.
    pub fn deadband_threshold(&self) -> Option<f64> {
        self.deadband
            .map(|d| d.threshold(self.scaling.map(|s| s.eu_span())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> TagPath {
        TagPath::new(s).unwrap()
    }

    #[test]
    fn scaling_maps_and_clamps() {
        let s = Scaling::new((0.0, 10000.0), (0.0, 100.0), true).unwrap();
        assert_eq!(s.apply(5000.0), 50.0);
        assert_eq!(s.apply(20000.0), 100.0);
        assert_eq!(s.apply(-5.0), 0.0);
        let u = Scaling::new((4.0, 20.0), (0.0, 16.0), false).unwrap();
        assert_eq!(u.apply(2.0), -2.0);
        let inv = Scaling::new((0.0, 100.0), (100.0, 0.0), true).unwrap();
        assert_eq!(inv.apply(25.0), 75.0);
        assert_eq!(inv.apply(200.0), 0.0);
        assert_eq!(
            Scaling::new((1.0, 1.0), (0.0, 1.0), false),
            Err(ScalingError::EmptyRawRange(1.0))
        );
        assert_eq!(
            Scaling::new((0.0, f64::NAN), (0.0, 1.0), false),
            Err(ScalingError::NotFinite)
        );
    }

    #[test]
    fn deadband_filters_small_changes() {
        let mut f = DeadbandFilter::default();
        let t = p("a/b");
        assert!(f.pass(&t, &Value::F64(10.0), true, 0.5));
        assert!(!f.pass(&t, &Value::F64(10.4), true, 0.5));
        assert!(!f.pass(&t, &Value::F64(9.6), true, 0.5));
        assert!(f.pass(&t, &Value::F64(10.6), true, 0.5));
        // quality change always passes
        assert!(f.pass(&t, &Value::F64(10.6), false, 0.5));
        assert!(f.pass(&t, &Value::Str("x".into()), true, 0.5));
        let pct = Deadband::Percent(1.0);
        assert_eq!(pct.threshold(Some(200.0)), 2.0);
        assert_eq!(pct.threshold(None), 0.0);
    }

    #[test]
    fn data_type_names_roundtrip() {
        for t in DataType::ALL {
            assert_eq!(DataType::parse(t.name()), Some(t));
        }
        assert_eq!(DataType::parse("flaot"), None);
        assert!(DataType::expected_list().starts_with("bool, i16, u16"));
    }

    #[test]
    fn convert_raw_respects_type_and_scaling() {
        let mut d = TagDef::new(p("a/b"), DataType::U16);
        assert_eq!(d.convert_raw(7.0), Value::U64(7));
        d.scaling = Some(Scaling::new((0.0, 100.0), (0.0, 10.0), false).unwrap());
        assert_eq!(d.convert_raw(50.0), Value::F64(5.0));
        let f = TagDef::new(p("a/b"), DataType::F32);
        assert_eq!(
            f.convert_raw(f64::from(60.263_14_f32)),
            Value::F32(60.263_14)
        );
        d.deadband = Some(Deadband::Percent(10.0));
        assert_eq!(d.deadband_threshold(), Some(1.0));
        assert_eq!(
            TagDef::new(p("a/c"), DataType::Bool).convert_raw(1.0),
            Value::Bool(true)
        );
    }

    proptest! {
        #[test]
        fn scaling_invert_roundtrips(raw in -1e6f64..1e6, lo in -1e3f64..1e3, span in 1.0f64..1e4, elo in -1e3f64..1e3, espan in 1.0f64..1e4) {
            let s = Scaling::new((lo, lo + span), (elo, elo + espan), false).unwrap();
            let eu = s.apply(raw);
            let back = s.invert(eu);
            prop_assert!((back - raw).abs() <= 1e-6 * (1.0 + raw.abs()));
        }

        #[test]
        fn clamped_scaling_stays_in_range(raw in proptest::num::f64::NORMAL, a in -1e3f64..1e3, b in -1e3f64..1e3) {
            prop_assume!(a != b);
            let s = Scaling::new((0.0, 1.0), (a, b), true).unwrap();
            let eu = s.apply(raw);
            prop_assert!(eu >= a.min(b) && eu <= a.max(b));
        }
    }
}
