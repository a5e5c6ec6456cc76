//! Fixed-width encoding of every column (codec id [`Codec::Raw`](super::Codec::Raw)): the
//! baseline the other codecs are measured against, and the fallback when nothing is smaller.
//! Timestamps and 64-bit values 8 bytes, f32 4 bytes, bool 1 byte (0/1), strings `len: u32` +
//! UTF-8, quality a status byte (0 good, 1 uncertain, 2 bad) + for the latter two a reason as a
//! string.

use mw_model::Quality;

use super::{BlockError, Column, Reader};

pub(super) fn put_ts(ts: &[i64], out: &mut Vec<u8>) {
    for t in ts {
        out.extend_from_slice(&t.to_le_bytes());
    }
}

/// Checks that `n` items of `width` bytes are there before anything is allocated.
fn need(r: &Reader<'_>, n: usize, width: usize, what: &'static str) -> Result<(), BlockError> {
    let want = n.saturating_mul(width);
    if r.remaining() < want {
        return Err(BlockError::Truncated {
            offset: r.offset(),
            need: want - r.remaining(),
            what,
        });
    }
    Ok(())
}

pub(super) fn get_ts(r: &mut Reader<'_>, n: usize) -> Result<Vec<i64>, BlockError> {
    need(r, n, 8, "raw timestamps")?;
    (0..n)
        .map(|_| r.u64("raw timestamps").map(|v| v as i64))
        .collect()
}

pub(super) fn put_str(s: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

pub(super) fn get_str(r: &mut Reader<'_>, what: &'static str) -> Result<String, BlockError> {
    let len = r.u32(what)? as usize;
    r.str(len, what)
}

pub(super) fn put_values(c: &Column, out: &mut Vec<u8>) {
    match c {
        Column::Bool(v) => out.extend(v.iter().map(|&b| u8::from(b))),
        Column::I64(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Column::U64(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Column::F64(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_bits().to_le_bytes())),
        Column::F32(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_bits().to_le_bytes())),
        Column::Str(v) => v.iter().for_each(|s| put_str(s, out)),
    }
}

pub(super) fn get_values(r: &mut Reader<'_>, ty: u8, n: usize) -> Result<Column, BlockError> {
    const W: &str = "raw values";
    Ok(match ty {
        0 => {
            need(r, n, 1, W)?;
            let b = r.bytes(n, W)?;
            if let Some(i) = b.iter().position(|&x| x > 1) {
                return Err(BlockError::Invalid {
                    offset: r.offset() - n + i,
                    what: "boolean (not 0 or 1)",
                });
            }
            Column::Bool(b.iter().map(|&x| x == 1).collect())
        }
        1 => {
            need(r, n, 8, W)?;
            Column::I64(
                (0..n)
                    .map(|_| r.u64(W).map(|v| v as i64))
                    .collect::<Result<_, _>>()?,
            )
        }
        2 => {
            need(r, n, 8, W)?;
            Column::U64((0..n).map(|_| r.u64(W)).collect::<Result<_, _>>()?)
        }
        3 => {
            need(r, n, 8, W)?;
            Column::F64(
                (0..n)
                    .map(|_| r.u64(W).map(f64::from_bits))
                    .collect::<Result<_, _>>()?,
            )
        }
        4 => {
            need(r, n, 4, W)?;
            Column::F32(
                (0..n)
                    .map(|_| r.u32(W).map(f32::from_bits))
                    .collect::<Result<_, _>>()?,
            )
        }
        _ => {
            // each string takes at least its 4-byte length
            need(r, n, 4, W)?;
            Column::Str(
                (0..n)
                    .map(|_| get_str(r, "raw string"))
                    .collect::<Result<_, _>>()?,
            )
        }
    })
}

pub(super) fn put_q(q: &Quality, out: &mut Vec<u8>) {
    match q {
        Quality::Good => out.push(0),
        Quality::Uncertain(s) => {
            out.push(1);
            put_str(s, out);
        }
        Quality::Bad(s) => {
            out.push(2);
            put_str(s, out);
        }
    }
}

pub(super) fn get_q(r: &mut Reader<'_>) -> Result<Quality, BlockError> {
    let at = r.offset();
    Ok(match r.u8("quality status")? {
        0 => Quality::Good,
        1 => Quality::Uncertain(get_str(r, "quality reason")?),
        2 => Quality::Bad(get_str(r, "quality reason")?),
        _ => {
            return Err(BlockError::Invalid {
                offset: at,
                what: "quality status",
            });
        }
    })
}

pub(super) fn put_quality(q: &[Quality], out: &mut Vec<u8>) {
    q.iter().for_each(|q| put_q(q, out));
}

pub(super) fn get_quality(r: &mut Reader<'_>, n: usize) -> Result<Vec<Quality>, BlockError> {
    need(r, n, 1, "raw quality")?;
    (0..n).map(|_| get_q(r)).collect()
}
