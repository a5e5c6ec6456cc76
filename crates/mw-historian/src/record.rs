//! The WAL payload: one write (a batch of samples) as bytes, and back.
//!
//! # Format (version 1, little-endian)
//! `version: u8 = 1`, `seq: u64` (the write's place in the historian's total order; last write
//! wins by it), `count: u32`, then per sample: `tag_len: u16`, `tag` (UTF-8, a valid
//! [`TagPath`]), `ts: i64` (source time, ns), `kind: u8` + value (`0` bool: u8, `1` i64, `2` u64,
//! `3` f64 bits, `4` f32 bits, `5` string: `u16` length + UTF-8), `quality: u8` (`0` good,
//! `1` uncertain, `2` bad) + for 1 and 2 a `u16` length + UTF-8 reason.
//!
//! Decoding never panics and never allocates more than the payload's own length: every length
//! is checked against the bytes that are left.

use mw_model::{Quality, Sample, TagPath, Value};

const VERSION: u8 = 1;

/// One decoded point of a write.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub tag: TagPath,
    pub ts: i64,
    pub value: Value,
    pub quality: Quality,
}

impl From<&Sample> for Point {
    fn from(s: &Sample) -> Point {
        Point {
            tag: s.tag.clone(),
            ts: s.source_ts,
            value: s.value.clone(),
            quality: s.quality.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("WAL record is damaged at byte {at}: {what}")]
pub struct RecordError {
    pub at: usize,
    pub what: String,
}

/// Encodes a write of `points` with sequence number `seq`.
pub fn encode(seq: u64, points: &[Point], out: &mut Vec<u8>) {
    out.push(VERSION);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&(points.len() as u32).to_le_bytes());
    for p in points {
        put_str(out, p.tag.as_str());
        out.extend_from_slice(&p.ts.to_le_bytes());
        match &p.value {
            Value::Bool(b) => out.extend_from_slice(&[0, u8::from(*b)]),
            Value::I64(v) => {
                out.push(1);
                out.extend_from_slice(&v.to_le_bytes());
            }
            Value::U64(v) => {
                out.push(2);
                out.extend_from_slice(&v.to_le_bytes());
            }
            Value::F64(v) => {
                out.push(3);
                out.extend_from_slice(&v.to_bits().to_le_bytes());
            }
            Value::F32(v) => {
                out.push(4);
                out.extend_from_slice(&v.to_bits().to_le_bytes());
            }
            Value::Str(s) => {
                out.push(5);
                put_str(out, s);
            }
        }
        match &p.quality {
            Quality::Good => out.push(0),
            Quality::Uncertain(r) => {
                out.push(1);
                put_str(out, r);
            }
            Quality::Bad(r) => {
                out.push(2);
                put_str(out, r);
            }
        }
    }
}

/// Appends `s` as `u16` length + UTF-8. Strings longer than `u16::MAX` bytes are cut at a
/// character boundary (tag paths, string values and reasons are all far shorter).
pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    let mut end = s.len().min(u16::MAX as usize);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out.extend_from_slice(&(end as u16).to_le_bytes());
    out.extend_from_slice(&s.as_bytes()[..end]);
}

/// Little-endian fields out of a byte slice; every read checks what is left and names the field
/// and offset when it is short. Shared by WAL records and segment indexes.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pub(crate) at: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, at: 0 }
    }

    pub(crate) fn err(&self, what: impl Into<String>) -> RecordError {
        RecordError {
            at: self.at,
            what: what.into(),
        }
    }

    pub(crate) fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], RecordError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.buf.len());
        match end {
            Some(end) => {
                let s = &self.buf[self.at..end];
                self.at = end;
                Ok(s)
            }
            None => Err(self.err(format!(
                "{what} needs {n} byte(s), {} left",
                self.buf.len() - self.at
            ))),
        }
    }

    pub(crate) fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], RecordError> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    pub(crate) fn u8(&mut self, what: &str) -> Result<u8, RecordError> {
        Ok(self.array::<1>(what)?[0])
    }

    pub(crate) fn u32(&mut self, what: &str) -> Result<u32, RecordError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn u64(&mut self, what: &str) -> Result<u64, RecordError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn f64(&mut self, what: &str) -> Result<f64, RecordError> {
        self.u64(what).map(f64::from_bits)
    }

    pub(crate) fn str(&mut self, what: &str) -> Result<&'a str, RecordError> {
        let len = u16::from_le_bytes(self.array(what)?) as usize;
        let at = self.at;
        let bytes = self.take(len, what)?;
        std::str::from_utf8(bytes).map_err(|_| RecordError {
            at,
            what: format!("{what} is not UTF-8"),
        })
    }

    /// A string that must be a valid [`TagPath`]; the error is placed at its length field.
    pub(crate) fn tag(&mut self, what: &str) -> Result<TagPath, RecordError> {
        let at = self.at;
        let tag = self.str(what)?;
        TagPath::new(tag).map_err(|e| RecordError {
            at,
            what: format!("{what} {tag:?}: {e}"),
        })
    }
}

/// Decodes a write: its sequence number and points.
pub fn decode(buf: &[u8]) -> Result<(u64, Vec<Point>), RecordError> {
    let mut r = Reader::new(buf);
    let v = r.u8("version")?;
    if v != VERSION {
        return Err(RecordError {
            at: 0,
            what: format!("unknown record version {v} (this build reads {VERSION})"),
        });
    }
    let seq = r.u64("sequence number")?;
    let count = r.u32("point count")? as usize;
    // each point takes at least 2 + 8 + 2 + 1 bytes: a count beyond that is damage
    if count > buf.len() / 13 {
        return Err(r.err(format!(
            "point count {count} exceeds what the record can hold"
        )));
    }
    let mut points = Vec::with_capacity(count);
    for _ in 0..count {
        let tag = r.tag("tag path")?;
        let ts = r.u64("timestamp")? as i64;
        let value = match r.u8("value kind")? {
            0 => Value::Bool(r.u8("bool value")? != 0),
            1 => Value::I64(i64::from_le_bytes(r.array("i64 value")?)),
            2 => Value::U64(u64::from_le_bytes(r.array("u64 value")?)),
            3 => Value::F64(f64::from_bits(u64::from_le_bytes(r.array("f64 value")?))),
            4 => Value::F32(f32::from_bits(u32::from_le_bytes(r.array("f32 value")?))),
            5 => Value::Str(r.str("string value")?.to_owned()),
            k => return Err(r.err(format!("unknown value kind {k}"))),
        };
        let quality = match r.u8("quality")? {
            0 => Quality::Good,
            1 => Quality::Uncertain(r.str("quality reason")?.to_owned()),
            2 => Quality::Bad(r.str("quality reason")?.to_owned()),
            q => return Err(r.err(format!("unknown quality {q}"))),
        };
        points.push(Point {
            tag,
            ts,
            value,
            quality,
        });
    }
    if r.at != buf.len() {
        return Err(r.err(format!("{} byte(s) after the last point", buf.len() - r.at)));
    }
    Ok((seq, points))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::I64),
            any::<u64>().prop_map(Value::U64),
            any::<u64>().prop_map(|b| Value::F64(f64::from_bits(b))),
            any::<u32>().prop_map(|b| Value::F32(f32::from_bits(b))),
            ".{0,40}".prop_map(Value::Str),
        ]
    }

    fn quality() -> impl Strategy<Value = Quality> {
        prop_oneof![
            Just(Quality::Good),
            ".{0,20}".prop_map(Quality::Uncertain),
            ".{0,20}".prop_map(Quality::Bad),
        ]
    }

    fn point() -> impl Strategy<Value = Point> {
        (
            "[a-z]{1,8}/[a-z0-9_]{1,8}",
            any::<i64>(),
            value(),
            quality(),
        )
            .prop_map(|(t, ts, value, quality)| Point {
                tag: TagPath::new(&t).unwrap(),
                ts,
                value,
                quality,
            })
    }

    /// Values compared bit for bit (NaN payloads, -0.0).
    fn same(a: &[Point], b: &[Point]) -> bool {
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| {
                x.tag == y.tag
                    && x.ts == y.ts
                    && x.quality == y.quality
                    && match (&x.value, &y.value) {
                        (Value::F64(p), Value::F64(q)) => p.to_bits() == q.to_bits(),
                        (Value::F32(p), Value::F32(q)) => p.to_bits() == q.to_bits(),
                        (p, q) => p == q,
                    }
            })
    }

    proptest! {
        #[test]
        fn round_trips_bit_for_bit(seq in any::<u64>(), points in prop::collection::vec(point(), 0..20)) {
            let mut buf = Vec::new();
            encode(seq, &points, &mut buf);
            let (s, back) = decode(&buf).unwrap();
            prop_assert_eq!(s, seq);
            prop_assert!(same(&points, &back));
        }

        #[test]
        fn decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn every_cut_is_an_error(points in prop::collection::vec(point(), 1..5), cut in any::<prop::sample::Index>()) {
            let mut buf = Vec::new();
            encode(7, &points, &mut buf);
            let n = cut.index(buf.len());
            prop_assert!(decode(&buf[..n]).is_err());
        }
    }

    #[test]
    fn errors_name_the_place() {
        let p = Point {
            tag: TagPath::new("a/b").unwrap(),
            ts: 5,
            value: Value::F64(1.0),
            quality: Quality::Good,
        };
        let mut buf = Vec::new();
        encode(1, &[p], &mut buf);
        buf[15] = b'/'; // "a/b" → "//b"
        let e = decode(&buf).unwrap_err();
        assert_eq!(e.at, 13);
        assert!(e.to_string().contains("tag path \"//b\""), "{e}");
        buf[0] = 9;
        assert_eq!(
            decode(&buf).unwrap_err().to_string(),
            "WAL record is damaged at byte 0: unknown record version 9 (this build reads 1)"
        );
    }
}
