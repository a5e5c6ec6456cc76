//! Univariate detectors: rolling median/MAD, EWMA, CUSUM, the seasonal baseline, the
//! stuck-sensor test, and the univariate `auto` detector (module [`auto`]).

mod auto;

pub(crate) use auto::auto;

use crate::Detector;
use crate::alarm::AlarmRule;
use crate::calibrate::ThresholdRule;
use crate::engine::{Calibration, Engine, Scorer, Verdict};
use crate::stats::{
    MAD_TO_SIGMA, RollingWindow, quantile_sorted, robust_center_scale, sorted_finite,
};

/// Lowest threshold of a z-like statistic (in robust σ): the quantile rule can only make
/// a detector *less* sensitive than 3σ.
const Z_FLOOR: f64 = 3.0;

/// Parameters of the rolling median/MAD detector (`mad`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MadConfig {
    /// Rows in the rolling window. Default 128.
    pub window: usize,
    /// How the threshold is derived from the warm-up.
    pub threshold: ThresholdRule,
    /// Persistence and hysteresis of the alarm.
    pub alarm: AlarmRule,
}

impl Default for MadConfig {
    fn default() -> Self {
        Self {
            window: 128,
            threshold: ThresholdRule::default(),
            alarm: AlarmRule::default(),
        }
    }
}

/// Parameters of the EWMA control chart (`ewma`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EwmaConfig {
    /// Smoothing weight of the newest value, in `(0, 1]`. Default 0.1.
    pub lambda: f64,
    /// Weight with which rows judged normal move the reference mean (0 = fixed reference,
    /// the classical chart). Default 0.
    pub adapt: f64,
    /// How the threshold is derived from the warm-up.
    pub threshold: ThresholdRule,
    /// Persistence and hysteresis of the alarm.
    pub alarm: AlarmRule,
}

impl Default for EwmaConfig {
    fn default() -> Self {
        Self {
            lambda: 0.1,
            adapt: 0.0,
            threshold: ThresholdRule::default(),
            alarm: AlarmRule::default(),
        }
    }
}

/// Parameters of the two-sided CUSUM (`cusum`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CusumConfig {
    /// Allowance in robust σ: shifts smaller than `k` are ignored. Default 0.5 (tuned to
    /// detect a 1σ shift).
    pub k: f64,
    /// The sums are capped at `cap × threshold` so that the alarm releases within
    /// `(cap − 1) · threshold / k` rows after a shift ends. Default 2.
    pub cap: f64,
    /// Weight with which rows judged normal move the reference mean (0 = fixed). Default 0.
    pub adapt: f64,
    /// How the threshold is derived from the warm-up.
    pub threshold: ThresholdRule,
    /// Persistence and hysteresis of the alarm.
    pub alarm: AlarmRule,
}

impl Default for CusumConfig {
    fn default() -> Self {
        Self {
            k: 0.5,
            cap: 2.0,
            adapt: 0.0,
            threshold: ThresholdRule::default(),
            alarm: AlarmRule::default(),
        }
    }
}

/// Parameters of the seasonal baseline (`seasonal`, and the baseline of univariate `auto`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeasonalConfig {
    /// Longest period searched, in rows (0 = half the warm-up, so at least two cycles are
    /// seen). Default 0.
    pub max_period: usize,
    /// Smallest autocorrelation at the period for the data to count as periodic. Default 0.3.
    pub min_acf: f64,
    /// The baseline of a phase is the median of its last `cycles` values. Default 3.
    pub cycles: usize,
    /// Rolling-median window used when no period is found (0 = the warm-up length).
    /// Default 0.
    pub fallback_window: usize,
    /// How the threshold is derived from the warm-up.
    pub threshold: ThresholdRule,
    /// Persistence and hysteresis of the alarm.
    pub alarm: AlarmRule,
}

impl Default for SeasonalConfig {
    fn default() -> Self {
        Self {
            max_period: 0,
            min_acf: 0.3,
            cycles: 3,
            fallback_window: 0,
            threshold: ThresholdRule::default(),
            alarm: AlarmRule::default(),
        }
    }
}

pub(crate) fn mad(cfg: MadConfig, warmup: usize) -> Box<dyn Detector> {
    let scorer = MadScorer {
        window: RollingWindow::new(cfg.window.max(8)),
        floor_scale: 1.0,
    };
    Box::new(Engine::new(
        "mad",
        1,
        warmup,
        cfg.threshold,
        cfg.alarm,
        scorer,
    ))
}

pub(crate) fn ewma(cfg: EwmaConfig, warmup: usize) -> Box<dyn Detector> {
    let lambda = if cfg.lambda > 0.0 && cfg.lambda <= 1.0 {
        cfg.lambda
    } else {
        0.1
    };
    let scorer = EwmaScorer {
        lambda,
        adapt: cfg.adapt.clamp(0.0, 1.0),
        center: 0.0,
        scale: 1.0,
        e: 0.0,
    };
    Box::new(Engine::new(
        "ewma",
        1,
        warmup,
        cfg.threshold,
        cfg.alarm,
        scorer,
    ))
}

pub(crate) fn cusum(cfg: CusumConfig, warmup: usize) -> Box<dyn Detector> {
    let scorer = CusumScorer::new(cfg.k, cfg.cap, cfg.adapt);
    Box::new(Engine::new(
        "cusum",
        1,
        warmup,
        cfg.threshold,
        cfg.alarm,
        scorer,
    ))
}

pub(crate) fn seasonal(cfg: SeasonalConfig, warmup: usize) -> Box<dyn Detector> {
    let scorer = ResidualScorer::new(cfg, warmup);
    Box::new(Engine::new(
        "seasonal",
        1,
        warmup,
        cfg.threshold,
        cfg.alarm,
        scorer,
    ))
}

// ---------------------------------------------------------------------------------------
// Rolling median / MAD

/// `|x − median| / (1.4826 · MAD)` over the previous `window` values. The scale is never
/// below half the warm-up's robust σ, so quantised signals (MAD = 0) do not explode.
struct MadScorer {
    window: RollingWindow,
    floor_scale: f64,
}

impl MadScorer {
    fn stat(&self, x: f64) -> f64 {
        let med = self.window.median();
        let scale = (self.window.mad_around(med) * MAD_TO_SIGMA).max(self.floor_scale);
        (x - med).abs() / scale
    }
}

impl Scorer for MadScorer {
    fn heads(&self) -> usize {
        1
    }

    fn fit(&mut self, rows: &[Vec<f64>]) -> Vec<Calibration> {
        let xs: Vec<f64> = rows.iter().map(|r| r[0]).collect();
        self.floor_scale = 0.5 * robust_center_scale(&xs).1;
        let min_fill = 16.min(xs.len() / 2);
        let mut cal = Vec::with_capacity(xs.len());
        for &x in &xs {
            if self.window.len() >= min_fill {
                cal.push(self.stat(x));
            }
            self.window.push(x);
        }
        vec![Calibration::from_stats(cal, Z_FLOOR)]
    }

    fn step(&mut self, row: &[f64], stats: &mut [f64]) {
        stats[0] = self.stat(row[0]);
        self.window.push(row[0]);
    }
}

// ---------------------------------------------------------------------------------------
// EWMA

struct EwmaScorer {
    lambda: f64,
    adapt: f64,
    center: f64,
    scale: f64,
    e: f64,
}

impl EwmaScorer {
    fn stat(&mut self, x: f64) -> f64 {
        self.e = self.lambda * x + (1.0 - self.lambda) * self.e;
        let sd = self.scale * (self.lambda / (2.0 - self.lambda)).sqrt();
        (self.e - self.center).abs() / sd
    }
}

impl Scorer for EwmaScorer {
    fn heads(&self) -> usize {
        1
    }

    fn fit(&mut self, rows: &[Vec<f64>]) -> Vec<Calibration> {
        let xs: Vec<f64> = rows.iter().map(|r| r[0]).collect();
        (self.center, self.scale) = robust_center_scale(&xs);
        self.e = self.center;
        let skip = ((1.0 / self.lambda).ceil() as usize).min(xs.len() / 2);
        let cal = xs
            .iter()
            .enumerate()
            .map(|(i, &x)| (i, self.stat(x)))
            .filter(|(i, _)| *i >= skip)
            .map(|(_, s)| s)
            .collect();
        vec![Calibration::from_stats(cal, Z_FLOOR)]
    }

    fn step(&mut self, row: &[f64], stats: &mut [f64]) {
        stats[0] = self.stat(row[0]);
    }

    fn feedback(&mut self, row: &[f64], verdict: Verdict) {
        if verdict.is_normal() && self.adapt > 0.0 {
            self.center += self.adapt * (row[0] - self.center);
        }
    }

    /// The average restarts at the reference.
    fn restart(&mut self, _missed: u64) {
        self.e = self.center;
    }
}

// ---------------------------------------------------------------------------------------
// CUSUM

/// Two-sided Page CUSUM on standardized values; sums are capped once thresholds are known.
#[derive(Debug, Clone)]
struct Cusum {
    k: f64,
    cap_factor: f64,
    cap: f64,
    hi: f64,
    lo: f64,
}

impl Cusum {
    fn new(k: f64, cap_factor: f64) -> Self {
        let k = if k.is_finite() && k >= 0.0 { k } else { 0.5 };
        let cap_factor = if cap_factor.is_finite() && cap_factor >= 1.0 {
            cap_factor
        } else {
            2.0
        };
        Self {
            k,
            cap_factor,
            cap: f64::INFINITY,
            hi: 0.0,
            lo: 0.0,
        }
    }

    fn step(&mut self, z: f64) -> f64 {
        self.hi = (self.hi + z - self.k).clamp(0.0, self.cap);
        self.lo = (self.lo - z - self.k).clamp(0.0, self.cap);
        self.hi.max(self.lo)
    }

    fn set_threshold(&mut self, thr: f64) {
        if thr.is_finite() {
            self.cap = self.cap_factor * thr;
        }
    }
}

struct CusumScorer {
    cusum: Cusum,
    adapt: f64,
    center: f64,
    scale: f64,
}

impl CusumScorer {
    fn new(k: f64, cap: f64, adapt: f64) -> Self {
        Self {
            cusum: Cusum::new(k, cap),
            adapt: adapt.clamp(0.0, 1.0),
            center: 0.0,
            scale: 1.0,
        }
    }
}

impl Scorer for CusumScorer {
    fn heads(&self) -> usize {
        1
    }

    fn fit(&mut self, rows: &[Vec<f64>]) -> Vec<Calibration> {
        let xs: Vec<f64> = rows.iter().map(|r| r[0]).collect();
        (self.center, self.scale) = robust_center_scale(&xs);
        let cal = xs
            .iter()
            .map(|x| self.cusum.step((x - self.center) / self.scale))
            .collect();
        vec![Calibration::from_stats(cal, 4.0)]
    }

    fn thresholds(&mut self, thresholds: &[f64]) {
        self.cusum.set_threshold(thresholds[0]);
    }

    fn step(&mut self, row: &[f64], stats: &mut [f64]) {
        stats[0] = self.cusum.step((row[0] - self.center) / self.scale);
    }

    fn feedback(&mut self, row: &[f64], verdict: Verdict) {
        if verdict.is_normal() && self.adapt > 0.0 {
            self.center += self.adapt * (row[0] - self.center);
        }
    }

    /// The sums restart at zero.
    fn restart(&mut self, _missed: u64) {
        self.cusum.hi = 0.0;
        self.cusum.lo = 0.0;
    }
}

// ---------------------------------------------------------------------------------------
// Seasonal baseline

/// Detects the dominant period of `xs` (after removing a linear trend) from its
/// autocorrelation: the first local maximum in `2..=max_period` whose autocorrelation is at
/// least `min_acf`, at least 90 % of the best such peak, and at least 0.2 above the lowest
/// autocorrelation at a shorter lag. `None` when the series is not periodic.
pub(crate) fn detect_period(xs: &[f64], max_period: usize, min_acf: f64) -> Option<usize> {
    let n = xs.len();
    let max_lag = max_period.min(n / 2);
    if max_lag < 3 {
        return None;
    }
    // Least-squares line through (i, x_i).
    let nf = n as f64;
    let mean_i = (nf - 1.0) / 2.0;
    let mean_x = xs.iter().sum::<f64>() / nf;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (i, x) in xs.iter().enumerate() {
        let di = i as f64 - mean_i;
        sxy += di * (x - mean_x);
        sxx += di * di;
    }
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    let r: Vec<f64> = xs
        .iter()
        .enumerate()
        .map(|(i, x)| x - mean_x - slope * (i as f64 - mean_i))
        .collect();
    let var: f64 = r.iter().map(|v| v * v).sum();
    if !var.is_finite() || var <= 0.0 {
        return None;
    }
    let acf: Vec<f64> = (0..=max_lag + 1)
        .map(|lag| {
            if lag >= n {
                0.0
            } else {
                r[..n - lag]
                    .iter()
                    .zip(&r[lag..])
                    .map(|(a, b)| a * b)
                    .sum::<f64>()
                    / var
            }
        })
        .collect();
    let mut peaks = Vec::new();
    let mut lowest = f64::INFINITY;
    for lag in 1..=max_lag {
        lowest = lowest.min(acf[lag - 1].min(acf[lag]));
        let is_peak = lag >= 2 && acf[lag] >= acf[lag - 1] && acf[lag] >= acf[lag + 1];
        if is_peak && acf[lag] >= min_acf && acf[lag] - lowest >= 0.2 {
            peaks.push((lag, acf[lag]));
        }
    }
    let best = peaks.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    peaks.into_iter().find(|p| p.1 >= 0.9 * best).map(|p| p.0)
}

/// The expected value of the next row: a per-phase median over the last cycles, or a
/// rolling median when the series is not periodic. Both forget: a lasting change becomes
/// the new baseline after about half their memory.
#[derive(Debug, Clone)]
enum Baseline {
    /// `values[phase · cycles ..][..cycles]` holds a phase's last `cycles` values (a ring,
    /// written at `round % cycles`); one flat allocation of `period · cycles` values.
    Seasonal {
        period: usize,
        cycles: usize,
        phase: usize,
        round: usize,
        values: Vec<f64>,
    },
    Rolling(RollingWindow),
}

impl Baseline {
    fn seasonal(period: usize, cycles: usize) -> Self {
        let (period, cycles) = (period.max(1), cycles.max(1));
        Baseline::Seasonal {
            period,
            cycles,
            phase: 0,
            round: 0,
            values: vec![0.0; period * cycles],
        }
    }

    /// Prediction for the next value, `None` until there is something to predict from.
    fn predict(&self) -> Option<f64> {
        match self {
            Baseline::Seasonal {
                cycles,
                phase,
                round,
                values,
                ..
            } => {
                let n = (*round).min(*cycles);
                if n == 0 {
                    return None;
                }
                let start = phase * cycles;
                let mut v = values.get(start..start + n)?.to_vec();
                v.sort_by(f64::total_cmp);
                Some(quantile_sorted(&v, 0.5))
            }
            Baseline::Rolling(w) => (w.len() > 0).then(|| w.median()),
        }
    }

    fn push(&mut self, x: f64) {
        match self {
            Baseline::Seasonal {
                period,
                cycles,
                phase,
                round,
                values,
            } => {
                if let Some(v) = values.get_mut(*phase * *cycles + *round % *cycles) {
                    *v = x;
                }
                *phase += 1;
                if *phase == *period {
                    *phase = 0;
                    *round += 1;
                }
            }
            Baseline::Rolling(w) => w.push(x),
        }
    }

    /// Moves the seasonal phase on by `ticks` that were not seen (a gap), so that the next
    /// value lands on the phase of its time; the values remembered stay. A rolling window
    /// keeps its values: the last level known is the best forecast after a gap.
    fn skip(&mut self, ticks: u64) {
        if let Baseline::Seasonal {
            period,
            phase,
            round,
            ..
        } = self
        {
            let p = *period as u64;
            let n = *phase as u64 + ticks % p.max(1);
            *round += usize::try_from(n / p.max(1)).unwrap_or(0);
            *phase = usize::try_from(n % p.max(1)).unwrap_or(0);
        }
    }

    /// Adds `d` to everything the baseline remembers (a level change taken as the new normal).
    fn shift(&mut self, d: f64) {
        match self {
            Baseline::Seasonal { values, .. } => values.iter_mut().for_each(|v| *v += d),
            Baseline::Rolling(w) => w.shift(d),
        }
    }

    fn period(&self) -> Option<usize> {
        match self {
            Baseline::Seasonal { period, .. } => Some(*period),
            Baseline::Rolling(_) => None,
        }
    }
}

/// Residual of a baseline: one head, `|r| / σ_r`.
struct ResidualScorer {
    cfg: SeasonalConfig,
    warmup: usize,
    baseline: Baseline,
    scale: f64,
}

impl ResidualScorer {
    fn new(cfg: SeasonalConfig, warmup: usize) -> Self {
        Self {
            cfg,
            warmup,
            baseline: Baseline::Rolling(RollingWindow::new(1)),
            scale: 1.0,
        }
    }

    fn fresh_baseline(&self, xs: &[f64]) -> Baseline {
        let max_period = if self.cfg.max_period == 0 {
            self.warmup / 2
        } else {
            self.cfg.max_period
        };
        match detect_period(xs, max_period, self.cfg.min_acf) {
            Some(p) => Baseline::seasonal(p, self.cfg.cycles),
            None => {
                let w = if self.cfg.fallback_window == 0 {
                    self.warmup
                } else {
                    self.cfg.fallback_window
                };
                Baseline::Rolling(RollingWindow::new(w.max(8)))
            }
        }
    }

    /// The statistic for `x` against the current state (`None` while the baseline cannot
    /// predict yet); then absorbs `x`.
    fn advance(&mut self, x: f64) -> Option<f64> {
        let resid = self.baseline.predict().map(|b| x - b);
        self.baseline.push(x);
        resid.map(|r| r.abs() / self.scale)
    }
}

impl Scorer for ResidualScorer {
    fn heads(&self) -> usize {
        1
    }

    fn fit(&mut self, rows: &[Vec<f64>]) -> Vec<Calibration> {
        let xs: Vec<f64> = rows.iter().map(|r| r[0]).collect();
        // Pass 1: residual scale from a replay.
        let mut probe = self.fresh_baseline(&xs);
        let skip = match probe.period() {
            Some(p) => p,
            None => 16.min(xs.len() / 4),
        };
        let mut resid = Vec::with_capacity(xs.len());
        for (i, &x) in xs.iter().enumerate() {
            if let Some(b) = probe.predict()
                && i >= skip
            {
                resid.push(x - b);
            }
            probe.push(x);
        }
        let sorted_abs = sorted_finite(&resid.iter().map(|r| r.abs()).collect::<Vec<_>>());
        let (_, s) = robust_center_scale(&resid);
        let mad0 = quantile_sorted(&sorted_abs, 0.5) * MAD_TO_SIGMA;
        self.scale = if mad0 > s { mad0 } else { s };

        // Pass 2: replay with the fitted scale to calibrate the head.
        self.baseline = self.fresh_baseline(&xs);
        let mut cal = Vec::with_capacity(xs.len());
        for (i, &x) in xs.iter().enumerate() {
            if let Some(z) = self.advance(x)
                && i >= skip
            {
                cal.push(z);
            }
        }
        vec![Calibration::from_stats(cal, Z_FLOOR)]
    }

    fn step(&mut self, row: &[f64], stats: &mut [f64]) {
        stats[0] = self.advance(row[0]).unwrap_or(0.0);
    }

    fn restart(&mut self, missed: u64) {
        self.baseline.skip(missed);
    }
}

// ---------------------------------------------------------------------------------------
// Stuck sensor

/// Stuck-sensor test, one head per variable: the length of the current run of identical
/// values. A variable takes part only if its longest run during warm-up was short (at most
/// `warmup / 10` rows); its threshold is then `2 · longest + 8` rows. Memory O(1) per
/// variable.
pub(crate) struct StuckScorer {
    last: Vec<f64>,
    run: Vec<usize>,
    enabled: Vec<bool>,
    /// The next row is a held tick ([`Scorer::held`]): it neither extends nor breaks a run.
    held: bool,
    /// Warm-up rows that were held ticks ([`Scorer::held_rows`]).
    warm_held: Vec<bool>,
}

impl StuckScorer {
    pub(crate) fn new(d: usize) -> Self {
        Self {
            last: vec![f64::NAN; d],
            run: vec![0; d],
            enabled: vec![false; d],
            held: false,
            warm_held: Vec::new(),
        }
    }

    fn observe(&mut self, row: &[f64]) {
        if self.held {
            return;
        }
        for (j, &x) in row.iter().enumerate().take(self.last.len()) {
            if x == self.last[j] {
                self.run[j] += 1;
            } else {
                self.run[j] = 1;
                self.last[j] = x;
            }
        }
    }
}

impl Scorer for StuckScorer {
    fn heads(&self) -> usize {
        self.last.len()
    }

    fn fit(&mut self, rows: &[Vec<f64>]) -> Vec<Calibration> {
        let d = self.last.len();
        let mut longest = vec![0usize; d];
        let warm_held = std::mem::take(&mut self.warm_held);
        for (i, r) in rows.iter().enumerate() {
            self.held = warm_held.get(i).copied().unwrap_or(false);
            self.observe(r);
            for (l, r) in longest.iter_mut().zip(&self.run) {
                *l = (*l).max(*r);
            }
        }
        self.held = false;
        let limit = (rows.len() / 10).max(2);
        (0..d)
            .map(|j| {
                self.enabled[j] = longest[j] <= limit;
                if self.enabled[j] {
                    Calibration::fixed((2 * longest[j] + 8) as f64)
                } else {
                    Calibration::fixed(f64::INFINITY)
                }
            })
            .collect()
    }

    fn held(&mut self, held: bool) {
        self.held = held;
    }

    fn held_rows(&mut self, held: &[bool]) {
        self.warm_held = held.to_vec();
    }

    /// A run does not continue across a gap.
    fn restart(&mut self, _missed: u64) {
        self.run.iter_mut().for_each(|r| *r = 0);
        self.last.iter_mut().for_each(|l| *l = f64::NAN);
    }

    fn step(&mut self, row: &[f64], stats: &mut [f64]) {
        self.observe(row);
        for (j, s) in stats.iter_mut().enumerate() {
            *s = if self.enabled[j] {
                self.run[j] as f64
            } else {
                0.0
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_the_period_of_a_noisy_sine() {
        let xs: Vec<f64> = (0..400)
            .map(|i| {
                (i as f64 * std::f64::consts::TAU / 24.0).sin()
                    + 0.2 * ((i * 7919 % 97) as f64 / 97.0 - 0.5)
            })
            .collect();
        assert_eq!(detect_period(&xs, 200, 0.3), Some(24));
    }

    #[test]
    fn no_period_in_a_trend_or_noise() {
        let trend: Vec<f64> = (0..400).map(|i| i as f64 * 0.01).collect();
        assert_eq!(detect_period(&trend, 200, 0.3), None);
        let mut s = 12345u64;
        let noise: Vec<f64> = (0..400)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s % 1000) as f64
            })
            .collect();
        assert_eq!(detect_period(&noise, 200, 0.3), None);
    }
}
