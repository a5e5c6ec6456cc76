use std::fmt::Write as _;

use mw_model::{Sample, TagPath, Value};

use crate::error::WriteError;

/// Writes one sample as one line (with its `\n`) for `millwright export --format line`.
///
/// Mapping (the inverse of [`crate::to_samples`]): for a path `s1/s2/…/sn-1/sn` the measurement is
/// `s1`, the field key is `sn`, and each middle segment becomes a tag `lK=sK+1` with keys `l1`,
/// `l2`, … in path order. Tag paths have at most 10 segments, so at most 8 tags `l1`…`l8`, whose
/// byte order is their path order; the parser's mapping (tag values in key order) rebuilds
/// exactly the same path. `truck/North/t1/velocity` = 3.5 at t → `truck,l1=North,l2=t1
/// velocity=3.5 t`. Path characters never need escaping in line protocol.
///
/// Values: `F64` in Rust's shortest round-trip form; `F32` in its own shortest form (`60.26314`,
/// read back as the `F64` with those digits, which converts back to the same `f32`); `I64` as
/// `3i`, `U64` as `3u`, `Bool` as `true`/`false`, `Str` quoted with `"` and `\` escaped.
/// The timestamp is `source_ts` in nanoseconds. Quality and `receive_ts` are not written (line
/// protocol has no place for them). NaN and infinities, and strings with a newline, have no
/// line-protocol form: an error, nothing is written.
pub fn write_sample(s: &Sample, out: &mut String) -> Result<(), WriteError> {
    write_value_line(&s.tag, &s.value, s.source_ts, out)
}

/// [`write_sample`] from its parts.
pub fn write_value_line(
    tag: &TagPath,
    value: &Value,
    ts_ns: i64,
    out: &mut String,
) -> Result<(), WriteError> {
    let non_finite = |v: &dyn std::fmt::Display| WriteError::NonFinite {
        tag: tag.to_string(),
        value: v.to_string(),
    };
    match value {
        Value::F64(v) if !v.is_finite() => return Err(non_finite(v)),
        Value::F32(v) if !v.is_finite() => return Err(non_finite(v)),
        Value::Str(s) if s.contains('\n') => {
            return Err(WriteError::Newline {
                tag: tag.to_string(),
            });
        }
        _ => {}
    }
    let segs: Vec<&str> = tag.segments().collect();
    let (first, rest) = segs.split_first().unwrap_or((&"", &[]));
    let (field, middle) = rest.split_last().unwrap_or((&"", &[]));
    out.push_str(first);
    for (i, s) in middle.iter().enumerate() {
        let _ = write!(out, ",l{}={s}", i + 1);
    }
    out.push(' ');
    out.push_str(field);
    out.push('=');
    let _ = match value {
        Value::F64(v) => write!(out, "{v}"),
        Value::F32(v) => write!(out, "{v}"),
        Value::I64(v) => write!(out, "{v}i"),
        Value::U64(v) => write!(out, "{v}u"),
        Value::Bool(v) => write!(out, "{v}"),
        Value::Str(s) => {
            out.push('"');
            for ch in s.chars() {
                if ch == '"' || ch == '\\' {
                    out.push('\\');
                }
                out.push(ch);
            }
            out.push('"');
            Ok(())
        }
    };
    let _ = writeln!(out, " {ts_ns}");
    Ok(())
}
