//! Detection metrics: pointwise (per row) and event-level (alarm onsets, labelled windows).

/// Pointwise confusion counts (predicted = the detector's `anomalous`, actual = the label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Confusion {
    /// Alarm on an anomalous row.
    pub tp: u64,
    /// Alarm on a normal row.
    pub fp: u64,
    /// No alarm on a normal row.
    pub tn: u64,
    /// No alarm on an anomalous row.
    pub fn_: u64,
}

impl Confusion {
    /// Counts one row.
    pub fn add(&mut self, predicted: bool, actual: bool) {
        match (predicted, actual) {
            (true, true) => self.tp += 1,
            (true, false) => self.fp += 1,
            (false, false) => self.tn += 1,
            (false, true) => self.fn_ += 1,
        }
    }

    /// Adds another confusion (e.g. to sum over files).
    pub fn merge(&mut self, other: &Confusion) {
        self.tp += other.tp;
        self.fp += other.fp;
        self.tn += other.tn;
        self.fn_ += other.fn_;
    }

    /// The metrics of these counts.
    pub fn metrics(&self) -> Metrics {
        Metrics::from_counts(self.tp, self.fp, self.tn, self.fn_)
    }
}

/// Precision, recall, F1, false-alarm rate and missed-alarm rate, as fractions in `[0, 1]`.
///
/// A ratio whose denominator is zero is reported as 0 (e.g. precision when nothing was
/// flagged, FAR when no row was normal).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metrics {
    /// TP / (TP + FP).
    pub precision: f64,
    /// TP / (TP + FN).
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
    /// False-alarm rate FP / (FP + TN).
    pub far: f64,
    /// Missed-alarm rate FN / (FN + TP).
    pub mar: f64,
    /// True positives.
    pub tp: u64,
    /// False positives.
    pub fp: u64,
    /// True negatives.
    pub tn: u64,
    /// False negatives.
    pub fn_: u64,
}

fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

impl Metrics {
    /// Metrics from raw counts.
    pub fn from_counts(tp: u64, fp: u64, tn: u64, fn_: u64) -> Self {
        let precision = ratio(tp, tp + fp);
        let recall = ratio(tp, tp + fn_);
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        Self {
            precision,
            recall,
            f1,
            far: ratio(fp, fp + tn),
            mar: ratio(fn_, fn_ + tp),
            tp,
            fp,
            tn,
            fn_,
        }
    }
}

/// A run of consecutive flagged rows (what an operator sees as one alarm).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlaggedRange {
    /// Input line of the first flagged row.
    pub first_line: u64,
    /// Time of the first flagged row (ns since the epoch).
    pub start_ns: i64,
    /// Time of the last flagged row.
    pub end_ns: i64,
    /// Flagged rows in the run.
    pub rows: u64,
}

/// Alarm onsets and flagged ranges over the scored rows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Alarms {
    /// Runs of flagged rows (an onset is the first row of a run).
    pub onsets: u64,
    /// The first [`MAX_RANGES`] runs.
    pub ranges: Vec<FlaggedRange>,
    /// Runs after those.
    pub more: u64,
}

/// How many flagged ranges a summary keeps.
pub const MAX_RANGES: usize = 5;

/// Event-level metrics: alarms as onsets, labelled anomalies as windows (runs of consecutive
/// labelled scored rows).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventMetrics {
    /// Alarm onsets (first row of each run of flagged rows).
    pub onsets: u64,
    /// Onsets on a row not labelled anomalous.
    pub false_onsets: u64,
    /// `false_onsets` per 1 000 scored rows.
    pub false_onsets_per_1000_rows: f64,
    /// `false_onsets` per day of scored time (earliest to latest scored row); `None` when that
    /// span is zero.
    pub false_onsets_per_day: Option<f64>,
    /// Labelled windows.
    pub windows: u64,
    /// Windows with at least one flagged row.
    pub caught: u64,
    /// Mean, over caught windows, of the scored rows from the window's first row to its first
    /// flagged row (0 when the window starts flagged); `None` when none was caught.
    pub mean_delay_rows: Option<f64>,
    /// The same delay in nanoseconds of the rows' timestamps.
    pub mean_delay_ns: Option<f64>,
}

/// Accumulates [`Alarms`] and [`EventMetrics`] over scored rows, in file order.
#[derive(Debug, Clone, Default)]
pub struct EventCounter {
    rows: u64,
    min_ns: Option<i64>,
    max_ns: Option<i64>,
    flagged: bool,
    alarms: Alarms,
    open: Option<FlaggedRange>,
    false_onsets: u64,
    labelled: bool,
    /// The open labelled window: its first row's index and time, and whether it was caught.
    window: Option<(u64, i64, bool)>,
    windows: u64,
    caught: u64,
    delay_rows: u64,
    delay_ns: i128,
}

impl EventCounter {
    /// Counts one scored row: its input line, time, label (if labels were given) and flag.
    pub fn push(&mut self, line: u64, ts_ns: i64, label: Option<bool>, flagged: bool) {
        let idx = self.rows;
        self.rows += 1;
        self.min_ns = Some(self.min_ns.map_or(ts_ns, |m| m.min(ts_ns)));
        self.max_ns = Some(self.max_ns.map_or(ts_ns, |m| m.max(ts_ns)));
        if flagged && !self.flagged {
            self.alarms.onsets += 1;
            if label == Some(false) {
                self.false_onsets += 1;
            }
            self.open = Some(FlaggedRange {
                first_line: line,
                start_ns: ts_ns,
                end_ns: ts_ns,
                rows: 0,
            });
        }
        if flagged && let Some(r) = &mut self.open {
            r.end_ns = ts_ns;
            r.rows += 1;
        }
        if !flagged {
            self.close_range();
        }
        self.flagged = flagged;

        self.labelled |= label.is_some();
        match (label == Some(true), &mut self.window) {
            (true, None) => {
                self.windows += 1;
                self.window = Some((idx, ts_ns, false));
            }
            (false, Some(_)) => self.window = None,
            _ => {}
        }
        if flagged
            && let Some((start, start_ns, caught)) = &mut self.window
            && !*caught
        {
            *caught = true;
            self.caught += 1;
            self.delay_rows += idx - *start;
            self.delay_ns += i128::from(ts_ns) - i128::from(*start_ns);
        }
    }

    fn close_range(&mut self) {
        if let Some(r) = self.open.take() {
            if self.alarms.ranges.len() < MAX_RANGES {
                self.alarms.ranges.push(r);
            } else {
                self.alarms.more += 1;
            }
        }
    }

    /// The alarms, and the event metrics when any row had a label.
    pub fn finish(mut self) -> (Alarms, Option<EventMetrics>) {
        self.close_range();
        let events = self.labelled.then(|| {
            let span_ns = match (self.min_ns, self.max_ns) {
                (Some(a), Some(b)) => b.saturating_sub(a),
                _ => 0,
            };
            let caught = (self.caught > 0).then_some(self.caught as f64);
            EventMetrics {
                onsets: self.alarms.onsets,
                false_onsets: self.false_onsets,
                false_onsets_per_1000_rows: 1000.0 * ratio(self.false_onsets, self.rows),
                false_onsets_per_day: (span_ns > 0)
                    .then(|| self.false_onsets as f64 * 86_400e9 / span_ns as f64),
                windows: self.windows,
                caught: self.caught,
                mean_delay_rows: caught.map(|c| self.delay_rows as f64 / c),
                mean_delay_ns: caught.map(|c| self.delay_ns as f64 / c),
            }
        });
        (self.alarms, events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_counts() {
        let m = Metrics::from_counts(6, 2, 10, 4);
        assert_eq!(m.precision, 0.75);
        assert_eq!(m.recall, 0.6);
        assert!((m.f1 - 2.0 * 0.75 * 0.6 / 1.35).abs() < 1e-12);
        assert_eq!(m.far, 2.0 / 12.0);
        assert_eq!(m.mar, 0.4);
    }

    #[test]
    fn empty_counts_are_zero_not_nan() {
        let m = Confusion::default().metrics();
        assert_eq!(
            (m.precision, m.recall, m.f1, m.far, m.mar),
            (0.0, 0.0, 0.0, 0.0, 0.0)
        );
    }
}
