//! Multivariate detection per asset: PCA with Hotelling T² and SPE/Q on robustly
//! standardized (and optionally smoothed) values, plus a per-variable stuck-sensor test.

use std::collections::VecDeque;

use crate::Detector;
use crate::alarm::AlarmRule;
use crate::calibrate::ThresholdRule;
use crate::engine::{Calibration, Composite, Engine, Scorer, Verdict};
use crate::linalg::{mean_cov, sym_eigen};
use crate::stats::{median, robust_center_scale};
use crate::univariate::StuckScorer;

/// Parameters of the PCA detector (`pca`, and the multivariate part of `auto`).
///
/// Memory: the pool of recent normal rows (`warmup × n_vars`), one rolling window per
/// smoothing window (`window × n_vars`) and one model per window (`n_vars²`).
#[derive(Debug, Clone, PartialEq)]
pub struct PcaConfig {
    /// Smoothing windows in rows. Each window `w` gets its own PCA model and a T² and a Q
    /// head, computed on the mean of the last `w` rows (1 = the raw row). Default `[1]`
    /// (classical T² + Q); `auto` uses `[1, 3, 8, 32]`.
    pub windows: Vec<usize>,
    /// Share of the variance the retained components must explain. Default 0.9.
    pub explained: f64,
    /// Refresh: refit standardization and models every this many rows on the pool of the
    /// most recent `warmup` rows judged normal (`Some(0)` = never). Each refit also
    /// recalibrates the thresholds on that pool; they can only rise above the warm-up
    /// ones, never fall. Default `warmup` for `pca`; `auto` does not refit (measured: it
    /// cost recall on SKAB and on the synthetic correlation-break test).
    pub refit_every: Option<usize>,
    /// Contiguous folds used to estimate the *predictive* covariance (deviations of each
    /// fold from the mean of the others) and the out-of-fold calibration statistics.
    /// Default 2; below 2 the ordinary in-sample covariance is used.
    pub folds: usize,
    /// A variable whose warm-up variance ratio (block means of √warmup rows) exceeds this
    /// is treated as wandering and replaced by its deviation from an exponentially
    /// weighted mean of its past (see `detrend_horizon`). Default 4; `f64::INFINITY`
    /// disables it.
    pub wander_ratio: f64,
    /// Time constant, in rows, of that moving mean. Default `warmup / 4`.
    pub detrend_horizon: Option<usize>,
    /// Each step of that moving mean is clipped to this many robust standard deviations
    /// of the variable (a Huber-type update): slow drifts are followed fully, while a
    /// fault far outside the normal spread drags the mean only slowly — otherwise the
    /// filter learns the fault and mirrors it as a false excursion once it ends.
    /// Default 3; `f64::INFINITY` gives the plain moving mean.
    pub detrend_clip: f64,
    /// Gated re-centring: a row judged clearly normal (largest statistic/threshold ratio
    /// below `adapt_below`, no alarm raised) moves the standardization centre towards
    /// itself with weight `1 / adapt_horizon`, so the baseline follows slow changes of
    /// the operating point while rows near or above a threshold (a fault) never move it.
    /// `None` (default for `pca`) disables; `auto` uses `warmup / 4` rows.
    pub adapt_horizon: Option<usize>,
    /// Ratio below which a row counts as clearly normal for re-centring. Default 0.5.
    pub adapt_below: f64,
    /// Re-baselining when a large excursion clears. While an alarm is raised, the detector
    /// tracks the peak statistic/threshold ratio of its shortest smoothed head (the
    /// smallest window above 1). When that ratio has stayed below both `peak /
    /// rebaseline_drop` and `rebaseline_below` for a whole window, after a peak of at least
    /// `rebaseline_drop` — a large excursion that is now mostly gone — the process is taken
    /// to have come back and to be settling at its operating point after the event:
    /// * **settle** (`detrend_horizon` rows, at least two longest windows): the centre is
    ///   the mean of the last longest-window rows, so it follows a relaxing transient;
    /// * **refine** (`warmup` rows): the centre becomes the running mean of the rows that
    ///   do not alarm, converging like the warm-up's own estimate;
    /// * then the usual gated re-centring.
    ///
    /// Throughout, levels between the old operating point and the new centre count as
    /// normal (a band per variable, drawn in again by gated re-centring), so a process that
    /// relaxes back towards where it was (a cooling bearing, a refilling tank) does not
    /// alarm on the way. Residual offsets the event left behind then do not keep the alarm
    /// standing for ever. Failure mode: a fault that recovers to within `rebaseline_below`
    /// is accepted as the new normal, and a new fault during settling is missed unless it
    /// is large. `None` (default for `pca`) disables; `auto` uses 20 (the remaining
    /// Mahalanobis distance is under √(1/20) ≈ 22 % of the peak's). Sensitivity on SKAB:
    /// docs/analytics.md.
    pub rebaseline_drop: Option<f64>,
    /// ... and only once the statistic/threshold ratio is also below this: the process must
    /// be *near* normal again, the re-baselining only absorbs the residual offset. Without
    /// it a leak whose flow transient dies away while the level stays low would become the
    /// new normal. Default 5.
    pub rebaseline_below: f64,
    /// How the thresholds are derived from the warm-up. Default quantile 0.99, margin 5:
    /// T² and Q have heavier tails than a z-score, and the smoothed heads see few
    /// independent warm-up values (with margin 3, autocorrelated clean data raised
    /// alarms in the synthetic tests).
    pub threshold: ThresholdRule,
    /// Persistence and hysteresis of the alarm.
    pub alarm: AlarmRule,
    /// Fast Q head on the raw rows: `Some((k, n))` adds a head whose statistic is the
    /// `k`-th largest raw-row Q (SPE) of the last `n` rows, thresholded with `fast_margin`
    /// on the same statistic over the (out-of-fold) warm-up. It is an *opening* head: its
    /// exceedance raises the alarm at once, but only after a calm of at least the longest
    /// window without an alarm, and it neither counts towards the alarm rule nor holds an
    /// alarm. A fault that moves the process off its correlation structure is then flagged
    /// after `k` rows instead of waiting for a smoothed head. Needs window 1. Default
    /// `None`, also for `auto`: measured with `(3, 3)` and margin 2 it halves the mean
    /// first-detection delay on TEP (33 → 16–18 samples) but raises SKAB's false alarms
    /// to 12.9–13.7 % and alarms on the 4-variable synthetic clean asset; with a margin
    /// high enough for those it no longer speeds TEP up (docs/analytics.md).
    pub fast_q: Option<(usize, usize)>,
    /// Threshold margin of the fast Q head (see `threshold`). Default 2.
    pub fast_margin: f64,
    /// Mean-of-Q heads: for each `w`, a head whose statistic is the mean of the raw-row Q
    /// (SPE) over the last `w` rows, thresholded with `q_mean_margin` on the same statistic
    /// over the out-of-fold warm-up. Averaging the *rows* (`windows`) makes a small mean
    /// shift stand out; averaging the *statistic* makes a persistent rise of the residual
    /// variance stand out (a valve that starts to stick, a random-variation fault), which
    /// row means average away. Needs window 1. Default empty; `auto` uses `[32]`
    /// (TEP fault 19: 8 → 90 % flagged; docs/analytics.md).
    pub q_mean_windows: Vec<usize>,
    /// Threshold margin of the mean-of-Q heads (see `threshold`). Default 7 (chosen on the
    /// odd TEP faults and SKAB's valve1 half: 5 raised held-out TEP false alarms to 2.2 %).
    pub q_mean_margin: f64,
    /// Each raw-row Q is capped at this many times the mean-of-Q threshold before it enters
    /// the mean, so a large fault does not hold the head up for a whole window after it
    /// ends. Default 3.
    pub q_mean_cap: f64,
}

impl Default for PcaConfig {
    fn default() -> Self {
        Self {
            windows: vec![1],
            explained: 0.9,
            refit_every: None,
            folds: 2,
            wander_ratio: 4.0,
            detrend_horizon: None,
            detrend_clip: 3.0,
            adapt_horizon: None,
            adapt_below: 0.5,
            rebaseline_drop: None,
            rebaseline_below: 5.0,
            threshold: ThresholdRule {
                quantile: 0.99,
                margin: 5.0,
            },
            alarm: AlarmRule::default(),
            fast_q: None,
            fast_margin: 2.0,
            q_mean_windows: Vec::new(),
            q_mean_margin: 7.0,
            q_mean_cap: 3.0,
        }
    }
}

/// The `pca` detector with the given parameters.
pub(crate) fn pca(cfg: PcaConfig, n_vars: usize, warmup: usize) -> Box<dyn Detector> {
    let scorer = PcaScorer::new(&cfg, n_vars, warmup);
    Box::new(Engine::new(
        "pca",
        n_vars,
        warmup,
        cfg.threshold,
        cfg.alarm,
        scorer,
    ))
}

/// The multivariate `auto` detector: PCA heads at windows 1, 3, 8 and 32, a mean-of-Q head
/// over 32 rows, plus the stuck-sensor test on every variable.
pub(crate) fn auto(n_vars: usize, warmup: usize) -> Box<dyn Detector> {
    let cfg = auto_config(warmup);
    let parts: Vec<Box<dyn Scorer>> = vec![
        Box::new(PcaScorer::new(&cfg, n_vars, warmup)),
        Box::new(OneHeadPerVariable(StuckScorer::new(n_vars))),
    ];
    Box::new(Engine::new(
        "auto",
        n_vars,
        warmup,
        cfg.threshold,
        cfg.alarm,
        Composite::new(parts),
    ))
}

/// The parameters of the multivariate `auto` (chosen on SKAB and the odd-numbered TEP
/// faults, checked on the even ones: docs/BENCHMARKS.md). The fast Q head stays off: every
/// setting that sped up TEP raised SKAB's false alarms above 12.5 % or alarmed on the
/// 4-variable synthetic clean asset (docs/analytics.md). The mean-of-Q head over 32 rows
/// (margin 7, cap 3) is on: TEP 86.2 → 91.0 % flagged with SKAB's figures unchanged.
pub(crate) fn auto_config(warmup: usize) -> PcaConfig {
    PcaConfig {
        windows: vec![1, 3, 8, 32],
        q_mean_windows: vec![32],
        refit_every: Some(0),
        adapt_horizon: Some(warmup / 4),
        rebaseline_drop: Some(20.0),
        ..PcaConfig::default()
    }
}

/// A scorer with one head per variable (the stuck-sensor test): head `j` is variable `j`.
struct OneHeadPerVariable<S>(S);

impl<S: Scorer> Scorer for OneHeadPerVariable<S> {
    fn heads(&self) -> usize {
        self.0.heads()
    }
    fn fit(&mut self, rows: &[Vec<f64>]) -> Vec<Calibration> {
        self.0.fit(rows)
    }
    fn thresholds(&mut self, thresholds: &[f64]) {
        self.0.thresholds(thresholds);
    }
    fn step(&mut self, row: &[f64], stats: &mut [f64]) {
        self.0.step(row, stats);
    }
    fn feedback(&mut self, row: &[f64], verdict: Verdict) {
        self.0.feedback(row, verdict);
    }
    fn held(&mut self, held: bool) {
        self.0.held(held);
    }
    fn held_rows(&mut self, held: &[bool]) {
        self.0.held_rows(held);
    }
    fn restart(&mut self, missed: u64) {
        self.0.restart(missed);
    }
    fn contributions(&self, head: usize, out: &mut Vec<f64>) {
        out.clear();
        out.resize(self.0.heads(), 0.0);
        if let Some(w) = out.get_mut(head) {
            *w = 1.0;
        }
    }
}

/// The `k`-th largest of the last `n` values of a statistic (a k-of-n rule as a statistic).
#[derive(Debug, Clone)]
struct KthOfLast {
    k: usize,
    last: VecDeque<f64>,
    n: usize,
    buf: Vec<f64>,
}

impl KthOfLast {
    fn new(k: usize, n: usize) -> Self {
        let n = n.clamp(1, 64);
        Self {
            k: k.clamp(1, n),
            n,
            last: VecDeque::with_capacity(n),
            buf: Vec::with_capacity(n),
        }
    }

    /// Pushes a value and returns the statistic (0 until `n` values were seen).
    fn push(&mut self, x: f64) -> f64 {
        if self.last.len() == self.n {
            self.last.pop_front();
        }
        self.last.push_back(if x.is_nan() { 0.0 } else { x });
        if self.last.len() < self.n {
            return 0.0;
        }
        self.buf.clear();
        self.buf.extend(self.last.iter().copied());
        self.buf.sort_unstable_by(|a, b| b.total_cmp(a));
        self.buf[self.k - 1]
    }

    fn clear(&mut self) {
        self.last.clear();
    }
}

/// A fitted PCA model on standardized features.
#[derive(Debug, Clone)]
struct PcaModel {
    d: usize,
    mean: Vec<f64>,
    /// Retained components, row-major `k × d`.
    comps: Vec<f64>,
    lambda: Vec<f64>,
    /// Whether the residual subspace is non-trivial (Q is informative).
    has_residual: bool,
}

impl PcaModel {
    fn fit(rows: &[Vec<f64>], d: usize, explained: f64) -> Self {
        let (mean, cov) = mean_cov(rows, d);
        Self::from_cov(mean, &cov, d, explained)
    }

    /// Predictive fit: the covariance is that of the deviations of each of `folds`
    /// contiguous blocks from the mean of the other blocks, so a variable whose level
    /// wanders during the warm-up gets the larger variance it will show on new data.
    /// Also returns the matching out-of-block (T², Q) of every row for calibration.
    fn fit_predictive(
        rows: &[Vec<f64>],
        d: usize,
        explained: f64,
        folds: usize,
    ) -> (Self, Vec<(f64, f64)>) {
        let n = rows.len();
        if folds < 2 || n < folds * (d + 2) {
            let m = Self::fit(rows, d, explained);
            let stats = rows.iter().map(|r| m.t2_q(r)).collect();
            return (m, stats);
        }
        let bounds: Vec<usize> = (0..=folds).map(|k| k * n / folds).collect();
        let mut total = vec![0.0; d];
        let mut sums = vec![vec![0.0; d]; folds];
        for k in 0..folds {
            for r in &rows[bounds[k]..bounds[k + 1]] {
                for j in 0..d {
                    sums[k][j] += r[j];
                    total[j] += r[j];
                }
            }
        }
        let others: Vec<Vec<f64>> = (0..folds)
            .map(|k| {
                let m = (n - (bounds[k + 1] - bounds[k])) as f64;
                (0..d).map(|j| (total[j] - sums[k][j]) / m).collect()
            })
            .collect();
        let mut cov = vec![0.0; d * d];
        let mut r = vec![0.0; d];
        for k in 0..folds {
            for row in &rows[bounds[k]..bounds[k + 1]] {
                for j in 0..d {
                    r[j] = row[j] - others[k][j];
                }
                for i in 0..d {
                    for j in i..d {
                        cov[i * d + j] += r[i] * r[j];
                    }
                }
            }
        }
        for i in 0..d {
            for j in i..d {
                let v = cov[i * d + j] / n as f64;
                cov[i * d + j] = v;
                cov[j * d + i] = v;
            }
        }
        let mean: Vec<f64> = total.iter().map(|t| t / n as f64).collect();
        let mut model = Self::from_cov(mean, &cov, d, explained);
        let mut stats = Vec::with_capacity(n);
        let final_mean = std::mem::take(&mut model.mean);
        for k in 0..folds {
            model.mean.clone_from(&others[k]);
            for row in &rows[bounds[k]..bounds[k + 1]] {
                stats.push(model.t2_q(row));
            }
        }
        model.mean = final_mean;
        (model, stats)
    }

    fn from_cov(mean: Vec<f64>, cov: &[f64], d: usize, explained: f64) -> Self {
        let (vals, vecs) = sym_eigen(cov, d);
        let trace: f64 = vals.iter().map(|v| v.max(0.0)).sum();
        let floor = (1e-3 * trace / d as f64).max(1e-12);
        let mut k = 0;
        let mut cum = 0.0;
        while k < d {
            cum += vals[k].max(0.0);
            k += 1;
            if cum >= explained * trace {
                break;
            }
        }
        let k = if d >= 2 { k.min(d - 1) } else { 1 };
        Self {
            d,
            mean,
            comps: vecs[..k * d].to_vec(),
            lambda: vals[..k].iter().map(|v| v.max(floor)).collect(),
            has_residual: d > k,
        }
    }

    /// Reconstruction-based contributions (Alcalde & Qin 2009) of every variable to T²
    /// (`q == false`) or Q (`q == true`) of the deviation `x`: for the index `xᵀMx`
    /// (`M = PΛ⁻¹Pᵀ` for T², `I − PPᵀ` for Q), variable `j`'s contribution is
    /// `(Mx)ⱼ² / Mⱼⱼ`, the amount the index falls when `x` is reconstructed along variable
    /// `j` alone. Unlike the plain decomposition it does not smear a large fault of one
    /// variable onto the variables correlated with it: the faulty variable ranks first.
    fn contributions(&self, x: &[f64], q: bool, out: &mut Vec<f64>) {
        let d = self.d;
        let mut mx = vec![0.0; d];
        let mut diag = vec![0.0; d];
        let dev: Vec<f64> = x.iter().zip(&self.mean).map(|(a, b)| a - b).collect();
        for (i, lam) in self.lambda.iter().enumerate() {
            let p = &self.comps[i * d..(i + 1) * d];
            let t: f64 = p.iter().zip(&dev).map(|(a, b)| a * b).sum();
            let (wt, wd) = if q { (t, 1.0) } else { (t / lam, 1.0 / lam) };
            for j in 0..d {
                mx[j] += p[j] * wt;
                diag[j] += p[j] * p[j] * wd;
            }
        }
        if q {
            for j in 0..d {
                mx[j] = dev[j] - mx[j];
                diag[j] = 1.0 - diag[j];
            }
        }
        out.clear();
        out.extend(mx.iter().zip(&diag).map(|(m, g)| {
            if *g > 1e-9 && m.is_finite() {
                m * m / g
            } else {
                0.0
            }
        }));
    }

    /// Hotelling T² in the retained subspace and squared prediction error (Q) outside it.
    fn t2_q(&self, x: &[f64]) -> (f64, f64) {
        let dev: Vec<f64> = x.iter().zip(&self.mean).map(|(a, b)| a - b).collect();
        self.t2_q_dev(&dev)
    }

    /// [`PcaModel::t2_q`] of a deviation from the model's mean (the hot path: no allocation).
    fn t2_q_dev(&self, dev: &[f64]) -> (f64, f64) {
        let mut t2 = 0.0;
        let mut explained = 0.0;
        for (p, lam) in self.comps.chunks_exact(self.d).zip(&self.lambda) {
            let s: f64 = p.iter().zip(dev).map(|(pj, xj)| pj * xj).sum();
            t2 += s * s / lam;
            explained += s * s;
        }
        let q = if self.has_residual {
            let total: f64 = dev.iter().map(|x| x * x).sum();
            (total - explained).max(0.0)
        } else {
            0.0
        };
        (t2, q)
    }
}

/// Rolling mean of the last `w` rows of width `d`, kept as a running sum (re-summed
/// every `w` rows to bound rounding drift).
#[derive(Debug, Clone)]
struct RollingMean {
    w: usize,
    rows: VecDeque<Vec<f64>>,
    sum: Vec<f64>,
    since_resum: usize,
}

impl RollingMean {
    fn new(w: usize, d: usize) -> Self {
        Self {
            w: w.max(1),
            rows: VecDeque::with_capacity(w.max(1)),
            sum: vec![0.0; d],
            since_resum: 0,
        }
    }

    fn push(&mut self, row: &[f64]) {
        // The oldest row's buffer is reused for the new one: no allocation per row.
        let mut slot = Vec::new();
        if self.rows.len() == self.w
            && let Some(old) = self.rows.pop_front()
        {
            for (s, o) in self.sum.iter_mut().zip(&old) {
                *s -= o;
            }
            slot = old;
        }
        for (s, x) in self.sum.iter_mut().zip(row) {
            *s += x;
        }
        slot.clear();
        slot.extend_from_slice(row);
        self.rows.push_back(slot);
        self.since_resum += 1;
        if self.since_resum >= self.w {
            self.since_resum = 0;
            self.sum.iter_mut().for_each(|s| *s = 0.0);
            for r in &self.rows {
                for (s, x) in self.sum.iter_mut().zip(r) {
                    *s += x;
                }
            }
        }
    }

    fn full(&self) -> bool {
        self.rows.len() == self.w
    }

    fn clear(&mut self) {
        self.rows.clear();
        self.sum.iter_mut().for_each(|s| *s = 0.0);
        self.since_resum = 0;
    }

    fn mean_into(&self, out: &mut [f64]) {
        let n = self.rows.len().max(1) as f64;
        for (o, s) in out.iter_mut().zip(&self.sum) {
            *o = s / n;
        }
    }
}

/// Standardized rolling means of `w` rows over a sequence, skipping the first `w − 1`.
fn smoothed_features(rows: &[Vec<f64>], w: usize, center: &[f64], scale: &[f64]) -> Vec<Vec<f64>> {
    let d = center.len();
    let mut rm = RollingMean::new(w, d);
    let mut out = Vec::with_capacity(rows.len());
    let mut buf = vec![0.0; d];
    for r in rows {
        rm.push(r);
        if rm.full() {
            rm.mean_into(&mut buf);
            out.push(standardize(&buf, center, scale));
        }
    }
    out
}

fn standardize(x: &[f64], center: &[f64], scale: &[f64]) -> Vec<f64> {
    x.iter()
        .zip(center.iter().zip(scale))
        .map(|(v, (c, s))| (v - c) / s)
        .collect()
}

/// Variance ratio of a sample: `b · var(means of blocks of b) / var(values)`. About 1 for
/// white noise; about `b` for a series whose level wanders (trend, random walk).
pub(crate) fn variance_ratio(xs: &[f64], b: usize) -> f64 {
    let n = xs.len();
    if b < 2 || n < 2 * b {
        return 1.0;
    }
    let mean = xs.iter().sum::<f64>() / n as f64;
    let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n as f64;
    if var.is_nan() || var <= 0.0 {
        return 1.0;
    }
    let blocks: Vec<f64> = xs
        .chunks_exact(b)
        .map(|c| c.iter().sum::<f64>() / b as f64)
        .collect();
    let vb = blocks.iter().map(|m| (m - mean) * (m - mean)).sum::<f64>() / blocks.len() as f64;
    b as f64 * vb / var
}

/// Input transform per variable. A variable whose level wandered during warm-up (variance
/// ratio above `wander_ratio`) is replaced by its deviation from an exponentially
/// weighted mean of its past: a high-pass filter, so slow drifts do not alarm while
/// changes faster than the time constant still do. Other variables pass unchanged.
#[derive(Debug, Clone)]
struct Detrend {
    alpha: f64,
    on: Vec<bool>,
    ew: Vec<f64>,
}

impl Detrend {
    fn fit(rows: &[Vec<f64>], d: usize, wander_ratio: f64, horizon: usize) -> Self {
        let n = rows.len();
        let block = ((n as f64).sqrt() as usize).max(4);
        let horizon = horizon.max(2);
        let mut on = vec![false; d];
        let mut ew = vec![0.0; d];
        for j in 0..d {
            let col: Vec<f64> = rows.iter().map(|r| r[j]).collect();
            on[j] = variance_ratio(&col, block) > wander_ratio;
            // Start the moving mean at the median of the first half time constant.
            ew[j] = median(&col[..(horizon / 2).clamp(1, n.max(1))]);
        }
        Self {
            alpha: 2.0 / (horizon as f64 + 1.0),
            on,
            ew,
        }
    }

    /// The transformed row (the moving means are not updated: see [`Detrend::learn`]).
    fn apply(&self, row: &[f64], out: &mut Vec<f64>) {
        out.clear();
        for (j, &x) in row.iter().enumerate() {
            out.push(if self.on[j] { x - self.ew[j] } else { x });
        }
    }

    /// Moves the moving means towards a row, each step clipped to `±limit[j]` (a Huber
    /// update; `None`: unclipped): slow drifts are followed fully, while a fault far outside
    /// the normal spread moves the mean only slowly — otherwise the filter would remember a
    /// large fault and mirror it as a false excursion once it ends.
    fn learn(&mut self, row: &[f64], limit: Option<&[f64]>) {
        for (j, &x) in row.iter().enumerate() {
            if self.on[j] {
                let step = x - self.ew[j];
                let step = limit.map_or(step, |l| step.clamp(-l[j], l[j]));
                self.ew[j] += self.alpha * step;
            }
        }
    }
}

struct Head {
    window: usize,
    model: Option<PcaModel>,
    rolling: RollingMean,
}

/// Mean of the last `w` values of a scalar statistic (running sum, re-summed every `w`).
#[derive(Debug, Clone)]
struct RollingScalar {
    w: usize,
    last: VecDeque<f64>,
    sum: f64,
    since_resum: usize,
}

impl RollingScalar {
    fn new(w: usize) -> Self {
        let w = w.max(1);
        Self {
            w,
            last: VecDeque::with_capacity(w),
            sum: 0.0,
            since_resum: 0,
        }
    }

    /// Pushes a value (NaN counts as 0) and returns the mean of the values held.
    fn push(&mut self, x: f64) -> f64 {
        let x = if x.is_finite() { x } else { 0.0 };
        if self.last.len() == self.w
            && let Some(old) = self.last.pop_front()
        {
            self.sum -= old;
        }
        self.last.push_back(x);
        self.sum += x;
        self.since_resum += 1;
        if self.since_resum >= self.w {
            self.since_resum = 0;
            self.sum = self.last.iter().sum();
        }
        self.sum / self.last.len() as f64
    }

    fn full(&self) -> bool {
        self.last.len() == self.w
    }

    fn clear(&mut self) {
        self.last.clear();
        self.sum = 0.0;
        self.since_resum = 0;
    }
}

/// A mean-of-Q head (`PcaConfig::q_mean_windows`): the mean of the capped raw-row Q over
/// the last `w` rows.
struct QMeanHead {
    q: RollingScalar,
    /// Each raw Q is capped at this before it enters the mean.
    cap: f64,
    /// The warm-up's median raw Q, used to refill the window after an excursion.
    typical: f64,
}

impl QMeanHead {
    /// Forgets the rows seen: the window holds `w` typical values again.
    fn refill(&mut self) {
        self.q.clear();
        for _ in 0..self.q.w {
            self.q.push(self.typical);
        }
    }
}

/// T² and Q heads for each smoothing window (heads `2i` and `2i + 1` for window `i`).
pub(crate) struct PcaScorer {
    d: usize,
    explained: f64,
    folds: usize,
    refit_every: usize,
    wander_ratio: f64,
    horizon: usize,
    /// Weight of a clearly normal row in the re-centring (0 = off).
    adapt_rate: f64,
    adapt_below: f64,
    /// Size of the pool of recent normal rows used by refits.
    keep: usize,
    rule: ThresholdRule,
    /// Thresholds chosen at the end of the warm-up.
    warm_thr: Vec<f64>,
    /// Per-head factor applied to the statistics after a refit, so that the warm-up
    /// thresholds keep their meaning: `warm / max(warm, recalibrated)`.
    factor: Vec<f64>,
    center: Vec<f64>,
    /// The band of accepted levels is `[min(lo, center), max(hi, center)]` per variable.
    /// Normally `lo = hi = center`; after a re-baselining only `center` moves to the
    /// settled level, so the levels between the old and the new operating point stay
    /// normal while the process relaxes back (a cooling bearing, a refilling tank), until
    /// gated re-centring draws `lo` and `hi` in to the operating point.
    lo: Vec<f64>,
    hi: Vec<f64>,
    scale: Vec<f64>,
    heads: Vec<Head>,
    detrend: Option<Detrend>,
    pool: VecDeque<Vec<f64>>,
    since_refit: usize,
    /// The current row after the input transform (kept for `feedback`).
    row: Vec<f64>,
    feat: Vec<f64>,
    z: Vec<f64>,
    rebase: Rebaseline,
    detrend_clip: f64,
    /// Per-variable step limit of the moving means: `detrend_clip` robust σ.
    limit: Vec<f64>,
    /// Fast Q head (`PcaConfig::fast_q`): a k-of-n statistic of the raw-row Q.
    fast: Option<KthOfLast>,
    fast_margin: f64,
    /// Calm (rows without an alarm) the fast head needs to open an alarm.
    fast_calm: usize,
    /// Mean-of-Q heads (`PcaConfig::q_mean_windows`), after the window heads.
    qmean: Vec<QMeanHead>,
    qmean_margin: f64,
    qmean_cap: f64,
}

/// State of the re-baselining after a large excursion (see `PcaConfig::rebaseline_drop`).
#[derive(Debug, Clone)]
struct Rebaseline {
    /// Peak ratio required and drop factor (0 = off).
    drop: f64,
    /// The ratio must also be below this (`PcaConfig::rebaseline_below`).
    below_ratio: f64,
    /// Index of the head whose ratio is watched, and its window (measured: row 351).
    probe: usize,
    probe_window: usize,
    /// Statistic/threshold ratio of the probe head on the current row.
    ratio: f64,
    /// Peak of that ratio in the current alarm episode (0 outside episodes).
    peak: f64,
    /// Consecutive rows below `peak / drop`.
    below: usize,
    /// Rows left in the settling phase, in which the centre is the mean of the rows since
    /// the drop, at most the longest window of them.
    settle_left: usize,
    settle_len: usize,
    settle: RollingMean,
    /// Rows left in the refining phase (`refine_len` after settling), and the weight of
    /// the current centre estimate in rows.
    refine_left: usize,
    refine_len: usize,
    refine_n: usize,
}

impl PcaScorer {
    pub(crate) fn new(cfg: &PcaConfig, d: usize, warmup: usize) -> Self {
        let mut windows: Vec<usize> = cfg
            .windows
            .iter()
            .map(|w| (*w).clamp(1, warmup / 4 + 1))
            .collect();
        windows.sort_unstable();
        windows.dedup();
        if windows.is_empty() {
            windows.push(1);
        }
        let probe = windows.iter().position(|w| *w > 1).unwrap_or(0);
        let longest = windows.iter().copied().max().unwrap_or(1);
        let horizon = cfg.detrend_horizon.unwrap_or(warmup / 4);
        let settle_len = horizon.max(2 * longest);
        let rebase = Rebaseline {
            drop: cfg
                .rebaseline_drop
                .filter(|f| f.is_finite() && *f > 1.0)
                .unwrap_or(0.0),
            below_ratio: if cfg.rebaseline_below.is_nan() {
                0.0
            } else {
                cfg.rebaseline_below.max(0.0)
            },
            probe,
            probe_window: windows[probe],
            settle: RollingMean::new(longest, d),
            settle_len,
            refine_left: 0,
            refine_len: warmup,
            refine_n: 0,
            ratio: 0.0,
            peak: 0.0,
            below: 0,
            settle_left: 0,
        };
        Self {
            d,
            explained: if cfg.explained.is_finite() {
                cfg.explained.clamp(0.5, 0.999)
            } else {
                0.9
            },
            folds: cfg.folds,
            refit_every: cfg.refit_every.unwrap_or(warmup),
            rule: cfg.threshold,
            warm_thr: Vec::new(),
            factor: Vec::new(),
            wander_ratio: if cfg.wander_ratio.is_nan() {
                f64::INFINITY
            } else {
                cfg.wander_ratio
            },
            horizon: cfg.detrend_horizon.unwrap_or(warmup / 4),
            adapt_rate: cfg.adapt_horizon.map_or(0.0, |h| 1.0 / h.max(1) as f64),
            adapt_below: if cfg.adapt_below.is_finite() {
                cfg.adapt_below.clamp(0.0, 1.0)
            } else {
                0.5
            },
            keep: warmup,
            center: vec![0.0; d],
            lo: vec![0.0; d],
            hi: vec![0.0; d],
            scale: vec![1.0; d],
            heads: windows
                .into_iter()
                .map(|w| Head {
                    window: w,
                    model: None,
                    rolling: RollingMean::new(w, d),
                })
                .collect(),
            detrend: None,
            pool: VecDeque::new(),
            since_refit: 0,
            row: Vec::with_capacity(d),
            feat: vec![0.0; d],
            z: vec![0.0; d],
            rebase,
            detrend_clip: if cfg.detrend_clip.is_nan() || cfg.detrend_clip <= 0.0 {
                f64::INFINITY
            } else {
                cfg.detrend_clip
            },
            limit: vec![f64::INFINITY; d],
            fast: cfg
                .fast_q
                .filter(|_| cfg.windows.contains(&1))
                .map(|(k, n)| KthOfLast::new(k, n)),
            fast_calm: longest,
            fast_margin: if cfg.fast_margin.is_finite() {
                cfg.fast_margin.max(0.0)
            } else {
                1.0
            },
            qmean: if cfg.windows.contains(&1) {
                let mut w: Vec<usize> = cfg
                    .q_mean_windows
                    .iter()
                    .map(|w| (*w).clamp(2, warmup / 4 + 2))
                    .collect();
                w.sort_unstable();
                w.dedup();
                w.into_iter()
                    .map(|w| QMeanHead {
                        q: RollingScalar::new(w),
                        cap: f64::INFINITY,
                        typical: 0.0,
                    })
                    .collect()
            } else {
                Vec::new()
            },
            qmean_margin: if cfg.q_mean_margin.is_finite() {
                cfg.q_mean_margin.max(0.0)
            } else {
                7.0
            },
            qmean_cap: if cfg.q_mean_cap.is_nan() || cfg.q_mean_cap < 1.0 {
                f64::INFINITY
            } else {
                cfg.q_mean_cap
            },
        }
    }

    /// Index of the first mean-of-Q head, and of the fast head after them.
    fn qmean_base(&self) -> usize {
        2 * self.heads.len()
    }
    fn fast_index(&self) -> usize {
        2 * self.heads.len() + self.qmean.len()
    }

    /// The standardized deviation of window head `i`'s current mean (as scored).
    fn deviation(&self, i: usize) -> Vec<f64> {
        let mut feat = vec![0.0; self.d];
        self.heads[i].rolling.mean_into(&mut feat);
        (0..self.d)
            .map(|j| {
                let (c, f) = (self.center[j], feat[j]);
                let near = f.clamp(self.lo[j].min(c), self.hi[j].max(c));
                (f - near) / self.scale[j]
            })
            .collect()
    }

    /// Watches the probe head through an alarm episode and restarts the baseline when a
    /// large excursion has cleared (see `PcaConfig::rebaseline_drop`).
    fn watch_excursion(&mut self, verdict: Verdict) {
        let rb = &mut self.rebase;
        if rb.drop <= 0.0 {
            return;
        }
        if !verdict.anomalous {
            rb.peak = 0.0;
            rb.below = 0;
            return;
        }
        rb.peak = rb.peak.max(rb.ratio);
        if rb.peak >= rb.drop && rb.ratio < (rb.peak / rb.drop).min(rb.below_ratio) {
            rb.below += 1;
        } else {
            rb.below = 0;
        }
        if rb.below < rb.probe_window {
            return;
        }
        // The excursion is over: restart the centre from the mean of the rows since the drop
        // (the probe head's window) and let it follow the settling process for `settle_len`
        // rows. `lo`/`hi` keep the old operating point, so levels in between stay normal.
        rb.peak = 0.0;
        rb.below = 0;
        let recent: Vec<Vec<f64>> = self.heads[rb.probe].rolling.rows.iter().cloned().collect();
        rb.settle.clear();
        for r in &recent {
            rb.settle.push(r);
        }
        rb.settle.mean_into(&mut self.center);
        rb.settle_left = rb.settle_len;
        // The mean-of-Q windows forget the excursion too (otherwise its rows hold them up
        // for a whole window: measured on SKAB, +1.3 points of false alarms).
        for qh in &mut self.qmean {
            qh.refill();
        }
        // Longer windows forget the excursion: the rows since the drop, padded with the
        // new centre.
        for h in self.heads.iter_mut().filter(|h| h.window > recent.len()) {
            h.rolling.clear();
            for _ in recent.len()..h.window {
                h.rolling.push(&self.center);
            }
            for r in &recent {
                h.rolling.push(r);
            }
        }
    }

    fn fit_standardization(&mut self, rows: &[Vec<f64>]) {
        for j in 0..self.d {
            let col: Vec<f64> = rows.iter().map(|r| r[j]).collect();
            let (c, s) = robust_center_scale(&col);
            self.center[j] = c;
            self.lo[j] = c;
            self.hi[j] = c;
            self.scale[j] = s;
            self.limit[j] = self.detrend_clip * s;
        }
    }

    fn refit(&mut self) {
        let rows: Vec<Vec<f64>> = self.pool.iter().cloned().collect();
        self.fit_standardization(&rows);
        for (i, h) in self.heads.iter_mut().enumerate() {
            let feats = smoothed_features(&rows, h.window, &self.center, &self.scale);
            if feats.len() > 2 * self.d {
                let (model, stats) =
                    PcaModel::fit_predictive(&feats, self.d, self.explained, self.folds);
                let (t2s, qs): (Vec<f64>, Vec<f64>) = stats.into_iter().unzip();
                for (k, s) in [(2 * i, t2s), (2 * i + 1, qs)] {
                    if let (Some(w), Some(f)) = (self.warm_thr.get(k), self.factor.get_mut(k)) {
                        let new = self.rule.threshold(&s, 1e-6);
                        *f = if w.is_finite() && *w > 0.0 {
                            w / new.max(*w)
                        } else {
                            1.0
                        };
                    }
                }
                h.model = Some(model);
            }
        }
    }
}

impl Scorer for PcaScorer {
    fn heads(&self) -> usize {
        self.fast_index() + usize::from(self.fast.is_some())
    }

    fn contributions(&self, head: usize, out: &mut Vec<f64>) {
        out.clear();
        // The mean-of-Q and fast heads explain with the raw row's Q (window 1 is head 0 when
        // they exist).
        let (i, q) = if head >= self.qmean_base() {
            (0, true)
        } else {
            (head / 2, head % 2 == 1)
        };
        if let Some(m) = self.heads.get(i).and_then(|h| h.model.as_ref()) {
            m.contributions(&self.deviation(i), q, out);
        }
    }

    fn thresholds(&mut self, thresholds: &[f64]) {
        self.warm_thr = thresholds.to_vec();
        self.factor = vec![1.0; thresholds.len()];
    }

    fn fit(&mut self, raw: &[Vec<f64>]) -> Vec<Calibration> {
        let mut detrend = Detrend::fit(raw, self.d, self.wander_ratio, self.horizon);
        let rows: Vec<Vec<f64>> = raw
            .iter()
            .map(|r| {
                let mut t = Vec::with_capacity(self.d);
                detrend.apply(r, &mut t);
                detrend.learn(r, None);
                t
            })
            .collect();
        self.detrend = Some(detrend);
        self.fit_standardization(&rows);
        let mut cals = Vec::with_capacity(self.fast_index() + 1);
        let mut fast_cal = None;
        let mut qmean_cals = Vec::with_capacity(self.qmean.len());
        for h in &mut self.heads {
            let feats = smoothed_features(&rows, h.window, &self.center, &self.scale);
            let (model, stats) =
                PcaModel::fit_predictive(&feats, self.d, self.explained, self.folds);
            let (t2s, qs): (Vec<f64>, Vec<f64>) = stats.into_iter().unzip();
            if let (1, Some(f)) = (h.window, &mut self.fast) {
                let rule = ThresholdRule {
                    margin: self.fast_margin,
                    ..self.rule
                };
                let cal: Vec<f64> = qs.iter().map(|x| f.push(*x)).collect();
                f.clear();
                fast_cal = Some(if model.has_residual {
                    Calibration::fixed(rule.threshold(&cal, 1e-6)).opening(self.fast_calm)
                } else {
                    Calibration::fixed(f64::INFINITY)
                });
            }
            if h.window == 1 {
                let rule = ThresholdRule {
                    margin: self.qmean_margin,
                    ..self.rule
                };
                let typical = median(&qs);
                for qh in &mut self.qmean {
                    // Calibrated on the same statistic over the out-of-fold warm-up rows
                    // (uncapped: the cap derives from the threshold).
                    let cal: Vec<f64> = qs
                        .iter()
                        .filter_map(|x| {
                            let m = qh.q.push(*x);
                            qh.q.full().then_some(m)
                        })
                        .collect();
                    qh.q.clear();
                    let thr = if model.has_residual {
                        rule.threshold(&cal, 1e-6)
                    } else {
                        f64::INFINITY
                    };
                    qh.cap = self.qmean_cap * thr;
                    qh.typical = typical;
                    // Not a gate of re-centring: a 32-row mean stays near its threshold long
                    // after a burst and would hold the baseline still (measured: TEP fault 20
                    // first flagged at 40 instead of 16 rows).
                    qmean_cals.push(Calibration::fixed(thr).not_gating());
                }
            }
            cals.push(Calibration::from_stats(t2s, 1e-6));
            cals.push(if model.has_residual {
                Calibration::from_stats(qs, 1e-6)
            } else {
                Calibration::fixed(f64::INFINITY)
            });
            h.model = Some(model);
            for r in rows.iter().skip(rows.len().saturating_sub(h.window)) {
                h.rolling.push(r);
            }
        }
        // Heads in order: windows, mean-of-Q, fast. The mean-of-Q windows start from the end
        // of the warm-up (its raw rows' Q, in sample).
        let longest_q = self.qmean.iter().map(|h| h.q.w).max().unwrap_or(0);
        if let Some(m) = self
            .heads
            .first()
            .filter(|h| h.window == 1 && longest_q > 0)
            .and_then(|h| h.model.as_ref())
        {
            let tail: Vec<f64> = rows[rows.len().saturating_sub(longest_q)..]
                .iter()
                .map(|r| m.t2_q(&standardize(r, &self.center, &self.scale)).1)
                .collect();
            for qh in &mut self.qmean {
                for q in &tail[tail.len().saturating_sub(qh.q.w)..] {
                    qh.q.push(q.min(qh.cap));
                }
            }
        }
        if self.refit_every > 0 {
            self.pool = rows.into_iter().rev().take(self.keep).rev().collect();
        }
        cals.extend(qmean_cals);
        cals.extend(fast_cal);
        cals
    }

    fn step(&mut self, raw: &[f64], stats: &mut [f64]) {
        match &mut self.detrend {
            Some(d) => d.apply(raw, &mut self.row),
            None => {
                self.row.clear();
                self.row.extend_from_slice(raw);
            }
        }
        let rb = &mut self.rebase;
        if rb.settle_left > 0 {
            rb.settle_left -= 1;
            rb.settle.push(&self.row);
            rb.settle.mean_into(&mut self.center);
            if rb.settle_left == 0 {
                // Settled: refine that short-window estimate as normal rows come in.
                rb.refine_n = rb.settle.w;
                rb.refine_left = rb.refine_len;
            }
        }
        for (i, h) in self.heads.iter_mut().enumerate() {
            h.rolling.push(&self.row);
            h.rolling.mean_into(&mut self.feat);
            let (t2, q) = match &h.model {
                Some(m) => {
                    for j in 0..self.d {
                        let (c, f) = (self.center[j], self.feat[j]);
                        let near = f.clamp(self.lo[j].min(c), self.hi[j].max(c));
                        self.z[j] = (f - near) / self.scale[j] - m.mean[j];
                    }
                    m.t2_q_dev(&self.z)
                }
                None => (0.0, 0.0),
            };
            stats[2 * i] = t2 * self.factor.get(2 * i).copied().unwrap_or(1.0);
            stats[2 * i + 1] = q * self.factor.get(2 * i + 1).copied().unwrap_or(1.0);
        }
        // Window 1 is head 0 (windows are sorted and these heads need window 1).
        let base = self.qmean_base();
        for (k, qh) in self.qmean.iter_mut().enumerate() {
            stats[base + k] = qh.q.push(stats[1].min(qh.cap));
        }
        let fi = self.fast_index();
        if let Some(f) = &mut self.fast {
            stats[fi] = f.push(stats[1]);
        }
        let p = self.rebase.probe;
        let ratio = |k: usize| match self.warm_thr.get(k) {
            Some(t) if *t > 0.0 && t.is_finite() => stats[k] / t,
            _ => 0.0,
        };
        self.rebase.ratio = ratio(2 * p).max(ratio(2 * p + 1));
    }

    fn feedback(&mut self, raw: &[f64], verdict: Verdict) {
        let settling = self.rebase.settle_left > 0;
        self.watch_excursion(verdict);
        if let Some(d) = &mut self.detrend {
            // While settling the filter follows the process freely.
            d.learn(raw, (!settling).then_some(self.limit.as_slice()));
        }
        let rb = &mut self.rebase;
        if rb.refine_left > 0 {
            // After settling, the centre is the running mean of the rows since then (all
            // not alarming), which converges as fast as the warm-up's own estimate did.
            rb.refine_left -= 1;
            if !verdict.anomalous {
                rb.refine_n += 1;
                let w = 1.0 / rb.refine_n as f64;
                for (c, x) in self.center.iter_mut().zip(&self.row) {
                    *c += w * (x - *c);
                }
            }
        } else if self.adapt_rate > 0.0
            && verdict.gate_ratio < self.adapt_below
            && !verdict.anomalous
        {
            let r = self.adapt_rate;
            for (j, x) in self.row.iter().enumerate() {
                self.center[j] += r * (x - self.center[j]);
                self.lo[j] += r * (x - self.lo[j]);
                self.hi[j] += r * (x - self.hi[j]);
            }
        }
        if self.refit_every == 0 {
            return;
        }
        if verdict.is_normal() {
            if self.pool.len() >= self.keep {
                self.pool.pop_front();
            }
            self.pool.push_back(self.row.clone());
        }
        self.since_refit += 1;
        if self.since_refit >= self.refit_every {
            self.since_refit = 0;
            if self.pool.len() >= self.keep / 2 {
                self.refit();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kth_of_last_is_a_k_of_n_rule() {
        let mut k = KthOfLast::new(2, 3);
        let out: Vec<f64> = [5.0, 1.0, 4.0, 0.0, 0.0, 9.0]
            .iter()
            .map(|x| k.push(*x))
            .collect();
        assert_eq!(out, vec![0.0, 0.0, 4.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn reconstruction_contributions_name_the_faulty_variable() {
        // Two strongly correlated variables and an independent one.
        let rows: Vec<Vec<f64>> = (0..400)
            .map(|i| {
                let f = ((i * 7919) % 101) as f64 / 50.0 - 1.0;
                let e = ((i * 104_729) % 97) as f64 / 485.0 - 0.1;
                let g = ((i * 1299) % 89) as f64 / 44.5 - 1.0;
                vec![f + e, f - e, g]
            })
            .collect();
        let m = PcaModel::fit(&rows, 3, 0.9);
        let mut out = Vec::new();
        for (k, q) in [(0, true), (1, true), (2, false)] {
            let mut x = m.mean.clone();
            x[k] += 3.0;
            m.contributions(&x, q, &mut out);
            let top = (0..3).max_by(|a, b| out[*a].total_cmp(&out[*b])).unwrap();
            assert_eq!(top, k, "{out:?}");
            assert!(out.iter().all(|w| *w >= 0.0));
        }
    }

    /// A deterministic uniform generator on [-0.5, 0.5) (a 64-bit LCG's top 53 bits).
    fn uniform(seed: u64) -> impl FnMut() -> f64 {
        let mut s = seed;
        move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        }
    }

    /// Three correlated variables (one factor, AR(1)) plus independent noise; from row 300 to
    /// 339 variable 1 is offset by `size` against the factor (a correlation break: Q).
    fn break_rows(size: f64) -> Vec<Vec<f64>> {
        let mut u = uniform(11);
        let mut f = 0.0;
        (0..500)
            .map(|i| {
                f = 0.8 * f + u();
                let off = if (300..340).contains(&i) { size } else { 0.0 };
                vec![f + 0.1 * u(), f + 0.1 * u() + off, -f + 0.1 * u()]
            })
            .collect()
    }

    fn first_alarm(cfg: PcaConfig, rows: &[Vec<f64>]) -> (Option<usize>, usize) {
        let mut det = pca(cfg, 3, 200);
        let mut first = None;
        let mut last = 0;
        for (i, r) in rows.iter().enumerate() {
            if det.update(i as i64, r).anomalous {
                first = first.or(Some(i));
                last = i;
            }
        }
        (first, last)
    }

    #[test]
    fn the_fast_q_head_opens_an_alarm_on_its_third_row_and_does_not_hold_it() {
        let slow = PcaConfig {
            refit_every: Some(0),
            ..PcaConfig::default()
        };
        let fast = PcaConfig {
            fast_q: Some((3, 3)),
            ..slow.clone()
        };
        // Clean: no alarm either way.
        assert_eq!(first_alarm(fast.clone(), &break_rows(0.0)).0, None);
        // A small correlation break (0.15: about 5 σ of variable 1's own noise, a third of
        // the factor's σ, so within the variable's normal range): the raw and smoothed heads
        // miss it; the fast head flags it on its third row, and the alarm ends within the
        // release (5 rows) after the break ends at row 339.
        let rows = break_rows(0.15);
        assert_eq!(first_alarm(slow.clone(), &rows).0, None);
        let (first, last) = first_alarm(fast.clone(), &rows);
        assert_eq!(first, Some(302));
        assert!((339..=345).contains(&last), "last alarm at {last}");
        // A larger one: the fast head is 7 rows ahead of the others.
        let rows = break_rows(0.2);
        assert_eq!(first_alarm(slow, &rows).0, Some(309));
        assert_eq!(first_alarm(fast, &rows).0, Some(302));
    }

    /// Like `break_rows`, but from row 300 on variable 1's own noise is `gain` times larger
    /// (a persistent rise of the residual variance, no mean shift: a sticking valve).
    const GAIN: f64 = 3.0;

    fn noisier_rows(gain: f64, n: usize) -> Vec<Vec<f64>> {
        let mut u = uniform(23);
        let mut f = 0.0;
        (0..n)
            .map(|i| {
                f = 0.8 * f + u();
                let g = if i >= 300 { gain } else { 1.0 };
                vec![f + 0.1 * u(), f + 0.1 * g * u(), -f + 0.1 * u()]
            })
            .collect()
    }

    #[test]
    fn the_mean_of_q_head_flags_a_persistent_variance_rise_that_row_means_miss() {
        let without = PcaConfig {
            windows: vec![1, 3, 8, 32],
            refit_every: Some(0),
            ..PcaConfig::default()
        };
        let with = PcaConfig {
            q_mean_windows: vec![32],
            ..without.clone()
        };
        // Clean: no alarm in 2 000 rows either way.
        let clean = noisier_rows(1.0, 2000);
        assert_eq!(first_alarm(without.clone(), &clean).0, None);
        assert_eq!(first_alarm(with.clone(), &clean).0, None);
        // Variable 1's noise ×GAIN from row 300: the row heads (raw, and means of 3, 8 and 32
        // rows, which average noise away) stay quiet; the mean-of-Q head (32 rows) flags it
        // within 60 rows (measured: row 351).
        let rows = noisier_rows(GAIN, 800);
        let (miss, _) = first_alarm(without, &rows);
        let (hit, _) = first_alarm(with, &rows);
        assert_eq!(miss, None);
        let at = hit.expect("the variance rise is flagged");
        assert!((300..=360).contains(&at), "flagged at row {at}");
    }

    #[test]
    fn variance_ratio_separates_noise_from_trend() {
        let mut u = uniform(7);
        let noise: Vec<f64> = (0..400).map(|_| u() + 0.5).collect();
        assert!(variance_ratio(&noise, 20) < 2.5);
        let trend: Vec<f64> = noise
            .iter()
            .enumerate()
            .map(|(i, x)| x + i as f64 * 0.01)
            .collect();
        assert!(variance_ratio(&trend, 20) > 10.0);
    }

    #[test]
    fn detrend_steps_are_clipped() {
        let mut d = Detrend {
            alpha: 0.1,
            on: vec![true, false],
            ew: vec![0.0, 0.0],
        };
        d.learn(&[100.0, 100.0], Some(&[3.0, 3.0]));
        assert!(
            (d.ew[0] - 0.3).abs() < 1e-12,
            "a far value moves the mean by alpha·clip"
        );
        assert_eq!(
            d.ew[1], 0.0,
            "variables that do not wander are not filtered"
        );
        d.learn(&[1.3, 0.0], Some(&[3.0, 3.0]));
        assert!(
            (d.ew[0] - 0.4).abs() < 1e-12,
            "a near value moves it by alpha·distance"
        );
        let mut out = Vec::new();
        d.apply(&[2.0, 5.0], &mut out);
        assert_eq!(out, vec![1.6, 5.0]);
    }

    #[test]
    fn recentring_moves_only_on_clearly_normal_rows() {
        let cfg = PcaConfig {
            adapt_horizon: Some(10),
            refit_every: Some(0),
            ..PcaConfig::default()
        };
        let mut sc = PcaScorer::new(&cfg, 2, 100);
        sc.row = vec![1.0, -2.0];
        let quiet = Verdict {
            ratio: 0.2,
            gate_ratio: 0.2,
            anomalous: false,
        };
        let near = Verdict {
            ratio: 0.8,
            gate_ratio: 0.8,
            anomalous: false,
        };
        let alarmed = Verdict {
            ratio: 0.1,
            gate_ratio: 0.1,
            anomalous: true,
        };
        sc.feedback(&[1.0, -2.0], near);
        sc.feedback(&[1.0, -2.0], alarmed);
        assert_eq!(sc.center, vec![0.0, 0.0]);
        sc.feedback(&[1.0, -2.0], quiet);
        assert!((sc.center[0] - 0.1).abs() < 1e-12 && (sc.center[1] + 0.2).abs() < 1e-12);
        // Off by default (the `pca` detector).
        let mut off = PcaScorer::new(&PcaConfig::default(), 2, 100);
        off.row = vec![1.0, -2.0];
        off.feedback(&[1.0, -2.0], quiet);
        assert_eq!(off.center, vec![0.0, 0.0]);
    }

    #[test]
    fn predictive_covariance_inflates_a_wandering_variable() {
        // Variable 0 steps between the two halves, variable 1 is stationary.
        let rows: Vec<Vec<f64>> = (0..200)
            .map(|i| {
                vec![
                    if i < 100 { 0.0 } else { 5.0 } + (i % 3) as f64,
                    (i % 5) as f64,
                ]
            })
            .collect();
        let (m, stats) = PcaModel::fit_predictive(&rows, 2, 0.9, 2);
        assert_eq!(stats.len(), 200);
        // The leading component is the wandering variable with variance ≈ 25 + noise.
        assert!(m.lambda[0] > 20.0, "{:?}", m.lambda);
    }
}
