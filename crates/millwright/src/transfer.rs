//! History in and out of the historian as files: what `millwright export` writes and
//! `millwright import` reads (the binary adds the progress bars and the summary).
//!
//! Two formats, chosen by flag or by the file's extension:
//! * **CSV** (`.csv`), one row per point, with the header `time,tag,type,value,quality,reason`:
//!   `time` in RFC 3339 with nanoseconds (UTC), `type` one of `f64`, `f32`, `i64`, `u64`, `bool`,
//!   `str` — so an export imports back to exactly the same values and types —, `quality` `good`,
//!   `uncertain` or `bad` with its `reason`. Written and read with the `csv` crate (quoting as
//!   RFC 4180). On import `type`, `quality` and `reason` may be left out (a column missing, or a
//!   cell empty): a value is then a bool (`true`/`false`), an integer (`i64`), a number (`f64`)
//!   or else a string, and good; `time` may also be nanoseconds since the epoch.
//! * **Line protocol** (`.lp`, `.line`, `.txt`): [`mw_lineproto::write_sample`]'s mapping
//!   (`truck/North/t1/velocity` = `truck,l1=North,l2=t1 velocity=3.5 TS`), read back with
//!   `mw_lineproto`'s streaming [`mw_lineproto::Reader`] — any Influx export imports as well.
//!   It has no place for quality: bad points are written with their last value and come back
//!   good, and NaN/infinite values cannot be written (counted as skipped).
//!
//! Import is streamed in batches of at most `batch` points, so a file of any size needs bounded
//! memory; a malformed row stops the import with its line (and column, for line protocol), and
//! every batch before it stays written. Export reads each tag in windows of one day, so memory
//! is bounded by one tag's day.

use std::io::{BufRead, Write};

use mw_historian::engine::Historian;
use mw_historian::record::Point;
use mw_model::{Quality, TagPath, Value, format_rfc3339_ns, parse_rfc3339_ns};

/// A file format of [`export`] and [`Importer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Line,
}

impl Format {
    /// The format a file name implies: `.csv` → CSV; `.lp`, `.line`, `.txt` → line protocol.
    pub fn of_path(p: &std::path::Path) -> Option<Format> {
        match p.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "lp" | "line" | "txt" => Some(Format::Line),
            _ => None,
        }
    }

    /// `csv` or `line` (also `lp`).
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "csv" => Some(Format::Csv),
            "line" | "lp" => Some(Format::Line),
            _ => None,
        }
    }
}

/// The CSV header [`export`] writes.
pub const CSV_HEADER: [&str; 6] = ["time", "tag", "type", "value", "quality", "reason"];

const DAY_NS: i64 = 86_400_000_000_000;

/// What an export wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExportSummary {
    pub tags: usize,
    pub points: u64,
    /// Points line protocol cannot carry (NaN, infinite, a string with a newline).
    pub skipped: u64,
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::F64(_) => "f64",
        Value::F32(_) => "f32",
        Value::I64(_) => "i64",
        Value::U64(_) => "u64",
        Value::Bool(_) => "bool",
        Value::Str(_) => "str",
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::Str(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Writes every point of `tags` with `from <= ts < to` to `out` in `format`, tag after tag,
/// in time order; `progress(tags_done, points_so_far)` after each tag.
pub fn export(
    h: &Historian,
    tags: &[TagPath],
    from: i64,
    to: i64,
    format: Format,
    out: impl Write,
    mut progress: impl FnMut(usize, u64),
) -> std::io::Result<ExportSummary> {
    let mut sum = ExportSummary::default();
    enum Out<W: Write> {
        Csv(Box<csv::Writer<W>>),
        Line(W, String),
    }
    let mut out = match format {
        Format::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record(CSV_HEADER)?;
            Out::Csv(Box::new(w))
        }
        Format::Line => Out::Line(out, String::new()),
    };
    for (i, tag) in tags.iter().enumerate() {
        let mut start = from;
        let mut any = false;
        while start < to {
            let end = start.saturating_add(DAY_NS).min(to);
            for p in h.range_half_open(tag, start, end) {
                any = true;
                match &mut out {
                    Out::Csv(w) => {
                        w.write_record([
                            format_rfc3339_ns(p.ts).as_str(),
                            p.tag.as_str(),
                            type_name(&p.value),
                            value_text(&p.value).as_str(),
                            p.quality.status(),
                            p.quality.reason().unwrap_or(""),
                        ])?;
                        sum.points += 1;
                    }
                    Out::Line(w, line) => {
                        line.clear();
                        match mw_lineproto::write_value_line(&p.tag, &p.value, p.ts, line) {
                            Ok(()) => {
                                w.write_all(line.as_bytes())?;
                                sum.points += 1;
                            }
                            Err(_) => sum.skipped += 1,
                        }
                    }
                }
            }
            start = end;
        }
        sum.tags += usize::from(any);
        progress(i + 1, sum.points);
    }
    match &mut out {
        Out::Csv(w) => w.flush()?,
        Out::Line(w, _) => w.flush()?,
    }
    Ok(sum)
}

/// Writes `tags` between `from` and `to` as one wide CSV for `backtest`: a `timestamp` column
/// (RFC 3339) and one column per tag, named by its path, one row per point of the **first** tag;
/// each other column holds that tag's last good value at or before the row's time (sample and
/// hold, as a live detector sees report-by-exception data; looking back at most a day before
/// `from` for the first one), empty when it has none yet. A bad or
/// non-numeric point of the first tag leaves its cell empty: the backtest marks such rows and
/// keeps them from the detector. Read in windows of a day. Returns the rows written.
pub fn wide_csv(
    h: &Historian,
    tags: &[TagPath],
    from: i64,
    to: i64,
    out: impl Write,
) -> std::io::Result<u64> {
    let mut w = csv::Writer::from_writer(out);
    let mut header = vec!["timestamp".to_owned()];
    header.extend(tags.iter().map(|t| t.as_str().to_owned()));
    w.write_record(&header)?;
    let Some((first, others)) = tags.split_first() else {
        w.flush()?;
        return Ok(0);
    };
    let cell = |p: &Point| -> Option<f64> {
        if p.quality.is_good() {
            p.value.as_f64().filter(|v| v.is_finite())
        } else {
            None
        }
    };
    // Last good value of each other tag, carried across windows.
    let mut held: Vec<Option<f64>> = others
        .iter()
        .map(|t| {
            h.range_half_open(t, from.saturating_sub(DAY_NS), from)
                .iter()
                .rev()
                .find_map(cell)
        })
        .collect();
    let mut rows = 0u64;
    let mut start = from;
    while start < to {
        let end = start.saturating_add(DAY_NS).min(to);
        let series: Vec<Vec<Point>> = others
            .iter()
            .map(|t| h.range_half_open(t, start, end))
            .collect();
        let mut next = vec![0usize; others.len()];
        for p in h.range_half_open(first, start, end) {
            let mut rec = Vec::with_capacity(tags.len() + 1);
            rec.push(format_rfc3339_ns(p.ts));
            rec.push(cell(&p).map(|v| v.to_string()).unwrap_or_default());
            for (k, s) in series.iter().enumerate() {
                while next[k] < s.len() && s[next[k]].ts <= p.ts {
                    if let Some(v) = cell(&s[next[k]]) {
                        held[k] = Some(v);
                    }
                    next[k] += 1;
                }
                rec.push(held[k].map(|v| v.to_string()).unwrap_or_default());
            }
            w.write_record(&rec)?;
            rows += 1;
        }
        // what the window held after its last row of the first tag
        for (k, s) in series.iter().enumerate() {
            if let Some(v) = s[next[k]..].iter().rev().find_map(cell) {
                held[k] = Some(v);
            }
        }
        start = end;
    }
    w.flush()?;
    Ok(rows)
}

/// Why an import stopped: where, and what was wrong. Everything before `line` was handed out.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}{}: {message}", column.map(|c| format!(", column {c}")).unwrap_or_default())]
pub struct ImportError {
    pub line: u64,
    pub column: Option<usize>,
    pub message: String,
}

/// A file read as batches of points ([`Importer::next_batch`]).
pub struct Importer<R: BufRead> {
    inner: Inner<R>,
    batch: usize,
    /// An error found after some points of the batch: they are handed out first.
    pending: Option<ImportError>,
    /// Lines (CSV: records, plus the header) read so far.
    pub lines: u64,
}

enum Inner<R: BufRead> {
    Csv {
        records: csv::StringRecordsIntoIter<R>,
        cols: Columns,
    },
    Line(mw_lineproto::Reader<R>),
}

/// Where each CSV column is.
struct Columns {
    time: usize,
    tag: usize,
    value: usize,
    kind: Option<usize>,
    quality: Option<usize>,
    reason: Option<usize>,
}

/// Longest line-protocol line accepted (bytes).
pub const MAX_LINE: usize = 1 << 20;

impl<R: BufRead> Importer<R> {
    /// Reads `input` in `format`, `batch` points at a time (at least 1). A CSV file's header is
    /// read here: `time`, `tag` and `value` are required (any order), `type`, `quality` and
    /// `reason` optional.
    pub fn new(input: R, format: Format, batch: usize) -> Result<Importer<R>, ImportError> {
        let batch = batch.max(1);
        let inner = match format {
            Format::Line => Inner::Line(mw_lineproto::Reader::new(
                input,
                mw_lineproto::Precision::Nanoseconds,
                mw_model::now_ns(),
                MAX_LINE,
            )),
            Format::Csv => {
                let mut r = csv::ReaderBuilder::new()
                    .has_headers(true)
                    .flexible(false)
                    .from_reader(input);
                let header = r.headers().map_err(|e| csv_error(&e, 1))?.clone();
                let find = |name: &str| header.iter().position(|h| h.trim() == name);
                let need = |name: &str| {
                    find(name).ok_or_else(|| ImportError {
                        line: 1,
                        column: None,
                        message: format!(
                            "the header has no {name:?} column (expected {}; found {})",
                            CSV_HEADER.join(","),
                            header.iter().collect::<Vec<_>>().join(",")
                        ),
                    })
                };
                let cols = Columns {
                    time: need("time")?,
                    tag: need("tag")?,
                    value: need("value")?,
                    kind: find("type"),
                    quality: find("quality"),
                    reason: find("reason"),
                };
                Inner::Csv {
                    records: r.into_records(),
                    cols,
                }
            }
        };
        Ok(Importer {
            inner,
            batch,
            pending: None,
            lines: 1,
        })
    }

    /// The next batch of points; `Ok(None)` at the end of the file. At a malformed row, the
    /// points before it come out first as a (short) batch, the error on the next call.
    pub fn next_batch(&mut self) -> Result<Option<Vec<Point>>, ImportError> {
        if let Some(e) = self.pending.take() {
            return Err(e);
        }
        let mut out = Vec::new();
        match self.fill(&mut out) {
            Ok(()) => Ok((!out.is_empty()).then_some(out)),
            Err(e) if out.is_empty() => Err(e),
            Err(e) => {
                self.pending = Some(e);
                Ok(Some(out))
            }
        }
    }

    fn fill(&mut self, out: &mut Vec<Point>) -> Result<(), ImportError> {
        while out.len() < self.batch {
            match &mut self.inner {
                Inner::Csv { records, cols } => {
                    let Some(rec) = records.next() else { break };
                    let line = rec
                        .as_ref()
                        .ok()
                        .and_then(|r| r.position())
                        .map_or(self.lines + 1, |p| p.line());
                    self.lines = line;
                    let rec = rec.map_err(|e| csv_error(&e, line))?;
                    out.push(csv_point(&rec, cols).map_err(|message| ImportError {
                        line,
                        column: None,
                        message,
                    })?);
                }
                Inner::Line(reader) => {
                    let Some(p) = reader.next() else { break };
                    self.lines = reader.line() as u64;
                    let p = p.map_err(|e| match e {
                        mw_lineproto::ReadError::Line(l) => ImportError {
                            line: l.line as u64,
                            column: Some(l.column),
                            message: l.message,
                        },
                        other => ImportError {
                            line: reader.line() as u64,
                            column: None,
                            message: other.to_string(),
                        },
                    })?;
                    let samples = mw_lineproto::to_samples(&[p], 0).map_err(|l| ImportError {
                        line: l.line as u64,
                        column: Some(l.column),
                        message: l.message,
                    })?;
                    out.extend(samples.iter().map(Point::from));
                }
            }
        }
        Ok(())
    }
}

fn csv_error(e: &csv::Error, line: u64) -> ImportError {
    let line = e.position().map_or(line, |p| p.line());
    let message = match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("{len} fields where the header has {expected_len}"),
        csv::ErrorKind::Utf8 { .. } => "not valid UTF-8".to_owned(),
        _ => e.to_string(),
    };
    ImportError {
        line,
        column: None,
        message,
    }
}

fn csv_point(rec: &csv::StringRecord, c: &Columns) -> Result<Point, String> {
    let cell = |i: Option<usize>| {
        i.and_then(|i| rec.get(i))
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let time = cell(Some(c.time)).ok_or("the time is empty")?;
    let ts = parse_rfc3339_ns(time)
        .or_else(|| time.parse::<i64>().ok())
        .ok_or_else(|| {
            format!("time {time:?} is neither RFC 3339 (2026-12-04T10:00:00Z) nor nanoseconds")
        })?;
    let tag_s = cell(Some(c.tag)).ok_or("the tag is empty")?;
    let tag = TagPath::new(tag_s).map_err(|e| format!("invalid tag {tag_s:?}: {e}"))?;
    let raw = rec.get(c.value).unwrap_or("");
    let value = match cell(c.kind) {
        Some(kind) => typed(kind, raw)?,
        None => inferred(raw.trim()),
    };
    let reason = cell(c.reason).unwrap_or("").to_owned();
    let quality = match cell(c.quality) {
        None | Some("good") => Quality::Good,
        Some("uncertain") => Quality::Uncertain(reason),
        Some("bad") => Quality::Bad(reason),
        Some(other) => {
            return Err(format!("quality {other:?} is not good, uncertain or bad"));
        }
    };
    Ok(Point {
        tag,
        ts,
        value,
        quality,
    })
}

fn typed(kind: &str, raw: &str) -> Result<Value, String> {
    let t = raw.trim();
    let bad = || format!("value {raw:?} is not a {kind}");
    Ok(match kind {
        "f64" => Value::F64(t.parse().map_err(|_| bad())?),
        "f32" => Value::F32(t.parse().map_err(|_| bad())?),
        "i64" => Value::I64(t.parse().map_err(|_| bad())?),
        "u64" => Value::U64(t.parse().map_err(|_| bad())?),
        "bool" => Value::Bool(t.parse().map_err(|_| bad())?),
        "str" => Value::string(raw),
        other => {
            return Err(format!(
                "type {other:?} is not one of f64, f32, i64, u64, bool, str"
            ));
        }
    })
}

fn inferred(t: &str) -> Value {
    if let Ok(b) = t.parse::<bool>() {
        Value::Bool(b)
    } else if let Ok(i) = t.parse::<i64>() {
        Value::I64(i)
    } else if let Ok(f) = t.parse::<f64>() {
        Value::F64(f)
    } else {
        Value::string(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batches(text: &str, format: Format, batch: usize) -> Result<Vec<Vec<Point>>, ImportError> {
        let mut im = Importer::new(text.as_bytes(), format, batch)?;
        let mut out = Vec::new();
        while let Some(b) = im.next_batch()? {
            out.push(b);
        }
        Ok(out)
    }

    #[test]
    fn csv_rows_with_and_without_types() {
        let text = "time,tag,type,value,quality,reason\n\
            2026-12-04T10:00:00Z,a/b,f32,60.26314,good,\n\
            2026-12-04T10:00:01.5Z,a/b,f32,61,bad,timeout\n\
            5,a/c,u64,18446744073709551615,,\n\
            6,a/d,str,\"x, y\",uncertain,warming up\n";
        let b = batches(text, Format::Csv, 3).unwrap();
        assert_eq!(b.len(), 2, "batches of at most 3");
        let all: Vec<Point> = b.into_iter().flatten().collect();
        assert_eq!(all[0].value, Value::F32(60.26314));
        assert_eq!(all[0].ts, 1_796_378_400_000_000_000);
        assert_eq!(all[1].quality, Quality::Bad("timeout".into()));
        assert_eq!(all[1].ts, 1_796_378_401_500_000_000);
        assert_eq!(all[2].value, Value::U64(u64::MAX));
        assert_eq!(all[3].value, Value::string("x, y"));
        assert_eq!(all[3].quality, Quality::Uncertain("warming up".into()));

        let loose = "tag,value,time\na/b,true,1\na/b,3,2\na/b,2.5,3\na/b,open,4\n";
        let v: Vec<Value> = batches(loose, Format::Csv, 10).unwrap()[0]
            .iter()
            .map(|p| p.value.clone())
            .collect();
        assert_eq!(
            v,
            [
                Value::Bool(true),
                Value::I64(3),
                Value::F64(2.5),
                Value::string("open")
            ]
        );
    }

    #[test]
    fn bad_rows_name_their_line() {
        let e = |text: &str| batches(text, Format::Csv, 100).unwrap_err().to_string();
        assert_eq!(
            e("tag,value\na/b,1\n"),
            "line 1: the header has no \"time\" column (expected time,tag,type,value,quality,reason; found tag,value)"
        );
        assert_eq!(
            e("time,tag,value\n1,a/b,1\n2,a/b\n"),
            "line 3: 2 fields where the header has 3"
        );
        // the rows before a bad one come out first
        let mut im = Importer::new(
            "time,tag,value\n1,a/b,1\n2,a/b\n".as_bytes(),
            Format::Csv,
            100,
        )
        .unwrap();
        assert_eq!(im.next_batch().unwrap().map(|b| b.len()), Some(1));
        assert_eq!(im.next_batch().unwrap_err().line, 3);
        assert_eq!(
            e("time,tag,value\n1,a/b,1\nyesterday,a/b,2\n"),
            "line 3: time \"yesterday\" is neither RFC 3339 (2026-12-04T10:00:00Z) nor nanoseconds"
        );
        assert!(e("time,tag,value\n1,a,1\n").starts_with("line 2: invalid tag \"a\""));
        assert_eq!(
            e("time,tag,type,value\n1,a/b,i64,2.5\n"),
            "line 2: value \"2.5\" is not a i64"
        );
        let lp = batches("m,l1=x f=1 1\nm f= 2\n", Format::Line, 10).unwrap_err();
        assert_eq!((lp.line, lp.column.is_some()), (2, true), "{lp}");
    }

    #[test]
    fn line_protocol_reads_to_paths() {
        let b = batches(
            "truck,l1=North,l2=t1 velocity=3.5,ok=true 10\n",
            Format::Line,
            10,
        )
        .unwrap();
        let got: Vec<(String, Value, i64)> = b[0]
            .iter()
            .map(|p| (p.tag.as_str().to_owned(), p.value.clone(), p.ts))
            .collect();
        assert_eq!(
            got,
            [
                ("truck/North/t1/velocity".to_owned(), Value::F64(3.5), 10),
                ("truck/North/t1/ok".to_owned(), Value::Bool(true), 10)
            ]
        );
    }

    #[test]
    fn formats_by_name_and_extension() {
        use std::path::Path;
        assert_eq!(Format::of_path(Path::new("x.CSV")), Some(Format::Csv));
        assert_eq!(Format::of_path(Path::new("x.lp")), Some(Format::Line));
        assert_eq!(Format::of_path(Path::new("x.json")), None);
        assert_eq!(Format::parse("line"), Some(Format::Line));
    }
}
