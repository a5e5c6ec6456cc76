/// Why a batch of line protocol was rejected: the 1-based line and column (in characters) of the
/// problem and what was expected there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct LineError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// An unknown `precision` parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown precision {0:?} (expected one of ns, us, ms, s; InfluxDB 1.x also accepts n, u, m, h)"
)]
pub struct PrecisionError(pub String);

/// Reading a stream failed: I/O (including invalid UTF-8) or a malformed line.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("line {line}: {source}")]
    Io {
        line: usize,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Line(#[from] LineError),
}

/// A sample that has no line-protocol form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    #[error("tag {tag}: {value} is not a finite number; line protocol has no NaN or infinity")]
    NonFinite { tag: String, value: String },
    #[error("tag {tag}: string value contains a newline, which line protocol cannot carry")]
    Newline { tag: String },
}
