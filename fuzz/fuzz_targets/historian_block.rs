//! `mw_historian::block::decode` on arbitrary bytes (never panics; what decodes is well formed and
//! re-encodes to a block that decodes to the same points), and encode → decode of points built
//! from the bytes (exact round trip, bit for bit).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mw_historian::block::{self, Column, Points};
use mw_model::Quality;

fn words(data: &[u8]) -> impl Iterator<Item = u64> + '_ {
    data.chunks(8).map(|c| {
        let mut a = [0u8; 8];
        a[..c.len()].copy_from_slice(c);
        u64::from_le_bytes(a)
    })
}

fn same(a: &Points, b: &Points) -> bool {
    let bits = match (&a.values, &b.values) {
        (Column::F64(x), Column::F64(y)) => x.iter().map(|v| v.to_bits()).eq(y.iter().map(|v| v.to_bits())),
        (Column::F32(x), Column::F32(y)) => x.iter().map(|v| v.to_bits()).eq(y.iter().map(|v| v.to_bits())),
        (x, y) => x == y,
    };
    bits && a.ts == b.ts && a.quality == b.quality
}

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = block::decode(data) {
        assert_eq!(p.ts.len(), p.values.len());
        assert_eq!(p.ts.len(), p.quality.len());
        let mut buf = Vec::new();
        block::encode(&p, &mut buf).expect("a decoded block encodes");
        assert!(same(&block::decode(&buf).expect("re-encoded block decodes"), &p));
    }
    // structured: byte 0 picks the column type and the quality pattern; the rest gives
    // timestamp steps (low byte scaled, so equal timestamps and huge deltas both occur) and values
    let Some((&sel, rest)) = data.split_first() else { return };
    let w: Vec<u64> = words(rest).collect();
    let mut t = i64::MIN.wrapping_add((w.first().copied().unwrap_or(0) >> 1) as i64);
    let ts: Vec<i64> = w
        .iter()
        .map(|&x| {
            let step = match x & 3 {
                0 => 0,
                1 => 10_000_000_000,
                2 => (x >> 40) as i64,
                _ => (x >> 2) as i64,
            };
            t = t.saturating_add(step);
            t
        })
        .collect();
    let n = ts.len();
    let values = match sel % 6 {
        0 => Column::Bool(w.iter().map(|x| x & 16 != 0).collect()),
        1 => Column::I64(w.iter().map(|&x| x as i64 >> (x & 63)).collect()),
        2 => Column::U64(w.clone()),
        3 => Column::F64(w.iter().map(|&x| if x & 4 == 0 { ((x >> 8) % 100_000) as f64 / 100.0 } else { f64::from_bits(x) }).collect()),
        4 => Column::F32(w.iter().map(|&x| f32::from_bits((x >> 16) as u32)).collect()),
        _ => Column::Str(w.iter().map(|&x| ["on", "off", "é", ""][(x >> 3) as usize % 4].repeat((x >> 5) as usize % 3)).collect()),
    };
    let quality = (0..n)
        .map(|i| match (sel / 6 + i as u8 / 7) % 3 {
            0 => Quality::Good,
            1 => Quality::Uncertain("warm-up".into()),
            _ => Quality::Bad(format!("timeout {}", sel % 3)),
        })
        .collect();
    let p = Points { ts, values, quality };
    let mut buf = Vec::new();
    block::encode(&p, &mut buf).expect("valid points encode");
    assert!(same(&block::decode(&buf).expect("encoded block decodes"), &p));
});
