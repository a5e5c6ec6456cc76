//! Backtesting: run a detector over a CSV file and write the scores next to the data.
//!
//! * **Input.** A header row, then one row per sample. The delimiter (`,` or `;`) is
//!   detected from the header unless given. Quoted fields (RFC 4180) are understood; blank
//!   lines are ignored; a UTF-8 byte-order mark is dropped. With `;` as the delimiter a
//!   decimal comma (`1,5`) is accepted.
//! * **Timestamp column.** Named by [`BacktestOptions::timestamp_column`], else the first
//!   column called `timestamp`, `time`, `datetime`, `date_time`, `date` or `ts` (any case),
//!   else the first column whose first value is a calendar date-time. Its format is
//!   detected from the first data row ([`TimestampFormat`]) and every row must match it.
//!   Timestamps must increase strictly.
//! * **Value columns.** Named by [`BacktestOptions::value_columns`], else every column other
//!   than the timestamp and the labels whose first value is numeric, excluding columns that
//!   are conventionally labels (`anomaly`, `label`, `changepoint`, … see
//!   [`LABEL_LIKE_COLUMNS`]).
//! * **Output.** A `,`-separated CSV with the columns `timestamp, <value columns…>,
//!   anomaly_score, is_anomaly`. Timestamp and value cells are copied *exactly* as they were
//!   in the input; `anomaly_score` has six decimals; `is_anomaly` is `0` or `1`. Warm-up rows
//!   are written with score `0` and `is_anomaly` `0`.
//! * **Labels.** With [`BacktestOptions::labels_column`], every row needs a label (`0`/`1`,
//!   `0.0`/`1.0`, `true`/`false`; any non-zero number is anomalous) and the summary carries
//!   pointwise [`Metrics`] over the scored (post-warm-up) rows.
//! * **Bad rows.** Under [`BadRows::Fail`] (the default) the first bad row stops the run with
//!   a [`BacktestError`] naming its line (1-based, counting the header as line 1) and column.
//!   Under [`BadRows::Skip`] the row is left out of the output and the detector and counted
//!   in [`Summary::skipped`]. Empty or `NaN` value cells are bad rows too unless
//!   [`BacktestOptions::pass_missing`] is set, in which case they reach the detector as NaN
//!   (see the crate docs for how detectors treat missing values) and are counted in
//!   [`Summary::rows_with_missing`].
//! * **Memory.** Rows are streamed: only the current row and the detector state are held.

mod csv;
mod metrics;
mod timestamp;

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

pub use metrics::{Confusion, Metrics};
pub use timestamp::{EpochUnit, TimestampFormat};

use crate::{DetectorKind, build};
use csv::{CsvReader, ReadError};

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
    /// Stop with an error naming the row and column.
    #[default]
    Fail,
    /// Leave the row out (of the output and the detector) and count it.
    Skip,
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
    /// Detector to run.
    pub detector: DetectorKind,
    /// Warm-up rows; [`crate::DEFAULT_WARMUP`] when `None`.
    pub warmup: Option<usize>,
    /// Field delimiter; detected from the header when `None`.
    pub delimiter: Option<u8>,
    /// Policy for unusable rows.
    pub bad_rows: BadRows,
    /// Pass empty/NaN value cells to the detector as missing values instead of treating
    /// the row as bad.
    pub pass_missing: bool,
}

/// Rows left out under [`BadRows::Skip`], by reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Skipped {
    /// Wrong number of fields.
    pub ragged: u64,
    /// A value cell that is not a number.
    pub non_numeric: u64,
    /// An empty or NaN value cell (without `pass_missing`).
    pub missing: u64,
    /// A timestamp that does not parse in the detected format.
    pub bad_timestamp: u64,
    /// A timestamp not after the previous row's.
    pub unordered: u64,
    /// A timestamp equal to the previous row's.
    pub duplicate: u64,
    /// A label cell that is not 0/1/true/false/number.
    pub bad_label: u64,
}

impl Skipped {
    /// All skipped rows.
    pub fn total(&self) -> u64 {
        self.ragged
            + self.non_numeric
            + self.missing
            + self.bad_timestamp
            + self.unordered
            + self.duplicate
            + self.bad_label
    }
}

/// What a backtest did.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Data rows read (excluding the header and blank lines, including skipped rows).
    pub rows: u64,
    /// Rows written to the output.
    pub written: u64,
    /// Rows consumed by the detector's warm-up.
    pub warmup_rows: u64,
    /// Rows scored after the warm-up.
    pub scored: u64,
    /// Scored rows flagged anomalous.
    pub anomalies: u64,
    /// Rows with at least one missing value passed to the detector (`pass_missing`).
    pub rows_with_missing: u64,
    /// Rows left out, by reason.
    pub skipped: Skipped,
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
    /// Pointwise metrics over the scored rows, when a labels column was given.
    pub metrics: Option<Metrics>,
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
    /// A timestamp is earlier than the previous row's.
    #[error(
        "row {row}, column {column:?}: timestamp {value:?} is earlier than the previous row's {previous:?}; sort the input by time"
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
    /// A timestamp equals the previous row's.
    #[error("row {row}, column {column:?}: duplicate timestamp {value:?}")]
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
    /// A quoted field is never closed.
    #[error("row {row}: a quoted field is not closed before the end of the input")]
    UnterminatedQuote {
        /// Line number where the record starts.
        row: u64,
    },
}

impl From<ReadError> for BacktestError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Io(e) => BacktestError::Read(e),
            ReadError::Encoding { line } => BacktestError::Encoding { row: line },
            ReadError::UnterminatedQuote { line } => BacktestError::UnterminatedQuote { row: line },
        }
    }
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

fn run_inner(
    input: impl Read,
    output: impl Write,
    opts: &BacktestOptions,
    total: Option<u64>,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<Summary, BacktestError> {
    let mut reader = CsvReader::new(BufReader::with_capacity(1 << 16, input));
    let mut out = BufWriter::with_capacity(1 << 16, output);

    // Header and delimiter.
    let (_, header_text) = reader.next_raw()?.ok_or(BacktestError::Empty)?;
    let header_text = header_text.to_owned();
    let delim = match opts.delimiter {
        Some(d) => d,
        None => csv::detect_delimiter(&header_text).ok_or(BacktestError::NoDelimiter)?,
    };
    reader.set_delimiter(delim);
    let mut header = Vec::new();
    csv::split_record(&header_text, delim, &mut header);
    for h in &mut header {
        *h = h.trim().to_owned();
    }

    // The first data row decides the layout.
    let mut fields = Vec::new();
    let first_row = reader
        .next_record(&mut fields)?
        .ok_or(BacktestError::NoData)?;
    // The first data row decides the layout, so it must match the header whatever the bad-row
    // policy (found by the backtest_csv fuzz target: a longer first row indexed past the header).
    if fields.len() != header.len() {
        return Err(BacktestError::Ragged {
            row: first_row,
            expected: header.len(),
            found: fields.len(),
        });
    }
    let layout = resolve_layout(&header, &fields, first_row, delim, opts)?;
    let ts_name = header[layout.ts].clone();
    let value_names: Vec<String> = layout.values.iter().map(|&i| header[i].clone()).collect();

    let mut detector = build(opts.detector, layout.values.len(), opts.warmup);
    let mut summary = Summary {
        rows: 0,
        written: 0,
        warmup_rows: 0,
        scored: 0,
        anomalies: 0,
        rows_with_missing: 0,
        skipped: Skipped::default(),
        delimiter: char::from(delim),
        timestamp_column: ts_name.clone(),
        timestamp_format: layout.format,
        value_columns: value_names.clone(),
        detector: detector.name().to_owned(),
        metrics: None,
    };

    let w = |e| BacktestError::Write(e);
    out.write_all(b"timestamp").map_err(w)?;
    for name in &value_names {
        out.write_all(b",").map_err(w)?;
        csv::write_field(&mut out, name).map_err(w)?;
    }
    out.write_all(b",anomaly_score,is_anomaly\n").map_err(w)?;

    let mut confusion = Confusion::default();
    let mut values = vec![0.0; layout.values.len()];
    let mut prev_ts: Option<(i64, String)> = None;
    let mut row = Some(first_row);
    while let Some(line) = row {
        summary.rows += 1;
        if summary.rows.is_multiple_of(PROGRESS_EVERY) {
            progress(summary.rows, total);
        }
        match check_row(
            &fields,
            line,
            &header,
            &layout,
            delim,
            opts,
            prev_ts.as_ref(),
            &mut values,
        ) {
            Ok(checked) => {
                if checked.missing {
                    summary.rows_with_missing += 1;
                }
                let o = detector.update(checked.ts_ns, &values);
                let (score, anomalous) = if o.warming_up {
                    summary.warmup_rows += 1;
                    (0.0, false)
                } else {
                    summary.scored += 1;
                    summary.anomalies += u64::from(o.anomalous);
                    if let Some(label) = checked.label {
                        confusion.add(o.anomalous, label);
                    }
                    (o.score, o.anomalous)
                };
                csv::write_field(&mut out, &fields[layout.ts]).map_err(w)?;
                for &i in &layout.values {
                    out.write_all(b",").map_err(w)?;
                    csv::write_field(&mut out, &fields[i]).map_err(w)?;
                }
                writeln!(out, ",{score:.6},{}", u8::from(anomalous)).map_err(w)?;
                summary.written += 1;
                prev_ts = Some((checked.ts_ns, fields[layout.ts].clone()));
            }
            Err(e) => {
                if opts.bad_rows == BadRows::Fail {
                    return Err(e);
                }
                let s = &mut summary.skipped;
                match e {
                    BacktestError::Ragged { .. } => s.ragged += 1,
                    BacktestError::NotANumber { .. } => s.non_numeric += 1,
                    BacktestError::MissingValue { .. } => s.missing += 1,
                    BacktestError::BadTimestamp { .. } => s.bad_timestamp += 1,
                    BacktestError::Unsorted { .. } => s.unordered += 1,
                    BacktestError::DuplicateTimestamp { .. } => s.duplicate += 1,
                    BacktestError::BadLabel { .. } => s.bad_label += 1,
                    other => return Err(other),
                }
            }
        }
        row = reader.next_record(&mut fields)?;
    }
    out.flush().map_err(w)?;
    progress(summary.rows, total.or(Some(summary.rows)));
    if layout.labels.is_some() {
        summary.metrics = Some(confusion.metrics());
    }
    Ok(summary)
}

struct Checked {
    ts_ns: i64,
    label: Option<bool>,
    missing: bool,
}

/// Validates one row and fills `values`; the error names the first problem.
#[allow(clippy::too_many_arguments)]
fn check_row(
    fields: &[String],
    line: u64,
    header: &[String],
    layout: &Layout,
    delim: u8,
    opts: &BacktestOptions,
    prev: Option<&(i64, String)>,
    values: &mut [f64],
) -> Result<Checked, BacktestError> {
    if fields.len() != header.len() {
        return Err(BacktestError::Ragged {
            row: line,
            expected: header.len(),
            found: fields.len(),
        });
    }
    let ts_cell = &fields[layout.ts];
    let column = || header[layout.ts].clone();
    let ts_ns = layout
        .format
        .parse_ns(ts_cell)
        .ok_or_else(|| BacktestError::BadTimestamp {
            row: line,
            column: column(),
            value: ts_cell.clone(),
            format: layout.format,
        })?;
    if let Some((p, ptext)) = prev {
        if ts_ns == *p {
            return Err(BacktestError::DuplicateTimestamp {
                row: line,
                column: column(),
                value: ts_cell.clone(),
            });
        }
        if ts_ns < *p {
            return Err(BacktestError::Unsorted {
                row: line,
                column: column(),
                value: ts_cell.clone(),
                previous: ptext.clone(),
            });
        }
    }
    let mut missing = false;
    for (v, &i) in values.iter_mut().zip(&layout.values) {
        *v = match parse_value(&fields[i], delim) {
            Cell::Value(x) => x,
            Cell::Missing if opts.pass_missing => {
                missing = true;
                f64::NAN
            }
            Cell::Missing => {
                return Err(BacktestError::MissingValue {
                    row: line,
                    column: header[i].clone(),
                    value: fields[i].clone(),
                });
            }
            Cell::NotANumber => {
                return Err(BacktestError::NotANumber {
                    row: line,
                    column: header[i].clone(),
                    value: fields[i].clone(),
                });
            }
        };
    }
    let label = match layout.labels {
        Some(i) => Some(
            parse_label(&fields[i]).ok_or_else(|| BacktestError::BadLabel {
                row: line,
                column: header[i].clone(),
                value: fields[i].clone(),
            })?,
        ),
        None => None,
    };
    Ok(Checked {
        ts_ns,
        label,
        missing,
    })
}
