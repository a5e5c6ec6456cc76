//! `millwright backtest`: replays a CSV file through a streaming detector (library: mw-analytics).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use mw_analytics::DetectorKind;
use mw_analytics::backtest::{
    BacktestError, BacktestOptions, BadRows, LabelWindows, LabelWindowsError,
};

use crate::progress::Progress;

#[derive(Args, Debug)]
pub struct BacktestArgs {
    /// Input CSV (`,`, `;` or tab separated, detected). Timestamps: RFC 3339, `YYYY-MM-DD HH:MM:SS`, epoch s or ms (detected).
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "tags",
        conflicts_with = "tags"
    )]
    pub input: Option<PathBuf>,
    /// Replay stored history instead of a file: a tag (repeat for a multivariate detector; the
    /// first tag's points are the rows, the others sample-and-hold). Offline, as `query`.
    #[arg(long = "tag", value_name = "PATH")]
    pub tags: Vec<String>,
    /// With --tag: start, as for `query` (RFC 3339, ns, or an age such as 7d).
    #[arg(long, value_name = "T", requires = "tags", allow_hyphen_values = true)]
    pub from: Option<String>,
    /// With --tag: end (exclusive), default now.
    #[arg(long, value_name = "T", requires = "tags", allow_hyphen_values = true)]
    pub to: Option<String>,
    #[command(flatten)]
    pub store: crate::history::StoreArgs,
    /// Output CSV, one row per input row: `timestamp`, the value columns, `anomaly_score`, `is_anomaly`, `contributors` (input cells kept exactly; unusable rows get an empty score; `contributors` names the columns behind each alarm onset as `name:share …`, empty on other rows).
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
    /// Warm-up the detector learns from without alarming: rows (`400`) or a duration (`2h`, `90m`, `3d`; converted with the typical interval) (default: the detector's own).
    #[arg(long, value_name = "ROWS|DURATION")]
    pub warmup: Option<mw_analytics::Length>,
    /// A step longer than this many typical intervals is a gap: not filled, the detector's short windows restart after it.
    #[arg(long, value_name = "N", default_value_t = mw_analytics::time::DEFAULT_GAP_FACTOR, value_parser = clap::value_parser!(u32).range(2..=10_000))]
    pub gap_factor: u32,
    /// Typical interval of the series (e.g. `1s`, the source's poll or sampling interval; default: learnt from the first rows).
    #[arg(long, value_name = "DURATION", value_parser = parse_interval)]
    pub interval: Option<i64>,
    /// 0/1 ground-truth column: prints precision, recall, F1, false-alarm and missed-alarm rates and event metrics.
    #[arg(long, value_name = "COLUMN", conflicts_with = "label_windows")]
    pub labels: Option<String>,
    /// Labelled anomaly windows instead of a column: NAB's combined_windows.json (with --label-key), a JSON list of [start, end] pairs, or a CSV of start,end rows.
    #[arg(long, value_name = "FILE")]
    pub label_windows: Option<PathBuf>,
    /// Entry of a combined_windows.json to use, e.g. realKnownCause/machine_temperature_system_failure.csv (the file name alone is enough when it is unique; default: the input's file name).
    #[arg(long, value_name = "KEY", requires = "label_windows")]
    pub label_key: Option<String>,
    /// Refuse time going backwards and duplicate timestamps (default: replay rows in file order and report them).
    #[arg(long)]
    pub strict_order: bool,
    /// Stop at the first unusable row (default: write it with an empty score, keep it from the detector, report it).
    #[arg(long)]
    pub fail_on_bad_rows: bool,
    /// Kept for compatibility: unusable rows are always marked and counted now, and this flag changes nothing.
    #[arg(long, hide = true)]
    pub skip_bad_rows: bool,
}

fn parse_interval(s: &str) -> Result<i64, String> {
    mw_analytics::time::parse_duration(s).map_err(|e| e.to_string())
}

pub fn run(a: BacktestArgs) -> Result<ExitCode> {
    let label_windows = match &a.label_windows {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("{}: cannot read the label windows", path.display()))?;
            // Without --label-key, an object of several entries (NAB's combined_windows.json)
            // is looked up by the input's file name.
            let input_name = a
                .input
                .as_ref()
                .and_then(|i| i.file_name())
                .map(|n| n.to_string_lossy().into_owned());
            let w = match (
                LabelWindows::parse(&text, a.label_key.as_deref()),
                &input_name,
            ) {
                (Err(LabelWindowsError::KeyNeeded { .. }), Some(name)) => {
                    LabelWindows::parse(&text, Some(name))
                }
                (r, _) => r,
            }
            .with_context(|| format!("{}: bad label windows", path.display()))?;
            Some(w)
        }
        None => None,
    };
    let opts = BacktestOptions {
        timestamp_column: a.timestamp_column.clone(),
        value_columns: a.value_columns.clone(),
        labels_column: a.labels.clone(),
        label_windows,
        detector: a.detector,
        warmup: match a.warmup {
            Some(mw_analytics::Length::Rows(n)) => Some(n),
            _ => None,
        },
        warmup_duration_ns: match a.warmup {
            Some(mw_analytics::Length::Duration(d)) => Some(d),
            _ => None,
        },
        gap_factor: Some(a.gap_factor),
        interval_ns: a.interval,
        delimiter: None,
        bad_rows: if a.fail_on_bad_rows {
            BadRows::Fail
        } else {
            BadRows::Mark
        },
        strict_order: a.strict_order,
        pass_missing: false,
    };
    let mut bar = Progress::new("backtest", "row");
    let summary = match &a.input {
        Some(input) => {
            mw_analytics::backtest::run_path(input, &a.output, &opts, &mut |done, total| {
                bar.set(done, total.unwrap_or(done))
            })
        }
        None => {
            let output = std::fs::File::create(&a.output)
                .with_context(|| format!("cannot create {}", a.output.display()))?;
            let (reader, rows) =
                crate::history::history_csv(&a.store, &a.tags, a.from.as_deref(), a.to.as_deref())?;
            let r = mw_analytics::backtest::run(
                reader,
                std::io::BufWriter::new(output),
                &opts,
                &mut |done, _| bar.set(done, done),
            );
            // A backtest that stopped early closed the pipe: its own error is the one to tell.
            match (rows.join(), &r) {
                (Ok(Err(e)), Ok(_)) => anyhow::bail!("cannot read the stored history: {e}"),
                (Err(_), Ok(_)) => anyhow::bail!("the history reader failed"),
                _ => {}
            }
            r
        }
    };
    let s = match summary {
        Ok(s) => s,
        Err(e) => {
            // Leave the output alone when it could not even be created (it is not ours).
            let not_created = matches!(&e, BacktestError::File { path, .. } if path == &a.output);
            if !not_created {
                let _ = std::fs::remove_file(&a.output);
            }
            match e {
                // Names its own file (the input or the output).
                BacktestError::File { .. } => anyhow::bail!("{e}"),
                BacktestError::Write(_) => anyhow::bail!("{}: {e}", a.output.display()),
                _ => anyhow::bail!("{}: {e}", input_label(&a)),
            }
        }
    };
    let mut out = String::new();
    let _ = writeln!(out, "{} -> {}", input_label(&a), a.output.display());
    let _ = write!(out, "{s}");
    crate::cli::write_stdout(out.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// What was replayed, for messages: the input file, or the stored tags.
fn input_label(a: &BacktestArgs) -> String {
    match &a.input {
        Some(p) => p.display().to_string(),
        None => format!("history of {}", a.tags.join(", ")),
    }
}
