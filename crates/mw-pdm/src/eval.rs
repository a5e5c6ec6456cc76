//! Evaluation protocol on run-to-failure data: hold out whole units, cut each held-out history at random
//! points, predict the RUL there and compare with the truth (capped like the targets).

use crate::data::Run;
use crate::error::PdmError;
use crate::model::Model;
use crate::rng::Rng;

/// Splits `runs` into (train, held-out) with `n_holdout` held-out units chosen by `seed`. Order within each
/// part follows the input.
pub fn split_units(runs: &[Run], n_holdout: usize, seed: u64) -> (Vec<Run>, Vec<Run>) {
    let mut idx: Vec<usize> = (0..runs.len()).collect();
    Rng::new(seed, 0x73_706c_6974).shuffle(&mut idx);
    let mut held = vec![false; runs.len()];
    for &i in idx.iter().take(n_holdout) {
        held[i] = true;
    }
    let mut train = Vec::new();
    let mut test = Vec::new();
    for (r, h) in runs.iter().zip(held) {
        if h {
            test.push(r.clone())
        } else {
            train.push(r.clone())
        }
    }
    (train, test)
}

/// One evaluation point: the first `observed` cycles of `runs[run]` are shown to the model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Truncation {
    pub run: usize,
    pub observed: usize,
    /// Last cycle − cycle at the cut (uncapped).
    pub true_rul: f64,
}

/// `per_unit` cuts per run, each with `observed` drawn independently and uniformly from
/// `min_observed..=len` (from `len..=len` for runs shorter than `min_observed`).
pub fn truncations(
    runs: &[Run],
    per_unit: usize,
    min_observed: usize,
    seed: u64,
) -> Vec<Truncation> {
    let mut rng = Rng::new(seed, 0x74_7275_6e63);
    let mut out = Vec::with_capacity(runs.len() * per_unit);
    for (i, r) in runs.iter().enumerate() {
        if r.is_empty() {
            continue;
        }
        let lo = min_observed.clamp(1, r.len());
        for _ in 0..per_unit {
            let observed = lo + rng.below(r.len() - lo + 1);
            let true_rul = r.cycles[r.len() - 1] - r.cycles[observed - 1];
            out.push(Truncation {
                run: i,
                observed,
                true_rul,
            });
        }
    }
    out
}

/// `per_unit` cuts per run with the true RUL drawn uniformly from `min_rul..=max_rul` (in cycles, i.e. rows),
/// keeping at least `min_observed` cycles observed; runs too short for that are skipped. With 7..=145 this mimics
/// the RUL range of the official C-MAPSS FD001 test set.
pub fn truncations_by_rul(
    runs: &[Run],
    per_unit: usize,
    min_rul: usize,
    max_rul: usize,
    min_observed: usize,
    seed: u64,
) -> Vec<Truncation> {
    let mut rng = Rng::new(seed, 0x7275_6c63_7574);
    let mut out = Vec::with_capacity(runs.len() * per_unit);
    for (i, r) in runs.iter().enumerate() {
        let len = r.len();
        let lo = min_observed.max(len.saturating_sub(max_rul)).max(1);
        let Some(hi) = len.checked_sub(min_rul) else {
            continue;
        };
        if hi < lo {
            continue;
        }
        for _ in 0..per_unit {
            let observed = lo + rng.below(hi - lo + 1);
            let true_rul = r.cycles[len - 1] - r.cycles[observed - 1];
            out.push(Truncation {
                run: i,
                observed,
                true_rul,
            });
        }
    }
    out
}

/// Results of [`evaluate`].
#[derive(Debug, Clone, PartialEq)]
pub struct EvalReport {
    pub points: usize,
    /// RMSE against min(true RUL, cap).
    pub rmse: f64,
    pub mae: f64,
    /// RMSE over the points whose true RUL is below the cap (the degradation phase; the rest are "healthy").
    pub rmse_below_cap: f64,
    pub points_below_cap: usize,
    /// Mean of prediction − capped truth (positive: late, optimistic).
    pub bias: f64,
    /// PHM08 / NASA asymmetric score summed over the points (lower is better; late predictions cost more).
    pub nasa_score: f64,
    /// Fraction of points whose capped truth lies in [lower, upper].
    pub band_coverage: f64,
    /// Mean width of the band.
    pub band_width: f64,
}

/// The PHM08 scoring function for one error `d = predicted − true`: e^(−d/13) − 1 if early, e^(d/10) − 1 if late.
pub fn nasa_score(d: f64) -> f64 {
    if d < 0.0 {
        (-d / 13.0).exp() - 1.0
    } else {
        (d / 10.0).exp() - 1.0
    }
}

/// Predicts every truncation point of `runs` with `model` and scores it against the capped truth.
pub fn evaluate(model: &Model, runs: &[Run], cuts: &[Truncation]) -> Result<EvalReport, PdmError> {
    let cap = model.rul_cap();
    let all: Vec<Vec<crate::Prediction>> = runs
        .iter()
        .map(|r| model.predict_all(r))
        .collect::<Result<_, _>>()?;
    let (mut se, mut ae, mut bias, mut score, mut inside, mut width) =
        (0.0, 0.0, 0.0, 0.0, 0usize, 0.0);
    let (mut se_below, mut n_below) = (0.0, 0usize);
    for c in cuts {
        let p = all[c.run][c.observed - 1];
        let truth = c.true_rul.min(cap);
        let d = p.rul - truth;
        se += d * d;
        if c.true_rul < cap {
            se_below += d * d;
            n_below += 1;
        }
        ae += d.abs();
        bias += d;
        score += nasa_score(d);
        inside += usize::from(p.lower <= truth && truth <= p.upper);
        width += p.upper - p.lower;
    }
    let n = cuts.len().max(1) as f64;
    Ok(EvalReport {
        points: cuts.len(),
        rmse: (se / n).sqrt(),
        mae: ae / n,
        rmse_below_cap: (se_below / n_below.max(1) as f64).sqrt(),
        points_below_cap: n_below,
        bias: bias / n,
        nasa_score: score,
        band_coverage: inside as f64 / n,
        band_width: width / n,
    })
}
