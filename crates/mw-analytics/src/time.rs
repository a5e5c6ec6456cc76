//! The time-aware layer around every detector (issue 14, item 2): typical interval, grid
//! fill, gaps and durations. docs/analytics.md ("Time") is the user-facing description.
//!
//! The detectors themselves count rows: a warm-up of 400 rows, a 64-row rolling median, an
//! event of at most 144 rows. That is right for a regular series, whose rows are ticks of a
//! clock. A report-by-exception (RBE) or deadband-compressed series — what MQTT/Sparkplug
//! sources publish — sends a row only when the value changed (by more than the deadband), so
//! its rows are *not* ticks. [`TimeAware`] turns such a series back into the regular series
//! it came from before the detector sees it:
//!
//! 1. **Typical interval.** Learnt from the first [`LEARN_ROWS`] rows (see
//!    [`typical_interval`]) unless given; the rows are held back until then and replayed.
//! 2. **Grid fill** (one variable). A forward step of `k` intervals (`k = round(step /
//!    interval)`, 2 ≤ `k` ≤ `gap_factor`) means the source had `k − 1` ticks it did not send
//!    because the value held (within its deadband): the detector gets a *held* tick
//!    ([`Detector::hold`]) for each — the slow level clamped to within the smallest change
//!    seen of the last value — then the row. At most `gap_factor − 1` ticks per row. Rows of
//!    several variables are not filled (a missing row there is a missed sample; suppressed
//!    values of single tags arrive as missing cells, which the detectors carry forward).
//! 3. **Gaps.** A step longer than `gap_factor` intervals is not filled: the source was
//!    silent, not steady. The detector is told [`Detector::restart`] with the number of
//!    ticks missed (a seasonal phase moves on, runs and sums restart; its model, thresholds
//!    and a running alarm stay), then gets the row.
//! 4. **Time going backwards, duplicate timestamps.** The row is passed on as it is, with
//!    no fill; the next step is measured from it.
//!
//! On a regular series no tick is ever filled and no gap restarts anything: the detector
//! sees exactly the rows it saw before this layer existed, and its outputs are identical.

use std::fmt;
use std::str::FromStr;

use crate::{Contribution, Detector, DetectorKind, Output};

/// Rows the typical interval is learnt from when it is not given.
pub const LEARN_ROWS: usize = 32;
/// A forward step longer than this many typical intervals is a gap, not a held value.
pub const DEFAULT_GAP_FACTOR: u32 = 10;
/// Smallest accepted gap factor (a step of 2 intervals must be fillable).
pub const MIN_GAP_FACTOR: u32 = 2;
/// Largest accepted gap factor (it bounds the ticks filled per row).
pub const MAX_GAP_FACTOR: u32 = 10_000;

const NS_PER_S: i64 = 1_000_000_000;

/// A length given in rows or as a duration (converted with the typical interval).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Length {
    /// This many rows (ticks of the regular series).
    Rows(usize),
    /// This long, in nanoseconds.
    Duration(i64),
}

impl Length {
    /// Rows at `interval_ns` per row: a duration rounds up (at least 1); rows are rows.
    /// A duration without a known interval is `None`.
    pub fn rows(self, interval_ns: Option<i64>) -> Option<usize> {
        match self {
            Length::Rows(n) => Some(n),
            Length::Duration(d) => {
                let i = interval_ns.filter(|&i| i > 0)?;
                let n = (i128::from(d.max(0)) + i128::from(i) - 1) / i128::from(i);
                Some(usize::try_from(n).unwrap_or(usize::MAX).max(1))
            }
        }
    }
}

/// The form [`FromStr`] reads back: `400` (rows) or `2h`.
impl fmt::Display for Length {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Length::Rows(n) => write!(f, "{n}"),
            Length::Duration(d) => f.write_str(&format_duration(d)),
        }
    }
}

/// Error for a length that is neither a row count nor a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid length {text:?} (expected a number of rows, e.g. \"400\", or a whole number and a \
     unit: ms, s, m, h, d or w, e.g. \"2h\")"
)]
pub struct ParseLengthError {
    /// The text that was given.
    pub text: String,
}

/// A duration like `"2h"`: a positive whole number and one unit of `ms`, `s`, `m`
/// (minutes), `h`, `d` or `w` (7 days). Returns nanoseconds.
pub fn parse_duration(s: &str) -> Result<i64, ParseLengthError> {
    let bad = || ParseLengthError { text: s.to_owned() };
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = t.split_at(split);
    let n: i64 = n.parse().map_err(|_| bad())?;
    let unit = match unit.trim() {
        "ms" => NS_PER_S / 1000,
        "s" => NS_PER_S,
        "m" | "min" => 60 * NS_PER_S,
        "h" => 3_600 * NS_PER_S,
        "d" => 86_400 * NS_PER_S,
        "w" => 7 * 86_400 * NS_PER_S,
        _ => return Err(bad()),
    };
    match n.checked_mul(unit) {
        Some(v) if v > 0 => Ok(v),
        _ => Err(bad()),
    }
}

impl FromStr for Length {
    type Err = ParseLengthError;

    /// `"400"` is 400 rows; `"2h"`, `"90s"`, `"3d"` are durations.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
            return t
                .parse()
                .map(Length::Rows)
                .map_err(|_| ParseLengthError { text: s.to_owned() });
        }
        parse_duration(t).map(Length::Duration)
    }
}

/// A duration in the form [`parse_duration`] reads (`2h`, `90s`): the largest unit that
/// divides it exactly.
pub fn format_duration(ns: i64) -> String {
    const UNITS: [(i64, &str); 6] = [
        (7 * 86_400 * NS_PER_S, "w"),
        (86_400 * NS_PER_S, "d"),
        (3_600 * NS_PER_S, "h"),
        (60 * NS_PER_S, "m"),
        (NS_PER_S, "s"),
        (NS_PER_S / 1000, "ms"),
    ];
    for (u, name) in UNITS {
        if ns != 0 && ns % u == 0 {
            return format!("{}{name}", ns / u);
        }
    }
    format!("{ns}ns")
}

/// How a detector treats time. The default learns the interval, fills held ticks and treats
/// steps over [`DEFAULT_GAP_FACTOR`] intervals as gaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeOptions {
    /// Warm-up in rows or as a duration; `None`: [`crate::DEFAULT_WARMUP`] rows.
    pub warmup: Option<Length>,
    /// A forward step longer than this many typical intervals is a gap (clamped to
    /// [`MIN_GAP_FACTOR`]..=[`MAX_GAP_FACTOR`]).
    pub gap_factor: u32,
    /// The typical interval, if known (e.g. the poll interval); learnt when `None`.
    pub interval_ns: Option<i64>,
}

impl Default for TimeOptions {
    fn default() -> Self {
        Self {
            warmup: None,
            gap_factor: DEFAULT_GAP_FACTOR,
            interval_ns: None,
        }
    }
}

/// The typical interval of a series from its steps between consecutive rows: the median of
/// the forward steps no longer than 1.5 × their 10th percentile. For a regular series that
/// is its interval; for a deadband/RBE series, whose steps are whole multiples of the
/// source's interval, it is the source's interval as long as at least a tenth of the rows
/// follow their predecessor directly (the plain median would be the typical *silence*).
/// `None` without a forward step.
pub fn typical_interval(steps: &[i64]) -> Option<i64> {
    let mut fwd: Vec<i64> = steps.iter().copied().filter(|&s| s > 0).collect();
    if fwd.is_empty() {
        return None;
    }
    fwd.sort_unstable();
    let base = fwd[fwd.len() / 10];
    let limit = base.saturating_add(base / 2);
    let n = fwd.partition_point(|&s| s <= limit);
    Some(fwd[(n - 1) / 2])
}

/// What the layer did so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimeReport {
    /// The typical interval in use, once known.
    pub interval_ns: Option<i64>,
    /// The warm-up in rows, once known (a duration needs the interval).
    pub warmup_rows: Option<usize>,
    /// Held ticks given to the detector between rows.
    pub filled: u64,
    /// Gaps: forward steps longer than `gap_factor` intervals.
    pub gaps: u64,
    /// Rows whose time was earlier than the previous row's.
    pub backwards: u64,
    /// Rows whose time equalled the previous row's.
    pub duplicates: u64,
}

/// A detector behind the time-aware layer (module docs).
pub(crate) struct TimeAware {
    kind: DetectorKind,
    n_vars: usize,
    opts: TimeOptions,
    /// Built once the warm-up is known in rows (at the latest after [`LEARN_ROWS`] rows).
    inner: Option<Box<dyn Detector>>,
    /// Rows held back while the interval is learnt (at most [`LEARN_ROWS`]); they are all
    /// warm-up rows (a warm-up is at least [`crate::MIN_WARMUP`] = [`LEARN_ROWS`] rows), so
    /// holding them back changes no output.
    learn: Vec<(i64, Vec<f64>)>,
    learning: bool,
    last_ts: Option<i64>,
    /// The last finite value (one-variable series only: only those are filled).
    held: f64,
    /// Smallest change seen between consecutive values: above a deadband series' deadband
    /// (every value it sends moved by more), so a held value lies within it of the last one
    /// sent. 0 for a series that repeats values.
    band: f64,
    /// A slow level (EWMA of the values sent, weight [`LEVEL_ALPHA`]).
    level: f64,
    report: TimeReport,
}

/// Weight of a new value in the level a held tick leans toward.
const LEVEL_ALPHA: f64 = 0.05;

const WARMING: Output = Output {
    score: 0.0,
    anomalous: false,
    warming_up: true,
};

impl TimeAware {
    pub(crate) fn new(kind: DetectorKind, n_vars: usize, opts: TimeOptions) -> Self {
        let n_vars = n_vars.max(1);
        let opts = TimeOptions {
            gap_factor: opts.gap_factor.clamp(MIN_GAP_FACTOR, MAX_GAP_FACTOR),
            interval_ns: opts.interval_ns.filter(|&i| i > 0),
            ..opts
        };
        let mut s = Self {
            kind,
            n_vars,
            opts,
            inner: None,
            learn: Vec::new(),
            learning: opts.interval_ns.is_none(),
            last_ts: None,
            held: f64::NAN,
            band: f64::INFINITY,
            level: f64::NAN,
            report: TimeReport::default(),
        };
        if !s.learning {
            s.start(opts.interval_ns);
        }
        s
    }

    /// Builds the detector with its warm-up in rows; a duration warm-up without any interval
    /// (time never moved forward) falls back to [`crate::DEFAULT_WARMUP`] rows; at most
    /// [`crate::MAX_WARMUP`] rows.
    fn start(&mut self, interval: Option<i64>) {
        self.report.interval_ns = interval;
        let warmup = self
            .opts
            .warmup
            .map_or(Some(crate::DEFAULT_WARMUP), |w| w.rows(interval))
            .unwrap_or(crate::DEFAULT_WARMUP)
            // the warm-up rows are kept until fitted: a long duration at a short interval
            // must not hold millions of rows
            .min(crate::MAX_WARMUP);
        let inner = crate::build_rows(self.kind, self.n_vars, Some(warmup));
        self.report.warmup_rows = Some(inner.warmup());
        self.inner = Some(inner);
    }

    /// Feeds one row to the detector, with the held ticks or the restart its step calls for.
    fn feed(&mut self, ts: i64, values: &[f64]) -> Output {
        let Some(inner) = self.inner.as_mut() else {
            return WARMING;
        };
        if let Some(last) = self.last_ts {
            let step = ts.saturating_sub(last);
            if step < 0 {
                self.report.backwards += 1;
            } else if step == 0 {
                self.report.duplicates += 1;
            } else if let Some(i) = self.report.interval_ns {
                // Ticks of the source's clock in this step (a late row of a regular series
                // rounds to 1).
                let (step, i) = (i128::from(step), i128::from(i));
                let k = (step + i / 2) / i;
                let gap = i128::from(self.opts.gap_factor);
                if step > i * gap {
                    self.report.gaps += 1;
                    inner.restart(u64::try_from(k - 1).unwrap_or(u64::MAX));
                } else if k >= 2 && self.n_vars == 1 && self.held.is_finite() {
                    // The least surprising value the source can have had: its slow level,
                    // kept within the deadband of the last value it sent.
                    let (s, b, l) = (self.held, self.band, self.level);
                    let tick = [if b.is_finite() && l.is_finite() {
                        l.clamp(s - b, s + b)
                    } else {
                        s
                    }];
                    for t in 1..k.min(gap) {
                        let at = i128::from(last) + t * i;
                        inner.hold(i64::try_from(at).unwrap_or(i64::MAX), &tick);
                        self.report.filled += 1;
                    }
                }
            }
        }
        self.last_ts = Some(ts);
        // Only a one-variable series is filled, so only it needs what a held tick is made of.
        if self.n_vars == 1
            && let Some(&v) = values.first()
            && v.is_finite()
        {
            if self.held.is_finite() {
                self.band = self.band.min((v - self.held).abs());
                self.level += LEVEL_ALPHA * (v - self.level);
            } else {
                self.level = v;
            }
            self.held = v;
        }
        inner.update(ts, values)
    }
}

impl Detector for TimeAware {
    fn name(&self) -> &'static str {
        self.kind.as_str()
    }

    fn n_vars(&self) -> usize {
        self.n_vars
    }

    /// Before the warm-up is known in rows (a duration warm-up, interval still being
    /// learnt): the requested rows, or [`crate::DEFAULT_WARMUP`].
    fn warmup(&self) -> usize {
        match (&self.inner, self.opts.warmup) {
            (Some(d), _) => d.warmup(),
            (None, Some(Length::Rows(n))) => n.max(crate::MIN_WARMUP),
            (None, _) => crate::DEFAULT_WARMUP,
        }
    }

    fn update(&mut self, ts_ns: i64, values: &[f64]) -> Output {
        if !self.learning {
            return self.feed(ts_ns, values);
        }
        self.learn.push((ts_ns, values.to_vec()));
        if self.learn.len() < LEARN_ROWS {
            return WARMING;
        }
        let steps: Vec<i64> = self
            .learn
            .windows(2)
            .map(|w| w[1].0.saturating_sub(w[0].0))
            .collect();
        self.learning = false;
        self.start(typical_interval(&steps));
        let mut out = WARMING;
        for (ts, row) in std::mem::take(&mut self.learn) {
            out = self.feed(ts, &row);
        }
        out
    }

    fn hold(&mut self, ts_ns: i64, values: &[f64]) -> Output {
        self.update(ts_ns, values)
    }

    fn restart(&mut self, missed: u64) {
        if let Some(d) = self.inner.as_mut() {
            d.restart(missed);
        }
    }

    fn contributors(&self, top: usize) -> Vec<Contribution> {
        match &self.inner {
            Some(d) => d.contributors(top),
            None if self.n_vars == 1 && top > 0 => vec![Contribution { var: 0, share: 1.0 }],
            None => Vec::new(),
        }
    }

    fn time_report(&self) -> Option<TimeReport> {
        Some(self.report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_parse_as_rows_or_durations() {
        assert_eq!("400".parse(), Ok(Length::Rows(400)));
        assert_eq!("2h".parse(), Ok(Length::Duration(7_200 * NS_PER_S)));
        assert_eq!(" 90s ".parse(), Ok(Length::Duration(90 * NS_PER_S)));
        assert_eq!("500ms".parse(), Ok(Length::Duration(NS_PER_S / 2)));
        assert_eq!("3d".parse(), Ok(Length::Duration(3 * 86_400 * NS_PER_S)));
        for bad in ["", "h", "2x", "-3h", "0h", "1.5h", "99999999999999w"] {
            assert!(bad.parse::<Length>().is_err(), "{bad:?}");
        }
        assert_eq!(
            Length::Duration(7_200 * NS_PER_S).rows(Some(60 * NS_PER_S)),
            Some(120)
        );
        assert_eq!(
            Length::Duration(61 * NS_PER_S).rows(Some(60 * NS_PER_S)),
            Some(2)
        );
        assert_eq!(Length::Duration(NS_PER_S).rows(None), None);
        assert_eq!(Length::Rows(7).rows(None), Some(7));
        assert_eq!(format_duration(7_200 * NS_PER_S), "2h");
        for l in [Length::Rows(400), Length::Duration(90 * NS_PER_S)] {
            assert_eq!(l.to_string().parse(), Ok(l));
        }
        assert_eq!(format_duration(90 * NS_PER_S), "90s");
    }

    #[test]
    fn the_typical_interval_of_a_deadband_series_is_its_source_interval() {
        // Steps of 1 s with most rows suppressed: 1, 3, 2, 5, 1, 4, …
        let steps: Vec<i64> = (0..40)
            .map(|i| [1, 3, 2, 5, 1, 4, 7, 2][i % 8] * NS_PER_S)
            .collect();
        assert_eq!(typical_interval(&steps), Some(NS_PER_S));
        // Jitter around 10 s.
        let steps: Vec<i64> = (0..40)
            .map(|i| (10_000 + (i * 37 % 41) - 20) * 1_000_000)
            .collect();
        let t = typical_interval(&steps).unwrap_or(0);
        assert!((t - 10 * NS_PER_S).abs() < NS_PER_S / 20, "{t}");
        assert_eq!(typical_interval(&[0, -5, 0]), None);
    }
}
