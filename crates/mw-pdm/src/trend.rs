//! Degradation-trend extrapolation for one health indicator (e.g. a bearing's vibration RMS): fit a line to the
//! indicator, or to its logarithm (exponential growth), over a sliding window; extrapolate to the failure
//! threshold. No training data needed — meant for live assets without run-to-failure history.

use std::collections::VecDeque;

use crate::model::Prediction;

/// Online RUL by trend extrapolation over the last `window` samples. Memory: `2 × window` floats.
///
/// Both a linear and an exponential trend (the latter on `value − baseline`, only while every value and the
/// threshold are above the baseline, see [`TrendRul::with_baseline`]) are
/// fitted by least squares; the one with the smaller squared error in the indicator's own units is used. The
/// point estimate is where the fitted trend meets the threshold. The band combines the standard errors of the
/// fitted current level and slope: the lower bound is where a trend `z` standard errors higher and steeper meets
/// the threshold, the upper bound where one `z` standard errors lower and flatter does (infinite when that trend
/// does not rise at all). With `z = 1.2816` (default) each side is a one-sided 90 % bound under the model's
/// assumptions (straight trend in the window, independent noise) — real degradation that accelerates makes the
/// estimate optimistic, so keep the window short relative to the remaining life.
#[derive(Debug, Clone)]
pub struct TrendRul {
    threshold: f64,
    window: usize,
    z: f64,
    sign: f64,
    baseline: f64,
    only: Option<TrendKind>,
    t: VecDeque<f64>,
    v: VecDeque<f64>,
}

/// Which trend the last estimate used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrendKind {
    Linear,
    Exponential,
}

/// One fit of [`TrendRul::fit_trend`], times in the unit of the samples' times.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrendFit {
    /// Where the fitted trend reaches the threshold; infinite when it does not move towards it, 0 once the fitted
    /// level is there.
    pub rul: f64,
    /// Where a trend `z` standard errors higher and steeper reaches it (widened by the newest half-window's
    /// estimate); infinite when even that trend does not move towards the threshold.
    pub lower: f64,
    /// Where a trend `z` standard errors lower and flatter reaches it (widened likewise); infinite when that trend
    /// does not move towards the threshold.
    pub upper: f64,
    /// The slope in standard errors (its t statistic): how surely the indicator moves towards the threshold.
    pub slope_t: f64,
    /// The fitted slope (towards the threshold positive) per time unit, in the trend's space (the indicator's
    /// units for a linear trend, ln-units of `value − baseline` for an exponential one), and its standard error.
    pub slope: f64,
    pub slope_se: f64,
    pub kind: TrendKind,
}

struct Fit {
    /// Fitted level at the newest time, in the transformed space.
    level: f64,
    level_se: f64,
    slope: f64,
    slope_se: f64,
    sse: f64,
}

impl TrendRul {
    /// `threshold`: indicator value at failure (reached from below; see [`TrendRul::decreasing`]).
    /// `window`: samples kept (at least 3).
    pub fn new(threshold: f64, window: usize) -> TrendRul {
        let window = window.max(3);
        TrendRul {
            threshold,
            window,
            z: 1.2816,
            sign: 1.0,
            baseline: 0.0,
            only: None,
            t: VecDeque::with_capacity(window),
            v: VecDeque::with_capacity(window),
        }
    }

    /// For an indicator that falls towards its threshold (efficiency, insulation resistance).
    pub fn decreasing(mut self) -> TrendRul {
        self.sign = -1.0;
        self
    }

    /// The indicator's value on a healthy machine (e.g. vibration of a new bearing at this speed). The exponential
    /// trend is then fitted to `value − baseline`: degradation that grows exponentially on top of a constant floor
    /// is extrapolated much better than by an exponential through the raw values. Default 0.
    pub fn with_baseline(mut self, baseline: f64) -> TrendRul {
        if baseline.is_finite() {
            self.baseline = baseline;
        }
        self
    }

    /// Use only this trend instead of choosing by fit (e.g. `Exponential` with a baseline for wear that is known
    /// to accelerate: on a short noisy window a straight line can fit as well and extrapolate far too late).
    pub fn only(mut self, kind: TrendKind) -> TrendRul {
        self.only = Some(kind);
        self
    }

    /// Width of the band in standard errors (default 1.2816, i.e. one-sided 90 %).
    pub fn with_z(mut self, z: f64) -> TrendRul {
        self.z = if z.is_finite() { z.abs() } else { self.z };
        self
    }

    /// Samples the window holds when full.
    pub fn window(&self) -> usize {
        self.window
    }

    /// Time from the oldest to the newest sample held.
    pub fn span(&self) -> f64 {
        match (self.t.front(), self.t.back()) {
            (Some(a), Some(b)) => b - a,
            _ => 0.0,
        }
    }

    /// Samples currently held (≤ window).
    pub fn len(&self) -> usize {
        self.t.len()
    }

    /// True before the first accepted sample.
    pub fn is_empty(&self) -> bool {
        self.t.is_empty()
    }

    /// Forgets the history (after a repair or replacement).
    pub fn reset(&mut self) {
        self.t.clear();
        self.v.clear();
    }

    /// Adds a sample at time `t_s` (any unit; the RUL comes out in the same unit) and returns the RUL from `t_s`.
    ///
    /// `None` when: fewer than `min(window, 5)` samples are held; the sample was rejected (non-finite, or `t_s`
    /// not after the previous sample — it is then not stored); or the indicator is not moving towards the
    /// threshold (no finite estimate). Once the fitted level has reached the threshold the RUL is 0.
    pub fn update(&mut self, t_s: f64, value: f64) -> Option<Prediction> {
        self.estimate(t_s, value).map(|(p, _)| p)
    }

    /// Like [`TrendRul::update`], also telling which trend was used.
    pub fn estimate(&mut self, t_s: f64, value: f64) -> Option<(Prediction, TrendKind)> {
        let f = self.fit_trend(t_s, value)?;
        f.rul.is_finite().then_some((
            Prediction {
                rul: f.rul,
                lower: f.lower,
                upper: f.upper,
            },
            f.kind,
        ))
    }

    /// Time of the newest accepted sample.
    pub fn last_time(&self) -> Option<f64> {
        self.t.back().copied()
    }

    /// Adds a sample like [`TrendRul::update`] and returns the whole fit, also when the indicator is not moving
    /// towards the threshold (then `rul` is infinite). `None` only while fewer than `min(window, 5)` samples are
    /// held or when the sample is rejected.
    pub fn fit_trend(&mut self, t_s: f64, value: f64) -> Option<TrendFit> {
        if !t_s.is_finite() || !value.is_finite() || self.t.back().is_some_and(|&last| t_s <= last)
        {
            return None;
        }
        if self.t.len() == self.window {
            self.t.pop_front();
            self.v.pop_front();
        }
        self.t.push_back(t_s);
        self.v.push_back(value * self.sign);
        if self.t.len() < self.window.min(5) {
            return None;
        }
        let thr = self.threshold * self.sign;
        let b = self.baseline * self.sign;
        let exp_ok = thr > b && self.v.iter().all(|&v| v > b);
        let kind = match self.only {
            // The exponential cannot be fitted (a value at or below the baseline): nothing to extrapolate.
            Some(TrendKind::Exponential) if !exp_ok => return None,
            Some(k) => k,
            None if !exp_ok => TrendKind::Linear,
            None => {
                let lin = self.fit(TrendKind::Linear, 0, t_s);
                let ex = self.fit(TrendKind::Exponential, 0, t_s);
                if ex.sse < lin.sse {
                    TrendKind::Exponential
                } else {
                    TrendKind::Linear
                }
            }
        };
        let g = match kind {
            TrendKind::Linear => thr,
            TrendKind::Exponential => (thr - b).ln(),
        };
        let f = self.fit(kind, 0, t_s);
        let slope_t = if f.slope_se > 0.0 {
            f.slope / f.slope_se
        } else if f.slope > 0.0 {
            f64::INFINITY
        } else if f.slope < 0.0 {
            f64::NEG_INFINITY
        } else {
            0.0
        };
        if f.level >= g {
            return Some(TrendFit {
                rul: 0.0,
                lower: 0.0,
                upper: 0.0,
                slope_t,
                slope: f.slope,
                slope_se: f.slope_se,
                kind,
            });
        }
        let rul = if f.slope > 0.0 {
            (g - f.level) / f.slope
        } else {
            f64::INFINITY
        };
        let hi_level = f.level + self.z * f.level_se;
        let hi_slope = f.slope + self.z * f.slope_se;
        let mut lower = if hi_level >= g {
            0.0
        } else if hi_slope > 0.0 {
            (g - hi_level) / hi_slope
        } else {
            f64::INFINITY
        };
        let lo_slope = f.slope - self.z * f.slope_se;
        let mut upper = if lo_slope > 0.0 {
            (g - (f.level - self.z * f.level_se)) / lo_slope
        } else {
            f64::INFINITY
        };
        // Trend stability: the same fit on the newest half of the window. If degradation accelerates (or eases),
        // its estimate differs, and the band is widened to include it.
        let n = self.t.len();
        if n >= 10 {
            let h = self.fit(kind, n - n / 2, t_s);
            let half = if h.level >= g {
                0.0
            } else if h.slope > 0.0 {
                (g - h.level) / h.slope
            } else {
                f64::INFINITY
            };
            lower = lower.min(half);
            upper = upper.max(half);
        }
        Some(TrendFit {
            rul,
            lower: lower.min(rul),
            upper: upper.max(rul),
            slope_t,
            slope: f.slope,
            slope_se: f.slope_se,
            kind,
        })
    }

    /// Fits `kind` to the samples from index `skip` on, with time measured from `now`.
    fn fit(&self, kind: TrendKind, skip: usize, now: f64) -> Fit {
        let b = self.baseline * self.sign;
        let t = self.t.iter().skip(skip);
        let v = self.v.iter().skip(skip);
        match kind {
            TrendKind::Linear => fit(t, v.copied(), now, |x| x),
            TrendKind::Exponential => fit(t, v.map(|v| (v - b).ln()), now, |x| x.exp() + b),
        }
    }
}

/// Least squares y = level + slope·(t − now), with standard errors; `sse` is measured after `back` maps the
/// fitted values to the indicator's own units.
fn fit<'a>(
    t: impl Iterator<Item = &'a f64> + Clone,
    y: impl Iterator<Item = f64> + Clone,
    now: f64,
    back: impl Fn(f64) -> f64,
) -> Fit {
    let n = t.clone().count() as f64;
    let mt = t.clone().map(|t| t - now).sum::<f64>() / n;
    let my = y.clone().sum::<f64>() / n;
    let (mut stt, mut sty) = (0.0, 0.0);
    for (ti, yi) in t.clone().zip(y.clone()) {
        let dt = ti - now - mt;
        stt += dt * dt;
        sty += dt * (yi - my);
    }
    let slope = if stt > 0.0 { sty / stt } else { 0.0 };
    let level = my - slope * mt;
    let (mut rss, mut sse) = (0.0, 0.0);
    for (ti, yi) in t.zip(y) {
        let fitted = level + slope * (ti - now);
        rss += (yi - fitted).powi(2);
        sse += (back(yi) - back(fitted)).powi(2);
    }
    let s2 = if n > 2.0 { rss / (n - 2.0) } else { 0.0 };
    let slope_se = if stt > 0.0 { (s2 / stt).sqrt() } else { 0.0 };
    let level_se = (s2 * (1.0 / n + if stt > 0.0 { mt * mt / stt } else { 0.0 })).sqrt();
    Fit {
        level,
        level_se,
        slope,
        slope_se,
        sse,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn normal(rng: &mut Rng) -> f64 {
        // Irwin–Hall approximation: good enough for test noise.
        (0..12).map(|_| rng.uniform()).sum::<f64>() - 6.0
    }

    #[test]
    fn linear_degradation_rul_and_band() {
        // v = 1 + 0.01 t, threshold 3 → failure at t = 200.
        let mut rng = Rng::new(1, 2);
        let mut tr = TrendRul::new(3.0, 60);
        let mut last = None;
        for i in 0..=100 {
            let t = i as f64;
            if let Some(p) = tr.update(t, 1.0 + 0.01 * t + 0.02 * normal(&mut rng)) {
                last = Some((t, p));
            }
        }
        let (t, p) = last.unwrap();
        let truth = 200.0 - t;
        assert!((p.rul - truth).abs() < 10.0, "{p:?} vs {truth}");
        assert!(p.lower <= truth && truth <= p.upper, "{p:?} vs {truth}");
        assert!(p.lower < p.rul && p.rul < p.upper);
    }

    #[test]
    fn exponential_degradation_picks_exponential_trend() {
        // v = 0.5 e^{0.01 t} with 1 % noise, threshold 0.5 e² → failure at t = 200; estimate at t = 150.
        let mut covered = 0;
        for seed in 0..20 {
            let mut rng = Rng::new(seed, 4);
            let mut tr = TrendRul::new(0.5 * 2f64.exp(), 100);
            let mut last = None;
            for i in 0..=150 {
                let t = i as f64;
                let v = 0.5 * (0.01 * t).exp() * (1.0 + 0.01 * normal(&mut rng));
                last = tr.estimate(t, v);
            }
            let (p, kind) = last.unwrap();
            assert_eq!(kind, TrendKind::Exponential);
            assert!((p.rul - 50.0).abs() < 2.5, "{p:?}");
            covered += usize::from(p.lower <= 50.0 && 50.0 <= p.upper);
        }
        // Two one-sided 90 % bounds: about 80 % coverage expected.
        assert!(covered >= 14, "covered {covered}/20");
    }

    #[test]
    fn epoch_seconds_do_not_lose_precision() {
        let mut a = TrendRul::new(3.0, 20);
        let mut b = TrendRul::new(3.0, 20);
        let (mut pa, mut pb) = (None, None);
        for i in 0..50 {
            let v = 1.0 + 0.01 * i as f64 + 0.001 * ((i * 7) % 5) as f64;
            pa = a.update(i as f64, v);
            pb = b.update(1.7e9 + i as f64, v);
        }
        let (pa, pb) = (pa.unwrap(), pb.unwrap());
        assert!(
            (pa.rul - pb.rul).abs() < 1e-3 && (pa.upper - pb.upper).abs() < 1e-3,
            "{pa:?} {pb:?}"
        );
    }

    #[test]
    fn flat_or_improving_gives_no_estimate() {
        let mut tr = TrendRul::new(3.0, 20);
        for i in 0..40 {
            assert_eq!(tr.update(i as f64, 1.0), None);
        }
        let mut tr = TrendRul::new(3.0, 20);
        for i in 0..40 {
            assert_eq!(tr.update(i as f64, 2.0 - 0.01 * i as f64), None);
        }
        // Noise without a trend: any estimate must admit "never" (infinite upper bound) or be far out.
        let mut rng = Rng::new(5, 6);
        let mut tr = TrendRul::new(3.0, 50);
        for i in 0..200 {
            if let Some(p) = tr.update(i as f64, 1.0 + 0.05 * normal(&mut rng)) {
                assert!(p.upper.is_infinite() || p.rul > 500.0, "{i}: {p:?}");
            }
        }
    }

    #[test]
    fn past_threshold_is_zero_and_decreasing_indicators_work() {
        let mut tr = TrendRul::new(3.0, 10);
        let mut p = None;
        for i in 0..10 {
            p = tr.update(i as f64, 3.5 + 0.01 * i as f64);
        }
        assert_eq!(
            p,
            Some(Prediction {
                rul: 0.0,
                lower: 0.0,
                upper: 0.0
            })
        );
        // Efficiency falling from 0.9 by 0.001 per step to a 0.8 threshold: failure at step 100.
        let mut tr = TrendRul::new(0.8, 30).decreasing();
        let mut p = None;
        for i in 0..=40 {
            p = tr.update(i as f64, 0.9 - 0.001 * i as f64);
        }
        let p = p.unwrap();
        assert!((p.rul - 60.0).abs() < 1e-6, "{p:?}");
    }

    #[test]
    fn memory_is_bounded_and_bad_samples_are_skipped() {
        let mut tr = TrendRul::new(3.0, 25);
        for i in 0..10_000 {
            tr.update(i as f64, 1.0 + 1e-4 * i as f64);
        }
        assert_eq!(tr.len(), 25);
        assert_eq!(tr.update(5.0, 1.0), None); // time going backwards
        assert_eq!(tr.update(20_000.0, f64::NAN), None);
        assert_eq!(tr.len(), 25);
        assert!(tr.update(20_000.0, 2.0).is_some());
        tr.reset();
        assert!(tr.is_empty());
    }

    #[test]
    fn simulator_bearing_wear_is_tracked() {
        // Wear as in mw-sim (docs/simulator.md) at speed 1, valve open: dw/dt = r (1 + 4w),
        // vibration = 1.4 + 6w + 6w³ mm/s with noise 0.03 mm/s + 2 %; failure at w = 1.
        let r = 2.956e-6 * 40.0; // an active bearing_wear fault
        let w0 = 0.2;
        let w = |t: f64| ((1.0 + 4.0 * w0) * (4.0 * r * t).exp() - 1.0) / 4.0;
        let t_fail = (5.0 / (1.0 + 4.0 * w0)).ln() / (4.0 * r);
        let vib = |w: f64| 1.4 + 6.0 * w + 6.0 * w * w * w;
        let mut rng = Rng::new(7, 8);
        let mut tr = TrendRul::new(vib(1.0), 120)
            .with_baseline(vib(0.0))
            .only(TrendKind::Exponential);
        let (mut checked, mut covered, mut worst) = (0, 0, 0.0f64);
        let mut t = 0.0;
        while t < t_fail {
            let v = vib(w(t));
            let p = tr.update(t, v + (0.03 + 0.02 * v) * normal(&mut rng));
            let truth = t_fail - t;
            // Last 30 % of the life, while at least a minute is left.
            if truth < 0.3 * t_fail && truth > 60.0 {
                let p = p.unwrap();
                worst = worst.max((p.rul - truth).abs() / truth);
                covered += usize::from(p.lower <= truth && truth <= p.upper);
                checked += 1;
            }
            t += 1.0;
        }
        println!(
            "simulator wear: worst relative error {worst:.3}, band covered {covered}/{checked}"
        );
        // Measured (1 Hz, 120-sample window): worst 22.6 %, band covered 498/588 (85 %). The trend is not exactly
        // exponential; longer windows cut the noise but the band, which does not model that, then misses (docs/pdm.md).
        assert!(checked > 500);
        assert!(worst < 0.3, "worst relative error {worst}");
        assert!(
            covered * 10 >= checked * 7,
            "band covered {covered}/{checked}"
        );
    }
}
