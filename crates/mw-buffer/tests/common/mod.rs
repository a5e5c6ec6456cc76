//! Test helpers: a storage that "loses power" after a chosen number of mutating operations.
#![allow(dead_code)]

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use mw_buffer::{Buffer, FullPolicy, OpenReport, Options, Sync};
use mw_storage::storage::{MemStorage, Storage, StorageFile};

/// Wraps a [`MemStorage`]: the `n`-th mutating operation (append, sync, truncate, remove,
/// rename, sync_dir, create) does not happen — instead the disk crashes (unsynced bytes lost)
/// and every later operation fails, as if the process had died at that point.
#[derive(Clone)]
pub struct Doomed {
    pub mem: MemStorage,
    ops: Arc<AtomicU64>,
    at: Arc<AtomicU64>,
    dead: Arc<AtomicBool>,
}

impl Doomed {
    pub fn new(mem: MemStorage, at: u64) -> Doomed {
        Doomed {
            mem,
            ops: Arc::new(AtomicU64::new(0)),
            at: Arc::new(AtomicU64::new(at)),
            dead: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The power goes now: unsynced bytes are lost and the old buffer can do nothing more.
    pub fn kill(&self) {
        self.dead.store(true, Ordering::SeqCst);
        self.mem.crash();
    }

    pub fn dead(&self) -> bool {
        self.dead.load(Ordering::SeqCst)
    }

    pub fn ops(&self) -> u64 {
        self.ops.load(Ordering::SeqCst)
    }

    fn step(&self) -> io::Result<()> {
        if self.dead() {
            return Err(io::Error::other("dead"));
        }
        let n = self.ops.fetch_add(1, Ordering::SeqCst);
        if n >= self.at.load(Ordering::SeqCst) {
            self.dead.store(true, Ordering::SeqCst);
            self.mem.crash();
            return Err(io::Error::other("crashed"));
        }
        Ok(())
    }

    fn alive(&self) -> io::Result<()> {
        if self.dead() {
            Err(io::Error::other("dead"))
        } else {
            Ok(())
        }
    }
}

struct DoomedFile {
    d: Doomed,
    f: Box<dyn StorageFile>,
}

impl StorageFile for DoomedFile {
    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        self.d.step()?;
        self.f.append(buf)
    }
    fn sync(&mut self) -> io::Result<()> {
        self.d.step()?;
        self.f.sync()
    }
    fn len(&self) -> u64 {
        self.f.len()
    }
}

impl Storage for Doomed {
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        self.step()?;
        Ok(Box::new(DoomedFile {
            d: self.clone(),
            f: self.mem.open_append(path)?,
        }))
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.alive()?;
        self.mem.read(path)
    }
    fn read_range(&self, path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        self.alive()?;
        self.mem.read_range(path, offset, len)
    }
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        self.step()?;
        self.mem.truncate(path, len)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        self.alive()?;
        self.mem.list(dir)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.step()?;
        self.mem.remove(path)
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.alive()?;
        self.mem.create_dir_all(dir)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.step()?;
        self.mem.sync_dir(dir)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.step()?;
        self.mem.rename(from, to)
    }
}

pub const DIR: &str = "/data/forward";

/// Small segments so tests cross segment boundaries; acks persisted only on flush/close/drop
/// unless a test says otherwise.
pub fn opts(segment_bytes: u64, max_bytes: u64, policy: FullPolicy) -> Options {
    Options {
        segment_bytes,
        max_bytes,
        full_policy: policy,
        sync: Sync::Always,
        block_timeout: Duration::from_millis(50),
        ack_persist: Duration::from_secs(3600),
        ..Options::new(DIR)
    }
}

pub fn open(storage: &dyn StorageClone, o: Options) -> (Buffer, OpenReport) {
    Buffer::open(storage.arc(), o).expect("open")
}

pub trait StorageClone {
    fn arc(&self) -> Arc<dyn Storage>;
}
impl<S: Storage + Clone> StorageClone for S {
    fn arc(&self) -> Arc<dyn Storage> {
        Arc::new(self.clone())
    }
}

pub fn payload(i: u64) -> Vec<u8> {
    format!("sample {i:06} value {:08}", i * 7).into_bytes()
}

/// Reads everything from `from` on.
pub fn drain(b: &Buffer, from: u64) -> Vec<mw_buffer::Record> {
    let mut out = Vec::new();
    let mut next = from;
    loop {
        let v = b.read_from(next, 97).expect("read");
        let Some(last) = v.last() else { break };
        next = last.seq + 1;
        out.extend(v);
    }
    out
}

/// Total bytes of the segment files in the buffer directory.
pub fn segment_bytes_on_disk(mem: &MemStorage) -> u64 {
    mem.list(Path::new(DIR))
        .unwrap()
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .map(|p| mem.content(p).map_or(0, |c| c.len() as u64))
        .sum()
}
