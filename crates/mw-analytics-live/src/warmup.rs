//! The live warm-up gate: a detector is fitted only on a window of rows that looks stable, so a
//! fault during the warm-up does not become the normal.
//!
//! The gate keeps the latest `need` complete rows (the detector's warm-up length; a
//! multivariate row carries a missing variable's last value forward, a univariate row with no
//! value is skipped, as the detectors themselves do). Once the window is full it is checked
//! (then again every `need / 64` rows while it fails), and only a stable window is handed over
//! to a fresh detector, which is fitted on exactly those rows. An unstable window is kept
//! sliding, so the rows of a fault leave it as new ones arrive; the gate says which variable
//! moved and how many more rows are needed at least (until the latest offending row leaves
//! the window).
//!
//! A window is **unstable** when, for some variable, with the window cut into 8 consecutive
//! segments and σ the robust spread of the quietest segment (1.4826 × the smallest of the
//! segments' MADs, at least one quantisation step of the data — a fault that fills most of
//! the window, noisier than normal operation, must not widen its own yardstick):
//! * the segment medians span more than 24 σ (a level that changed inside the window: a
//!   release, a leak, a blocked valve); a straight trend without noise spans 18.9 σ with 8
//!   segments (each segment's own spread grows with the slope), so slow drifts and the
//!   plant's daily cycles pass, while a process that switches between levels (on/off
//!   cycling) within one window never does; or
//! * more than 1 % of the rows lie more than 12 σ from their segment's median (spikes or a
//!   short excursion: more than 1 % would move the 99th-percentile calibration of the
//!   thresholds).
//!
//! Memory: `need` rows of `n_vars` values, the same as the detector's own warm-up buffer,
//! released when the detector is fitted. A check costs O(need · n_vars · log need).

use std::collections::VecDeque;

/// Segments a window is cut into.
const SEGMENTS: usize = 8;
/// Robust standard deviations beyond which a row is exceptional.
const LIMIT_SIGMAS: f64 = 12.0;
/// Largest range of the segment levels, in robust standard deviations, a stable window may
/// show (a straight noise-free trend shows 18.9).
const RANGE_SIGMAS: f64 = 24.0;
/// Largest share of exceptional rows a stable window may hold.
const MAX_OUTLIER_SHARE: f64 = 0.01;

/// Why a full warm-up window was not accepted.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Instability {
    /// The variable (index in the row) that moved most.
    pub(crate) var: usize,
    /// How far it moved, in robust standard deviations.
    pub(crate) sigmas: f64,
    /// `true`: a segment's level moved; `false`: too many single rows beyond the limit.
    pub(crate) level: bool,
    /// Rows still to arrive before the latest offending row leaves the window.
    pub(crate) rows_left: usize,
}

impl Instability {
    /// Plain words for the API and the log, naming the variable by `name`.
    pub(crate) fn describe(&self, name: &str) -> String {
        if self.level {
            format!(
                "data unstable: {name} changed level by {:.0} σ within the warm-up window; \
                 waiting for a stable window",
                self.sigmas
            )
        } else {
            format!(
                "data unstable: more than 1 % of {name}'s warm-up rows lie beyond {LIMIT_SIGMAS:.0} σ; \
                 waiting for a stable window"
            )
        }
    }
}

/// The rows of a warm-up in progress; see the module documentation.
pub(crate) struct WarmupGate {
    need: usize,
    n_vars: usize,
    rows: VecDeque<(i64, Vec<f64>)>,
    last: Vec<f64>,
    have: Vec<bool>,
    /// Rows to accept before the next check of a full window.
    until_check: usize,
    unstable: Option<Instability>,
}

impl WarmupGate {
    pub(crate) fn new(need: usize, n_vars: usize) -> Self {
        let n_vars = n_vars.max(1);
        WarmupGate {
            need: need.max(SEGMENTS * 4),
            n_vars,
            rows: VecDeque::new(),
            last: vec![f64::NAN; n_vars],
            have: vec![false; n_vars],
            until_check: 0,
            unstable: None,
        }
    }

    /// Adds one row (non-finite = missing). Returns `true` once the window is full and stable:
    /// then [`WarmupGate::take`] hands the rows over.
    pub(crate) fn push(&mut self, ts_ns: i64, values: &[f64]) -> bool {
        let mut any = false;
        for j in 0..self.n_vars {
            let v = values.get(j).copied().unwrap_or(f64::NAN);
            if v.is_finite() {
                self.last[j] = v;
                self.have[j] = true;
                any = true;
            }
        }
        if !any || self.have.iter().any(|h| !h) {
            return false;
        }
        if self.rows.len() == self.need {
            self.rows.pop_front();
        }
        self.rows.push_back((ts_ns, self.last.clone()));
        if self.rows.len() < self.need {
            return false;
        }
        if self.until_check > 0 {
            self.until_check -= 1;
            if let Some(u) = &mut self.unstable {
                u.rows_left = u.rows_left.saturating_sub(1).max(1);
            }
            return false;
        }
        self.unstable = self.check();
        match &self.unstable {
            None => true,
            Some(_) => {
                self.until_check = (self.need / 64).max(1) - 1;
                false
            }
        }
    }

    /// The stable window, oldest first, to replay into a fresh detector.
    pub(crate) fn take(self) -> VecDeque<(i64, Vec<f64>)> {
        self.rows
    }

    /// Rows in the window.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    /// Rows the window holds when full.
    pub(crate) fn need(&self) -> usize {
        self.need
    }

    /// Why the latest check of the full window failed.
    pub(crate) fn unstable(&self) -> Option<&Instability> {
        self.unstable.as_ref()
    }

    /// Usable rows still needed at least before the warm-up can finish.
    pub(crate) fn rows_left(&self) -> usize {
        match &self.unstable {
            Some(u) => u.rows_left,
            None => self.need - self.rows.len().min(self.need),
        }
    }

    /// The window's mean interval between rows in seconds (`None` before two rows).
    pub(crate) fn interval_s(&self) -> Option<f64> {
        let (first, last) = (self.rows.front()?, self.rows.back()?);
        let n = self.rows.len();
        if n < 2 || last.0 <= first.0 {
            return None;
        }
        Some((last.0 - first.0) as f64 / 1e9 / (n - 1) as f64)
    }

    fn check(&self) -> Option<Instability> {
        let mut worst: Option<Instability> = None;
        let mut col = Vec::with_capacity(self.rows.len());
        for j in 0..self.n_vars {
            col.clear();
            col.extend(self.rows.iter().map(|(_, r)| r[j]));
            if let Some(u) = column_instability(&col, j)
                && worst.as_ref().is_none_or(|w| u.sigmas > w.sigmas)
            {
                worst = Some(u);
            }
        }
        worst
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// The instability of one variable's window (finite values), if any.
fn column_instability(x: &[f64], var: usize) -> Option<Instability> {
    let n = x.len();
    let m = n / SEGMENTS;
    if m < 2 {
        return None;
    }
    let bounds = |k: usize| (k * m, if k + 1 == SEGMENTS { n } else { (k + 1) * m });
    let mut buf = Vec::with_capacity(n - (SEGMENTS - 1) * m);
    let mut meds = [0.0; SEGMENTS];
    let mut mads = [0.0; SEGMENTS];
    for k in 0..SEGMENTS {
        let (a, b) = bounds(k);
        buf.clear();
        buf.extend_from_slice(&x[a..b]);
        let med = median(&mut buf);
        for v in buf.iter_mut() {
            *v = (*v - med).abs();
        }
        meds[k] = med;
        mads[k] = median(&mut buf);
    }
    // One quantisation step: the smallest change between consecutive rows.
    let step = x
        .windows(2)
        .map(|w| (w[1] - w[0]).abs())
        .filter(|d| *d > 0.0)
        .fold(f64::INFINITY, f64::min);
    if !step.is_finite() {
        return None; // constant: nothing moved
    }
    // The quietest segment's spread: a fault that fills most of the window (and is noisier
    // than normal operation) must not widen the yardstick it is measured with.
    let sigma = (1.4826 * mads.iter().copied().fold(f64::INFINITY, f64::min)).max(step);
    let (lo, hi) = meds
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| {
            (l.min(v), h.max(v))
        });
    let range_limit = RANGE_SIGMAS * sigma;
    if hi - lo > range_limit {
        // the latest segment whose level differs from a later one's must leave the window
        let rows_left = (0..SEGMENTS - 1)
            .rev()
            .find(|&k| {
                meds[k + 1..]
                    .iter()
                    .any(|&later| (later - meds[k]).abs() > range_limit)
            })
            .map_or(n, |k| bounds(k).1);
        return Some(Instability {
            var,
            sigmas: (hi - lo) / sigma,
            level: true,
            rows_left,
        });
    }
    let limit = LIMIT_SIGMAS * sigma;
    let mut outliers = 0usize;
    let mut last = 0usize;
    let mut far: f64 = 0.0;
    for (k, &med) in meds.iter().enumerate() {
        let (a, b) = bounds(k);
        for (i, &v) in x.iter().enumerate().take(b).skip(a) {
            let d = (v - med).abs();
            if d > limit {
                outliers += 1;
                last = i + 1;
                far = far.max(d / sigma);
            }
        }
    }
    if outliers as f64 > MAX_OUTLIER_SHARE * n as f64 {
        return Some(Instability {
            var,
            sigmas: far,
            level: false,
            rows_left: last,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(seed: &mut u64) -> f64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        (*seed % 10_000) as f64 / 10_000.0 - 0.5
    }

    /// Feeds `f(t)` for t = 0.. until the gate opens; returns the row index at which it did.
    fn opens_at(need: usize, limit: usize, f: impl Fn(usize, f64) -> f64) -> Option<usize> {
        let mut g = WarmupGate::new(need, 1);
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        (0..limit).find(|&t| {
            let x = f(t, noise(&mut seed));
            g.push(t as i64 * 1_000_000_000, &[x])
        })
    }

    #[test]
    fn clean_noise_and_a_slow_trend_open_as_soon_as_the_window_is_full() {
        assert_eq!(opens_at(400, 2000, |_, n| 1.0 + n), Some(399));
        // a trend of 50 noise-widths over the window, and a pure ramp without noise
        assert_eq!(opens_at(400, 2000, |t, n| t as f64 * 0.125 + n), Some(399));
        assert_eq!(opens_at(400, 2000, |t, _| t as f64), Some(399));
        // a quantised, slowly rising signal (one step every 50 rows)
        assert_eq!(opens_at(400, 2000, |t, _| (t / 50) as f64), Some(399));
    }

    #[test]
    fn a_release_inside_the_window_keeps_it_closed_until_the_release_has_left() {
        // gas at 0 ± 0.5, a release to 60 from row 180 to 300
        let gas = |t: usize, n: f64| if (180..300).contains(&t) { 60.0 } else { 0.0 } + n;
        let at = opens_at(400, 3000, gas).expect("opens once the release has left");
        assert!(
            (690..=710).contains(&at),
            "opens when row 299 has left a 400-row window: {at}"
        );
        let mut g = WarmupGate::new(400, 1);
        let mut seed = 7u64;
        for t in 0..420 {
            assert!(!g.push(t, &[gas(t as usize, noise(&mut seed))]));
        }
        let u = g.unstable().expect("unstable").clone();
        assert!(u.level && u.sigmas > 24.0, "{u:?}");
        assert!(g.rows_left() >= 250, "{}", g.rows_left());
        assert!(u.describe("gas").contains("gas changed level"));
    }

    #[test]
    fn a_noisy_release_filling_most_of_the_window_is_not_its_own_yardstick() {
        // the demo's case: the release starts 30 rows into the warm-up and lasts 240 rows, its
        // plume ten times noisier than clean air
        let gas = |t: usize, n: f64| {
            if (30..270).contains(&t) {
                60.0 + 10.0 * n
            } else {
                n
            }
        };
        let at = opens_at(400, 3000, gas).expect("opens once the release has left");
        assert!((660..=680).contains(&at), "opened at {at}");
    }

    #[test]
    fn spikes_over_one_percent_keep_it_closed_a_few_do_not() {
        let spiky =
            |every: usize| move |t: usize, n: f64| n + if t % every == 3 { 40.0 } else { 0.0 };
        assert_eq!(
            opens_at(400, 800, spiky(200)),
            Some(399),
            "2 spikes in 400 rows"
        );
        assert_eq!(opens_at(400, 800, spiky(25)), None, "16 spikes in 400 rows");
    }

    #[test]
    fn multivariate_rows_carry_missing_values_and_name_the_variable() {
        let mut g = WarmupGate::new(64, 2);
        let mut seed = 3u64;
        assert!(!g.push(0, &[1.0, f64::NAN]), "var 1 never seen");
        assert_eq!(g.len(), 0);
        for t in 1..200 {
            let y = if (20..40).contains(&t) { 30.0 } else { 0.0 };
            let a = noise(&mut seed);
            let b = noise(&mut seed);
            let x = if t % 5 == 0 { f64::NAN } else { a };
            if g.push(t, &[x, y + b]) {
                assert!(t >= 103, "opened at {t} with the excursion in the window");
                let rows = g.take();
                assert_eq!(rows.len(), 64);
                assert!(rows.iter().all(|(_, r)| r.iter().all(|v| v.is_finite())));
                return;
            }
            if (64..100).contains(&t) {
                assert_eq!(g.unstable().map(|u| u.var), Some(1), "at {t}");
                assert!(g.interval_s().is_some_and(|s| (s - 1e-9).abs() < 1e-12));
            }
        }
        panic!("never opened");
    }
}
