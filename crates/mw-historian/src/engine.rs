//! The historian engine: WAL, head and segment files as one store.
//!
//! A write is appended to the write-ahead log and answered once it is durable under the WAL's
//! [`SyncPolicy`]; only then does it enter the **head**, an in-memory index of what the log holds
//! beyond the last checkpoint. A **flush** rotates the log, writes the head into one segment file
//! named after the new WAL segment, and deletes the WAL segments it covers. Queries merge the
//! segments (oldest first) and the head.
//!
//! # Last write wins
//! Every write takes a sequence number. For one tag and timestamp, the point of the higher
//! number wins in the head and in replay; a later segment file wins over an earlier one, and the
//! head over every segment. Writes of one batch are applied in order, so a batch that names the
//! same tag and timestamp twice keeps its last point.
//!
//! # Crash safety
//! A flush holds writes back for the instant it takes to rotate the log and swap the head (a
//! write in progress finishes first), so the WAL segments it deletes hold exactly what the new
//! segment file holds. A crash after the segment is synced but before the WAL is trimmed replays
//! those writes again, which changes nothing (same points, later or equal precedence). A segment
//! file a crash cut short has no footer: it is removed at open and its data replayed from the
//! WAL, which still holds it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use mw_model::{Quality, TagPath, Value};

use crate::block::{Column, Points};
use crate::compact;
use crate::query::{self, Agg, Bucket, Item};
use crate::record::{self, Point};
use crate::retention::Retention;
use crate::rollup;
use crate::segment::{self, BlockRef, Segment, SegmentError};
use crate::storage::Storage;
use crate::wal::{self, SyncPolicy, Wal, WalError, WalOptions, WalWriter};

/// Nanoseconds in a day, the default partition length.
pub const DAY: i64 = 86_400_000_000_000;

/// Where "now" comes from (ns since the epoch): the engine reads the time only through it, so
/// tests drive compaction and retention with a clock of their own.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> i64 + Send + Sync>);

impl Clock {
    /// The system's wall clock.
    pub fn system() -> Clock {
        Clock::new(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        })
    }

    pub fn new(now: impl Fn() -> i64 + Send + Sync + 'static) -> Clock {
        Clock(Arc::new(now))
    }

    pub fn now(&self) -> i64 {
        (self.0)()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clock(now = {})", self.now())
    }
}

/// How the engine is laid out and when it flushes and compacts.
#[derive(Clone, Debug)]
pub struct Options {
    /// `wal/` and `segments/` are made under it.
    pub dir: PathBuf,
    pub sync: SyncPolicy,
    /// The head is flushed once it holds this many points.
    pub flush_points: usize,
    /// Most points per block.
    pub block_points: usize,
    /// Length of a time partition (ns): compaction keeps one file per partition.
    pub partition: i64,
    /// Beyond this many flushed (not yet compacted) files, partitions that have not ended are
    /// compacted too.
    pub compact_files: usize,
    pub retention: Retention,
    /// Most bytes of segment, rollup and WAL files; beyond it the oldest partitions are evicted.
    pub max_bytes: Option<u64>,
    pub clock: Clock,
}

impl Options {
    pub fn new(dir: impl Into<PathBuf>) -> Options {
        Options {
            dir: dir.into(),
            sync: SyncPolicy::Always,
            flush_points: 500_000,
            block_points: 1000,
            partition: DAY,
            compact_files: 32,
            retention: Retention::default(),
            max_bytes: None,
            clock: Clock::system(),
        }
    }
}

/// What one [`Historian::compact`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Compaction {
    /// Partitions (their starts, ns) merged into one file each.
    pub partitions: Vec<i64>,
    /// The files written.
    pub written: Vec<PathBuf>,
    /// Files replaced (removed once no query reads them).
    pub replaced: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum HistorianError {
    #[error("historian storage in {}: {source}", dir.display())]
    Io {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Wal(#[from] WalError),
    #[error(transparent)]
    Segment(#[from] SegmentError),
    #[error(
        "historian in {}: the disk is full ({why}) and no partition of the historian's own is left \
         to evict; nothing of this write was stored. Free space on the disk or lower \
         [historian] max_bytes",
        dir.display()
    )]
    DiskFull { dir: PathBuf, why: String },
}

/// What the store holds on disk ([`Historian::usage`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    pub segments: usize,
    pub segment_bytes: u64,
    /// Points in the segment files (a point overwritten in a later file counts in both).
    pub segment_points: u64,
    /// Bytes of the rollup files.
    pub rollup_bytes: u64,
    /// Bytes of the WAL segments (exact after open and flush; in between each write adds its
    /// framed record).
    pub wal_bytes: u64,
}

impl Usage {
    /// Everything the store holds on disk: segment, rollup and WAL files.
    pub fn total_bytes(&self) -> u64 {
        self.segment_bytes + self.rollup_bytes + self.wal_bytes
    }

    /// Raw size (16 bytes per point: an `i64` timestamp and a 64-bit value) over the segment
    /// files' bytes; `None` without segment files.
    pub fn compression_ratio(&self) -> Option<f64> {
        (self.segment_bytes > 0)
            .then(|| 16.0 * self.segment_points as f64 / self.segment_bytes as f64)
    }
}

/// What [`Historian::open`] found and did.
#[derive(Debug, Default)]
pub struct OpenReport {
    pub segments: usize,
    /// Segment files without a footer (flushes a crash cut short), removed; the WAL held their data.
    pub removed_incomplete: Vec<PathBuf>,
    /// Segment files whose index is damaged: kept on disk, not read.
    pub unreadable: Vec<String>,
    pub wal_records: usize,
    pub replayed_points: usize,
    /// WAL records whose payload could not be decoded (a CRC-valid record from another build).
    pub bad_records: Vec<String>,
    pub wal_truncated: Option<wal::Truncation>,
    pub wal_corrupt: Vec<wal::Corruption>,
}

#[derive(Clone, Debug)]
struct Entry {
    seq: u64,
    value: Value,
    quality: Quality,
}

#[derive(Clone, Default)]
struct Head {
    series: HashMap<TagPath, BTreeMap<i64, Entry>>,
    points: usize,
}

impl Head {
    fn insert(&mut self, seq: u64, points: &[Point]) {
        for p in points {
            self.put(
                &p.tag,
                p.ts,
                Entry {
                    seq,
                    value: p.value.clone(),
                    quality: p.quality.clone(),
                },
            );
        }
    }

    /// Keeps `e` unless the head holds a later write of the same tag and timestamp.
    fn put(&mut self, tag: &TagPath, ts: i64, e: Entry) {
        let s = self.series.entry(tag.clone()).or_default();
        match s.get(&ts) {
            Some(old) if old.seq > e.seq => {}
            old => {
                if old.is_none() {
                    self.points += 1;
                }
                s.insert(ts, e);
            }
        }
    }

    /// The head as blocks per tag: runs of one value type, at most `max` points each.
    fn blocks(&self, max: usize) -> Vec<(TagPath, Vec<Points>)> {
        let mut out: Vec<(TagPath, Vec<Points>)> = self
            .series
            .iter()
            .map(|(tag, pts)| {
                let it = pts.iter().map(|(&ts, e)| (ts, &e.value, &e.quality));
                (tag.clone(), to_blocks(it, max))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

/// Points in time order as blocks: runs of one value type, at most `max` points each.
pub(crate) fn to_blocks<'a>(
    points: impl Iterator<Item = (i64, &'a Value, &'a Quality)>,
    max: usize,
) -> Vec<Points> {
    let mut blocks: Vec<Points> = Vec::new();
    for (ts, value, quality) in points {
        let fits = blocks
            .last()
            .is_some_and(|b: &Points| b.ts.len() < max && same_type(&b.values, value));
        if !fits {
            blocks.push(Points {
                ts: Vec::new(),
                values: empty_column(value),
                quality: Vec::new(),
            });
        }
        if let Some(b) = blocks.last_mut() {
            b.ts.push(ts);
            push_value(&mut b.values, value);
            b.quality.push(quality.clone());
        }
    }
    blocks
}

fn empty_column(v: &Value) -> Column {
    match v {
        Value::Bool(_) => Column::Bool(Vec::new()),
        Value::I64(_) => Column::I64(Vec::new()),
        Value::U64(_) => Column::U64(Vec::new()),
        Value::F64(_) => Column::F64(Vec::new()),
        Value::F32(_) => Column::F32(Vec::new()),
        Value::Str(_) => Column::Str(Vec::new()),
    }
}

fn same_type(c: &Column, v: &Value) -> bool {
    matches!(
        (c, v),
        (Column::Bool(_), Value::Bool(_))
            | (Column::I64(_), Value::I64(_))
            | (Column::U64(_), Value::U64(_))
            | (Column::F64(_), Value::F64(_))
            | (Column::F32(_), Value::F32(_))
            | (Column::Str(_), Value::Str(_))
    )
}

fn push_value(c: &mut Column, v: &Value) {
    match (c, v) {
        (Column::Bool(c), Value::Bool(x)) => c.push(*x),
        (Column::I64(c), Value::I64(x)) => c.push(*x),
        (Column::U64(c), Value::U64(x)) => c.push(*x),
        (Column::F64(c), Value::F64(x)) => c.push(*x),
        (Column::F32(c), Value::F32(x)) => c.push(*x),
        (Column::Str(c), Value::Str(x)) => c.push(x.clone()),
        _ => {} // callers check `same_type` first
    }
}

pub(crate) fn value_at(c: &Column, i: usize) -> Option<Value> {
    Some(match c {
        Column::Bool(v) => Value::Bool(*v.get(i)?),
        Column::I64(v) => Value::I64(*v.get(i)?),
        Column::U64(v) => Value::U64(*v.get(i)?),
        Column::F64(v) => Value::F64(*v.get(i)?),
        Column::F32(v) => Value::F32(*v.get(i)?),
        Column::Str(v) => Value::Str(v.get(i)?.clone()),
    })
}

/// What a query reads of one tag (see [`Historian::view`]).
struct View {
    segments: Vec<Arc<Segment>>,
    /// The frozen head's and the head's points in the range, in time order.
    frozen: Vec<(i64, Entry)>,
    head: Vec<(i64, Entry)>,
}

impl View {
    /// Whether the frozen head or the head has a point in `[lo, hi]`.
    fn head_within(&self, lo: i64, hi: i64) -> bool {
        [&self.frozen, &self.head].into_iter().any(|h| {
            let i = h.partition_point(|(t, _)| *t < lo);
            h.get(i).is_some_and(|(t, _)| *t <= hi)
        })
    }
}

/// The blocks of `tag` (segment index, block index) whose time span overlaps another block's.
fn overlapped_blocks(segments: &[Arc<Segment>], tag: &TagPath) -> HashSet<(usize, usize)> {
    let mut spans: Vec<(i64, i64, usize, usize)> = segments
        .iter()
        .enumerate()
        .filter_map(|(si, s)| Some((si, s.series.get(tag)?)))
        .flat_map(|(si, refs)| {
            refs.iter()
                .enumerate()
                .map(move |(bi, r)| (r.stats.t_min, r.stats.t_max, si, bi))
        })
        .collect();
    spans.sort_unstable();
    let mut out = HashSet::new();
    let mut reach = i64::MIN; // the latest end among the spans before
    for (i, &(lo, up, si, bi)) in spans.iter().enumerate() {
        let before = i > 0 && reach >= lo;
        let after = spans.get(i + 1).is_some_and(|n| n.0 <= up);
        if before || after {
            out.insert((si, bi));
        }
        reach = reach.max(up);
    }
    out
}

/// The numeric value of a good, finite sample: what aggregates count.
pub(crate) fn good_number(v: &Value, q: &Quality) -> Option<f64> {
    if *q != Quality::Good {
        return None;
    }
    v.as_f64().filter(|x| x.is_finite())
}

#[derive(Default)]
struct State {
    head: Head,
    /// The head a flush is writing out; still answers queries until its segment is in place.
    frozen: Option<Arc<Head>>,
    /// Sorted by (seq, generation): later wins.
    segments: Vec<Arc<Segment>>,
    /// Rollup files per period of [`rollup::PERIODS`], sorted by (seq, generation).
    rollups: [Vec<Arc<Segment>>; 2],
    /// Files compaction replaced, removed once no query holds them.
    graveyard: Vec<Arc<Segment>>,
}

struct Inner {
    storage: Arc<dyn Storage>,
    opts: Options,
    wal_dir: PathBuf,
    seg_dir: PathBuf,
    /// `rollups/1m`, `rollups/1h`.
    rollup_dirs: [PathBuf; 2],
    wal: Mutex<Option<WalWriter>>,
    wal_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    seq: AtomicU64,
    /// Writes hold it shared from WAL append to head insert; a flush takes it exclusively to
    /// rotate the WAL and swap the head.
    gate: tokio::sync::RwLock<()>,
    flushing: tokio::sync::Mutex<()>,
    /// One compaction at a time; a flush does not wait for one to finish.
    compacting: tokio::sync::Mutex<()>,
    flush_queued: AtomicBool,
    state: RwLock<State>,
    /// Blocks read by queries (see [`Historian::decoded_blocks`]).
    decoded_blocks: AtomicU64,
    /// Bytes of the WAL segments: listed at open and after a flush, counted up by each write.
    wal_bytes: AtomicU64,
    /// Raw points before this were evicted for the disk quota (persisted in `evicted`).
    evicted_until: std::sync::atomic::AtomicI64,
}

impl Inner {
    fn compact_blocking(&self) -> Result<Compaction, HistorianError> {
        let (segments, rollups) = {
            let st = read(&self.state);
            (st.segments.clone(), st.rollups.clone())
        };
        let flushed = segments.iter().filter(|s| s.partition.is_none()).count();
        let len = self.opts.partition.max(1);
        let now = self.opts.clock.now();
        let retention = &self.opts.retention;
        let expired =
            |tag: &TagPath, p: i64| Retention::expired(p, len, now, retention.raw_for(tag));
        let rollup_keep = [retention.rollup_1m, retention.rollup_1h];
        let compact::Plan { jobs, mut consumed } = compact::plan(
            &segments,
            len,
            now,
            flushed > self.opts.compact_files,
            &expired,
        );
        drop(segments);
        let mut done = Compaction::default();
        let mut outputs = Vec::new();
        let mut new_rollups: Vec<(usize, Arc<Segment>)> = Vec::new();
        let mut written: Vec<PathBuf> = Vec::new();
        for job in &jobs {
            // an expiry-only rewrite of one compacted file changes no rollup
            let rewrite = job.inputs.len() == 1 && job.inputs[0].partition.is_some();
            let periods: Vec<(usize, &Path)> = (0..rollup::PERIODS.len())
                .filter(|&i| {
                    !rewrite && !Retention::expired(job.partition, len, now, rollup_keep[i])
                })
                .map(|i| (i, self.rollup_dirs[i].as_path()))
                .collect();
            let r = compact::run(
                self.storage.as_ref(),
                &self.seg_dir,
                &periods,
                job,
                len,
                self.opts.block_points,
                &|tag| !expired(tag, job.partition),
            );
            let out = match r {
                Ok(out) => out,
                Err(e) => {
                    // the inputs stay; what this run wrote is redundant with them
                    for p in &written {
                        let _ = self.storage.remove(p);
                    }
                    return Err(e.into());
                }
            };
            if let Some(seg) = out.segment {
                tracing::info!(partition = job.partition, file = %seg.path.display(),
                    inputs = job.inputs.len(), points = seg.points, bytes = seg.bytes,
                    "historian compacted a partition");
                written.push(seg.path.clone());
                done.written.push(seg.path.clone());
                outputs.push(Arc::new(seg));
            }
            for (i, seg) in out.rollups {
                written.push(seg.path.clone());
                new_rollups.push((i, Arc::new(seg)));
            }
            // the partition's older rollups of the periods just computed are replaced
            for &(i, _) in &periods {
                consumed.extend(
                    rollups[i]
                        .iter()
                        .filter(|r| r.partition == Some(job.partition))
                        .cloned(),
                );
            }
            done.partitions.push(job.partition);
        }
        drop(jobs);
        // rollups past their own retention
        for (i, files) in rollups.iter().enumerate() {
            for r in files {
                let p = r.partition.unwrap_or(i64::MIN);
                if Retention::expired(p, len, now, rollup_keep[i])
                    && !consumed.iter().any(|c| c.path == r.path)
                {
                    tracing::info!(partition = p, file = %r.path.display(), "historian rollup past its retention removed");
                    consumed.push(r.clone());
                }
            }
        }
        drop(rollups);
        // a file rewritten under its old name (a redo after a crash) replaces its entry but stays
        consumed.retain(|c| !written.contains(&c.path));
        done.replaced = consumed.len();
        {
            let mut st = write(&self.state);
            let gone = |s: &Arc<Segment>| {
                consumed.iter().any(|c| c.path == s.path) || written.contains(&s.path)
            };
            st.segments.retain(|s| !gone(s));
            st.segments.extend(outputs);
            st.segments.sort_by_key(|s| (s.seq, s.generation));
            for r in &mut st.rollups {
                r.retain(|s| !gone(s));
            }
            for (i, r) in new_rollups {
                st.rollups[i].push(r);
            }
            for r in &mut st.rollups {
                r.sort_by_key(|s| (s.seq, s.generation));
            }
            st.graveyard.extend(consumed);
        }
        self.reap();
        Ok(done)
    }

    /// The first timestamp of `tag` its raw retention still keeps: the start of the partition
    /// holding `now − retention`.
    fn visible_from(&self, tag: &TagPath) -> i64 {
        let keep = self.opts.retention.raw_for(tag);
        let h = self.opts.clock.now().saturating_sub(keep);
        compact::partition_of(h, self.opts.partition.max(1))
            .max(self.evicted_until.load(Ordering::Relaxed))
    }

    /// Evicts the oldest partition for the disk quota: its compacted raw files, else (none
    /// left) its oldest minute rollups, else hour rollups. False when there is nothing to evict.
    fn evict_oldest(&self) -> Result<bool, HistorianError> {
        // (a Result for what may come: today the removal is best effort, see `reap`)
        let len = self.opts.partition.max(1);
        let (what, p, files) = {
            let mut st = write(&self.state);
            let oldest = |files: &[Arc<Segment>]| files.iter().filter_map(|s| s.partition).min();
            let pick = oldest(&st.segments)
                .map(|p| ("raw points", p, 0))
                .or_else(|| oldest(&st.rollups[0]).map(|p| ("1 min rollups", p, 1)))
                .or_else(|| oldest(&st.rollups[1]).map(|p| ("1 h rollups", p, 2)));
            let Some((what, p, which)) = pick else {
                return Ok(false);
            };
            let list = match which {
                0 => &mut st.segments,
                i => &mut st.rollups[i - 1],
            };
            let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(list)
                .into_iter()
                .partition(|s| s.partition == Some(p));
            *list = kept;
            st.graveyard.extend(gone.iter().cloned());
            (what, p, gone)
        };
        let bytes: u64 = files.iter().map(|s| s.bytes).sum();
        metrics::counter!("mw_historian_evictions_total").increment(1);
        tracing::warn!(
            partition = %mw_model::format_rfc3339_ns(p),
            what,
            files = files.len(),
            bytes,
            "historian disk quota: evicted the oldest partition"
        );
        drop(files);
        self.reap(); // frees the room before the watermark below needs some
        if what == "raw points" {
            self.evicted_until
                .fetch_max(p.saturating_add(len), Ordering::Relaxed);
            if let Err(e) = self.persist_evicted() {
                tracing::warn!(error = %e, "cannot record the eviction watermark; late points \
                    of evicted partitions may show again after a restart");
            }
        }
        Ok(true)
    }

    /// Writes the eviction watermark to `evicted` (replaced atomically).
    fn persist_evicted(&self) -> std::io::Result<()> {
        let tmp = self.opts.dir.join("evicted.tmp");
        let _ = self.storage.remove(&tmp);
        let mut f = self.storage.open_append(&tmp)?;
        f.append(&self.evicted_until.load(Ordering::Relaxed).to_le_bytes())?;
        f.sync()?;
        self.storage.rename(&tmp, &self.opts.dir.join("evicted"))
    }

    /// Evicts oldest partitions until the store is within `max_bytes` (or nothing is left).
    fn enforce_quota(&self, usage: impl Fn() -> u64) -> Result<(), HistorianError> {
        let Some(max) = self.opts.max_bytes else {
            return Ok(());
        };
        while usage() > max {
            if !self.evict_oldest()? {
                tracing::warn!(
                    max_bytes = max,
                    bytes = usage(),
                    "historian above its disk quota with nothing left to evict (the WAL and files not yet compacted stay)"
                );
                break;
            }
        }
        Ok(())
    }

    /// Removes the replaced files no query reads any more.
    fn reap(&self) {
        let dead: Vec<Arc<Segment>> = {
            let mut st = write(&self.state);
            let (dead, alive) = std::mem::take(&mut st.graveyard)
                .into_iter()
                .partition(|s| Arc::strong_count(s) == 1);
            st.graveyard = alive;
            dead
        };
        for s in dead {
            if let Err(e) = self.storage.remove(&s.path) {
                tracing::warn!(file = %s.path.display(), error = %e, "cannot remove a replaced segment file; retried later");
                write(&self.state).graveyard.push(s);
            }
        }
    }
}

/// The historian store. Cheap to clone (shared).
#[derive(Clone)]
pub struct Historian {
    inner: Arc<Inner>,
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

impl Historian {
    /// Opens (or creates) the store in `opts.dir`: reads the segment indexes, trims WAL segments
    /// that a segment file already covers, replays the rest of the WAL into the head.
    pub fn open(
        storage: Arc<dyn Storage>,
        opts: Options,
    ) -> Result<(Historian, OpenReport), HistorianError> {
        let wal_dir = opts.dir.join("wal");
        let seg_dir = opts.dir.join("segments");
        let io = |source| HistorianError::Io {
            dir: opts.dir.clone(),
            source,
        };
        let rollup_dirs = rollup::PERIODS.map(|(_, name)| opts.dir.join("rollups").join(name));
        let mut report = OpenReport::default();
        let mut load = |dir: &Path| -> Result<Vec<Arc<Segment>>, HistorianError> {
            storage.create_dir_all(dir).map_err(io)?;
            let mut out = Vec::new();
            for p in storage.list(dir).map_err(io)? {
                if segment::parse_name(&p).is_none() {
                    continue;
                }
                match Segment::open(storage.as_ref(), &p) {
                    Ok(s) => out.push(Arc::new(s)),
                    Err(SegmentError::Incomplete { .. }) => {
                        tracing::warn!(file = %p.display(), "removing a segment file a crash cut short; the WAL or the files it was merged from still hold its data");
                        storage.remove(&p).map_err(io)?;
                        report.removed_incomplete.push(p);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "segment file unreadable; kept on disk, not read");
                        report.unreadable.push(e.to_string());
                    }
                }
            }
            out.sort_by_key(|s| (s.seq, s.generation));
            Ok(out)
        };
        let segments = load(&seg_dir)?;
        let evicted_until = storage
            .read(&opts.dir.join("evicted"))
            .ok()
            .and_then(|b| Some(i64::from_le_bytes(b.get(..8)?.try_into().ok()?)))
            .unwrap_or(i64::MIN);
        let rollups = [load(&rollup_dirs[0])?, load(&rollup_dirs[1])?];
        report.segments = segments.len();
        if let Some(last) = segments.last() {
            wal::remove_segments_before(storage.as_ref(), &wal_dir, last.seq).map_err(io)?;
        }
        let (wal, replay) = Wal::open(
            storage.clone(),
            WalOptions {
                sync: opts.sync,
                fsync_histogram: Some("mw_historian_fsync_seconds"),
                ..WalOptions::new(&wal_dir)
            },
        )
        .map_err(io)?;
        let mut head = Head::default();
        let mut next = 1;
        report.wal_records = replay.records.len();
        for (i, r) in replay.records.iter().enumerate() {
            match record::decode(r) {
                Ok((seq, points)) => {
                    next = next.max(seq + 1);
                    report.replayed_points += points.len();
                    head.insert(seq, &points);
                }
                Err(e) => report.bad_records.push(format!("WAL record {i}: {e}")),
            }
        }
        report.wal_truncated = replay.truncated;
        report.wal_corrupt = replay.corrupt;
        let (writer, thread) = WalWriter::start(wal).map_err(io)?;
        let inner = Inner {
            storage,
            wal_dir,
            seg_dir,
            rollup_dirs,
            opts,
            wal: Mutex::new(Some(writer)),
            wal_thread: Mutex::new(Some(thread)),
            seq: AtomicU64::new(next),
            gate: tokio::sync::RwLock::new(()),
            flushing: tokio::sync::Mutex::new(()),
            compacting: tokio::sync::Mutex::new(()),
            flush_queued: AtomicBool::new(false),
            state: RwLock::new(State {
                head,
                frozen: None,
                segments,
                rollups,
                graveyard: Vec::new(),
            }),
            decoded_blocks: AtomicU64::new(0),
            wal_bytes: AtomicU64::new(0),
            evicted_until: std::sync::atomic::AtomicI64::new(evicted_until),
        };
        let h = Historian {
            inner: Arc::new(inner),
        };
        h.measure_wal();
        metrics::counter!("mw_historian_points_written_total").increment(0);
        metrics::counter!("mw_historian_evictions_total").increment(0);
        Ok((h, report))
    }

    fn writer(&self) -> Result<WalWriter, WalError> {
        self.inner
            .wal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(WalError::Stopped)
    }

    /// Stores `points`; answers once they are durable under the configured policy. On error
    /// nothing of the batch is stored.
    pub async fn write(&self, points: &[Point]) -> Result<(), HistorianError> {
        if points.is_empty() {
            return Ok(());
        }
        let wal = self.writer()?;
        let gate = self.inner.gate.read().await;
        let seq = self.inner.seq.fetch_add(1, Ordering::Relaxed);
        let mut buf = Vec::new();
        record::encode(seq, points, &mut buf);
        let bytes = buf.len() as u64 + 8; // the frame's length and CRC
        loop {
            match wal.write(buf.clone()).await {
                Ok(()) => break,
                Err(WalError::DiskFull(why)) => {
                    // our own data fills the disk: make room, oldest partition first
                    let inner = self.inner.clone();
                    let evicted = tokio::task::spawn_blocking(move || inner.evict_oldest())
                        .await
                        .map_err(|e| HistorianError::Io {
                            dir: self.inner.opts.dir.clone(),
                            source: std::io::Error::other(e.to_string()),
                        })??;
                    if !evicted {
                        return Err(HistorianError::DiskFull {
                            dir: self.inner.opts.dir.clone(),
                            why,
                        });
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        self.inner.wal_bytes.fetch_add(bytes, Ordering::Relaxed);
        let full = {
            let mut st = write(&self.inner.state);
            st.head.insert(seq, points);
            st.head.points >= self.inner.opts.flush_points
        };
        drop(gate);
        metrics::counter!("mw_historian_points_written_total").increment(points.len() as u64);
        self.publish_sizes();
        if full && !self.inner.flush_queued.swap(true, Ordering::AcqRel) {
            let h = self.clone();
            tokio::spawn(async move {
                if let Err(e) = h.flush().await {
                    tracing::error!(error = %e, "historian flush failed; the WAL keeps the data");
                }
            });
        }
        Ok(())
    }

    /// Writes the head into a new segment file and trims the WAL. Returns the file, or `None`
    /// when the head was empty.
    pub async fn flush(&self) -> Result<Option<PathBuf>, HistorianError> {
        let one = self.inner.flushing.lock().await;
        self.inner.flush_queued.store(false, Ordering::Release);
        let wal = self.writer()?;
        let (seq, frozen) = {
            let _gate = self.inner.gate.write().await;
            if read(&self.inner.state).head.points == 0 {
                return Ok(None);
            }
            let seq = wal.rotate().await?;
            let mut st = write(&self.inner.state);
            let head = Arc::new(std::mem::take(&mut st.head));
            st.frozen = Some(head.clone());
            (seq, head)
        };
        let inner = self.inner.clone();
        let written = tokio::task::spawn_blocking(move || {
            let blocks = frozen.blocks(inner.opts.block_points);
            // fast codecs: compaction encodes the points again with every candidate
            segment::write(
                inner.storage.as_ref(),
                &inner.seg_dir,
                (seq, 0, None),
                &blocks,
                crate::block::Only::Fast,
            )
        })
        .await
        .map_err(|e| HistorianError::Io {
            dir: self.inner.opts.dir.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let seg = match written {
            Ok(s) => s,
            Err(e) => {
                // keep answering from the frozen head: put it back under what came since
                let mut st = write(&self.inner.state);
                if let Some(f) = st.frozen.take() {
                    let newer = std::mem::replace(&mut st.head, Arc::unwrap_or_clone(f));
                    for (tag, pts) in newer.series {
                        for (ts, e) in pts {
                            st.head.put(&tag, ts, e);
                        }
                    }
                }
                return Err(e.into());
            }
        };
        let path = seg.path.clone();
        tracing::info!(file = %path.display(), points = seg.points, bytes = seg.bytes, "historian flushed");
        {
            let mut st = write(&self.inner.state);
            st.segments.push(Arc::new(seg));
            st.frozen = None;
        }
        wal::remove_segments_before(self.inner.storage.as_ref(), &self.inner.wal_dir, seq)
            .map_err(|source| HistorianError::Io {
                dir: self.inner.wal_dir.clone(),
                source,
            })?;
        self.measure_wal();
        drop(one); // the next flush may start while this one compacts
        if let Err(e) = self.compact().await {
            tracing::error!(error = %e, "historian compaction failed; the flushed files stay as they are");
        }
        Ok(Some(path))
    }

    /// Every point of `tag` with `from <= ts <= to` (both ends **inclusive**), in time order, the
    /// later write winning, but none the tag's raw retention (or the disk quota) has dropped.
    /// Blocks that fail their checksum are skipped and logged. See
    /// [`Historian::range_half_open`] for `[from, to)`.
    pub fn range(&self, tag: &TagPath, from: i64, to: i64) -> Vec<Point> {
        let t = Instant::now();
        let out = self.range_inner(tag, from, to);
        metrics::histogram!("mw_historian_query_seconds", "query" => "range")
            .record(t.elapsed().as_secs_f64());
        out
    }

    fn range_inner(&self, tag: &TagPath, from: i64, to: i64) -> Vec<Point> {
        let from = from.max(self.inner.visible_from(tag));
        if from > to {
            return Vec::new();
        }
        let v = self.view(tag, from, to);
        self.merge(tag, &v, from, to, &|_, _| false)
            .into_iter()
            .map(|(ts, (value, quality))| Point {
                tag: tag.clone(),
                ts,
                value,
                quality,
            })
            .collect()
    }

    /// Every point of `tag` with `from <= ts < to`, as [`Historian::range`].
    pub fn range_half_open(&self, tag: &TagPath, from: i64, to: i64) -> Vec<Point> {
        if from >= to {
            return Vec::new();
        }
        let t = Instant::now();
        let out = self.range_inner(tag, from, to - 1);
        metrics::histogram!("mw_historian_query_seconds", "query" => "range")
            .record(t.elapsed().as_secs_f64());
        out
    }

    /// Aggregates of the good numeric samples of `tag` in `[from, to)`, one [`Bucket`] per
    /// `step`-long bucket `[from + k·step, from + (k+1)·step)` that holds at least one, oldest
    /// first (definitions in [`crate::query`]). Empty when `step <= 0` or `from >= to`.
    ///
    /// A block that lies wholly inside one bucket and that no other block of the tag, nor the
    /// head, overlaps in time is answered from its index stats without being read (not for
    /// [`Agg::Twa`], which needs every sample's time).
    pub fn aggregate(&self, tag: &TagPath, from: i64, to: i64, step: i64, agg: Agg) -> Vec<Bucket> {
        let t = Instant::now();
        let out = self.aggregate_inner(tag, from, to, step, agg);
        metrics::histogram!("mw_historian_query_seconds", "query" => "aggregate")
            .record(t.elapsed().as_secs_f64());
        out
    }

    fn aggregate_inner(
        &self,
        tag: &TagPath,
        from: i64,
        to: i64,
        step: i64,
        agg: Agg,
    ) -> Vec<Bucket> {
        if step <= 0 || from >= to {
            return Vec::new();
        }
        let hi = to - 1;
        // raw points before `lo` have expired
        let vis = self.inner.visible_from(tag);
        let lo = from.max(vis);
        let mut items = if agg == Agg::Twa {
            Vec::new()
        } else {
            self.rollup_items(tag, from, to.min(vis), step)
        };
        if lo > hi {
            items.sort_by_key(Item::ts);
            return query::fold(&items, from, to, step, agg);
        }
        let v = self.view(tag, lo, hi);
        // whole partitions answered by their rollups; their blocks are not read
        let covered = if agg == Agg::Twa {
            HashSet::new()
        } else {
            self.rollup_covered(tag, &v, lo, hi, from, step, &mut items)
        };
        let mut stats_only: HashSet<(usize, usize)> = HashSet::new();
        if agg != Agg::Twa {
            let overlapped = overlapped_blocks(&v.segments, tag);
            for (si, seg) in v.segments.iter().enumerate() {
                if !seg.stats_good_only {
                    continue;
                }
                let Some(refs) = seg.series.get(tag) else {
                    continue;
                };
                for (bi, r) in refs.iter().enumerate() {
                    let (first, last) = (r.stats.t_min, r.stats.t_max);
                    let inside = first >= lo
                        && last <= hi
                        && query::bucket_of(first, from, to, step)
                            == query::bucket_of(last, from, to, step);
                    if inside
                        && !covered.contains(&(si, bi))
                        && !overlapped.contains(&(si, bi))
                        && !v.head_within(first, last)
                    {
                        stats_only.insert((si, bi));
                    }
                }
            }
        }
        let merged = self.merge(tag, &v, lo, hi, &|si, bi| {
            stats_only.contains(&(si, bi)) || covered.contains(&(si, bi))
        });
        let points: Vec<(i64, f64)> = merged
            .iter()
            .filter_map(|(&ts, (value, quality))| good_number(value, quality).map(|x| (ts, x)))
            .collect();
        if agg == Agg::Twa {
            let prior = self.last_good_before(tag, lo, step, vis);
            return query::twa(&points, prior, from, to, step);
        }
        items.extend(points.iter().map(|&(t, x)| Item::Point(t, x)));
        for &(si, bi) in &stats_only {
            if let Some(r) = v.segments[si].series.get(tag).and_then(|refs| refs.get(bi))
                && r.stats.good_count > 0
            {
                items.push(Item::Block(r.stats));
            }
        }
        items.sort_by_key(Item::ts);
        query::fold(&items, from, to, step, agg)
    }

    /// Where raw points are kept: the compacted partitions of `tag` wholly inside `[lo, hi]` that
    /// no other file nor the head touches for the tag, whose rollup (of the coarsest period
    /// dividing `step` and `from`) was computed from exactly that file, answer from the rollup's
    /// rows (pushed to `items`); returns their blocks (segment index, block index).
    #[allow(clippy::too_many_arguments)]
    fn rollup_covered(
        &self,
        tag: &TagPath,
        v: &View,
        lo: i64,
        hi: i64,
        from: i64,
        step: i64,
        items: &mut Vec<Item>,
    ) -> HashSet<(usize, usize)> {
        let mut covered = HashSet::new();
        let Some(pi) = (0..rollup::PERIODS.len()).rev().find(|&i| {
            let p = rollup::PERIODS[i].0;
            step % p == 0 && from.rem_euclid(p) == 0
        }) else {
            return covered;
        };
        let rollups = read(&self.inner.state).rollups[pi].clone();
        let len = self.inner.opts.partition.max(1);
        for (si, seg) in v.segments.iter().enumerate() {
            let (Some(p), Some(refs)) = (seg.partition, seg.series.get(tag)) else {
                continue;
            };
            let last = p.saturating_add(len).saturating_sub(1);
            if p < lo || last > hi || v.head_within(p, last) {
                continue;
            }
            let touched = v.segments.iter().enumerate().any(|(sj, o)| {
                sj != si
                    && o.series.get(tag).is_some_and(|rs| {
                        rs.iter()
                            .any(|r| r.stats.t_max >= p && r.stats.t_min <= last)
                    })
            });
            // blocks each within one bucket answer from their index stats, cheaper still
            let to = hi.saturating_add(1);
            let stats_do = refs.iter().all(|r| {
                query::bucket_of(r.stats.t_min, from, to, step)
                    == query::bucket_of(r.stats.t_max, from, to, step)
            });
            if touched || stats_do {
                continue;
            }
            let Some(r) = rollups.iter().find(|r| {
                r.partition == Some(p) && r.seq == seg.seq && r.generation == seg.generation
            }) else {
                continue;
            };
            let mut blocks = Vec::new();
            let mut ok = true;
            for rr in r.series.get(tag).into_iter().flatten() {
                match r.read_block(self.inner.storage.as_ref(), tag, rr) {
                    Ok(b) => blocks.push(b),
                    Err(e) => {
                        tracing::error!(error = %e, "damaged rollup block; reading the raw points");
                        ok = false;
                        break;
                    }
                }
            }
            let rows: Option<Vec<rollup::Row>> = blocks
                .chunks(6)
                .map(rollup::from_blocks)
                .collect::<Option<Vec<_>>>()
                .map(|v| v.into_iter().flatten().collect());
            let (true, Some(rows)) = (ok, rows) else {
                continue;
            };
            items.extend(rows.iter().map(|row| Item::Block(row.stats())));
            covered.extend((0..refs.len()).map(|bi| (si, bi)));
        }
        covered
    }

    /// Buckets of `tag` in `[from, to)` (where its raw points have expired) from the coarsest
    /// rollup whose period divides `step` and `from`; per partition its newest rollup file.
    fn rollup_items(&self, tag: &TagPath, from: i64, to: i64, step: i64) -> Vec<Item> {
        if from >= to {
            return Vec::new();
        }
        let files: Vec<Vec<Arc<Segment>>> = read(&self.inner.state).rollups.to_vec();
        let mut out = Vec::new();
        let mut done: HashSet<i64> = HashSet::new(); // partitions answered
        for (i, &(period, _)) in rollup::PERIODS.iter().enumerate().rev() {
            if step % period != 0 || from.rem_euclid(period) != 0 {
                continue;
            }
            // newest first, so the first file of a partition is the one that counts
            for seg in files[i].iter().rev() {
                let Some(p) = seg.partition else { continue };
                if seg.t_max < from || seg.t_min >= to || done.contains(&p) {
                    continue;
                }
                done.insert(p);
                let blocks: Vec<Points> = seg
                    .series
                    .get(tag)
                    .into_iter()
                    .flatten()
                    .filter_map(
                        |r| match seg.read_block(self.inner.storage.as_ref(), tag, r) {
                            Ok(b) => Some(b),
                            Err(e) => {
                                tracing::error!(error = %e, "skipping a damaged rollup block");
                                None
                            }
                        },
                    )
                    .collect();
                for group in blocks.chunks(6) {
                    for row in rollup::from_blocks(group).unwrap_or_default() {
                        if row.start >= from && row.start < to {
                            out.push(Item::Block(row.stats()));
                        }
                    }
                }
            }
        }
        out
    }

    /// The newest point of `tag` (any quality), the later write winning: read from the head, or
    /// from the one block whose index says it ends last (only that block is decoded). `None` also
    /// when every point of the tag is past its retention.
    pub fn latest(&self, tag: &TagPath) -> Option<Point> {
        let t = Instant::now();
        let vis = self.inner.visible_from(tag);
        let out = self.latest_inner(tag).filter(|p| p.ts >= vis);
        metrics::histogram!("mw_historian_query_seconds", "query" => "latest")
            .record(t.elapsed().as_secs_f64());
        out
    }

    fn latest_inner(&self, tag: &TagPath) -> Option<Point> {
        let point = |ts, e: &Entry| Point {
            tag: tag.clone(),
            ts,
            value: e.value.clone(),
            quality: e.quality.clone(),
        };
        let segments = {
            let st = read(&self.inner.state);
            let seg_max = st
                .segments
                .iter()
                .filter_map(|s| s.series.get(tag))
                .flat_map(|refs| refs.iter().map(|r| r.stats.t_max))
                .max();
            let head = st.head.series.get(tag).and_then(|s| s.last_key_value());
            let frozen = st
                .frozen
                .as_deref()
                .and_then(|f| f.series.get(tag))
                .and_then(|s| s.last_key_value());
            let mem = match (head, frozen) {
                (Some(h), Some(f)) if f.0 > h.0 => Some(f),
                (Some(h), _) => Some(h),
                (None, f) => f,
            };
            match (mem, seg_max) {
                (Some((&ts, e)), m) if m.is_none_or(|m| m <= ts) => return Some(point(ts, e)),
                (_, None) => return None,
                _ => {}
            }
            st.segments.clone()
        };
        let t = segments
            .iter()
            .filter_map(|s| s.series.get(tag))
            .flat_map(|refs| refs.iter().map(|r| r.stats.t_max))
            .max()?;
        for seg in segments.iter().rev() {
            for r in seg.series.get(tag).into_iter().flatten() {
                if r.stats.t_max != t {
                    continue;
                }
                match self.read_block(seg, tag, r) {
                    Ok(p) => {
                        let i = p.ts.iter().rposition(|&ts| ts == t)?;
                        return Some(Point {
                            tag: tag.clone(),
                            ts: t,
                            value: value_at(&p.values, i)?,
                            quality: p.quality.get(i)?.clone(),
                        });
                    }
                    Err(e) => {
                        metrics::counter!("mw_historian_corrupt_blocks_total").increment(1);
                        tracing::error!(error = %e, "skipping a damaged block");
                    }
                }
            }
        }
        // every block at the end is damaged: the newest readable point
        self.range_inner(tag, i64::MIN, i64::MAX).pop()
    }

    /// The last good numeric sample of `tag` in `[floor, t)`, looking back in growing windows.
    fn last_good_before(&self, tag: &TagPath, t: i64, step: i64, floor: i64) -> Option<(i64, f64)> {
        let first = self.extent(tag)?.0.max(floor);
        if first >= t {
            return None;
        }
        let mut w = i128::from(step.max(1));
        loop {
            let lo = (i128::from(t) - w).max(i128::from(first)) as i64;
            let v = self.view(tag, lo, t - 1);
            let m = self.merge(tag, &v, lo, t - 1, &|_, _| false);
            let found = m
                .iter()
                .rev()
                .find_map(|(&ts, (value, quality))| good_number(value, quality).map(|x| (ts, x)));
            if found.is_some() || lo == first {
                return found;
            }
            w = w.saturating_mul(4);
        }
    }

    /// The earliest and latest timestamp `tag` has anywhere.
    fn extent(&self, tag: &TagPath) -> Option<(i64, i64)> {
        let st = read(&self.inner.state);
        let blocks = st
            .segments
            .iter()
            .filter_map(|s| s.series.get(tag))
            .flatten()
            .map(|r| (r.stats.t_min, r.stats.t_max));
        let mem = [Some(&st.head), st.frozen.as_deref()]
            .into_iter()
            .flatten()
            .filter_map(|h| h.series.get(tag))
            .filter_map(|s| Some((*s.first_key_value()?.0, *s.last_key_value()?.0)));
        blocks
            .chain(mem)
            .reduce(|a, b| (a.0.min(b.0), a.1.max(b.1)))
    }

    /// One consistent view of `tag` over `[lo, hi]`: a flush may move the head to a segment at
    /// any moment.
    fn view(&self, tag: &TagPath, lo: i64, hi: i64) -> View {
        let st = read(&self.inner.state);
        let head: Vec<(i64, Entry)> = st
            .head
            .series
            .get(tag)
            .map(|s| s.range(lo..=hi).map(|(&t, e)| (t, e.clone())).collect())
            .unwrap_or_default();
        let frozen: Vec<(i64, Entry)> = st
            .frozen
            .as_deref()
            .and_then(|f| f.series.get(tag))
            .map(|s| s.range(lo..=hi).map(|(&t, e)| (t, e.clone())).collect())
            .unwrap_or_default();
        View {
            segments: st.segments.clone(),
            frozen,
            head,
        }
    }

    /// The points of `tag` in `[lo, hi]` of view `v`, later writes winning, except those of the
    /// blocks `skip(segment index, block index)` names (not read).
    fn merge(
        &self,
        tag: &TagPath,
        v: &View,
        lo: i64,
        hi: i64,
        skip: &dyn Fn(usize, usize) -> bool,
    ) -> BTreeMap<i64, (Value, Quality)> {
        let mut merged: BTreeMap<i64, (Value, Quality)> = BTreeMap::new();
        for (si, seg) in v.segments.iter().enumerate() {
            let Some(refs) = seg.series.get(tag) else {
                continue;
            };
            for (bi, r) in refs.iter().enumerate() {
                if r.stats.t_max < lo || r.stats.t_min > hi || skip(si, bi) {
                    continue;
                }
                match self.read_block(seg, tag, r) {
                    Ok(p) => {
                        for (i, &ts) in p.ts.iter().enumerate() {
                            if ts < lo || ts > hi {
                                continue;
                            }
                            if let (Some(v), Some(q)) = (value_at(&p.values, i), p.quality.get(i)) {
                                merged.insert(ts, (v, q.clone()));
                            }
                        }
                    }
                    Err(e) => {
                        metrics::counter!("mw_historian_corrupt_blocks_total").increment(1);
                        tracing::error!(error = %e, "skipping a damaged block");
                    }
                }
            }
        }
        for (ts, e) in v.frozen.iter().chain(&v.head) {
            merged.insert(*ts, (e.value.clone(), e.quality.clone()));
        }
        merged
    }

    fn read_block(
        &self,
        seg: &Segment,
        tag: &TagPath,
        r: &BlockRef,
    ) -> Result<Points, SegmentError> {
        self.inner.decoded_blocks.fetch_add(1, Ordering::Relaxed);
        seg.read_block(self.inner.storage.as_ref(), tag, r)
    }

    /// Raw blocks decoded by queries since open (tests check the stats shortcut with it).
    #[cfg(test)]
    fn decoded_blocks(&self) -> u64 {
        self.inner.decoded_blocks.load(Ordering::Relaxed)
    }

    /// Merges flushed files into one file per time partition (see [`crate::compact`]); run
    /// after every flush, and callable at any time.
    pub async fn compact(&self) -> Result<Compaction, HistorianError> {
        let _one = self.inner.compacting.lock().await;
        self.compact_locked().await
    }

    async fn compact_locked(&self) -> Result<Compaction, HistorianError> {
        let inner = self.inner.clone();
        let h = self.clone();
        let done = tokio::task::spawn_blocking(move || {
            let done = inner.compact_blocking();
            inner.enforce_quota(|| h.usage().total_bytes())?;
            done
        })
        .await
        .map_err(|e| HistorianError::Io {
            dir: self.inner.opts.dir.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        self.publish_sizes();
        done
    }

    /// Every tag the store holds, sorted.
    pub fn tags(&self) -> Vec<TagPath> {
        let st = read(&self.inner.state);
        let mut all: Vec<TagPath> = st
            .segments
            .iter()
            .flat_map(|s| s.series.keys().cloned())
            .chain(st.frozen.iter().flat_map(|h| h.series.keys().cloned()))
            .chain(st.head.series.keys().cloned())
            .collect();
        all.sort();
        all.dedup();
        all
    }

    /// Lists the WAL directory for its size, then publishes the size gauges.
    fn measure_wal(&self) {
        let storage = self.inner.storage.as_ref();
        let bytes: u64 = storage
            .list(&self.inner.wal_dir)
            .unwrap_or_default()
            .iter()
            .filter_map(|p| storage.file_len(p).ok())
            .sum();
        self.inner.wal_bytes.store(bytes, Ordering::Relaxed);
        self.publish_sizes();
    }

    /// Sets `mw_historian_wal_bytes`, `mw_historian_disk_bytes` (segments + rollups + WAL) and
    /// `mw_historian_compression_ratio` (16 bytes per point — an `i64` timestamp and a 64-bit
    /// value — over the segment files' bytes; not set while there is no segment file).
    fn publish_sizes(&self) {
        let u = self.usage();
        metrics::gauge!("mw_historian_wal_bytes").set(u.wal_bytes as f64);
        metrics::gauge!("mw_historian_disk_bytes").set(u.total_bytes() as f64);
        if let Some(r) = u.compression_ratio() {
            metrics::gauge!("mw_historian_compression_ratio").set(r);
        }
    }

    /// What the store holds on disk.
    pub fn usage(&self) -> Usage {
        let st = read(&self.inner.state);
        Usage {
            segments: st.segments.len(),
            segment_bytes: st.segments.iter().map(|s| s.bytes).sum(),
            segment_points: st.segments.iter().map(|s| s.points).sum(),
            rollup_bytes: st.rollups.iter().flatten().map(|s| s.bytes).sum(),
            wal_bytes: self.inner.wal_bytes.load(Ordering::Relaxed),
        }
    }

    /// Segment files in use and their bytes on disk.
    pub fn disk_usage(&self) -> (usize, u64) {
        let st = read(&self.inner.state);
        (st.segments.len(), st.segments.iter().map(|s| s.bytes).sum())
    }

    /// Stops the WAL thread after syncing what it holds. Writes after this fail.
    pub fn close(&self) {
        self.inner
            .wal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let t = self
            .inner
            .wal_thread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(t) = t {
            let _ = t.join();
        }
    }

    /// The directory the store lives in.
    pub fn dir(&self) -> &Path {
        &self.inner.opts.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemStorage;
    use proptest::prelude::*;
    use std::sync::atomic::AtomicI64;

    fn pt(tag: &str, ts: i64, v: f64) -> Point {
        Point {
            tag: TagPath::new(tag).unwrap(),
            ts,
            value: Value::F64(v),
            quality: Quality::Good,
        }
    }

    /// Block of 4 points, partitions of 100 ns, the clock at 0 (so a flush compacts only
    /// partitions before 0).
    fn open(disk: &MemStorage) -> (Historian, OpenReport) {
        open_at(disk, Arc::new(AtomicI64::new(0)))
    }

    fn open_at(disk: &MemStorage, now: Arc<AtomicI64>) -> (Historian, OpenReport) {
        open_p(disk, now, 100)
    }

    fn open_p(disk: &MemStorage, now: Arc<AtomicI64>, partition: i64) -> (Historian, OpenReport) {
        let mut o = Options::new("/h");
        o.block_points = 4;
        o.partition = partition;
        o.compact_files = 3;
        o.clock = Clock::new(move || now.load(Ordering::SeqCst));
        Historian::open(Arc::new(disk.clone()), o).unwrap()
    }

    fn values(h: &Historian, tag: &str) -> Vec<(i64, Value)> {
        h.range(&TagPath::new(tag).unwrap(), i64::MIN, i64::MAX)
            .into_iter()
            .map(|p| (p.ts, p.value))
            .collect()
    }

    #[tokio::test]
    async fn writes_survive_flush_crash_and_reopen_with_the_last_write_winning() {
        let disk = MemStorage::new();
        let (h, _) = open(&disk);
        let batch: Vec<Point> = (0..10).map(|i| pt("a/x", i, i as f64)).collect();
        h.write(&batch).await.unwrap();
        assert!(h.flush().await.unwrap().is_some());
        h.write(&[pt("a/x", 5, 50.0), pt("a/x", 20, 2.0), pt("a/x", 20, 3.0)])
            .await
            .unwrap();
        let want: Vec<(i64, Value)> = (0..10)
            .map(|i| (i, Value::F64(if i == 5 { 50.0 } else { i as f64 })))
            .chain([(20, Value::F64(3.0))])
            .collect();
        assert_eq!(values(&h, "a/x"), want);
        disk.crash();
        h.close();
        let (h, r) = open(&disk);
        assert_eq!(r.segments, 1);
        assert_eq!(
            r.replayed_points, 3,
            "only what came after the flush is replayed"
        );
        assert_eq!(values(&h, "a/x"), want);
        assert_eq!(
            h.range(&TagPath::new("a/x").unwrap(), 3, 6).len(),
            4,
            "range is inclusive at both ends"
        );
        h.flush().await.unwrap();
        h.close();
        let (h, r) = open(&disk);
        assert_eq!((r.segments, r.replayed_points), (2, 0));
        assert_eq!(
            values(&h, "a/x"),
            want,
            "a later segment wins over an earlier one"
        );
        h.close();
    }

    #[tokio::test]
    async fn a_flush_cut_short_is_removed_and_its_data_comes_back_from_the_wal() {
        let disk = MemStorage::new();
        let (h, _) = open(&disk);
        h.write(&[pt("a/x", 1, 1.0)]).await.unwrap();
        let seg = h.flush().await.unwrap().unwrap();
        h.write(&[pt("a/x", 2, 2.0), pt("a/y", 2, 7.0)])
            .await
            .unwrap();
        h.close();
        // a second flush that crashed half way through writing its file
        let full = disk.content(&seg).unwrap();
        let cut = Path::new("/h/segments").join(segment::file_name(99, 0, None));
        disk.open_append(&cut)
            .unwrap()
            .append(&full[..full.len() / 2])
            .unwrap();
        let (h, r) = open(&disk);
        assert_eq!(r.removed_incomplete, vec![cut.clone()]);
        assert!(disk.content(&cut).is_none());
        assert_eq!(values(&h, "a/x").len(), 2);
        assert_eq!(values(&h, "a/y"), vec![(2, Value::F64(7.0))]);
        assert_eq!(h.tags().len(), 2);
        h.close();
    }

    #[tokio::test]
    async fn a_full_disk_refuses_the_write_and_keeps_what_was_acknowledged() {
        let disk = MemStorage::new();
        let (h, _) = open(&disk);
        h.write(&[pt("a/x", 1, 1.0)]).await.unwrap();
        disk.set_space(Some(0));
        assert!(h.write(&[pt("a/x", 2, 2.0)]).await.is_err());
        assert_eq!(values(&h, "a/x"), vec![(1, Value::F64(1.0))]);
        disk.set_space(None);
        h.write(&[pt("a/x", 3, 3.0)]).await.unwrap();
        disk.crash();
        h.close();
        let (h, _) = open(&disk);
        let ts: Vec<i64> = values(&h, "a/x").into_iter().map(|p| p.0).collect();
        assert_eq!(ts, vec![1, 3], "the refused write never appears");
        h.close();
    }

    #[tokio::test]
    async fn a_flush_that_fails_keeps_every_point_queryable_and_a_later_one_succeeds() {
        let disk = MemStorage::new();
        let (h, _) = open(&disk);
        h.write(&[pt("a/x", 1, 1.0), pt("a/x", 2, 2.0)])
            .await
            .unwrap();
        disk.set_space(Some(0));
        assert!(h.flush().await.is_err());
        disk.set_space(None);
        h.write(&[pt("a/x", 2, 20.0), pt("a/x", 3, 3.0)])
            .await
            .unwrap();
        let want = vec![
            (1, Value::F64(1.0)),
            (2, Value::F64(20.0)),
            (3, Value::F64(3.0)),
        ];
        assert_eq!(
            values(&h, "a/x"),
            want,
            "the failed flush's points are back in the head"
        );
        assert!(h.flush().await.unwrap().is_some());
        disk.crash();
        h.close();
        let (h, _) = open(&disk);
        assert_eq!(values(&h, "a/x"), want);
        h.close();
    }

    fn tp(s: &str) -> TagPath {
        TagPath::new(s).unwrap()
    }

    fn avg(h: &Historian, from: i64, to: i64, step: i64) -> Vec<(i64, f64, u64)> {
        h.aggregate(&tp("a/x"), from, to, step, Agg::Avg)
            .into_iter()
            .map(|b| (b.start, b.value, b.count))
            .collect()
    }

    #[tokio::test]
    async fn aggregates_answer_from_block_stats_unless_a_write_overlaps_the_block() {
        let disk = MemStorage::new();
        let (h, _) = open(&disk); // 4 points per block
        let batch: Vec<Point> = (0..8).map(|i| pt("a/x", i, i as f64)).collect();
        h.write(&batch).await.unwrap();
        h.flush().await.unwrap(); // blocks [0, 3] and [4, 7]
        let d0 = h.decoded_blocks();
        assert_eq!(avg(&h, 0, 8, 4), vec![(0, 1.5, 4), (4, 5.5, 4)]);
        assert_eq!(
            h.decoded_blocks() - d0,
            0,
            "both blocks answered from their stats"
        );
        // a bucket boundary inside a block: it must be read
        assert_eq!(avg(&h, 0, 8, 2)[1], (2, 2.5, 2));
        assert_eq!(h.decoded_blocks() - d0, 2);
        // an overwrite of ts 5 in a later segment: block [4, 7] is read, [0, 3] still is not
        h.write(&[pt("a/x", 5, 105.0)]).await.unwrap();
        h.flush().await.unwrap();
        let d1 = h.decoded_blocks();
        assert_eq!(avg(&h, 0, 8, 4), vec![(0, 1.5, 4), (4, 30.5, 4)]);
        assert_eq!(
            h.decoded_blocks() - d1,
            2,
            "the overlapped block and the overwrite's block are decoded, no other"
        );
        // an overwrite still in the head: same for block [0, 3]
        h.write(&[pt("a/x", 1, 11.0)]).await.unwrap();
        let d2 = h.decoded_blocks();
        assert_eq!(avg(&h, 0, 8, 4), vec![(0, 4.0, 4), (4, 30.5, 4)]);
        assert_eq!(h.decoded_blocks() - d2, 3);
        // twa never answers from stats
        let d3 = h.decoded_blocks();
        h.aggregate(&tp("a/x"), 0, 8, 4, Agg::Twa);
        assert_eq!(h.decoded_blocks() - d3, 3);
        h.close();
    }

    #[tokio::test]
    async fn stats_of_version_1_segments_are_not_trusted() {
        let disk = MemStorage::new();
        let (h, _) = open(&disk);
        let mut batch: Vec<Point> = (0..4).map(|i| pt("a/x", i, i as f64)).collect();
        batch[1].quality = Quality::Uncertain("warm-up".into());
        h.write(&batch).await.unwrap();
        let seg = h.flush().await.unwrap().unwrap();
        h.close();
        // the same file as an older build wrote it: version 1 counted uncertain points in stats
        let mut bytes = disk.content(&seg).unwrap();
        bytes[5] = 1;
        disk.remove(&seg).unwrap();
        disk.open_append(&seg).unwrap().append(&bytes).unwrap();
        let (h, _) = open(&disk);
        let d0 = h.decoded_blocks();
        assert_eq!(
            avg(&h, 0, 4, 4),
            vec![(0, 5.0 / 3.0, 3)],
            "the uncertain point is left out"
        );
        assert_eq!(h.decoded_blocks() - d0, 1);
        h.close();
    }

    #[tokio::test]
    async fn twa_holds_the_last_good_value_from_before_the_range_and_skips_bad_samples() {
        let disk = MemStorage::new();
        let (h, _) = open(&disk);
        h.write(&[pt("a/x", -1000, 2.0), pt("a/x", 100, 100.0)])
            .await
            .unwrap();
        h.flush().await.unwrap();
        let mut bad = pt("a/x", 4, 50.0);
        bad.quality = Quality::Bad("timeout".into());
        h.write(&[pt("a/x", 2, 6.0), bad, pt("a/x", 7, f64::NAN)])
            .await
            .unwrap();
        // [0, 10): 2 held for 0..2, then 6 for 2..10 (the bad and the NaN sample change nothing)
        let b = h.aggregate(&tp("a/x"), 0, 10, 10, Agg::Twa);
        assert_eq!(
            b,
            vec![Bucket {
                start: 0,
                value: (2.0 * 2.0 + 6.0 * 8.0) / 10.0,
                count: 1
            }]
        );
        h.close();
    }

    #[tokio::test]
    async fn latest_reads_the_head_or_only_the_last_block() {
        let disk = MemStorage::new();
        let (h, _) = open(&disk);
        assert_eq!(h.latest(&tp("a/x")), None);
        let batch: Vec<Point> = (0..12).map(|i| pt("a/x", i, i as f64)).collect();
        h.write(&batch).await.unwrap();
        assert_eq!(h.latest(&tp("a/x")).map(|p| p.ts), Some(11));
        h.flush().await.unwrap();
        let d0 = h.decoded_blocks();
        assert_eq!(h.latest(&tp("a/x")), Some(pt("a/x", 11, 11.0)));
        assert_eq!(h.decoded_blocks() - d0, 1, "one block of three is read");
        // an overwrite of the newest point in a later segment wins; an older point in the head
        // does not hide it
        h.write(&[pt("a/x", 11, -1.0)]).await.unwrap();
        h.flush().await.unwrap();
        h.write(&[pt("a/x", 3, 33.0)]).await.unwrap();
        assert_eq!(h.latest(&tp("a/x")), Some(pt("a/x", 11, -1.0)));
        h.write(&[pt("a/x", 11, -2.0)]).await.unwrap();
        assert_eq!(h.latest(&tp("a/x")), Some(pt("a/x", 11, -2.0)));
        h.close();
    }

    #[tokio::test]
    async fn half_open_ranges_leave_out_their_end_and_empty_ranges_are_empty() {
        let disk = MemStorage::new();
        let (h, _) = open(&disk);
        let batch: Vec<Point> = (0..6).map(|i| pt("a/x", i, i as f64)).collect();
        h.write(&batch).await.unwrap();
        let ts = |v: Vec<Point>| v.into_iter().map(|p| p.ts).collect::<Vec<_>>();
        assert_eq!(ts(h.range_half_open(&tp("a/x"), 1, 4)), vec![1, 2, 3]);
        assert_eq!(ts(h.range(&tp("a/x"), 1, 4)), vec![1, 2, 3, 4]);
        assert!(h.range(&tp("a/x"), 4, 1).is_empty());
        assert!(h.range_half_open(&tp("a/x"), 4, 4).is_empty());
        assert!(h.aggregate(&tp("a/x"), 0, 6, 0, Agg::Avg).is_empty());
        assert!(h.aggregate(&tp("a/x"), 6, 0, 1, Agg::Avg).is_empty());
        h.close();
    }

    /// Every aggregate computed the slow way from `range`, by its definition.
    fn naive(h: &Historian, tag: &TagPath, from: i64, to: i64, step: i64, agg: Agg) -> Vec<Bucket> {
        let all: Vec<(i64, Value, Quality)> = h
            .range(tag, i64::MIN, i64::MAX)
            .into_iter()
            .map(|p| (p.ts, p.value, p.quality))
            .collect();
        naive_over(&all, from, to, step, agg)
    }

    /// Every aggregate of `all` (one tag's points in time order) by its definition.
    fn naive_over(
        all: &[(i64, Value, Quality)],
        from: i64,
        to: i64,
        step: i64,
        agg: Agg,
    ) -> Vec<Bucket> {
        let good: Vec<(i64, f64)> = all
            .iter()
            .filter(|p| p.2 == Quality::Good)
            .filter_map(|p| Some((p.0, p.1.as_f64().filter(|x| x.is_finite())?)))
            .collect();
        let mut out = Vec::new();
        let mut b = from;
        while b < to {
            let e = (b + step).min(to);
            let inb: Vec<(i64, f64)> = good
                .iter()
                .copied()
                .filter(|p| p.0 >= b && p.0 < e)
                .collect();
            if !inb.is_empty() {
                let vals: Vec<f64> = inb.iter().map(|p| p.1).collect();
                let sum: f64 = vals.iter().sum();
                let value = match agg {
                    Agg::Min => vals.iter().copied().fold(f64::INFINITY, f64::min),
                    Agg::Max => vals.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                    Agg::Sum => sum,
                    Agg::Avg => sum / vals.len() as f64,
                    Agg::Count => vals.len() as f64,
                    Agg::First => vals[0],
                    Agg::Last => vals[vals.len() - 1],
                    Agg::Twa => {
                        // integrate the held value over every unit of time in [start, e)
                        let prior = good.iter().rev().find(|p| p.0 < b).map(|p| p.1);
                        let start = if prior.is_some() { b } else { inb[0].0 };
                        let mut area = 0.0;
                        for t in start..e {
                            let held = inb.iter().rev().find(|p| p.0 <= t).map(|p| p.1).or(prior);
                            area += held.unwrap_or(f64::NAN);
                        }
                        area / (e - start) as f64
                    }
                };
                out.push(Bucket {
                    start: b,
                    value,
                    count: inb.len() as u64,
                });
            }
            b = e;
        }
        out
    }

    #[derive(Debug, Clone)]
    enum AggOp {
        /// tag, ts, value kind, value, quality kind
        Write(Vec<(u8, i64, u8, i16, u8)>),
        Flush,
        /// Advance the clock, then compact.
        Compact(i64),
    }

    fn agg_op() -> impl Strategy<Value = AggOp> {
        prop_oneof![
            5 => prop::collection::vec((0u8..2, -5i64..45, 0u8..6, any::<i16>(), 0u8..8), 1..14)
                .prop_map(AggOp::Write),
            2 => Just(AggOp::Flush),
            1 => (0i64..20).prop_map(AggOp::Compact),
        ]
    }

    fn agg_point(tag: u8, ts: i64, kind: u8, v: i16, q: u8) -> Point {
        let value = match kind {
            0 => Value::F64(f64::from(v)),
            1 => Value::I64(i64::from(v)),
            2 => Value::F32(f32::from(v)),
            3 => Value::Bool(v % 2 == 0),
            4 if v % 4 == 0 => Value::F64(f64::NAN),
            4 => Value::U64(u64::from(v.unsigned_abs())),
            _ => Value::Str(format!("s{v}")),
        };
        let quality = match q {
            0 => Quality::Bad("timeout".into()),
            1 => Quality::Uncertain("stale".into()),
            _ => Quality::Good,
        };
        Point {
            tag: tp(&format!("a/t{tag}")),
            ts,
            value,
            quality,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        #[test]
        fn aggregates_equal_a_naive_computation_over_range(
            ops in prop::collection::vec(agg_op(), 1..16),
            queries in prop::collection::vec((-10i64..50, 1i64..70, 1i64..25), 1..6),
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let disk = MemStorage::new();
                let now = Arc::new(AtomicI64::new(-10));
                let (h, _) = open_p(&disk, now.clone(), 16);
                for op in ops {
                    match op {
                        AggOp::Compact(d) => {
                            now.fetch_add(d, Ordering::SeqCst);
                            h.compact().await.unwrap();
                        }
                        AggOp::Write(pts) => {
                            let batch: Vec<Point> =
                                pts.iter().map(|&(t, ts, k, v, q)| agg_point(t, ts, k, v, q)).collect();
                            h.write(&batch).await.unwrap();
                        }
                        AggOp::Flush => {
                            h.flush().await.unwrap();
                        }
                    }
                }
                for &(from, len, step) in &queries {
                    for t in 0..2 {
                        let tag = tp(&format!("a/t{t}"));
                        for agg in Agg::ALL {
                            let got = h.aggregate(&tag, from, from + len, step, agg);
                            let want = naive(&h, &tag, from, from + len, step, agg);
                            let close = got.len() == want.len()
                                && got.iter().zip(&want).all(|(g, w)| {
                                    g.start == w.start
                                        && g.count == w.count
                                        && (g.value == w.value
                                            || (agg == Agg::Twa
                                                && (g.value - w.value).abs() <= 1e-9 * w.value.abs().max(1.0)))
                                });
                            assert!(close, "{agg:?} over [{from}, {}) step {step}:\n got {got:?}\nwant {want:?}", from + len);
                        }
                    }
                }
                h.close();
            });
        }
    }

    /// MemStorage whose every mutation (create, append, sync, remove, rename, truncate, dir
    /// sync) after the first `left` fails: a crash at that step.
    #[derive(Clone)]
    struct Faulty {
        mem: MemStorage,
        left: Arc<AtomicI64>,
    }

    impl Faulty {
        fn step(&self) -> std::io::Result<()> {
            if self.left.fetch_sub(1, Ordering::SeqCst) <= 0 {
                return Err(std::io::Error::other("injected fault"));
            }
            Ok(())
        }
    }

    struct FaultyFile(Box<dyn crate::storage::StorageFile>, Faulty);

    impl crate::storage::StorageFile for FaultyFile {
        fn append(&mut self, buf: &[u8]) -> std::io::Result<()> {
            self.1.step()?;
            self.0.append(buf)
        }
        fn sync(&mut self) -> std::io::Result<()> {
            self.1.step()?;
            self.0.sync()
        }
        fn len(&self) -> u64 {
            self.0.len()
        }
    }

    impl Storage for Faulty {
        fn open_append(&self, p: &Path) -> std::io::Result<Box<dyn crate::storage::StorageFile>> {
            self.step()?;
            Ok(Box::new(FaultyFile(self.mem.open_append(p)?, self.clone())))
        }
        fn read(&self, p: &Path) -> std::io::Result<Vec<u8>> {
            self.mem.read(p)
        }
        fn truncate(&self, p: &Path, len: u64) -> std::io::Result<()> {
            self.step()?;
            self.mem.truncate(p, len)
        }
        fn list(&self, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
            self.mem.list(dir)
        }
        fn remove(&self, p: &Path) -> std::io::Result<()> {
            self.step()?;
            self.mem.remove(p)
        }
        fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
            self.mem.create_dir_all(dir)
        }
        fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
            self.step()?;
            self.mem.sync_dir(dir)
        }
        fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
            self.step()?;
            self.mem.rename(from, to)
        }
    }

    fn all_values(h: &Historian) -> Vec<(String, i64, Value)> {
        h.tags()
            .iter()
            .flat_map(|t| {
                values(h, t.as_str())
                    .into_iter()
                    .map(|(ts, v)| (t.as_str().to_string(), ts, v))
            })
            .collect()
    }

    fn file_names(disk: &MemStorage) -> Vec<String> {
        let mut v: Vec<String> = disk
            .list(Path::new("/h/segments"))
            .unwrap()
            .iter()
            .filter_map(|p| Some(p.file_name()?.to_str()?.to_string()))
            .collect();
        v.sort();
        v
    }

    /// Three flushes over partitions [0, 100) and [100, 200) with overwrites; the clock at 0.
    async fn three_flushes(h: &Historian) -> Vec<(String, i64, Value)> {
        let a: Vec<Point> = (0..150)
            .step_by(10)
            .map(|i| pt("a/x", i, i as f64))
            .collect();
        h.write(&a).await.unwrap();
        h.flush().await.unwrap();
        h.write(&[
            pt("a/x", 20, -20.0),
            pt("a/y", 120, 1.0),
            pt("a/x", 140, -140.0),
        ])
        .await
        .unwrap();
        h.flush().await.unwrap();
        h.write(&[pt("a/x", 20, -21.0), pt("a/x", 55, 5.5)])
            .await
            .unwrap();
        h.flush().await.unwrap();
        all_values(h)
    }

    #[tokio::test]
    async fn compaction_leaves_one_file_per_ended_partition_without_overridden_points() {
        let disk = MemStorage::new();
        let now = Arc::new(AtomicI64::new(0));
        let (h, _) = open_at(&disk, now.clone());
        let want = three_flushes(&h).await;
        assert_eq!(
            h.usage().segments,
            3,
            "no partition has ended: nothing compacted"
        );
        assert_eq!(h.compact().await.unwrap(), Compaction::default());
        now.store(150, Ordering::SeqCst); // [0, 100) has ended, [100, 200) has not
        let c = h.compact().await.unwrap();
        assert_eq!(
            c.partitions,
            Vec::<i64>::new(),
            "the oldest flush touches [100, 200): it waits"
        );
        now.store(200, Ordering::SeqCst);
        let c = h.compact().await.unwrap();
        assert_eq!((c.partitions, c.replaced), (vec![0, 100], 3));
        assert_eq!(
            file_names(&disk),
            vec![
                "00000000000000000003-0001_p100.seg",
                "00000000000000000004-0001_p0.seg"
            ],
            "each named after the newest flush holding its points"
        );
        assert_eq!(all_values(&h), want);
        assert_eq!(
            h.usage().segment_points,
            want.len() as u64,
            "overridden points are gone"
        );
        // late data for [0, 100) goes into the partition's file again, the later write winning
        h.write(&[pt("a/x", 20, 7.0)]).await.unwrap();
        h.flush().await.unwrap();
        assert_eq!(
            file_names(&disk),
            vec![
                "00000000000000000003-0001_p100.seg",
                "00000000000000000005-0001_p0.seg"
            ]
        );
        let want: Vec<_> = want
            .into_iter()
            .map(|(t, ts, v)| {
                if ts == 20 {
                    (t, ts, Value::F64(7.0))
                } else {
                    (t, ts, v)
                }
            })
            .collect();
        assert_eq!(all_values(&h), want);
        h.close();
        let (h, r) = open_at(&disk, now);
        assert_eq!((r.segments, r.replayed_points), (2, 0));
        assert_eq!(all_values(&h), want);
        h.close();
    }

    #[tokio::test]
    async fn a_flush_touching_a_partition_that_has_not_ended_holds_back_the_newer_ones() {
        let disk = MemStorage::new();
        let now = Arc::new(AtomicI64::new(0));
        let (h, _) = open_at(&disk, now.clone());
        h.write(&[pt("a/x", 10, 1.0)]).await.unwrap();
        h.flush().await.unwrap();
        now.store(100, Ordering::SeqCst);
        h.compact().await.unwrap(); // [0, 100) in one file
        h.write(&[pt("a/x", 10, 2.0), pt("a/x", 150, 0.0)])
            .await
            .unwrap();
        h.flush().await.unwrap(); // touches [100, 200), which has not ended: waits
        h.write(&[pt("a/x", 20, 3.0)]).await.unwrap();
        h.flush().await.unwrap(); // only [0, 100), but newer than the one waiting
        let want = vec![
            (10, Value::F64(2.0)),
            (20, Value::F64(3.0)),
            (150, Value::F64(0.0)),
        ];
        assert_eq!(values(&h, "a/x"), want);
        assert_eq!(
            h.usage().segments,
            3,
            "the newer flush was not compacted before the older"
        );
        now.store(200, Ordering::SeqCst);
        h.compact().await.unwrap();
        assert_eq!(values(&h, "a/x"), want);
        assert_eq!(h.usage().segments, 2);
        h.close();
    }

    #[tokio::test]
    async fn expired_partitions_disappear_from_queries_at_once_and_from_disk_at_compaction() {
        use mw_model::TagPattern;
        let disk = MemStorage::new();
        let now = Arc::new(AtomicI64::new(0));
        let mut o = Options::new("/h");
        o.partition = 100;
        o.retention = Retention {
            raw: 300,
            classes: vec![(TagPattern::new("a/fast/**").unwrap(), 100)],
            ..Retention::default()
        };
        let n = now.clone();
        o.clock = Clock::new(move || n.load(Ordering::SeqCst));
        let (h, _) = Historian::open(Arc::new(disk.clone()), o).unwrap();
        let mut batch = Vec::new();
        for ts in (0..400).step_by(50) {
            batch.push(pt("a/slow", ts, ts as f64));
            batch.push(pt("a/fast/x", ts, ts as f64));
        }
        h.write(&batch).await.unwrap();
        h.flush().await.unwrap();
        let ts = |tag: &str| values(&h, tag).into_iter().map(|p| p.0).collect::<Vec<_>>();
        now.store(400, Ordering::SeqCst); // fast: [0, 300) expired; slow: [0, 100)
        assert_eq!(
            ts("a/fast/x"),
            vec![300, 350],
            "hidden before any compaction"
        );
        assert_eq!(ts("a/slow"), vec![100, 150, 200, 250, 300, 350]);
        let fast = tp("a/fast/x");
        assert_eq!(h.latest(&fast).map(|p| p.ts), Some(350));
        let b = h.aggregate(&fast, 0, 400, 100, Agg::Count);
        assert_eq!((b.len(), b[0].start, b[0].count), (1, 300, 2));
        h.compact().await.unwrap(); // [0, 400) ended: compacted without the expired points
        assert_eq!(
            file_names(&disk),
            vec![
                "00000000000000000002-0001_p100.seg",
                "00000000000000000002-0001_p200.seg",
                "00000000000000000002-0001_p300.seg",
            ],
            "nothing is left of [0, 100)"
        );
        assert_eq!(h.usage().segment_points, 6 + 2);
        now.store(550, Ordering::SeqCst); // slow: [0, 200) expired; fast: [0, 400) expired
        assert_eq!(ts("a/slow"), vec![200, 250, 300, 350]);
        assert_eq!(ts("a/fast/x"), Vec::<i64>::new());
        assert_eq!(h.latest(&fast), None);
        let c = h.compact().await.unwrap();
        assert_eq!(
            c.partitions,
            vec![100, 300],
            "the files holding expired tags"
        );
        assert_eq!(file_names(&disk).len(), 2, "{:?}", file_names(&disk));
        assert_eq!(h.usage().segment_points, 4);
        assert_eq!(ts("a/slow"), vec![200, 250, 300, 350]);
        assert_eq!(
            h.compact().await.unwrap(),
            Compaction::default(),
            "nothing left to do"
        );
        h.close();
    }

    #[tokio::test]
    async fn aggregates_answer_from_rollups_where_raw_points_have_expired() {
        const S: i64 = 1_000_000_000;
        const H: i64 = 3600 * S;
        let disk = MemStorage::new();
        let now = Arc::new(AtomicI64::new(0));
        let opts = || {
            let mut o = Options::new("/h");
            o.partition = H;
            o.retention = Retention {
                raw: H,
                classes: Vec::new(),
                rollup_1m: 10 * H,
                rollup_1h: 100 * H,
            };
            let n = now.clone();
            o.clock = Clock::new(move || n.load(Ordering::SeqCst));
            o
        };
        let (h, _) = Historian::open(Arc::new(disk.clone()), opts()).unwrap();
        // every 10 s for 3 h, the value the minute's number; one bad point besides
        let mut batch: Vec<Point> = (0..3 * 360)
            .map(|i| pt("a/x", i * 10 * S, (i / 6) as f64))
            .collect();
        batch.push(Point {
            quality: Quality::Bad("timeout".into()),
            ..pt("a/x", 5 * S, 1e9)
        });
        h.write(&batch).await.unwrap();
        h.flush().await.unwrap();
        now.store(3 * H, Ordering::SeqCst); // raw [0, 2 h) expires
        h.compact().await.unwrap();
        let x = tp("a/x");
        assert_eq!(
            h.range(&x, 0, i64::MAX)[0].ts,
            2 * H,
            "raw points from 2 h on only"
        );
        let hourly = |h: &Historian, agg| -> Vec<(i64, f64, u64)> {
            h.aggregate(&x, 0, 3 * H, H, agg)
                .into_iter()
                .map(|b| (b.start / H, b.value, b.count))
                .collect()
        };
        // minute m has value m: hour k averages 60k + 29.5
        let want_avg = vec![(0, 29.5, 360), (1, 89.5, 360), (2, 149.5, 360)];
        assert_eq!(hourly(&h, Agg::Avg), want_avg);
        assert_eq!(
            hourly(&h, Agg::Max)[0],
            (0, 59.0, 360),
            "the bad point is not in it"
        );
        assert_eq!(hourly(&h, Agg::First)[1], (1, 60.0, 360));
        assert_eq!(hourly(&h, Agg::Last)[1], (1, 119.0, 360));
        assert_eq!(hourly(&h, Agg::Count)[0], (0, 360.0, 360));
        let minutes = h.aggregate(&x, 0, 3 * H, 60 * S, Agg::Sum);
        assert_eq!(minutes.len(), 180);
        assert_eq!(
            (minutes[61].start, minutes[61].value, minutes[61].count),
            (61 * 60 * S, 6.0 * 61.0, 6)
        );
        // no rollup fits a 90 s step, and twa needs raw points: only the raw part is answered
        let b = h.aggregate(&x, 0, 3 * H, 90 * S, Agg::Avg);
        assert_eq!((b.len(), b[0].start, b[0].count), (40, 2 * H, 9));
        assert_eq!(h.aggregate(&x, 0, 3 * H, H, Agg::Twa).len(), 1);
        h.close();
        // 12 h: every raw point and the minute rollups of [0, 2 h) have expired
        now.store(12 * H, Ordering::SeqCst);
        let (h, _) = Historian::open(Arc::new(disk.clone()), opts()).unwrap();
        assert_eq!(hourly(&h, Agg::Avg), want_avg, "rollups survive a restart");
        h.compact().await.unwrap();
        assert!(h.range(&x, 0, i64::MAX).is_empty());
        assert_eq!(hourly(&h, Agg::Avg), want_avg, "hourly rollups kept 100 h");
        let minutes = h.aggregate(&x, 0, 3 * H, 60 * S, Agg::Count);
        assert_eq!(minutes.len(), 60, "minute rollups of [2 h, 3 h) only");
        assert_eq!(minutes[0].start, 2 * H);
        h.close();
    }

    /// Four partitions of 100 ns, 20 points each, compacted (the clock at 1000).
    async fn four_partitions(h: &Historian, now: &AtomicI64) {
        for p in 0..4 {
            let batch: Vec<Point> = (0..20)
                .map(|i| pt("a/x", p * 100 + i * 5, i as f64))
                .collect();
            h.write(&batch).await.unwrap();
        }
        now.store(1000, Ordering::SeqCst);
        h.flush().await.unwrap();
    }

    fn opts_at(now: &Arc<AtomicI64>, max_bytes: Option<u64>) -> Options {
        let mut o = Options::new("/h");
        o.partition = 100;
        o.retention.raw = 1_000_000;
        o.max_bytes = max_bytes;
        let n = now.clone();
        o.clock = Clock::new(move || n.load(Ordering::SeqCst));
        o
    }

    #[tokio::test]
    async fn beyond_max_bytes_the_oldest_partitions_are_evicted_first() {
        let disk = MemStorage::new();
        let now = Arc::new(AtomicI64::new(0));
        // what four compacted partitions take
        let probe = MemStorage::new();
        let (h, _) = Historian::open(Arc::new(probe), opts_at(&now, None)).unwrap();
        four_partitions(&h, &now).await;
        let u = h.usage();
        assert_eq!(u.segments, 4);
        h.close();
        let per = u.segment_bytes / 4;
        let max = u.wal_bytes + u.rollup_bytes + 2 * per + per / 2; // room for two and a half
        now.store(0, Ordering::SeqCst);
        let (h, _) = Historian::open(Arc::new(disk.clone()), opts_at(&now, Some(max))).unwrap();
        four_partitions(&h, &now).await;
        assert!(h.usage().total_bytes() <= max, "{:?} > {max}", h.usage());
        assert_eq!(
            file_names(&disk),
            vec![
                "00000000000000000002-0001_p200.seg",
                "00000000000000000002-0001_p300.seg"
            ],
            "[0, 100) and [100, 200) evicted, the oldest first"
        );
        let ts: Vec<i64> = values(&h, "a/x").into_iter().map(|p| p.0).collect();
        assert_eq!(ts.first(), Some(&200));
        assert_eq!(ts.len(), 40);
        // late data for an evicted partition stays hidden, also after a restart
        h.write(&[pt("a/x", 50, 1.0)]).await.unwrap();
        assert_eq!(values(&h, "a/x").len(), 40);
        h.close();
        let (h, _) = Historian::open(Arc::new(disk.clone()), opts_at(&now, Some(max))).unwrap();
        assert_eq!(values(&h, "a/x").len(), 40);
        assert_eq!(values(&h, "a/x")[0].0, 200);
        h.close();
    }

    /// MemStorage holding at most `cap` bytes in all (ENOSPC beyond, nothing written).
    #[derive(Clone)]
    struct Capped {
        mem: MemStorage,
        cap: Arc<AtomicU64>,
    }

    impl Capped {
        fn used(&self) -> u64 {
            [
                "/h",
                "/h/wal",
                "/h/segments",
                "/h/rollups/1m",
                "/h/rollups/1h",
            ]
            .iter()
            .flat_map(|d| self.mem.list(Path::new(d)).unwrap_or_default())
            .filter_map(|p| self.mem.file_len(&p).ok())
            .sum()
        }
    }

    struct CappedFile(Box<dyn crate::storage::StorageFile>, Capped);

    impl crate::storage::StorageFile for CappedFile {
        fn append(&mut self, buf: &[u8]) -> std::io::Result<()> {
            if self.1.used() + buf.len() as u64 > self.1.cap.load(Ordering::SeqCst) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::StorageFull,
                    "No space left on device (os error 28)",
                ));
            }
            self.0.append(buf)
        }
        fn sync(&mut self) -> std::io::Result<()> {
            self.0.sync()
        }
        fn len(&self) -> u64 {
            self.0.len()
        }
    }

    impl Storage for Capped {
        fn open_append(&self, p: &Path) -> std::io::Result<Box<dyn crate::storage::StorageFile>> {
            Ok(Box::new(CappedFile(self.mem.open_append(p)?, self.clone())))
        }
        fn read(&self, p: &Path) -> std::io::Result<Vec<u8>> {
            self.mem.read(p)
        }
        fn truncate(&self, p: &Path, len: u64) -> std::io::Result<()> {
            self.mem.truncate(p, len)
        }
        fn list(&self, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
            self.mem.list(dir)
        }
        fn remove(&self, p: &Path) -> std::io::Result<()> {
            self.mem.remove(p)
        }
        fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
            self.mem.create_dir_all(dir)
        }
        fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
            self.mem.sync_dir(dir)
        }
        fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
            self.mem.rename(from, to)
        }
    }

    #[tokio::test]
    async fn a_disk_full_of_our_own_data_evicts_instead_of_failing_and_else_says_so() {
        let mem = MemStorage::new();
        let cap = Arc::new(AtomicU64::new(u64::MAX));
        let disk = Capped {
            mem: mem.clone(),
            cap: cap.clone(),
        };
        let now = Arc::new(AtomicI64::new(0));
        let (h, _) = Historian::open(Arc::new(disk.clone()), opts_at(&now, None)).unwrap();
        four_partitions(&h, &now).await;
        assert_eq!(h.usage().segments, 4);
        // the disk is full: a write needs the room of the oldest partition
        cap.store(disk.used() + 10, Ordering::SeqCst);
        let mut acked = Vec::new();
        let mut refused = None;
        for i in 0..200 {
            let p = pt("a/y", 1000 + i, i as f64);
            match h.write(std::slice::from_ref(&p)).await {
                Ok(()) => acked.push(p.ts),
                Err(e) => {
                    refused = Some((p.ts, e.to_string()));
                    break;
                }
            }
        }
        let (refused_ts, e) = refused.expect("the disk fills up once every partition is gone");
        assert!(
            e.contains("the disk is full") && e.contains("no partition"),
            "{e}"
        );
        assert!(
            acked.len() > 20,
            "writes went on while partitions were evicted: {}",
            acked.len()
        );
        assert_eq!(
            h.usage().segments,
            0,
            "every partition was evicted, oldest first"
        );
        mem.crash();
        h.close();
        let (h, _) = open_p(&mem, now.clone(), 100);
        let back: Vec<i64> = values(&h, "a/y").into_iter().map(|p| p.0).collect();
        assert_eq!(
            back, acked,
            "every acknowledged point is there, the refused one is not"
        );
        assert!(!back.contains(&refused_ts));
        h.close();
    }

    #[tokio::test]
    async fn minute_and_hour_steps_read_the_rollups_of_partitions_nothing_newer_touches() {
        const S: i64 = 1_000_000_000;
        const H: i64 = 3600 * S;
        let disk = MemStorage::new();
        let now = Arc::new(AtomicI64::new(0));
        let mut o = Options::new("/h");
        o.partition = H;
        o.retention.raw = 1000 * H;
        let n = now.clone();
        o.clock = Clock::new(move || n.load(Ordering::SeqCst));
        let (h, _) = Historian::open(Arc::new(disk.clone()), o).unwrap();
        let mut batch: Vec<Point> = (0..3 * 360)
            .map(|i| pt("a/x", i * 10 * S, ((i * 37) % 101) as f64))
            .collect();
        batch[7].quality = Quality::Uncertain("warm-up".into());
        h.write(&batch).await.unwrap();
        now.store(3 * H, Ordering::SeqCst);
        h.flush().await.unwrap(); // compacted: three hourly partitions with their rollups
        let x = tp("a/x");
        let check = |h: &Historian, step: i64, agg: Agg| {
            let got = h.aggregate(&x, 0, 3 * H, step, agg);
            assert_eq!(
                got,
                naive(h, &x, 0, 3 * H, step, agg),
                "{agg:?} step {step}"
            );
            got.len()
        };
        let d0 = h.decoded_blocks();
        for agg in [
            Agg::Avg,
            Agg::Min,
            Agg::Max,
            Agg::Sum,
            Agg::Count,
            Agg::First,
            Agg::Last,
        ] {
            assert_eq!(check(&h, H, agg), 3);
            assert_eq!(check(&h, 30 * 60 * S, agg), 6);
        }
        // `naive` reads every block through `range`: one block per partition, 14 queries
        let naive_reads = 14 * 3;
        assert_eq!(
            h.decoded_blocks() - d0,
            naive_reads,
            "aggregate read no raw block"
        );
        // a late point in the second hour: that partition is read, the others still are not
        h.write(&[pt("a/x", H + 5 * S, 1000.0)]).await.unwrap();
        let d1 = h.decoded_blocks();
        let got = h.aggregate(&x, 0, 3 * H, H, Agg::Max);
        assert_eq!(got[1].value, 1000.0);
        assert_eq!((got[0].value, got[2].value), (100.0, 100.0));
        assert_eq!(
            h.decoded_blocks() - d1,
            1,
            "only the late point's partition"
        );
        assert_eq!(got, naive(&h, &x, 0, 3 * H, H, Agg::Max));
        // a bucket cut short by `to` is not answered from a rollup row
        let cut = h.aggregate(&x, 0, 3 * H - 30 * S, H, Agg::Count);
        assert_eq!(cut[2].count, 360 - 3);
        h.close();
    }

    #[tokio::test]
    async fn partitions_that_have_not_ended_are_compacted_beyond_compact_files() {
        let disk = MemStorage::new();
        let mut o = Options::new("/h");
        o.partition = 100;
        o.compact_files = 2;
        o.clock = Clock::new(|| 0);
        let (h, _) = Historian::open(Arc::new(disk.clone()), o).unwrap();
        for i in 0..3 {
            h.write(&[pt("a/x", i, i as f64), pt("a/x", 0, 9.0)])
                .await
                .unwrap();
            h.flush().await.unwrap();
        }
        assert_eq!(file_names(&disk), vec!["00000000000000000004-0001_p0.seg"]);
        let want = vec![
            (0, Value::F64(9.0)),
            (1, Value::F64(1.0)),
            (2, Value::F64(2.0)),
        ];
        assert_eq!(values(&h, "a/x"), want);
        h.close();
    }

    #[tokio::test]
    async fn a_crash_at_any_step_of_a_compaction_leaves_every_point_readable_once() {
        let mut step = 0;
        loop {
            let mem = MemStorage::new();
            let left = Arc::new(AtomicI64::new(i64::MAX));
            let faulty = Faulty {
                mem: mem.clone(),
                left: left.clone(),
            };
            let now = Arc::new(AtomicI64::new(0));
            let mut o = Options::new("/h");
            o.block_points = 4;
            o.partition = 100;
            let n = now.clone();
            o.clock = Clock::new(move || n.load(Ordering::SeqCst));
            let (h, _) = Historian::open(Arc::new(faulty), o).unwrap();
            let want = three_flushes(&h).await;
            now.store(1000, Ordering::SeqCst);
            left.store(step, Ordering::SeqCst);
            let result = h.compact().await;
            mem.crash();
            h.close();
            let (h, r) = open_at(&mem, now.clone());
            assert!(r.unreadable.is_empty(), "step {step}: {:?}", r.unreadable);
            assert_eq!(all_values(&h), want, "after a crash at step {step}");
            // the next compaction finishes the job
            h.compact().await.unwrap();
            assert_eq!(all_values(&h), want, "compacted again after step {step}");
            assert_eq!(
                file_names(&mem).len(),
                2,
                "step {step}: {:?}",
                file_names(&mem)
            );
            for period in ["1m", "1h"] {
                let dir = Path::new("/h/rollups").join(period);
                assert_eq!(
                    mem.list(&dir).unwrap().len(),
                    2,
                    "step {step}: one rollup file per partition in {}",
                    dir.display()
                );
            }
            assert_eq!(h.usage().segment_points, want.len() as u64);
            h.close();
            if result.is_ok() {
                assert!(step > 4, "the compaction has several steps");
                break;
            }
            step += 1;
        }
    }

    #[tokio::test]
    async fn a_full_disk_fails_the_compaction_and_keeps_the_flushed_files() {
        let disk = MemStorage::new();
        let now = Arc::new(AtomicI64::new(0));
        let (h, _) = open_at(&disk, now.clone());
        let want = three_flushes(&h).await;
        let before = file_names(&disk);
        now.store(1000, Ordering::SeqCst);
        disk.set_space(Some(40));
        let e = h.compact().await.unwrap_err();
        assert!(e.to_string().contains("no space left"), "{e}");
        assert_eq!(file_names(&disk), before, "the partial output is removed");
        assert_eq!(all_values(&h), want);
        disk.set_space(None);
        h.compact().await.unwrap();
        assert_eq!(all_values(&h), want);
        assert_eq!(file_names(&disk).len(), 2);
        h.close();
    }

    #[derive(Debug, Clone)]
    enum ModelOp {
        /// tag, ts, value kind, value, quality kind
        Write(Vec<(u8, i64, u8, i16, u8)>),
        Flush,
        /// Advance the clock, then compact.
        Compact(i64),
        Reopen,
    }

    fn model_op() -> impl Strategy<Value = ModelOp> {
        prop_oneof![
            6 => prop::collection::vec((0u8..3, -5i64..70, 0u8..6, any::<i16>(), 0u8..8), 1..14)
                .prop_map(ModelOp::Write),
            2 => Just(ModelOp::Flush),
            2 => (0i64..25).prop_map(ModelOp::Compact),
            1 => Just(ModelOp::Reopen),
        ]
    }

    fn model_tag(t: u8) -> TagPath {
        // tag 0 is in the short-lived class
        tp(&if t == 0 {
            "a/fast/t0".to_string()
        } else {
            format!("a/t{t}")
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        /// range and aggregate against a plain map of every write (last wins), under random
        /// partitions, raw retention per class, clock steps, flushes, compactions and crashes.
        #[test]
        fn queries_equal_a_naive_model_under_retention_and_compaction(
            partition in prop::sample::select(vec![5i64, 10, 20]),
            raw in 10i64..80,
            fast in 1i64..30,
            ops in prop::collection::vec(model_op(), 1..20),
            queries in prop::collection::vec((-10i64..80, 1i64..90, 1i64..30), 1..4),
        ) {
            use mw_model::TagPattern;
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let disk = MemStorage::new();
                let now = Arc::new(AtomicI64::new(25)); // writes fall before and after it
                let opts = || {
                    let mut o = Options::new("/h");
                    o.block_points = 4;
                    o.partition = partition;
                    o.compact_files = 3;
                    o.retention = Retention {
                        raw,
                        classes: vec![(TagPattern::new("a/fast/**").unwrap(), fast)],
                        ..Retention::default()
                    };
                    let n = now.clone();
                    o.clock = Clock::new(move || n.load(Ordering::SeqCst));
                    o
                };
                let (mut h, _) = Historian::open(Arc::new(disk.clone()), opts()).unwrap();
                let mut model: BTreeMap<(u8, i64), (Value, Quality)> = BTreeMap::new();
                for op in ops {
                    match op {
                        ModelOp::Write(pts) => {
                            let batch: Vec<Point> = pts
                                .iter()
                                .map(|&(t, ts, k, v, q)| Point {
                                    tag: model_tag(t),
                                    ..agg_point(0, ts, k, v, q)
                                })
                                .collect();
                            h.write(&batch).await.unwrap();
                            for (&(t, ..), p) in pts.iter().zip(batch) {
                                model.insert((t, p.ts), (p.value, p.quality));
                            }
                        }
                        ModelOp::Flush => {
                            h.flush().await.unwrap();
                        }
                        ModelOp::Compact(d) => {
                            now.fetch_add(d, Ordering::SeqCst);
                            h.compact().await.unwrap();
                        }
                        ModelOp::Reopen => {
                            disk.crash();
                            h.close();
                            h = Historian::open(Arc::new(disk.clone()), opts()).unwrap().0;
                        }
                    }
                    let t_now = now.load(Ordering::SeqCst);
                    for t in 0u8..3 {
                        let tag = model_tag(t);
                        let keep = if t == 0 { fast } else { raw };
                        let vis = crate::compact::partition_of(t_now - keep, partition);
                        let visible: Vec<(i64, Value, Quality)> = model
                            .range((t, vis)..=(t, i64::MAX))
                            .map(|(&(_, ts), (v, q))| (ts, v.clone(), q.clone()))
                            .collect();
                        let got: Vec<(i64, Value, Quality)> = h
                            .range(&tag, i64::MIN, i64::MAX)
                            .into_iter()
                            .map(|p| (p.ts, p.value, p.quality))
                            .collect();
                        // NaN != NaN: compare bit patterns through Debug
                        assert_eq!(format!("{got:?}"), format!("{visible:?}"), "range of {tag} at {t_now}");
                        assert_eq!(
                            h.latest(&tag).map(|p| p.ts),
                            visible.last().map(|p| p.0),
                            "latest of {tag}"
                        );
                        for &(from, len, step) in &queries {
                            for agg in Agg::ALL {
                                let got = h.aggregate(&tag, from, from + len, step, agg);
                                let want = naive_over(&visible, from, from + len, step, agg);
                                let close = got.len() == want.len()
                                    && got.iter().zip(&want).all(|(g, w)| {
                                        g.start == w.start
                                            && g.count == w.count
                                            && (g.value == w.value
                                                || (agg == Agg::Twa
                                                    && (g.value - w.value).abs()
                                                        <= 1e-9 * w.value.abs().max(1.0)))
                                    });
                                assert!(close, "{agg:?} of {tag} over [{from}, {}) step {step} at {t_now}:\n got {got:?}\nwant {want:?}", from + len);
                            }
                        }
                    }
                }
                h.close();
            });
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Write(Vec<(u8, i64, i32)>),
        Flush,
        Reopen,
        /// Advance the clock, then compact.
        Compact(i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => prop::collection::vec((0u8..3, 0i64..40, any::<i32>()), 1..12).prop_map(Op::Write),
            1 => Just(Op::Flush),
            1 => Just(Op::Reopen),
            1 => (0i64..15).prop_map(Op::Compact),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
        #[test]
        fn queries_equal_a_naive_model(ops in prop::collection::vec(op(), 1..25)) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let disk = MemStorage::new();
                let now = Arc::new(AtomicI64::new(0));
                let (mut h, _) = open_p(&disk, now.clone(), 10);
                let mut model: BTreeMap<(u8, i64), f64> = BTreeMap::new();
                for op in ops {
                    match op {
                        Op::Write(pts) => {
                            let batch: Vec<Point> = pts
                                .iter()
                                .map(|&(t, ts, v)| pt(&format!("a/t{t}"), ts, f64::from(v)))
                                .collect();
                            h.write(&batch).await.unwrap();
                            for (t, ts, v) in pts {
                                model.insert((t, ts), f64::from(v));
                            }
                        }
                        Op::Flush => {
                            h.flush().await.unwrap();
                        }
                        Op::Reopen => {
                            disk.crash();
                            h.close();
                            h = open_p(&disk, now.clone(), 10).0;
                        }
                        Op::Compact(d) => {
                            now.fetch_add(d, Ordering::SeqCst);
                            h.compact().await.unwrap();
                        }
                    }
                    for t in 0u8..3 {
                        let got = values(&h, &format!("a/t{t}"));
                        let want: Vec<(i64, Value)> = model
                            .range((t, i64::MIN)..=(t, i64::MAX))
                            .map(|(&(_, ts), &v)| (ts, Value::F64(v)))
                            .collect();
                        assert_eq!(got, want);
                    }
                }
                h.close();
            });
        }
    }
}
