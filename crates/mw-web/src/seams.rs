//! What the HTTP layer reads and controls, as traits it defines and the binary implements: the
//! tag store (the live store, and the historian when configured), where HTTP writes go
//! ([`Ingest`]), the simulator's faults (demo only) and the live anomaly detectors. The types here are plain Rust values built from `mw-model` types;
//! only this crate turns them into JSON.

use mw_model::{Sample, TagPath};

/// Where the API reads tag values from.
///
/// The first four methods are what the live store answers (latest value and a bounded recent
/// window per tag). [`TagStore::range`] and [`TagStore::aggregate`] are the queries of a store
/// with history; their default implementations return [`QueryError::Unsupported`].
pub trait TagStore: Send + Sync {
    /// The latest sample of a tag, by source timestamp; `None` if the tag has no data.
    fn latest(&self, tag: &TagPath) -> Option<Sample>;
    /// The latest sample of every tag with data, sorted by path.
    fn latest_all(&self) -> Vec<Sample>;
    /// Up to `limit` most recent samples of a tag, oldest first; `None` if the tag is unknown.
    fn recent(&self, tag: &TagPath, limit: usize) -> Option<Vec<Sample>>;
    /// How many recent samples per tag [`TagStore::recent`] can return at most.
    fn window(&self) -> usize;

    /// Up to `limit` samples of a tag with `from_ns <= source_ts < to_ns`, oldest first.
    fn range(
        &self,
        tag: &TagPath,
        from_ns: i64,
        to_ns: i64,
        limit: usize,
    ) -> Result<Vec<Sample>, QueryError> {
        let _ = (tag, from_ns, to_ns, limit);
        Err(QueryError::Unsupported { query: "range" })
    }

    /// One point per `step_ns` bucket of `[from_ns, to_ns)` that holds good samples of a tag,
    /// oldest first, each the `aggregate` of the bucket's good numeric samples.
    fn aggregate(
        &self,
        tag: &TagPath,
        from_ns: i64,
        to_ns: i64,
        step_ns: i64,
        aggregate: Aggregate,
    ) -> Result<Vec<AggregatePoint>, QueryError> {
        let _ = (tag, from_ns, to_ns, step_ns, aggregate);
        Err(QueryError::Unsupported { query: "aggregate" })
    }

    /// Every tag with stored or live data, sorted (what a glob or regex query matches against).
    fn paths(&self) -> Vec<TagPath> {
        self.latest_all().into_iter().map(|s| s.tag).collect()
    }
}

/// Why an [`Ingest`] write was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    /// The sample at `index` (of the batch handed to [`Ingest::write`]) may not be written; the
    /// message says why (a tag a source owns, a type that differs from the tag's, creating tags
    /// turned off). Nothing of the batch was written. Answered with 400.
    #[error("{message}")]
    Rejected { index: usize, message: String },
    /// The batch was sent but not committed by every durable sink (dropped or failed). It may
    /// be partly stored; the client should retry (same timestamps overwrite). Answered with 503.
    #[error("not stored: {0}")]
    NotDurable(String),
    /// The process is shutting down. Answered with 503.
    #[error("shutting down: the write was not accepted")]
    Closed,
}

/// What an accepted write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestReceipt {
    /// Samples committed.
    pub samples: usize,
    /// Tags the write created.
    pub created_tags: usize,
}

/// The future [`Ingest::write`] returns.
pub type IngestFuture<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<IngestReceipt, IngestError>> + Send + 'a>,
>;

/// Where HTTP writes (line protocol) go (implemented by the binary over the bus).
pub trait Ingest: Send + Sync {
    /// Checks every sample, sends the batch through the pipeline and resolves once every durable
    /// sink committed it (the historian, under its fsync policy) — only then may the client be
    /// told it is stored. A batch is accepted or refused whole.
    fn write(&self, samples: Vec<Sample>) -> IngestFuture<'_>;
}

/// How [`TagStore::aggregate`] reduces the samples of one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Aggregate {
    Min,
    Max,
    Avg,
    Sum,
    /// Number of good samples.
    Count,
    /// The earliest sample's value.
    First,
    /// The latest sample's value.
    Last,
    /// Time-weighted average: each good sample's value holds until the next one (what process
    /// engineers expect of an analog tag sampled irregularly); the historian's docs define the
    /// bucket edges exactly.
    Twa,
}

impl Aggregate {
    pub const ALL: [Aggregate; 8] = [
        Aggregate::Min,
        Aggregate::Max,
        Aggregate::Avg,
        Aggregate::Sum,
        Aggregate::Count,
        Aggregate::First,
        Aggregate::Last,
        Aggregate::Twa,
    ];

    /// The aggregate named `name` (`min`, `max`, `avg`, `sum`, `count`, `first`, `last`, `twa`).
    pub fn from_name(name: &str) -> Option<Aggregate> {
        Aggregate::ALL.into_iter().find(|a| a.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Aggregate::Min => "min",
            Aggregate::Max => "max",
            Aggregate::Avg => "avg",
            Aggregate::Sum => "sum",
            Aggregate::Count => "count",
            Aggregate::First => "first",
            Aggregate::Twa => "twa",
            Aggregate::Last => "last",
        }
    }
}

impl std::fmt::Display for Aggregate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One bucket of an aggregate query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AggregatePoint {
    /// Start of the bucket, ns since the Unix epoch.
    pub start_ns: i64,
    /// The aggregate of the bucket (for [`Aggregate::Count`], the count).
    pub value: f64,
    /// Good samples in the bucket.
    pub count: u64,
}

/// Why a [`TagStore`] query was not answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The store keeps no history to answer this kind of query (the live store keeps only a
    /// recent window per tag).
    #[error(
        "{query} queries are not supported by this tag store: it keeps only a recent window per tag (history needs the historian)"
    )]
    Unsupported { query: &'static str },
    #[error("unknown tag {0}")]
    UnknownTag(TagPath),
    #[error("invalid time range: from {from_ns} ns must be before to {to_ns} ns")]
    InvalidRange { from_ns: i64, to_ns: i64 },
    #[error("invalid aggregation step {step_ns} ns: must be > 0")]
    InvalidStep { step_ns: i64 },
}

/// A fault to inject into the simulator, as the API receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultSpec {
    /// Full asset path or its unique last segment (`pump1`, `gd2`).
    pub asset: String,
    /// Fault kind name (`gas_release`, `sensor_stuck`, …); the implementation parses it.
    pub kind: String,
    pub duration_s: f64,
    /// Point name for sensor faults; `None` picks the asset's default point.
    pub point: Option<String>,
}

/// A simulator fault (active or past), as the API lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultInfo {
    pub id: u64,
    pub kind: String,
    /// Canonical asset path.
    pub asset: String,
    /// The point a sensor fault hits; `None` for process faults.
    pub point: Option<String>,
    /// `scheduled`, `random` or `api`.
    pub origin: String,
    pub active: bool,
    /// On the simulator's own clock, ns since the Unix epoch.
    pub start_ns: i64,
    pub end_ns: i64,
    /// Simulator seconds since its start.
    pub start_s: f64,
    pub end_s: f64,
    /// The same instants on the wall clock (the time base of the tags), ns since the Unix epoch.
    pub wall_start_ns: i64,
    pub wall_end_ns: i64,
}

/// The simulator's faults (implemented by the binary over the demo's in-process simulator).
pub trait FaultControl: Send + Sync {
    /// Starts a fault now. The error is the user-facing reason it was refused (unknown kind,
    /// asset or point, bad duration), answered with 400.
    fn inject(&self, spec: FaultSpec) -> Result<FaultInfo, String>;
    /// Every fault that has started, by id.
    fn list(&self) -> Vec<FaultInfo>;
}

/// One live anomaly detector, as the API lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorInfo {
    pub asset: String,
    pub kind: String,
    /// Full paths of the input tags.
    pub inputs: Vec<String>,
    pub score_tag: String,
    pub flag_tag: String,
}

/// The live anomaly detectors (implemented by the binary's analytics processor).
pub trait DetectorControl: Send + Sync {
    fn list(&self) -> Vec<DetectorInfo>;
    /// Asks every detector of `asset` (full path) to forget what it learnt and warm up again on
    /// the data from now on — after a repair or a deliberate change of operating point. Takes
    /// effect with the next batch of inputs. Returns how many detectors were asked.
    fn relearn(&self, asset: &str) -> usize;
}

/// The audit trail, for `GET /api/v1/audit` (implemented by the binary over `mw-security`).
pub trait AuditLog: Send + Sync {
    /// The newest `limit` records, oldest first.
    fn recent(&self, limit: usize) -> Result<Vec<mw_security::audit::AuditRecord>, String>;
}
