//! Gorilla XOR floats ([`Codec::Gorilla`](super::Codec::Gorilla)) on the bit patterns, 64-bit
//! for f64 and 32-bit for f32 (single-precision values are never widened).
//!
//! First value verbatim; then per value the XOR with the previous one: `0` if equal; `10` +
//! the meaningful bits if they fit the previous leading/trailing-zero window; else `11` +
//! leading zeros (6 bits, 5 for f32) + meaningful length − 1 (6 / 5 bits) + the meaningful bits.

use super::bits::{BitReader, BitWriter};
use super::{BlockError, Reader};

/// Encodes `v`, each the low `bits` (64 or 32) of a u64.
pub(super) fn put(v: impl Iterator<Item = u64>, bits: u32, out: &mut Vec<u8>) {
    let hdr = if bits == 64 { 6 } else { 5 };
    let mut w = BitWriter::new(out);
    let mut prev: Option<u64> = None;
    let (mut lead, mut trail) = (u32::MAX, 0u32);
    for x in v {
        let Some(p) = prev else {
            w.put(x, bits);
            prev = Some(x);
            continue;
        };
        prev = Some(x);
        let xor = p ^ x;
        if xor == 0 {
            w.bit(false);
            continue;
        }
        w.bit(true);
        let l = xor.leading_zeros() - (64 - bits);
        let t = xor.trailing_zeros();
        if lead != u32::MAX && l >= lead && t >= trail {
            w.bit(false);
            w.put(xor >> trail, bits - lead - trail);
        } else {
            w.bit(true);
            let len = bits - l - t;
            w.put(u64::from(l), hdr);
            w.put(u64::from(len - 1), hdr);
            w.put(xor >> t, len);
            (lead, trail) = (l, t);
        }
    }
    w.finish();
}

pub(super) fn get(r: &mut Reader<'_>, n: usize, bits: u32) -> Result<Vec<u64>, BlockError> {
    const W: &str = "Gorilla floats";
    let hdr = if bits == 64 { 6 } else { 5 };
    let mut b = BitReader::new(r);
    let mut v = Vec::with_capacity(n);
    let (mut lead, mut trail) = (u32::MAX, 0u32);
    let mut prev = 0u64;
    for i in 0..n {
        if i == 0 {
            prev = b.get(bits, W)?;
        } else if b.bit(W)? {
            if b.bit(W)? {
                let at = b.offset();
                let l = b.get(hdr, W)? as u32;
                let len = b.get(hdr, W)? as u32 + 1;
                if l + len > bits {
                    return Err(BlockError::Invalid {
                        offset: at,
                        what: "Gorilla window (wider than the value)",
                    });
                }
                (lead, trail) = (l, bits - l - len);
            } else if lead == u32::MAX {
                return Err(BlockError::Invalid {
                    offset: b.offset(),
                    what: "Gorilla value (reuses a window before any)",
                });
            }
            prev ^= b.get(bits - lead - trail, W)? << trail;
        }
        v.push(prev);
    }
    if b.trailing_bytes() > 0 {
        return Err(BlockError::Trailing {
            offset: b.offset(),
            extra: b.trailing_bytes(),
            what: W,
        });
    }
    Ok(v)
}
