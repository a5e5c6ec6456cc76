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
    /// The string tag the detector publishes its contributors to at each alarm onset.
    pub contributors_tag: String,
    pub state: DetectorState,
}

/// What a live detector is doing now.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DetectorState {
    /// Still learning what normal looks like.
    pub warming_up: bool,
    /// Rows the warm-up window holds when full.
    pub warmup_rows: usize,
    /// Rows still needed at least before the warm-up can finish (0 once warmed up).
    pub warmup_rows_left: usize,
    /// `warmup_rows_left` in seconds at the inputs' recent interval, when known.
    pub warmup_seconds_left: Option<f64>,
    /// Why the warm-up has not finished although its window is full (the data is unstable).
    pub unstable: Option<String>,
    /// The latest score (`None` before the first row).
    pub score: Option<f64>,
    pub anomalous: bool,
    /// The latest alarm onset's time (ns since the epoch).
    pub last_onset_ns: Option<i64>,
    /// The inputs (full tag paths) behind the latest onset with their shares, largest first.
    pub contributors: Vec<(String, f64)>,
    /// Inputs without a usable value now.
    pub missing: Vec<String>,
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

/// An alarm's priority, most urgent first (`Ord` sorts critical first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AlarmPriority {
    Critical,
    High,
    Medium,
    Low,
}

impl AlarmPriority {
    pub const ALL: [AlarmPriority; 4] = [
        AlarmPriority::Critical,
        AlarmPriority::High,
        AlarmPriority::Medium,
        AlarmPriority::Low,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlarmPriority::Critical => "critical",
            AlarmPriority::High => "high",
            AlarmPriority::Medium => "medium",
            AlarmPriority::Low => "low",
        }
    }

    pub fn from_name(name: &str) -> Option<AlarmPriority> {
        AlarmPriority::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

/// An alarm's lifecycle state (ISA-18.2; docs/alarms.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlarmState {
    Normal,
    UnackActive,
    AckActive,
    RtnUnack,
    Shelved,
    Suppressed,
    OutOfService,
}

impl AlarmState {
    pub const ALL: [AlarmState; 7] = [
        AlarmState::Normal,
        AlarmState::UnackActive,
        AlarmState::AckActive,
        AlarmState::RtnUnack,
        AlarmState::Shelved,
        AlarmState::Suppressed,
        AlarmState::OutOfService,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlarmState::Normal => "normal",
            AlarmState::UnackActive => "unack_active",
            AlarmState::AckActive => "ack_active",
            AlarmState::RtnUnack => "rtn_unack",
            AlarmState::Shelved => "shelved",
            AlarmState::Suppressed => "suppressed",
            AlarmState::OutOfService => "out_of_service",
        }
    }

    pub fn from_name(name: &str) -> Option<AlarmState> {
        AlarmState::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Waiting for an operator's acknowledgement.
    pub fn is_unacknowledged(self) -> bool {
        matches!(self, AlarmState::UnackActive | AlarmState::RtnUnack)
    }
}

/// One configured alarm and where it stands, as the API lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmView {
    pub id: String,
    /// The input tag's full path.
    pub tag: String,
    /// The asset's full path.
    pub asset: String,
    /// The operator area (routing, KPIs).
    pub area: String,
    /// `hi`, `hihi`, `lo`, `bad_quality`, … (docs/alarms.md).
    pub kind: String,
    pub priority: AlarmPriority,
    pub state: AlarmState,
    /// The process condition (true: in alarm), whatever the state.
    pub condition: bool,
    /// The input's last usable value; `None` when unknown (a bad sample, no sample yet).
    pub value: Option<f64>,
    pub message: String,
    /// When it last went from normal to active, ns since the epoch.
    pub raised_at_ns: Option<i64>,
    /// While shelved: until when, ns since the epoch.
    pub shelved_until_ns: Option<i64>,
}

/// One state change of an alarm (caused by the process, or by an operator's action).
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmChange {
    /// Numbers every change since the process started (1, 2, …): a gap means some were missed.
    pub seq: u64,
    pub alarm: String,
    /// The causing sample's receive time, or when the action was done; ns since the epoch.
    pub ts_ns: i64,
    pub from: AlarmState,
    pub to: AlarmState,
    pub value: Option<f64>,
    pub message: String,
    pub priority: AlarmPriority,
    pub tag: String,
    pub asset: String,
    pub area: String,
    pub kind: String,
    /// The operator action (`acknowledge`, `shelve`, …); empty for the process.
    pub action: String,
    pub user: String,
    pub comment: String,
}

/// One journal record, as the history lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmRecordView {
    pub ts_ns: i64,
    pub alarm: String,
    pub area: String,
    pub priority: String,
    pub from: AlarmState,
    pub to: AlarmState,
    pub value: Option<f64>,
    /// Empty for a change the process caused.
    pub action: String,
    pub user: String,
    pub comment: String,
}

/// An operator action on an alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmAction {
    Acknowledge,
    /// For this long (more than zero, at most 30 days); the comment is the reason (required).
    Shelve(std::time::Duration),
    Unshelve,
    /// The comment is the reason (required).
    OutOfService,
    ReturnToService,
    ResetLatched,
}

impl AlarmAction {
    /// The name the audit trail records.
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmAction::Acknowledge => "acknowledge",
            AlarmAction::Shelve(_) => "shelve",
            AlarmAction::Unshelve => "unshelve",
            AlarmAction::OutOfService => "out_of_service",
            AlarmAction::ReturnToService => "return_to_service",
            AlarmAction::ResetLatched => "reset_latched",
        }
    }
}

/// Why an [`AlarmApi::act`] was not done; each message says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlarmActionError {
    /// No alarm has this id (404).
    #[error("{0}")]
    UnknownAlarm(String),
    /// The action does not apply in the alarm's state, e.g. a second acknowledge (409).
    #[error("{0}")]
    Refused(String),
    /// A bad argument: duration out of range, a missing reason (400).
    #[error("{0}")]
    Invalid(String),
    /// The action could not be recorded (the journal failed) and was not done (503).
    #[error("{0}")]
    Failed(String),
}

/// Alarm KPIs (ISA-18.2) over a window.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AlarmKpis {
    /// (area, activations per 10 minutes), sorted by area. An area is one operator's console.
    pub per_area_per_10min: Vec<(String, f64)>,
    /// (area, most activations in one 10-minute interval), sorted by area.
    pub peak_per_10min: Vec<(String, usize)>,
    /// (area, percent of the window's time in flood: > 10 activations per 10 minutes).
    pub flood_percent: Vec<(String, f64)>,
    /// Alarms not in `normal` now.
    pub standing: usize,
    /// (alarm, raised at ns) of alarms active for more than 24 h, oldest first.
    pub stale: Vec<(String, i64)>,
    /// (alarm, shelved until ns) of the alarms shelved now.
    pub shelved: Vec<(String, Option<i64>)>,
    /// Alarms with ≥ 3 activations within 60 s in the window.
    pub chattering: Vec<String>,
    /// Alarms active for less than 1 s in the window.
    pub fleeting: Vec<String>,
    /// (alarm, activations), most first; at most 10.
    pub top10: Vec<(String, usize)>,
    /// Journal records the figures were computed from (the newest the engine keeps).
    pub records: usize,
}

/// What an alarm subscription yields.
#[derive(Debug, Clone, PartialEq)]
pub enum AlarmFeedItem {
    Change(Box<AlarmChange>),
    /// The subscriber fell behind and this many changes were dropped for it (re-read the list).
    Lagged(u64),
}

/// A live feed of alarm changes; ends when the alarm engine stops.
pub type AlarmFeed = std::pin::Pin<Box<dyn futures_util::Stream<Item = AlarmFeedItem> + Send>>;

/// The alarm engine as the API sees it (implemented by the binary over `mw-alarms`).
pub trait AlarmApi: Send + Sync {
    /// Every alarm not in `normal` (active, returned unacknowledged, shelved, suppressed, out of
    /// service), most urgent first: priority, then oldest raised.
    fn active(&self) -> Vec<AlarmView>;
    /// Every configured alarm, in config order.
    fn all(&self) -> Vec<AlarmView>;
    /// Up to `limit` of the newest journal records with `ts >= since_ns` (and of `alarm`, if
    /// given), newest first.
    fn history(
        &self,
        limit: usize,
        since_ns: Option<i64>,
        alarm: Option<&str>,
    ) -> Vec<AlarmRecordView>;
    /// Does `action` on alarm `id` as `user`, journaled before it is answered.
    fn act(
        &self,
        id: &str,
        action: AlarmAction,
        user: &str,
        comment: &str,
    ) -> Result<AlarmChange, AlarmActionError>;
    /// The KPIs over the `window_ns` ending now.
    fn kpis(&self, window_ns: i64) -> AlarmKpis;
    /// Every change from now on; bounded: a subscriber that falls behind gets
    /// [`AlarmFeedItem::Lagged`], the engine never waits for it.
    fn subscribe(&self) -> AlarmFeed;
}
