//! Feature engineering: operating-condition clusters, per-condition normalisation, a linear health indicator,
//! and trailing-window features computed incrementally (so batch training and live prediction share one code
//! path and memory per asset is bounded by the longest window).

use serde::{Deserialize, Serialize};

use crate::data::Run;
use crate::error::PdmError;

/// Trailing windows, in observations (not time).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct FeatureConfig {
    pub mean_windows: Vec<usize>,
    pub slope_windows: Vec<usize>,
    pub ewma_alphas: Vec<f64>,
}

impl Default for FeatureConfig {
    fn default() -> Self {
        FeatureConfig {
            mean_windows: vec![5, 15, 30],
            slope_windows: vec![10, 30],
            ewma_alphas: vec![0.1],
        }
    }
}

impl FeatureConfig {
    fn max_window(&self) -> usize {
        self.mean_windows
            .iter()
            .chain(&self.slope_windows)
            .copied()
            .max()
            .unwrap_or(1)
            .max(1)
    }

    /// Features per channel: last, means, EWMAs, slopes, slope over the whole history.
    fn per_channel(&self) -> usize {
        1 + self.mean_windows.len() + self.ewma_alphas.len() + self.slope_windows.len() + 1
    }
}

/// Operating conditions found by k-means on the (standardised) operating settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Conditions {
    /// Per-setting divisor applied before distances are taken.
    pub scale: Vec<f64>,
    /// Cluster centres in scaled units; one (empty) centre when there are no settings.
    pub centers: Vec<Vec<f64>>,
}

impl Conditions {
    /// Smallest k ≤ 8 whose clusters explain ≥ 99.9 % of the settings' variance; 1 if none does (settings are then
    /// noise around one condition, as in C-MAPSS FD001).
    fn fit(rows: &[&[f64]]) -> Conditions {
        let dims = rows.first().map_or(0, |r| r.len());
        if dims == 0 || rows.is_empty() {
            return Conditions {
                scale: vec![1.0; dims],
                centers: vec![vec![0.0; dims]],
            };
        }
        let stride = rows.len().div_ceil(4000);
        let mut scale = vec![0.0; dims];
        let mut mean = vec![0.0; dims];
        let sample: Vec<&[f64]> = rows.iter().step_by(stride).copied().collect();
        for d in 0..dims {
            let (m, s) = mean_std(sample.iter().map(|r| r[d]));
            mean[d] = m;
            scale[d] = if s > 1e-12 { s } else { 1.0 };
        }
        let pts: Vec<Vec<f64>> = sample
            .iter()
            .map(|r| (0..dims).map(|d| r[d] / scale[d]).collect())
            .collect();
        let centre: Vec<f64> = (0..dims).map(|d| mean[d] / scale[d]).collect();
        let total: f64 = pts.iter().map(|p| dist2(p, &centre)).sum();
        let mut best = vec![centre];
        if total > 0.0 {
            for k in 2..=8.min(pts.len()) {
                let (centers, wss) = kmeans(&pts, k);
                if 1.0 - wss / total >= 0.999 {
                    best = centers;
                    break;
                }
            }
        }
        Conditions {
            scale,
            centers: best,
        }
    }

    pub(crate) fn assign(&self, settings: &[f64]) -> usize {
        if self.centers.len() == 1 {
            return 0;
        }
        let mut best = (f64::INFINITY, 0);
        for (i, c) in self.centers.iter().enumerate() {
            let d: f64 = c
                .iter()
                .zip(settings)
                .zip(&self.scale)
                .map(|((c, s), k)| (s / k - c).powi(2))
                .sum();
            if d < best.0 {
                best = (d, i);
            }
        }
        best.1
    }
}

fn dist2(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum()
}

/// Lloyd's k-means with farthest-point initialisation (deterministic). Returns centres and within-cluster SS.
fn kmeans(pts: &[Vec<f64>], k: usize) -> (Vec<Vec<f64>>, f64) {
    let dims = pts[0].len();
    let mut centers = vec![pts[0].clone()];
    let mut nearest: Vec<f64> = pts.iter().map(|p| dist2(p, &centers[0])).collect();
    while centers.len() < k {
        let far = nearest
            .iter()
            .enumerate()
            .fold((0, -1.0), |b, (i, &d)| if d > b.1 { (i, d) } else { b })
            .0;
        centers.push(pts[far].clone());
        for (n, p) in nearest.iter_mut().zip(pts) {
            *n = n.min(dist2(p, centers.last().unwrap_or(&pts[0])));
        }
    }
    let mut assign = vec![usize::MAX; pts.len()];
    for _ in 0..100 {
        let mut changed = false;
        for (a, p) in assign.iter_mut().zip(pts) {
            let best = (0..k)
                .min_by(|&i, &j| dist2(p, &centers[i]).total_cmp(&dist2(p, &centers[j])))
                .unwrap_or(0);
            if *a != best {
                *a = best;
                changed = true;
            }
        }
        if !changed {
            break;
        }
        let mut sums = vec![vec![0.0; dims]; k];
        let mut counts = vec![0usize; k];
        for (&a, p) in assign.iter().zip(pts) {
            counts[a] += 1;
            for d in 0..dims {
                sums[a][d] += p[d];
            }
        }
        for c in 0..k {
            if counts[c] > 0 {
                centers[c] = sums[c].iter().map(|s| s / counts[c] as f64).collect();
            }
        }
    }
    let wss = assign
        .iter()
        .zip(pts)
        .map(|(&a, p)| dist2(p, &centers[a]))
        .sum();
    (centers, wss)
}

fn mean_std(it: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let (mut n, mut m, mut m2) = (0.0, 0.0, 0.0);
    for x in it {
        n += 1.0;
        let d = x - m;
        m += d / n;
        m2 += d * (x - m);
    }
    if n < 1.0 {
        (0.0, 0.0)
    } else {
        (m, (m2 / n).sqrt())
    }
}

/// One normalised input column: z = (x − mean[condition]) / std[condition].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Channel {
    pub name: String,
    /// Index into the preprocessor's input columns.
    pub column: usize,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

/// Everything fitted on training data that turns raw rows into feature rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Preprocessor {
    /// Input columns the model reads, operating settings first.
    pub inputs: Vec<String>,
    pub n_settings: usize,
    pub conditions: Conditions,
    /// Non-constant, non-setting columns, normalised per condition.
    pub channels: Vec<Channel>,
    /// Health indicator: ridge regression of min(RUL, cap) on the normalised channels (RUL units).
    pub hi_weights: Vec<f64>,
    pub hi_bias: f64,
    pub config: FeatureConfig,
}

impl Preprocessor {
    pub(crate) fn fit(
        runs: &[&Run],
        rul_cap: f64,
        config: FeatureConfig,
    ) -> Result<Preprocessor, PdmError> {
        let first = runs.first().ok_or_else(|| PdmError::NotEnoughData {
            reason: "no runs".into(),
        })?;
        let inputs = first.feature_names.clone();
        let n_settings = first.settings.min(inputs.len());
        for r in runs {
            if r.feature_names != inputs || r.settings != first.settings {
                return Err(PdmError::InconsistentRuns {
                    unit: r.unit.clone(),
                    expected: inputs.len(),
                    found: r.feature_names.len(),
                    names: r.feature_names.clone(),
                });
            }
            check_run(r)?;
        }
        let rows: Vec<&[f64]> = runs
            .iter()
            .flat_map(|r| r.features.iter().map(|f| f.as_slice()))
            .collect();
        let settings: Vec<&[f64]> = rows.iter().map(|r| &r[..n_settings]).collect();
        let conditions = Conditions::fit(&settings);
        let cond: Vec<usize> = settings.iter().map(|s| conditions.assign(s)).collect();
        let k = conditions.centers.len();

        let mut channels = Vec::new();
        for col in n_settings..inputs.len() {
            let mut mean = vec![0.0; k];
            let mut std = vec![1.0; k];
            let mut pooled = 0.0;
            let mut overall = 0.0;
            for c in 0..k {
                let it = rows
                    .iter()
                    .zip(&cond)
                    .filter(|(_, a)| **a == c)
                    .map(|(r, _)| r[col]);
                let n = it.clone().count() as f64;
                let (m, s) = mean_std(it);
                mean[c] = m;
                if s > 1e-9 * m.abs().max(1.0) {
                    std[c] = s;
                }
                pooled += n * s * s;
                overall += n * m.abs();
            }
            let n = rows.len() as f64;
            if (pooled / n).sqrt() > 1e-9 * (overall / n).max(1.0) {
                channels.push(Channel {
                    name: inputs[col].clone(),
                    column: col,
                    mean,
                    std,
                });
            }
        }
        if channels.is_empty() {
            return Err(PdmError::NotEnoughData {
                reason: "every feature column is constant in the training data".into(),
            });
        }

        // Health indicator by ridge regression on z-scores.
        let c = channels.len();
        let mut xtx = vec![0.0; c * c];
        let mut xty = vec![0.0; c];
        let mut z = vec![0.0; c];
        let mut ysum = 0.0;
        let mut n = 0.0;
        let mut zsum = vec![0.0; c];
        for r in runs {
            let last = *r.cycles.last().unwrap_or(&0.0);
            for (t, row) in r.cycles.iter().zip(&r.features) {
                let a = conditions.assign(&row[..n_settings]);
                for (zi, ch) in z.iter_mut().zip(&channels) {
                    *zi = (row[ch.column] - ch.mean[a]) / ch.std[a];
                }
                let y = (last - t).min(rul_cap);
                for i in 0..c {
                    zsum[i] += z[i];
                    xty[i] += z[i] * y;
                    for j in 0..c {
                        xtx[i * c + j] += z[i] * z[j];
                    }
                }
                ysum += y;
                n += 1.0;
            }
        }
        // Centre: (X−x̄)ᵀ(X−x̄) and (X−x̄)ᵀ(y−ȳ).
        for i in 0..c {
            xty[i] -= zsum[i] * ysum / n;
            for j in 0..c {
                xtx[i * c + j] -= zsum[i] * zsum[j] / n;
            }
            xtx[i * c + i] += 1e-3 * n;
        }
        let w = solve_spd(&mut xtx, &mut xty, c);
        let hi_bias = ysum / n - w.iter().zip(&zsum).map(|(w, s)| w * s / n).sum::<f64>();
        Ok(Preprocessor {
            inputs,
            n_settings,
            conditions,
            channels,
            hi_weights: w,
            hi_bias,
            config,
        })
    }

    pub(crate) fn n_features(&self) -> usize {
        (self.channels.len() + 1) * self.config.per_channel() + 1
    }

    pub(crate) fn feature_names(&self) -> Vec<String> {
        let mut names = Vec::with_capacity(self.n_features());
        let chans = self
            .channels
            .iter()
            .map(|c| c.name.as_str())
            .chain(std::iter::once("hi"));
        for ch in chans {
            names.push(format!("{ch}.last"));
            names.extend(
                self.config
                    .mean_windows
                    .iter()
                    .map(|w| format!("{ch}.mean{w}")),
            );
            names.extend(
                self.config
                    .ewma_alphas
                    .iter()
                    .map(|a| format!("{ch}.ewma{a}")),
            );
            names.extend(
                self.config
                    .slope_windows
                    .iter()
                    .map(|w| format!("{ch}.slope{w}")),
            );
            names.push(format!("{ch}.slope_all"));
        }
        names.push("cycle".into());
        names
    }

    /// Maps the run's columns onto the model's inputs by name.
    pub(crate) fn column_map(&self, run: &Run) -> Result<Vec<usize>, PdmError> {
        self.inputs
            .iter()
            .map(|name| {
                run.feature_names
                    .iter()
                    .position(|n| n == name)
                    .ok_or_else(|| PdmError::MissingInput {
                        unit: run.unit.clone(),
                        column: name.clone(),
                    })
            })
            .collect()
    }

    /// Feature rows for every cycle of `run` (row-major, `n_features` per cycle).
    pub(crate) fn run_features(&self, run: &Run) -> Result<Vec<f64>, PdmError> {
        check_run(run)?;
        let map = self.column_map(run)?;
        let mut state = FeatureState::new(self);
        let nf = self.n_features();
        let mut out = Vec::with_capacity(run.len() * nf);
        let mut raw = vec![0.0; map.len()];
        for (t, row) in run.cycles.iter().zip(&run.features) {
            for (r, &m) in raw.iter_mut().zip(&map) {
                *r = row[m];
            }
            state.push(self, *t, &raw, &mut out);
        }
        Ok(out)
    }
}

pub(crate) fn check_run(r: &Run) -> Result<(), PdmError> {
    if r.is_empty() {
        return Err(PdmError::EmptyRun {
            unit: r.unit.clone(),
        });
    }
    for (t, row) in r.cycles.iter().zip(&r.features) {
        if row.len() != r.feature_names.len() {
            return Err(PdmError::InconsistentRuns {
                unit: r.unit.clone(),
                expected: r.feature_names.len(),
                found: row.len(),
                names: r.feature_names.clone(),
            });
        }
        if let Some(i) = row.iter().position(|v| !v.is_finite()) {
            return Err(PdmError::NonFiniteValue {
                unit: r.unit.clone(),
                cycle: *t,
                column: r.feature_names[i].clone(),
            });
        }
    }
    if r.cycles.len() != r.features.len() {
        return Err(PdmError::InconsistentRuns {
            unit: r.unit.clone(),
            expected: r.cycles.len(),
            found: r.features.len(),
            names: r.feature_names.clone(),
        });
    }
    Ok(())
}

/// Solves A·x = b for a symmetric positive definite A (row-major, n×n) by Cholesky; A and b are overwritten.
fn solve_spd(a: &mut [f64], b: &mut [f64], n: usize) -> Vec<f64> {
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        let d = d.max(1e-12).sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = s / d;
        }
    }
    for i in 0..n {
        let mut s = b[i];
        for k in 0..i {
            s -= a[i * n + k] * b[k];
        }
        b[i] = s / a[i * n + i];
    }
    for i in (0..n).rev() {
        let mut s = b[i];
        for k in i + 1..n {
            s -= a[k * n + i] * b[k];
        }
        b[i] = s / a[i * n + i];
    }
    b.to_vec()
}

/// Running per-asset state; memory is O(channels × longest window).
#[derive(Debug, Clone)]
pub(crate) struct FeatureState {
    cap: usize,
    /// Ring buffer of the last `cap` times and channel values (`channels + 1` values per slot, HI last).
    times: Vec<f64>,
    values: Vec<f64>,
    len: usize,
    head: usize,
    ewma: Vec<f64>,
    /// Whole-history regression per channel: n, mean t, mean x, C(t,x), M2(t).
    reg: Vec<[f64; 5]>,
    z: Vec<f64>,
    pub(crate) last_time: Option<f64>,
}

impl FeatureState {
    pub(crate) fn new(pre: &Preprocessor) -> FeatureState {
        let cap = pre.config.max_window();
        let ch = pre.channels.len() + 1;
        FeatureState {
            cap,
            times: vec![0.0; cap],
            values: vec![0.0; cap * ch],
            len: 0,
            head: 0,
            ewma: vec![0.0; ch * pre.config.ewma_alphas.len()],
            reg: vec![[0.0; 5]; ch],
            z: vec![0.0; ch],
            last_time: None,
        }
    }

    /// Adds one cycle (`raw` in the preprocessor's input order) and appends its feature row to `out`.
    pub(crate) fn push(&mut self, pre: &Preprocessor, t: f64, raw: &[f64], out: &mut Vec<f64>) {
        let a = pre.conditions.assign(&raw[..pre.n_settings]);
        let nc = pre.channels.len();
        let mut hi = pre.hi_bias;
        for (i, ch) in pre.channels.iter().enumerate() {
            let z = (raw[ch.column] - ch.mean[a]) / ch.std[a];
            self.z[i] = z;
            hi += pre.hi_weights[i] * z;
        }
        self.z[nc] = hi;
        let ch = nc + 1;
        // Ring buffer insert at head.
        self.times[self.head] = t;
        self.values[self.head * ch..(self.head + 1) * ch].copy_from_slice(&self.z);
        self.head = (self.head + 1) % self.cap;
        self.len = (self.len + 1).min(self.cap);
        let first = self.last_time.is_none();
        self.last_time = Some(t);
        let na = pre.config.ewma_alphas.len();
        for c in 0..ch {
            let x = self.z[c];
            // EWMA.
            for (k, &alpha) in pre.config.ewma_alphas.iter().enumerate() {
                let e = &mut self.ewma[c * na + k];
                *e = if first { x } else { *e + alpha * (x - *e) };
            }
            // Whole-history regression (Welford).
            let r = &mut self.reg[c];
            r[0] += 1.0;
            let dt = t - r[1];
            r[1] += dt / r[0];
            r[2] += (x - r[2]) / r[0];
            r[3] += dt * (x - r[2]);
            r[4] += dt * (t - r[1]);
        }
        for c in 0..ch {
            out.push(self.z[c]);
            for &w in &pre.config.mean_windows {
                let n = w.min(self.len);
                let s: f64 = (0..n).map(|k| self.value(k, c, ch)).sum();
                out.push(s / n as f64);
            }
            for k in 0..na {
                out.push(self.ewma[c * na + k]);
            }
            for &w in &pre.config.slope_windows {
                out.push(self.slope(w.min(self.len), c, ch));
            }
            let r = &self.reg[c];
            out.push(if r[4] > 0.0 { r[3] / r[4] } else { 0.0 });
        }
        out.push(t);
    }

    /// k-th most recent slot (0 = newest).
    fn slot(&self, k: usize) -> usize {
        (self.head + self.cap - 1 - k) % self.cap
    }

    fn value(&self, k: usize, c: usize, ch: usize) -> f64 {
        self.values[self.slot(k) * ch + c]
    }

    fn slope(&self, n: usize, c: usize, ch: usize) -> f64 {
        if n < 2 {
            return 0.0;
        }
        let nf = n as f64;
        let (mut st, mut sx) = (0.0, 0.0);
        for k in 0..n {
            st += self.times[self.slot(k)];
            sx += self.value(k, c, ch);
        }
        let (mt, mx) = (st / nf, sx / nf);
        let (mut num, mut den) = (0.0, 0.0);
        for k in 0..n {
            let dt = self.times[self.slot(k)] - mt;
            num += dt * (self.value(k, c, ch) - mx);
            den += dt * dt;
        }
        if den > 0.0 { num / den } else { 0.0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kmeans_finds_separated_conditions_and_ignores_noise() {
        // Six well separated conditions (like C-MAPSS FD002) with small noise.
        let centres = [
            [0.0, 0.0, 100.0],
            [10.0, 0.25, 100.0],
            [20.0, 0.7, 100.0],
            [25.0, 0.62, 60.0],
            [35.0, 0.84, 100.0],
            [42.0, 0.84, 100.0],
        ];
        let mut rng = crate::rng::Rng::new(1, 0);
        let rows: Vec<Vec<f64>> = (0..3000)
            .map(|i| {
                centres[i % 6]
                    .iter()
                    .map(|c| c + 0.003 * (rng.uniform() - 0.5))
                    .collect()
            })
            .collect();
        let refs: Vec<&[f64]> = rows.iter().map(|r| r.as_slice()).collect();
        let c = Conditions::fit(&refs);
        assert_eq!(c.centers.len(), 6);
        for i in 0..6 {
            assert_eq!(c.assign(&rows[i]), c.assign(&rows[i + 6]));
        }
        // Pure noise around one point: one condition.
        let rows: Vec<Vec<f64>> = (0..3000)
            .map(|_| vec![0.01 * rng.uniform(), 0.001 * rng.uniform(), 100.0])
            .collect();
        let refs: Vec<&[f64]> = rows.iter().map(|r| r.as_slice()).collect();
        assert_eq!(Conditions::fit(&refs).centers.len(), 1);
    }

    #[test]
    fn ridge_solver() {
        let mut a = vec![4.0, 1.0, 1.0, 3.0];
        let mut b = vec![1.0, 2.0];
        let x = solve_spd(&mut a, &mut b, 2);
        assert!(
            (x[0] - 1.0 / 11.0).abs() < 1e-12 && (x[1] - 7.0 / 11.0).abs() < 1e-12,
            "{x:?}"
        );
    }
}
