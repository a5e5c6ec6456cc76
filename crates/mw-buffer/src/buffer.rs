//! The buffer itself: [`Buffer::open`], appends, reads, acknowledgements, the size bound.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak, mpsc};
use std::time::{Duration, Instant};

use mw_storage::storage::{Storage, StorageFile};

use crate::config::{ConfigError, FullPolicy, Options, Sync};
use crate::format::{self, Ledger, Record, Seq, framed_len};
use crate::ranges::RangeSet;

/// Sequence numbers reserved in the ledger ahead of use: the ledger is rewritten once per this
/// many appends, and a restart skips at most this many numbers.
pub const RESERVE_STEP: u64 = 1 << 16;
/// Most bytes one storage read of a reader takes.
const READ_CHUNK: usize = 1 << 20;
/// Most payload bytes one `read_from` returns (beyond its first record).
const READ_BYTES: usize = 8 << 20;

const LEDGER: &str = "ledger";
const LEDGER_TMP: &str = "ledger.tmp";
const QUARANTINE: &str = "quarantine";

#[derive(Debug, thiserror::Error)]
pub enum BufferError {
    #[error("buffer: cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "buffer: a payload of {len} bytes is larger than the limit of {max} (segment_bytes less the record header)"
    )]
    TooLarge { len: usize, max: usize },
    #[error(
        "buffer: records of {bytes} bytes do not fit in one segment of {max} bytes; append them in smaller batches"
    )]
    BatchTooLarge { bytes: u64, max: u64 },
    #[error(
        "buffer full: {used} of {max_bytes} bytes used, {needed} more needed (full_policy = {policy}); \
         the records were not stored — acknowledge records or raise buffer.max_bytes"
    )]
    Full {
        needed: u64,
        used: u64,
        max_bytes: u64,
        policy: &'static str,
    },
    #[error("buffer: refuses writes after a failure it could not undo ({0})")]
    Broken(String),
    #[error("buffer: is closed")]
    Closed,
    #[error("buffer: ack of record {seq}, which was never appended (the next is {next})")]
    InvalidAck { seq: Seq, next: Seq },
    #[error("buffer: invalid options: {}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Config(Vec<ConfigError>),
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> BufferError + 'a {
    move |source| BufferError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

type Result<T, E = BufferError> = std::result::Result<T, E>;

/// A torn tail cut off at open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Truncated {
    pub segment: PathBuf,
    /// Offset the segment was cut at.
    pub at: u64,
    pub bytes: u64,
    /// Records that had started in the cut bytes (at least one partial record).
    pub records: u64,
    pub reason: &'static str,
}

/// Damaged bytes inside a segment, moved aside at open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quarantined {
    pub segment: PathBuf,
    pub at: u64,
    pub bytes: u64,
    /// Where the damaged bytes were copied (under `quarantine/`).
    pub file: PathBuf,
    /// Records lost in them, when known (a span between two valid runs: exact).
    pub lost_records: Option<u64>,
    pub reason: &'static str,
}

/// The state of the ack ledger found at open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LedgerFound {
    /// None yet (a new buffer).
    Missing,
    Valid,
    /// Unreadable: every record on disk is delivered again, sequence numbers continue past
    /// the highest on disk plus [`RESERVE_STEP`].
    Damaged,
}

/// What [`Buffer::open`] found and did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenReport {
    /// Segment files holding records (besides the new open one).
    pub segments: usize,
    pub pending_records: u64,
    /// Where a reader resumes: the first record after the acknowledged prefix.
    pub first_unacked: Option<Seq>,
    /// The sequence number the next append gets.
    pub next_seq: Seq,
    /// Every record up to this one was acknowledged.
    pub acked: Seq,
    pub truncated: Option<Truncated>,
    pub quarantined: Vec<Quarantined>,
    /// Fully acknowledged or empty segment files deleted.
    pub removed_segments: usize,
    pub ledger: LedgerFound,
    pub used_bytes: u64,
}

/// Counters and levels (also on the `metrics` recorder, see the crate docs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub appended_records: u64,
    pub appended_bytes: u64,
    /// Unacknowledged records deleted by `drop_oldest`.
    pub dropped_oldest: u64,
    /// Records refused by `drop_newest`.
    pub dropped_newest: u64,
    /// Blocking appends that gave up after `block_timeout` (their records were not stored).
    pub block_timeouts: u64,
    /// Times the buffer became full (one warning is logged per episode).
    pub overflow_episodes: u64,
    /// Records found damaged while reading (skipped; quarantined properly at the next open).
    pub corrupt_records: u64,
    /// Fsyncs of segment files (with group commit, fewer than appends under `sync = always`).
    pub syncs: u64,
    pub used_bytes: u64,
    pub max_bytes: u64,
    /// Segment files, the open one included.
    pub segments: usize,
    pub pending_records: u64,
    pub acked: Seq,
    pub next_seq: Seq,
}

struct Seg {
    path: PathBuf,
    count: u64,
    bytes: u64,
}

struct Episode {
    since: Instant,
    dropped: u64,
    refused: u64,
}

struct State {
    /// By first sequence number; the last one is the open segment.
    segs: BTreeMap<Seq, Seg>,
    file: Box<dyn StorageFile>,
    /// A second handle on the open segment, synced without holding the state lock.
    sync_file: Arc<Mutex<Box<dyn StorageFile>>>,
    next_seq: Seq,
    written: Seq,
    durable: Seq,
    acked: Seq,
    /// Acknowledged records above the prefix, as ranges.
    acked_above: RangeSet,
    ledger: Ledger,
    ledger_at: Instant,
    used: u64,
    /// Where the last two reads stopped: (next seq, its segment, byte offset), the most recent
    /// first — two, so that two sequential readers (the uplink's live flow and its backlog) do
    /// not each rescan a segment from its start.
    cursors: [Option<(Seq, Seq, u64)>; 2],
    broken: Option<String>,
    closed: bool,
    episode: Option<Episode>,
    stats: Stats,
}

struct Metrics {
    appended: metrics::Counter,
    appended_bytes: metrics::Counter,
    dropped_oldest: metrics::Counter,
    dropped_newest: metrics::Counter,
    block_timeouts: metrics::Counter,
    corrupt: metrics::Counter,
    bytes: metrics::Gauge,
    pending: metrics::Gauge,
}

impl Metrics {
    fn new(name: &str) -> Metrics {
        let i = name.to_string();
        let drop = |reason: &'static str| {
            metrics::counter!("mw_buffer_dropped_records_total", "component" => "buffer",
                "instance" => i.clone(), "reason" => reason)
        };
        Metrics {
            appended: metrics::counter!("mw_buffer_appended_records_total", "component" => "buffer", "instance" => i.clone()),
            appended_bytes: metrics::counter!("mw_buffer_appended_bytes_total", "component" => "buffer", "instance" => i.clone()),
            dropped_oldest: drop("drop_oldest"),
            dropped_newest: drop("drop_newest"),
            block_timeouts: metrics::counter!("mw_buffer_block_timeouts_total", "component" => "buffer", "instance" => i.clone()),
            corrupt: metrics::counter!("mw_buffer_corrupt_records_total", "component" => "buffer", "instance" => i.clone()),
            bytes: metrics::gauge!("mw_buffer_bytes", "component" => "buffer", "instance" => i.clone()),
            pending: metrics::gauge!("mw_buffer_pending_records", "component" => "buffer", "instance" => i),
        }
    }
}

struct Inner {
    storage: Arc<dyn Storage>,
    opts: Options,
    state: Mutex<State>,
    /// Serialises fsyncs of the open segment (group commit).
    sync_lock: Mutex<()>,
    /// Signalled when space is freed (blocking appends wait on it with `state`).
    space_cv: Condvar,
    space: tokio::sync::Notify,
    /// Signalled when records are appended.
    data: tokio::sync::Notify,
    metrics: Metrics,
    _ticker: mpsc::Sender<()>,
}

/// The disk buffer (see the crate docs). Cheap to clone; clones share one buffer.
#[derive(Clone)]
pub struct Buffer {
    inner: Arc<Inner>,
}

fn seg_name(first: Seq) -> String {
    format!("{first:020}.seg")
}

fn seg_first(path: &Path) -> Option<Seq> {
    let name = path.file_name()?.to_str()?;
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

enum Wait {
    No,
    Until(Instant),
}

impl Buffer {
    /// Opens (or creates) the buffer in `opts.dir`: cuts a torn tail, quarantines damage,
    /// deletes fully acknowledged segments, and starts a new open segment (see the crate docs).
    pub fn open(storage: Arc<dyn Storage>, opts: Options) -> Result<(Buffer, OpenReport)> {
        let problems = opts.problems();
        if !problems.is_empty() {
            return Err(BufferError::Config(problems));
        }
        let dir = opts.dir.clone();
        let s = &*storage;
        s.create_dir_all(&dir).map_err(io_err("create", &dir))?;
        let files = s.list(&dir).map_err(io_err("list", &dir))?;
        for p in &files {
            if p.extension().is_some_and(|e| e == "tmp") {
                s.remove(p).map_err(io_err("remove", p))?;
            }
        }
        let ledger_path = dir.join(LEDGER);
        let (ledger, found) = match s.read(&ledger_path) {
            Ok(b) => match Ledger::decode(&b) {
                Some(l) => (l, LedgerFound::Valid),
                None => (Ledger::default(), LedgerFound::Damaged),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                (Ledger::default(), LedgerFound::Missing)
            }
            Err(e) => return Err(io_err("read", &ledger_path)(e)),
        };
        if found == LedgerFound::Damaged {
            tracing::error!(path = %ledger_path.display(), "buffer ack ledger is damaged; every record on disk will be delivered again");
        }
        let found_segs: Vec<(Seq, PathBuf)> = files
            .iter()
            .filter_map(|p| seg_first(p).map(|f| (f, p.clone())))
            .collect();
        let mut report = OpenReport {
            segments: 0,
            pending_records: 0,
            first_unacked: None,
            next_seq: 0,
            acked: ledger.acked,
            truncated: None,
            quarantined: Vec::new(),
            removed_segments: 0,
            ledger: found,
            used_bytes: 0,
        };
        let mut segs: BTreeMap<Seq, Seg> = BTreeMap::new();
        let mut highest_name = 0;
        for (i, (first, path)) in found_segs.iter().enumerate() {
            let (first, path) = (*first, path.clone());
            highest_name = highest_name.max(first);
            let below = found_segs.get(i + 1).map_or(Seq::MAX, |(f, _)| *f);
            let is_last = i + 1 == found_segs.len();
            let buf = s.read(&path).map_err(io_err("read", &path))?;
            let sc = format::scan(&buf, first, below);
            if sc.holes.is_empty() && sc.tail.is_none() {
                segs.insert(
                    first,
                    Seg {
                        path,
                        count: sc.runs.first().map_or(0, |r| r.count),
                        bytes: buf.len() as u64,
                    },
                );
                continue;
            }
            // quarantine every damaged span but a torn tail of the newest segment
            let mut spans: Vec<(&format::Damaged, Option<u64>)> = Vec::new();
            for h in &sc.holes {
                let before = sc
                    .runs
                    .iter()
                    .rev()
                    .find(|r| r.end <= h.at)
                    .map_or(first, |r| r.last() + 1);
                let after = sc.runs.iter().find(|r| r.start >= h.at + h.len);
                spans.push((h, after.map(|r| r.first - before)));
            }
            if let Some(t) = &sc.tail
                && !is_last
            {
                spans.push((t, None));
            }
            if !spans.is_empty() {
                let qdir = dir.join(QUARANTINE);
                s.create_dir_all(&qdir).map_err(io_err("create", &qdir))?;
                for (d, lost) in spans {
                    let qpath = qdir.join(format!("{}.{}.bad", seg_name(first), d.at));
                    let bytes = &buf[d.at as usize..(d.at + d.len) as usize];
                    write_synced(s, &qpath, bytes)?;
                    tracing::error!(segment = %path.display(), at = d.at, bytes = d.len, reason = d.reason,
                        quarantine = %qpath.display(), lost_records = ?lost, "buffer segment damaged; damaged bytes quarantined, the records around them kept");
                    report.quarantined.push(Quarantined {
                        segment: path.clone(),
                        at: d.at,
                        bytes: d.len,
                        file: qpath,
                        lost_records: lost,
                        reason: d.reason,
                    });
                }
                s.sync_dir(&qdir).map_err(io_err("sync", &qdir))?;
            }
            // every run not at the start of the file becomes a segment of its own
            let mut keeps_original = false;
            for r in &sc.runs {
                let bytes = r.end - r.start;
                if r.start == 0 {
                    keeps_original = true;
                    segs.insert(
                        first,
                        Seg {
                            path: path.clone(),
                            count: r.count,
                            bytes,
                        },
                    );
                    continue;
                }
                let piece = dir.join(seg_name(r.first));
                let tmp = dir.join(format!("{}.tmp", seg_name(r.first)));
                write_synced(s, &tmp, &buf[r.start as usize..r.end as usize])?;
                s.rename(&tmp, &piece).map_err(io_err("rename", &tmp))?;
                keeps_original |= piece == path;
                segs.insert(
                    r.first,
                    Seg {
                        path: piece,
                        count: r.count,
                        bytes,
                    },
                );
            }
            let first_end = sc
                .runs
                .first()
                .filter(|r| r.start == 0)
                .map_or(0, |r| r.end);
            if keeps_original {
                s.truncate(&path, first_end)
                    .map_err(io_err("truncate", &path))?;
            } else {
                s.remove(&path).map_err(io_err("remove", &path))?;
                s.sync_dir(&dir).map_err(io_err("sync", &dir))?;
            }
            if let Some(t) = &sc.tail
                && is_last
            {
                let records = format::frames_started(&buf[t.at as usize..]);
                tracing::warn!(segment = %path.display(), at = t.at, bytes = t.len, records, reason = t.reason,
                    "buffer: torn tail of the newest segment cut off (a write interrupted by a crash)");
                report.truncated = Some(Truncated {
                    segment: path.clone(),
                    at: t.at,
                    bytes: t.len,
                    records,
                    reason: t.reason,
                });
            }
        }
        let mut next_seq = segs
            .iter()
            .map(|(f, sg)| f + sg.count)
            .chain([highest_name, ledger.acked.saturating_add(1), 1])
            .max()
            .unwrap_or(1);
        if found == LedgerFound::Damaged {
            next_seq += RESERVE_STEP;
        }
        next_seq = next_seq.max(ledger.reserved);
        // fully acknowledged and empty segments go
        let acked = ledger.acked;
        let gone: Vec<Seq> = segs
            .iter()
            .filter(|(f, sg)| sg.count == 0 || *f + sg.count - 1 <= acked)
            .map(|(f, _)| *f)
            .collect();
        for f in gone {
            if let Some(sg) = segs.remove(&f) {
                s.remove(&sg.path).map_err(io_err("remove", &sg.path))?;
                report.removed_segments += 1;
            }
        }
        if report.removed_segments > 0 {
            s.sync_dir(&dir).map_err(io_err("sync", &dir))?;
        }
        let path = dir.join(seg_name(next_seq));
        let file = s.open_append(&path).map_err(io_err("create", &path))?;
        let sync_file = s.open_append(&path).map_err(io_err("open", &path))?;
        s.sync_dir(&dir).map_err(io_err("sync", &dir))?;
        report.segments = segs.len();
        segs.insert(
            next_seq,
            Seg {
                path,
                count: 0,
                bytes: 0,
            },
        );
        let used = segs.values().map(|s| s.bytes).sum();
        let st = State {
            segs,
            file,
            sync_file: Arc::new(Mutex::new(sync_file)),
            next_seq,
            written: next_seq - 1,
            durable: next_seq - 1,
            acked,
            acked_above: RangeSet::default(),
            ledger,
            ledger_at: Instant::now(),
            used,
            cursors: [None, None],
            broken: None,
            closed: false,
            episode: None,
            stats: Stats {
                max_bytes: opts.max_bytes,
                ..Stats::default()
            },
        };
        let (tx, rx) = mpsc::channel();
        let inner = Arc::new(Inner {
            metrics: Metrics::new(&opts.name),
            storage,
            opts,
            state: Mutex::new(st),
            sync_lock: Mutex::new(()),
            space_cv: Condvar::new(),
            space: tokio::sync::Notify::new(),
            data: tokio::sync::Notify::new(),
            _ticker: tx,
        });
        let b = Buffer { inner };
        if found == LedgerFound::Damaged {
            let mut st = b.lock();
            let reserved = st.next_seq;
            b.persist_ledger(&mut st, reserved)?;
        }
        {
            let st = b.lock();
            report.next_seq = st.next_seq;
            report.pending_records = pending(&st);
            report.first_unacked = b.successor(&st, st.acked);
            report.used_bytes = st.used;
            b.refresh_gauges(&st);
        }
        spawn_ticker(Arc::downgrade(&b.inner), rx, b.tick_period());
        tracing::info!(dir = %b.inner.opts.dir.display(), segments = report.segments, pending = report.pending_records,
            next_seq = report.next_seq, acked = report.acked, "buffer opened");
        Ok((b, report))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn opts(&self) -> &Options {
        &self.inner.opts
    }

    fn tick_period(&self) -> Duration {
        let p = match self.opts().sync {
            Sync::Interval(d) => d.min(self.opts().ack_persist),
            Sync::Always => self.opts().ack_persist,
        };
        p.max(Duration::from_millis(10))
    }

    /// Appends one record; answers its sequence number once it is durable under the sync
    /// policy. When full: see [`FullPolicy`] (a blocking append waits at most `block_timeout`).
    pub fn append(&self, ts: i64, payload: &[u8]) -> Result<Seq> {
        self.append_batch(&[(ts, payload)]).map(|(first, _)| first)
    }

    /// Appends records together (one write, one fsync); answers the first and last sequence
    /// numbers (consecutive). All or none are stored; they must fit in one segment.
    pub fn append_batch<P: AsRef<[u8]>>(&self, records: &[(i64, P)]) -> Result<(Seq, Seq)> {
        let deadline = Instant::now() + self.opts().block_timeout;
        match self.append_inner(records, Wait::Until(deadline))? {
            Some(r) => Ok(r),
            None => unreachable_full(),
        }
    }

    /// [`Buffer::append`] for async callers: with `block` it waits (without a timeout) until
    /// acknowledgements free space. The I/O runs on tokio's blocking pool, so a future dropped
    /// while it runs may still have stored the record (under a number its caller never saw).
    pub async fn append_async(&self, ts: i64, payload: Vec<u8>) -> Result<Seq> {
        self.append_batch_async(vec![(ts, payload)])
            .await
            .map(|(first, _)| first)
    }

    /// [`Buffer::append_batch`] for async callers (see [`Buffer::append_async`]).
    pub async fn append_batch_async(&self, records: Vec<(i64, Vec<u8>)>) -> Result<(Seq, Seq)> {
        let records = Arc::new(records);
        loop {
            let space = self.inner.space.notified();
            tokio::pin!(space);
            space.as_mut().enable();
            let (me, recs) = (self.clone(), records.clone());
            let r = tokio::task::spawn_blocking(move || me.append_inner(&recs, Wait::No))
                .await
                .map_err(|e| BufferError::Broken(format!("append task failed: {e}")))??;
            match r {
                Some(range) => return Ok(range),
                None => space.await,
            }
        }
    }

    /// Writes the records (waiting for space per `wait`), then waits until they are durable.
    /// `None`: full under `block` and `Wait::No`.
    fn append_inner<P: AsRef<[u8]>>(
        &self,
        records: &[(i64, P)],
        wait: Wait,
    ) -> Result<Option<(Seq, Seq)>> {
        let mut st = self.lock();
        let range = loop {
            match self.try_append(&mut st, records)? {
                Some(r) => break r,
                None => {
                    let Wait::Until(deadline) = wait else {
                        return Ok(None);
                    };
                    let now = Instant::now();
                    if now >= deadline {
                        let needed: u64 = records
                            .iter()
                            .map(|(_, p)| framed_len(p.as_ref().len()))
                            .sum();
                        st.stats.block_timeouts += 1;
                        self.inner.metrics.block_timeouts.increment(1);
                        if let Some(e) = st.episode.as_mut() {
                            e.refused += records.len() as u64;
                        }
                        return Err(BufferError::Full {
                            needed,
                            used: st.used,
                            max_bytes: self.opts().max_bytes,
                            policy: FullPolicy::Block.as_str(),
                        });
                    }
                    st = self
                        .inner
                        .space_cv
                        .wait_timeout(st, deadline - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        };
        drop(st);
        self.inner.data.notify_waiters();
        if self.opts().sync == Sync::Always {
            self.sync_to(range.1)?;
        }
        Ok(Some(range))
    }

    /// One attempt under the lock: `None` if full under `block`.
    fn try_append<P: AsRef<[u8]>>(
        &self,
        st: &mut State,
        records: &[(i64, P)],
    ) -> Result<Option<(Seq, Seq)>> {
        if st.closed {
            return Err(BufferError::Closed);
        }
        if let Some(why) = &st.broken {
            return Err(BufferError::Broken(why.clone()));
        }
        let opts = self.opts();
        let max = opts.max_payload();
        let mut needed = 0u64;
        for (_, p) in records {
            let len = p.as_ref().len();
            if len > max {
                return Err(BufferError::TooLarge { len, max });
            }
            needed += framed_len(len);
        }
        if records.is_empty() {
            return Ok(Some((st.next_seq, st.next_seq.saturating_sub(1))));
        }
        if needed > opts.segment_bytes {
            return Err(BufferError::BatchTooLarge {
                bytes: needed,
                max: opts.segment_bytes,
            });
        }
        if active(st).bytes > 0 && active(st).bytes + needed > opts.segment_bytes {
            self.roll(st)?;
        }
        let mut was_full = false;
        while st.used + needed > opts.max_bytes {
            // an open segment every record of which is acknowledged can go at once
            let (af, a) = st
                .segs
                .last_key_value()
                .map(|(f, s)| (*f, s.count))
                .unwrap_or((0, 0));
            if a > 0 && af + a - 1 <= st.acked {
                self.roll(st)?;
                self.delete_acked(st)?;
                continue;
            }
            was_full = true;
            self.enter_full(st);
            match opts.full_policy {
                FullPolicy::Block => return Ok(None),
                FullPolicy::DropNewest => {
                    let n = records.len() as u64;
                    st.stats.dropped_newest += n;
                    self.inner.metrics.dropped_newest.increment(n);
                    if let Some(e) = st.episode.as_mut() {
                        e.dropped += n;
                    }
                    return Err(BufferError::Full {
                        needed,
                        used: st.used,
                        max_bytes: opts.max_bytes,
                        policy: opts.full_policy.as_str(),
                    });
                }
                FullPolicy::DropOldest => {
                    let oldest = *st.segs.keys().next().expect("the open segment exists");
                    if oldest == active_first(st) {
                        // cannot happen: the open segment alone leaves room (max_bytes >= 2 segments)
                        return Err(BufferError::Broken(
                            "drop_oldest found nothing to drop".into(),
                        ));
                    }
                    self.drop_segment(st, oldest)?;
                }
            }
        }
        if !was_full && st.episode.is_some() && st.used + needed <= opts.max_bytes / 2 {
            self.leave_full(st);
        }
        let first = st.next_seq;
        let last = first + records.len() as u64 - 1;
        if last >= st.ledger.reserved {
            self.persist_ledger(st, last + 1 + RESERVE_STEP)?;
        }
        let mut buf = Vec::with_capacity(needed as usize);
        for (i, (ts, p)) in records.iter().enumerate() {
            format::encode_record(first + i as u64, *ts, p.as_ref(), &mut buf);
        }
        let good = active(st).bytes;
        if let Err(source) = st.file.append(&buf) {
            let path = active(st).path.clone();
            // cut back so a later record never follows garbage
            let undo = self
                .inner
                .storage
                .truncate(&path, good)
                .and_then(|()| self.inner.storage.open_append(&path));
            match undo {
                Ok(f) => st.file = f,
                Err(e) => st.broken = Some(format!("{source}; then: {e}")),
            }
            return Err(BufferError::Io {
                op: "append to",
                path,
                source,
            });
        }
        let seg = active_mut(st);
        seg.count += records.len() as u64;
        seg.bytes += needed;
        st.used += needed;
        st.next_seq = last + 1;
        st.written = last;
        st.stats.appended_records += records.len() as u64;
        st.stats.appended_bytes += needed;
        self.inner.metrics.appended.increment(records.len() as u64);
        self.inner.metrics.appended_bytes.increment(needed);
        self.inner.metrics.bytes.set(st.used as f64);
        Ok(Some((first, last)))
    }

    fn enter_full(&self, st: &mut State) {
        if st.episode.is_none() {
            st.stats.overflow_episodes += 1;
            st.episode = Some(Episode {
                since: Instant::now(),
                dropped: 0,
                refused: 0,
            });
            tracing::warn!(buffer = %self.opts().name, used = st.used, max_bytes = self.opts().max_bytes,
                policy = self.opts().full_policy.as_str(),
                "buffer full; applying its full policy until it is half empty again (one message per episode)");
        }
    }

    fn leave_full(&self, st: &mut State) {
        if let Some(e) = st.episode.take() {
            tracing::info!(buffer = %self.opts().name, dropped = e.dropped, refused = e.refused,
                seconds = e.since.elapsed().as_secs_f64(), "buffer no longer full");
        }
    }

    /// Seals the open segment (synced) and starts the next.
    fn roll(&self, st: &mut State) -> Result<()> {
        let old = active(st).path.clone();
        st.file.sync().map_err(io_err("sync", &old))?;
        st.stats.syncs += 1;
        st.durable = st.written;
        let first = st.next_seq;
        let path = self.opts().dir.join(seg_name(first));
        let s = &*self.inner.storage;
        let file = s.open_append(&path).map_err(io_err("create", &path))?;
        let sync_file = s.open_append(&path).map_err(io_err("open", &path))?;
        s.sync_dir(&self.opts().dir)
            .map_err(io_err("sync", &self.opts().dir))?;
        st.file = file;
        st.sync_file = Arc::new(Mutex::new(sync_file));
        st.segs.insert(
            first,
            Seg {
                path,
                count: 0,
                bytes: 0,
            },
        );
        Ok(())
    }

    /// Deletes sealed segments from the oldest on while each is fully acknowledged.
    fn delete_acked(&self, st: &mut State) -> Result<()> {
        let mut freed = false;
        while let Some((&f, sg)) = st.segs.first_key_value() {
            if f == active_first(st) || (sg.count > 0 && f + sg.count - 1 > st.acked) {
                break;
            }
            self.remove_segment(st, f)?;
            freed = true;
        }
        if freed {
            self.space_freed(st);
        }
        Ok(())
    }

    /// `drop_oldest`: deletes a sealed segment, acknowledged or not.
    fn drop_segment(&self, st: &mut State, first: Seq) -> Result<()> {
        let count = st.segs.get(&first).map_or(0, |s| s.count);
        if count > 0 {
            let last = first + count - 1;
            let acked_before = if st.acked >= first {
                st.acked.min(last) - first + 1
            } else {
                0
            };
            let acked_in = st.acked_above.count_in(first, last);
            let lost = count - acked_before - acked_in;
            st.stats.dropped_oldest += lost;
            self.inner.metrics.dropped_oldest.increment(lost);
            if let Some(e) = st.episode.as_mut() {
                e.dropped += lost;
            }
            if st.acked < last {
                st.acked = last;
                st.acked_above.remove_through(last);
                self.advance(st);
            }
        }
        self.remove_segment(st, first)
    }

    fn remove_segment(&self, st: &mut State, first: Seq) -> Result<()> {
        if let Some(sg) = st.segs.remove(&first) {
            let s = &*self.inner.storage;
            s.remove(&sg.path).map_err(io_err("remove", &sg.path))?;
            s.sync_dir(&self.opts().dir)
                .map_err(io_err("sync", &self.opts().dir))?;
            st.used -= sg.bytes;
            for c in &mut st.cursors {
                if c.is_some_and(|(_, f, _)| f == first) {
                    *c = None;
                }
            }
            self.inner.metrics.bytes.set(st.used as f64);
        }
        Ok(())
    }

    fn space_freed(&self, st: &mut State) {
        if st.episode.is_some() && st.used <= self.opts().max_bytes / 2 {
            self.leave_full(st);
        }
        self.inner.space_cv.notify_all();
        self.inner.space.notify_waiters();
    }

    /// Makes everything written up to `seq` durable; concurrent callers share one fsync.
    fn sync_to(&self, seq: Seq) -> Result<()> {
        let _g = self
            .inner
            .sync_lock
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let (target, file, path) = {
            let st = self.lock();
            if st.durable >= seq {
                return Ok(());
            }
            if let Some(why) = &st.broken {
                return Err(BufferError::Broken(why.clone()));
            }
            (st.written, st.sync_file.clone(), active(&st).path.clone())
        };
        let r = file.lock().unwrap_or_else(|e| e.into_inner()).sync();
        let mut st = self.lock();
        match r {
            Ok(()) => {
                st.durable = st.durable.max(target);
                st.stats.syncs += 1;
                Ok(())
            }
            Err(source) => {
                // after a failed fsync nothing says what reached the disk
                st.broken = Some(format!("fsync of {} failed: {source}", path.display()));
                Err(BufferError::Io {
                    op: "sync",
                    path,
                    source,
                })
            }
        }
    }

    /// Writes the ledger atomically (tmp, sync, rename, sync dir).
    fn persist_ledger(&self, st: &mut State, reserved: Seq) -> Result<()> {
        let l = Ledger {
            acked: st.acked,
            reserved,
        };
        let dir = &self.opts().dir;
        let (tmp, path) = (dir.join(LEDGER_TMP), dir.join(LEDGER));
        let s = &*self.inner.storage;
        write_synced(s, &tmp, &l.encode())?;
        s.rename(&tmp, &path).map_err(io_err("rename", &tmp))?;
        st.ledger = l;
        st.ledger_at = Instant::now();
        Ok(())
    }

    /// Acknowledges one record. The ledger advances over the contiguous acknowledged prefix;
    /// segments wholly inside it are deleted. Acking twice, or a record already dropped, is a
    /// no-op. The ledger is persisted at most `ack_persist` later (or at [`Buffer::flush`]):
    /// an error here means the ack is recorded but persisting it failed (retried later).
    pub fn ack(&self, seq: Seq) -> Result<()> {
        let mut st = self.lock();
        if seq >= st.next_seq {
            return Err(BufferError::InvalidAck {
                seq,
                next: st.next_seq,
            });
        }
        if seq <= st.acked || !exists(&st, seq) {
            return Ok(());
        }
        st.acked_above.insert(seq);
        self.after_ack(&mut st)
    }

    /// Acknowledges every record up to `seq` (an in-order consumer's cheap path).
    pub fn ack_through(&self, seq: Seq) -> Result<()> {
        let mut st = self.lock();
        if seq >= st.next_seq {
            return Err(BufferError::InvalidAck {
                seq,
                next: st.next_seq,
            });
        }
        if seq <= st.acked {
            return Ok(());
        }
        st.acked = seq;
        st.acked_above.remove_through(seq);
        self.after_ack(&mut st)
    }

    fn after_ack(&self, st: &mut State) -> Result<()> {
        self.advance(st);
        self.delete_acked(st)?;
        if st.acked != st.ledger.acked && st.ledger_at.elapsed() >= self.opts().ack_persist {
            let r = st.ledger.reserved;
            self.persist_ledger(st, r)?;
        }
        Ok(())
    }

    /// Moves the acknowledged prefix over acknowledged successors.
    fn advance(&self, st: &mut State) {
        while let Some(next) = self.successor(st, st.acked) {
            if !st.acked_above.remove(next) {
                break;
            }
            st.acked = next;
        }
    }

    /// The first record after `seq`.
    fn successor(&self, st: &State, seq: Seq) -> Option<Seq> {
        let n = seq.checked_add(1)?;
        if exists(st, n) {
            return Some(n);
        }
        st.segs
            .range(n..)
            .find(|(_, s)| s.count > 0)
            .map(|(f, _)| *f)
    }

    /// Up to `max` records from the first one at or after `from`, in order (an empty vector:
    /// none yet). Records are returned whether or not they were acknowledged; a consumer
    /// starts at [`OpenReport::first_unacked`] and continues after the last one it got.
    pub fn read_from(&self, from: Seq, max: usize) -> Result<Vec<Record>> {
        let mut st = self.lock();
        let mut out = Vec::new();
        let mut seq = from;
        let mut bytes = 0usize;
        while out.len() < max && bytes < READ_BYTES {
            let Some(start) = (if exists(&st, seq) {
                Some(seq)
            } else {
                self.successor(&st, seq.saturating_sub(1))
                    .filter(|s| *s >= seq)
            }) else {
                break;
            };
            seq = start;
            let (&first, _) = st.segs.range(..=seq).next_back().expect("exists");
            let hit = st
                .cursors
                .iter()
                .position(|c| c.is_some_and(|(s, f, _)| s == seq && f == first));
            let offset = match hit {
                _ if seq == first => 0,
                Some(i) => st.cursors[i].map_or(0, |(_, _, off)| off),
                None => {
                    let (n, off) = self.read_seg(&mut st, first, 0, first, seq - first, None)?;
                    if n != seq {
                        seq = n; // damage found on the way: start again from what follows it
                        continue;
                    }
                    off
                }
            };
            let want = (max - out.len()) as u64;
            let (next, off) = self.read_seg(&mut st, first, offset, seq, want, Some(&mut out))?;
            bytes = out.iter().map(|r| r.payload.len()).sum();
            let new = Some((next, first, off));
            match hit {
                Some(0) => st.cursors[0] = new,
                Some(_) => st.cursors = [new, st.cursors[0]],
                None => st.cursors = [new, st.cursors[0]],
            }
            if next == seq {
                break; // nothing readable (damage found and skipped, or empty)
            }
            seq = next;
        }
        Ok(out)
    }

    /// Reads up to `n` records of segment `first` from byte `off` (record `seq`); answers the
    /// next sequence number and offset. Damage found here is counted and the rest of the
    /// segment skipped (the next open quarantines it).
    fn read_seg(
        &self,
        st: &mut State,
        first: Seq,
        mut off: u64,
        mut seq: Seq,
        n: u64,
        mut out: Option<&mut Vec<Record>>,
    ) -> Result<(Seq, u64)> {
        let Some(sg) = st.segs.get(&first) else {
            return Ok((seq, off));
        };
        let (path, end, bytes) = (sg.path.clone(), first + sg.count, sg.bytes);
        let stop = seq.saturating_add(n).min(end);
        let s = &*self.inner.storage;
        let mut read_bytes = 0usize;
        // the byte cap bounds what is returned; skipping to a position (`out` is `None`) must
        // reach it, or the caller would start before it
        while seq < stop && (out.is_none() || read_bytes < READ_BYTES) {
            let len = (bytes - off).min(READ_CHUNK as u64) as usize;
            let mut buf = s
                .read_range(&path, off, len)
                .map_err(io_err("read", &path))?;
            let mut pos = 0usize;
            if format::frame_at(&buf).is_none() && buf.len() >= format::FRAME_HEADER {
                // a frame longer than one chunk
                let flen = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as u64;
                let total = format::FRAME_HEADER as u64 + flen;
                if total <= bytes - off {
                    buf = s
                        .read_range(&path, off, total as usize)
                        .map_err(io_err("read", &path))?;
                }
            }
            while seq < stop {
                match format::frame_at(&buf[pos..]) {
                    Some((rs, ts, payload, flen)) if rs == seq => {
                        if let Some(out) = out.as_deref_mut() {
                            out.push(Record {
                                seq,
                                ts,
                                payload: payload.to_vec(),
                            });
                        }
                        read_bytes += payload.len();
                        pos += flen;
                        seq += 1;
                    }
                    _ => break,
                }
            }
            if pos == 0 {
                let lost = end - seq;
                tracing::error!(segment = %path.display(), at = off, lost, "buffer: damaged record while reading; the rest of the segment is skipped");
                st.stats.corrupt_records += lost;
                self.inner.metrics.corrupt.increment(lost);
                if first == active_first(st) {
                    // new records must not follow the damage: they go to a new segment
                    self.roll(st)?;
                }
                if let Some(sg) = st.segs.get_mut(&first) {
                    sg.count = seq - first;
                }
                // the records from `seq` on do not exist any more
                let succ = self.successor(st, seq.saturating_sub(1));
                return Ok((succ.unwrap_or(seq), off));
            }
            off += pos as u64;
        }
        Ok((seq, off))
    }

    /// Waits until there is a record at or after `from`, then answers up to `max` of them.
    pub async fn next_batch(&self, from: Seq, max: usize) -> Result<Vec<Record>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        loop {
            let data = self.inner.data.notified();
            tokio::pin!(data);
            data.as_mut().enable();
            let me = self.clone();
            let v = tokio::task::spawn_blocking(move || me.read_from(from, max))
                .await
                .map_err(|e| BufferError::Broken(format!("read task failed: {e}")))??;
            if !v.is_empty() {
                return Ok(v);
            }
            data.await;
        }
    }

    /// Syncs what was appended and persists the ledger if it moved.
    pub fn flush(&self) -> Result<()> {
        let written = self.lock().written;
        self.sync_to(written)?;
        let mut st = self.lock();
        if st.acked != st.ledger.acked {
            let r = st.ledger.reserved;
            self.persist_ledger(&mut st, r)?;
        }
        Ok(())
    }

    /// Flushes and closes the buffer: later calls on any clone fail with
    /// [`BufferError::Closed`]. Close before opening the same directory again.
    pub fn close(&self) -> Result<()> {
        let r = self.flush();
        self.lock().closed = true;
        r
    }

    /// The first record after the acknowledged prefix, if any.
    pub fn first_unacked(&self) -> Option<Seq> {
        let st = self.lock();
        self.successor(&st, st.acked)
    }

    pub fn stats(&self) -> Stats {
        let st = self.lock();
        self.refresh_gauges(&st);
        let mut s = st.stats.clone();
        s.used_bytes = st.used;
        s.segments = st.segs.len();
        s.pending_records = pending(&st);
        s.acked = st.acked;
        s.next_seq = st.next_seq;
        s
    }

    fn refresh_gauges(&self, st: &State) {
        self.inner.metrics.bytes.set(st.used as f64);
        self.inner.metrics.pending.set(pending(st) as f64);
    }

    /// The ticker's work: sync under `Interval`, persist the ledger when due.
    fn tick(&self) {
        let mut st = self.lock();
        if st.closed {
            return;
        }
        self.refresh_gauges(&st);
        if st.acked != st.ledger.acked && st.ledger_at.elapsed() >= self.opts().ack_persist {
            let r = st.ledger.reserved;
            if let Err(e) = self.persist_ledger(&mut st, r) {
                tracing::error!(error = %e, "buffer: persisting the ack ledger failed");
            }
        }
        let written = st.written;
        drop(st);
        if let Sync::Interval(_) = self.opts().sync
            && let Err(e) = self.sync_to(written)
        {
            tracing::error!(error = %e, "buffer: periodic sync failed");
        }
    }
}

fn unreachable_full() -> Result<(Seq, Seq)> {
    Err(BufferError::Broken(
        "a blocking append returned without records".into(),
    ))
}

fn active(st: &State) -> &Seg {
    st.segs.last_key_value().expect("the open segment exists").1
}

fn active_mut(st: &mut State) -> &mut Seg {
    st.segs
        .last_entry()
        .expect("the open segment exists")
        .into_mut()
}

fn active_first(st: &State) -> Seq {
    *st.segs.last_key_value().expect("the open segment exists").0
}

fn exists(st: &State, seq: Seq) -> bool {
    st.segs
        .range(..=seq)
        .next_back()
        .is_some_and(|(f, s)| seq < f + s.count)
}

/// Records after the acknowledged prefix that are not acknowledged.
fn pending(st: &State) -> u64 {
    let mut n = 0;
    for (f, s) in &st.segs {
        let end = f + s.count;
        if end > st.acked + 1 {
            n += end - (st.acked + 1).max(*f);
        }
    }
    n - st.acked_above.len()
}

fn write_synced(s: &dyn Storage, path: &Path, bytes: &[u8]) -> Result<()> {
    match s.remove(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("remove", path)(e)),
    }
    let mut f = s.open_append(path).map_err(io_err("create", path))?;
    f.append(bytes).map_err(io_err("write", path))?;
    f.sync().map_err(io_err("sync", path))
}

fn spawn_ticker(inner: Weak<Inner>, rx: mpsc::Receiver<()>, period: Duration) {
    let r = std::thread::Builder::new()
        .name("mw-buffer".into())
        .spawn(move || {
            // ends when the buffer is dropped (its sender goes)
            while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(period) {
                let Some(inner) = inner.upgrade() else { break };
                Buffer { inner }.tick();
            }
        });
    if let Err(e) = r {
        tracing::error!(error = %e, "buffer: cannot start its sync thread; the ledger is persisted on ack and flush only");
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        if st.closed || st.broken.is_some() {
            return;
        }
        if let Err(e) = st.file.sync() {
            tracing::error!(error = %e, "buffer: sync at drop failed");
        }
        if st.acked != st.ledger.acked {
            let l = Ledger {
                acked: st.acked,
                reserved: st.ledger.reserved,
            };
            let dir = &self.opts.dir;
            let (tmp, path) = (dir.join(LEDGER_TMP), dir.join(LEDGER));
            let r = write_synced(&*self.storage, &tmp, &l.encode()).and_then(|()| {
                self.storage
                    .rename(&tmp, &path)
                    .map_err(io_err("rename", &tmp))
            });
            if let Err(e) = r {
                tracing::error!(error = %e, "buffer: persisting the ack ledger at drop failed");
            }
        }
    }
}
