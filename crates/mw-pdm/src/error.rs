//! The one error type of the crate.

use std::fmt;

/// Everything that can go wrong reading data, training, predicting or loading a model.
///
/// Input errors carry the 1-based line and, where one field is at fault, the 1-based column (field number) and
/// the column's name, so a message reads `line 14, column 3 (s2): "abc" is not a number`. The file name is not
/// known here (the reader takes any `Read`); the caller adds it.
#[derive(Debug, thiserror::Error)]
pub enum PdmError {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),

    #[error("{at}: {problem}")]
    Input { at: Location, problem: InputProblem },

    #[error("unknown format \"{found}\" (expected one of: cmapss, csv)")]
    UnknownFormat { found: String },

    #[error("invalid option {name}: {reason}")]
    InvalidOption { name: &'static str, reason: String },

    #[error("not enough training data: {reason}")]
    NotEnoughData { reason: String },

    #[error("run \"{unit}\" has {found} columns {names:?} but {expected} were expected")]
    InconsistentRuns {
        unit: String,
        expected: usize,
        found: usize,
        names: Vec<String>,
    },

    #[error("run \"{unit}\" lacks column \"{column}\" that the model was trained with")]
    MissingInput { unit: String, column: String },

    #[error("run \"{unit}\" has no cycles")]
    EmptyRun { unit: String },

    #[error("run \"{unit}\", cycle {cycle}: value of \"{column}\" is not finite")]
    NonFiniteValue {
        unit: String,
        cycle: f64,
        column: String,
    },

    #[error("online input rejected: {reason}")]
    OnlineInput { reason: String },

    #[error("not a millwright RUL model: {reason}")]
    ModelFormat { reason: String },

    #[error("model file version {found} is not supported (this build reads version {supported})")]
    ModelVersion { found: u32, supported: u32 },
}

/// Where in the input a problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// 1-based line number.
    pub line: usize,
    /// 1-based column (field) number, if one field is at fault.
    pub column: Option<usize>,
    /// The column's name (from the header, or the fixed C-MAPSS names).
    pub name: Option<String>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}", self.line)?;
        if let Some(c) = self.column {
            write!(f, ", column {c}")?;
        }
        if let Some(n) = &self.name {
            write!(f, " ({n})")?;
        }
        Ok(())
    }
}

/// What is wrong with one place of the input.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InputProblem {
    #[error("input is empty (no data rows)")]
    Empty,
    #[error("line is not valid UTF-8")]
    NotUtf8,
    #[error("expected {expected} fields, found {found}")]
    Ragged { expected: usize, found: usize },
    #[error("\"{text}\" is not a number")]
    NotANumber { text: String },
    #[error("value is missing (empty field)")]
    MissingValue,
    #[error("\"{text}\" is not a finite number (NaN and infinities are rejected)")]
    NonFinite { text: String },
    #[error("header has no {wanted} column (found: {found})")]
    MissingColumn { wanted: String, found: String },
    #[error("column name \"{name}\" appears twice in the header")]
    DuplicateColumn { name: String },
    #[error("header has no feature columns besides the unit and time columns")]
    NoFeatures,
    #[error(
        "unit \"{unit}\": cycle {cycle} does not follow cycle {previous} (cycles must strictly increase within a unit)"
    )]
    CycleOrder {
        unit: String,
        previous: f64,
        cycle: f64,
    },
    #[error("unit id is empty")]
    EmptyUnit,
    #[error("delimiter {delimiter:?} is not a single-byte (ASCII) character")]
    BadDelimiter { delimiter: char },
}

impl PdmError {
    pub(crate) fn input(
        line: usize,
        column: Option<usize>,
        name: Option<&str>,
        problem: InputProblem,
    ) -> Self {
        PdmError::Input {
            at: Location {
                line,
                column,
                name: name.map(str::to_owned),
            },
            problem,
        }
    }
}
