//! Bit-level writer and reader (most significant bit first) and the varint/zigzag helpers the
//! codecs share. The reader never panics: reading past the end is a [`BlockError::Truncated`]
//! naming the byte offset in the block.

use super::{BlockError, Reader};

pub(super) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub(super) fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Bits needed for `v` (0 for 0).
pub(super) fn width(v: u64) -> u32 {
    64 - v.leading_zeros()
}

pub(super) fn put_varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(super) fn get_varint(r: &mut Reader<'_>, what: &'static str) -> Result<u64, BlockError> {
    let at = r.offset();
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = r.u8(what)?;
        if shift == 63 && b > 1 {
            return Err(BlockError::Invalid { offset: at, what });
        }
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(BlockError::Invalid { offset: at, what })
}

/// A varint that must not exceed `max` (a count or a length).
pub(super) fn get_len(
    r: &mut Reader<'_>,
    max: usize,
    what: &'static str,
) -> Result<usize, BlockError> {
    let at = r.offset();
    let v = get_varint(r, what)?;
    if v > max as u64 {
        return Err(BlockError::Invalid { offset: at, what });
    }
    Ok(v as usize)
}

pub(super) struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    acc: u64,
    nbits: u32,
}

impl<'a> BitWriter<'a> {
    pub(super) fn new(out: &'a mut Vec<u8>) -> BitWriter<'a> {
        BitWriter {
            out,
            acc: 0,
            nbits: 0,
        }
    }

    /// Writes the low `n` bits of `v` (`n` ≤ 64).
    pub(super) fn put(&mut self, v: u64, n: u32) {
        if n == 0 {
            return;
        }
        if n > 32 {
            self.put(v >> 32, n - 32);
            self.put(v & 0xffff_ffff, 32);
            return;
        }
        let v = v & ((1u64 << n) - 1);
        self.acc = (self.acc << n) | v;
        self.nbits += n;
        while self.nbits >= 8 {
            self.nbits -= 8;
            self.out.push((self.acc >> self.nbits) as u8);
        }
        self.acc &= (1u64 << self.nbits) - 1;
    }

    pub(super) fn bit(&mut self, b: bool) {
        self.put(u64::from(b), 1);
    }

    /// Pads the last byte with zeros.
    pub(super) fn finish(mut self) {
        if self.nbits > 0 {
            let pad = 8 - self.nbits;
            self.put(0, pad);
        }
    }
}

pub(super) struct BitReader<'a> {
    buf: &'a [u8],
    base: usize,
    /// Position in bits.
    pos: usize,
}

impl<'a> BitReader<'a> {
    /// Reads the rest of `r` bit by bit.
    pub(super) fn new(r: &mut Reader<'a>) -> BitReader<'a> {
        let base = r.offset();
        BitReader {
            buf: r.take_rest(),
            base,
            pos: 0,
        }
    }

    /// Reads `n` bits (`n` ≤ 64).
    pub(super) fn get(&mut self, n: u32, what: &'static str) -> Result<u64, BlockError> {
        if n == 0 {
            return Ok(0);
        }
        let end = self.pos + n as usize;
        if end > self.buf.len() * 8 {
            return Err(BlockError::Truncated {
                offset: self.base + self.pos / 8,
                need: (end - self.buf.len() * 8).div_ceil(8),
                what,
            });
        }
        let mut v = 0u64;
        let mut left = n;
        while left > 0 {
            let byte = self.buf[self.pos / 8];
            let off = (self.pos % 8) as u32;
            let take = (8 - off).min(left);
            let bits = (u64::from(byte) >> (8 - off - take)) & ((1u64 << take) - 1);
            v = if take == 64 { bits } else { (v << take) | bits };
            left -= take;
            self.pos += take as usize;
        }
        Ok(v)
    }

    pub(super) fn bit(&mut self, what: &'static str) -> Result<bool, BlockError> {
        Ok(self.get(1, what)? == 1)
    }

    /// Bytes left, rounded up to whole bytes consumed (for `finish`).
    pub(super) fn trailing_bytes(&self) -> usize {
        self.buf.len() - self.pos.div_ceil(8)
    }

    pub(super) fn offset(&self) -> usize {
        self.base + self.pos.div_ceil(8)
    }
}
