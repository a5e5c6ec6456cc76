//! Millwright's embedded historian: the column block codecs ([`block`]), the WAL payload of a
//! write ([`record`]), immutable segment files ([`segment`]), the engine ([`engine`]) and the
//! `[historian]` component with its bus sink ([`component`]); aggregation over time buckets is
//! [`query`]. Every byte goes through mw-storage's [`Storage`] trait and write-ahead log,
//! re-exported here as [`storage`] and [`wal`]. Compaction into time partitions ([`compact`]),
//! retention ([`retention`]), rollups ([`rollup`]) and the disk quota live in the engine.
//!
//! This crate knows nothing of protocols or HTTP; it stores what the model defines.

pub mod block;
pub mod compact;
pub mod component;
pub mod engine;
pub mod query;
pub mod record;
pub mod retention;
pub mod rollup;
pub mod segment;

pub use mw_storage::{storage, wal};
pub use query::{Agg, Bucket};
pub use storage::{FsStorage, MemStorage, Storage, StorageFile};
pub use wal::{Replay, SyncPolicy, Wal, WalError, WalOptions, WalWriter};
