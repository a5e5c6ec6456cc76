//! Millwright's store-and-forward disk buffer (issue 13, item 1): the forwarder's durable queue.
//! Records (a timestamp and opaque bytes) are appended, read in order by a consumer, and
//! deleted once acknowledged. Every byte goes through mw-storage's
//! [`Storage`](mw_storage::Storage) trait, so tests inject crashes, torn writes and full disks.
//!
//! # Files
//! In `dir`: segment files `NNNNNNNNNNNNNNNNNNNN.seg` named after the sequence number of their
//! first record, each a run of frames in mw-storage's WAL framing (`len`, CRC32C, payload; see
//! [`format`](mod@format)) whose payload is `seq: u64`, `ts: i64`, the record's bytes; within one segment
//! the sequence numbers are consecutive. `ledger` holds the acknowledged prefix and the
//! sequence numbers reserved (one CRC'd frame, replaced atomically: `ledger.tmp`, fsync, rename,
//! fsync of the directory). `quarantine/` keeps damaged bytes found at open.
//!
//! # Sequence numbers
//! Monotonic and never reused, also after a crash that lost unsynced records: numbers are
//! reserved in the ledger [`RESERVE_STEP`] at a time before they are handed out, and a restart
//! continues after the reservation, so numbers have gaps after a restart (and where records
//! were dropped or quarantined). A consumer must not expect them consecutive.
//!
//! # Durability (`sync`)
//! [`Sync::Always`]: `append` returns after the record is fsynced; concurrent appends share one
//! fsync (group commit), [`Buffer::append_batch`] writes many with one write and one fsync.
//! [`Sync::Interval`]: `append` returns once written; a background thread fsyncs at most that
//! long after. A process kill loses nothing written; a power cut may lose that last interval.
//! A failed fsync makes the buffer refuse further appends ([`BufferError::Broken`]): after it,
//! nothing says what reached the disk.
//!
//! # Acknowledgements and restart
//! [`Buffer::ack`] marks one record, in any order; the ledger advances over the contiguous
//! acknowledged prefix only ([`Buffer::ack_through`] acknowledges a prefix at once). Sealed
//! segments wholly inside the prefix are deleted at once. The ledger is persisted by the next
//! ack once `ack_persist` has passed since the last write of it, by the buffer's background
//! thread (it checks every `ack_persist`, so within twice that), at [`Buffer::flush`] /
//! [`Buffer::close`] and when the buffer is dropped; `ack_persist = 0` persists at every ack. On restart a consumer resumes at [`OpenReport::first_unacked`]: exactly after the
//! last persisted prefix. Records acknowledged but not yet persisted (the last `ack_persist`
//! before a crash, or acknowledged out of order beyond the prefix, which the ledger does not keep) are delivered again —
//! at-least-once, which the uplink's deduplication by sequence number absorbs; a record inside
//! a persisted prefix is never delivered again.
//!
//! # Full (`max_bytes`)
//! Bound: the sum of the sizes of all segment files, the open one included, never exceeds
//! `max_bytes`; the ledger (one 29-byte file, two during its replace) and `quarantine/` are
//! outside it. An append that would exceed it first reclaims a fully acknowledged open segment,
//! then applies [`FullPolicy`]: `block` waits for acknowledgements (async: as long as needed;
//! blocking API: `block_timeout`, then [`BufferError::Full`]), `drop_oldest` deletes the oldest
//! segment and counts its unacknowledged records as dropped, `drop_newest` refuses the new
//! records and counts them. A buffer opened with a `max_bytes` below what it already holds is
//! over the bound until the policy brings it back: `drop_oldest` at the next append, `block` and
//! `drop_newest` once acknowledgements free the space ([`OpenReport::used_bytes`] says how much
//! it holds). One warning is logged when the buffer becomes full and one info line
//! (with the counts) when it is at most half full again — per episode, not per record. If the
//! disk itself is full, the failed append is cut back (no garbage stays before a later record)
//! and returned as [`BufferError::Io`]; if even that fails the buffer refuses further appends.
//!
//! # Crash and corruption (at open)
//! A damaged tail of the newest segment is a write torn by a crash: it is cut off and reported
//! ([`OpenReport::truncated`]: bytes and records started). Damage anywhere else — a CRC mismatch
//! in a sealed segment, a frame out of sequence — is corruption: the scan resynchronises at the
//! next valid frame, the damaged bytes are copied to `quarantine/` and reported
//! ([`OpenReport::quarantined`], with the records lost when known), the valid records before
//! and after it stay deliverable (the part after becomes a segment of its own). Damage found
//! while reading (bit rot after open) skips the rest of that segment, counted in
//! [`Stats::corrupt_records`]. No input makes open or a read panic. A damaged ledger is
//! reported; every record on disk is then delivered again.
//!
//! # Metrics
//! Labelled `component="buffer"`, `instance=` [`Options::name`]:
//! `mw_buffer_appended_records_total`, `mw_buffer_appended_bytes_total`,
//! `mw_buffer_dropped_records_total{reason="drop_oldest"|"drop_newest"}`,
//! `mw_buffer_block_timeouts_total`, `mw_buffer_corrupt_records_total`, gauges `mw_buffer_bytes`
//! and `mw_buffer_pending_records` (the latter refreshed by the background thread and by
//! [`Buffer::stats`]). The same counts are in [`Buffer::stats`].

mod buffer;
pub mod config;
pub mod format;
mod ranges;

pub use buffer::{
    Buffer, BufferError, LedgerFound, OpenReport, Quarantined, RESERVE_STEP, Stats, Truncated,
};
pub use config::{BufferConfig, ConfigError, FullPolicy, Options, Sync};
pub use format::{Record, Seq};
