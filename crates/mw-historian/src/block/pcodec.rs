//! [`pco`](https://crates.io/crates/pco) for numeric columns ([`Codec::Pco`](super::Codec::Pco)):
//! its standalone format, f64/f32/i64/u64 natively (f32 stays 32-bit). On real sensor data it
//! is the smallest candidate on most blocks (docs/BENCHMARKS.md), at a third of the encoding
//! speed of the others, so [`super::Only::Fast`] leaves it out.
//!
//! Decoding writes into a buffer of exactly the block's point count, so what pco allocates for
//! the output is bounded by [`super::MAX_POINTS`]; a stream that does not fill it exactly, or
//! that pco rejects, is an error.

use pco::data_types::Number;

use super::{BlockError, Reader};

pub(super) fn put<T: Number>(v: &[T], out: &mut Vec<u8>) -> Option<()> {
    if v.is_empty() {
        return None;
    }
    let bytes = pco::standalone::simple_compress(v, &pco::ChunkConfig::default()).ok()?;
    out.extend_from_slice(&bytes);
    Some(())
}

pub(super) fn get<T: Number>(r: &mut Reader<'_>, n: usize) -> Result<Vec<T>, BlockError> {
    let at = r.offset();
    let src = r.take_rest();
    let mut v = vec![T::default(); n];
    let bad = BlockError::Invalid {
        offset: at,
        what: "pco stream",
    };
    match pco::standalone::simple_decompress_into(src, &mut v) {
        Ok(p) if p.finished && p.n_processed == n => Ok(v),
        _ => Err(bad),
    }
}
