//! Throughput of the detectors (rows per second, single thread).
//!
//! `cargo run --release -p mw-analytics --example throughput [-- ROWS]`
//!
//! Feeds seeded noise (with a few level shifts so alarms happen) to every detector kind,
//! univariate and 8-variate, and a backtest of an in-memory 8-column CSV.

use std::time::Instant;

use mw_analytics::backtest::{self, BacktestOptions};
use mw_analytics::{DetectorKind, build};

struct Rng(u64);

impl Rng {
    fn normal(&mut self) -> f64 {
        let mut u = || {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        };
        let (a, b) = (u().max(1e-300), u());
        (-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos()
    }
}

fn rows(n: usize, d: usize) -> Vec<Vec<f64>> {
    let mut r = Rng(42);
    (0..n)
        .map(|i| {
            (0..d)
                .map(|j| j as f64 + r.normal() + if (i / 5000) % 7 == 6 { 4.0 } else { 0.0 })
                .collect()
        })
        .collect()
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    for d in [1usize, 8] {
        let data = rows(n, d);
        for kind in DetectorKind::ALL {
            let mut det = build(kind, d, None);
            let t0 = Instant::now();
            let mut alarms = 0u64;
            for (i, r) in data.iter().enumerate() {
                alarms += u64::from(det.update(i as i64, r).anomalous);
            }
            let secs = t0.elapsed().as_secs_f64();
            println!(
                "{d}-variate {kind:<9} {:>12.0} rows/s  ({n} rows, {alarms} alarmed)",
                n as f64 / secs
            );
        }
    }
    // End to end: CSV parse + auto (8 variables) + CSV write.
    let data = rows(n, 8);
    let mut csv = String::from("timestamp,a,b,c,d,e,f,g,h\n");
    for (i, r) in data.iter().enumerate() {
        csv.push_str(&(1_700_000_000 + i).to_string());
        for v in r {
            csv.push_str(&format!(",{v:.5}"));
        }
        csv.push('\n');
    }
    let t0 = Instant::now();
    let s = backtest::run(
        csv.as_bytes(),
        std::io::sink(),
        &BacktestOptions::default(),
        &mut |_, _| {},
    )
    .expect("backtest runs");
    println!(
        "backtest auto 8-variate {:>12.0} rows/s  ({} rows)",
        s.rows as f64 / t0.elapsed().as_secs_f64(),
        s.rows
    );
}
