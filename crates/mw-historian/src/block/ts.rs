//! Timestamp codecs: delta-of-delta, either bit-packed in Gorilla's buckets
//! ([`Codec::DodBits`](super::Codec::DodBits)) or as zigzag varints
//! ([`Codec::DodVarint`](super::Codec::DodVarint)). All arithmetic wraps, so any sorted
//! `i64` sequence (`i64::MIN` then `i64::MAX`) round-trips.
//!
//! `DodBits` first divides every delta by their greatest common divisor (stored as a varint), so
//! a regular series (every delta equal) costs one bit per point and a missed reading of a 10 s
//! series (a dod of ±1 interval) nine bits, whatever the timestamp unit; jitter of a few hundred
//! microseconds on nanosecond timestamps fits the 20- or 32-bit buckets.
//!
//! Layout of `DodBits`: `gcd: varint | t0: 64 bits | per further point a bucketed zigzag dod of
//! the scaled deltas`. `DodVarint`: `zigzag t0: varint | zigzag dod: varint…` (unscaled).

use super::bits::{BitReader, BitWriter, get_varint, put_varint, unzigzag, width, zigzag};
use super::{BlockError, Reader};

/// (prefix, prefix length, payload bits) of each bucket after the `0` of a zero dod.
const BUCKETS: [(u64, u32, u32); 5] = [
    (0b10, 2, 7),
    (0b110, 3, 12),
    (0b1110, 4, 20),
    (0b11110, 5, 32),
    (0b11111, 5, 64),
];

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Zigzag dods of the deltas divided by `scale` (the deltas of sorted timestamps, as u64, are
/// exact even across the whole i64 range).
fn dods(ts: &[i64], scale: u64) -> impl Iterator<Item = u64> + '_ {
    let mut prev_delta = 0i64;
    ts.windows(2).map(move |w| {
        let d = ((w[1].wrapping_sub(w[0]) as u64) / scale) as i64;
        let dod = d.wrapping_sub(prev_delta);
        prev_delta = d;
        zigzag(dod)
    })
}

pub(super) fn put_bits(ts: &[i64], out: &mut Vec<u8>) {
    let scale = ts
        .windows(2)
        .fold(0, |g, w| gcd(g, w[1].wrapping_sub(w[0]) as u64))
        .max(1);
    put_varint(scale, out);
    let mut w = BitWriter::new(out);
    if let Some(&t0) = ts.first() {
        w.put(t0 as u64, 64);
    }
    for z in dods(ts, scale) {
        if z == 0 {
            w.bit(false);
            continue;
        }
        let bits = width(z);
        let &(prefix, plen, payload) = BUCKETS.iter().find(|b| bits <= b.2).unwrap_or(&BUCKETS[4]);
        w.put(prefix, plen);
        w.put(z, payload);
    }
    w.finish();
}

fn undod(
    n: usize,
    t0: i64,
    scale: u64,
    mut next: impl FnMut() -> Result<u64, BlockError>,
) -> Result<Vec<i64>, BlockError> {
    let mut ts = Vec::with_capacity(n);
    if n == 0 {
        return Ok(ts);
    }
    ts.push(t0);
    let (mut t, mut d) = (t0, 0i64);
    for _ in 1..n {
        d = d.wrapping_add(unzigzag(next()?));
        t = t.wrapping_add(d.wrapping_mul(scale as i64));
        ts.push(t);
    }
    Ok(ts)
}

pub(super) fn get_bits(r: &mut Reader<'_>, n: usize) -> Result<Vec<i64>, BlockError> {
    const W: &str = "delta-of-delta timestamps";
    let at = r.offset();
    let scale = get_varint(r, W)?;
    if scale == 0 {
        return Err(BlockError::Invalid {
            offset: at,
            what: "timestamp scale (zero)",
        });
    }
    let mut b = BitReader::new(r);
    let t0 = if n > 0 { b.get(64, W)? as i64 } else { 0 };
    let ts = undod(n, t0, scale, || {
        if !b.bit(W)? {
            return Ok(0);
        }
        let mut i = 0;
        while i < 4 && b.bit(W)? {
            i += 1;
        }
        b.get(BUCKETS[i].2, W)
    })?;
    if b.trailing_bytes() > 0 {
        return Err(BlockError::Trailing {
            offset: b.offset(),
            extra: b.trailing_bytes(),
            what: W,
        });
    }
    Ok(ts)
}

pub(super) fn put_varints(ts: &[i64], out: &mut Vec<u8>) {
    if let Some(&t0) = ts.first() {
        put_varint(zigzag(t0), out);
    }
    for z in dods(ts, 1) {
        put_varint(z, out);
    }
}

pub(super) fn get_varints(r: &mut Reader<'_>, n: usize) -> Result<Vec<i64>, BlockError> {
    const W: &str = "varint timestamps";
    // every varint takes at least one byte
    if r.remaining() < n {
        return Err(BlockError::Truncated {
            offset: r.offset(),
            need: n - r.remaining(),
            what: W,
        });
    }
    let t0 = if n > 0 {
        unzigzag(get_varint(r, W)?)
    } else {
        0
    };
    undod(n, t0, 1, || get_varint(r, W))
}
