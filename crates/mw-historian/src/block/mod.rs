//! Per-series column blocks: the compressed unit of a sealed segment.
//!
//! A block holds the points of one series — timestamps, values of one type, qualities — as three
//! columns, each encoded with its own codec. [`encode`] appends one self-describing block to a
//! buffer and returns its [`BlockStats`] (for the segment's block index, so aggregates can skip
//! decoding); [`decode`] is its exact inverse, bit for bit (NaN payloads, `-0.0`, subnormals).
//! The CRC over a block is the segment layer's business, not this module's.
//!
//! # Format (all integers little-endian)
//! ```text
//! version: u8 (= 1) | column type: u8 | count: u32
//! then three sections, timestamps, values, quality, each: codec id: u8 | len: u32 | len bytes
//! ```
//! Column types: 0 bool, 1 i64, 2 u64, 3 f64, 4 f32, 5 string. Codec ids: see [`Codec`].
//!
//! # Untrusted input
//! [`decode`] never panics and allocates at most in proportion to [`MAX_POINTS`]: a count above
//! it is rejected before anything is allocated, and every length is checked against the bytes
//! that are actually there. Errors name what is wrong and the byte offset in the block.

mod bits;
mod decimal;
mod gorilla;
mod ints;
mod pcodec;
mod raw;
mod strs;
mod ts;

use mw_model::Quality;

/// Most points one block may hold; a larger count is rejected by [`encode`] and [`decode`].
pub const MAX_POINTS: usize = 1 << 20;
/// Most bytes of string content (values and quality reasons) one block may decode to; a
/// dictionary or a run repeats a string, so this bounds what a small block can expand to.
pub const MAX_STRING_BYTES: usize = 64 << 20;

const VERSION: u8 = 1;

/// The values of one block, all of one type.
#[derive(Clone, Debug, PartialEq)]
pub enum Column {
    Bool(Vec<bool>),
    I64(Vec<i64>),
    U64(Vec<u64>),
    F64(Vec<f64>),
    F32(Vec<f32>),
    Str(Vec<String>),
}

impl Column {
    pub fn len(&self) -> usize {
        match self {
            Column::Bool(v) => v.len(),
            Column::I64(v) => v.len(),
            Column::U64(v) => v.len(),
            Column::F64(v) => v.len(),
            Column::F32(v) => v.len(),
            Column::Str(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn type_id(&self) -> u8 {
        match self {
            Column::Bool(_) => 0,
            Column::I64(_) => 1,
            Column::U64(_) => 2,
            Column::F64(_) => 3,
            Column::F32(_) => 4,
            Column::Str(_) => 5,
        }
    }

    /// Numeric view of point `i` ([`mw_model::Value::as_f64`] semantics); `None` for strings.
    fn num(&self, i: usize) -> Option<f64> {
        match self {
            Column::Bool(v) => Some(if v[i] { 1.0 } else { 0.0 }),
            Column::I64(v) => Some(v[i] as f64),
            Column::U64(v) => Some(v[i] as f64),
            Column::F64(v) => Some(v[i]),
            Column::F32(v) => Some(f64::from(v[i])),
            Column::Str(_) => None,
        }
    }
}

/// The points of one series in one block. `ts`, `values` and `quality` have the same length;
/// `ts` is sorted ascending (equal timestamps allowed).
#[derive(Clone, Debug, PartialEq)]
pub struct Points {
    pub ts: Vec<i64>,
    pub values: Column,
    pub quality: Vec<Quality>,
}

/// Aggregates over a block so queries can skip decoding.
///
/// The numeric view is [`mw_model::Value::as_f64`] (bool 0/1); for strings only `count`,
/// `t_min` and `t_max` are meaningful (`min`/`max`/`sum`/`first`/`last` are NaN). `min`, `max`,
/// `sum`, `first` and `last` are computed over the points with [`Quality::Good`] and a finite
/// numeric value (what queries aggregate); `good_count` counts those, `count` counts all points. With no such
/// point `min`/`max`/`first`/`last` are NaN and `sum` is 0. `t_min`/`t_max` span all points; an
/// empty block has `t_min = i64::MAX`, `t_max = i64::MIN`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockStats {
    pub count: u32,
    pub good_count: u32,
    pub t_min: i64,
    pub t_max: i64,
    pub min: f64,
    pub max: f64,
    pub sum: f64,
    pub first: f64,
    pub last: f64,
}

/// What is wrong with a block handed to [`encode`] or [`decode`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BlockError {
    #[error("column lengths differ: {ts} timestamps, {values} values, {quality} qualities")]
    LengthMismatch {
        ts: usize,
        values: usize,
        quality: usize,
    },
    #[error("timestamps not sorted: point {index} is earlier than point {}", index - 1)]
    Unsorted { index: usize },
    #[error("{count} points in one block (at most {MAX_POINTS})")]
    TooManyPoints { count: usize },
    #[error("block truncated at byte {offset}: {what} needs {need} more bytes")]
    Truncated {
        offset: usize,
        need: usize,
        what: &'static str,
    },
    #[error("block holds {bytes} bytes of strings (at most {MAX_STRING_BYTES}) at byte {offset}")]
    TooMuchText { offset: usize, bytes: usize },
    #[error("unsupported block version {version} at byte 0 (this build reads {VERSION})")]
    Version { version: u8 },
    #[error("unknown column type {id} at byte 1")]
    ColumnType { id: u8 },
    #[error("unknown {what} codec {id} at byte {offset}")]
    UnknownCodec {
        offset: usize,
        id: u8,
        what: &'static str,
    },
    #[error("invalid {what} at byte {offset}")]
    Invalid { offset: usize, what: &'static str },
    #[error("{what} section has {extra} unused bytes at byte {offset}")]
    Trailing {
        offset: usize,
        extra: usize,
        what: &'static str,
    },
}

/// A codec id, stored in front of each section. [`encode`] tries the candidates that apply to a
/// column and keeps the smallest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Codec {
    /// Fixed width (strings and reasons length-prefixed), any column ([`raw`]).
    Raw = 0,
    /// Timestamps: delta-of-delta in Gorilla's bit buckets ([`ts`]).
    DodBits = 1,
    /// Timestamps: delta-of-delta as zigzag varints ([`ts`]).
    DodVarint = 2,
    /// Integers: delta + zigzag + frame-of-reference bit-packing ([`ints`]).
    DeltaPack = 3,
    /// Booleans and quality: run lengths ([`ints`], [`strs`]).
    Rle = 4,
    /// f64 and f32: Gorilla XOR on the bit patterns ([`gorilla`]).
    Gorilla = 5,
    /// f64 and f32: decimal digits as scaled integers with exceptions ([`decimal`]).
    Decimal = 6,
    /// Strings: dictionary + bit-packed indices ([`strs`]).
    Dict = 7,
    /// Numbers: the `pco` crate's standalone format ([`pcodec`]).
    Pco = 8,
}

impl Codec {
    fn from_u8(id: u8) -> Option<Codec> {
        Some(match id {
            0 => Codec::Raw,
            1 => Codec::DodBits,
            2 => Codec::DodVarint,
            3 => Codec::DeltaPack,
            4 => Codec::Rle,
            5 => Codec::Gorilla,
            6 => Codec::Decimal,
            7 => Codec::Dict,
            8 => Codec::Pco,
            _ => return None,
        })
    }
}

/// The string bytes a decode may still materialize ([`MAX_STRING_BYTES`]).
pub(crate) struct Budget(usize);

impl Budget {
    pub(crate) fn take(&mut self, k: usize, offset: usize) -> Result<(), BlockError> {
        self.0 = self.0.checked_sub(k).ok_or(BlockError::TooMuchText {
            offset,
            bytes: MAX_STRING_BYTES.saturating_add(k),
        })?;
        Ok(())
    }
}

/// Which codec each section of a block uses and its size in bytes (for measurements).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub ts: (Codec, usize),
    pub values: (Codec, usize),
    pub quality: (Codec, usize),
}

/// Reads the header of the block at the start of `buf`: codecs and section sizes.
pub fn layout(buf: &[u8]) -> Result<Layout, BlockError> {
    let mut r = Reader::new(buf, 0);
    r.bytes(6, "block header")?;
    let (a, s1) = r.section("timestamp")?;
    let (b, s2) = r.section("value")?;
    let (c, s3) = r.section("quality")?;
    Ok(Layout {
        ts: (a, s1.remaining()),
        values: (b, s2.remaining()),
        quality: (c, s3.remaining()),
    })
}

/// Restricts [`encode_with`] to some value codecs (for evaluating them one by one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Only {
    /// Every candidate, keep the smallest (what [`encode`] does).
    #[default]
    Best,
    /// Every candidate but [`Codec::Pco`], about three times slower to encode than the others.
    Fast,
    /// This value codec (or raw where it does not apply).
    Values(Codec),
}

/// Computes the aggregates of `points` (see [`BlockStats`]).
pub fn stats(points: &Points) -> BlockStats {
    let n = points
        .ts
        .len()
        .min(points.values.len())
        .min(points.quality.len());
    let mut s = BlockStats {
        count: points.ts.len() as u32,
        good_count: 0,
        t_min: points.ts.first().copied().unwrap_or(i64::MAX),
        t_max: points.ts.last().copied().unwrap_or(i64::MIN),
        min: f64::NAN,
        max: f64::NAN,
        sum: 0.0,
        first: f64::NAN,
        last: f64::NAN,
    };
    if matches!(points.values, Column::Str(_)) {
        s.sum = f64::NAN;
        return s;
    }
    for i in 0..n {
        if points.quality[i] != Quality::Good {
            continue;
        }
        let Some(v) = points.values.num(i).filter(|v| v.is_finite()) else {
            continue;
        };
        if s.good_count == 0 {
            s.min = v;
            s.max = v;
            s.first = v;
        } else {
            s.min = s.min.min(v);
            s.max = s.max.max(v);
        }
        s.last = v;
        s.sum += v;
        s.good_count += 1;
    }
    s
}

/// Checks `points` and appends one block to `out`; returns the block's aggregates. On error
/// nothing is appended.
pub fn encode(points: &Points, out: &mut Vec<u8>) -> Result<BlockStats, BlockError> {
    encode_with(points, Only::Best, out)
}

/// [`encode`] with a choice of value codec.
pub fn encode_with(
    points: &Points,
    only: Only,
    out: &mut Vec<u8>,
) -> Result<BlockStats, BlockError> {
    let n = points.ts.len();
    if points.values.len() != n || points.quality.len() != n {
        return Err(BlockError::LengthMismatch {
            ts: n,
            values: points.values.len(),
            quality: points.quality.len(),
        });
    }
    if n > MAX_POINTS {
        return Err(BlockError::TooManyPoints { count: n });
    }
    if let Some(i) = points.ts.windows(2).position(|w| w[1] < w[0]) {
        return Err(BlockError::Unsorted { index: i + 1 });
    }
    let text = points
        .quality
        .iter()
        .map(|q| q.reason().map_or(0, str::len))
        .sum::<usize>()
        + match &points.values {
            Column::Str(v) => v.iter().map(String::len).sum(),
            _ => 0,
        };
    if text > MAX_STRING_BYTES {
        return Err(BlockError::TooMuchText {
            offset: 0,
            bytes: text,
        });
    }
    out.push(VERSION);
    out.push(points.values.type_id());
    out.extend_from_slice(&(n as u32).to_le_bytes());
    let ts = &points.ts;
    smallest(
        out,
        &mut [
            &mut |b: &mut Vec<u8>| {
                ts::put_bits(ts, b);
                Some(Codec::DodBits)
            },
            &mut |b: &mut Vec<u8>| {
                ts::put_varints(ts, b);
                Some(Codec::DodVarint)
            },
            &mut |b: &mut Vec<u8>| {
                raw::put_ts(ts, b);
                Some(Codec::Raw)
            },
        ],
    );
    put_values(&points.values, only, out);
    let q = &points.quality;
    smallest(
        out,
        &mut [
            &mut |b: &mut Vec<u8>| {
                strs::put_quality_rle(q, b);
                Some(Codec::Rle)
            },
            &mut |b: &mut Vec<u8>| {
                raw::put_quality(q, b);
                Some(Codec::Raw)
            },
        ],
    );
    Ok(stats(points))
}

type Candidate<'a> = &'a mut dyn FnMut(&mut Vec<u8>) -> Option<Codec>;

/// Appends the smallest of the candidates as one section (the first wins a tie). A candidate
/// returns `None` when it does not apply.
fn smallest(out: &mut Vec<u8>, candidates: &mut [Candidate<'_>]) {
    let mut best: Option<(Codec, Vec<u8>)> = None;
    let mut scratch = Vec::new();
    for c in candidates.iter_mut() {
        scratch.clear();
        if let Some(codec) = c(&mut scratch)
            && best.as_ref().is_none_or(|(_, b)| scratch.len() < b.len())
        {
            best = Some((codec, std::mem::take(&mut scratch)));
        }
    }
    let (codec, bytes) = best.unwrap_or((Codec::Raw, Vec::new()));
    out.push(codec as u8);
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(&bytes);
}

fn put_values(c: &Column, only: Only, out: &mut Vec<u8>) {
    let want = |codec: Codec| match only {
        Only::Best => true,
        Only::Fast => codec != Codec::Pco,
        Only::Values(c) => c == codec,
    };
    let pco = &mut |b: &mut Vec<u8>| {
        want(Codec::Pco).then_some(())?;
        match c {
            Column::I64(v) => pcodec::put(v, b),
            Column::U64(v) => pcodec::put(v, b),
            Column::F64(v) => pcodec::put(v, b),
            Column::F32(v) => pcodec::put(v, b),
            _ => None,
        }?;
        Some(Codec::Pco)
    };
    let raw_values = &mut |b: &mut Vec<u8>| {
        raw::put_values(c, b);
        Some(Codec::Raw)
    };
    match c {
        Column::Bool(v) => smallest(
            out,
            &mut [
                &mut |b: &mut Vec<u8>| {
                    want(Codec::Rle).then(|| ints::put_bool_rle(v, b))?;
                    Some(Codec::Rle)
                },
                raw_values,
            ],
        ),
        Column::I64(_) | Column::U64(_) => {
            let bits: Vec<u64> = match c {
                Column::I64(v) => v.iter().map(|&x| x as u64).collect(),
                Column::U64(v) => v.clone(),
                _ => Vec::new(),
            };
            smallest(
                out,
                &mut [
                    &mut |b: &mut Vec<u8>| {
                        want(Codec::DeltaPack).then(|| ints::put_delta(bits.iter().copied(), b))?;
                        Some(Codec::DeltaPack)
                    },
                    pco,
                    raw_values,
                ],
            )
        }
        Column::F64(_) | Column::F32(_) => {
            let (bits, width): (Vec<u64>, u32) = match c {
                Column::F64(v) => (v.iter().map(|x| x.to_bits()).collect(), 64),
                Column::F32(v) => (v.iter().map(|x| u64::from(x.to_bits())).collect(), 32),
                _ => (Vec::new(), 64),
            };
            smallest(
                out,
                &mut [
                    &mut |b: &mut Vec<u8>| {
                        want(Codec::Decimal).then(|| decimal::put(&bits, width == 32, b))??;
                        Some(Codec::Decimal)
                    },
                    &mut |b: &mut Vec<u8>| {
                        want(Codec::Gorilla)
                            .then(|| gorilla::put(bits.iter().copied(), width, b))?;
                        Some(Codec::Gorilla)
                    },
                    pco,
                    raw_values,
                ],
            )
        }
        Column::Str(v) => smallest(
            out,
            &mut [
                &mut |b: &mut Vec<u8>| {
                    want(Codec::Dict).then(|| strs::put_dict(v, b))?;
                    Some(Codec::Dict)
                },
                raw_values,
            ],
        ),
    }
}

/// Decodes one block (the whole of `buf`).
pub fn decode(buf: &[u8]) -> Result<Points, BlockError> {
    let mut r = Reader::new(buf, 0);
    let version = r.u8("block version")?;
    if version != VERSION {
        return Err(BlockError::Version { version });
    }
    let ty = r.u8("column type")?;
    if ty > 5 {
        return Err(BlockError::ColumnType { id: ty });
    }
    let n = r.u32("point count")? as usize;
    if n > MAX_POINTS {
        return Err(BlockError::TooManyPoints { count: n });
    }
    let mut budget = Budget(MAX_STRING_BYTES);
    let (c, mut s) = r.section("timestamp")?;
    let at = s.offset() - 5;
    let ts = match c {
        Codec::Raw => raw::get_ts(&mut s, n)?,
        Codec::DodBits => ts::get_bits(&mut s, n)?,
        Codec::DodVarint => ts::get_varints(&mut s, n)?,
        _ => {
            return Err(BlockError::UnknownCodec {
                offset: at,
                id: c as u8,
                what: "timestamp",
            });
        }
    };
    s.finish("timestamp")?;
    let (c, mut s) = r.section("value")?;
    let at = s.offset() - 5;
    let values = match (c, ty) {
        (Codec::Raw, _) => raw::get_values(&mut s, ty, n)?,
        (Codec::Rle, 0) => Column::Bool(ints::get_bool_rle(&mut s, n)?),
        (Codec::DeltaPack, 1) => Column::I64(
            ints::get_delta(&mut s, n, "integers")?
                .into_iter()
                .map(|x| x as i64)
                .collect(),
        ),
        (Codec::DeltaPack, 2) => Column::U64(ints::get_delta(&mut s, n, "integers")?),
        (Codec::Gorilla, 3) => Column::F64(
            gorilla::get(&mut s, n, 64)?
                .into_iter()
                .map(f64::from_bits)
                .collect(),
        ),
        (Codec::Gorilla, 4) => Column::F32(
            gorilla::get(&mut s, n, 32)?
                .into_iter()
                .map(|x| f32::from_bits(x as u32))
                .collect(),
        ),
        (Codec::Decimal, 3) => Column::F64(
            decimal::get(&mut s, n, false)?
                .into_iter()
                .map(f64::from_bits)
                .collect(),
        ),
        (Codec::Decimal, 4) => Column::F32(
            decimal::get(&mut s, n, true)?
                .into_iter()
                .map(|x| f32::from_bits(x as u32))
                .collect(),
        ),
        (Codec::Pco, 1) => Column::I64(pcodec::get(&mut s, n)?),
        (Codec::Pco, 2) => Column::U64(pcodec::get(&mut s, n)?),
        (Codec::Pco, 3) => Column::F64(pcodec::get(&mut s, n)?),
        (Codec::Pco, 4) => Column::F32(pcodec::get(&mut s, n)?),
        (Codec::Dict, 5) => Column::Str(strs::get_dict(&mut s, n, &mut budget)?),
        _ => {
            return Err(BlockError::UnknownCodec {
                offset: at,
                id: c as u8,
                what: "value",
            });
        }
    };
    s.finish("value")?;
    let (c, mut s) = r.section("quality")?;
    let at = s.offset() - 5;
    let quality = match c {
        Codec::Raw => raw::get_quality(&mut s, n)?,
        Codec::Rle => strs::get_quality_rle(&mut s, n, &mut budget)?,
        _ => {
            return Err(BlockError::UnknownCodec {
                offset: at,
                id: c as u8,
                what: "quality",
            });
        }
    };
    s.finish("quality")?;
    r.finish("block")?;
    if let Some(i) = ts.windows(2).position(|w| w[1] < w[0]) {
        return Err(BlockError::Unsorted { index: i + 1 });
    }
    Ok(Points {
        ts,
        values,
        quality,
    })
}

/// A cursor over a block's bytes that knows its offset in the block, for error messages.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], base: usize) -> Reader<'a> {
        Reader { buf, pos: 0, base }
    }

    /// Offset in the block of the next byte.
    pub(crate) fn offset(&self) -> usize {
        self.base + self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn bytes(&mut self, k: usize, what: &'static str) -> Result<&'a [u8], BlockError> {
        if self.remaining() < k {
            return Err(BlockError::Truncated {
                offset: self.offset(),
                need: k - self.remaining(),
                what,
            });
        }
        let b = &self.buf[self.pos..self.pos + k];
        self.pos += k;
        Ok(b)
    }

    /// The rest of the bytes (not consumed).
    pub(crate) fn peek_rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// The rest of the bytes (consumed).
    pub(crate) fn take_rest(&mut self) -> &'a [u8] {
        let b = &self.buf[self.pos..];
        self.pos = self.buf.len();
        b
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, BlockError> {
        Ok(self.bytes(1, what)?[0])
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, BlockError> {
        let b = self.bytes(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, BlockError> {
        let b = self.bytes(8, what)?;
        let mut a = [0; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// Reads `k` bytes of UTF-8.
    pub(crate) fn str(&mut self, k: usize, what: &'static str) -> Result<String, BlockError> {
        let at = self.offset();
        let b = self.bytes(k, what)?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| BlockError::Invalid { offset: at, what })
    }

    /// Reads a section header and returns its codec and a reader over its bytes.
    fn section(&mut self, what: &'static str) -> Result<(Codec, Reader<'a>), BlockError> {
        let at = self.offset();
        let id = self.u8(what)?;
        let codec = Codec::from_u8(id).ok_or(BlockError::UnknownCodec {
            offset: at,
            id,
            what,
        })?;
        let len = self.u32(what)? as usize;
        let base = self.offset();
        let b = self.bytes(len, what)?;
        Ok((codec, Reader::new(b, base)))
    }

    pub(crate) fn finish(&self, what: &'static str) -> Result<(), BlockError> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(BlockError::Trailing {
                offset: self.offset(),
                extra,
                what,
            }),
        }
    }
}

#[cfg(test)]
mod tests;
