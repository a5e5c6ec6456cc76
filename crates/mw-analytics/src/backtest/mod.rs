//! Backtesting: replay a CSV file through a detector, in file order, as live operation would,
//! and write the scores next to the data.
//!
//! * **Input.** A header row, then one row per sample, read with the `csv` crate (RFC 4180
//!   quoting). The delimiter (`,`, `;` or tab) is detected from the header unless given.
//!   Blank lines are ignored; a UTF-8 byte-order mark is dropped. With `;` as the delimiter a
//!   decimal comma (`1,5`) is accepted.
//! * **Timestamp column.** Named by [`BacktestOptions::timestamp_column`], else the first
//!   column called `timestamp`, `time`, `datetime`, `date_time`, `date` or `ts` (any case),
//!   else the first column whose first value is a calendar date-time. Its format is
//!   detected from the first data row ([`TimestampFormat`]) and every row must match it.
//! * **Order.** Rows are replayed in the order of the file, whatever their timestamps: a
//!   detector sees what it would have seen live. Time going backwards and duplicate
//!   timestamps are counted in [`Summary::issues`] (with the first line of each);
//!   [`BacktestOptions::strict_order`] refuses them instead.
//! * **Value columns.** Named by [`BacktestOptions::value_columns`], else every column other
//!   than the timestamp and the labels whose first value is numeric, excluding columns that
//!   are conventionally labels (`anomaly`, `label`, `changepoint`, … see
//!   [`LABEL_LIKE_COLUMNS`]).
//! * **Output.** Exactly one row per input row: a `,`-separated CSV with the columns
//!   `timestamp, <value columns…>, anomaly_score, is_anomaly, contributors`. Timestamp and
//!   value cells are copied *exactly* as they were in the input; `anomaly_score` has six
//!   decimals; `is_anomaly` is `0` or `1`. Warm-up rows are written with score `0` and
//!   `is_anomaly` `0`; unusable rows with an empty score and `is_anomaly` `0`. `contributors`
//!   is filled only on alarm onsets (a row with `is_anomaly` 1 after one with 0): the value
//!   columns behind the onset, largest share first, as `name:share` separated by spaces (e.g.
//!   `flow:0.62 temp:0.21`, at most [`TOP_CONTRIBUTORS`], see
//!   [`crate::Detector::contributors`]); it is empty on every other row.
//! * **Labels.** With [`BacktestOptions::labels_column`], every row needs a label (`0`/`1`,
//!   `0.0`/`1.0`, `true`/`false`; any non-zero number is anomalous); with
//!   [`BacktestOptions::label_windows`] a row is anomalous when its time is in a window. The
//!   summary then carries pointwise [`Metrics`] and [`EventMetrics`] over the scored
//!   (post-warm-up) rows.
//! * **Unusable rows** (wrong number of fields, a value that is not a number, an empty or
//!   `NaN` value, a timestamp that does not parse, a bad label): under [`BadRows::Mark`] (the
//!   default) the row is written with an empty score, not given to the detector, and counted
//!   in [`Summary::issues`] with the first line of each kind. Under [`BadRows::Fail`] the
//!   first one stops the run with a [`BacktestError`] naming its line (1-based, counting the
//!   header as line 1) and column. With [`BacktestOptions::pass_missing`] empty or `NaN`
//!   cells reach the detector as NaN instead (see the crate docs for how detectors treat
//!   missing values) and are counted in [`Summary::rows_with_missing`]. Problems of the
//!   whole file (no header, no data, invalid UTF-8, an unclosed quote, missing columns) always
//!   fail.
//! * **Memory.** Rows are streamed: only the current row, the detector state and bounded
//!   statistics (the first 1 000 intervals, the first few alarm ranges) are held.

mod csv;
mod labels;
mod metrics;
mod report;
mod timestamp;

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

pub use labels::{LabelWindows, LabelWindowsError};
pub use metrics::{
    Alarms, Confusion, EventCounter, EventMetrics, FlaggedRange, MAX_RANGES, Metrics,
};
pub use report::{format_duration, format_time};
pub use timestamp::{EpochUnit, TimestampFormat};

use crate::time::{DEFAULT_GAP_FACTOR, Length, MAX_GAP_FACTOR, MIN_GAP_FACTOR};
use crate::{DetectorKind, TimeOptions, build_timed};

/// The detector's time options from the backtest's.
fn time_options(opts: &BacktestOptions) -> TimeOptions {
    TimeOptions {
        warmup: opts
            .warmup_duration_ns
            .map(Length::Duration)
            .or(opts.warmup.map(Length::Rows)),
        gap_factor: gap_factor(opts),
        interval_ns: opts.interval_ns,
    }
}

fn gap_factor(opts: &BacktestOptions) -> u32 {
    opts.gap_factor
        .unwrap_or(DEFAULT_GAP_FACTOR)
        .clamp(MIN_GAP_FACTOR, MAX_GAP_FACTOR)
}

/// Column names recognised as timestamps when no timestamp column is named.
pub const TIMESTAMP_COLUMNS: [&str; 6] =
    ["timestamp", "time", "datetime", "date_time", "date", "ts"];
/// Column names never picked automatically as values (compared case-insensitively).
pub const LABEL_LIKE_COLUMNS: [&str; 10] = [
    "anomaly",
    "anomalies",
    "is_anomaly",
    "label",
    "labels",
    "changepoint",
    "change_point",
    "outlier",
    "target",
    "class",
];

/// What to do with a row that cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BadRows {
    /// Write it with an empty score, keep it from the detector, count it.
    #[default]
    Mark,
    /// Stop with an error naming the row and column.
    Fail,
}

/// Options of [`run`].
#[derive(Debug, Clone, Default)]
pub struct BacktestOptions {
    /// Timestamp column; detected when `None`.
    pub timestamp_column: Option<String>,
    /// Value columns; every numeric non-label column when empty.
    pub value_columns: Vec<String>,
    /// Column with 0/1 ground truth; enables [`Summary::metrics`].
    pub labels_column: Option<String>,
    /// Labelled time windows, instead of a labels column; enables [`Summary::metrics`].
    pub label_windows: Option<LabelWindows>,
    /// Detector to run.
    pub detector: DetectorKind,
    /// Warm-up rows; [`crate::DEFAULT_WARMUP`] when `None` (and no `warmup_duration_ns`).
    pub warmup: Option<usize>,
    /// Warm-up as a duration (ns), converted to rows with the typical interval; takes
    /// precedence over `warmup`.
    pub warmup_duration_ns: Option<i64>,
    /// A step longer than this many typical intervals is a gap, for the detector and the
    /// summary; [`crate::time::DEFAULT_GAP_FACTOR`] when `None`.
    pub gap_factor: Option<u32>,
    /// The typical interval (ns), if known; learnt by the detector when `None`.
    pub interval_ns: Option<i64>,
    /// Field delimiter; detected from the header when `None`.
    pub delimiter: Option<u8>,
    /// Policy for unusable rows.
    pub bad_rows: BadRows,
    /// Refuse a timestamp earlier than or equal to the previous row's.
    pub strict_order: bool,
    /// Pass empty/NaN value cells to the detector as missing values instead of treating
    /// the row as unusable.
    pub pass_missing: bool,
}

/// The first row of one kind of problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct First {
    /// Line number in the input (1-based, the header is line 1).
    pub line: u64,
    /// What is wrong with it, in words (e.g. `column "a": "abc" is not a number`).
    pub detail: String,
}

/// How often one kind of problem occurred, and where first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Issue {
    /// Rows with this problem.
    pub count: u64,
    /// The first of them.
    pub first: Option<First>,
}

impl Issue {
    fn add(&mut self, line: u64, detail: impl FnOnce() -> String) {
        self.count += 1;
        if self.first.is_none() {
            self.first = Some(First {
                line,
                detail: detail(),
            });
        }
    }
}

/// Irregular rows: order problems (the row is still scored) and unusable rows (written with
/// an empty score, not given to the detector).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RowIssues {
    /// Rows whose time is earlier than the previous row's.
    pub backwards: Issue,
    /// The largest step back, in nanoseconds.
    pub largest_step_back_ns: i64,
    /// Rows whose time is earlier than some row before them (a step back of 55 minutes in
    /// 5-minute data puts the next 11 rows here).
    pub behind: u64,
    /// Rows whose time equals the previous row's.
    pub duplicates: Issue,
    /// Unusable: wrong number of fields.
    pub ragged: Issue,
    /// Unusable: a value cell that is not a number.
    pub non_numeric: Issue,
    /// Unusable: an empty or NaN value cell (without `pass_missing`).
    pub missing: Issue,
    /// Unusable: a timestamp that does not parse in the detected format.
    pub bad_timestamp: Issue,
    /// Unusable: a label cell that is not 0/1/true/false/number.
    pub bad_label: Issue,
}

impl RowIssues {
    /// Unusable rows of every kind.
    pub fn unusable(&self) -> u64 {
        self.ragged.count
            + self.non_numeric.count
            + self.missing.count
            + self.bad_timestamp.count
            + self.bad_label.count
    }
}

/// A gap between two consecutive rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    /// Line of the row after the gap.
    pub line: u64,
    /// Time of the row before the gap (ns since the epoch).
    pub from_ns: i64,
    /// Time of the row after it.
    pub to_ns: i64,
}

/// Time coverage of the rows whose timestamp parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeStats {
    /// Earliest timestamp (ns since the epoch).
    pub first_ns: i64,
    /// Latest timestamp.
    pub last_ns: i64,
    /// Typical interval ([`crate::time::typical_interval`]) of the first
    /// [`INTERVAL_SAMPLE`] forward steps between consecutive rows: the interval of a regular
    /// series, the source's interval of a deadband/report-by-exception one; `None` when time
    /// never moved forward.
    pub typical_interval_ns: Option<i64>,
    /// The gap factor in use ([`BacktestOptions::gap_factor`]).
    pub gap_factor: u32,
    /// Forward steps longer than `gap_factor` × the typical interval.
    pub gaps: u64,
    /// The longest of them.
    pub longest_gap: Option<Gap>,
}

/// Forward steps the typical interval is the median of.
pub const INTERVAL_SAMPLE: usize = 1000;
/// A step longer than this many typical intervals is a gap, by default
/// ([`crate::time::DEFAULT_GAP_FACTOR`]).
pub const GAP_FACTOR: i64 = DEFAULT_GAP_FACTOR as i64;

/// What a backtest did.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Data rows read (excluding the header and blank lines).
    pub rows: u64,
    /// Rows written to the output (one per row read).
    pub written: u64,
    /// Rows consumed by the detector's warm-up.
    pub warmup_rows: u64,
    /// Rows scored after the warm-up.
    pub scored: u64,
    /// Scored rows flagged anomalous.
    pub anomalies: u64,
    /// Rows with at least one missing value passed to the detector (`pass_missing`).
    pub rows_with_missing: u64,
    /// Order problems and unusable rows, by kind, with the first line of each.
    pub issues: RowIssues,
    /// Time span, typical interval and gaps; `None` when no timestamp parsed.
    pub time: Option<TimeStats>,
    /// The delimiter used.
    pub delimiter: char,
    /// The timestamp column used.
    pub timestamp_column: String,
    /// The detected timestamp format.
    pub timestamp_format: TimestampFormat,
    /// The value columns used, in output order.
    pub value_columns: Vec<String>,
    /// Name of the detector that ran.
    pub detector: String,
    /// What the detector's time-aware layer did: the interval it used, held ticks filled
    /// for a deadband/report-by-exception series, gaps it restarted after.
    pub time_layer: Option<crate::TimeReport>,
    /// What the detector is, in words (for `auto`: the kind it became for this many columns).
    pub detector_description: String,
    /// Alarm onsets and the first flagged ranges.
    pub alarms: Alarms,
    /// Where the labels came from (`column "anomaly"`, `12 windows`), when labels were given.
    pub labels: Option<String>,
    /// Pointwise metrics over the scored rows, when labels were given.
    pub metrics: Option<Metrics>,
    /// Event-level metrics over the scored rows, when labels were given.
    pub events: Option<EventMetrics>,
}

/// Why a backtest failed. Rows are line numbers in the input file (1-based, the header is
/// line 1).
#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    /// Reading the input failed.
    #[error("reading the input failed: {0}")]
    Read(#[source] io::Error),
    /// Writing the output failed.
    #[error("writing the output failed: {0}")]
    Write(#[source] io::Error),
    /// A file could not be opened or created.
    #[error("{}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The input has no header row.
    #[error("the input is empty (expected a header row)")]
    Empty,
    /// The input has a header but no data rows.
    #[error("the input has a header but no data rows")]
    NoData,
    /// The header has a single column, so no delimiter could be detected.
    #[error(
        "the header has a single column; expected a timestamp and values separated by ',' or ';'"
    )]
    NoDelimiter,
    /// A named column is not in the header.
    #[error("row 1: no column {name:?} (the header has: {})", available.join(", "))]
    MissingColumn {
        /// The name that was asked for.
        name: String,
        /// The columns that exist.
        available: Vec<String>,
    },
    /// No timestamp column was named and none could be detected.
    #[error(
        "no timestamp column found (looked for {} and for a date-time value); name it with the timestamp column option. Columns: {}",
        TIMESTAMP_COLUMNS.join("/"),
        available.join(", ")
    )]
    NoTimestampColumn {
        /// The columns that exist.
        available: Vec<String>,
    },
    /// The timestamp format of the first data row is not recognised.
    #[error(
        "row {row}, column {column:?}: timestamp {value:?} is not RFC 3339, YYYY-MM-DD HH:MM:SS or an epoch number"
    )]
    UnknownTimestampFormat {
        /// Line number.
        row: u64,
        /// Timestamp column.
        column: String,
        /// The cell.
        value: String,
    },
    /// No value columns were named and no numeric column was found.
    #[error("no numeric value columns found; name them with the value column option. Columns: {}", available.join(", "))]
    NoValueColumns {
        /// The columns that exist.
        available: Vec<String>,
    },
    /// A row has the wrong number of fields.
    #[error("row {row}: {found} fields, but the header has {expected}")]
    Ragged {
        /// Line number.
        row: u64,
        /// Fields in the header.
        expected: usize,
        /// Fields in this row.
        found: usize,
    },
    /// A value cell is not a number.
    #[error("row {row}, column {column:?}: {value:?} is not a number")]
    NotANumber {
        /// Line number.
        row: u64,
        /// Column name.
        column: String,
        /// The cell.
        value: String,
    },
    /// A value cell is empty or NaN.
    #[error(
        "row {row}, column {column:?}: missing value {value:?} (allow missing values to pass them to the detector)"
    )]
    MissingValue {
        /// Line number.
        row: u64,
        /// Column name.
        column: String,
        /// The cell.
        value: String,
    },
    /// A timestamp does not parse in the detected format.
    #[error(
        "row {row}, column {column:?}: timestamp {value:?} is not in the detected format ({format})"
    )]
    BadTimestamp {
        /// Line number.
        row: u64,
        /// Timestamp column.
        column: String,
        /// The cell.
        value: String,
        /// The format detected on the first data row.
        format: TimestampFormat,
    },
    /// A timestamp is earlier than the previous row's (only with strict order).
    #[error(
        "row {row}, column {column:?}: timestamp {value:?} is earlier than the previous row's {previous:?} (strict order refuses time going backwards; without it rows are replayed in file order)"
    )]
    Unsorted {
        /// Line number.
        row: u64,
        /// Timestamp column.
        column: String,
        /// The cell.
        value: String,
        /// The previous row's timestamp cell.
        previous: String,
    },
    /// A timestamp equals the previous row's (only with strict order).
    #[error(
        "row {row}, column {column:?}: timestamp {value:?} is the same as the previous row's (strict order refuses duplicates)"
    )]
    DuplicateTimestamp {
        /// Line number.
        row: u64,
        /// Timestamp column.
        column: String,
        /// The cell.
        value: String,
    },
    /// A label cell is not 0/1/true/false or a number.
    #[error("row {row}, column {column:?}: label {value:?} is not 0/1, true/false or a number")]
    BadLabel {
        /// Line number.
        row: u64,
        /// Labels column.
        column: String,
        /// The cell.
        value: String,
    },
    /// The input is not valid UTF-8.
    #[error("row {row}: not valid UTF-8")]
    Encoding {
        /// Line number.
        row: u64,
    },
    /// Both a labels column and label windows were given.
    #[error("labels come from a column or from windows, not both")]
    TwoLabelSources,
    /// A quoted field is never closed.
    #[error("row {row}: a quoted field is not closed before the end of the input")]
    UnterminatedQuote {
        /// Line number where the record starts.
        row: u64,
    },
}

/// How often [`run`] reports progress, in rows.
pub const PROGRESS_EVERY: u64 = 4096;

/// Outcome of parsing one value cell.
enum Cell {
    Value(f64),
    Missing,
    NotANumber,
}

fn parse_value(s: &str, delim: u8) -> Cell {
    let t = s.trim();
    if t.is_empty() {
        return Cell::Missing;
    }
    let v = match t.parse::<f64>() {
        Ok(v) => v,
        Err(_) if delim == b';' && t.matches(',').count() == 1 && !t.contains('.') => {
            match t.replace(',', ".").parse::<f64>() {
                Ok(v) => v,
                Err(_) => return Cell::NotANumber,
            }
        }
        Err(_) => return Cell::NotANumber,
    };
    if v.is_finite() {
        Cell::Value(v)
    } else {
        Cell::Missing
    }
}

fn parse_label(s: &str) -> Option<bool> {
    let t = s.trim();
    match t.to_ascii_lowercase().as_str() {
        "true" | "yes" => Some(true),
        "false" | "no" => Some(false),
        _ => t
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .map(|v| v != 0.0),
    }
}

fn find_column(header: &[String], name: &str) -> Result<usize, BacktestError> {
    header
        .iter()
        .position(|h| h == name)
        .or_else(|| header.iter().position(|h| h.eq_ignore_ascii_case(name)))
        .ok_or_else(|| BacktestError::MissingColumn {
            name: name.to_owned(),
            available: header.to_vec(),
        })
}

/// The resolved layout of the input.
struct Layout {
    ts: usize,
    values: Vec<usize>,
    labels: Option<usize>,
    format: TimestampFormat,
}

fn resolve_layout(
    header: &[String],
    first: &[String],
    first_row: u64,
    delim: u8,
    opts: &BacktestOptions,
) -> Result<Layout, BacktestError> {
    let ts = match &opts.timestamp_column {
        Some(name) => find_column(header, name)?,
        None => TIMESTAMP_COLUMNS
            .iter()
            .find_map(|c| header.iter().position(|h| h.eq_ignore_ascii_case(c)))
            .or_else(|| first.iter().position(|v| TimestampFormat::is_date_like(v)))
            .ok_or_else(|| BacktestError::NoTimestampColumn {
                available: header.to_vec(),
            })?,
    };
    let labels = opts
        .labels_column
        .as_deref()
        .map(|n| find_column(header, n))
        .transpose()?;
    let values = if opts.value_columns.is_empty() {
        let v: Vec<usize> = (0..header.len())
            .filter(|&i| i != ts && Some(i) != labels)
            .filter(|&i| {
                !LABEL_LIKE_COLUMNS
                    .iter()
                    .any(|l| header[i].eq_ignore_ascii_case(l))
            })
            .filter(|&i| {
                first
                    .get(i)
                    .is_some_and(|c| !matches!(parse_value(c, delim), Cell::NotANumber))
            })
            .collect();
        if v.is_empty() {
            return Err(BacktestError::NoValueColumns {
                available: header.to_vec(),
            });
        }
        v
    } else {
        opts.value_columns
            .iter()
            .map(|n| find_column(header, n))
            .collect::<Result<_, _>>()?
    };
    let ts_cell = first.get(ts).map(String::as_str).unwrap_or("");
    let format =
        TimestampFormat::detect(ts_cell).ok_or_else(|| BacktestError::UnknownTimestampFormat {
            row: first_row,
            column: header[ts].clone(),
            value: ts_cell.to_owned(),
        })?;
    Ok(Layout {
        ts,
        values,
        labels,
        format,
    })
}

/// Runs `opts.detector` over the CSV in `input`, writes the scored CSV to `output` and
/// returns a [`Summary`]. `progress(rows_done, rows_total)` is called every
/// [`PROGRESS_EVERY`] rows and once at the end; `rows_total` is `None` because a stream's
/// length is unknown ([`run_path`] knows it).
pub fn run(
    input: impl Read,
    output: impl Write,
    opts: &BacktestOptions,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<Summary, BacktestError> {
    run_inner(input, output, opts, None, progress)
}

/// [`run`] on files. The input is scanned once beforehand to count its lines, so that
/// `progress` gets a total.
pub fn run_path(
    input: &Path,
    output: &Path,
    opts: &BacktestOptions,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<Summary, BacktestError> {
    let total =
        count_lines(File::open(input).map_err(file_err(input))?).map_err(file_err(input))?;
    let reader = File::open(input).map_err(file_err(input))?;
    let writer = File::create(output).map_err(file_err(output))?;
    run_inner(
        reader,
        writer,
        opts,
        Some(total.saturating_sub(1)),
        progress,
    )
}

fn file_err(path: &Path) -> impl Fn(io::Error) -> BacktestError + '_ {
    move |source| BacktestError::File {
        path: path.to_owned(),
        source,
    }
}

fn count_lines(file: File) -> io::Result<u64> {
    let mut r = BufReader::with_capacity(1 << 16, file);
    let mut n = 0u64;
    let mut last = b'\n';
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        n += buf.iter().filter(|&&b| b == b'\n').count() as u64;
        last = buf[buf.len() - 1];
        let len = buf.len();
        r.consume(len);
    }
    Ok(if last == b'\n' { n } else { n + 1 })
}

fn read_err(e: ::csv::Error) -> BacktestError {
    match e.into_kind() {
        ::csv::ErrorKind::Io(e) => BacktestError::Read(e),
        other => BacktestError::Read(io::Error::other(format!("{other:?}"))),
    }
}

fn write_err(e: ::csv::Error) -> BacktestError {
    match e.into_kind() {
        ::csv::ErrorKind::Io(e) => BacktestError::Write(e),
        other => BacktestError::Write(io::Error::other(format!("{other:?}"))),
    }
}

fn is_blank(rec: &::csv::ByteRecord) -> bool {
    rec.iter().all(|f| f.iter().all(u8::is_ascii_whitespace))
}

fn line_of<R: Read>(reader: &mut ::csv::Reader<csv::Tracker<R>>, rec: &::csv::ByteRecord) -> u64 {
    let start = rec.position().map_or(0, |p| p.byte());
    reader.get_mut().line_at(start)
}

fn text(cell: &[u8], line: u64) -> Result<&str, BacktestError> {
    std::str::from_utf8(cell).map_err(|_| BacktestError::Encoding { row: line })
}

/// Typical interval and gaps, from a bounded sample of forward steps.
#[derive(Default)]
struct Intervals {
    /// The first forward steps (until the typical interval is fixed): (step, line, from).
    sample: Vec<(i64, u64, i64)>,
    typical: Option<i64>,
    /// Gap factor (a step over `factor` × typical is a gap).
    factor: i64,
    gaps: u64,
    longest: Option<Gap>,
}

impl Intervals {
    fn push(&mut self, step: i64, line: u64, from_ns: i64) {
        match self.typical {
            Some(t) => self.check(t, step, line, from_ns),
            None => {
                self.sample.push((step, line, from_ns));
                if self.sample.len() >= INTERVAL_SAMPLE {
                    self.fix();
                }
            }
        }
    }

    fn check(&mut self, typical: i64, step: i64, line: u64, from_ns: i64) {
        if step > typical.saturating_mul(self.factor.max(1)) {
            self.gaps += 1;
            let gap = Gap {
                line,
                from_ns,
                to_ns: from_ns.saturating_add(step),
            };
            if self
                .longest
                .is_none_or(|g| g.to_ns.saturating_sub(g.from_ns) < step)
            {
                self.longest = Some(gap);
            }
        }
    }

    fn fix(&mut self) {
        if self.sample.is_empty() {
            return;
        }
        let steps: Vec<i64> = self.sample.iter().map(|s| s.0).collect();
        let Some(t) = crate::time::typical_interval(&steps) else {
            return;
        };
        self.typical = Some(t);
        for (step, line, from) in std::mem::take(&mut self.sample) {
            self.check(t, step, line, from);
        }
    }
}

/// The order bookkeeping over rows whose timestamp parsed.
#[derive(Default)]
struct Clock {
    prev: Option<i64>,
    /// The previous row's timestamp cell, as written.
    prev_text: String,
    min: Option<i64>,
    max: Option<i64>,
    intervals: Intervals,
}

fn describe_detector(kind: DetectorKind, n_vars: usize) -> String {
    let vars = if n_vars == 1 {
        "1 variable".to_owned()
    } else {
        format!("{n_vars} variables")
    };
    let what = match (kind, n_vars) {
        (DetectorKind::Auto, 1) => {
            "the univariate forecast residual: point and drift heads with peaks-over-threshold limits on the residual of a seasonal baseline (a 64-row rolling median when no period is found), alarms as events that end, plus a stuck-sensor test"
        }
        (DetectorKind::Auto, _) => {
            "the multivariate PCA: T² and Q on the raw rows and on 3-, 8- and 32-row means, plus a stuck-sensor test per variable"
        }
        (DetectorKind::Mad, _) => "rolling median / MAD robust z-score",
        (DetectorKind::Ewma, _) => "EWMA control chart",
        (DetectorKind::Cusum, _) => "two-sided CUSUM",
        (DetectorKind::Seasonal, _) => "seasonal baseline (period from autocorrelation)",
        (DetectorKind::Pca, _) => "PCA with Hotelling T² and Q",
    };
    let per_var = if n_vars > 1 && !matches!(kind, DetectorKind::Auto | DetectorKind::Pca) {
        ", one per variable"
    } else {
        ""
    };
    format!("{kind} on {vars}: {what}{per_var}")
}

/// How many contributing columns an alarm onset names in the `contributors` column.
pub const TOP_CONTRIBUTORS: usize = 3;

/// The `contributors` cell of an alarm onset: the value columns behind it, largest share
/// first, as `name:share` (two decimals) separated by spaces; empty when the detector cannot
/// say.
fn write_contributors(out: &mut String, detector: &dyn crate::Detector, names: &[String]) {
    use std::fmt::Write as _;
    for c in detector.contributors(TOP_CONTRIBUTORS) {
        let Some(name) = names.get(c.var) else {
            continue;
        };
        if !out.is_empty() {
            out.push(' ');
        }
        let _ = write!(out, "{name}:{:.2}", c.share);
    }
}

fn run_inner(
    input: impl Read,
    output: impl Write,
    opts: &BacktestOptions,
    total: Option<u64>,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<Summary, BacktestError> {
    if opts.labels_column.is_some() && opts.label_windows.is_some() {
        return Err(BacktestError::TwoLabelSources);
    }
    // The first non-blank physical line decides the delimiter; what was read is put back.
    let mut input = BufReader::with_capacity(1 << 16, input);
    let mut head = Vec::new();
    let mut header_line = None;
    loop {
        let start = head.len();
        if input
            .read_until(b'\n', &mut head)
            .map_err(BacktestError::Read)?
            == 0
        {
            break;
        }
        if start == 0 && head.starts_with(&[0xEF, 0xBB, 0xBF]) {
            head.drain(..3);
        }
        if !head[start..].iter().all(u8::is_ascii_whitespace) {
            header_line = Some(start);
            break;
        }
    }
    let header_start = header_line.ok_or(BacktestError::Empty)?;
    let delim = match opts.delimiter {
        Some(d) => d,
        None => {
            let line = String::from_utf8_lossy(&head[header_start..]);
            csv::detect_delimiter(&line).ok_or(BacktestError::NoDelimiter)?
        }
    };
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delim)
        .buffer_capacity(1 << 16)
        .from_reader(csv::Tracker::new(io::Cursor::new(head).chain(input)));
    let mut rec = ::csv::ByteRecord::new();
    let next = |reader: &mut ::csv::Reader<_>, rec: &mut ::csv::ByteRecord| loop {
        if !reader.read_byte_record(rec).map_err(read_err)? {
            return Ok::<bool, BacktestError>(false);
        }
        if !is_blank(rec) {
            return Ok(true);
        }
    };

    // Header.
    if !next(&mut reader, &mut rec)? {
        return Err(BacktestError::Empty);
    }
    let header_row = line_of(&mut reader, &rec);
    let header: Vec<String> = rec
        .iter()
        .map(|f| text(f, header_row).map(|s| s.trim().to_owned()))
        .collect::<Result<_, _>>()?;
    if header.len() < 2 {
        return Err(BacktestError::NoDelimiter);
    }

    // The first data row decides the layout, so it must match the header whatever the bad-row
    // policy (found by the backtest_csv fuzz target: a longer first row indexed past the header).
    if !next(&mut reader, &mut rec)? {
        return Err(if reader.get_ref().quote_open() {
            BacktestError::UnterminatedQuote { row: header_row }
        } else {
            BacktestError::NoData
        });
    }
    let first_row = line_of(&mut reader, &rec);
    if rec.len() != header.len() {
        return Err(BacktestError::Ragged {
            row: first_row,
            expected: header.len(),
            found: rec.len(),
        });
    }
    let first: Vec<String> = rec
        .iter()
        .map(|f| text(f, first_row).map(str::to_owned))
        .collect::<Result<_, _>>()?;
    let layout = resolve_layout(&header, &first, first_row, delim, opts)?;
    drop(first);
    let ts_name = header[layout.ts].clone();
    let value_names: Vec<String> = layout.values.iter().map(|&i| header[i].clone()).collect();

    let mut detector = build_timed(opts.detector, layout.values.len(), &time_options(opts));
    let mut summary = Summary {
        rows: 0,
        written: 0,
        warmup_rows: 0,
        scored: 0,
        anomalies: 0,
        rows_with_missing: 0,
        issues: RowIssues::default(),
        time: None,
        delimiter: char::from(delim),
        timestamp_column: ts_name.clone(),
        timestamp_format: layout.format,
        value_columns: value_names.clone(),
        detector: detector.name().to_owned(),
        time_layer: None,
        detector_description: describe_detector(opts.detector, layout.values.len()),
        alarms: Alarms::default(),
        labels: match (&opts.labels_column, &opts.label_windows) {
            (Some(_), _) => Some(format!(
                "column {:?}",
                layout.labels.map_or("", |i| header[i].as_str())
            )),
            (None, Some(w)) => Some(match w.given() {
                1 => "1 time window".to_owned(),
                n => format!("{n} time windows"),
            }),
            (None, None) => None,
        },
        metrics: None,
        events: None,
    };

    let mut out = ::csv::WriterBuilder::new()
        .flexible(true)
        .buffer_capacity(1 << 16)
        .from_writer(output);
    out.write_field("timestamp").map_err(write_err)?;
    for name in &value_names {
        out.write_field(name).map_err(write_err)?;
    }
    out.write_field("anomaly_score").map_err(write_err)?;
    out.write_field("is_anomaly").map_err(write_err)?;
    out.write_field("contributors").map_err(write_err)?;
    out.write_record(None::<&[u8]>).map_err(write_err)?;

    let mut confusion = Confusion::default();
    let mut events = EventCounter::default();
    let mut clock = Clock::default();
    clock.intervals.factor = i64::from(gap_factor(opts));
    let mut values = vec![0.0; layout.values.len()];
    let mut score_text = String::with_capacity(16);
    // alarm onsets: the contributing value columns, `name:share` largest first
    let mut contributors_text = String::new();
    let mut was_anomalous = false;
    let mut last_line;
    loop {
        let line = line_of(&mut reader, &rec);
        last_line = line;
        summary.rows += 1;
        if summary.rows.is_multiple_of(PROGRESS_EVERY) {
            progress(summary.rows, total);
        }
        let checked = check_row(
            &rec,
            line,
            &header,
            &layout,
            delim,
            opts,
            &mut clock,
            &mut summary.issues,
            &mut values,
        )?;
        contributors_text.clear();
        let score = match checked {
            Ok(checked) => {
                if checked.missing {
                    summary.rows_with_missing += 1;
                }
                let o = detector.update(checked.ts_ns, &values);
                if o.warming_up {
                    summary.warmup_rows += 1;
                    Some((0.0, false))
                } else {
                    summary.scored += 1;
                    summary.anomalies += u64::from(o.anomalous);
                    if let Some(label) = checked.label {
                        confusion.add(o.anomalous, label);
                    }
                    events.push(line, checked.ts_ns, checked.label, o.anomalous);
                    if o.anomalous && !was_anomalous {
                        write_contributors(&mut contributors_text, &*detector, &value_names);
                    }
                    was_anomalous = o.anomalous;
                    Some((o.score, o.anomalous))
                }
            }
            Err(e) => {
                if opts.bad_rows == BadRows::Fail {
                    // A quote left open swallows the rest of the input into the last record:
                    // say so rather than call that record ragged.
                    let mut rest = ::csv::ByteRecord::new();
                    if !next(&mut reader, &mut rest)? && reader.get_ref().quote_open() {
                        return Err(BacktestError::UnterminatedQuote { row: line });
                    }
                    return Err(e);
                }
                record_unusable(&mut summary.issues, &e, line);
                None
            }
        };
        out.write_field(rec.get(layout.ts).unwrap_or(b""))
            .map_err(write_err)?;
        for &i in &layout.values {
            out.write_field(rec.get(i).unwrap_or(b""))
                .map_err(write_err)?;
        }
        score_text.clear();
        let flag: &[u8] = match score {
            Some((s, a)) => {
                use std::fmt::Write as _;
                let _ = write!(score_text, "{s:.6}");
                if a { b"1" } else { b"0" }
            }
            None => b"0",
        };
        out.write_field(&score_text).map_err(write_err)?;
        out.write_field(flag).map_err(write_err)?;
        out.write_field(&contributors_text).map_err(write_err)?;
        out.write_record(None::<&[u8]>).map_err(write_err)?;
        summary.written += 1;
        if !next(&mut reader, &mut rec)? {
            break;
        }
    }
    if reader.get_ref().quote_open() {
        return Err(BacktestError::UnterminatedQuote { row: last_line });
    }
    out.flush().map_err(BacktestError::Write)?;
    progress(summary.rows, total.or(Some(summary.rows)));
    summary.time_layer = detector.time_report();
    clock.intervals.fix();
    if let (Some(first_ns), Some(last_ns)) = (clock.min, clock.max) {
        summary.time = Some(TimeStats {
            first_ns,
            last_ns,
            typical_interval_ns: clock.intervals.typical,
            gap_factor: gap_factor(opts),
            gaps: clock.intervals.gaps,
            longest_gap: clock.intervals.longest,
        });
    }
    let (alarms, ev) = events.finish();
    summary.alarms = alarms;
    if summary.labels.is_some() {
        summary.metrics = Some(confusion.metrics());
        summary.events = ev.or(Some(EventMetrics {
            onsets: summary.alarms.onsets,
            false_onsets: 0,
            false_onsets_per_1000_rows: 0.0,
            false_onsets_per_day: None,
            windows: 0,
            caught: 0,
            mean_delay_rows: None,
            mean_delay_ns: None,
        }));
    }
    Ok(summary)
}

/// The error's message without its `row N, ` / `row N: ` prefix.
fn detail(e: &BacktestError, line: u64) -> String {
    let msg = e.to_string();
    let comma = format!("row {line}, ");
    let colon = format!("row {line}: ");
    msg.strip_prefix(&comma)
        .or_else(|| msg.strip_prefix(&colon))
        .unwrap_or(&msg)
        .to_owned()
}

fn record_unusable(issues: &mut RowIssues, e: &BacktestError, line: u64) {
    let issue = match e {
        BacktestError::Ragged { .. } => &mut issues.ragged,
        BacktestError::NotANumber { .. } => &mut issues.non_numeric,
        BacktestError::MissingValue { .. } => &mut issues.missing,
        BacktestError::BadTimestamp { .. } => &mut issues.bad_timestamp,
        _ => &mut issues.bad_label,
    };
    issue.add(line, || detail(e, line));
}

struct Checked {
    ts_ns: i64,
    label: Option<bool>,
    missing: bool,
}

/// Validates one row and fills `values`. The outer error stops the run (invalid UTF-8, an
/// order problem under strict order); the inner one makes the row unusable.
#[allow(clippy::too_many_arguments)]
fn check_row(
    rec: &::csv::ByteRecord,
    line: u64,
    header: &[String],
    layout: &Layout,
    delim: u8,
    opts: &BacktestOptions,
    clock: &mut Clock,
    issues: &mut RowIssues,
    values: &mut [f64],
) -> Result<Result<Checked, BacktestError>, BacktestError> {
    if rec.len() != header.len() {
        return Ok(Err(BacktestError::Ragged {
            row: line,
            expected: header.len(),
            found: rec.len(),
        }));
    }
    let ts_cell = text(&rec[layout.ts], line)?;
    let column = || header[layout.ts].clone();
    let Some(ts_ns) = layout.format.parse_ns(ts_cell) else {
        return Ok(Err(BacktestError::BadTimestamp {
            row: line,
            column: column(),
            value: ts_cell.to_owned(),
            format: layout.format,
        }));
    };
    if let Some(p) = clock.prev {
        let step = i128::from(ts_ns) - i128::from(p);
        if step <= 0 && opts.strict_order {
            let previous = clock.prev_text.clone();
            return Err(if step == 0 {
                BacktestError::DuplicateTimestamp {
                    row: line,
                    column: column(),
                    value: ts_cell.to_owned(),
                }
            } else {
                BacktestError::Unsorted {
                    row: line,
                    column: column(),
                    value: ts_cell.to_owned(),
                    previous,
                }
            });
        }
        if step == 0 {
            issues
                .duplicates
                .add(line, || format!("{ts_cell:?}, as on the row before"));
        } else if step < 0 {
            let back = i64::try_from(-step).unwrap_or(i64::MAX);
            issues.largest_step_back_ns = issues.largest_step_back_ns.max(back);
            issues.backwards.add(line, || {
                format!(
                    "{ts_cell:?} after {:?}, {} back",
                    clock.prev_text,
                    format_duration(back)
                )
            });
        } else {
            clock
                .intervals
                .push(i64::try_from(step).unwrap_or(i64::MAX), line, p);
        }
    }
    if clock.max.is_some_and(|m| ts_ns < m) {
        issues.behind += 1;
    }
    clock.prev = Some(ts_ns);
    clock.prev_text.clear();
    clock.prev_text.push_str(ts_cell);
    clock.min = Some(clock.min.map_or(ts_ns, |m| m.min(ts_ns)));
    clock.max = Some(clock.max.map_or(ts_ns, |m| m.max(ts_ns)));

    let mut missing = false;
    for (v, &i) in values.iter_mut().zip(&layout.values) {
        let cell = text(&rec[i], line)?;
        *v = match parse_value(cell, delim) {
            Cell::Value(x) => x,
            Cell::Missing if opts.pass_missing => {
                missing = true;
                f64::NAN
            }
            Cell::Missing => {
                return Ok(Err(BacktestError::MissingValue {
                    row: line,
                    column: header[i].clone(),
                    value: cell.to_owned(),
                }));
            }
            Cell::NotANumber => {
                return Ok(Err(BacktestError::NotANumber {
                    row: line,
                    column: header[i].clone(),
                    value: cell.to_owned(),
                }));
            }
        };
    }
    let label = match (layout.labels, &opts.label_windows) {
        (Some(i), _) => {
            let cell = text(&rec[i], line)?;
            match parse_label(cell) {
                Some(l) => Some(l),
                None => {
                    return Ok(Err(BacktestError::BadLabel {
                        row: line,
                        column: header[i].clone(),
                        value: cell.to_owned(),
                    }));
                }
            }
        }
        (None, Some(w)) => Some(w.contains(ts_ns)),
        (None, None) => None,
    };
    Ok(Ok(Checked {
        ts_ns,
        label,
        missing,
    }))
}
