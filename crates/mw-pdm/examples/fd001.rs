//! Evaluation of the RUL model on C-MAPSS FD001 (see docs/pdm.md).
//!
//! ```text
//! cargo run --release -p mw-pdm --example fd001 -- [PATH] [holdout|cv] [key=value ...]
//! ```
//! `holdout` (default): hold out 20 units (seed 2024), train on the rest with the default options, predict 10
//! seeded truncations per held-out unit. `cv`: 5-fold cross-validation by unit on the 70 *training* units only
//! (for tuning; never looks at the held-out units). Keys: trees, lr, leaves, depth, min_leaf, lambda, subsample,
//! colsample, cap, seed.

use std::time::Instant;

use mw_pdm::eval::{EvalReport, evaluate, split_units, truncations, truncations_by_rul};
use mw_pdm::{CsvOptions, Format, Run, TrainOptions, read_runs, train};

const HOLDOUT: usize = 20;
const SPLIT_SEED: u64 = 2024;
const CUTS_PER_UNIT: usize = 10;
const MIN_OBSERVED: usize = 31;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args
        .iter()
        .find(|a| a.ends_with(".txt"))
        .cloned()
        .unwrap_or_else(|| {
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../../shared/datasets/cmapss/train_FD001.txt"
            )
            .into()
        });
    let mode = if args.iter().any(|a| a == "cv") {
        "cv"
    } else {
        "holdout"
    };
    let mut opts = TrainOptions::default();
    for a in &args {
        let Some((k, v)) = a.split_once('=') else {
            continue;
        };
        let g = &mut opts.gbm;
        match k {
            "trees" => g.n_trees = v.parse()?,
            "lr" => g.learning_rate = v.parse()?,
            "leaves" => g.max_leaves = v.parse()?,
            "depth" => g.max_depth = v.parse()?,
            "min_leaf" => g.min_leaf = v.parse()?,
            "lambda" => g.lambda = v.parse()?,
            "subsample" => g.subsample = v.parse()?,
            "colsample" => g.colsample = v.parse()?,
            "cap" => opts.rul_cap = v.parse()?,
            "seed" => opts.seed = v.parse()?,
            "folds" => opts.cv_folds = v.parse()?,
            _ => return Err(format!("unknown key {k}").into()),
        }
    }
    let runs = read_runs(
        std::fs::File::open(&path)?,
        Format::Cmapss,
        &CsvOptions::default(),
    )?;
    let (train_runs, test_runs) = split_units(&runs, HOLDOUT, SPLIT_SEED);
    println!(
        "{path}: {} units, {} train / {} held out",
        runs.len(),
        train_runs.len(),
        test_runs.len()
    );
    match mode {
        "cv" => cross_validate(&train_runs, &opts, args.iter().any(|a| a == "by_rul"))?,
        _ => {
            let t0 = Instant::now();
            let model = train(&train_runs, &opts, &mut |_, _| {})?;
            let secs = t0.elapsed().as_secs_f64();
            let info = model.info();
            println!(
                "trained in {secs:.1} s: {} rows, {} features, {} condition(s), dropped {:?}, internal CV RMSE {:.2}",
                info.rows,
                info.features,
                info.conditions,
                info.dropped,
                info.cv_rmse.unwrap_or(f64::NAN)
            );
            let mut saved = Vec::new();
            model.save(&mut saved)?;
            println!("model file: {} bytes", saved.len());
            let cuts = truncations(&test_runs, CUTS_PER_UNIT, MIN_OBSERVED, SPLIT_SEED);
            print_report(
                "held-out, uniform cuts",
                &evaluate(&model, &test_runs, &cuts)?,
                opts.interval,
            );
            let cuts =
                truncations_by_rul(&test_runs, CUTS_PER_UNIT, 7, 145, MIN_OBSERVED, SPLIT_SEED);
            print_report(
                "held-out, RUL 7..145",
                &evaluate(&model, &test_runs, &cuts)?,
                opts.interval,
            );
            let mut last = Vec::new();
            for run in &test_runs {
                last.push((run.unit.clone(), model.predict_last(run)?));
            }
            let mut s = Vec::new();
            mw_pdm::write_predictions(&mut s, &last[..3])?;
            print!("{}", String::from_utf8_lossy(&s));
        }
    }
    Ok(())
}

fn print_report(name: &str, r: &EvalReport, interval: f64) {
    println!(
        "{name}: {} points, RMSE {:.2} (RUL < cap: {:.2} over {} points), MAE {:.2}, bias {:+.2}, NASA score {:.1} \
         ({:.2}/point), band coverage {:.0} % (nominal {:.0} %), mean width {:.1}",
        r.points,
        r.rmse,
        r.rmse_below_cap,
        r.points_below_cap,
        r.mae,
        r.bias,
        r.nasa_score,
        r.nasa_score / r.points as f64,
        100.0 * r.band_coverage,
        100.0 * interval,
        r.band_width
    );
}

fn cross_validate(
    runs: &[Run],
    opts: &TrainOptions,
    by_rul: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let k = 5;
    let mut o = opts.clone();
    o.cv_folds = 0;
    let t0 = Instant::now();
    let (mut se, mut n) = (0.0, 0usize);
    for fold in 0..k {
        let (tr, te): (Vec<Run>, Vec<Run>) = {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for (i, r) in runs.iter().enumerate() {
                if i % k == fold {
                    b.push(r.clone())
                } else {
                    a.push(r.clone())
                }
            }
            (a, b)
        };
        let model = train(&tr, &o, &mut |_, _| {})?;
        let cuts = if by_rul {
            truncations_by_rul(&te, CUTS_PER_UNIT, 7, 145, MIN_OBSERVED, 77 + fold as u64)
        } else {
            truncations(&te, CUTS_PER_UNIT, MIN_OBSERVED, 77 + fold as u64)
        };
        let r = evaluate(&model, &te, &cuts)?;
        se += r.rmse * r.rmse * r.points as f64;
        n += r.points;
        print!("fold {fold}: {:.2}  ", r.rmse);
    }
    println!(
        "\nCV RMSE {:.3} ({} points, {:.1} s) {:?}",
        (se / n as f64).sqrt(),
        n,
        t0.elapsed().as_secs_f64(),
        opts.gbm
    );
    Ok(())
}
