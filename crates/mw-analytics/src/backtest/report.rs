//! The summary in words, for a person reading a terminal.

use std::fmt;

use time::OffsetDateTime;

use super::{Issue, Summary};

/// `YYYY-MM-DD HH:MM:SS[.fff]` (UTC) of a time in nanoseconds since the epoch.
pub fn format_time(ns: i64) -> String {
    let Ok(t) = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns)) else {
        return format!("{ns} ns since 1970");
    };
    let mut s = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let nanos = t.nanosecond();
    if nanos != 0 {
        if nanos % 1_000_000 == 0 {
            s.push_str(&format!(".{:03}", nanos / 1_000_000));
        } else {
            s.push_str(&format!(".{nanos:09}"));
        }
    }
    s
}

/// A duration in words: `250 ms`, `1.5 s`, `5 min`, `1 h 5 min`, `78.8 days`.
pub fn format_duration(ns: i64) -> String {
    let ns = ns.unsigned_abs();
    const S: u64 = 1_000_000_000;
    if ns < 1_000_000 {
        return format!("{ns} ns");
    }
    if ns < S {
        return format!("{} ms", ns / 1_000_000);
    }
    if ns < 60 * S {
        return if ns.is_multiple_of(S) {
            format!("{} s", ns / S)
        } else {
            format!("{:.1} s", ns as f64 / S as f64)
        };
    }
    let secs = ns / S;
    if secs < 3600 {
        let (m, s) = (secs / 60, secs % 60);
        return if s == 0 {
            format!("{m} min")
        } else {
            format!("{m} min {s} s")
        };
    }
    if secs < 86_400 {
        let (h, m) = (secs / 3600, (secs % 3600) / 60);
        return if m == 0 {
            format!("{h} h")
        } else {
            format!("{h} h {m} min")
        };
    }
    let days = ns as f64 / (86_400.0 * S as f64);
    if days < 10.0 {
        let (d, h) = (secs / 86_400, (secs % 86_400) / 3600);
        let unit = if d == 1 { "day" } else { "days" };
        return if h == 0 {
            format!("{d} {unit}")
        } else {
            format!("{d} {unit} {h} h")
        };
    }
    format!("{days:.1} days")
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn first(issue: &Issue) -> String {
    match &issue.first {
        Some(f) => format!("first at line {}: {}", f.line, f.detail),
        None => String::new(),
    }
}

impl fmt::Display for Summary {
    /// Several lines of plain text, each ending in a newline; no file names (the caller knows
    /// them).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "rows: {} read, {} written (one per input row), {} warm-up, {} scored",
            self.rows, self.written, self.warmup_rows, self.scored
        )?;
        if let Some(t) = &self.time {
            write!(
                f,
                "time: {} to {} UTC ({})",
                format_time(t.first_ns),
                format_time(t.last_ns),
                format_duration(t.last_ns.saturating_sub(t.first_ns))
            )?;
            match t.typical_interval_ns {
                Some(i) => {
                    writeln!(f, ", typically {} between rows", format_duration(i))?;
                    let factor = t.gap_factor;
                    let limit = format_duration(i.saturating_mul(i64::from(factor)));
                    match &t.longest_gap {
                        Some(g) => writeln!(
                            f,
                            "gaps longer than {limit} ({factor} typical intervals): {}, the longest {} before line {} ({} to {})",
                            t.gaps,
                            format_duration(g.to_ns.saturating_sub(g.from_ns)),
                            g.line,
                            format_time(g.from_ns),
                            format_time(g.to_ns)
                        )?,
                        None => writeln!(
                            f,
                            "no gaps longer than {limit} ({factor} typical intervals)"
                        )?,
                    }
                }
                None => writeln!(f)?,
            }
        }
        if let Some(l) = &self.time_layer
            && l.filled > 0
        {
            writeln!(
                f,
                "irregular rows: {} ticks of {} the source did not send were filled as held values \
                 (deadband / report-by-exception; see docs/analytics.md, \"Time\")",
                l.filled,
                l.interval_ns
                    .map_or_else(|| "?".to_owned(), format_duration)
            )?;
        }
        let k = &self.issues;
        if k.backwards.count == 0 && k.duplicates.count == 0 {
            writeln!(f, "order: every timestamp is later than the one before")?;
        }
        if k.backwards.count > 0 {
            writeln!(
                f,
                "time goes backwards {}, {}; the largest step back is {}; {} earlier than a row before them; rows are scored in file order",
                plural(k.backwards.count, "time", "times"),
                first(&k.backwards),
                format_duration(k.largest_step_back_ns),
                plural(k.behind, "row is", "rows are"),
            )?;
        }
        if k.duplicates.count > 0 {
            writeln!(
                f,
                "duplicate timestamps: {}, {}; scored in file order",
                plural(k.duplicates.count, "row", "rows"),
                first(&k.duplicates)
            )?;
        }
        let unusable = k.unusable();
        if unusable == 0 {
            writeln!(f, "unusable rows: none")?;
        } else {
            writeln!(
                f,
                "unusable rows: {} (written with an empty score, not given to the detector)",
                unusable
            )?;
            for (what, issue) in [
                ("wrong number of fields", &k.ragged),
                ("not a number", &k.non_numeric),
                ("empty or NaN value", &k.missing),
                ("timestamp that does not parse", &k.bad_timestamp),
                ("label that is not 0/1", &k.bad_label),
            ] {
                if issue.count > 0 {
                    writeln!(f, "  {what}: {}, {}", issue.count, first(issue))?;
                }
            }
        }
        if self.rows_with_missing > 0 {
            writeln!(
                f,
                "rows with a missing value passed to the detector: {}",
                self.rows_with_missing
            )?;
        }
        writeln!(
            f,
            "detector: {}; values [{}]",
            self.detector_description,
            self.value_columns.join(", ")
        )?;
        writeln!(
            f,
            "input: delimiter {}, timestamp column {:?}, format {}",
            match self.delimiter {
                '\t' => "tab".to_owned(),
                c => format!("'{c}'"),
            },
            self.timestamp_column,
            self.timestamp_format
        )?;
        let a = &self.alarms;
        write!(
            f,
            "alarms: {}, {} flagged",
            plural(a.onsets, "onset", "onsets"),
            plural(self.anomalies, "row", "rows")
        )?;
        for (i, r) in a.ranges.iter().enumerate() {
            let sep = if i == 0 { ": " } else { "; " };
            write!(
                f,
                "{sep}{} to {} ({}, from line {})",
                format_time(r.start_ns),
                format_time(r.end_ns),
                plural(r.rows, "row", "rows"),
                r.first_line
            )?;
        }
        if a.more > 0 {
            write!(f, "; and {} more", a.more)?;
        }
        writeln!(f)?;
        if let (Some(src), Some(m)) = (&self.labels, &self.metrics) {
            writeln!(f, "labels: {src}")?;
            writeln!(
                f,
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
            )?;
        }
        if let Some(e) = &self.events {
            write!(
                f,
                "events: {} outside labelled anomalies ({:.2} per 1,000 rows",
                plural(e.false_onsets, "onset", "onsets"),
                e.false_onsets_per_1000_rows
            )?;
            match e.false_onsets_per_day {
                Some(d) => write!(f, ", {d:.2} per day)")?,
                None => write!(f, ")")?,
            }
            write!(
                f,
                "; labelled windows caught: {} of {}",
                e.caught, e.windows
            )?;
            match (e.mean_delay_rows, e.mean_delay_ns) {
                (Some(r), Some(t)) => writeln!(
                    f,
                    "; mean delay from a window's start to its first alarm: {r:.1} rows ({})",
                    format_duration(t.round() as i64)
                )?,
                _ => writeln!(f)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_times_in_words() {
        const S: i64 = 1_000_000_000;
        assert_eq!(format_duration(250_000_000), "250 ms");
        assert_eq!(format_duration(S + S / 2), "1.5 s");
        assert_eq!(format_duration(300 * S), "5 min");
        assert_eq!(format_duration(55 * 60 * S), "55 min");
        assert_eq!(format_duration(3900 * S), "1 h 5 min");
        assert_eq!(format_duration(2 * 86_400 * S + 3 * 3600 * S), "2 days 3 h");
        assert_eq!(format_duration(788 * 8640 * S), "78.8 days");
        assert_eq!(
            format_time(1_583_748_873_000_000_000),
            "2020-03-09 10:14:33"
        );
        assert_eq!(
            format_time(1_583_748_873_250_000_000),
            "2020-03-09 10:14:33.250"
        );
    }
}
