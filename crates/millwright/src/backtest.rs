//! `millwright backtest`: replays a CSV file through a streaming detector (library: mw-analytics).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use mw_analytics::DetectorKind;
use mw_analytics::backtest::{BacktestOptions, BadRows};

use crate::progress::Progress;

#[derive(Args, Debug)]
pub struct BacktestArgs {
    /// Input CSV (`,` or `;` separated, detected). Timestamps: RFC 3339, `YYYY-MM-DD HH:MM:SS`, epoch s or ms (detected).
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,
    /// Output CSV: `timestamp`, the value columns, `anomaly_score`, `is_anomaly` (input timestamps kept exactly).
    #[arg(long, value_name = "FILE")]
    pub output: PathBuf,
    /// Timestamp column (default: detected).
    #[arg(long, value_name = "C")]
    pub timestamp_column: Option<String>,
    /// Value column; repeat for a multivariate detector (default: every numeric column except labels).
    #[arg(long = "value-column", value_name = "C")]
    pub value_columns: Vec<String>,
    /// Detector: auto, mad, ewma, cusum, seasonal, pca.
    #[arg(long, default_value = "auto", value_name = "NAME")]
    pub detector: DetectorKind,
    /// Rows the detector learns from without alarming (default: the detector's own).
    #[arg(long, value_name = "ROWS")]
    pub warmup: Option<usize>,
    /// 0/1 ground-truth column: prints precision, recall, F1, false-alarm and missed-alarm rates.
    #[arg(long, value_name = "COLUMN")]
    pub labels: Option<String>,
    /// Skip (and count) unusable rows instead of stopping at the first one.
    #[arg(long)]
    pub skip_bad_rows: bool,
}

pub fn run(a: BacktestArgs) -> Result<ExitCode> {
    let opts = BacktestOptions {
        timestamp_column: a.timestamp_column.clone(),
        value_columns: a.value_columns.clone(),
        labels_column: a.labels.clone(),
        detector: a.detector,
        warmup: a.warmup,
        delimiter: None,
        bad_rows: if a.skip_bad_rows {
            BadRows::Skip
        } else {
            BadRows::Fail
        },
        pass_missing: false,
    };
    let mut bar = Progress::new("backtest", "row");
    let summary =
        mw_analytics::backtest::run_path(&a.input, &a.output, &opts, &mut |done, total| {
            bar.set(done, total.unwrap_or(done))
        });
    bar.finish();
    let s = match summary {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_file(&a.output);
            anyhow::bail!("{}: {e}", a.input.display());
        }
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {} row(s), detector {} over [{}], timestamp column {:?} ({:?}), delimiter {:?}",
        a.input.display(),
        s.rows,
        s.detector,
        s.value_columns.join(", "),
        s.timestamp_column,
        s.timestamp_format,
        s.delimiter
    );
    let _ = writeln!(
        out,
        "warm-up {} row(s), scored {}, flagged anomalous {}; written to {}",
        s.warmup_rows,
        s.scored,
        s.anomalies,
        a.output.display()
    );
    let sk = s.skipped;
    let skipped = sk.ragged
        + sk.non_numeric
        + sk.missing
        + sk.bad_timestamp
        + sk.unordered
        + sk.duplicate
        + sk.bad_label;
    if skipped > 0 {
        let _ = writeln!(out, "skipped {skipped} row(s): {sk:?}");
    }
    if let Some(m) = s.metrics {
        let _ = writeln!(
            out,
            "precision {:.4}  recall {:.4}  F1 {:.4}  false-alarm rate {:.2} %  missed-alarm rate {:.2} %  (TP {} FP {} TN {} FN {})",
            m.precision,
            m.recall,
            m.f1,
            100.0 * m.far,
            100.0 * m.mar,
            m.tp,
            m.fp,
            m.tn,
            m.fn_
        );
    }
    crate::cli::write_stdout(out.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
