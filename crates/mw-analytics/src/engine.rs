//! The machinery every detector shares: missing values, warm-up, calibration of the
//! thresholds, score mapping and the alarm rule. A detector only supplies a [`Scorer`]:
//! something that turns rows into one or more raw statistics ("heads").

use crate::alarm::{AlarmRule, AlarmState};
use crate::calibrate::{ThresholdRule, ratio_to_score};
use crate::{Contribution, Detector, Output};

/// What a scorer learnt about one head during warm-up.
#[derive(Debug, Clone, Default)]
pub(crate) struct Calibration {
    /// The head's statistic on (ideally out-of-sample) warm-up rows.
    pub(crate) stats: Vec<f64>,
    /// Lowest acceptable threshold (> 0).
    pub(crate) floor: f64,
    /// A fixed threshold that bypasses the quantile rule (used by the stuck-sensor head).
    pub(crate) fixed: Option<f64>,
    /// `Some(calm)`: an *opening* head. Its exceedance raises the alarm at once, but only
    /// after at least `calm` rows without an alarm; it neither counts towards the alarm
    /// rule's k-of-n nor holds a raised alarm (the head carries its own persistence, e.g. a
    /// k-of-n statistic, and only speeds up the onset of an alarm from a quiet state).
    pub(crate) opens: Option<usize>,
    /// Whether the head takes part in [`Verdict::gate_ratio`] (default `true`).
    pub(crate) gates: bool,
}

impl Calibration {
    pub(crate) fn from_stats(stats: Vec<f64>, floor: f64) -> Self {
        Self {
            stats,
            floor,
            fixed: None,
            opens: None,
            gates: true,
        }
    }
    pub(crate) fn fixed(threshold: f64) -> Self {
        Self {
            stats: Vec::new(),
            floor: threshold,
            fixed: Some(threshold),
            opens: None,
            gates: true,
        }
    }
    /// Leaves this head out of [`Verdict::gate_ratio`] (see `gates`).
    pub(crate) fn not_gating(self) -> Self {
        Self {
            gates: false,
            ..self
        }
    }
    /// Makes this an opening head (see `opens`).
    pub(crate) fn opening(self, calm: usize) -> Self {
        Self {
            opens: Some(calm),
            ..self
        }
    }
}

/// What the engine concluded about a row, fed back to the scorer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Verdict {
    /// Largest statistic/threshold ratio over the heads.
    pub(crate) ratio: f64,
    /// Whether the alarm is raised.
    pub(crate) anomalous: bool,
    /// Largest ratio over the heads that gate adaptation ([`Calibration::gates`]): what a
    /// scorer asks before letting a row move its baseline.
    pub(crate) gate_ratio: f64,
}

impl Verdict {
    /// Below every threshold and no alarm raised.
    pub(crate) fn is_normal(self) -> bool {
        self.ratio < 1.0 && !self.anomalous
    }
}

/// The detector-specific part: raw, non-negative statistics where larger is more anomalous.
pub(crate) trait Scorer: Send {
    /// Number of statistics [`Scorer::step`] writes.
    fn heads(&self) -> usize;
    /// Fits the model on the warm-up rows (complete, finite, `n_vars` wide) and returns one
    /// calibration per head. Afterwards the scorer is ready for the row after the warm-up.
    fn fit(&mut self, rows: &[Vec<f64>]) -> Vec<Calibration>;
    /// Tells the scorer the thresholds that were chosen (one per head).
    fn thresholds(&mut self, _thresholds: &[f64]) {}
    /// Raw statistics for one complete, finite row; `stats.len() == heads()`.
    fn step(&mut self, row: &[f64], stats: &mut [f64]);
    /// The verdict on the row just scored.
    fn feedback(&mut self, _row: &[f64], _verdict: Verdict) {}
    /// Whether the next row (warm-up or scored) is a held tick, not a value the source sent
    /// ([`Detector::hold`]). Called before every row once fitted; warm-up rows' flags are
    /// given to [`Scorer::fit`] through [`Scorer::held_rows`].
    fn held(&mut self, _held: bool) {}
    /// Which warm-up rows were held ticks, just before [`Scorer::fit`].
    fn held_rows(&mut self, _held: &[bool]) {}
    /// The series resumes after a gap of `missed` ticks ([`Detector::restart`]).
    fn restart(&mut self, _missed: u64) {}
    /// Non-negative per-variable weights behind head `head`'s statistic on the latest row
    /// (`out` is cleared first; left empty when the scorer cannot say).
    fn contributions(&self, _head: usize, out: &mut Vec<f64>) {
        out.clear();
    }
}

/// Generic streaming detector around a [`Scorer`].
pub(crate) struct Engine<S> {
    name: &'static str,
    n_vars: usize,
    warmup: usize,
    rule: ThresholdRule,
    scorer: S,
    /// Warm-up rows; emptied (and its memory released) once fitted.
    warm: Vec<Vec<f64>>,
    /// Which warm-up rows were held ticks.
    warm_held: Vec<bool>,
    fitted: bool,
    thresholds: Vec<f64>,
    /// Opening heads and the calm they need ([`Calibration::opens`]).
    opens: Vec<Option<usize>>,
    /// Heads that gate adaptation ([`Calibration::gates`]).
    gates: Vec<bool>,
    /// The head with the largest ratio on the latest scored row (for `contributors`).
    top_head: Option<usize>,
    /// Scored rows since the alarm was last raised (the warm-up counts as calm).
    calm: usize,
    stats: Vec<f64>,
    last: Vec<f64>,
    have_last: Vec<bool>,
    row: Vec<f64>,
    alarm: AlarmState,
    prev: Output,
}

/// Output of a detector before its first usable row.
const WARMING: Output = Output {
    score: 0.0,
    anomalous: false,
    warming_up: true,
};

impl<S: Scorer> Engine<S> {
    pub(crate) fn new(
        name: &'static str,
        n_vars: usize,
        warmup: usize,
        rule: ThresholdRule,
        alarm: AlarmRule,
        scorer: S,
    ) -> Self {
        let n_vars = n_vars.max(1);
        Self {
            name,
            n_vars,
            warmup: warmup.max(crate::MIN_WARMUP),
            rule,
            scorer,
            warm: Vec::new(),
            warm_held: Vec::new(),
            fitted: false,
            thresholds: Vec::new(),
            opens: Vec::new(),
            gates: Vec::new(),
            top_head: None,
            calm: usize::MAX,
            stats: Vec::new(),
            last: vec![0.0; n_vars],
            have_last: vec![false; n_vars],
            row: vec![0.0; n_vars],
            alarm: AlarmState::new(alarm),
            prev: WARMING,
        }
    }

    /// Builds the complete row in `self.row`, carrying the last finite value forward for
    /// missing entries. Returns `false` if the row is unusable (nothing finite, or a
    /// variable that has never been seen).
    fn complete_row(&mut self, values: &[f64]) -> bool {
        let mut any = false;
        for j in 0..self.n_vars {
            let v = values.get(j).copied().unwrap_or(f64::NAN);
            if v.is_finite() {
                any = true;
                self.last[j] = v;
                self.have_last[j] = true;
            }
        }
        if !any || self.have_last.iter().any(|h| !h) {
            return false;
        }
        self.row.copy_from_slice(&self.last);
        true
    }

    fn fit(&mut self) {
        let rows = std::mem::take(&mut self.warm);
        let held = std::mem::take(&mut self.warm_held);
        if held.iter().any(|&h| h) {
            self.scorer.held_rows(&held);
        }
        let cals = self.scorer.fit(&rows);
        self.thresholds = cals
            .iter()
            .map(|c| match c.fixed {
                Some(t) if t > 0.0 && t.is_finite() => t,
                _ => self
                    .rule
                    .threshold(&c.stats, c.floor.max(f64::MIN_POSITIVE)),
            })
            .collect();
        self.thresholds.resize(self.scorer.heads(), f64::INFINITY);
        self.opens = cals.iter().map(|c| c.opens).collect();
        self.opens.resize(self.scorer.heads(), None);
        self.gates = cals.iter().map(|c| c.gates).collect();
        self.gates.resize(self.scorer.heads(), true);
        self.scorer.thresholds(&self.thresholds);

        self.stats = vec![0.0; self.scorer.heads()];
        self.fitted = true;
    }
}

impl<S: Scorer> Detector for Engine<S> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn n_vars(&self) -> usize {
        self.n_vars
    }

    fn warmup(&self) -> usize {
        self.warmup
    }

    fn update(&mut self, _ts_ns: i64, values: &[f64]) -> Output {
        self.row_in(values, false)
    }

    fn hold(&mut self, _ts_ns: i64, values: &[f64]) -> Output {
        self.row_in(values, true)
    }

    /// The scorer restarts its short windows; the alarm carries on (the rows after the gap
    /// are judged against what was known before it).
    fn restart(&mut self, missed: u64) {
        if self.fitted {
            self.scorer.restart(missed);
        }
    }

    /// The scorer's weights for the head with the largest ratio on the latest row; a
    /// univariate engine names its only variable.
    fn contributors(&self, top: usize) -> Vec<Contribution> {
        if self.n_vars == 1 {
            return if top > 0 {
                vec![Contribution { var: 0, share: 1.0 }]
            } else {
                Vec::new()
            };
        }
        let Some(h) = self.top_head else {
            return Vec::new();
        };
        let mut w = Vec::new();
        self.scorer.contributions(h, &mut w);
        shares_of(&w, top)
    }
}

impl<S: Scorer> Engine<S> {
    fn row_in(&mut self, values: &[f64], held: bool) -> Output {
        if !self.complete_row(values) {
            return self.prev;
        }
        if !self.fitted {
            self.warm.push(self.row.clone());
            self.warm_held.push(held);
            if self.warm.len() >= self.warmup {
                self.fit();
            }
            self.prev = WARMING;
            return WARMING;
        }
        let row = std::mem::take(&mut self.row);
        self.scorer.held(held);
        self.scorer.step(&row, &mut self.stats);
        let mut ratio: f64 = 0.0;
        // The ratio the alarm rule sees: opening heads excluded, unless one opens the alarm.
        let mut rule_ratio: f64 = 0.0;
        let mut gate_ratio: f64 = 0.0;
        let mut open = false;
        self.top_head = None;
        for (h, (s, t)) in self.stats.iter().zip(&self.thresholds).enumerate() {
            let r = s / t;
            // NaN statistics (should not happen) count as "no evidence".
            if r > ratio {
                ratio = r;
                self.top_head = Some(h);
            }
            if self.gates[h] && r > gate_ratio {
                gate_ratio = r;
            }
            match self.opens[h] {
                Some(calm) => open |= r >= 1.0 && self.calm >= calm,
                None => rule_ratio = rule_ratio.max(r),
            }
        }
        let anomalous = self
            .alarm
            .step(if open { f64::INFINITY } else { rule_ratio });
        self.calm = if anomalous {
            0
        } else {
            self.calm.saturating_add(1)
        };
        self.scorer.feedback(
            &row,
            Verdict {
                ratio,
                anomalous,
                gate_ratio,
            },
        );
        self.row = row;
        self.prev = Output {
            score: ratio_to_score(ratio),
            anomalous,
            warming_up: false,
        };
        self.prev
    }
}

/// Runs one univariate detector per variable and reports the most anomalous one.
pub(crate) struct PerVariable {
    name: &'static str,
    inner: Vec<Box<dyn Detector>>,
    buf: [f64; 1],
    /// Each variable's score on the latest row (0 while it warms up).
    scores: Vec<f64>,
}

impl PerVariable {
    pub(crate) fn new(name: &'static str, inner: Vec<Box<dyn Detector>>) -> Self {
        Self {
            name,
            scores: vec![0.0; inner.len()],
            inner,
            buf: [f64::NAN],
        }
    }
}

impl Detector for PerVariable {
    fn name(&self) -> &'static str {
        self.name
    }
    fn n_vars(&self) -> usize {
        self.inner.len()
    }
    fn warmup(&self) -> usize {
        self.inner.first().map_or(0, |d| d.warmup())
    }
    fn update(&mut self, ts_ns: i64, values: &[f64]) -> Output {
        let mut out = Output {
            score: 0.0,
            anomalous: false,
            warming_up: true,
        };
        for (j, d) in self.inner.iter_mut().enumerate() {
            self.buf[0] = values.get(j).copied().unwrap_or(f64::NAN);
            let o = d.update(ts_ns, &self.buf);
            self.scores[j] = o.score;
            out.score = out.score.max(o.score);
            out.anomalous |= o.anomalous;
            out.warming_up &= o.warming_up;
        }
        out
    }
    fn hold(&mut self, ts_ns: i64, values: &[f64]) -> Output {
        let mut out = Output {
            score: 0.0,
            anomalous: false,
            warming_up: true,
        };
        for (j, d) in self.inner.iter_mut().enumerate() {
            self.buf[0] = values.get(j).copied().unwrap_or(f64::NAN);
            let o = d.hold(ts_ns, &self.buf);
            self.scores[j] = o.score;
            out.score = out.score.max(o.score);
            out.anomalous |= o.anomalous;
            out.warming_up &= o.warming_up;
        }
        out
    }
    fn restart(&mut self, missed: u64) {
        for d in &mut self.inner {
            d.restart(missed);
        }
    }
    /// Each variable's share of the sum of the per-variable scores.
    fn contributors(&self, top: usize) -> Vec<Contribution> {
        shares_of(&self.scores, top)
    }
}

/// The `top` largest of `weights` (non-negative; others count as 0) as shares of their
/// sum, largest first; ties go to the lower index. Empty when every weight is 0.
pub(crate) fn shares_of(weights: &[f64], top: usize) -> Vec<Contribution> {
    let w = |x: f64| if x.is_finite() && x > 0.0 { x } else { 0.0 };
    let total: f64 = weights.iter().map(|&x| w(x)).sum();
    if total <= 0.0 || top == 0 {
        return Vec::new();
    }
    let mut out: Vec<Contribution> = weights
        .iter()
        .enumerate()
        .filter(|&(_, &x)| w(x) > 0.0)
        .map(|(var, &x)| Contribution {
            var,
            share: w(x) / total,
        })
        .collect();
    out.sort_by(|a, b| b.share.total_cmp(&a.share).then(a.var.cmp(&b.var)));
    out.truncate(top);
    out
}

/// Several scorers over the same rows, side by side: their heads are concatenated.
pub(crate) struct Composite {
    parts: Vec<Box<dyn Scorer>>,
}

impl Composite {
    pub(crate) fn new(parts: Vec<Box<dyn Scorer>>) -> Self {
        Self { parts }
    }
}

impl Scorer for Composite {
    fn heads(&self) -> usize {
        self.parts.iter().map(|p| p.heads()).sum()
    }

    fn fit(&mut self, rows: &[Vec<f64>]) -> Vec<Calibration> {
        let mut out = Vec::new();
        for p in &mut self.parts {
            let mut c = p.fit(rows);
            c.resize_with(p.heads(), || Calibration::fixed(f64::INFINITY));
            out.extend(c);
        }
        out
    }

    fn thresholds(&mut self, thresholds: &[f64]) {
        let mut at = 0;
        for p in &mut self.parts {
            let h = p.heads();
            p.thresholds(&thresholds[at..at + h]);
            at += h;
        }
    }

    fn step(&mut self, row: &[f64], stats: &mut [f64]) {
        let mut at = 0;
        for p in &mut self.parts {
            let h = p.heads();
            p.step(row, &mut stats[at..at + h]);
            at += h;
        }
    }

    fn feedback(&mut self, row: &[f64], verdict: Verdict) {
        for p in &mut self.parts {
            p.feedback(row, verdict);
        }
    }

    fn held(&mut self, held: bool) {
        for p in &mut self.parts {
            p.held(held);
        }
    }

    fn held_rows(&mut self, held: &[bool]) {
        for p in &mut self.parts {
            p.held_rows(held);
        }
    }

    fn restart(&mut self, missed: u64) {
        for p in &mut self.parts {
            p.restart(missed);
        }
    }

    fn contributions(&self, head: usize, out: &mut Vec<f64>) {
        out.clear();
        let mut at = 0;
        for p in &self.parts {
            let h = p.heads();
            if head < at + h {
                p.contributions(head - at, out);
                return;
            }
            at += h;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DetectorKind, build};

    #[test]
    fn shares_rank_the_largest_first_and_sum_to_one() {
        let c = shares_of(&[1.0, 3.0, f64::NAN, 0.0, 1.0], 2);
        assert_eq!(c.len(), 2);
        assert_eq!((c[0].var, c[1].var), (1, 0));
        assert!((c[0].share - 0.6).abs() < 1e-12 && (c[1].share - 0.2).abs() < 1e-12);
        assert!(shares_of(&[0.0, f64::NAN], 3).is_empty());
        assert!(shares_of(&[1.0], 0).is_empty());
    }

    #[test]
    fn per_variable_names_the_variable_that_moved() {
        let mut d = build(DetectorKind::Mad, 3, Some(64));
        let wiggle = |t: i64, k: i64| ((t * 7919 + k * 31) % 101) as f64 / 101.0;
        for t in 0..200i64 {
            let step = if t >= 150 { 50.0 } else { 0.0 };
            let out = d.update(t, &[wiggle(t, 0), wiggle(t, 1) + step, wiggle(t, 2)]);
            if t == 151 {
                assert!(out.anomalous, "a 50-unit step on var 1 is flagged");
                let c = d.contributors(3);
                assert_eq!(c[0].var, 1, "{c:?}");
                assert!(c[0].share > 0.34, "{c:?}");
            }
        }
        let one = build(DetectorKind::Mad, 1, None);
        assert_eq!(
            one.contributors(3),
            vec![Contribution { var: 0, share: 1.0 }]
        );
    }
}
