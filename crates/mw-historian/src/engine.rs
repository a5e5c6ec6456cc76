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

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use mw_model::{Quality, TagPath, Value};

use crate::block::{Column, Points};
use crate::record::{self, Point};
use crate::segment::{self, Segment, SegmentError};
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
        };
        Ok((
            Historian {
                inner: Arc::new(inner),
            },
            report,
        ))
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
        wal.write(buf).await?;
        let full = {
            let mut st = write(&self.inner.state);
            st.head.insert(seq, points);
            st.head.points >= self.inner.opts.flush_points
        };
        drop(gate);
        metrics::counter!("mw_historian_points_written_total").increment(points.len() as u64);
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
        Ok(Some(path))
    }

    /// Every point of `tag` with `from <= ts <= to`, in time order, the later write winning.
    /// Blocks that fail their checksum are skipped and logged.
    pub fn range(&self, tag: &TagPath, from: i64, to: i64) -> Vec<Point> {
        // one consistent view: a flush may move the head to a segment at any moment
        let (segments, frozen, head) = {
            let st = read(&self.inner.state);
            let head: Vec<(i64, Entry)> = st
                .head
                .series
                .get(tag)
                .map(|s| s.range(from..=to).map(|(&t, e)| (t, e.clone())).collect())
                .unwrap_or_default();
            (st.segments.clone(), st.frozen.clone(), head)
        };
        let mut merged: BTreeMap<i64, (Value, Quality)> = BTreeMap::new();
        for seg in &segments {
            let Some(refs) = seg.series.get(tag) else {
                continue;
            };
            for r in refs {
                if r.stats.t_max < from || r.stats.t_min > to {
                    continue;
                }
                match seg.read_block(self.inner.storage.as_ref(), tag, r) {
                    Ok(p) => {
                        for (i, &ts) in p.ts.iter().enumerate() {
                            if ts < from || ts > to {
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
        if let Some(s) = frozen.as_deref().and_then(|f| f.series.get(tag)) {
            for (&ts, e) in s.range(from..=to) {
                merged.insert(ts, (e.value.clone(), e.quality.clone()));
            }
        }
        for (ts, e) in head {
            merged.insert(ts, (e.value, e.quality));
        }
        merged
            .into_iter()
            .map(|(ts, (value, quality))| Point {
                tag: tag.clone(),
                ts,
                value,
                quality,
            })
            .collect()
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
