//! Integer codecs: delta + zigzag + frame-of-reference bit-packing
//! ([`Codec::DeltaPack`](super::Codec::DeltaPack)), and run-length booleans
//! ([`Codec::Rle`](super::Codec::Rle)).
//!
//! `pack` writes frames of up to [`FRAME`] unsigned values: `min: varint | mode: u8 | the values
//! minus min, padded to a byte`, each frame in the smaller of two forms: mode ≤ 64 is that many
//! bits per value (frame of reference; a constant run costs two bytes per frame); mode `0x80 | k`
//! is Golomb-Rice with parameter `k` ≤ 63 (quotient in unary, `k` low bits; a quotient of
//! [`ESCAPE`] or more is written as `ESCAPE` ones and the value in 64 bits). Rice is within a
//! fraction of a bit of the entropy of the bell-shaped steps of a noisy sensor, where frame of
//! reference pays for the largest step of the frame on every value.

use super::bits::{BitReader, BitWriter, get_len, get_varint, put_varint, unzigzag, width, zigzag};
use super::{BlockError, Reader};

pub(super) const FRAME: usize = 128;

/// Longest unary quotient of a Rice code before the escape to 64 bits.
pub(super) const ESCAPE: u64 = 32;

fn rice_bits(x: u64, k: u32) -> u64 {
    let q = x >> k;
    if q >= ESCAPE {
        ESCAPE + 64
    } else {
        q + 1 + u64::from(k)
    }
}

pub(super) fn pack(v: &[u64], out: &mut Vec<u8>) {
    for f in v.chunks(FRAME) {
        let min = f.iter().copied().min().unwrap_or(0);
        let max = f.iter().copied().max().unwrap_or(0);
        let w = width(max - min);
        put_varint(min, out);
        // the best Rice parameter is near log2 of the mean; try around it
        let mean = f.iter().map(|x| u128::from(x - min)).sum::<u128>() / f.len().max(1) as u128;
        let guess = width(mean.min(u128::from(u64::MAX)) as u64).min(63);
        let rice = (guess.saturating_sub(2)..=(guess + 1).min(63))
            .map(|k| (f.iter().map(|&x| rice_bits(x - min, k)).sum::<u64>(), k))
            .min();
        let mut bw;
        match rice {
            Some((bits, k)) if bits < u64::from(w) * f.len() as u64 => {
                out.push(0x80 | k as u8);
                bw = BitWriter::new(out);
                for &x in f {
                    let x = x - min;
                    let q = x >> k;
                    if q >= ESCAPE {
                        bw.put(u64::MAX, ESCAPE as u32);
                        bw.put(x, 64);
                    } else {
                        // q ones then a zero (q < 32)
                        bw.put(((1u64 << q) - 1) << 1, q as u32 + 1);
                        bw.put(x, k);
                    }
                }
            }
            _ => {
                out.push(w as u8);
                bw = BitWriter::new(out);
                for x in f {
                    bw.put(x - min, w);
                }
            }
        }
        bw.finish();
    }
}

pub(super) fn unpack(
    r: &mut Reader<'_>,
    n: usize,
    what: &'static str,
) -> Result<Vec<u64>, BlockError> {
    // every frame takes at least two bytes
    let frames = n.div_ceil(FRAME);
    if r.remaining() < frames.saturating_mul(2) {
        return Err(BlockError::Truncated {
            offset: r.offset(),
            need: frames * 2 - r.remaining(),
            what,
        });
    }
    let mut v = Vec::with_capacity(n);
    while v.len() < n {
        let len = (n - v.len()).min(FRAME);
        let min = get_varint(r, what)?;
        let at = r.offset();
        let mode = u32::from(r.u8(what)?);
        if mode & 0x80 != 0 {
            let k = mode & 0x7f;
            if k > 63 {
                return Err(BlockError::Invalid {
                    offset: at,
                    what: "Rice parameter (above 63)",
                });
            }
            // a Rice frame runs to its last value; the next frame starts at the next byte
            let mut sub = Reader::new(r.peek_rest(), r.offset());
            let mut br = BitReader::new(&mut sub);
            for _ in 0..len {
                let mut q = 0;
                while q < ESCAPE && br.bit(what)? {
                    q += 1;
                }
                let x = if q == ESCAPE {
                    br.get(64, what)?
                } else {
                    (q << k) | br.get(k, what)?
                };
                v.push(min.wrapping_add(x));
            }
            let used = br.offset() - r.offset();
            r.bytes(used, what)?;
            continue;
        }
        let w = mode;
        if w > 64 {
            return Err(BlockError::Invalid {
                offset: at,
                what: "bit width (above 64)",
            });
        }
        let bytes = (len * w as usize).div_ceil(8);
        let mut sub = Reader::new(r.bytes(bytes, what)?, r.offset() - bytes);
        let mut br = BitReader::new(&mut sub);
        for _ in 0..len {
            v.push(min.wrapping_add(br.get(w, what)?));
        }
    }
    Ok(v)
}

/// Delta + zigzag of the bit patterns (wrapping), then [`pack`].
pub(super) fn put_delta(v: impl Iterator<Item = u64>, out: &mut Vec<u8>) {
    let mut prev = 0u64;
    let z: Vec<u64> = v
        .map(|x| {
            let d = zigzag(x.wrapping_sub(prev) as i64);
            prev = x;
            d
        })
        .collect();
    pack(&z, out);
}

pub(super) fn get_delta(
    r: &mut Reader<'_>,
    n: usize,
    what: &'static str,
) -> Result<Vec<u64>, BlockError> {
    let mut v = unpack(r, n, what)?;
    let mut prev = 0u64;
    for x in &mut v {
        prev = prev.wrapping_add(unzigzag(*x) as u64);
        *x = prev;
    }
    Ok(v)
}

/// Booleans as `first: u8 | runs: varint | run lengths: varint…`.
pub(super) fn put_bool_rle(v: &[bool], out: &mut Vec<u8>) {
    let runs = runs(v);
    out.push(v.first().map_or(0, |&b| u8::from(b)));
    put_varint(runs.len() as u64, out);
    for r in runs {
        put_varint(r as u64, out);
    }
}

/// Lengths of the runs of equal items.
pub(super) fn runs<T: PartialEq>(v: &[T]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let j = i + v[i..].iter().take_while(|x| **x == v[i]).count();
        out.push(j - i);
        i = j;
    }
    out
}

/// Reads `k` run lengths, each at least 1, adding up to `n`.
pub(super) fn get_runs(
    r: &mut Reader<'_>,
    n: usize,
    what: &'static str,
) -> Result<Vec<usize>, BlockError> {
    let k = get_len(r, n, what)?;
    let mut runs = Vec::with_capacity(k);
    let mut total = 0usize;
    for _ in 0..k {
        let at = r.offset();
        let len = get_len(r, n - total, what)?;
        if len == 0 {
            return Err(BlockError::Invalid {
                offset: at,
                what: "run length (zero)",
            });
        }
        total += len;
        runs.push(len);
    }
    if total != n {
        return Err(BlockError::Invalid {
            offset: r.offset(),
            what: "run lengths (do not add up to the point count)",
        });
    }
    Ok(runs)
}

pub(super) fn get_bool_rle(r: &mut Reader<'_>, n: usize) -> Result<Vec<bool>, BlockError> {
    const W: &str = "run-length booleans";
    let at = r.offset();
    let mut b = match r.u8(W)? {
        0 => false,
        1 => true,
        _ => {
            return Err(BlockError::Invalid {
                offset: at,
                what: "boolean (not 0 or 1)",
            });
        }
    };
    let mut v = Vec::with_capacity(n);
    for len in get_runs(r, n, W)? {
        v.extend(std::iter::repeat_n(b, len));
        b = !b;
    }
    Ok(v)
}
