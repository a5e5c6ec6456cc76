//! Readers for run-to-failure data (C-MAPSS and a generic CSV layout) and the prediction writer.
//!
//! Pure functions over `Read`/`Write`: no paths, no files opened here.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::str::FromStr;

use crate::error::{InputProblem, PdmError};
use crate::model::Prediction;

/// Input layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// NASA C-MAPSS turbofan text: whitespace-separated `unit cycle setting1..3 s1..s21`, no header.
    Cmapss,
    /// Generic CSV with a header: a unit column, a time column and numeric feature columns (see [`CsvOptions`]).
    Csv,
}

impl FromStr for Format {
    type Err = PdmError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cmapss" => Ok(Format::Cmapss),
            "csv" => Ok(Format::Csv),
            _ => Err(PdmError::UnknownFormat {
                found: s.to_owned(),
            }),
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::Cmapss => "cmapss",
            Format::Csv => "csv",
        })
    }
}

/// Options of the generic CSV reader. Ignored for [`Format::Cmapss`].
#[derive(Debug, Clone, PartialEq)]
pub struct CsvOptions {
    /// Field separator. Default `,`.
    pub delimiter: char,
    /// Name of the unit (asset) column. Default: the first of `asset`, `unit` present (case-insensitive).
    pub unit_column: Option<String>,
    /// Name of the time column. Default: the first of `cycle`, `time` present (case-insensitive).
    pub time_column: Option<String>,
    /// Columns that are operating settings (load, speed set point, …) rather than health signals. They are used to
    /// group rows into operating conditions and normalise the other columns per condition; they are not features
    /// themselves. Default: none.
    pub settings: Vec<String>,
    /// Columns to skip entirely (e.g. a label or a free-text column). Default: none.
    pub ignore: Vec<String>,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            delimiter: ',',
            unit_column: None,
            time_column: None,
            settings: Vec::new(),
            ignore: Vec::new(),
        }
    }
}

/// The observed history of one unit (asset): one row per cycle, in increasing cycle order.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// Unit (asset) id as written in the input.
    pub unit: String,
    /// Cycle number or time of each row, strictly increasing.
    pub cycles: Vec<f64>,
    /// Column names of `features`; the first `settings` of them are operating settings.
    pub feature_names: Vec<String>,
    /// How many leading columns of `features` are operating settings (3 for C-MAPSS).
    pub settings: usize,
    /// One row of values per cycle, each of `feature_names.len()` finite values.
    pub features: Vec<Vec<f64>>,
}

impl Run {
    /// Number of observed cycles.
    pub fn len(&self) -> usize {
        self.cycles.len()
    }

    /// True if the run has no cycles.
    pub fn is_empty(&self) -> bool {
        self.cycles.is_empty()
    }

    /// The first `n` cycles of the run (the history a predictor would have seen after `n` cycles).
    pub fn truncated(&self, n: usize) -> Run {
        let n = n.min(self.len());
        Run {
            unit: self.unit.clone(),
            cycles: self.cycles[..n].to_vec(),
            feature_names: self.feature_names.clone(),
            settings: self.settings,
            features: self.features[..n].to_vec(),
        }
    }
}

const CMAPSS_FIELDS: usize = 26;

fn cmapss_names() -> Vec<String> {
    let mut v: Vec<String> = vec!["unit".into(), "cycle".into()];
    v.extend((1..=3).map(|i| format!("setting{i}")));
    v.extend((1..=21).map(|i| format!("s{i}")));
    v
}

/// Reads all runs of `input`. Units appear in the order of their first row; rows of different units may be
/// interleaved, but within a unit the cycles must strictly increase. Blank lines are skipped. Any malformed
/// input gives a [`PdmError::Input`] with line and column; this never panics.
///
/// The generic CSV layout is read with the `csv` crate (RFC 4180 quoting, fields trimmed, a UTF-8 byte-order
/// mark dropped). C-MAPSS is not CSV: its fields are separated by runs of spaces (with trailing spaces on
/// every line), which `split_whitespace` reads exactly and a CSV reader cannot, so it keeps its own loop.
pub fn read_runs(
    input: impl Read,
    format: Format,
    opts: &CsvOptions,
) -> Result<Vec<Run>, PdmError> {
    let runs = match format {
        Format::Cmapss => read_cmapss(input)?,
        Format::Csv => read_csv(input, opts)?,
    };
    Ok(runs)
}

fn read_cmapss(input: impl Read) -> Result<Vec<Run>, PdmError> {
    let mut reader = BufReader::new(input);
    let mut builder = RunsBuilder {
        names: cmapss_names()[2..].to_vec(),
        settings: 3,
        ..RunsBuilder::default()
    };
    let names = cmapss_names();
    let mut buf = Vec::new();
    let mut line_no = 0usize;
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        line_no += 1;
        let text = std::str::from_utf8(&buf)
            .map_err(|_| PdmError::input(line_no, None, None, InputProblem::NotUtf8))?;
        let text = if line_no == 1 {
            text.trim_start_matches('\u{feff}')
        } else {
            text
        };
        if text.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = text.split_whitespace().collect();
        if fields.len() != CMAPSS_FIELDS {
            let problem = InputProblem::Ragged {
                expected: CMAPSS_FIELDS,
                found: fields.len(),
            };
            return Err(PdmError::input(line_no, None, None, problem));
        }
        let mut values = Vec::with_capacity(CMAPSS_FIELDS - 2);
        for (i, f) in fields.iter().enumerate().skip(1) {
            let v = parse_number(f, line_no, i + 1, &names[i])?;
            if i >= 2 {
                values.push(v);
            }
        }
        let cycle = parse_number(fields[1], line_no, 2, "cycle")?;
        builder.push(fields[0], cycle, values, line_no, 2)?;
    }
    builder.finish(line_no)
}

/// Counts lines for the `csv` reader, whose own record position is where it started looking,
/// before the blank lines it skips: keeps the offsets of the line breaks not yet passed (at most
/// a read buffer's worth) and whether the input ended in a line feed.
struct LineTracker<R> {
    inner: R,
    offset: u64,
    /// Offsets of `\n` (true) and `\r` (false) bytes at or after the last record's start.
    breaks: VecDeque<(u64, bool)>,
    lines_before: usize,
    last: Option<u8>,
}

impl<R> LineTracker<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            offset: 0,
            breaks: VecDeque::new(),
            lines_before: 0,
            last: None,
        }
    }

    /// The 1-based line of the record starting (blank lines included) at byte `start`.
    fn line_at(&mut self, start: u64) -> usize {
        while let Some(&(o, lf)) = self.breaks.front() {
            if o >= start {
                break;
            }
            self.breaks.pop_front();
            self.lines_before += usize::from(lf);
        }
        let mut cursor = start;
        while let Some(&(o, lf)) = self.breaks.front() {
            if o != cursor {
                break;
            }
            self.breaks.pop_front();
            self.lines_before += usize::from(lf);
            cursor += 1;
        }
        self.lines_before + 1
    }

    /// Physical lines of the whole input (once it has been read to the end).
    fn lines(&self) -> usize {
        let lf = self.lines_before + self.breaks.iter().filter(|b| b.1).count();
        if self.last.is_some_and(|b| b != b'\n') {
            lf + 1
        } else {
            lf
        }
    }
}

impl<R: Read> Read for LineTracker<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for (i, &b) in buf[..n].iter().enumerate() {
            match b {
                b'\n' => self.breaks.push_back((self.offset + i as u64, true)),
                b'\r' => self.breaks.push_back((self.offset + i as u64, false)),
                _ => {}
            }
        }
        if n > 0 {
            self.last = Some(buf[n - 1]);
        }
        self.offset += n as u64;
        Ok(n)
    }
}

fn read_csv(input: impl Read, opts: &CsvOptions) -> Result<Vec<Run>, PdmError> {
    let delimiter = u8::try_from(opts.delimiter)
        .ok()
        .filter(u8::is_ascii)
        .ok_or_else(|| {
            let problem = InputProblem::BadDelimiter {
                delimiter: opts.delimiter,
            };
            PdmError::input(1, None, None, problem)
        })?;
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(::csv::Trim::All)
        .delimiter(delimiter)
        .from_reader(LineTracker::new(input));
    let mut builder = RunsBuilder::default();
    let mut layout: Option<CsvLayout> = None;
    let mut rec = ::csv::ByteRecord::new();
    loop {
        let more = reader
            .read_byte_record(&mut rec)
            .map_err(|e| match e.into_kind() {
                ::csv::ErrorKind::Io(e) => PdmError::from(e),
                other => PdmError::from(std::io::Error::other(format!("{other:?}"))),
            })?;
        if !more {
            break;
        }
        let start = rec.position().map_or(0, |p| p.byte());
        let line_no = reader.get_mut().line_at(start);
        if rec.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
            continue;
        }
        let mut fields: Vec<&str> = Vec::with_capacity(rec.len());
        for f in rec.iter() {
            let f = std::str::from_utf8(f)
                .map_err(|_| PdmError::input(line_no, None, None, InputProblem::NotUtf8))?;
            fields.push(f);
        }
        match &layout {
            None => {
                let l = CsvLayout::from_header(&fields, opts, line_no)?;
                builder.names = l
                    .feature_cols
                    .iter()
                    .map(|&c| fields[c].to_owned())
                    .collect();
                builder.settings = l.settings;
                layout = Some(l);
            }
            Some(l) => {
                if fields.len() != l.width {
                    let problem = InputProblem::Ragged {
                        expected: l.width,
                        found: fields.len(),
                    };
                    return Err(PdmError::input(line_no, None, None, problem));
                }
                let unit = fields[l.unit_col];
                if unit.is_empty() {
                    let name = Some(l.header[l.unit_col].as_str());
                    return Err(PdmError::input(
                        line_no,
                        Some(l.unit_col + 1),
                        name,
                        InputProblem::EmptyUnit,
                    ));
                }
                let cycle = parse_number(
                    fields[l.time_col],
                    line_no,
                    l.time_col + 1,
                    &l.header[l.time_col],
                )?;
                let mut values = Vec::with_capacity(l.feature_cols.len());
                for &c in &l.feature_cols {
                    values.push(parse_number(fields[c], line_no, c + 1, &l.header[c])?);
                }
                builder.push(unit, cycle, values, line_no, l.time_col + 1)?;
            }
        }
    }
    let lines = reader.get_ref().lines();
    builder.finish(lines)
}

#[derive(Default)]
struct RunsBuilder {
    names: Vec<String>,
    settings: usize,
    runs: Vec<Run>,
    index: HashMap<String, usize>,
}

impl RunsBuilder {
    fn push(
        &mut self,
        unit: &str,
        cycle: f64,
        values: Vec<f64>,
        line: usize,
        cycle_col: usize,
    ) -> Result<(), PdmError> {
        let i = match self.index.get(unit) {
            Some(&i) => i,
            None => {
                self.runs.push(Run {
                    unit: unit.to_owned(),
                    cycles: Vec::new(),
                    feature_names: self.names.clone(),
                    settings: self.settings,
                    features: Vec::new(),
                });
                self.index.insert(unit.to_owned(), self.runs.len() - 1);
                self.runs.len() - 1
            }
        };
        let run = &mut self.runs[i];
        if let Some(&previous) = run.cycles.last()
            && cycle <= previous
        {
            let problem = InputProblem::CycleOrder {
                unit: unit.to_owned(),
                previous,
                cycle,
            };
            return Err(PdmError::input(line, Some(cycle_col), None, problem));
        }
        run.cycles.push(cycle);
        run.features.push(values);
        Ok(())
    }

    /// The runs read, or [`InputProblem::Empty`] at the last line when there is none.
    fn finish(self, last_line: usize) -> Result<Vec<Run>, PdmError> {
        if self.runs.is_empty() {
            return Err(PdmError::input(
                last_line.max(1),
                None,
                None,
                InputProblem::Empty,
            ));
        }
        Ok(self.runs)
    }
}

struct CsvLayout {
    header: Vec<String>,
    width: usize,
    unit_col: usize,
    time_col: usize,
    /// Settings first, then the other features, each in header order.
    feature_cols: Vec<usize>,
    settings: usize,
}

impl CsvLayout {
    fn from_header(fields: &[&str], opts: &CsvOptions, line: usize) -> Result<Self, PdmError> {
        let header: Vec<String> = fields.iter().map(|s| (*s).to_owned()).collect();
        for (i, h) in header.iter().enumerate() {
            if header[..i].iter().any(|p| p.eq_ignore_ascii_case(h)) {
                let problem = InputProblem::DuplicateColumn { name: h.clone() };
                return Err(PdmError::input(line, Some(i + 1), None, problem));
            }
        }
        let find = |wanted: &[&str]| {
            header
                .iter()
                .position(|h| wanted.iter().any(|w| h.eq_ignore_ascii_case(w)))
        };
        let missing = |wanted: String| {
            let problem = InputProblem::MissingColumn {
                wanted,
                found: header.join(", "),
            };
            PdmError::input(line, None, None, problem)
        };
        let unit_col = match &opts.unit_column {
            Some(name) => find(&[name.as_str()]).ok_or_else(|| missing(format!("\"{name}\"")))?,
            None => find(&["asset"])
                .or_else(|| find(&["unit"]))
                .ok_or_else(|| missing("asset or unit".into()))?,
        };
        let time_col = match &opts.time_column {
            Some(name) => find(&[name.as_str()]).ok_or_else(|| missing(format!("\"{name}\"")))?,
            None => find(&["cycle"])
                .or_else(|| find(&["time"]))
                .ok_or_else(|| missing("cycle or time".into()))?,
        };
        for name in opts.ignore.iter().chain(&opts.settings) {
            find(&[name.as_str()]).ok_or_else(|| missing(format!("\"{name}\"")))?;
        }
        let is_in = |list: &[String], h: &str| list.iter().any(|n| n.eq_ignore_ascii_case(h));
        let mut settings = Vec::new();
        let mut others = Vec::new();
        for (i, h) in header.iter().enumerate() {
            if i == unit_col || i == time_col || is_in(&opts.ignore, h) {
                continue;
            }
            if is_in(&opts.settings, h) {
                settings.push(i)
            } else {
                others.push(i)
            }
        }
        if others.is_empty() {
            return Err(PdmError::input(line, None, None, InputProblem::NoFeatures));
        }
        let n_settings = settings.len();
        settings.extend(others);
        Ok(CsvLayout {
            width: header.len(),
            header,
            unit_col,
            time_col,
            feature_cols: settings,
            settings: n_settings,
        })
    }
}

fn parse_number(text: &str, line: usize, column: usize, name: &str) -> Result<f64, PdmError> {
    let err = |problem| PdmError::input(line, Some(column), Some(name), problem);
    if text.is_empty() {
        return Err(err(InputProblem::MissingValue));
    }
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(err(InputProblem::NonFinite {
            text: text.to_owned(),
        })),
        Err(_) => Err(err(InputProblem::NotANumber {
            text: text.to_owned(),
        })),
    }
}

/// Writes `unit,rul,rul_lower,rul_upper`, one row per unit, values with 3 decimals (an infinite bound is
/// written `inf`). Unit ids containing `,`, `"` or a line break are quoted.
pub fn write_predictions<S: AsRef<str>>(
    mut w: impl Write,
    predictions: &[(S, Prediction)],
) -> Result<(), PdmError> {
    writeln!(w, "unit,rul,rul_lower,rul_upper")?;
    for (unit, p) in predictions {
        let unit = unit.as_ref();
        if unit.contains([',', '"', '\n', '\r']) {
            write!(w, "\"{}\"", unit.replace('"', "\"\""))?;
        } else {
            w.write_all(unit.as_bytes())?;
        }
        writeln!(w, ",{},{},{}", num(p.rul), num(p.lower), num(p.upper))?;
    }
    w.flush()?;
    Ok(())
}

fn num(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.3}")
    } else {
        "inf".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Location;

    fn csv(text: &str) -> Result<Vec<Run>, PdmError> {
        read_runs(text.as_bytes(), Format::Csv, &CsvOptions::default())
    }

    fn problem(r: Result<Vec<Run>, PdmError>) -> (Location, InputProblem) {
        match r {
            Err(PdmError::Input { at, problem }) => (at, problem),
            other => panic!("expected an input error, got {other:?}"),
        }
    }

    const CMAPSS_OK: &str = "1 1 -0.0007 -0.0004 100.0 518.67 641.82 1589.7 1400.6 14.62 21.61 554.36 2388.06 9046.19 1.3 47.47 521.66 2388.02 8138.62 8.4195 0.03 392 2388 100.0 39.06 23.419  \n\
1 2 0.0019 -0.0003 100.0 518.67 642.15 1591.82 1403.14 14.62 21.61 553.75 2388.04 9044.07 1.3 47.49 522.28 2388.07 8131.49 8.4318 0.03 392 2388 100.0 39.0 23.4236  \n\
2 1 -0.0043 0.0003 100.0 518.67 642.35 1587.99 1404.2 14.62 21.61 554.26 2388.08 9052.94 1.3 47.27 522.42 2388.03 8133.23 8.4178 0.03 390 2388 100.0 38.95 23.3442  \n\n";

    #[test]
    fn cmapss_good() {
        let runs = read_runs(CMAPSS_OK.as_bytes(), Format::Cmapss, &CsvOptions::default()).unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].unit, "1");
        assert_eq!(runs[0].cycles, vec![1.0, 2.0]);
        assert_eq!(runs[0].settings, 3);
        assert_eq!(runs[0].feature_names.len(), 24);
        assert_eq!(runs[0].feature_names[0], "setting1");
        assert_eq!(runs[0].feature_names[23], "s21");
        assert_eq!(runs[0].features[1][0], 0.0019);
        assert_eq!(runs[0].features[1][23], 23.4236);
        assert_eq!(runs[1].features.len(), 1);
    }

    #[test]
    fn cmapss_ragged_and_nan() {
        let (at, p) = problem(read_runs(
            "1 1 2 3\n".as_bytes(),
            Format::Cmapss,
            &CsvOptions::default(),
        ));
        assert_eq!(at.line, 1);
        assert_eq!(
            p,
            InputProblem::Ragged {
                expected: 26,
                found: 4
            }
        );
        let bad = CMAPSS_OK.replacen("641.82", "NaN", 1);
        let (at, p) = problem(read_runs(
            bad.as_bytes(),
            Format::Cmapss,
            &CsvOptions::default(),
        ));
        assert_eq!(
            (at.line, at.column, at.name.as_deref()),
            (1, Some(7), Some("s2"))
        );
        assert_eq!(p, InputProblem::NonFinite { text: "NaN".into() });
        let bad = CMAPSS_OK.replacen("1 2 ", "1 1 ", 1);
        let (at, p) = problem(read_runs(
            bad.as_bytes(),
            Format::Cmapss,
            &CsvOptions::default(),
        ));
        assert_eq!((at.line, at.column), (2, Some(2)));
        assert!(matches!(p, InputProblem::CycleOrder { .. }));
    }

    #[test]
    fn csv_good_with_interleaved_units_settings_and_crlf() {
        let text = "\u{feff}Asset,time,load,vib,temp\r\npump-a,0,1,0.5,40\r\npump-b,0,2,0.6,41\r\n\"pump-a\",10,1,0.7,42\r\n";
        let opts = CsvOptions {
            settings: vec!["load".into()],
            ..CsvOptions::default()
        };
        let runs = read_runs(text.as_bytes(), Format::Csv, &opts).unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].unit, "pump-a");
        assert_eq!(runs[0].cycles, vec![0.0, 10.0]);
        assert_eq!(runs[0].feature_names, vec!["load", "vib", "temp"]);
        assert_eq!(runs[0].settings, 1);
        assert_eq!(runs[0].features[1], vec![1.0, 0.7, 42.0]);
        assert_eq!(runs[1].features, vec![vec![2.0, 0.6, 41.0]]);
    }

    #[test]
    fn csv_settings_are_moved_first_and_ignored_columns_dropped() {
        let text = "unit,cycle,a,label,b,speed\nu,1,1,x,2,3\n";
        let opts = CsvOptions {
            settings: vec!["speed".into()],
            ignore: vec!["label".into()],
            ..Default::default()
        };
        let runs = read_runs(text.as_bytes(), Format::Csv, &opts).unwrap();
        assert_eq!(runs[0].feature_names, vec!["speed", "a", "b"]);
        assert_eq!(runs[0].features[0], vec![3.0, 1.0, 2.0]);
    }

    #[test]
    fn csv_bad_inputs_are_located() {
        let (at, p) = problem(csv(""));
        assert_eq!((at.line, p), (1, InputProblem::Empty));
        let (at, p) = problem(csv("asset,cycle,x\n\n"));
        assert_eq!((at.line, p), (2, InputProblem::Empty));
        let (at, p) = problem(csv("machine,cycle,x\nm,1,2\n"));
        assert_eq!(at.line, 1);
        assert!(
            matches!(p, InputProblem::MissingColumn { ref wanted, .. } if wanted == "asset or unit"),
            "{p:?}"
        );
        let (_, p) = problem(csv("asset,step,x\nm,1,2\n"));
        assert!(
            matches!(p, InputProblem::MissingColumn { ref wanted, .. } if wanted == "cycle or time")
        );
        let (_, p) = problem(csv("asset,cycle\nm,1\n"));
        assert_eq!(p, InputProblem::NoFeatures);
        let (at, p) = problem(csv("asset,cycle,x,X\nm,1,2,3\n"));
        assert_eq!(
            (at.column, p),
            (Some(4), InputProblem::DuplicateColumn { name: "X".into() })
        );
        let (at, p) = problem(csv("asset,cycle,x\n\nm,1,2\r\n\r\nm,2\n"));
        assert_eq!(
            (at.line, p),
            (
                5,
                InputProblem::Ragged {
                    expected: 3,
                    found: 2
                }
            )
        );
        let (at, p) = problem(csv("asset,cycle,x\nm,1,2\nm,2,abc\n"));
        assert_eq!(
            (at.line, at.column, at.name.as_deref()),
            (3, Some(3), Some("x"))
        );
        assert_eq!(p, InputProblem::NotANumber { text: "abc".into() });
        let (at, p) = problem(csv("asset,cycle,x\nm,1,\n"));
        assert_eq!(
            (at.line, at.column, p),
            (2, Some(3), InputProblem::MissingValue)
        );
        let (_, p) = problem(csv("asset,cycle,x\nm,1,nan\n"));
        assert_eq!(p, InputProblem::NonFinite { text: "nan".into() });
        let (_, p) = problem(csv("asset,cycle,x\nm,1,inf\n"));
        assert_eq!(p, InputProblem::NonFinite { text: "inf".into() });
        let (at, p) = problem(csv("asset,cycle,x\nm,2,1\nn,1,1\nm,1,1\n"));
        assert_eq!((at.line, at.column), (4, Some(2)));
        assert_eq!(
            p,
            InputProblem::CycleOrder {
                unit: "m".into(),
                previous: 2.0,
                cycle: 1.0
            }
        );
        let (at, p) = problem(csv("asset,cycle,x\nm,2,1\nm,2,1\n"));
        assert_eq!(at.line, 3);
        assert!(matches!(p, InputProblem::CycleOrder { .. }));
        let (_, p) = problem(csv("asset,cycle,x\n,2,1\n"));
        assert_eq!(p, InputProblem::EmptyUnit);
        let (at, p) = problem(read_runs(
            &b"asset,cycle,x\nm,1,\xff\n"[..],
            Format::Csv,
            &CsvOptions::default(),
        ));
        assert_eq!((at.line, p), (2, InputProblem::NotUtf8));
        let opts = CsvOptions {
            settings: vec!["load".into()],
            ..Default::default()
        };
        let (_, p) = problem(read_runs(
            "asset,cycle,x\nm,1,1\n".as_bytes(),
            Format::Csv,
            &opts,
        ));
        assert!(matches!(p, InputProblem::MissingColumn { .. }));
    }

    #[test]
    fn error_message_names_line_column_and_field() {
        let err = csv("asset,cycle,x\nm,1,2\nm,2,abc\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 3, column 3 (x): \"abc\" is not a number"
        );
    }

    #[test]
    fn format_from_str() {
        assert_eq!("CMAPSS".parse::<Format>().unwrap(), Format::Cmapss);
        assert_eq!("csv".parse::<Format>().unwrap(), Format::Csv);
        assert_eq!(
            Format::Cmapss.to_string().parse::<Format>().unwrap(),
            Format::Cmapss
        );
        let e = "parquet".parse::<Format>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown format \"parquet\" (expected one of: cmapss, csv)"
        );
    }

    #[test]
    fn predictions_csv() {
        let p = Prediction {
            rul: 12.3456,
            lower: 1.0,
            upper: f64::INFINITY,
        };
        let mut out = Vec::new();
        write_predictions(&mut out, &[("a", p), ("b,\"c\"", p)]).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert_eq!(
            s,
            "unit,rul,rul_lower,rul_upper\na,12.346,1.000,inf\n\"b,\"\"c\"\"\",12.346,1.000,inf\n"
        );
    }

    #[test]
    fn csv_quoted_fields_may_hold_the_delimiter() {
        let text = "asset;cycle;x\n\"pump;a\";1;2,5\n  \n\"pump;a\";2;3\n";
        let opts = CsvOptions {
            delimiter: ';',
            ..CsvOptions::default()
        };
        let (at, p) = problem(read_runs(text.as_bytes(), Format::Csv, &opts));
        assert_eq!(
            (at.line, at.column),
            (2, Some(3)),
            "a decimal comma is not a number here"
        );
        assert_eq!(p, InputProblem::NotANumber { text: "2,5".into() });
        let runs = read_runs(text.replace("2,5", "2.5").as_bytes(), Format::Csv, &opts).unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].unit, "pump;a");
        assert_eq!(runs[0].features, vec![vec![2.5], vec![3.0]]);
        let opts = CsvOptions {
            delimiter: '§',
            ..CsvOptions::default()
        };
        let (_, p) = problem(read_runs(text.as_bytes(), Format::Csv, &opts));
        assert_eq!(p, InputProblem::BadDelimiter { delimiter: '§' });
    }

    proptest::proptest! {
        #[test]
        fn csv_reader_never_panics(s in "[a-z0-9,.\"\\-\r\n ]{0,200}") {
            let _ = csv(&s);
            let _ = read_runs(s.as_bytes(), Format::Cmapss, &CsvOptions::default());
        }
    }
}
