//! The audit trail: append-only JSON lines, each record chained to the one before it by the
//! SHA-256 of that record's line, so any edit, deletion, insertion or reordering is detected by
//! [`verify`].
//!
//! ```text
//! {"seq":1,"ts":"2026-12-03T08:00:00.000Z","actor":"root","action":"user.add","target":"alice","outcome":"ok","detail":"role=operator","prev":"000…000"}
//! {"seq":2,…,"prev":"<sha256 hex of line 1, without its newline>"}
//! ```
//! * `seq` starts at 1 and grows by one; the first record's `prev` is [`GENESIS`].
//! * The writer ([`AuditWriter`]) does its I/O through [`AuditIo`], so tests inject failures.
//!   [`AuditWriter::record`] fsyncs each record before it returns; [`AuditWriter::append`] +
//!   [`AuditWriter::commit`] is the group commit the bus sink ([`AuditSink`]) uses: all audit
//!   events of one delivery, one fsync, then the delivery is committed.
//! * After an I/O error the writer refuses further appends (its file may end in a torn line);
//!   opening it again truncates a torn last line (never acknowledged) and continues the chain.
//!   It refuses to open a log whose chain is broken.
//! * What the chain cannot show on its own: the loss of the *last* records (a truncation at a
//!   record boundary). `millwright audit verify` prints the head hash; compare it with one
//!   noted elsewhere (`--head`), or forward the records off the machine.
//! * Callers put no secrets into records; nothing here adds any.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use mw_bus::{BoxFuture, Overload, Sink, SinkInput, SinkOptions, Wants};
use mw_model::{Event, EventKind};
use serde::{Deserialize, Serialize};

use crate::crypto;

/// The `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// The log file inside `DATA_DIR/audit/`.
pub const FILE: &str = "audit.jsonl";
/// Longest line accepted by the parser (a record's fields are bounded by the writer).
pub const MAX_LINE: usize = 64 * 1024;
const MAX_FIELD: usize = 4096;

/// `DATA_DIR/audit`.
pub fn audit_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("audit")
}

/// One record as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    pub seq: u64,
    /// RFC 3339, UTC, milliseconds.
    pub ts: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub detail: String,
    /// SHA-256 (hex) of the previous record's line.
    pub prev: String,
}

/// The SHA-256 of `data` in hex: how the audit trail names a configuration file's content.
pub fn digest(data: &[u8]) -> String {
    crate::crypto::sha256_hex(data)
}

/// What a caller records; the writer adds `seq`, `prev` and formats `ts`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    pub ts_ns: i64,
    pub actor: String,
    /// Dotted verb: `user.add`, `token.create`, `login`, `alarm.ack`, …
    pub action: String,
    pub target: String,
    /// `ok`, `denied`, `failed`, …
    pub outcome: String,
    pub detail: String,
}

impl AuditEntry {
    pub fn new(
        actor: impl Into<String>,
        action: impl Into<String>,
        target: impl Into<String>,
        outcome: impl Into<String>,
        detail: impl Into<String>,
    ) -> AuditEntry {
        AuditEntry {
            ts_ns: mw_model::now_ns(),
            actor: actor.into(),
            action: action.into(),
            target: target.into(),
            outcome: outcome.into(),
            detail: detail.into(),
        }
    }

    /// The entry for an `Audit` or `OperatorAction` event, or a `ConfigChange` (the
    /// configuration a process applied: actor `millwright`, action `config.apply`, the event's
    /// source as target, its summary — which names the file and its SHA-256 — as detail); `None`
    /// for other kinds.
    pub fn from_event(e: &Event) -> Option<AuditEntry> {
        let target_of = || e.asset.clone().unwrap_or_default();
        let (actor, action, target, outcome, detail) = match &e.kind {
            EventKind::Audit {
                actor,
                action,
                outcome,
                detail,
            } => (actor, action, target_of(), outcome.as_str(), detail),
            EventKind::OperatorAction {
                user,
                action,
                target,
                comment,
            } => (user, action, target.clone(), "ok", comment),
            EventKind::ConfigChange { summary } => {
                return Some(AuditEntry {
                    ts_ns: e.ts,
                    actor: "millwright".to_owned(),
                    action: "config.apply".to_owned(),
                    target: e.source.clone(),
                    outcome: "ok".to_owned(),
                    detail: summary.clone(),
                });
            }
            _ => return None,
        };
        Some(AuditEntry {
            ts_ns: e.ts,
            actor: actor.clone(),
            action: action.clone(),
            target,
            outcome: outcome.to_owned(),
            detail: format!("{detail}{}", source_note(&e.source)),
        })
    }
}

fn source_note(source: &str) -> String {
    if source.is_empty() {
        String::new()
    } else {
        format!(" [source {source}]")
    }
}

fn bounded(s: &str) -> String {
    if s.len() <= MAX_FIELD {
        return s.to_owned();
    }
    let mut end = MAX_FIELD;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Parses one line (without its newline). Never panics; says what is wrong.
pub fn parse_line(line: &str) -> Result<AuditRecord, String> {
    if line.len() > MAX_LINE {
        return Err(format!("line longer than {MAX_LINE} bytes"));
    }
    let r: AuditRecord = serde_json::from_str(line).map_err(|e| format!("not a record: {e}"))?;
    if r.prev.len() != 64
        || !r
            .prev
            .bytes()
            .all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err("prev is not 64 lower-case hex digits".to_owned());
    }
    Ok(r)
}

/// Where the chain breaks: the 1-based line, the record's `seq` if it could be read, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}{}: {problem}", seq.map(|s| format!(" (seq {s})")).unwrap_or_default())]
pub struct VerifyError {
    pub line: usize,
    pub seq: Option<u64>,
    pub problem: String,
}

/// A log that verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub records: u64,
    /// SHA-256 of the last line ([`GENESIS`] for an empty log).
    pub head: String,
    /// Bytes of complete records (a torn last line, when allowed, starts here).
    pub complete_len: usize,
}

/// Checks a whole log. `allow_torn_tail`: a last line without its newline (a crash during an
/// append) is ignored instead of being an error.
pub fn verify(bytes: &[u8], allow_torn_tail: bool) -> Result<Verified, VerifyError> {
    let mut prev_hash = GENESIS.to_owned();
    let mut prev_seq = 0u64;
    let mut pos = 0usize;
    let mut line_no = 0usize;
    while pos < bytes.len() {
        line_no += 1;
        let Some(nl) = bytes[pos..].iter().position(|&b| b == b'\n') else {
            if allow_torn_tail {
                break;
            }
            return Err(VerifyError {
                line: line_no,
                seq: None,
                problem: "the last record is incomplete (no newline): a torn write or a truncation"
                    .to_owned(),
            });
        };
        let raw = &bytes[pos..pos + nl];
        let bad = |seq, problem: String| VerifyError {
            line: line_no,
            seq,
            problem,
        };
        let text = std::str::from_utf8(raw).map_err(|_| bad(None, "not UTF-8".to_owned()))?;
        let r = parse_line(text).map_err(|p| bad(None, p))?;
        let want = prev_seq + 1;
        if r.seq != want {
            return Err(bad(
                Some(r.seq),
                format!(
                    "expected seq {want}: a record was deleted, inserted or moved before this one"
                ),
            ));
        }
        if r.prev != prev_hash {
            let problem = if line_no == 1 {
                "the first record does not chain to the genesis value: records were removed \
                 from the start, or it was changed"
                    .to_owned()
            } else {
                format!(
                    "does not chain to line {} (seq {prev_seq}): that record was changed, or \
                     this record's prev was",
                    line_no - 1
                )
            };
            return Err(bad(Some(r.seq), problem));
        }
        prev_hash = crypto::sha256_hex(raw);
        prev_seq = r.seq;
        pos += nl + 1;
    }
    Ok(Verified {
        records: prev_seq,
        head: prev_hash,
        complete_len: pos,
    })
}

/// Everything that can go wrong with the audit log.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "audit log {path} is damaged at {error}; refusing to append (run `millwright audit verify`)"
    )]
    Broken { path: String, error: VerifyError },
    #[error("audit log {0}: an earlier write failed; reopen the log to continue")]
    Poisoned(String),
}

/// The writer's I/O: the whole current content, appends, fsync, truncation of a torn tail.
pub trait AuditIo: Send + 'static {
    /// A name for messages (the path).
    fn name(&self) -> String;
    fn read_all(&mut self) -> io::Result<Vec<u8>>;
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    fn sync(&mut self) -> io::Result<()>;
    fn truncate(&mut self, len: u64) -> io::Result<()>;
    /// The current length (another process may have appended since we last looked).
    fn len(&mut self) -> io::Result<u64>;
    fn is_empty(&mut self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    /// Takes the exclusive lock that keeps other writers (a CLI command beside a running
    /// server) out while this one appends; released by [`AuditIo::unlock`].
    fn lock(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn unlock(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// [`AuditIo`] on a file (mode 0600, opened for appending).
pub struct FileIo {
    path: PathBuf,
    file: File,
}

impl FileIo {
    /// Opens (creating) `dir/audit.jsonl`; the directory is created with mode 0700.
    pub fn open_dir(dir: &Path) -> io::Result<FileIo> {
        if !dir.is_dir() {
            fs::create_dir_all(dir)?;
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        }
        let path = dir.join(FILE);
        let existed = path.exists();
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)?;
        if !existed {
            // The new file's directory entry must survive a crash too.
            File::open(dir)?.sync_all()?;
        }
        Ok(FileIo { path, file })
    }
}

impl AuditIo for FileIo {
    fn name(&self) -> String {
        self.path.display().to_string()
    }
    fn read_all(&mut self) -> io::Result<Vec<u8>> {
        let mut v = Vec::new();
        self.file.seek(SeekFrom::Start(0))?;
        self.file.read_to_end(&mut v)?;
        Ok(v)
    }
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)
    }
    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)?;
        self.file.sync_all()
    }
    fn len(&mut self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
    fn lock(&mut self) -> io::Result<()> {
        self.file.lock()
    }
    fn unlock(&mut self) -> io::Result<()> {
        self.file.unlock()
    }
}

/// Appends chained records.
pub struct AuditWriter<I: AuditIo> {
    io: I,
    next_seq: u64,
    prev: String,
    poisoned: bool,
    /// Records appended since the last fsync.
    unsynced: usize,
    /// Length of the log as this writer left it; if it differs when the writer takes the lock,
    /// another process appended and the chain head is read again.
    known_len: u64,
    locked: bool,
}

impl AuditWriter<FileIo> {
    /// The writer on `DATA_DIR/audit/audit.jsonl`.
    pub fn open_data_dir(data_dir: &Path) -> Result<AuditWriter<FileIo>, AuditError> {
        let dir = audit_dir(data_dir);
        let io = FileIo::open_dir(&dir).map_err(|source| AuditError::Io {
            path: dir.join(FILE).display().to_string(),
            source,
        })?;
        AuditWriter::open(io)
    }
}

impl<I: AuditIo> AuditWriter<I> {
    /// Reads the log, checks its chain, drops a torn last line, and continues after it.
    pub fn open(mut io: I) -> Result<AuditWriter<I>, AuditError> {
        let name = io.name();
        let io_err = |source| AuditError::Io {
            path: name.clone(),
            source,
        };
        let bytes = io.read_all().map_err(io_err)?;
        let v = verify(&bytes, true).map_err(|error| AuditError::Broken {
            path: name.clone(),
            error,
        })?;
        if v.complete_len < bytes.len() {
            tracing::warn!(log = %name, bytes = bytes.len() - v.complete_len,
                "audit log ends in a torn record (a crash during a write); it was never committed and is dropped");
            io.truncate(v.complete_len as u64).map_err(io_err)?;
        }
        Ok(AuditWriter {
            io,
            next_seq: v.records + 1,
            prev: v.head,
            poisoned: false,
            unsynced: 0,
            known_len: v.complete_len as u64,
            locked: false,
        })
    }

    /// Takes the lock (once per group) and, if another writer appended meanwhile, continues the
    /// chain after its records.
    fn take_lock(&mut self) -> Result<(), AuditError> {
        if self.locked {
            return Ok(());
        }
        let name = self.io.name();
        let io_err = |source| AuditError::Io {
            path: name.clone(),
            source,
        };
        self.io.lock().map_err(io_err)?;
        self.locked = true;
        let len = self.io.len().map_err(io_err)?;
        if len != self.known_len {
            let bytes = self.io.read_all().map_err(io_err)?;
            let v = verify(&bytes, false).map_err(|error| AuditError::Broken {
                path: name.clone(),
                error,
            })?;
            self.next_seq = v.records + 1;
            self.prev = v.head;
            self.known_len = bytes.len() as u64;
        }
        Ok(())
    }

    /// Appends one record without fsync (call [`AuditWriter::commit`]); returns its seq.
    pub fn append(&mut self, e: &AuditEntry) -> Result<u64, AuditError> {
        if self.poisoned {
            return Err(AuditError::Poisoned(self.io.name()));
        }
        self.take_lock()?;
        let r = AuditRecord {
            seq: self.next_seq,
            ts: mw_model::format_rfc3339_ns(e.ts_ns),
            actor: bounded(&e.actor),
            action: bounded(&e.action),
            target: bounded(&e.target),
            outcome: bounded(&e.outcome),
            detail: bounded(&e.detail),
            prev: self.prev.clone(),
        };
        let mut line = serde_json::to_vec(&r).map_err(|e| AuditError::Io {
            path: self.io.name(),
            source: io::Error::other(e),
        })?;
        let hash = crypto::sha256_hex(&line);
        line.push(b'\n');
        if let Err(source) = self.io.append(&line) {
            self.poisoned = true;
            if std::mem::take(&mut self.locked) {
                let _ = self.io.unlock(); // let other writers see (and refuse) the damage
            }
            return Err(AuditError::Io {
                path: self.io.name(),
                source,
            });
        }
        self.prev = hash;
        self.next_seq += 1;
        self.unsynced += 1;
        self.known_len += line.len() as u64;
        Ok(r.seq)
    }

    /// Makes every appended record durable (fsync).
    pub fn commit(&mut self) -> Result<(), AuditError> {
        if self.poisoned {
            return Err(AuditError::Poisoned(self.io.name()));
        }
        if self.unsynced > 0 {
            if let Err(source) = self.io.sync() {
                self.poisoned = true;
                return Err(AuditError::Io {
                    path: self.io.name(),
                    source,
                });
            }
            self.unsynced = 0;
        }
        if self.locked {
            self.locked = false;
            self.io.unlock().map_err(|source| AuditError::Io {
                path: self.io.name(),
                source,
            })?;
        }
        Ok(())
    }

    /// Appends one record and fsyncs it.
    pub fn record(&mut self, e: &AuditEntry) -> Result<u64, AuditError> {
        let seq = self.append(e)?;
        self.commit()?;
        Ok(seq)
    }

    /// The seq the next record will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }
}

/// The audit trail as a durable bus sink: it takes `Audit` and `OperatorAction` events, appends
/// every one of a delivery, fsyncs once (group commit per delivery) and only then commits the
/// delivery. Other events are ignored (and committed: nothing of them is to be kept here). After
/// a write error every later delivery fails until the process restarts.
pub struct AuditSink<I: AuditIo> {
    writer: AuditWriter<I>,
    opts: SinkOptions,
}

impl<I: AuditIo> AuditSink<I> {
    /// A blocking, durable sink of events with a queue of `capacity` batches.
    pub fn new(writer: AuditWriter<I>, capacity: usize) -> AuditSink<I> {
        AuditSink {
            writer,
            opts: SinkOptions::new("audit", capacity.max(1))
                .wants(Wants::Events)
                .overload(Overload::Block)
                .durable(),
        }
    }
}

impl<I: AuditIo> Sink for AuditSink<I> {
    fn options(&self) -> SinkOptions {
        self.opts.clone()
    }

    fn run(self: Box<Self>, mut input: SinkInput) -> BoxFuture<()> {
        Box::pin(async move {
            let mut writer = Some(self.writer);
            while let Some(d) = input.recv().await {
                let entries: Vec<AuditEntry> = d
                    .batch
                    .events
                    .iter()
                    .filter_map(AuditEntry::from_event)
                    .collect();
                if entries.is_empty() {
                    d.commit();
                    continue;
                }
                let Some(mut w) = writer.take() else {
                    d.fail("the audit writer is gone");
                    continue;
                };
                let (w, result) = match tokio::task::spawn_blocking(move || {
                    let r = entries
                        .iter()
                        .try_for_each(|e| w.append(e).map(drop))
                        .and_then(|()| w.commit());
                    (w, r)
                })
                .await
                {
                    Ok(pair) => pair,
                    Err(e) => {
                        tracing::error!(error = %e, "audit writer task failed");
                        d.fail("the audit writer task failed");
                        continue;
                    }
                };
                writer = Some(w);
                match result {
                    Ok(()) => d.commit(),
                    Err(e) => {
                        tracing::error!(error = %e, "audit record not written");
                        d.fail(e.to_string());
                    }
                }
            }
        })
    }
}

/// The newest `limit` records of the trail in `DATA_DIR/audit/`, oldest first (a missing trail
/// has none). Lines that do not parse are skipped here; `audit verify` is what judges the chain.
pub fn read_recent(data_dir: &Path, limit: usize) -> Result<Vec<AuditRecord>, AuditError> {
    let path = audit_dir(data_dir).join(FILE);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(AuditError::Io {
                path: path.display().to_string(),
                source,
            });
        }
    };
    let text = String::from_utf8_lossy(&bytes);
    let mut out: Vec<AuditRecord> = text
        .lines()
        .rev()
        .filter_map(|l| parse_line(l).ok())
        .take(limit)
        .collect();
    out.reverse();
    Ok(out)
}

/// The audit trail as a component: the durable sink on `DATA_DIR/audit/` (`[site] data_dir`),
/// opened — and its chain checked — when the pipeline starts; a damaged trail stops the start.
pub struct AuditComponent;

impl mw_bus::Component for AuditComponent {
    fn name(&self) -> &'static str {
        "audit"
    }

    fn build(
        &self,
        cfg: &mw_config::Config,
        parts: &mut mw_bus::Parts,
    ) -> Result<(), mw_bus::BuildError> {
        let writer =
            AuditWriter::open_data_dir(&cfg.site.data_dir).map_err(|e| mw_bus::BuildError {
                component: "audit",
                message: e.to_string(),
            })?;
        parts.add_sink(Box::new(AuditSink::new(
            writer,
            cfg.pipeline.sink_capacity.min(1024),
        )));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::{Arc, Mutex};

    /// An in-memory log whose operations can be made to fail.
    #[derive(Clone, Default)]
    pub(crate) struct MemIo {
        pub(crate) data: Arc<Mutex<Vec<u8>>>,
        pub(crate) synced: Arc<Mutex<usize>>,
        /// Fail appends after this many bytes were accepted (then write only part).
        pub(crate) fail_after: Arc<Mutex<Option<usize>>>,
        pub(crate) fail_sync: Arc<Mutex<bool>>,
    }

    impl AuditIo for MemIo {
        fn name(&self) -> String {
            "mem".into()
        }
        fn read_all(&mut self) -> io::Result<Vec<u8>> {
            Ok(self.data.lock().unwrap().clone())
        }
        fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
            let mut d = self.data.lock().unwrap();
            let limit = *self.fail_after.lock().unwrap();
            if let Some(limit) = limit
                && d.len() + bytes.len() > limit
            {
                let room = limit.saturating_sub(d.len()).min(bytes.len());
                d.extend_from_slice(&bytes[..room]);
                return Err(io::Error::other("no space left on device"));
            }
            d.extend_from_slice(bytes);
            Ok(())
        }
        fn sync(&mut self) -> io::Result<()> {
            if *self.fail_sync.lock().unwrap() {
                return Err(io::Error::other("fsync failed"));
            }
            *self.synced.lock().unwrap() = self.data.lock().unwrap().len();
            Ok(())
        }
        fn truncate(&mut self, len: u64) -> io::Result<()> {
            self.data.lock().unwrap().truncate(len as usize);
            Ok(())
        }
        fn len(&mut self) -> io::Result<u64> {
            Ok(self.data.lock().unwrap().len() as u64)
        }
    }

    fn entry(i: usize) -> AuditEntry {
        AuditEntry {
            ts_ns: 1_764_748_800_000_000_000 + i as i64,
            actor: "root".into(),
            action: "user.add".into(),
            target: format!("user{i}"),
            outcome: "ok".into(),
            detail: "role=viewer".into(),
        }
    }

    fn log(n: usize) -> Vec<u8> {
        let io = MemIo::default();
        let mut w = AuditWriter::open(io.clone()).unwrap();
        for i in 0..n {
            assert_eq!(w.record(&entry(i)).unwrap(), i as u64 + 1);
        }
        io.data.lock().unwrap().clone()
    }

    fn lines(b: &[u8]) -> Vec<Vec<u8>> {
        b.split_inclusive(|&c| c == b'\n')
            .map(<[u8]>::to_vec)
            .collect()
    }

    #[test]
    fn a_clean_log_verifies_and_chains_from_genesis() {
        let b = log(5);
        let v = verify(&b, false).unwrap();
        assert_eq!(v.records, 5);
        let first = parse_line(std::str::from_utf8(&lines(&b)[0]).unwrap().trim_end()).unwrap();
        assert_eq!(first.prev, GENESIS);
        assert_eq!(first.seq, 1);
        assert_eq!(first.ts, "2025-12-03T08:00:00.000Z");
        let last = lines(&b).pop().unwrap();
        assert_eq!(v.head, crypto::sha256_hex(&last[..last.len() - 1]));
        assert_eq!(verify(b"", false).unwrap().head, GENESIS);
    }

    #[test]
    fn one_changed_byte_anywhere_is_caught() {
        let b = log(4);
        let last_start = b.len() - lines(&b).last().unwrap().len();
        // Every byte of every record but the last (whose edit only the head hash shows).
        for i in 0..last_start {
            let mut m = b.clone();
            m[i] = if m[i] == b'1' { b'2' } else { b'1' };
            if m[i] == b[i] {
                continue;
            }
            assert!(verify(&m, false).is_err(), "byte {i} changed, not caught");
        }
        // A changed target in record 2 is reported at record 3, naming record 2.
        let mut m = b.clone();
        let at = last_start - 1; // inside line 3
        let l2 = lines(&b)[..1].concat().len();
        let pos = l2 + b"{\"seq\":2".len() + 60;
        assert!(pos < at);
        m[pos] ^= 1;
        let e = verify(&m, false).unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert_eq!(e.seq, Some(3));
        assert!(e.to_string().contains("line 2 (seq 2)"), "{e}");
        // The last record changed: the chain holds but the head differs.
        let mut m = b.clone();
        let n = m.len();
        m[n - 10] ^= 1;
        if let Ok(v) = verify(&m, false) {
            assert_ne!(v.head, verify(&b, false).unwrap().head);
        }
    }

    #[test]
    fn deletion_insertion_and_swap_are_caught_and_named() {
        let b = log(5);
        let ls = lines(&b);
        // Delete record 3.
        let del: Vec<u8> = ls
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 2)
            .flat_map(|(_, l)| l.clone())
            .collect();
        let e = verify(&del, false).unwrap_err();
        assert_eq!((e.line, e.seq), (3, Some(4)), "{e}");
        assert!(e.problem.contains("expected seq 3"), "{e}");
        // Swap records 2 and 3.
        let mut sw = ls.clone();
        sw.swap(1, 2);
        let e = verify(&sw.concat(), false).unwrap_err();
        assert_eq!((e.line, e.seq), (2, Some(3)), "{e}");
        // Insert a copy of record 2 after it.
        let mut ins = ls.clone();
        ins.insert(2, ls[1].clone());
        let e = verify(&ins.concat(), false).unwrap_err();
        assert_eq!((e.line, e.seq), (3, Some(2)), "{e}");
        // Delete the first record.
        let e = verify(&ls[1..].concat(), false).unwrap_err();
        assert_eq!((e.line, e.seq), (1, Some(2)), "{e}");
        // A forged record with the right seq but a made-up prev.
        let mut forged = ls.clone();
        let text = String::from_utf8(ls[2].clone())
            .unwrap()
            .replace("user2", "mallory");
        forged[2] = text.into_bytes();
        let e = verify(&forged.concat(), false).unwrap_err();
        assert_eq!((e.line, e.seq), (4, Some(4)), "{e}");
    }

    #[test]
    fn a_torn_tail_is_dropped_on_open_and_the_chain_continues() {
        let io = MemIo::default();
        *io.data.lock().unwrap() = log(3);
        io.data
            .lock()
            .unwrap()
            .extend_from_slice(b"{\"seq\":4,\"ts\"");
        assert!(verify(&io.data.lock().unwrap(), false).is_err());
        let mut w = AuditWriter::open(io.clone()).unwrap();
        assert_eq!(w.next_seq(), 4);
        w.record(&entry(9)).unwrap();
        assert_eq!(verify(&io.data.lock().unwrap(), false).unwrap().records, 4);
    }

    #[test]
    fn write_and_sync_failures_poison_the_writer_and_reopen_recovers() {
        let io = MemIo::default();
        let mut w = AuditWriter::open(io.clone()).unwrap();
        w.record(&entry(0)).unwrap();
        let good = io.data.lock().unwrap().len();
        *io.fail_after.lock().unwrap() = Some(good + 20);
        assert!(matches!(w.record(&entry(1)), Err(AuditError::Io { .. })));
        *io.fail_after.lock().unwrap() = None;
        assert!(matches!(w.record(&entry(2)), Err(AuditError::Poisoned(_))));
        // Reopening drops the torn record and continues at seq 2.
        let mut w = AuditWriter::open(io.clone()).unwrap();
        assert_eq!(w.record(&entry(1)).unwrap(), 2);
        *io.fail_sync.lock().unwrap() = true;
        assert!(w.record(&entry(2)).is_err());
        assert!(w.append(&entry(3)).is_err());
        // A broken log is refused.
        let mut bad = log(3);
        bad.swap(5, 6);
        let broken = MemIo::default();
        *broken.data.lock().unwrap() = bad;
        assert!(matches!(
            AuditWriter::open(broken),
            Err(AuditError::Broken { .. })
        ));
    }

    #[test]
    fn events_map_to_entries() {
        let a = Event::new(
            7,
            "http/api",
            EventKind::Audit {
                actor: "alice".into(),
                action: "login".into(),
                outcome: "denied".into(),
                detail: "wrong password".into(),
            },
        )
        .for_asset("acme/p1");
        let e = AuditEntry::from_event(&a).unwrap();
        assert_eq!(
            (e.actor.as_str(), e.action.as_str(), e.target.as_str()),
            ("alice", "login", "acme/p1")
        );
        assert_eq!((e.outcome.as_str(), e.ts_ns), ("denied", 7));
        assert!(e.detail.starts_with("wrong password"));
        let o = Event::new(
            8,
            "alarms",
            EventKind::OperatorAction {
                user: "bob".into(),
                action: "alarm.ack".into(),
                target: "pump1/high_temp".into(),
                comment: "checked".into(),
            },
        );
        let e = AuditEntry::from_event(&o).unwrap();
        assert_eq!(
            (e.actor.as_str(), e.target.as_str(), e.outcome.as_str()),
            ("bob", "pump1/high_temp", "ok")
        );
        let c = Event::new(
            9,
            "millwright/config",
            EventKind::ConfigChange {
                summary: "plant.toml sha256=ab".into(),
            },
        );
        let e = AuditEntry::from_event(&c).unwrap();
        assert_eq!(
            (
                e.actor.as_str(),
                e.action.as_str(),
                e.target.as_str(),
                e.detail.as_str()
            ),
            (
                "millwright",
                "config.apply",
                "millwright/config",
                "plant.toml sha256=ab"
            )
        );
        let d = Event::new(
            9,
            "modbus/plc1",
            EventKind::ConnectionChange {
                up: false,
                reason: None,
            },
        );
        assert!(AuditEntry::from_event(&d).is_none());
    }

    fn audit_event(actor: &str) -> Event {
        Event::new(
            1,
            "http/api",
            EventKind::Audit {
                actor: actor.into(),
                action: "login".into(),
                outcome: "ok".into(),
                detail: String::new(),
            },
        )
    }

    #[tokio::test]
    async fn as_a_durable_bus_sink_it_commits_after_fsync_and_fails_when_it_cannot() {
        use mw_bus::{AckOutcome, Batch, BusBuilder, BusConfig, SourceRegistry};
        let io = MemIo::default();
        let mut b = BusBuilder::new(BusConfig::default());
        b.sink(Box::new(AuditSink::new(
            AuditWriter::open(io.clone()).unwrap(),
            4,
        )));
        let publisher = b.publisher();
        let running = b.start(&SourceRegistry::new());
        let other = Event::new(
            2,
            "modbus/plc1",
            EventKind::ConnectionChange {
                up: true,
                reason: None,
            },
        );
        let ack = publisher
            .send_with_ack(Batch::from_events(vec![
                audit_event("alice"),
                other,
                audit_event("bob"),
            ]))
            .await
            .unwrap();
        assert_eq!(ack.outcome().await, AckOutcome::Committed { sinks: 1 });
        let data = io.data.lock().unwrap().clone();
        assert_eq!(
            verify(&data, false).unwrap().records,
            2,
            "two audit events, the other ignored"
        );
        assert_eq!(
            *io.synced.lock().unwrap(),
            data.len(),
            "committed only after fsync"
        );
        // fsync fails: the delivery fails, and so does every later one.
        *io.fail_sync.lock().unwrap() = true;
        let ack = publisher
            .send_with_ack(Batch::from_events(vec![audit_event("carol")]))
            .await
            .unwrap();
        assert!(matches!(ack.outcome().await, AckOutcome::Failed { sink, .. } if sink == "audit"));
        *io.fail_sync.lock().unwrap() = false;
        let ack = publisher
            .send_with_ack(Batch::from_events(vec![audit_event("dave")]))
            .await
            .unwrap();
        assert!(!ack.outcome().await.is_committed());
        drop(publisher);
        assert!(running.stop(std::time::Duration::from_secs(5)).await);
    }

    proptest! {
        #[test]
        fn the_line_parser_never_panics(s in "\\PC{0,300}") {
            let _ = parse_line(&s);
        }

        #[test]
        fn verify_never_panics_on_mutated_logs(
            edits in proptest::collection::vec((0usize..2000, any::<u8>()), 0..8),
            cut in 0usize..2000,
        ) {
            let mut b = log(4);
            for (i, v) in edits {
                let n = b.len();
                b[i % n] = v;
            }
            b.truncate(cut.max(1).min(b.len()));
            let _ = verify(&b, false);
            let _ = verify(&b, true);
        }
    }

    #[test]
    fn two_writers_on_one_file_keep_one_chain() {
        // a running server's sink and a CLI command append to the same trail
        let dir = std::env::temp_dir().join(format!("mw-audit-two-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut server = AuditWriter::open(FileIo::open_dir(&dir).unwrap()).unwrap();
        let mut cli = AuditWriter::open(FileIo::open_dir(&dir).unwrap()).unwrap();
        let e = |actor: &str| AuditEntry::new(actor, "test", "t", "ok", "");
        for i in 0..5 {
            server.record(&e(&format!("server{i}"))).unwrap();
            cli.record(&e(&format!("cli{i}"))).unwrap();
        }
        server.append(&e("group-a")).unwrap();
        server.append(&e("group-b")).unwrap();
        server.commit().unwrap();
        cli.record(&e("last")).unwrap();
        let bytes = std::fs::read(dir.join(FILE)).unwrap();
        let v = verify(&bytes, false).expect("one valid chain");
        assert_eq!(v.records, 13);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
