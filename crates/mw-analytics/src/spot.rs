//! Streaming peaks-over-threshold (SPOT, Siffer et al., KDD 2017) with a bounded memory.
//!
//! A statistic's upper tail beyond an initial threshold `t` (a high quantile of the warm-up
//! values) is modelled by a generalized Pareto distribution (GPD). The alarm threshold is
//! the GPD quantile whose exceedance probability per row is `risk`:
//! `z_q = t + σ/ξ · ((risk · n / N_t)^(−ξ) − 1)` (`ξ → 0`: `t − σ ln(risk · n / N_t)`),
//! with `n` rows observed and `N_t` of them above `t`. Values judged normal keep feeding the
//! tail, so the threshold follows the data (DSPOT's idea), but only the newest
//! [`MAX_PEAKS`] excesses are kept, so memory is constant and old regimes are forgotten.
//!
//! The GPD is fitted by the method of moments on running sums (`ξ = ½(1 − m²/v)` from the
//! mean `m` and variance `v` of the excesses, clipped to `[−0.5, 0.5]` and shrunk towards 0
//! with a pseudo-count of [`SHRINK`] excesses; `σ = m (1 − ξ)`): O(1) per refit, no
//! iterative MLE whose convergence would depend on the data, and a heavy-tailed statistic
//! cannot produce an unbounded threshold.

use std::collections::VecDeque;

use crate::stats::{quantile_sorted, sorted_finite};

/// Excesses kept per statistic.
pub(crate) const MAX_PEAKS: usize = 500;
/// Pseudo-count of excesses behind the prior ξ = 0.
const SHRINK: f64 = 10.0;
/// The threshold is refitted after this many new excesses.
const REFIT_EVERY: usize = 16;

/// One statistic's SPOT threshold. Memory: at most [`MAX_PEAKS`] `f64`s.
#[derive(Debug, Clone)]
pub(crate) struct Spot {
    /// Initial threshold `t` (the `init_quantile` of the warm-up values).
    t: f64,
    risk: f64,
    floor: f64,
    peaks: VecDeque<f64>,
    sum: f64,
    sum_sq: f64,
    /// Rows that the kept excesses stand for (scaled down when an excess is evicted, so
    /// that `peaks.len() / n` stays the observed exceedance rate).
    n: f64,
    since_refit: usize,
    zq: f64,
}

impl Spot {
    /// Fits the tail of `values` (the statistic on warm-up rows) beyond their
    /// `init_quantile`; the threshold is never below `floor`.
    pub(crate) fn new(values: &[f64], init_quantile: f64, risk: f64, floor: f64) -> Self {
        let sorted = sorted_finite(values);
        let t = quantile_sorted(&sorted, init_quantile);
        let t = if t.is_finite() && t > 0.0 { t } else { floor };
        let mut s = Self {
            t,
            risk,
            floor,
            peaks: VecDeque::with_capacity(MAX_PEAKS),
            sum: 0.0,
            sum_sq: 0.0,
            n: 0.0,
            since_refit: 0,
            zq: floor,
        };
        // In their order: when there are more than MAX_PEAKS excesses the newest are kept.
        for &v in values.iter().filter(|v| v.is_finite()) {
            s.push(v);
        }
        s.refit();
        s
    }

    /// The current alarm threshold.
    pub(crate) fn threshold(&self) -> f64 {
        self.zq
    }

    /// Feeds a value judged normal (callers skip rows in alarm).
    pub(crate) fn observe(&mut self, v: f64) {
        if !v.is_finite() {
            return;
        }
        if self.push(v) {
            self.since_refit += 1;
            if self.since_refit >= REFIT_EVERY {
                self.refit();
            }
        }
    }

    fn push(&mut self, v: f64) -> bool {
        self.n += 1.0;
        if v <= self.t {
            return false;
        }
        let e = v - self.t;
        if self.peaks.len() == MAX_PEAKS
            && let Some(old) = self.peaks.pop_front()
        {
            self.sum -= old;
            self.sum_sq -= old * old;
            self.n *= (MAX_PEAKS - 1) as f64 / MAX_PEAKS as f64;
        }
        self.peaks.push_back(e);
        self.sum += e;
        self.sum_sq += e * e;
        true
    }

    fn refit(&mut self) {
        self.since_refit = 0;
        // Re-sum to bound rounding drift (≤ MAX_PEAKS values, once per REFIT_EVERY excesses).
        self.sum = self.peaks.iter().sum();
        self.sum_sq = self.peaks.iter().map(|e| e * e).sum();
        let k = self.peaks.len();
        let zq = if k < 5 {
            // Too few excesses for a tail: the floor, or the largest excess seen.
            self.t + self.peaks.iter().copied().fold(0.0, f64::max)
        } else {
            let kf = k as f64;
            let m = self.sum / kf;
            let v = (self.sum_sq / kf - m * m).max(0.0);
            let (xi, sigma) = if v > 0.0 && m > 0.0 {
                // Shrunk towards ξ = 0 (an exponential tail, the Gumbel domain of Gaussian-
                // like statistics) while there are few excesses: with the eight excesses of
                // a 400-row warm-up the moment estimate of ξ is mostly noise.
                let xi = (0.5 * (1.0 - m * m / v)).clamp(-0.5, 0.5) * kf / (kf + SHRINK);
                // σ from the mean excess, E[e] = σ / (1 − ξ).
                (xi, m * (1.0 - xi))
            } else {
                (0.0, m.max(f64::MIN_POSITIVE))
            };
            let ratio = (self.risk * self.n.max(kf) / kf).min(1.0);
            if xi.abs() < 1e-6 {
                self.t - sigma * ratio.ln()
            } else {
                self.t + sigma / xi * (ratio.powf(-xi) - 1.0)
            }
        };
        self.zq = if zq.is_finite() && zq > self.floor {
            zq
        } else {
            self.floor
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exponential tail (GPD with ξ = 0): the quantile at risk q is −ln q; 400 excesses
    /// (no eviction) give it within 10 %.
    #[test]
    fn exponential_tail_gives_the_quantile() {
        let n = 20_000;
        let xs: Vec<f64> = (0..n)
            .map(|i| -((((i * 7919) % n) as f64 + 0.5) / n as f64).ln())
            .collect();
        let s = Spot::new(&xs, 0.98, 1e-4, 0.0);
        let want = -(1e-4_f64).ln();
        assert!(
            (s.threshold() - want).abs() < 0.1 * want,
            "{} vs {want}",
            s.threshold()
        );
    }

    #[test]
    fn threshold_never_below_the_floor_and_follows_new_data() {
        let xs: Vec<f64> = (0..1000).map(|i| (i % 10) as f64 * 0.1).collect();
        let mut s = Spot::new(&xs, 0.98, 1e-4, 3.0);
        assert_eq!(s.threshold(), 3.0);
        // A wider regime raises the threshold once its excesses fill the tail.
        for i in 0..20_000 {
            s.observe((i % 100) as f64 * 0.2);
        }
        assert!(s.threshold() > 19.0, "{}", s.threshold());
    }
}
