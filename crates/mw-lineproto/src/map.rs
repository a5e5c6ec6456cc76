use mw_model::{MAX_STRING_LEN, Quality, Sample, TagPath, Value};

use crate::error::LineError;
use crate::parse::{FieldValue, Point};

/// Maps points to samples: one sample per field, tag path
/// `measurement/<tag values in order of their keys>/field`, quality good, `source_ts` the point's
/// timestamp. Float → `F64`, `i` → `I64`, `u` → `U64`, boolean → `Bool`, string → `Str`.
///
/// Every measurement, tag value and field key must be a valid tag-path segment
/// (`A-Z a-z 0-9 _ - .`, not starting with `.`, at most 64 characters) and the whole path valid
/// ([`TagPath`]); otherwise the batch is rejected with the element's line and column. Strings
/// longer than [`MAX_STRING_LEN`] bytes are rejected too (never silently truncated).
///
/// Duplicates are kept in input order: the same tag and timestamp twice in a batch (or a field
/// key repeated in one line) yields two samples, and the later one wins downstream (the historian
/// stores last write wins).
pub fn to_samples(points: &[Point<'_>], receive_ts: i64) -> Result<Vec<Sample>, LineError> {
    let mut out = Vec::with_capacity(points.iter().map(|p| p.fields.len()).sum());
    for p in points {
        point_samples(p, receive_ts, &mut out)?;
    }
    Ok(out)
}

/// [`to_samples`] for one point, appending to `out` (for streaming imports).
pub fn point_samples(
    p: &Point<'_>,
    receive_ts: i64,
    out: &mut Vec<Sample>,
) -> Result<(), LineError> {
    let err = |column: usize, message: String| LineError {
        line: p.line,
        column,
        message,
    };
    check_segment(&p.measurement)
        .map_err(|why| err(p.column, format!("measurement {:?} {why}", p.measurement)))?;
    let mut prefix = String::with_capacity(64);
    prefix.push_str(&p.measurement);
    for t in &p.tags {
        check_segment(&t.value).map_err(|why| {
            err(
                t.value_column,
                format!("value {:?} of tag {:?} {why}", t.value, t.key),
            )
        })?;
        prefix.push('/');
        prefix.push_str(&t.value);
    }
    for f in &p.fields {
        check_segment(&f.key)
            .map_err(|why| err(f.column, format!("field key {:?} {why}", f.key)))?;
        let path = format!("{prefix}/{}", f.key);
        let tag = TagPath::new(&path)
            .map_err(|e| err(p.column, format!("tag path {path:?} is not valid: {e}")))?;
        let value = match &f.value {
            FieldValue::Float(v) => Value::F64(*v),
            FieldValue::Integer(v) => Value::I64(*v),
            FieldValue::Unsigned(v) => Value::U64(*v),
            FieldValue::Boolean(v) => Value::Bool(*v),
            FieldValue::String(s) => {
                if s.len() > MAX_STRING_LEN {
                    return Err(err(
                        f.column,
                        format!(
                            "string value of field {:?} is {} bytes long (at most {MAX_STRING_LEN})",
                            f.key,
                            s.len()
                        ),
                    ));
                }
                Value::Str(s.to_string())
            }
        };
        out.push(Sample {
            tag,
            value,
            quality: Quality::Good,
            source_ts: p.timestamp_ns,
            receive_ts,
        });
    }
    Ok(())
}

/// Checks one path segment with mw-model's rules; the error completes "… {why}".
fn check_segment(s: &str) -> Result<(), String> {
    if s.contains('/') {
        return Err(
            "contains '/', which is not allowed in a tag-path segment (allowed: A-Z a-z 0-9 _ - .)"
                .into(),
        );
    }
    TagPath::new(&format!("x/{s}"))
        .map(|_| ())
        .map_err(|e| match e {
            mw_model::PathError::BadChar { ch, .. } => format!(
                "is not a valid tag-path segment: invalid character {ch:?} (allowed: A-Z a-z 0-9 _ - .)"
            ),
            mw_model::PathError::LeadingDot { .. } => {
                "is not a valid tag-path segment: it starts with '.'".into()
            }
            mw_model::PathError::SegmentTooLong { len, .. } => format!(
                "is not a valid tag-path segment: {len} characters long (at most {})",
                mw_model::MAX_SEGMENT_LEN
            ),
            other => format!("is not a valid tag-path segment: {other}"),
        })
}
