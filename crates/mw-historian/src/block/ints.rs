//! Integer codecs: delta + zigzag + frame-of-reference bit-packing
//! ([`Codec::DeltaPack`](super::Codec::DeltaPack)), and run-length booleans
//! ([`Codec::Rle`](super::Codec::Rle)).
//!
//! `pack` writes frames of up to [`FRAME`] unsigned values: `min: varint | width: u8 | the values
//! minus min, width bits each, padded to a byte`. A constant run costs two bytes per frame.

use super::bits::{BitReader, BitWriter, get_len, get_varint, put_varint, unzigzag, width, zigzag};
use super::{BlockError, Reader};

pub(super) const FRAME: usize = 128;

pub(super) fn pack(v: &[u64], out: &mut Vec<u8>) {
    for f in v.chunks(FRAME) {
        let min = f.iter().copied().min().unwrap_or(0);
        let max = f.iter().copied().max().unwrap_or(0);
        let w = width(max - min);
        put_varint(min, out);
        out.push(w as u8);
        let mut bw = BitWriter::new(out);
        for x in f {
            bw.put(x - min, w);
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
        let w = u32::from(r.u8(what)?);
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
