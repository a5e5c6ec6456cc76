//! String values with a dictionary ([`Codec::Dict`](super::Codec::Dict)) and run-length quality
//! ([`Codec::Rle`](super::Codec::Rle)).
//!
//! Dictionary: `entries: varint | (len: varint, UTF-8)… | indices bit-packed` ([`ints::pack`]),
//! chosen when it is smaller than the raw strings (repetitive states such as `"running"`).
//! Quality: `runs: varint | (run length: varint, quality as in raw)…` — runs of identical
//! quality, status and reason alike.

use std::collections::HashMap;

use mw_model::Quality;

use super::bits::{get_len, put_varint};
use super::{BlockError, Budget, Reader, ints, raw};

pub(super) fn put_dict(v: &[String], out: &mut Vec<u8>) {
    let mut ids: HashMap<&str, u64> = HashMap::new();
    let mut order: Vec<&str> = Vec::new();
    let idx: Vec<u64> = v
        .iter()
        .map(|s| {
            *ids.entry(s).or_insert_with(|| {
                order.push(s);
                order.len() as u64 - 1
            })
        })
        .collect();
    put_varint(order.len() as u64, out);
    for s in order {
        put_varint(s.len() as u64, out);
        out.extend_from_slice(s.as_bytes());
    }
    ints::pack(&idx, out);
}

pub(super) fn get_dict(
    r: &mut Reader<'_>,
    n: usize,
    budget: &mut Budget,
) -> Result<Vec<String>, BlockError> {
    const W: &str = "dictionary strings";
    let k = get_len(r, n, W)?;
    let mut dict = Vec::with_capacity(k);
    for _ in 0..k {
        let len = get_len(r, r.remaining(), W)?;
        dict.push(r.str(len, W)?);
    }
    let at = r.offset();
    let idx = ints::unpack(r, n, W)?;
    idx.iter()
        .map(|&i| {
            let s =
                usize::try_from(i)
                    .ok()
                    .and_then(|i| dict.get(i))
                    .ok_or(BlockError::Invalid {
                        offset: at,
                        what: "dictionary index",
                    })?;
            budget.take(s.len(), at)?;
            Ok(s.clone())
        })
        .collect()
}

pub(super) fn put_quality_rle(q: &[Quality], out: &mut Vec<u8>) {
    let runs = ints::runs(q);
    put_varint(runs.len() as u64, out);
    let mut i = 0;
    for len in runs {
        put_varint(len as u64, out);
        raw::put_q(&q[i], out);
        i += len;
    }
}

pub(super) fn get_quality_rle(
    r: &mut Reader<'_>,
    n: usize,
    budget: &mut Budget,
) -> Result<Vec<Quality>, BlockError> {
    const W: &str = "run-length quality";
    let k = get_len(r, n, W)?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..k {
        let at = r.offset();
        let len = get_len(r, n - v.len(), W)?;
        if len == 0 {
            return Err(BlockError::Invalid {
                offset: at,
                what: "run length (zero)",
            });
        }
        let q = raw::get_q(r)?;
        budget.take(q.reason().map_or(0, str::len).saturating_mul(len), at)?;
        v.extend(std::iter::repeat_n(q, len));
    }
    if v.len() != n {
        return Err(BlockError::Invalid {
            offset: r.offset(),
            what: "run lengths (do not add up to the point count)",
        });
    }
    Ok(v)
}
