//! The univariate `auto` detector: a forecasting residual with peaks-over-threshold
//! thresholds and event-shaped alarms (issue 14, "no standing alarms").
//!
//! docs/analytics.md ("Univariate `auto`") explains the choice against the other candidates
//! measured on NAB and lists its failure modes. In short, per row:
//!
//! 1. **Forecast.** A baseline predicts the row before seeing it: the per-phase median of
//!    the last [`CYCLES`] cycles when a period is found (in the warm-up, or once in the first
//!    [`LATE_PERIOD_ROWS`] rows after it), otherwise the median of the last [`LEVEL_ROWS`]
//!    rows. The residual `r = x − forecast` is divided by a robust scale that follows the
//!    data slowly (an exponentially weighted mean of `|r|` clipped at [`CLIP`] scales,
//!    weight [`SCALE_ALPHA`], frozen during an alarm).
//! 2. **Heads.** `point = |z|` catches spikes and sudden changes; `drift = |EWMA_λ(z)| /
//!    √(λ/(2−λ))`, with `z` winsorized at ±[`CLIP`], catches a sustained or accelerating
//!    departure that single rows do not show; `stuck` is the run length of identical values
//!    (as before).
//! 3. **Thresholds.** Each of `point` and `drift` has a [`Spot`] threshold: a generalized
//!    Pareto tail fitted to the warm-up beyond its 98th percentile, at an exceedance risk of
//!    [`POINT_RISK`] / [`DRIFT_RISK`] per row, refreshed with every row judged normal.
//! 4. **Events.** An alarm starts when a head crosses its threshold (times a *gate*, see
//!    below), holds while the largest ratio stays above [`HOLD`], and ends after
//!    [`RELEASE`] quiet rows — or at the latest after [`MAX_EVENT`] rows, when the detector
//!    takes the current state as the new normal (the seasonal memory is shifted by the
//!    recent median residual, the drift statistic is reset). After an event with peak ratio
//!    `P`, a new one needs `ratio ≥ max(1, P · e^(−Δ/GATE_DECAY))`, `Δ` rows after the end:
//!    the after-shocks of one event do not open new ones, a larger deviation does.
//!
//! Memory is bounded: warm-up rows (released after fitting), the late period search buffer
//! ([`LATE_PERIOD_ROWS`] values, released after the search), the baseline (at most
//! `CYCLES · period` or [`LEVEL_ROWS`] values), two tails of at most
//! [`spot::MAX_PEAKS`](crate::spot::MAX_PEAKS) excesses and [`LEVEL_ROWS`] recent residuals.

use std::collections::VecDeque;

use super::{Baseline, detect_period};
use crate::calibrate::ratio_to_score;
use crate::spot::Spot;
use crate::stats::{MAD_TO_SIGMA, RollingWindow, quantile_sorted, scale_floor, sorted_finite};
use crate::{Detector, Output};

/// Rows in the rolling-median level of a series without a period.
pub(crate) const LEVEL_ROWS: usize = 64;
/// Cycles per phase in the seasonal baseline.
pub(crate) const CYCLES: usize = 3;
/// Rows collected after the warm-up for one more period search (when the warm-up showed
/// none: a daily cycle of 5-minute data needs 576 rows to be seen twice).
pub(crate) const LATE_PERIOD_ROWS: usize = 2016;
/// Weight of a new residual in the scale.
pub(crate) const SCALE_ALPHA: f64 = 1.0 / 512.0;
/// Residuals are clipped at this many scales before they move the scale, and z at ±CLIP
/// before it enters the drift EWMA.
pub(crate) const CLIP: f64 = 3.0;
/// EWMA weight of the drift head.
pub(crate) const LAMBDA: f64 = 0.1;
/// Quantile of the warm-up statistics above which the tail is modelled.
pub(crate) const INIT_QUANTILE: f64 = 0.98;
/// Exceedance probability per row of the point head's threshold.
pub(crate) const POINT_RISK: f64 = 1e-5;
/// Exceedance probability per row of the drift head's threshold.
pub(crate) const DRIFT_RISK: f64 = 3e-5;
/// No threshold is below this many scales.
pub(crate) const FLOOR: f64 = 4.0;
/// An event holds while the largest ratio is at least this.
pub(crate) const HOLD: f64 = 0.6;
/// Quiet rows that end an event.
pub(crate) const RELEASE: u32 = 10;
/// Longest event, in rows; then the current state becomes the new normal.
pub(crate) const MAX_EVENT: u32 = 144;
/// Rows over which the gate left by an event decays by a factor e.
pub(crate) const GATE_DECAY: f64 = 288.0;

/// Builds the univariate `auto` detector.
pub(crate) fn auto(warmup: usize) -> Box<dyn Detector> {
    Box::new(AutoUni::new(warmup))
}

/// State after the warm-up.
struct Fitted {
    baseline: Baseline,
    /// Rows kept for the second period search (warm-up included); `None` once it is done
    /// or when the warm-up found a period.
    late: Option<Vec<f64>>,
    scale: f64,
    scale_floor: f64,
    point: Spot,
    drift: Spot,
    ewma: f64,
    recent: VecDeque<f64>,
    stuck_last: f64,
    stuck_run: usize,
    stuck_limit: Option<usize>,
    event: Event,
}

/// The alarm as an event.
#[derive(Debug, Clone, Copy, Default)]
struct Event {
    on: bool,
    rows: u32,
    quiet: u32,
    peak: f64,
    /// Peak of the last event and rows since it ended (for the gate).
    last_peak: f64,
    since_end: f64,
}

impl Event {
    /// Feeds one row's ratio; returns whether the alarm is on and whether the event just
    /// reached its longest duration (the caller re-baselines).
    fn step(&mut self, ratio: f64) -> (bool, bool) {
        let mut expired = false;
        if self.on {
            self.rows += 1;
            self.peak = self.peak.max(ratio);
            if ratio >= HOLD {
                self.quiet = 0;
            } else {
                self.quiet += 1;
            }
            expired = self.rows >= MAX_EVENT;
            if self.quiet >= RELEASE || expired {
                self.on = false;
                self.last_peak = self.peak;
                self.since_end = 0.0;
            }
        } else {
            self.since_end += 1.0;
            let gate = (self.last_peak * (-self.since_end / GATE_DECAY).exp()).max(1.0);
            if ratio >= gate {
                *self = Event {
                    on: true,
                    rows: 1,
                    quiet: 0,
                    peak: ratio,
                    ..*self
                };
            }
        }
        (self.on, expired)
    }
}

struct AutoUni {
    warmup: usize,
    warm: Vec<f64>,
    /// Which warm-up values were held ticks ([`Detector::hold`]).
    warm_held: Vec<bool>,
    fitted: Option<Box<Fitted>>,
    prev: Output,
}

const WARMING: Output = Output {
    score: 0.0,
    anomalous: false,
    warming_up: true,
};

/// Standard deviation of the EWMA of unit-variance independent values.
fn ewma_sd() -> f64 {
    (LAMBDA / (2.0 - LAMBDA)).sqrt()
}

/// σ of residuals from their sorted absolute values: from the median (robust), or from the
/// mean when over half of them are zero (quantised or mostly constant data); at least `floor`.
fn residual_scale(sorted_abs: &[f64], floor: f64) -> f64 {
    let mad = quantile_sorted(sorted_abs, 0.5) * MAD_TO_SIGMA;
    let mean_abs = sorted_abs.iter().sum::<f64>() / sorted_abs.len().max(1) as f64 * 1.253_314;
    let s = mad.max(mean_abs);
    if s.is_finite() && s > floor { s } else { floor }
}

fn make_baseline(xs: &[f64]) -> Option<Baseline> {
    detect_period(xs, xs.len() / 2, 0.3).map(|p| Baseline::seasonal(p, CYCLES))
}

impl AutoUni {
    fn new(warmup: usize) -> Self {
        Self {
            warmup: warmup.max(crate::MIN_WARMUP),
            warm: Vec::new(),
            warm_held: Vec::new(),
            fitted: None,
            prev: WARMING,
        }
    }

    /// `held[i]`: `xs[i]` was a held tick, no evidence of a stuck sensor.
    fn fit(xs: &[f64], held: &[bool]) -> Fitted {
        let seasonal = make_baseline(xs);
        let skip = seasonal
            .as_ref()
            .and_then(Baseline::period)
            .unwrap_or(16.min(xs.len() / 4));
        let mut baseline =
            seasonal.unwrap_or_else(|| Baseline::Rolling(RollingWindow::new(LEVEL_ROWS)));
        // Replay the warm-up through the baseline: out-of-sample residuals.
        // Held ticks keep the baseline in time but are no observations of the noise: they
        // are left out of the scale and the tails.
        let is_held = |i: usize| held.get(i).copied().unwrap_or(false);
        let mut resid = Vec::with_capacity(xs.len());
        let mut sent = Vec::with_capacity(xs.len());
        for (i, &x) in xs.iter().enumerate() {
            if let Some(b) = baseline.predict()
                && i >= skip
            {
                resid.push(x - b);
                sent.push(!is_held(i));
            }
            baseline.push(x);
        }
        let abs = sorted_finite(
            &resid
                .iter()
                .zip(&sent)
                .filter(|(_, s)| **s)
                .map(|(r, _)| r.abs())
                .collect::<Vec<_>>(),
        );
        let median_x = quantile_sorted(&sorted_finite(xs), 0.5);
        let floor = scale_floor(if median_x.is_finite() { median_x } else { 0.0 });
        let scale = residual_scale(&abs, floor);
        let z: Vec<f64> = resid
            .iter()
            .zip(&sent)
            .filter(|(_, s)| **s)
            .map(|(r, _)| r.abs() / scale)
            .collect();
        let mut e = 0.0;
        let mut ze = Vec::with_capacity(resid.len());
        for (i, r) in resid.iter().enumerate() {
            e = LAMBDA * (r / scale).clamp(-CLIP, CLIP) + (1.0 - LAMBDA) * e;
            if i as f64 >= 1.0 / LAMBDA && sent[i] {
                ze.push(e.abs() / ewma_sd());
            }
        }
        // Stuck-sensor head: on only if the warm-up's longest run of equal values was short.
        let (mut last, mut run, mut longest) = (f64::NAN, 0usize, 0usize);
        for (i, &x) in xs.iter().enumerate() {
            if held.get(i).copied().unwrap_or(false) {
                continue;
            }
            if x == last {
                run += 1;
            } else {
                run = 1;
                last = x;
            }
            longest = longest.max(run);
        }
        let stuck_limit = (longest <= (xs.len() / 10).max(2)).then_some(2 * longest + 8);
        let late = baseline.period().is_none().then(|| xs.to_vec());
        Fitted {
            baseline,
            late,
            scale,
            scale_floor: 0.1 * scale,
            point: Spot::new(&z, INIT_QUANTILE, POINT_RISK, FLOOR),
            drift: Spot::new(&ze, INIT_QUANTILE, DRIFT_RISK, FLOOR),
            ewma: e,
            recent: resid.iter().rev().take(LEVEL_ROWS).rev().copied().collect(),
            stuck_last: last,
            stuck_run: run,
            stuck_limit,
            event: Event::default(),
        }
    }
}

impl Fitted {
    /// After a gap of `missed` ticks: the seasonal phase moves on by `missed` (the next value
    /// is compared with its own phase) and a run of equal values restarts (a value that is
    /// the same on both sides of a gap is no evidence of a stuck sensor). The rolling level,
    /// the drift statistic, a running event, the scale and the thresholds carry on: the data
    /// on the far side of the gap is compared with what was known before it.
    fn restart(&mut self, missed: u64) {
        self.baseline.skip(missed);
        self.stuck_run = 0;
        self.stuck_last = f64::NAN;
    }

    /// `held`: a tick at which the source sent nothing ([`Detector::hold`]); it does not
    /// extend (or break) a run of equal values.
    fn step(&mut self, x: f64, held: bool) -> Output {
        let resid = self.baseline.predict().map_or(0.0, |b| x - b);
        let z = resid / self.scale;
        // Winsorized: one spike is the point head's business, not a drift.
        self.ewma = LAMBDA * z.clamp(-CLIP, CLIP) + (1.0 - LAMBDA) * self.ewma;
        let point = z.abs() / self.point.threshold();
        let ze = self.ewma.abs() / ewma_sd();
        let drift = ze / self.drift.threshold();
        if !held {
            if x == self.stuck_last {
                self.stuck_run += 1;
            } else {
                self.stuck_run = 1;
                self.stuck_last = x;
            }
        }
        let stuck = self
            .stuck_limit
            .map_or(0.0, |l| self.stuck_run as f64 / l as f64);
        let ratio = point.max(drift).max(stuck);
        let (on, expired) = self.event.step(ratio);
        if !on && ratio < 1.0 && !held {
            self.point.observe(z.abs());
            self.drift.observe(ze);
            self.scale +=
                SCALE_ALPHA * ((resid.abs().min(CLIP * self.scale) * 1.253_314) - self.scale);
            self.scale = self.scale.max(self.scale_floor);
        }
        if self.recent.len() == LEVEL_ROWS {
            self.recent.pop_front();
        }
        self.recent.push_back(resid);
        if expired {
            // The deviation lasted MAX_EVENT rows: it is the new normal.
            let sorted = sorted_finite(self.recent.make_contiguous());
            let shift = quantile_sorted(&sorted, 0.5);
            if shift.is_finite() {
                self.baseline.shift(shift);
                // …and so is its spread, if it is wider.
                let dev: Vec<f64> = sorted.iter().map(|r| (r - shift).abs()).collect();
                self.scale = self.scale.max(residual_scale(&sorted_finite(&dev), 0.0));
            }
            self.ewma = 0.0;
            self.recent.clear();
        }
        self.baseline.push(x);
        if let Some(buf) = &mut self.late {
            buf.push(x);
            if buf.len() >= LATE_PERIOD_ROWS {
                let buf = self.late.take().unwrap_or_default();
                if let Some(mut b) = make_baseline(&buf) {
                    // Refill the new baseline so that its phase continues with the next row.
                    for &v in &buf {
                        b.push(v);
                    }
                    self.baseline = b;
                }
            }
        }
        Output {
            score: ratio_to_score(ratio),
            anomalous: on,
            warming_up: false,
        }
    }
}

impl Detector for AutoUni {
    fn name(&self) -> &'static str {
        "auto"
    }

    fn n_vars(&self) -> usize {
        1
    }

    fn warmup(&self) -> usize {
        self.warmup
    }

    fn update(&mut self, _ts_ns: i64, values: &[f64]) -> Output {
        self.push(values, false)
    }

    fn hold(&mut self, _ts_ns: i64, values: &[f64]) -> Output {
        self.push(values, true)
    }

    fn restart(&mut self, missed: u64) {
        if let Some(f) = &mut self.fitted {
            f.restart(missed);
        }
    }
}

impl AutoUni {
    fn push(&mut self, values: &[f64], held: bool) -> Output {
        let x = values.first().copied().unwrap_or(f64::NAN);
        if !x.is_finite() {
            return self.prev;
        }
        self.prev = match &mut self.fitted {
            Some(f) => f.step(x, held),
            None => {
                self.warm.push(x);
                self.warm_held.push(held);
                if self.warm.len() >= self.warmup {
                    let xs = std::mem::take(&mut self.warm);
                    let held = std::mem::take(&mut self.warm_held);
                    self.fitted = Some(Box::new(AutoUni::fit(&xs, &held)));
                }
                WARMING
            }
        };
        self.prev
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_ends_after_release_quiet_rows_and_gates_its_aftershocks() {
        let mut e = Event::default();
        assert_eq!(e.step(5.0), (true, false));
        for _ in 0..RELEASE - 1 {
            assert!(e.step(0.1).0);
        }
        assert!(!e.step(0.1).0, "ends after RELEASE quiet rows");
        // An after-shock at 2× the threshold is below the gate (peak 5, decaying)…
        assert!(!e.step(2.0).0);
        // …a larger deviation opens a new event.
        assert!(e.step(6.0).0);
    }

    #[test]
    fn an_event_never_outlasts_max_event() {
        let mut e = Event::default();
        let mut rows = 0;
        for _ in 0..10 * MAX_EVENT {
            let (on, expired) = e.step(3.0);
            if on {
                rows += 1;
            }
            if expired {
                break;
            }
        }
        // The event ends on its MAX_EVENT-th row and says so, so that the detector takes the
        // deviation as the new normal (which brings the ratio down; see the tests in
        // tests/univariate_auto.rs).
        assert_eq!(rows, MAX_EVENT - 1);
    }
}
