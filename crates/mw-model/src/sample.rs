use std::fmt;

use crate::TagPath;

/// Longest string value accepted, in bytes; longer strings are truncated at a char boundary.
pub const MAX_STRING_LEN: usize = 1024;

/// A tag's value. Plain data: no references to a registry.
///
/// A value keeps the precision it came with: a reading decoded from an IEEE-754 single (a Modbus
/// `f32` register pair) is an [`Value::F32`] and is written out in its shortest round-trip form
/// (`60.263142`), not as the widened double (`60.26314163208008`). JSON input deserializes every
/// number with a fraction as [`Value::F64`].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum Value {
    Bool(bool),
    I64(i64),
    U64(u64),
    F64(f64),
    F32(f32),
    Str(String),
}

impl Value {
    /// A string value, truncated to [`MAX_STRING_LEN`] bytes at a character boundary.
    pub fn string(s: &str) -> Value {
        let mut end = s.len().min(MAX_STRING_LEN);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        Value::Str(s[..end].to_owned())
    }

    /// Numeric view (bool as 0/1); `None` for strings.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            Value::I64(v) => Some(*v as f64),
            Value::U64(v) => Some(*v as f64),
            Value::F64(v) => Some(*v),
            Value::F32(v) => Some(f64::from(*v)),
            Value::Str(_) => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(b) => write!(f, "{b}"),
            Value::I64(v) => write!(f, "{v}"),
            Value::U64(v) => write!(f, "{v}"),
            Value::F64(v) => write!(f, "{v}"),
            Value::F32(v) => write!(f, "{v}"),
            Value::Str(s) => f.write_str(s),
        }
    }
}

/// OPC UA-like data quality. Uncertain and bad carry a short human-readable reason
/// (e.g. `"timeout after 1000 ms"`, `"modbus exception 2 (illegal data address)"`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(tag = "status", content = "reason", rename_all = "lowercase")]
pub enum Quality {
    Good,
    Uncertain(String),
    Bad(String),
}

impl Quality {
    pub fn is_good(&self) -> bool {
        matches!(self, Quality::Good)
    }

    /// `"good"`, `"uncertain"` or `"bad"`.
    pub fn status(&self) -> &'static str {
        match self {
            Quality::Good => "good",
            Quality::Uncertain(_) => "uncertain",
            Quality::Bad(_) => "bad",
        }
    }

    pub fn reason(&self) -> Option<&str> {
        match self {
            Quality::Good => None,
            Quality::Uncertain(r) | Quality::Bad(r) => Some(r),
        }
    }
}

impl fmt::Display for Quality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason() {
            None => f.write_str(self.status()),
            Some(r) => write!(f, "{} ({r})", self.status()),
        }
    }
}

/// One observation of one tag. Timestamps are nanoseconds since the Unix epoch (UTC).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Sample {
    pub tag: TagPath,
    pub value: Value,
    pub quality: Quality,
    /// When the value was true at the source (device time, or poll time if the device has none).
    pub source_ts: i64,
    /// When Millwright received it.
    pub receive_ts: i64,
}

impl Sample {
    pub fn good(tag: TagPath, value: Value, ts: i64) -> Sample {
        Sample {
            tag,
            value,
            quality: Quality::Good,
            source_ts: ts,
            receive_ts: ts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_values_are_bounded_at_char_boundary() {
        let long = "é".repeat(MAX_STRING_LEN);
        let Value::Str(s) = Value::string(&long) else {
            panic!("not a string")
        };
        assert!(s.len() <= MAX_STRING_LEN);
        assert_eq!(s.len() % 2, 0);
        assert_eq!(Value::string("ok"), Value::Str("ok".into()));
    }

    #[test]
    fn quality_serializes_with_reason() {
        let q = Quality::Bad("timeout".into());
        assert_eq!(
            serde_json::to_string(&q).unwrap(),
            r#"{"status":"bad","reason":"timeout"}"#
        );
        assert_eq!(
            serde_json::to_string(&Quality::Good).unwrap(),
            r#"{"status":"good"}"#
        );
        assert_eq!(q.to_string(), "bad (timeout)");
        assert!(!q.is_good());
    }

    #[test]
    fn value_numeric_view() {
        assert_eq!(Value::Bool(true).as_f64(), Some(1.0));
        assert_eq!(Value::I64(-3).as_f64(), Some(-3.0));
        assert_eq!(Value::Str("x".into()).as_f64(), None);
        assert_eq!(serde_json::to_string(&Value::F64(1.5)).unwrap(), "1.5");
        // single precision is written in its own shortest form, not as the widened double
        let f = 60.263_14_f32;
        assert_eq!(f64::from(f).to_string(), "60.26314163208008");
        assert_eq!(serde_json::to_string(&Value::F32(f)).unwrap(), "60.26314");
        assert_eq!(Value::F32(f).to_string(), "60.26314");
        assert_eq!(Value::F32(f).as_f64(), Some(f64::from(f)));
    }
}
