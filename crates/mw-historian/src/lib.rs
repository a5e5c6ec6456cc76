//! Millwright's embedded historian. So far: the storage trait every byte goes through
//! ([`storage`]: the real file system, and an in-memory one that injects torn writes, lost
//! unsynced data and a full disk) and the write-ahead log ([`wal`]: CRC32C-framed records,
//! group commit, torn-tail truncation on start) and the column block codecs of the compressed
//! segments to come ([`block`]). Segment files, queries, retention and the
//! bus sink come next (see ARCHITECTURE.md).
//!
//! This crate knows nothing of protocols or HTTP; it stores what the model defines.

pub mod block;
pub mod component;
pub mod engine;
pub mod record;
pub mod segment;
pub mod storage;
pub mod wal;

pub use storage::{FsStorage, MemStorage, Storage, StorageFile};
pub use wal::{Replay, SyncPolicy, Wal, WalError, WalOptions, WalWriter};
