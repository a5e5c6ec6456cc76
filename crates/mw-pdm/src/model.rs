//! Training, prediction, the uncertainty band, persistence and the online (per-asset, per-cycle) predictor.

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use serde::{Deserialize, Serialize};

use crate::data::Run;
use crate::error::PdmError;
use crate::features::{FeatureConfig, FeatureState, Preprocessor, check_run};
use crate::gbm::{self, Gbm, GbmParams};
use crate::rng::Rng;

const MODEL_FORMAT: &str = "mw-pdm-model";
const MODEL_VERSION: u32 = 1;

/// A remaining-useful-life estimate in the run's time unit (cycles for C-MAPSS).
///
/// `rul` is an estimate of min(RUL, rul_cap): a value at the cap means "at least the cap". `lower..upper` is the
/// central `interval` band of the model's errors (see [`TrainOptions::interval`]); `upper` may be infinite for
/// [`crate::TrendRul`] when the trend cannot rule out "never".
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub rul: f64,
    pub lower: f64,
    pub upper: f64,
}

/// How to train. `Default` is the configuration evaluated in docs/pdm.md.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    /// Targets are min(RUL, rul_cap): early in life the remaining life cannot be told from the signals, so the
    /// model learns a constant there. 125 cycles is the C-MAPSS convention; set it for other time units.
    pub rul_cap: f64,
    /// Seeds every random choice (row/feature sampling, fold assignment). Same data + options + seed → same model.
    pub seed: u64,
    pub gbm: GbmParams,
    /// Folds (by unit) of the cross-validation that calibrates the uncertainty band and reports `cv_rmse`.
    /// 0 disables it: the band then comes from in-sample residuals and is too narrow.
    pub cv_folds: usize,
    /// Central probability of the band (0.8 → 10 % and 90 % residual quantiles).
    pub interval: f64,
    /// Worker threads for the cross-validation models; 0 = all available cores. Does not change the result.
    pub threads: usize,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            rul_cap: 125.0,
            seed: 0,
            gbm: GbmParams::default(),
            cv_folds: 4,
            interval: 0.8,
            threads: 0,
        }
    }
}

impl TrainOptions {
    fn validate(&self) -> Result<(), PdmError> {
        let bad = |name, reason: &str| {
            Err(PdmError::InvalidOption {
                name,
                reason: reason.to_owned(),
            })
        };
        let g = &self.gbm;
        if !(self.rul_cap.is_finite() && self.rul_cap > 0.0) {
            return bad("rul_cap", "must be a positive number");
        }
        if !(self.interval > 0.0 && self.interval < 1.0) {
            return bad("interval", "must be between 0 and 1");
        }
        if self.cv_folds == 1 {
            return bad("cv_folds", "must be 0 (off) or at least 2");
        }
        if g.n_trees == 0 || g.max_leaves < 2 || g.max_depth == 0 {
            return bad("gbm", "n_trees, max_depth must be ≥ 1 and max_leaves ≥ 2");
        }
        if !(g.learning_rate > 0.0 && g.learning_rate <= 1.0) {
            return bad("gbm.learning_rate", "must be in (0, 1]");
        }
        if !(g.subsample > 0.0 && g.subsample <= 1.0 && g.colsample > 0.0 && g.colsample <= 1.0) {
            return bad("gbm.subsample/colsample", "must be in (0, 1]");
        }
        if !(g.lambda >= 0.0 && g.lambda.is_finite()) {
            return bad("gbm.lambda", "must be ≥ 0");
        }
        Ok(())
    }
}

/// Residual quantiles by predicted-RUL bin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Band {
    interval: f64,
    /// "cross-validation" or "in-sample".
    source: String,
    /// Upper edges of the prediction bins (one fewer than bins).
    edges: Vec<f64>,
    /// Offsets added to the prediction: residual (truth − prediction) quantiles per bin.
    lower: Vec<f64>,
    upper: Vec<f64>,
}

impl Band {
    const BINS: usize = 6;

    fn fit(mut pairs: Vec<(f64, f64)>, interval: f64, source: &str) -> Band {
        // pairs: (prediction, truth)
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let bins = Self::BINS.min(pairs.len()).max(1);
        let (mut edges, mut lower, mut upper) = (Vec::new(), Vec::new(), Vec::new());
        for b in 0..bins {
            let chunk = &pairs[b * pairs.len() / bins..(b + 1) * pairs.len() / bins];
            let mut res: Vec<f64> = chunk.iter().map(|(p, t)| t - p).collect();
            res.sort_by(f64::total_cmp);
            lower.push(quantile(&res, (1.0 - interval) / 2.0));
            upper.push(quantile(&res, (1.0 + interval) / 2.0));
            if b + 1 < bins {
                edges.push(chunk.last().map_or(0.0, |c| c.0));
            }
        }
        Band {
            interval,
            source: source.to_owned(),
            edges,
            lower,
            upper,
        }
    }

    fn apply(&self, rul: f64, cap: f64) -> Prediction {
        let b = self.edges.partition_point(|&e| e < rul);
        let lower = (rul + self.lower[b]).clamp(0.0, cap).min(rul);
        let upper = (rul + self.upper[b]).clamp(0.0, cap).max(rul);
        Prediction { rul, lower, upper }
    }

    fn valid(&self) -> bool {
        !self.lower.is_empty()
            && self.lower.len() == self.upper.len()
            && self.edges.len() + 1 == self.lower.len()
            && self
                .lower
                .iter()
                .chain(&self.upper)
                .chain(&self.edges)
                .all(|v| v.is_finite())
    }
}

/// Linear-interpolated quantile of sorted values.
pub(crate) fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (i, frac) = (pos.floor() as usize, pos - pos.floor());
    let j = (i + 1).min(sorted.len() - 1);
    sorted[i] + frac * (sorted[j] - sorted[i])
}

/// What the model was trained on and how well it did in cross-validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub units: usize,
    pub rows: usize,
    /// Input columns the model needs (settings first).
    pub inputs: Vec<String>,
    /// Input columns dropped as constant in the training data.
    pub dropped: Vec<String>,
    /// Operating conditions found in the settings.
    pub conditions: usize,
    pub features: usize,
    /// RMSE of min(RUL, cap) over every cycle of every unit, each predicted by the fold model that did not see
    /// the unit. `None` when `cv_folds` is 0.
    pub cv_rmse: Option<f64>,
    pub options: TrainOptions,
}

/// A trained remaining-useful-life model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    format: String,
    version: u32,
    rul_cap: f64,
    pre: Preprocessor,
    gbm: Gbm,
    band: Band,
    info: ModelInfo,
}

/// Trains a model on complete run-to-failure histories: the last row of every run is taken as the failure, so
/// the target at cycle `t` is min(last cycle − t, rul_cap).
///
/// `progress(done, total)` is called from the calling thread after each tree of each model (the final model and
/// one per cross-validation fold), `done` reaching `total`.
pub fn train(
    runs: &[Run],
    opts: &TrainOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Model, PdmError> {
    opts.validate()?;
    if runs.len() < 2 || (opts.cv_folds > 0 && runs.len() < opts.cv_folds) {
        return Err(PdmError::NotEnoughData {
            reason: format!(
                "{} run(s); need at least 2 and at least cv_folds = {}",
                runs.len(),
                opts.cv_folds
            ),
        });
    }
    for r in runs {
        check_run(r)?;
    }
    let k = opts.cv_folds;
    // Fold of each unit: a seeded shuffle dealt round-robin.
    let mut order: Vec<usize> = (0..runs.len()).collect();
    Rng::new(opts.seed, 0x666f_6c64).shuffle(&mut order);
    let mut fold_of = vec![0usize; runs.len()];
    for (pos, &u) in order.iter().enumerate() {
        fold_of[u] = if k > 0 { pos % k } else { 0 };
    }

    let jobs = k + 1; // job 0: final model on everything; job j ≥ 1: fold j−1 held out
    let total = jobs * opts.gbm.n_trees;
    let threads = match opts.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        t => t,
    }
    .clamp(1, jobs);
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<()>();
    type JobOut = Result<(Preprocessor, Gbm, Vec<(f64, f64)>), PdmError>;
    let mut results: Vec<Option<JobOut>> = (0..jobs).map(|_| None).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let tx = tx.clone();
                let next = &next;
                let fold_of = &fold_of;
                s.spawn(move || {
                    let mut done = Vec::new();
                    loop {
                        let j = next.fetch_add(1, Ordering::Relaxed);
                        if j >= jobs {
                            break;
                        }
                        let mut tick = || {
                            let _ = tx.send(());
                        };
                        let out = if j == 0 {
                            let refs: Vec<&Run> = runs.iter().collect();
                            fit_pipeline(&refs, opts, opts.seed, &mut tick)
                                .map(|(p, g)| (p, g, Vec::new()))
                        } else {
                            let fold = j - 1;
                            let train: Vec<&Run> = runs
                                .iter()
                                .zip(fold_of)
                                .filter(|(_, f)| **f != fold)
                                .map(|(r, _)| r)
                                .collect();
                            let seed = opts.seed.wrapping_add(j as u64 * 0x9E37_79B9);
                            fit_pipeline(&train, opts, seed, &mut tick).and_then(|(pre, gbm)| {
                                let held_out = runs
                                    .iter()
                                    .zip(fold_of)
                                    .filter(|(_, f)| **f == fold)
                                    .map(|(r, _)| r);
                                let pairs = residual_pairs(&pre, &gbm, held_out, opts.rul_cap)?;
                                Ok((pre, gbm, pairs))
                            })
                        };
                        done.push((j, out));
                    }
                    done
                })
            })
            .collect();
        drop(tx);
        let mut n = 0;
        for () in rx.iter() {
            n += 1;
            progress(n.min(total), total);
        }
        for h in handles {
            // A worker can only panic on a bug; surface it rather than hide it.
            match h.join() {
                Ok(done) => {
                    for (j, out) in done {
                        results[j] = Some(out);
                    }
                }
                Err(e) => std::panic::resume_unwind(e),
            }
        }
    });
    let mut results = results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(internal("job did not run"))));
    let (pre, gbm, _) = results
        .next()
        .unwrap_or_else(|| Err(internal("no final model")))?;
    let mut pairs = Vec::new();
    for r in results {
        pairs.extend(r?.2);
    }
    let rows: usize = runs.iter().map(Run::len).sum();
    let (band, cv_rmse) = if k > 0 {
        let mse =
            pairs.iter().map(|(p, t)| (p - t).powi(2)).sum::<f64>() / pairs.len().max(1) as f64;
        (
            Band::fit(pairs, opts.interval, "cross-validation"),
            Some(mse.sqrt()),
        )
    } else {
        let pairs = residual_pairs(&pre, &gbm, runs.iter(), opts.rul_cap)?;
        (Band::fit(pairs, opts.interval, "in-sample"), None)
    };
    let kept: Vec<&str> = pre.channels.iter().map(|c| c.name.as_str()).collect();
    let info = ModelInfo {
        units: runs.len(),
        rows,
        inputs: pre.inputs.clone(),
        dropped: pre.inputs[pre.n_settings..]
            .iter()
            .filter(|n| !kept.contains(&n.as_str()))
            .cloned()
            .collect(),
        conditions: pre.conditions.centers.len(),
        features: pre.n_features(),
        cv_rmse,
        // `threads` does not change the model; recording it would make equal models compare unequal.
        options: TrainOptions {
            threads: 0,
            ..opts.clone()
        },
    };
    Ok(Model {
        format: MODEL_FORMAT.to_owned(),
        version: MODEL_VERSION,
        rul_cap: opts.rul_cap,
        pre,
        gbm,
        band,
        info,
    })
}

/// (prediction, true min(RUL, cap)) for every cycle of every run, the last cycle being failure.
fn residual_pairs<'a>(
    pre: &Preprocessor,
    gbm: &Gbm,
    runs: impl Iterator<Item = &'a Run>,
    cap: f64,
) -> Result<Vec<(f64, f64)>, PdmError> {
    let mut pairs = Vec::new();
    let nf = pre.n_features();
    for r in runs {
        let x = pre.run_features(r)?;
        let last = *r.cycles.last().unwrap_or(&0.0);
        for (i, t) in r.cycles.iter().enumerate() {
            let p = gbm.predict(&x[i * nf..(i + 1) * nf]).clamp(0.0, cap);
            pairs.push((p, (last - t).min(cap)));
        }
    }
    Ok(pairs)
}

fn internal(what: &str) -> PdmError {
    PdmError::NotEnoughData {
        reason: format!("internal error: {what}"),
    }
}

fn fit_pipeline(
    runs: &[&Run],
    opts: &TrainOptions,
    seed: u64,
    tick: &mut dyn FnMut(),
) -> Result<(Preprocessor, Gbm), PdmError> {
    let pre = Preprocessor::fit(runs, opts.rul_cap, FeatureConfig::default())?;
    let nf = pre.n_features();
    let rows: usize = runs.iter().map(|r| r.len()).sum();
    let mut x = Vec::with_capacity(rows * nf);
    let mut y = Vec::with_capacity(rows);
    for r in runs {
        x.extend(pre.run_features(r)?);
        let last = *r.cycles.last().unwrap_or(&0.0);
        y.extend(r.cycles.iter().map(|t| (last - t).min(opts.rul_cap)));
    }
    let gbm = gbm::fit(&x, nf, &y, &opts.gbm, seed, tick);
    Ok((pre, gbm))
}

impl Model {
    /// Predicted RUL after the last observed cycle of `run` (history from its first cycle).
    pub fn predict_last(&self, run: &Run) -> Result<Prediction, PdmError> {
        let x = self.pre.run_features(run)?;
        let nf = self.pre.n_features();
        Ok(self.finish(&x[x.len() - nf..]))
    }

    /// Predicted RUL after every cycle of `run`; element `i` only uses cycles `0..=i`, so it equals
    /// `predict_last(&run.truncated(i + 1))`.
    pub fn predict_all(&self, run: &Run) -> Result<Vec<Prediction>, PdmError> {
        let x = self.pre.run_features(run)?;
        Ok(x.chunks_exact(self.pre.n_features())
            .map(|f| self.finish(f))
            .collect())
    }

    fn finish(&self, features: &[f64]) -> Prediction {
        let rul = self.gbm.predict(features).clamp(0.0, self.rul_cap);
        self.band.apply(rul, self.rul_cap)
    }

    /// The cap the targets were clipped to.
    pub fn rul_cap(&self) -> f64 {
        self.rul_cap
    }

    /// Training summary (units, features, dropped columns, cross-validation RMSE, options).
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Names of the engineered features, in the order the trees index them (for inspection).
    pub fn feature_names(&self) -> Vec<String> {
        self.pre.feature_names()
    }

    /// Writes the model as JSON (format `mw-pdm-model`, version 1). Floats round-trip exactly.
    pub fn save(&self, mut w: impl Write) -> Result<(), PdmError> {
        serde_json::to_writer(&mut w, self).map_err(|e| PdmError::Io(e.into()))?;
        w.flush()?;
        Ok(())
    }

    /// Reads a model written by [`Model::save`], checking its format, version and internal consistency (a
    /// corrupt file gives an error, never a panic later in `predict`).
    pub fn load(r: impl Read) -> Result<Model, PdmError> {
        let v: serde_json::Value = serde_json::from_reader(r).map_err(|e| {
            if e.is_io() {
                PdmError::Io(e.into())
            } else {
                PdmError::ModelFormat {
                    reason: e.to_string(),
                }
            }
        })?;
        if v.get("format").and_then(|f| f.as_str()) != Some(MODEL_FORMAT) {
            return Err(PdmError::ModelFormat {
                reason: format!("missing \"format\": \"{MODEL_FORMAT}\""),
            });
        }
        let version = v.get("version").and_then(|f| f.as_u64()).unwrap_or(0);
        if version != u64::from(MODEL_VERSION) {
            return Err(PdmError::ModelVersion {
                found: version as u32,
                supported: MODEL_VERSION,
            });
        }
        let m: Model = serde_json::from_value(v).map_err(|e| PdmError::ModelFormat {
            reason: e.to_string(),
        })?;
        m.check().map_err(|reason| PdmError::ModelFormat {
            reason: reason.to_owned(),
        })?;
        Ok(m)
    }

    fn check(&self) -> Result<(), &'static str> {
        let p = &self.pre;
        let k = p.conditions.centers.len();
        let c = &p.config;
        if !(self.rul_cap.is_finite() && self.rul_cap > 0.0) {
            return Err("bad rul_cap");
        }
        if p.n_settings > p.inputs.len()
            || k == 0
            || p.conditions.scale.len() != p.n_settings
            || p.conditions.centers.iter().any(|c| c.len() != p.n_settings)
        {
            return Err("inconsistent operating conditions");
        }
        if p.channels.is_empty()
            || p.hi_weights.len() != p.channels.len()
            || p.channels
                .iter()
                .any(|ch| ch.column >= p.inputs.len() || ch.mean.len() != k || ch.std.len() != k)
        {
            return Err("inconsistent channels");
        }
        if c.mean_windows
            .iter()
            .chain(&c.slope_windows)
            .any(|&w| w == 0 || w > 100_000)
        {
            return Err("bad feature windows");
        }
        if !self.gbm.validate(p.n_features()) {
            return Err("corrupt trees");
        }
        if !self.band.valid() {
            return Err("corrupt uncertainty band");
        }
        Ok(())
    }
}

/// Live prediction for one asset: feed one row per cycle, get a prediction after each. Memory is bounded by the
/// longest feature window (30 cycles), whatever the asset's age.
#[derive(Debug, Clone)]
pub struct OnlineRul {
    model: Arc<Model>,
    state: FeatureState,
    row: Vec<f64>,
}

impl OnlineRul {
    /// Starts a new asset history (from its first cycle in service).
    pub fn new(model: Arc<Model>) -> OnlineRul {
        let state = FeatureState::new(&model.pre);
        OnlineRul {
            model,
            state,
            row: Vec::new(),
        }
    }

    /// The columns `push` expects, in order (operating settings first).
    pub fn input_names(&self) -> &[String] {
        &self.model.pre.inputs
    }

    /// Adds one cycle (`values` in [`Self::input_names`] order) and returns the RUL after it. A rejected row
    /// (wrong length, non-finite value, time not after the previous one) leaves the state unchanged.
    pub fn push(&mut self, cycle: f64, values: &[f64]) -> Result<Prediction, PdmError> {
        let reject = |reason: String| Err(PdmError::OnlineInput { reason });
        if values.len() != self.model.pre.inputs.len() {
            return reject(format!(
                "expected {} values, got {}",
                self.model.pre.inputs.len(),
                values.len()
            ));
        }
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return reject(format!(
                "value of {} is not finite",
                self.model.pre.inputs[i]
            ));
        }
        if !cycle.is_finite() || self.state.last_time.is_some_and(|t| cycle <= t) {
            return reject(format!(
                "cycle {cycle} does not follow {:?}",
                self.state.last_time
            ));
        }
        self.row.clear();
        self.state
            .push(&self.model.pre, cycle, values, &mut self.row);
        Ok(self.model.finish(&self.row))
    }
}
