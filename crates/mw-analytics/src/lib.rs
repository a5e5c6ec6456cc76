//! Streaming anomaly detection for Millwright, and the backtest library behind
//! `millwright backtest`.
//!
//! Every detector is **pure, deterministic and causal**: the output for a row depends only
//! on that row and the rows before it, never on the wall clock, threads or randomness.
//! Memory per detector is bounded by its window(s), documented on each [`DetectorKind`].
//! The crate does no I/O of its own: [`backtest`] reads and writes through
//! `impl Read`/`impl Write` (plus one path-taking convenience function).
//!
//! ```
//! use mw_analytics::{build, DetectorKind};
//!
//! let mut det = build(DetectorKind::Auto, 1, Some(100));
//! let mut alarms = 0;
//! for t in 0..300i64 {
//!     // A deterministic wiggle with a spike at row 250.
//!     let x = ((t * 7919) % 101) as f64 / 101.0 + if t == 250 { 25.0 } else { 0.0 };
//!     let out = det.update(t * 1_000_000_000, &[x]);
//!     assert!((0.0..=1.0).contains(&out.score));
//!     if out.anomalous {
//!         alarms += 1;
//!     }
//! }
//! assert!(alarms > 0);
//! ```
//!
//! # Common behaviour
//!
//! * **Warm-up.** The first `warmup` usable rows only train the detector: the output is
//!   `score = 0`, `anomalous = false`, `warming_up = true`. At the end of the warm-up the
//!   model is fitted and the alarm thresholds are derived from the warm-up itself (see
//!   [`ThresholdRule`]), so no labels and no per-dataset tuning are needed.
//! * **Score.** Each detector computes one or more raw statistics ("heads"), divides each by
//!   its threshold and takes the largest ratio `ρ`; `score = ρ / (1 + ρ)`, so 0.5 means
//!   "at the threshold".
//! * **Alarm.** `anomalous` follows the [`AlarmRule`]: raised by `k` of `n` exceedances or
//!   one large one, released after a run of quiet rows.
//!   The univariate `auto` has its own event rule and thresholds (peaks-over-threshold): its
//!   alarms end, at the latest after 144 rows (see [`DetectorKind::Auto`]).
//! * **Time.** [`build`] puts every detector behind the time-aware layer ([`time`]): it
//!   learns the typical interval, fills the ticks a deadband or report-by-exception source
//!   did not send (one variable), restarts short windows after a gap longer than
//!   `gap_factor` intervals and converts a duration warm-up to rows. On a regular series it
//!   changes nothing.
//! * **Missing values.** A non-finite value (NaN, ±∞) is missing. Multivariate detectors
//!   carry that variable's last finite value forward; a row in which nothing is finite,
//!   or a variable that has never been seen, makes the row unusable: the state does not
//!   change and the previous output is returned again. Univariate detectors treat every
//!   non-finite value as an unusable row. Extra values beyond `n_vars` are ignored and
//!   absent ones are missing.

mod alarm;
pub mod backtest;
mod calibrate;
pub mod config;
mod engine;
mod linalg;
mod multivariate;
mod spot;
mod stats;
pub mod time;
mod univariate;

use std::fmt;
use std::str::FromStr;

pub use alarm::AlarmRule;
pub use calibrate::ThresholdRule;
pub use multivariate::PcaConfig;
pub use time::{Length, TimeOptions, TimeReport};
pub use univariate::{CusumConfig, EwmaConfig, MadConfig, SeasonalConfig};

/// Warm-up length used when the caller does not choose one.
pub const DEFAULT_WARMUP: usize = 400;
/// Longest warm-up in rows (the rows are kept until the model is fitted): a duration warm-up
/// that converts to more is cut to this, as `[[detectors]] warmup` in rows is bounded by it.
pub const MAX_WARMUP: usize = 1_000_000;
/// Shortest warm-up any detector accepts; smaller requests are raised to this.
pub const MIN_WARMUP: usize = 32;

/// What a detector says about one row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Output {
    /// Anomaly score in `[0, 1]`; 0.5 is the alarm threshold.
    pub score: f64,
    /// Whether the alarm is raised for this row (after persistence and hysteresis).
    pub anomalous: bool,
    /// The row was used for training only (never alarms, score 0).
    pub warming_up: bool,
}

/// How much one input variable contributed to the latest row's anomaly score: the
/// explanation an operator reads next to an alarm ("which of the asset's sensors moved").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Contribution {
    /// Index of the variable in the row, in the order the detector was built with.
    pub var: usize,
    /// Its share of the row's anomaly statistic, in `[0, 1]`; the shares of all variables
    /// sum to at most 1.
    pub share: f64,
}

/// A streaming anomaly detector over rows of `n_vars` values.
pub trait Detector: Send {
    /// Short stable name, the same as the [`DetectorKind`] it was built from.
    fn name(&self) -> &'static str;
    /// Number of values per row this detector was built for.
    fn n_vars(&self) -> usize;
    /// Number of usable rows consumed by the warm-up.
    fn warmup(&self) -> usize;
    /// Scores one row. `ts_ns` is the row's time in nanoseconds since the Unix epoch. The
    /// detectors [`build`] returns are time-aware (module [`time`]): they fill the ticks a
    /// deadband or report-by-exception source did not send and handle gaps; the inner
    /// detectors count ticks of that regular grid.
    fn update(&mut self, ts_ns: i64, values: &[f64]) -> Output;
    /// A tick at which the source sent nothing because its value held (within its deadband):
    /// `values` is the layer's estimate of it (close to the last values sent). Scored like
    /// [`Detector::update`] except that a held value is no evidence of a stuck sensor (the
    /// stuck-sensor test counts only values that were sent) and, in the univariate `auto`,
    /// no observation of the noise (scale and tails do not learn from it). The default is
    /// [`Detector::update`].
    fn hold(&mut self, ts_ns: i64, values: &[f64]) -> Output {
        self.update(ts_ns, values)
    }
    /// The series resumes after a gap of `missed` ticks (longer than the gap factor): a
    /// seasonal baseline moves its phase on by `missed`, runs of equal values restart, and
    /// the `ewma`/`cusum` sums restart; the model, the thresholds, a rolling level and a
    /// running alarm carry on (the rows after the gap are judged against what was known
    /// before it). The default does nothing.
    fn restart(&mut self, _missed: u64) {}
    /// What the time-aware layer did (interval, fills, gaps); `None` for a detector without it.
    fn time_report(&self) -> Option<TimeReport> {
        None
    }
    /// The variables that contributed most to the latest row's score, largest share first,
    /// at most `top` of them (empty before the first scored row). Callers ask at an alarm
    /// onset, not on every row: implementations may allocate. The default names the only
    /// variable of a univariate detector and nothing for several.
    fn contributors(&self, top: usize) -> Vec<Contribution> {
        if self.n_vars() == 1 && top > 0 {
            vec![Contribution { var: 0, share: 1.0 }]
        } else {
            Vec::new()
        }
    }
}

/// The detectors [`build`] knows, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DetectorKind {
    /// The default: no labels, no tuning. One variable: a forecasting residual (seasonal
    /// per-phase median, or a 64-row rolling median when not periodic) with a point head and
    /// an EWMA drift head, each thresholded by peaks-over-threshold (a generalized Pareto
    /// tail), alarms shaped as events that end (at the latest after 144 rows, when the new
    /// state becomes the normal), plus the stuck-sensor test; memory O(warmup + period)
    /// (module `univariate::auto`, docs/analytics.md). Several
    /// variables: PCA T² and Q on the raw rows and on 8- and 32-row means (variables that
    /// wander during warm-up are high-passed first), plus the stuck-sensor test on every
    /// variable; memory O((32 + n_vars) · n_vars).
    #[default]
    Auto,
    /// Rolling median / MAD robust z-score. Memory O(window).
    Mad,
    /// EWMA control chart around a robust warm-up reference. Memory O(1) after warm-up.
    Ewma,
    /// Two-sided CUSUM around a robust warm-up reference. Memory O(1) after warm-up.
    Cusum,
    /// Seasonal baseline with the period detected by autocorrelation; falls back to the
    /// rolling median when the warm-up shows no period. Memory O(period · cycles).
    Seasonal,
    /// PCA on robustly standardized values with Hotelling T² and SPE/Q, refreshed every
    /// `warmup` rows on the recent rows judged normal. Memory O(warmup · n_vars + n_vars²).
    Pca,
}

impl DetectorKind {
    /// Every kind, in documentation order.
    pub const ALL: [DetectorKind; 6] = [
        DetectorKind::Auto,
        DetectorKind::Mad,
        DetectorKind::Ewma,
        DetectorKind::Cusum,
        DetectorKind::Seasonal,
        DetectorKind::Pca,
    ];

    /// The name used by [`FromStr`] and [`fmt::Display`].
    pub fn as_str(self) -> &'static str {
        match self {
            DetectorKind::Auto => "auto",
            DetectorKind::Mad => "mad",
            DetectorKind::Ewma => "ewma",
            DetectorKind::Cusum => "cusum",
            DetectorKind::Seasonal => "seasonal",
            DetectorKind::Pca => "pca",
        }
    }
}

impl fmt::Display for DetectorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for an unknown detector name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown detector {name:?} (expected one of: auto, mad, ewma, cusum, seasonal, pca)")]
pub struct ParseDetectorKindError {
    /// The name that was given.
    pub name: String,
}

impl FromStr for DetectorKind {
    type Err = ParseDetectorKindError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        DetectorKind::ALL
            .into_iter()
            .find(|k| k.as_str() == lower)
            .ok_or_else(|| ParseDetectorKindError { name: s.to_owned() })
    }
}

/// Builds a detector of `kind` with default parameters for rows of `n_vars` values
/// (at least 1). `warmup` defaults to [`DEFAULT_WARMUP`] and is raised to at least
/// [`MIN_WARMUP`].
///
/// Univariate kinds (`mad`, `ewma`, `cusum`, `seasonal`) given several variables run one
/// instance per variable; the row's score is the largest and it is anomalous if any is.
/// That row counts as warming up only while every variable still is.
///
/// The detector is time-aware with the default [`TimeOptions`] (see [`build_timed`]).
pub fn build(kind: DetectorKind, n_vars: usize, warmup: Option<usize>) -> Box<dyn Detector> {
    build_timed(
        kind,
        n_vars,
        &TimeOptions {
            warmup: warmup.map(Length::Rows),
            ..TimeOptions::default()
        },
    )
}

/// [`build`] with the warm-up in rows or as a duration, a gap factor and, if known, the
/// typical interval (module [`time`], docs/analytics.md "Time").
pub fn build_timed(kind: DetectorKind, n_vars: usize, opts: &TimeOptions) -> Box<dyn Detector> {
    Box::new(time::TimeAware::new(kind, n_vars, *opts))
}

/// The detector itself, counting rows, without the time-aware layer.
pub(crate) fn build_rows(
    kind: DetectorKind,
    n_vars: usize,
    warmup: Option<usize>,
) -> Box<dyn Detector> {
    let n_vars = n_vars.max(1);
    let warmup = warmup.unwrap_or(DEFAULT_WARMUP).max(MIN_WARMUP);
    let per_var = |make: &dyn Fn() -> Box<dyn Detector>| -> Box<dyn Detector> {
        if n_vars == 1 {
            make()
        } else {
            Box::new(engine::PerVariable::new(
                kind.as_str(),
                (0..n_vars).map(|_| make()).collect(),
            ))
        }
    };
    match kind {
        DetectorKind::Auto if n_vars == 1 => univariate::auto(warmup),
        DetectorKind::Auto => multivariate::auto(n_vars, warmup),
        DetectorKind::Mad => per_var(&|| univariate::mad(MadConfig::default(), warmup)),
        DetectorKind::Ewma => per_var(&|| univariate::ewma(EwmaConfig::default(), warmup)),
        DetectorKind::Cusum => per_var(&|| univariate::cusum(CusumConfig::default(), warmup)),
        DetectorKind::Seasonal => {
            per_var(&|| univariate::seasonal(SeasonalConfig::default(), warmup))
        }
        DetectorKind::Pca => multivariate::pca(PcaConfig::default(), n_vars, warmup),
    }
}
