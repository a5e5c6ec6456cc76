//! The storage seam shared by every component that keeps bytes on disk (the historian, the
//! alarm journal, the forward buffer): the [`storage::Storage`] trait every byte goes through
//! (the real file system, and an in-memory one that injects torn writes, lost unsynced data, a
//! full disk and bit rot) and the write-ahead log ([`wal`]: CRC32C-framed records, group commit,
//! torn-tail truncation on start).
//!
//! This crate knows nothing of samples, the bus or protocols: it stores bytes.

pub mod storage;
pub mod wal;

pub use storage::{FsStorage, MemStorage, Storage, StorageFile};
pub use wal::{Replay, SyncPolicy, Wal, WalError, WalOptions, WalWriter};
