//! All historian I/O goes through [`Storage`], so tests can inject the failures real disks
//! produce: writes torn by a crash, data lost because it was never synced, a full disk.
//!
//! [`FsStorage`] is the real file system. [`MemStorage`] keeps files in memory and tracks, per
//! file, which bytes are durable (synced) and which are only written; [`MemStorage::crash`]
//! simulates a power cut by dropping the unsynced bytes (optionally keeping a torn prefix of
//! them), and [`MemStorage::set_space`] makes writes beyond a byte budget fail with ENOSPC.
//! Directory entries (created, removed, renamed files) are durable at once in [`MemStorage`];
//! [`Storage::rename`] on [`FsStorage`] syncs the directory itself so the same holds there.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A file opened for appending.
pub trait StorageFile: Send {
    /// Appends all of `buf` (or fails; a failure may leave a prefix written).
    fn append(&mut self, buf: &[u8]) -> io::Result<()>;
    /// Makes everything appended so far durable.
    fn sync(&mut self) -> io::Result<()>;
    /// Bytes in the file (durable or not).
    fn len(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The operations the historian needs from a file system.
pub trait Storage: Send + Sync + 'static {
    /// Opens `path` for appending, creating it (and nothing else) if missing.
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;
    /// The whole content of `path`.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// `len` bytes of `path` from `offset` (an error if the file is shorter).
    fn read_range(&self, path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let all = self.read(path)?;
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        all.get(start..start.saturating_add(len))
            .map(<[u8]>::to_vec)
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read beyond the end"))
    }
    /// The length of `path` in bytes.
    fn file_len(&self, path: &Path) -> io::Result<u64> {
        Ok(self.read(path)?.len() as u64)
    }
    /// Cuts `path` to `len` bytes and makes that durable.
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()>;
    /// The files directly in `dir`, sorted by name (empty if `dir` does not exist).
    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>>;
    fn remove(&self, path: &Path) -> io::Result<()>;
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Makes the directory entries of `dir` durable (after creating or removing files).
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Atomically replaces `to` by `from` (which stops existing) and makes the new directory
    /// entries durable. Only the entries: bytes of `from` that were never synced may still be
    /// lost in a crash, so an atomic replace is write `from`, sync it, then `rename`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
}

/// The real file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct FsStorage;

struct FsFile {
    f: std::fs::File,
    len: u64,
}

impl StorageFile for FsFile {
    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        use std::io::Write;
        self.f.write_all(buf)?;
        self.len += buf.len() as u64;
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        self.f.sync_data()
    }

    fn len(&self) -> u64 {
        self.len
    }
}

impl Storage for FsStorage {
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let len = f.metadata()?.len();
        Ok(Box::new(FsFile { f, len }))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn read_range(&self, path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::open(path)?;
        let mut buf = vec![0; len];
        f.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }

    fn file_len(&self, path: &Path) -> io::Result<u64> {
        Ok(std::fs::metadata(path)?.len())
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let f = std::fs::OpenOptions::new().write(true).open(path)?;
        f.set_len(len)?;
        f.sync_all()
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for entry in rd {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                out.push(entry.path());
            }
        }
        out.sort();
        Ok(out)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        std::fs::File::open(dir)?.sync_all()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)?;
        let parent = |p: &Path| match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let (a, b) = (parent(from), parent(to));
        self.sync_dir(&b)?;
        if a != b {
            self.sync_dir(&a)?;
        }
        Ok(())
    }
}

#[derive(Default, Clone)]
struct MemFile {
    data: Vec<u8>,
    /// Bytes of `data` that survive a crash.
    durable: usize,
}

#[derive(Default)]
struct MemState {
    files: BTreeMap<PathBuf, MemFile>,
    /// Bytes that may still be written before ENOSPC (None: unlimited).
    space: Option<u64>,
    /// On the next crash, keep this many of each file's unsynced bytes (a torn write).
    torn: usize,
    syncs: u64,
}

/// In-memory storage with fault injection (see the module docs). Cheap to clone; clones share
/// the files, so a test can "restart" by opening a new writer on a clone after [`MemStorage::crash`].
#[derive(Clone, Default)]
pub struct MemStorage {
    state: Arc<Mutex<MemState>>,
}

impl MemStorage {
    pub fn new() -> MemStorage {
        MemStorage::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A power cut: every file loses what was not synced, except `torn` bytes of it.
    pub fn crash(&self) {
        let mut s = self.lock();
        let torn = s.torn;
        for f in s.files.values_mut() {
            let keep = (f.durable + torn).min(f.data.len());
            f.data.truncate(keep);
            f.durable = keep;
        }
    }

    /// Keep this many unsynced bytes per file at the next [`MemStorage::crash`].
    pub fn set_torn(&self, bytes: usize) {
        self.lock().torn = bytes;
    }

    /// Allow only `bytes` more bytes to be written (then ENOSPC); `None`: unlimited.
    pub fn set_space(&self, bytes: Option<u64>) {
        self.lock().space = bytes;
    }

    /// Overwrites one byte of a file (bit rot, a bad sector).
    pub fn corrupt(&self, path: &Path, offset: usize) {
        let mut s = self.lock();
        if let Some(b) = s.files.get_mut(path).and_then(|f| f.data.get_mut(offset)) {
            *b ^= 0xff;
        }
    }

    /// The current content of a file (durable or not).
    pub fn content(&self, path: &Path) -> Option<Vec<u8>> {
        self.lock().files.get(path).map(|f| f.data.clone())
    }

    /// How many times any file was synced.
    pub fn syncs(&self) -> u64 {
        self.lock().syncs
    }
}

struct MemHandle {
    storage: MemStorage,
    path: PathBuf,
}

impl StorageFile for MemHandle {
    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        let mut s = self.storage.lock();
        let (n, full) = match s.space {
            Some(left) if (buf.len() as u64) > left => (left as usize, true),
            _ => (buf.len(), false),
        };
        if let Some(left) = s.space.as_mut() {
            *left -= n as u64;
        }
        let f = s.files.entry(self.path.clone()).or_default();
        f.data.extend_from_slice(&buf[..n]);
        if full {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "no space left on device",
            ));
        }
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        let mut s = self.storage.lock();
        s.syncs += 1;
        if let Some(f) = s.files.get_mut(&self.path) {
            f.durable = f.data.len();
        }
        Ok(())
    }

    fn len(&self) -> u64 {
        self.storage
            .lock()
            .files
            .get(&self.path)
            .map_or(0, |f| f.data.len() as u64)
    }
}

impl Storage for MemStorage {
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        self.lock().files.entry(path.to_path_buf()).or_default();
        Ok(Box::new(MemHandle {
            storage: self.clone(),
            path: path.to_path_buf(),
        }))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.content(path)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such file"))
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let mut s = self.lock();
        let f = s
            .files
            .get_mut(path)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such file"))?;
        f.data.truncate(len as usize);
        f.durable = f.durable.min(f.data.len());
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        Ok(self
            .lock()
            .files
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .cloned()
            .collect())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.lock().files.remove(path);
        Ok(())
    }

    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }

    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }

    /// The file moves with what of it is durable: a crash after the rename keeps the new name
    /// (directory entries are durable here) but still drops the bytes of `from` never synced.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.lock();
        let f = s
            .files
            .remove(from)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such file"))?;
        s.files.insert(to.to_path_buf(), f);
        Ok(())
    }
}
