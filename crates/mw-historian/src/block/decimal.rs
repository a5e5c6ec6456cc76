//! ALP-style decimal floats ([`Codec::Decimal`](super::Codec::Decimal)): most sensor values are
//! decimals with a few digits (`12.34`, printed by a device or a generator), so `v · 10^k` is an
//! integer `i` and `i / 10^k` gives back exactly `v`. Those integers are stored delta + zigzag +
//! bit-packed ([`super::ints`]); values that do not come back bit for bit (NaN, ±inf, −0.0, more
//! digits) are exceptions stored verbatim with their index.
//!
//! Layout: `k: u8 | exceptions: varint | (index delta: varint, bits: u64 or u32)… | packed
//! integers` (an exception's slot repeats the previous integer, so it costs no delta).
//! Decoding computes `i as f64 / 10^k` (correctly rounded division, the same on every IEEE-754
//! machine), narrowed to f32 for f32 columns — the encoder checks the same expression.

use super::bits::{get_len, get_varint, put_varint};
use super::{BlockError, Reader, ints};

/// Largest exponent tried.
pub(super) const MAX_K: u8 = 12;
const POW10: [f64; MAX_K as usize + 1] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12,
];
/// Integers beyond ±2^53 are not exact in f64.
const LIMIT: f64 = 9_007_199_254_740_992.0;

fn scaled(v: f64, k: u8) -> Option<i64> {
    let i = (v * POW10[k as usize]).round();
    (i.abs() < LIMIT).then_some(i as i64)
}

fn value(i: i64, k: u8) -> f64 {
    i as f64 / POW10[k as usize]
}

/// The integer of `bits` at exponent `k` if it comes back exactly; `single` for f32 patterns.
fn fits(bits: u64, k: u8, single: bool) -> Option<i64> {
    if single {
        let v = f32::from_bits(bits as u32);
        let i = scaled(f64::from(v), k)?;
        ((value(i, k) as f32).to_bits() == v.to_bits()).then_some(i)
    } else {
        let v = f64::from_bits(bits);
        let i = scaled(v, k)?;
        (value(i, k).to_bits() == v.to_bits()).then_some(i)
    }
}

/// The smallest `k` that leaves fewest exceptions on a sample of up to 64 values.
fn choose_k(v: &[u64], single: bool) -> u8 {
    let step = (v.len() / 64).max(1);
    let sample: Vec<u64> = v.iter().step_by(step).copied().collect();
    let mut best = (usize::MAX, 0);
    for k in 0..=MAX_K {
        let miss = sample
            .iter()
            .filter(|&&b| fits(b, k, single).is_none())
            .count();
        if miss < best.0 {
            best = (miss, k);
        }
        if miss == 0 {
            break;
        }
    }
    best.1
}

/// Encodes bit patterns (f64, or f32 in the low 32 bits with `single`); `None` if more than a
/// quarter are exceptions (Gorilla or raw will be smaller).
pub(super) fn put(v: &[u64], single: bool, out: &mut Vec<u8>) -> Option<()> {
    let k = choose_k(v, single);
    let mut ints = Vec::with_capacity(v.len());
    let mut exc = Vec::new();
    let mut prev = 0i64;
    for (i, &b) in v.iter().enumerate() {
        match fits(b, k, single) {
            Some(x) => {
                ints.push(x as u64);
                prev = x;
            }
            None => {
                exc.push((i, b));
                ints.push(prev as u64);
            }
        }
    }
    if exc.len() * 4 > v.len() {
        return None;
    }
    out.push(k);
    put_varint(exc.len() as u64, out);
    let mut last = 0;
    for (i, b) in exc {
        put_varint((i - last) as u64, out);
        last = i;
        if single {
            out.extend_from_slice(&(b as u32).to_le_bytes());
        } else {
            out.extend_from_slice(&b.to_le_bytes());
        }
    }
    ints::put_delta(ints.into_iter(), out);
    Some(())
}

pub(super) fn get(r: &mut Reader<'_>, n: usize, single: bool) -> Result<Vec<u64>, BlockError> {
    const W: &str = "decimal floats";
    let at = r.offset();
    let k = r.u8(W)?;
    if k > MAX_K {
        return Err(BlockError::Invalid {
            offset: at,
            what: "decimal exponent",
        });
    }
    let e = get_len(r, n, W)?;
    let mut exc = Vec::with_capacity(e);
    let mut idx = 0usize;
    for j in 0..e {
        let at = r.offset();
        let d = get_varint(r, W)?;
        idx = idx.saturating_add(usize::try_from(d).unwrap_or(usize::MAX));
        if idx >= n || (j > 0 && d == 0) {
            return Err(BlockError::Invalid {
                offset: at,
                what: "decimal exception index",
            });
        }
        let b = if single {
            u64::from(r.u32(W)?)
        } else {
            r.u64(W)?
        };
        exc.push((idx, b));
    }
    let mut v = ints::get_delta(r, n, W)?;
    for x in &mut v {
        let f = value(*x as i64, k);
        *x = if single {
            u64::from((f as f32).to_bits())
        } else {
            f.to_bits()
        };
    }
    for (i, b) in exc {
        v[i] = b;
    }
    Ok(v)
}
