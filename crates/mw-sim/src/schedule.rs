//! The fault schedule file: `start_s,asset,kind,duration_s[,point]` per line (simulated seconds
//! from the start; `#` starts a comment; an optional header line starting with `start` is skipped).
//! Read with the `csv` crate once comments are removed, so fields may be quoted.

use std::fmt::Write as _;

use thiserror::Error;

use crate::SimConfig;
use crate::fault::{FaultKind, ScheduledFault, SimError};

/// What is wrong with one entry of a fault schedule.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ScheduleProblem {
    #[error("expected start_s,asset,kind,duration_s[,point], found {found} field(s)")]
    FieldCount { line: usize, found: usize },
    #[error("{field} {value:?} is not a number")]
    NotANumber {
        line: usize,
        field: &'static str,
        value: String,
    },
    /// The fault kind is not one the simulator knows.
    #[error("{error}")]
    UnknownKind { line: usize, error: SimError },
    /// A well-formed entry the simulator refuses (unknown asset, bad duration, …), at its
    /// [`SimConfig::validate`] location (`schedule[3]`: the fourth fault of the file).
    #[error("{location}: {error}")]
    Invalid { location: String, error: SimError },
}

impl ScheduleProblem {
    /// The 1-based line of the file, for the problems found while reading a line.
    pub fn line(&self) -> Option<usize> {
        match self {
            ScheduleProblem::FieldCount { line, .. }
            | ScheduleProblem::NotANumber { line, .. }
            | ScheduleProblem::UnknownKind { line, .. } => Some(*line),
            ScheduleProblem::Invalid { .. } => None,
        }
    }
}

/// A fault schedule that was refused, with every problem found in it (not only the first).
/// Displays as `invalid fault schedule:` and one `FILE:LINE: message` line per problem
/// (`FILE: schedule[i]: message` for entries the simulator refuses).
#[derive(Debug, Clone, PartialEq, Error)]
#[error("invalid fault schedule:\n{}", render(.file, .problems))]
pub struct ScheduleError {
    /// The file name as given to [`parse_schedule`].
    pub file: String,
    pub problems: Vec<ScheduleProblem>,
}

fn render(file: &str, problems: &[ScheduleProblem]) -> String {
    let mut s = String::new();
    for (i, p) in problems.iter().enumerate() {
        if i > 0 {
            s.push('\n');
        }
        let _ = match p.line() {
            Some(line) => write!(s, "{file}:{line}: {p}"),
            None => write!(s, "{file}: {p}"),
        };
    }
    s
}

/// Parses a fault schedule (`file` names it in the messages). Every bad line is reported, and
/// every entry the simulator would refuse ([`SimConfig::validate`]), not only the first.
pub fn parse_schedule(text: &str, file: &str) -> Result<Vec<ScheduledFault>, ScheduleError> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    let mut seen_first = false;
    // `#` starts a comment anywhere on a line; what remains (line breaks kept, so the csv
    // reader's line numbers are the file's) is CSV.
    let mut uncommented = String::with_capacity(text.len());
    for raw in text.split_inclusive('\n') {
        let (body, ending) = match raw.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (raw, ""),
        };
        uncommented.push_str(body.split('#').next().unwrap_or(""));
        uncommented.push_str(ending);
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(uncommented.as_bytes());
    let mut record = csv::StringRecord::new();
    // csv's record position is where it started looking, before the blank lines it skips: count
    // the lines up to the record's first byte here.
    let bytes = uncommented.as_bytes();
    let (mut counted_to, mut lines_before) = (0usize, 0usize);
    // Reading from a string cannot fail but for invalid UTF-8, which a `&str` cannot hold.
    while reader.read_record(&mut record).unwrap_or(false) {
        let mut start = record
            .position()
            .map_or(0, |p| usize::try_from(p.byte()).unwrap_or(usize::MAX))
            .min(bytes.len());
        while bytes.get(start).is_some_and(|b| matches!(b, b'\r' | b'\n')) {
            start += 1;
        }
        let from = counted_to.min(start);
        lines_before += bytes[from..start].iter().filter(|&&b| b == b'\n').count();
        counted_to = counted_to.max(start);
        let line_no = lines_before + 1;
        let f: Vec<&str> = record.iter().collect();
        if f.iter().all(|x| x.is_empty()) {
            continue;
        }
        let first = std::mem::replace(&mut seen_first, true);
        if !first && f[0].starts_with("start") {
            continue; // header
        }
        if !(4..=5).contains(&f.len()) {
            problems.push(ScheduleProblem::FieldCount {
                line: line_no,
                found: f.len(),
            });
            continue;
        }
        let number = |v: &str, field: &'static str| {
            v.parse::<f64>().map_err(|_| ScheduleProblem::NotANumber {
                line: line_no,
                field,
                value: v.to_owned(),
            })
        };
        let (start_s, duration_s) = match (number(f[0], "start_s"), number(f[3], "duration_s")) {
            (Ok(s), Ok(d)) => (s, d),
            (Err(e), _) | (_, Err(e)) => {
                problems.push(e);
                continue;
            }
        };
        let kind: FaultKind = match f[2].parse() {
            Ok(k) => k,
            Err(error) => {
                problems.push(ScheduleProblem::UnknownKind {
                    line: line_no,
                    error,
                });
                continue;
            }
        };
        out.push(ScheduledFault {
            start_s,
            asset: f[1].to_owned(),
            kind,
            duration_s,
            point: f.get(4).filter(|p| !p.is_empty()).map(|p| (*p).to_owned()),
        });
    }
    // semantic checks (unknown asset, bad duration, …) by the simulator itself
    let probe = SimConfig {
        schedule: out.clone(),
        ..SimConfig::default()
    };
    for p in probe.validate() {
        problems.push(ScheduleProblem::Invalid {
            location: p.location,
            error: p.error,
        });
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(ScheduleError {
            file: file.to_owned(),
            problems,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_parses_and_reports_every_bad_line() {
        let ok = parse_schedule(
            "# faults\nstart_s,asset,kind,duration_s,point\n60,gd1,gas_release,120\n# comment\n300, pump1, dropout, 30, flow\n",
            "s.csv",
        )
        .unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[1].point.as_deref(), Some("flow"));
        assert_eq!(ok[0].kind, FaultKind::GasRelease);
        let err = parse_schedule(
            "x,gd1,gas_release,1\n5,gd1,meteor,1\n5,gd1\n5,nowhere,leak,10\n",
            "s.csv",
        )
        .unwrap_err();
        let lines: Vec<Option<usize>> = err.problems.iter().map(ScheduleProblem::line).collect();
        assert_eq!(lines, vec![Some(1), Some(2), Some(3), None]);
        assert_eq!(
            err.to_string(),
            "invalid fault schedule:\n\
             s.csv:1: start_s \"x\" is not a number\n\
             s.csv:2: unknown fault kind \"meteor\" (expected one of: gas_release, leak, blocked_valve, \
             bearing_wear, sensor_stuck, sensor_drift, sensor_spike, dropout)\n\
             s.csv:3: expected start_s,asset,kind,duration_s[,point], found 2 field(s)\n\
             s.csv: schedule[0]: unknown asset \"nowhere\" (valid assets: acme, acme/plant1, \
             acme/plant1/utilities, acme/plant1/utilities/water, acme/plant1/utilities/water/pump1, \
             acme/plant1/utilities/water/pump1_motor, acme/plant1/utilities/water/valve1, \
             acme/plant1/utilities/water/tank1, acme/plant1/utilities/compressor_house, \
             acme/plant1/utilities/compressor_house/gd1, acme/plant1/utilities/compressor_house/gd2, \
             acme/plant1/utilities/compressor_house/gd3)"
        );
    }

    #[test]
    fn a_header_is_skipped_only_as_the_first_line() {
        let err = parse_schedule("10,gd1,gas_release,5\nstart_s,asset,kind,duration_s\n", "f")
            .unwrap_err();
        assert_eq!(
            err.problems,
            vec![ScheduleProblem::NotANumber {
                line: 2,
                field: "start_s",
                value: "start_s".into()
            }]
        );
    }

    #[test]
    fn crlf_quotes_and_trailing_comments() {
        let ok = parse_schedule(
            "start_s,asset,kind,duration_s\r\n60,\"gd1\",gas_release,120 # the first\r\n\r\n  \r\n90,gd2,gas_release,5\r\n",
            "s.csv",
        )
        .unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!((ok[0].asset.as_str(), ok[0].duration_s), ("gd1", 120.0));
        let err = parse_schedule("\n\n60,gd1\r\n", "s.csv").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid fault schedule:\ns.csv:3: expected start_s,asset,kind,duration_s[,point], found 2 field(s)"
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_arbitrary_text(text in "\\PC{0,200}") {
            let _ = parse_schedule(&text, "f");
        }

        #[test]
        fn never_panics_on_schedule_like_lines(
            lines in proptest::collection::vec("[0-9a-z_.,# -]{0,40}", 0..8)
        ) {
            let _ = parse_schedule(&lines.join("\n"), "f");
        }
    }
}
