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
use crate::query::{self, Agg, Bucket, Item};
use crate::record::{self, Point};
use crate::segment::{self, BlockRef, Segment, SegmentError};
use crate::storage::Storage;
use crate::wal::{self, SyncPolicy, Wal, WalError, WalOptions, WalWriter};

/// How the engine is laid out and when it flushes.
#[derive(Clone, Debug)]
pub struct Options {
    /// `wal/` and `segments/` are made under it.
    pub dir: PathBuf,
    pub sync: SyncPolicy,
    /// The head is flushed once it holds this many points.
    pub flush_points: usize,
    /// Most points per block.
    pub block_points: usize,
}

impl Options {
    pub fn new(dir: impl Into<PathBuf>) -> Options {
        Options {
            dir: dir.into(),
            sync: SyncPolicy::Always,
            flush_points: 500_000,
            block_points: 1000,
        }
    }
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
}

/// What the store holds on disk ([`Historian::usage`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    pub segments: usize,
    pub segment_bytes: u64,
    /// Points in the segment files (a point overwritten in a later file counts in both).
    pub segment_points: u64,
    /// Bytes of the WAL segments (exact after open and flush; in between each write adds its
    /// framed record).
    pub wal_bytes: u64,
}

impl Usage {
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
                let mut blocks: Vec<Points> = Vec::new();
                for (&ts, e) in pts {
                    let fits = blocks.last().is_some_and(|b: &Points| {
                        b.ts.len() < max && same_type(&b.values, &e.value)
                    });
                    if !fits {
                        blocks.push(Points {
                            ts: Vec::new(),
                            values: empty_column(&e.value),
                            quality: Vec::new(),
                        });
                    }
                    if let Some(b) = blocks.last_mut() {
                        b.ts.push(ts);
                        push_value(&mut b.values, &e.value);
                        b.quality.push(e.quality.clone());
                    }
                }
                (tag.clone(), blocks)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
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

fn value_at(c: &Column, i: usize) -> Option<Value> {
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
fn good_number(v: &Value, q: &Quality) -> Option<f64> {
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
}

struct Inner {
    storage: Arc<dyn Storage>,
    opts: Options,
    wal_dir: PathBuf,
    seg_dir: PathBuf,
    wal: Mutex<Option<WalWriter>>,
    wal_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    seq: AtomicU64,
    /// Writes hold it shared from WAL append to head insert; a flush takes it exclusively to
    /// rotate the WAL and swap the head.
    gate: tokio::sync::RwLock<()>,
    flushing: tokio::sync::Mutex<()>,
    flush_queued: AtomicBool,
    state: RwLock<State>,
    /// Blocks read by queries (see [`Historian::decoded_blocks`]).
    decoded_blocks: AtomicU64,
    /// Bytes of the WAL segments: listed at open and after a flush, counted up by each write.
    wal_bytes: AtomicU64,
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
        storage.create_dir_all(&seg_dir).map_err(io)?;
        let mut report = OpenReport::default();
        let mut segments = Vec::new();
        for p in storage.list(&seg_dir).map_err(io)? {
            if segment::parse_name(&p).is_none() {
                continue;
            }
            match Segment::open(storage.as_ref(), &p) {
                Ok(s) => segments.push(Arc::new(s)),
                Err(SegmentError::Incomplete { .. }) => {
                    tracing::warn!(file = %p.display(), "removing a segment file a crash cut short; the WAL still holds its data");
                    storage.remove(&p).map_err(io)?;
                    report.removed_incomplete.push(p);
                }
                Err(e) => {
                    tracing::error!(error = %e, "segment file unreadable; kept on disk, not read");
                    report.unreadable.push(e.to_string());
                }
            }
        }
        segments.sort_by_key(|s| (s.seq, s.generation));
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
            opts,
            wal: Mutex::new(Some(writer)),
            wal_thread: Mutex::new(Some(thread)),
            seq: AtomicU64::new(next),
            gate: tokio::sync::RwLock::new(()),
            flushing: tokio::sync::Mutex::new(()),
            flush_queued: AtomicBool::new(false),
            state: RwLock::new(State {
                head,
                frozen: None,
                segments,
            }),
            decoded_blocks: AtomicU64::new(0),
            wal_bytes: AtomicU64::new(0),
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
        wal.write(buf).await?;
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
        let _one = self.inner.flushing.lock().await;
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
            segment::write(inner.storage.as_ref(), &inner.seg_dir, seq, 0, &blocks)
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
        Ok(Some(path))
    }

    /// Every point of `tag` with `from <= ts <= to` (both ends **inclusive**), in time order, the
    /// later write winning. Blocks that fail their checksum are skipped and logged. See
    /// [`Historian::range_half_open`] for `[from, to)`.
    pub fn range(&self, tag: &TagPath, from: i64, to: i64) -> Vec<Point> {
        let t = Instant::now();
        let out = self.range_inner(tag, from, to);
        metrics::histogram!("mw_historian_query_seconds", "query" => "range")
            .record(t.elapsed().as_secs_f64());
        out
    }

    fn range_inner(&self, tag: &TagPath, from: i64, to: i64) -> Vec<Point> {
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
        let v = self.view(tag, from, hi);
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
                    let (lo, up) = (r.stats.t_min, r.stats.t_max);
                    let inside = lo >= from
                        && up <= hi
                        && query::bucket_of(lo, from, to, step)
                            == query::bucket_of(up, from, to, step);
                    if inside && !overlapped.contains(&(si, bi)) && !v.head_within(lo, up) {
                        stats_only.insert((si, bi));
                    }
                }
            }
        }
        let merged = self.merge(tag, &v, from, hi, &|si, bi| stats_only.contains(&(si, bi)));
        let points: Vec<(i64, f64)> = merged
            .iter()
            .filter_map(|(&ts, (value, quality))| good_number(value, quality).map(|x| (ts, x)))
            .collect();
        if agg == Agg::Twa {
            let prior = self.last_good_before(tag, from, step);
            return query::twa(&points, prior, from, to, step);
        }
        let mut items: Vec<Item> = points.iter().map(|&(t, x)| Item::Point(t, x)).collect();
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

    /// The newest point of `tag` (any quality), the later write winning: read from the head, or
    /// from the one block whose index says it ends last (only that block is decoded).
    pub fn latest(&self, tag: &TagPath) -> Option<Point> {
        let t = Instant::now();
        let out = self.latest_inner(tag);
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

    /// The last good numeric sample of `tag` before `t`, looking back in growing windows.
    fn last_good_before(&self, tag: &TagPath, t: i64, step: i64) -> Option<(i64, f64)> {
        let first = self.extent(tag)?.0;
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

    /// Blocks decoded by queries since open (tests check the stats shortcut with it).
    #[cfg(test)]
    fn decoded_blocks(&self) -> u64 {
        self.inner.decoded_blocks.load(Ordering::Relaxed)
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

    /// Sets `mw_historian_wal_bytes`, `mw_historian_disk_bytes` (segments + WAL) and
    /// `mw_historian_compression_ratio` (16 bytes per point — an `i64` timestamp and a 64-bit
    /// value — over the segment files' bytes; not set while there is no segment file).
    fn publish_sizes(&self) {
        let u = self.usage();
        metrics::gauge!("mw_historian_wal_bytes").set(u.wal_bytes as f64);
        metrics::gauge!("mw_historian_disk_bytes").set((u.segment_bytes + u.wal_bytes) as f64);
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

    fn pt(tag: &str, ts: i64, v: f64) -> Point {
        Point {
            tag: TagPath::new(tag).unwrap(),
            ts,
            value: Value::F64(v),
            quality: Quality::Good,
        }
    }

    fn open(disk: &MemStorage) -> (Historian, OpenReport) {
        let mut o = Options::new("/h");
        o.block_points = 4;
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
        let cut = Path::new("/h/segments").join(segment::file_name(99, 0));
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
        let good: Vec<(i64, f64)> = h
            .range(tag, i64::MIN, i64::MAX)
            .into_iter()
            .filter(|p| p.quality == Quality::Good)
            .filter_map(|p| Some((p.ts, p.value.as_f64().filter(|x| x.is_finite())?)))
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
    }

    fn agg_op() -> impl Strategy<Value = AggOp> {
        prop_oneof![
            5 => prop::collection::vec((0u8..2, -5i64..45, 0u8..6, any::<i16>(), 0u8..8), 1..14)
                .prop_map(AggOp::Write),
            2 => Just(AggOp::Flush),
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
                let (h, _) = open(&disk);
                for op in ops {
                    match op {
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

    #[derive(Debug, Clone)]
    enum Op {
        Write(Vec<(u8, i64, i32)>),
        Flush,
        Reopen,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => prop::collection::vec((0u8..3, 0i64..40, any::<i32>()), 1..12).prop_map(Op::Write),
            1 => Just(Op::Flush),
            1 => Just(Op::Reopen),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
        #[test]
        fn queries_equal_a_naive_model(ops in prop::collection::vec(op(), 1..25)) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let disk = MemStorage::new();
                let (mut h, _) = open(&disk);
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
                            h = open(&disk).0;
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
