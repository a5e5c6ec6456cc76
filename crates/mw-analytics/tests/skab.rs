//! SKAB evaluation (Skoltech Anomaly Benchmark, 34 labelled files).
//!
//! Protocol: per file a fresh `auto` detector on the 8 sensors, the first 400 rows are
//! warm-up and not scored, pointwise confusion summed over all files → F1, FAR, MAR.
//! Skips (with a message) when `shared/datasets/skab` is absent.
//!
//! `cargo test -p mw-analytics --release --test skab -- --nocapture` prints the figures, overall
//! and for the two halves `valve1` / `valve2` + `other` (a change that helps only one half is
//! suspect); with `SKAB_DETAIL=1` also false alarms before / after the fault per file.

use std::path::{Path, PathBuf};

use mw_analytics::backtest::{self, BacktestOptions, Confusion, Metrics};

const SENSORS: [&str; 8] = [
    "Accelerometer1RMS",
    "Accelerometer2RMS",
    "Current",
    "Pressure",
    "Temperature",
    "Thermocouple",
    "Voltage",
    "Volume Flow RateRMS",
];
const WARMUP: usize = 400;

/// Measured with the defaults of this crate: F1 0.8161, FAR 12.48 %, MAR 23.64 % (before the
/// mean-of-Q head of issue 14: 0.8159, 12.48 %, 23.67 %; before the 3-row head: 0.8091,
/// 12.44 %, 24.77 %); the bounds leave a
/// little room so that harmless floating-point changes do not fail the test. The false-alarm
/// bound is also the goal (< 13.5 %, better than the best published row).
const MIN_F1: f64 = 0.80;
const MAX_FAR: f64 = 0.13;
const MAX_MAR: f64 = 0.25;

fn skab_files() -> Option<Vec<PathBuf>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets/skab");
    let mut files = Vec::new();
    for dir in ["valve1", "valve2", "other"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            eprintln!(
                "SKIPPED: SKAB data set not found at {} (expected shared/datasets/skab)",
                root.display()
            );
            return None;
        };
        let mut f: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "csv"))
            .collect();
        f.sort();
        files.extend(f);
    }
    Some(files)
}

struct FileResult {
    summary: backtest::Summary,
    labels: Vec<bool>,
    predicted: Vec<bool>,
}

fn evaluate(path: &Path) -> FileResult {
    let opts = BacktestOptions {
        value_columns: SENSORS.iter().map(|s| (*s).to_owned()).collect(),
        labels_column: Some("anomaly".into()),
        warmup: Some(WARMUP),
        ..Default::default()
    };
    let text = std::fs::read_to_string(path).expect("read SKAB file");
    let mut out = Vec::new();
    let summary =
        backtest::run(text.as_bytes(), &mut out, &opts, &mut |_, _| {}).expect("backtest runs");
    // Labels straight from the input text (column 10, `0.0`/`1.0`), predictions straight
    // from the output text (last column).
    let labels = text
        .lines()
        .skip(1)
        .map(|l| l.split(';').nth(9).expect("anomaly column").trim() == "1.0")
        .collect();
    let predicted = String::from_utf8(out)
        .expect("utf-8")
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').nth(1) == Some("1"))
        .collect();
    FileResult {
        summary,
        labels,
        predicted,
    }
}

/// An independent, deliberately naive implementation of the protocol's metrics.
fn naive_metrics(results: &[FileResult]) -> (f64, f64, f64) {
    let (mut tp, mut fp, mut tn, mut fnn) = (0usize, 0usize, 0usize, 0usize);
    for r in results {
        assert_eq!(r.labels.len(), r.predicted.len());
        for i in WARMUP..r.labels.len() {
            let (l, p) = (r.labels[i], r.predicted[i]);
            tp += usize::from(l && p);
            fp += usize::from(!l && p);
            tn += usize::from(!l && !p);
            fnn += usize::from(l && !p);
        }
    }
    let precision = tp as f64 / (tp + fp) as f64;
    let recall = tp as f64 / (tp + fnn) as f64;
    (
        2.0 * precision * recall / (precision + recall),
        fp as f64 / (fp + tn) as f64,
        fnn as f64 / (fnn + tp) as f64,
    )
}

fn summed(results: &[FileResult]) -> Metrics {
    let mut total = Confusion::default();
    for r in results {
        let m = r.summary.metrics.expect("labels give metrics");
        total.merge(&Confusion {
            tp: m.tp,
            fp: m.fp,
            tn: m.tn,
            fn_: m.fn_,
        });
    }
    total.metrics()
}

#[test]
fn skab_auto_meets_the_measured_bounds() {
    let Some(files) = skab_files() else { return };
    assert_eq!(files.len(), 34, "expected the 34 labelled SKAB files");
    let t0 = std::time::Instant::now();
    let results: Vec<FileResult> = files.iter().map(|f| evaluate(f)).collect();
    let m = summed(&results);
    println!(
        "SKAB auto: F1 {:.4}  FAR {:.2} %  MAR {:.2} %  (precision {:.3}, recall {:.3}; TP {} FP {} TN {} FN {}; {:?})",
        m.f1,
        100.0 * m.far,
        100.0 * m.mar,
        m.precision,
        m.recall,
        m.tp,
        m.fp,
        m.tn,
        m.fn_,
        t0.elapsed()
    );
    // `skab_files` lists valve1 (16 files) first.
    for (name, part) in [("valve1", &results[..16]), ("valve2+other", &results[16..])] {
        let h = summed(part);
        println!(
            "  {name}: F1 {:.4}  FAR {:.2} %  MAR {:.2} %  (TP {} FP {} TN {} FN {})",
            h.f1,
            100.0 * h.far,
            100.0 * h.mar,
            h.tp,
            h.fp,
            h.tn,
            h.fn_
        );
    }
    if std::env::var_os("SKAB_DETAIL").is_some() {
        for (f, r) in files.iter().zip(&results) {
            let first = r.labels.iter().position(|l| *l).unwrap_or(r.labels.len());
            let last = r.labels.iter().rposition(|l| *l).unwrap_or(0);
            let fp_before = (WARMUP..first).filter(|&i| r.predicted[i]).count();
            let fp_after = (last + 1..r.labels.len())
                .filter(|&i| r.predicted[i])
                .count();
            let fn_ = (0..r.labels.len())
                .filter(|&i| i >= WARMUP && r.labels[i] && !r.predicted[i])
                .count();
            println!(
                "  {}: n {} fault {first}..={last}  FP before {fp_before}/{}  FP after {fp_after}/{}  FN {fn_}",
                f.display(),
                r.labels.len(),
                first.saturating_sub(WARMUP),
                r.labels.len() - last - 1
            );
        }
    }
    assert!(m.f1 >= MIN_F1, "F1 {:.4} below {MIN_F1}", m.f1);
    assert!(m.far <= MAX_FAR, "FAR {:.4} above {MAX_FAR}", m.far);
    assert!(m.mar <= MAX_MAR, "MAR {:.4} above {MAX_MAR}", m.mar);
}

#[test]
fn skab_metrics_agree_with_an_independent_implementation() {
    let Some(files) = skab_files() else { return };
    let results: Vec<FileResult> = files.iter().map(|f| evaluate(f)).collect();
    for r in &results {
        assert_eq!(
            r.summary.scored as usize,
            r.labels.len() - WARMUP,
            "every post-warm-up row is scored"
        );
    }
    let m = summed(&results);
    let (f1, far, mar) = naive_metrics(&results);
    assert!((m.f1 - f1).abs() < 1e-12, "F1 {} vs {}", m.f1, f1);
    assert!((m.far - far).abs() < 1e-12, "FAR {} vs {}", m.far, far);
    assert!((m.mar - mar).abs() < 1e-12, "MAR {} vs {}", m.mar, mar);
}
