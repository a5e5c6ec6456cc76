//! Shared helpers for the integration tests: a seeded PRNG and series builders.
#![allow(dead_code)]

use mw_analytics::Detector;

/// SplitMix64: tiny, seeded, good enough for test noise.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// Gaussian noise around `level` with standard deviation `sd`.
pub fn noise(seed: u64, n: usize, level: f64, sd: f64) -> Vec<f64> {
    let mut r = Rng::new(seed);
    (0..n).map(|_| level + sd * r.normal()).collect()
}

/// Runs a detector over univariate values, returning `(score, anomalous)` per row.
pub fn run_uni(det: &mut dyn Detector, xs: &[f64]) -> Vec<(f64, bool)> {
    xs.iter()
        .enumerate()
        .map(|(i, &x)| det.update(i as i64 * 1_000_000_000, &[x]))
        .map(|o| (o.score, o.anomalous))
        .collect()
}

/// Runs a detector over rows.
pub fn run_rows(det: &mut dyn Detector, rows: &[Vec<f64>]) -> Vec<(f64, bool)> {
    rows.iter()
        .enumerate()
        .map(|(i, r)| det.update(i as i64 * 1_000_000_000, r))
        .map(|o| (o.score, o.anomalous))
        .collect()
}

/// First alarm at or after `from`.
pub fn first_alarm(out: &[(f64, bool)], from: usize) -> Option<usize> {
    out.iter()
        .enumerate()
        .skip(from)
        .find(|(_, o)| o.1)
        .map(|(i, _)| i)
}

/// Number of alarmed rows in `range`.
pub fn alarms_in(out: &[(f64, bool)], range: std::ops::Range<usize>) -> usize {
    out[range].iter().filter(|o| o.1).count()
}
