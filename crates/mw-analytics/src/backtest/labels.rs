//! Labelled anomaly windows given as time ranges (instead of a 0/1 column).
//!
//! Accepted forms, all parsed from text (the caller reads the file):
//! * NAB's `combined_windows.json`: `{"category/file.csv": [["2014-02-19 15:00:00.000000",
//!   "2014-02-20 10:00:00.000000"], …], …}`, the entry picked by a key (not needed when the
//!   object has exactly one entry);
//! * a JSON list of `[start, end]` pairs;
//! * CSV rows `start,end` (`,`, `;` or tab; an optional header row is skipped).
//!
//! Times are in any format the backtest detects ([`TimestampFormat`]), each cell on its
//! own; JSON numbers are epoch values. A window includes both ends.

use super::timestamp::TimestampFormat;

/// Labelled windows, as inclusive `[start, end]` ranges in nanoseconds since the epoch,
/// sorted and merged where they overlap.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelWindows {
    windows: Vec<(i64, i64)>,
    given: usize,
}

/// Why label windows could not be read. Locations are 1-based (`entry` counts the pairs of
/// the list, `line` the lines of a CSV file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelWindowsError {
    /// The text is not valid JSON.
    #[error("line {line}, column {column}: not valid JSON: {message}")]
    Json {
        /// Line of the problem.
        line: usize,
        /// Column of the problem.
        column: usize,
        /// What the JSON parser said.
        message: String,
    },
    /// An object of several entries and no key to pick one.
    #[error("the file has {count} entries; pick one with the label key option (e.g. {example:?})")]
    KeyNeeded {
        /// Entries in the object.
        count: usize,
        /// The first entry's key.
        example: String,
    },
    /// The key is not in the object.
    #[error("no entry {key:?} (entries ending like it: {})", if similar.is_empty() { "none".to_owned() } else { similar.join(", ") })]
    NoSuchKey {
        /// The key asked for.
        key: String,
        /// Keys that end with the key's file name.
        similar: Vec<String>,
    },
    /// The JSON is not an object or a list of pairs.
    #[error("expected an object of window lists or a list of [start, end] pairs")]
    NotAList,
    /// An element is not a `[start, end]` pair.
    #[error("{at}: expected a [start, end] pair")]
    NotAPair {
        /// `entry N` or `line N`.
        at: String,
    },
    /// A start or end is not a recognised time.
    #[error("{at}: {value:?} is not a time (RFC 3339, YYYY-MM-DD HH:MM:SS or an epoch number)")]
    BadTime {
        /// `entry N` or `line N`.
        at: String,
        /// The value.
        value: String,
    },
    /// A window ends before it starts.
    #[error("{at}: the window ends ({end:?}) before it starts ({start:?})")]
    EndBeforeStart {
        /// `entry N` or `line N`.
        at: String,
        /// The start as written.
        start: String,
        /// The end as written.
        end: String,
    },
    /// The CSV could not be read.
    #[error("line {line}: {message}")]
    Csv {
        /// Line of the problem.
        line: u64,
        /// What went wrong.
        message: String,
    },
}

fn parse_time(s: &str, at: &dyn Fn() -> String) -> Result<i64, LabelWindowsError> {
    let t = s.trim();
    TimestampFormat::detect(t)
        .and_then(|f| f.parse_ns(t))
        .ok_or_else(|| LabelWindowsError::BadTime {
            at: at(),
            value: s.to_owned(),
        })
}

impl LabelWindows {
    /// Builds from `(start, end)` pairs in nanoseconds (each inclusive, `start <= end`).
    pub fn from_ns(pairs: impl IntoIterator<Item = (i64, i64)>) -> Self {
        let mut v: Vec<(i64, i64)> = pairs
            .into_iter()
            .map(|(a, b)| (a.min(b), a.max(b)))
            .collect();
        let given = v.len();
        v.sort_unstable();
        let mut merged: Vec<(i64, i64)> = Vec::with_capacity(v.len());
        for (a, b) in v {
            match merged.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        Self {
            windows: merged,
            given,
        }
    }

    /// Parses JSON (when the text starts with `{` or `[`) or CSV. `key` picks the entry of
    /// an object; it may also be just the file name (`machine_temperature.csv`) when exactly
    /// one entry ends with `/NAME`.
    pub fn parse(text: &str, key: Option<&str>) -> Result<Self, LabelWindowsError> {
        let t = text.trim_start_matches('\u{feff}').trim_start();
        if t.starts_with('{') || t.starts_with('[') {
            Self::from_json(t, key)
        } else {
            Self::from_csv(t)
        }
    }

    /// Parses the JSON forms.
    pub fn from_json(text: &str, key: Option<&str>) -> Result<Self, LabelWindowsError> {
        use serde_json::Value;
        let v: Value = serde_json::from_str(text).map_err(|e| LabelWindowsError::Json {
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        let list = match v {
            Value::Array(a) => a,
            Value::Object(mut m) => {
                let k = match key {
                    Some(k) if m.contains_key(k) => k.to_owned(),
                    Some(k) => {
                        let name = k.rsplit('/').next().unwrap_or(k);
                        let similar: Vec<String> = m
                            .keys()
                            .filter(|c| c.rsplit('/').next() == Some(name))
                            .cloned()
                            .collect();
                        if similar.len() == 1 && !k.contains('/') {
                            similar[0].clone()
                        } else {
                            return Err(LabelWindowsError::NoSuchKey {
                                key: k.to_owned(),
                                similar,
                            });
                        }
                    }
                    None if m.len() == 1 => m.keys().next().cloned().unwrap_or_default(),
                    None => {
                        return Err(LabelWindowsError::KeyNeeded {
                            count: m.len(),
                            example: m.keys().next().cloned().unwrap_or_default(),
                        });
                    }
                };
                match m.remove(&k) {
                    Some(Value::Array(a)) => a,
                    _ => return Err(LabelWindowsError::NotAList),
                }
            }
            _ => return Err(LabelWindowsError::NotAList),
        };
        let mut pairs = Vec::with_capacity(list.len());
        for (i, item) in list.iter().enumerate() {
            let at = || format!("entry {}", i + 1);
            let cell = |v: &Value| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            };
            let (a, b) = match item.as_array().map(Vec::as_slice) {
                Some([a, b]) => match (cell(a), cell(b)) {
                    (Some(a), Some(b)) => (a, b),
                    _ => return Err(LabelWindowsError::NotAPair { at: at() }),
                },
                _ => return Err(LabelWindowsError::NotAPair { at: at() }),
            };
            pairs.push(Self::pair(&a, &b, &at)?);
        }
        Ok(Self::from_ns(pairs))
    }

    /// Parses `start,end` rows (`,`, `;` or tab); a first row that is not two times is taken
    /// as a header.
    pub fn from_csv(text: &str) -> Result<Self, LabelWindowsError> {
        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        let delim = super::csv::detect_delimiter(first).unwrap_or(b',');
        let mut r = ::csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(delim)
            .from_reader(text.as_bytes());
        let mut pairs = Vec::new();
        let mut rec = ::csv::StringRecord::new();
        let mut first_record = true;
        loop {
            match r.read_record(&mut rec) {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) => {
                    let line = e.position().map_or(0, |p| p.line());
                    return Err(LabelWindowsError::Csv {
                        line,
                        message: e.to_string(),
                    });
                }
            }
            let line = rec.position().map_or(0, |p| p.line());
            if rec.iter().all(|f| f.trim().is_empty()) {
                continue;
            }
            let at = || format!("line {line}");
            let is_header = std::mem::replace(&mut first_record, false)
                && rec.len() == 2
                && TimestampFormat::detect(rec[0].trim()).is_none();
            if is_header {
                continue;
            }
            if rec.len() != 2 {
                return Err(LabelWindowsError::NotAPair { at: at() });
            }
            pairs.push(Self::pair(&rec[0], &rec[1], &at)?);
        }
        Ok(Self::from_ns(pairs))
    }

    fn pair(a: &str, b: &str, at: &dyn Fn() -> String) -> Result<(i64, i64), LabelWindowsError> {
        let (s, e) = (parse_time(a, at)?, parse_time(b, at)?);
        if e < s {
            return Err(LabelWindowsError::EndBeforeStart {
                at: at(),
                start: a.to_owned(),
                end: b.to_owned(),
            });
        }
        Ok((s, e))
    }

    /// Windows as given (before merging overlaps).
    pub fn given(&self) -> usize {
        self.given
    }

    /// The merged windows, sorted, inclusive, in nanoseconds.
    pub fn windows(&self) -> &[(i64, i64)] {
        &self.windows
    }

    /// Whether `ts_ns` lies in a window.
    pub fn contains(&self, ts_ns: i64) -> bool {
        let i = self.windows.partition_point(|w| w.1 < ts_ns);
        self.windows.get(i).is_some_and(|w| w.0 <= ts_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn nab_object_with_key_list_and_csv_agree() {
        let nab = r#"{"a/x.csv": [], "realKnownCause/m.csv": [["1970-01-01 00:00:10.000000", "1970-01-01 00:00:20.000000"], ["1970-01-01 00:01:00", "1970-01-01 00:01:05"]]}"#;
        let w = LabelWindows::parse(nab, Some("realKnownCause/m.csv")).unwrap();
        assert_eq!(w.windows(), &[(10 * S, 20 * S), (60 * S, 65 * S)]);
        assert_eq!(LabelWindows::parse(nab, Some("m.csv")).unwrap(), w);
        let list = r#"[["1970-01-01T00:00:10Z", "1970-01-01T00:00:20Z"], [60, 65]]"#;
        assert_eq!(LabelWindows::parse(list, None).unwrap(), w);
        let csv = "start;end\n10;20\n\n1970-01-01 00:01:00;1970-01-01 00:01:05\n";
        assert_eq!(LabelWindows::parse(csv, None).unwrap(), w);
        assert!(w.contains(10 * S) && w.contains(20 * S) && w.contains(62 * S));
        assert!(!w.contains(21 * S) && !w.contains(9 * S) && !w.contains(66 * S));
    }

    #[test]
    fn errors_say_where() {
        let two = r#"{"a.csv": [], "b.csv": []}"#;
        assert!(matches!(
            LabelWindows::parse(two, None),
            Err(LabelWindowsError::KeyNeeded { count: 2, .. })
        ));
        assert!(matches!(
            LabelWindows::parse(two, Some("c.csv")),
            Err(LabelWindowsError::NoSuchKey { .. })
        ));
        let e = LabelWindows::parse("[[1, 2], [\"soon\", 3]]", None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "entry 2: \"soon\" is not a time (RFC 3339, YYYY-MM-DD HH:MM:SS or an epoch number)"
        );
        let e = LabelWindows::parse("10,20\n30\n", None).unwrap_err();
        assert_eq!(e.to_string(), "line 2: expected a [start, end] pair");
        let e = LabelWindows::parse("10,20\n30,25\n", None).unwrap_err();
        assert!(matches!(e, LabelWindowsError::EndBeforeStart { .. }), "{e}");
        assert!(matches!(
            LabelWindows::parse("{\"a\": [", None),
            Err(LabelWindowsError::Json { line: 1, .. })
        ));
    }

    #[test]
    fn overlapping_windows_merge() {
        let w = LabelWindows::from_ns([(5, 10), (0, 6), (20, 30)]);
        assert_eq!(w.windows(), &[(0, 10), (20, 30)]);
        assert_eq!(w.given(), 3);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in "\\PC{0,120}", key in proptest::option::of("[a-z./]{0,8}")) {
            let _ = LabelWindows::parse(&text, key.as_deref());
        }
    }
}
