//! The write-ahead log: what the historian has acknowledged is here, on disk, before it is
//! anywhere else.
//!
//! # Format
//! Segment files `NNNNNNNNNNNNNNNNNNNN.wal` (20-digit sequence number) in the WAL directory, each a
//! run of records: `len: u32 LE`, `crc: u32 LE` (CRC32C of the payload), `payload` (`len`
//! bytes, at most [`MAX_RECORD`]). Nothing else: no file header, so a segment is valid up to the
//! first record that is short or fails its CRC.
//!
//! # Durability
//! [`SyncPolicy::Always`] (the default): [`WalWriter::write`] answers only after the record is
//! synced; concurrent writes are synced together (group commit: one `fsync` per group).
//! [`SyncPolicy::Interval`]: a write is answered once it is written, and the log is synced at
//! most that long after — a crash may lose up to that much acknowledged data (documented as the
//! price of the setting).
//!
//! # Recovery
//! [`Wal::open`] replays every segment in order. A damaged record at the end of the **last**
//! segment is a torn write of a crash: the segment is cut there and [`Replay::truncated`] says
//! how much was dropped. Damage anywhere else is corruption: [`Replay::corrupt`] names the segment
//! and offset, the rest of that segment is skipped, later segments are still read.
//!
//! # Failed writes
//! When an append fails (a full disk), the segment is cut back to its last complete record before
//! the error is returned, so a later record never follows garbage; if even that fails the WAL
//! refuses further writes ([`WalError::Broken`]) rather than risk losing acknowledged records.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::storage::{Storage, StorageFile};

/// Largest payload of one record.
pub const MAX_RECORD: usize = 16 << 20;
const HEADER: usize = 8;

/// When the log is synced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SyncPolicy {
    /// Before a write is acknowledged (group commit).
    #[default]
    Always,
    /// At most this long after a write, which is acknowledged once written.
    Interval(Duration),
}

#[derive(Clone, Debug)]
pub struct WalOptions {
    pub dir: PathBuf,
    /// A segment is closed and a new one started beyond this size.
    pub segment_bytes: u64,
    pub sync: SyncPolicy,
    /// Also record every fsync's seconds in this histogram, besides `mw_wal_fsync_seconds`
    /// (for a component that reports its own, e.g. `mw_historian_fsync_seconds`).
    pub fsync_histogram: Option<&'static str>,
}

impl WalOptions {
    pub fn new(dir: impl Into<PathBuf>) -> WalOptions {
        WalOptions {
            dir: dir.into(),
            segment_bytes: 64 << 20,
            sync: SyncPolicy::Always,
            fsync_histogram: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("WAL record of {len} bytes is larger than the limit of {MAX_RECORD}")]
    TooLarge { len: usize },
    #[error("cannot write the WAL segment {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("the WAL refuses writes after a failed write it could not undo ({0})")]
    Broken(String),
    #[error("the WAL writer has stopped")]
    Stopped,
    #[error("the write was not stored: {0}")]
    NotStored(String),
    /// The write was not stored because the disk is full (ENOSPC): the caller may make room
    /// and write again.
    #[error("the write was not stored: the disk is full ({0})")]
    DiskFull(String),
}

impl WalError {
    /// Whether the disk is full: an I/O error of kind `StorageFull` (ENOSPC).
    pub fn is_disk_full(&self) -> bool {
        match self {
            WalError::Io { source, .. } => source.kind() == io::ErrorKind::StorageFull,
            WalError::DiskFull(_) => true,
            _ => false,
        }
    }
}

/// What the WAL thread answers for a failed write: the error's text, and whether the disk is
/// full (the kind does not survive the text).
#[derive(Clone)]
struct Failure {
    why: String,
    disk_full: bool,
}

impl From<WalError> for Failure {
    fn from(e: WalError) -> Failure {
        Failure {
            disk_full: e.is_disk_full(),
            why: e.to_string(),
        }
    }
}

impl From<Failure> for WalError {
    fn from(f: Failure) -> WalError {
        if f.disk_full {
            WalError::DiskFull(f.why)
        } else {
            WalError::NotStored(f.why)
        }
    }
}

/// Where a segment's valid records end, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    /// Offset of the first byte that is not part of a valid record.
    pub at: u64,
    pub reason: &'static str,
}

/// Splits `buf` into record payloads; stops at the first damaged record. Never panics, never
/// allocates from a length field (payloads are slices of `buf`).
pub fn decode(buf: &[u8]) -> (Vec<&[u8]>, Option<Damage>) {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < buf.len() {
        let damage = |reason| {
            Some(Damage {
                at: at as u64,
                reason,
            })
        };
        let Some(head) = buf.get(at..at + HEADER) else {
            return (out, damage("short record header"));
        };
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if len > MAX_RECORD {
            return (out, damage("record length beyond the limit"));
        }
        let Some(payload) = buf.get(at + HEADER..at + HEADER + len) else {
            return (out, damage("short record"));
        };
        if crc32c::crc32c(payload) != crc {
            return (out, damage("checksum mismatch"));
        }
        out.push(payload);
        at += HEADER + len;
    }
    (out, None)
}

/// Appends one framed record to `out`.
pub fn encode(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// A torn tail cut off at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Truncation {
    pub segment: PathBuf,
    pub at: u64,
    pub dropped_bytes: u64,
    pub reason: &'static str,
}

/// Damage found inside the log (not at its end).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Corruption {
    pub segment: PathBuf,
    pub at: u64,
    pub skipped_bytes: u64,
    pub reason: &'static str,
}

/// What [`Wal::open`] found.
#[derive(Debug, Default)]
pub struct Replay {
    /// Every valid record, in log order.
    pub records: Vec<Vec<u8>>,
    pub segments: usize,
    pub truncated: Option<Truncation>,
    pub corrupt: Vec<Corruption>,
}

/// The log, used from one thread (see [`WalWriter`] for the group-committing front).
pub struct Wal {
    storage: Arc<dyn Storage>,
    opts: WalOptions,
    seq: u64,
    path: PathBuf,
    file: Box<dyn StorageFile>,
    /// Length of the segment up to its last complete record.
    good_len: u64,
    unsynced: bool,
    broken: Option<String>,
}

fn segment_name(seq: u64) -> String {
    format!("{seq:020}.wal")
}

fn segment_seq(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    name.strip_suffix(".wal")?.parse().ok()
}

impl Wal {
    /// Replays the log in `opts.dir` (see the module docs) and opens it for appending.
    pub fn open(storage: Arc<dyn Storage>, opts: WalOptions) -> io::Result<(Wal, Replay)> {
        storage.create_dir_all(&opts.dir)?;
        let segments: Vec<(u64, PathBuf)> = storage
            .list(&opts.dir)?
            .into_iter()
            .filter_map(|p| segment_seq(&p).map(|s| (s, p)))
            .collect();
        let mut replay = Replay {
            segments: segments.len(),
            ..Replay::default()
        };
        let mut good_len = 0;
        for (i, (_, path)) in segments.iter().enumerate() {
            let buf = storage.read(path)?;
            let (records, damage) = decode(&buf);
            replay.records.extend(records.iter().map(|r| r.to_vec()));
            let valid = damage.as_ref().map_or(buf.len() as u64, |d| d.at);
            if let Some(d) = damage {
                let lost = buf.len() as u64 - d.at;
                if i + 1 == segments.len() {
                    storage.truncate(path, d.at)?;
                    replay.truncated = Some(Truncation {
                        segment: path.clone(),
                        at: d.at,
                        dropped_bytes: lost,
                        reason: d.reason,
                    });
                } else {
                    replay.corrupt.push(Corruption {
                        segment: path.clone(),
                        at: d.at,
                        skipped_bytes: lost,
                        reason: d.reason,
                    });
                }
            }
            good_len = valid;
        }
        let (seq, path) = match segments.last() {
            Some((s, p)) => (*s, p.clone()),
            None => {
                good_len = 0;
                (1, opts.dir.join(segment_name(1)))
            }
        };
        let file = storage.open_append(&path)?;
        storage.sync_dir(&opts.dir)?;
        Ok((
            Wal {
                storage,
                opts,
                seq,
                path,
                file,
                good_len,
                unsynced: false,
                broken: None,
            },
            replay,
        ))
    }

    /// The segment being appended to.
    pub fn current_segment(&self) -> &Path {
        &self.path
    }

    /// Number of the segment being appended to.
    pub fn current_seq(&self) -> u64 {
        self.seq
    }

    /// Appends records (not yet synced). On failure nothing of them stays in the log.
    pub fn append(&mut self, payloads: &[&[u8]]) -> Result<(), WalError> {
        if let Some(why) = &self.broken {
            return Err(WalError::Broken(why.clone()));
        }
        let mut buf = Vec::new();
        for p in payloads {
            if p.len() > MAX_RECORD {
                return Err(WalError::TooLarge { len: p.len() });
            }
            encode(p, &mut buf);
        }
        if self.good_len > 0 && self.good_len + buf.len() as u64 > self.opts.segment_bytes {
            self.roll()?;
        }
        if let Err(source) = self.file.append(&buf) {
            // Undo the partial append so that a later record never follows garbage.
            let undo = self
                .storage
                .truncate(&self.path, self.good_len)
                .and_then(|()| self.storage.open_append(&self.path));
            match undo {
                Ok(f) => self.file = f,
                Err(e) => self.broken = Some(format!("{source}; then: {e}")),
            }
            return Err(WalError::Io {
                path: self.path.clone(),
                source,
            });
        }
        self.good_len += buf.len() as u64;
        self.unsynced = true;
        Ok(())
    }

    /// Makes every appended record durable.
    pub fn sync(&mut self) -> Result<(), WalError> {
        if !self.unsynced {
            return Ok(());
        }
        self.file.sync().map_err(|source| WalError::Io {
            path: self.path.clone(),
            source,
        })?;
        self.unsynced = false;
        Ok(())
    }

    /// Closes the current segment (synced) and starts the next one.
    fn roll(&mut self) -> Result<(), WalError> {
        self.sync()?;
        let io = |path: &Path, source| WalError::Io {
            path: path.to_path_buf(),
            source,
        };
        let next = self.opts.dir.join(segment_name(self.seq + 1));
        let file = self.storage.open_append(&next).map_err(|e| io(&next, e))?;
        self.storage
            .sync_dir(&self.opts.dir)
            .map_err(|e| io(&next, e))?;
        self.seq += 1;
        self.path = next;
        self.file = file;
        self.good_len = 0;
        Ok(())
    }
}

/// Deletes the WAL segments in `dir` numbered below `seq` (their records are stored elsewhere);
/// returns how many it removed.
pub fn remove_segments_before(storage: &dyn Storage, dir: &Path, seq: u64) -> io::Result<usize> {
    let mut n = 0;
    for p in storage.list(dir)? {
        if segment_seq(&p).is_some_and(|s| s < seq) {
            storage.remove(&p)?;
            n += 1;
        }
    }
    if n > 0 {
        storage.sync_dir(dir)?;
    }
    Ok(n)
}

type Reply = oneshot::Sender<Result<(), Failure>>;

enum Cmd {
    Write(Vec<u8>, Reply),
    /// Close the current segment and start the next; answers the new segment's number.
    Rotate(oneshot::Sender<Result<u64, Failure>>),
}

/// The group-committing front of a [`Wal`], on a thread of its own: writes queue (bounded),
/// the thread appends every queued write, syncs once per group, then answers each.
#[derive(Clone)]
pub struct WalWriter {
    tx: mpsc::Sender<Cmd>,
}

/// Writes waiting for the WAL thread; more wait in `write`.
pub const WRITE_QUEUE: usize = 1024;

impl WalWriter {
    /// Starts the WAL thread. It ends when every `WalWriter` clone is dropped (after syncing).
    pub fn start(mut wal: Wal) -> io::Result<(WalWriter, std::thread::JoinHandle<()>)> {
        let (tx, mut rx) = mpsc::channel::<Cmd>(WRITE_QUEUE);
        let policy = wal.opts.sync;
        let own = wal.opts.fsync_histogram;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()?;
        let handle = std::thread::Builder::new()
            .name("mw-wal".into())
            .spawn(move || {
                let fsync = metrics::histogram!("mw_wal_fsync_seconds");
                let own = own.map(|name| metrics::histogram!(name));
                let sync = |wal: &mut Wal| {
                    let t = Instant::now();
                    let r = wal.sync();
                    let secs = t.elapsed().as_secs_f64();
                    fsync.record(secs);
                    if let Some(h) = &own {
                        h.record(secs);
                    }
                    r
                };
                rt.block_on(async {
                    let mut last_sync = Instant::now();
                    let mut pending: Option<Cmd> = None;
                    loop {
                        let first = match pending.take() {
                            Some(c) => Some(c),
                            None => match policy {
                                SyncPolicy::Always => rx.recv().await,
                                SyncPolicy::Interval(d) => {
                                    let left = d.saturating_sub(last_sync.elapsed());
                                    match tokio::time::timeout(left, rx.recv()).await {
                                        Ok(w) => w,
                                        Err(_) => {
                                            // nothing arrived: sync what the last writes left
                                            if let Err(e) = sync(&mut wal) {
                                                tracing::error!(error = %e, "WAL sync failed");
                                            }
                                            last_sync = Instant::now();
                                            continue;
                                        }
                                    }
                                }
                            },
                        };
                        let mut group = match first {
                            None => break,
                            Some(Cmd::Rotate(reply)) => {
                                let r = wal.roll().map(|()| wal.seq).map_err(Failure::from);
                                last_sync = Instant::now();
                                let _ = reply.send(r);
                                continue;
                            }
                            Some(Cmd::Write(p, r)) => vec![(p, r)],
                        };
                        while group.len() < 4096 {
                            match rx.try_recv() {
                                Ok(Cmd::Write(p, r)) => group.push((p, r)),
                                Ok(rotate) => {
                                    // answered after this group, which belongs to the old segment
                                    pending = Some(rotate);
                                    break;
                                }
                                Err(_) => break,
                            }
                        }
                        let payloads: Vec<&[u8]> =
                            group.iter().map(|(p, _)| p.as_slice()).collect();
                        let mut result = wal.append(&payloads);
                        let due = match policy {
                            SyncPolicy::Always => true,
                            SyncPolicy::Interval(d) => last_sync.elapsed() >= d,
                        };
                        if result.is_ok() && due {
                            result = sync(&mut wal);
                            last_sync = Instant::now();
                        }
                        let answer = result.map_err(Failure::from);
                        for (_, reply) in group {
                            let _ = reply.send(answer.clone());
                        }
                    }
                });
                if let Err(e) = sync(&mut wal) {
                    tracing::error!(error = %e, "WAL sync at shutdown failed");
                }
            })?;
        Ok((WalWriter { tx }, handle))
    }

    /// Closes the current segment (synced) and starts the next; answers the new segment's
    /// number. Every write answered before this call is in a segment with a lower number, so
    /// once what they hold is stored elsewhere, [`remove_segments_before`] may delete them.
    pub async fn rotate(&self) -> Result<u64, WalError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Rotate(reply))
            .await
            .map_err(|_| WalError::Stopped)?;
        match rx.await {
            Ok(Ok(seq)) => Ok(seq),
            Ok(Err(f)) => Err(f.into()),
            Err(_) => Err(WalError::Stopped),
        }
    }

    /// Writes one record; answers once it is durable under the WAL's [`SyncPolicy`].
    pub async fn write(&self, payload: Vec<u8>) -> Result<(), WalError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Write(payload, reply))
            .await
            .map_err(|_| WalError::Stopped)?;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(f)) => Err(f.into()),
            Err(_) => Err(WalError::Stopped),
        }
    }
}
