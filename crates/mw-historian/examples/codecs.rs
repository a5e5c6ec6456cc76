//! Measures the block codecs on real data (`../shared/datasets/`: SKAB, C-MAPSS, NAB, Tennessee
//! Eastman) and on a TSBS-iot-like synthetic fleet: bytes per point per value codec (best pick,
//! Gorilla only, decimal only, raw), against `pco` on the same value columns, and encode/decode
//! throughput. Run with `bench/historian-codecs.sh` (release build).
//!
//!     cargo run --release -p mw-historian --example codecs -- [DATASETS_DIR] [BLOCK_POINTS]

use std::path::{Path, PathBuf};
use std::time::Instant;

use mw_historian::block::{self, Codec, Column, Only, Points};
use mw_model::Quality;

/// One series: timestamps (ns) and f64 values, as parsed from text.
struct Series {
    ts: Vec<i64>,
    v: Vec<f64>,
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) as ns since the epoch.
fn parse_time(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    if b.len() < 19 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.trim().get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    // days from civil (Howard Hinnant)
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400) + hh * 3600 + mm * 60 + ss) * 1_000_000_000)
}

fn csv_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            csv_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "csv") {
            out.push(p);
        }
    }
}

/// Every numeric column of every CSV file under `dir` (first column the timestamp).
fn timestamped_csv(dir: &Path, delim: u8, skip: &[&str]) -> Vec<Series> {
    let mut files = Vec::new();
    csv_files(dir, &mut files);
    let mut out = Vec::new();
    for f in files {
        let Ok(mut rd) = csv::ReaderBuilder::new().delimiter(delim).from_path(&f) else {
            continue;
        };
        let Ok(head) = rd.headers().cloned() else {
            continue;
        };
        let cols = head.len();
        let mut series: Vec<Series> = (1..cols)
            .map(|_| Series {
                ts: vec![],
                v: vec![],
            })
            .collect();
        for rec in rd.records().flatten() {
            let Some(t) = rec.get(0).and_then(parse_time) else {
                continue;
            };
            for c in 1..cols.min(rec.len()) {
                if let Ok(x) = rec[c].trim().parse::<f64>() {
                    series[c - 1].ts.push(t);
                    series[c - 1].v.push(x);
                }
            }
        }
        for (c, s) in series.into_iter().enumerate() {
            if !skip.contains(&&head[c + 1])
                && !s.v.is_empty()
                && s.ts.windows(2).all(|w| w[0] <= w[1])
            {
                out.push(s);
            }
        }
    }
    out
}

/// Whitespace tables: one series per column (or per row if `transposed`), `step` ns apart.
fn whitespace_table(text: &str, step: i64, transposed: bool) -> Vec<Vec<f64>> {
    let rows: Vec<Vec<f64>> = text
        .lines()
        .map(|l| {
            l.split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect()
        })
        .filter(|r: &Vec<f64>| !r.is_empty())
        .collect();
    let _ = step;
    if transposed {
        return rows;
    }
    let cols = rows.iter().map(Vec::len).min().unwrap_or(0);
    (0..cols)
        .map(|c| rows.iter().map(|r| r[c]).collect())
        .collect()
}

fn regular(v: Vec<f64>, start: i64, step: i64) -> Series {
    Series {
        ts: (0..v.len() as i64).map(|i| start + i * step).collect(),
        v,
    }
}

fn tep(dir: &Path) -> Vec<Series> {
    let mut out = Vec::new();
    for i in 0..=21 {
        let Ok(text) = std::fs::read_to_string(dir.join(format!("d{i:02}.dat"))) else {
            continue;
        };
        for col in whitespace_table(&text, 0, i == 0) {
            out.push(regular(col, 1_600_000_000_000_000_000, 180_000_000_000));
        }
    }
    out
}

/// C-MAPSS: one series per (unit, column), one cycle = 1 hour.
fn cmapss(file: &Path) -> Vec<Series> {
    let Ok(text) = std::fs::read_to_string(file) else {
        return vec![];
    };
    let rows: Vec<Vec<f64>> = text
        .lines()
        .map(|l| {
            l.split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect()
        })
        .filter(|r: &Vec<f64>| r.len() >= 26)
        .collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < rows.len() {
        let unit = rows[i][0];
        let j = i + rows[i..].iter().take_while(|r| r[0] == unit).count();
        for c in 2..26 {
            out.push(regular(
                rows[i..j].iter().map(|r| r[c]).collect(),
                1_600_000_000_000_000_000,
                3_600_000_000_000,
            ));
        }
        i = j;
    }
    out
}

/// A small deterministic generator (splitmix64), so the synthetic set is the same every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (a, b) = (self.unit().max(1e-12), self.unit());
        (-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos()
    }
}

fn round(v: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    // as a generator printing `digits` decimals and a parser reading them back would give
    format!("{:.*}", digits as usize, (v * p).round() / p)
        .parse()
        .unwrap_or(v)
}

/// TSBS-iot-like trucks: one day at 10 s, occasional gaps (≈0.5 % missing readings, a 10-minute
/// outage every few hours), clamped random walks with noise, rounded to the digits printed.
fn tsbs_iot(trucks: usize) -> Vec<Series> {
    let mut rng = Rng(42);
    // (name, start, step sigma, min, max, decimals)
    let fields: [(&str, f64, f64, f64, f64, i32); 7] = [
        ("latitude", 45.0, 0.0005, -90.0, 90.0, 5),
        ("longitude", 9.0, 0.0005, -180.0, 180.0, 5),
        ("elevation", 300.0, 2.0, 0.0, 5000.0, 0),
        ("velocity", 50.0, 1.5, 0.0, 100.0, 1),
        ("heading", 180.0, 5.0, 0.0, 360.0, 0),
        ("grade", 0.0, 0.3, -10.0, 10.0, 1),
        ("fuel_consumption", 25.0, 0.8, 0.0, 50.0, 1),
    ];
    let start = 1_767_225_600_000_000_000; // 2026-01-01
    let step = 10_000_000_000;
    let n = 8640;
    let mut out = Vec::new();
    for _ in 0..trucks {
        // the truck's reporting schedule, shared by its fields
        let mut ts = Vec::new();
        let mut outage = 0;
        for i in 0..n {
            if outage > 0 {
                outage -= 1;
                continue;
            }
            if rng.unit() < 0.0001 {
                outage = 60;
                continue;
            }
            if rng.unit() < 0.005 {
                continue;
            }
            ts.push(start + i * step);
        }
        for &(_, start, sigma, lo, hi, digits) in &fields {
            let mut x = start + rng.normal() * sigma * 10.0;
            let v = ts
                .iter()
                .map(|_| {
                    x = (x + rng.normal() * sigma).clamp(lo, hi);
                    round(x, digits)
                })
                .collect();
            out.push(Series { ts: ts.clone(), v });
        }
    }
    out
}

#[derive(Default)]
struct Tally {
    points: usize,
    best: usize,
    best_values: usize,
    fast: usize,
    fast_values: usize,
    fast_s: f64,
    gorilla: usize,
    decimal: usize,
    raw: usize,
    ts: usize,
    pco: usize,
    chosen: [usize; 9],
    enc_s: f64,
    dec_s: f64,
    pco_enc_s: f64,
}

/// Zeroth-order entropy of the first differences of each series' decimal integers (the
/// smallest exponent that makes all of them exact), summed over series: a floor for any
/// per-series codec that models steps as independent. NaN when a series is not decimal.
fn entropy(series: &[Series]) -> f64 {
    let mut bits = 0.0;
    let mut points = 0usize;
    for s in series {
        let Some(k) = (0..=12).find(|&k| {
            let p = 10f64.powi(k);
            s.v.iter()
                .all(|&v| ((v * p).round() / p).to_bits() == v.to_bits())
        }) else {
            return f64::NAN;
        };
        let p = 10f64.powi(k);
        let ints: Vec<i64> = s.v.iter().map(|&v| (v * p).round() as i64).collect();
        let mut counts = std::collections::HashMap::new();
        for w in ints.windows(2) {
            *counts.entry(w[1].wrapping_sub(w[0])).or_insert(0usize) += 1;
        }
        let m = ints.len().saturating_sub(1) as f64;
        bits += counts
            .values()
            .map(|&c| {
                let q = c as f64 / m;
                -(c as f64) * q.log2()
            })
            .sum::<f64>();
        points += s.v.len();
    }
    bits / 8.0 / points.max(1) as f64
}

fn measure(name: &str, series: &[Series], block_points: usize) {
    let mut t = Tally::default();
    let mut buf = Vec::new();
    for s in series {
        for (ts, v) in s.ts.chunks(block_points).zip(s.v.chunks(block_points)) {
            let p = Points {
                ts: ts.to_vec(),
                values: Column::F64(v.to_vec()),
                quality: vec![Quality::Good; ts.len()],
            };
            t.points += ts.len();
            buf.clear();
            let t0 = Instant::now();
            block::encode(&p, &mut buf).expect("encode");
            t.enc_s += t0.elapsed().as_secs_f64();
            let t0 = Instant::now();
            let back = block::decode(&buf).expect("decode");
            t.dec_s += t0.elapsed().as_secs_f64();
            assert_eq!(back.ts, p.ts);
            let l = block::layout(&buf).expect("layout");
            t.best += buf.len();
            t.best_values += l.values.1;
            t.ts += l.ts.1;
            t.chosen[l.values.0 as usize] += 1;
            buf.clear();
            let t0 = Instant::now();
            block::encode_with(&p, Only::Fast, &mut buf).expect("encode");
            t.fast_s += t0.elapsed().as_secs_f64();
            t.fast += buf.len();
            t.fast_values += block::layout(&buf).expect("layout").values.1;
            for (only, acc) in [
                (Codec::Gorilla, &mut t.gorilla),
                (Codec::Decimal, &mut t.decimal),
                (Codec::Raw, &mut t.raw),
            ] {
                buf.clear();
                block::encode_with(&p, Only::Values(only), &mut buf).expect("encode");
                *acc += block::layout(&buf).expect("layout").values.1;
            }
            let t0 = Instant::now();
            let c = pco::standalone::simple_compress(v, &pco::ChunkConfig::default()).expect("pco");
            t.pco_enc_s += t0.elapsed().as_secs_f64();
            let back: Vec<f64> = pco::standalone::simple_decompress(&c).expect("pco decode");
            assert!(back.iter().zip(v).all(|(a, b)| a.to_bits() == b.to_bits()));
            t.pco += c.len();
        }
    }
    let bp = |x: usize| x as f64 / t.points.max(1) as f64;
    let mb = |s: f64| (t.points * 16) as f64 / 1e6 / s.max(1e-9);
    let names = ["raw", "", "", "", "", "gorilla", "decimal", "", "pco"];
    let chosen: Vec<String> = t
        .chosen
        .iter()
        .enumerate()
        .filter(|&(_, &k)| k > 0)
        .map(|(i, k)| format!("{}:{k}", names[i]))
        .collect();
    println!(
        "| {name} | {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.1}× | {:.0} | {:.0} | {:.0} | {:.0} | {} |",
        series.len(),
        t.points,
        entropy(series),
        bp(t.best),
        bp(t.fast),
        bp(t.ts),
        bp(t.best_values),
        bp(t.fast_values),
        bp(t.gorilla),
        bp(t.decimal),
        bp(t.pco),
        bp(t.raw),
        16.0 / bp(t.best),
        mb(t.enc_s),
        mb(t.fast_s),
        mb(t.dec_s),
        mb(t.pco_enc_s),
        chosen.join(" "),
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = PathBuf::from(args.get(1).map_or("../shared/datasets", String::as_str));
    let block_points: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1024);
    if !dir.is_dir() {
        eprintln!(
            "{}: no datasets there; pass the datasets directory",
            dir.display()
        );
    }
    println!(
        "block of up to {block_points} points; bytes/point (B/pt): total block (ts + values + quality + headers), then per section; best = `encode` (all candidates incl. pco), fast = without pco; raw value = 8 B, raw point = 16 B; MB/s of 16 B/point input"
    );
    println!();
    println!(
        "| data | series | points | value entropy floor | total best | total fast | ts | values best | values fast | Gorilla only | decimal only | pco only | raw | 16 B / best | enc MB/s best | enc MB/s fast | dec MB/s | pco alone enc MB/s | best picks (blocks) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    measure(
        "SKAB (1 s)",
        &timestamped_csv(&dir.join("skab"), b';', &["anomaly", "changepoint"]),
        block_points,
    );
    measure(
        "C-MAPSS FD001 (per unit)",
        &cmapss(&dir.join("cmapss/train_FD001.txt")),
        block_points,
    );
    measure(
        "NAB (58 files)",
        &timestamped_csv(&dir.join("nab"), b',', &[]),
        block_points,
    );
    measure(
        "Tennessee Eastman (3 min)",
        &tep(&dir.join("tep")),
        block_points,
    );
    measure(
        "TSBS-iot-like, 100 trucks × 7 fields, 1 day @ 10 s",
        &tsbs_iot(100),
        block_points,
    );
}
