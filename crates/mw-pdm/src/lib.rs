//! Predictive maintenance: remaining useful life (RUL).
//!
//! - [`read_runs`] reads run-to-failure histories ([`Format::Cmapss`] NASA turbofan text, or a generic
//!   [`Format::Csv`] layout) into [`Run`]s, rejecting malformed input with line and column.
//! - [`train`] fits a [`Model`]: per-condition normalised signals, a linear health indicator, trailing-window
//!   features, and a histogram gradient-boosted tree ensemble on min(RUL, cap); the uncertainty band comes from
//!   residual quantiles of a by-unit cross-validation. [`Model::predict_last`], [`Model::save`], [`Model::load`].
//! - [`OnlineRul`] applies a model to one live asset cycle by cycle; [`TrendRul`] needs no model at all and
//!   extrapolates one health indicator's trend to a threshold; [`LiveRul`] turns that into a live estimate with a
//!   horizon, a significance test and a bounded rate of change.
//! - [`eval`] holds the hold-out/truncation protocol used in `docs/pdm.md`.
//!
//! Pure library: no files, no threads beyond `train`'s scoped workers, no global state. Everything is
//! deterministic for a given seed.

mod data;
mod error;
pub mod eval;
mod features;
mod gbm;
mod live;
mod model;
mod rng;
mod trend;

pub use data::{CsvOptions, Format, Run, read_runs, write_predictions};
pub use error::{InputProblem, Location, PdmError};
pub use gbm::GbmParams;
pub use live::{LiveEstimate, LiveOptions, LiveRul, RulState};
pub use model::{Model, ModelInfo, OnlineRul, Prediction, TrainOptions, train};
pub use trend::{TrendFit, TrendKind, TrendRul};
