//! The buffer's options: [`BufferConfig`] as written in a config file (serde, every key with a
//! default) and the checked [`Options`] the buffer runs with.
//!
//! ```toml
//! [buffer]
//! dir = "forward"            # segment files, the ack ledger and quarantine/ go here
//! max_bytes = 1073741824     # bound on the segment files on disk, the open one included (1 GiB)
//! segment_bytes = 16777216   # a segment is sealed and a new one started beyond this (16 MiB)
//! full_policy = "block"      # or "drop_oldest", "drop_newest"
//! fsync = "always"           # or "interval" (then every fsync_interval_ms)
//! fsync_interval_ms = 1000
//! block_timeout_ms = 5000    # how long a blocking append waits for space before it fails
//! ack_persist_ms = 1000      # the ack ledger is written within about twice this after an ack
//! ```

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::format::{MAX_PAYLOAD, OVERHEAD};

/// What an append does when the buffer holds `max_bytes`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FullPolicy {
    /// The append waits until acknowledgements free space (backpressure); the blocking API
    /// gives up after `block_timeout` with [`crate::BufferError::Full`].
    #[default]
    Block,
    /// The oldest segment is deleted, acknowledged or not; its unacknowledged records are
    /// counted as dropped.
    DropOldest,
    /// The new records are refused ([`crate::BufferError::Full`]) and counted as dropped.
    DropNewest,
}

impl FullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            FullPolicy::Block => "block",
            FullPolicy::DropOldest => "drop_oldest",
            FullPolicy::DropNewest => "drop_newest",
        }
    }
}

/// When appended records are synced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sync {
    /// Before `append` returns (concurrent appends share one fsync: group commit).
    Always,
    /// At most this long after the append, which returns once the bytes are written: a crash
    /// (not a process kill) may lose the records of that last interval.
    Interval(Duration),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsyncMode {
    #[default]
    Always,
    Interval,
}

/// The `[buffer]` section as written. Every key has a default (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BufferConfig {
    /// Directory of the buffer (relative paths are the caller's to resolve).
    pub dir: PathBuf,
    /// Upper bound of the bytes of all segment files, the open one included.
    pub max_bytes: u64,
    /// Size beyond which a segment is sealed and the next one started.
    pub segment_bytes: u64,
    pub full_policy: FullPolicy,
    pub fsync: FsyncMode,
    /// With `fsync = "interval"`: the longest time an appended record stays unsynced.
    pub fsync_interval_ms: u64,
    /// With `full_policy = "block"`: how long the blocking `append` waits for space.
    pub block_timeout_ms: u64,
    /// The ledger of acknowledgements is persisted within about twice this after an ack (and on
    /// `flush`, `close` and drop; 0: at every ack); acks not yet persisted are redelivered
    /// after a crash.
    pub ack_persist_ms: u64,
}

impl Default for BufferConfig {
    fn default() -> BufferConfig {
        BufferConfig {
            dir: PathBuf::from("forward"),
            max_bytes: 1 << 30,
            segment_bytes: 16 << 20,
            full_policy: FullPolicy::Block,
            fsync: FsyncMode::Always,
            fsync_interval_ms: 1000,
            block_timeout_ms: 5000,
            ack_persist_ms: 1000,
        }
    }
}

/// A problem with the options; `field` names the key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("buffer.{field}: {message}")]
pub struct ConfigError {
    pub field: &'static str,
    pub message: String,
}

/// The checked options the buffer runs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    pub dir: PathBuf,
    pub max_bytes: u64,
    pub segment_bytes: u64,
    pub full_policy: FullPolicy,
    pub sync: Sync,
    pub block_timeout: Duration,
    pub ack_persist: Duration,
    /// The `instance` label of the buffer's metrics.
    pub name: String,
}

/// Smallest segment accepted (tests use small ones; real buffers want megabytes).
pub const MIN_SEGMENT_BYTES: u64 = 256;

impl Options {
    /// Defaults (as [`BufferConfig::default`]) in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Options {
        let mut o = BufferConfig::default()
            .check()
            .expect("the defaults are valid");
        o.dir = dir.into();
        o
    }

    /// Every problem with these options (empty: fine).
    pub fn problems(&self) -> Vec<ConfigError> {
        let mut out = Vec::new();
        let mut err = |field, message: String| out.push(ConfigError { field, message });
        if self.segment_bytes < MIN_SEGMENT_BYTES {
            err(
                "segment_bytes",
                format!(
                    "{} is too small; use at least {MIN_SEGMENT_BYTES} (megabytes are typical)",
                    self.segment_bytes
                ),
            );
        }
        if self.segment_bytes > u64::from(u32::MAX) {
            err(
                "segment_bytes",
                format!("{} is larger than 4 GiB", self.segment_bytes),
            );
        }
        if self.max_bytes < self.segment_bytes.saturating_mul(2) {
            err(
                "max_bytes",
                format!(
                    "{} must be at least twice segment_bytes ({}), so that a full buffer can \
                     seal its open segment and still hold one more",
                    self.max_bytes, self.segment_bytes
                ),
            );
        }
        if let Sync::Interval(d) = self.sync
            && (d.is_zero() || d > Duration::from_secs(60))
        {
            err(
                "fsync_interval_ms",
                format!("{} ms is out of range (1 ..= 60000)", d.as_millis()),
            );
        }
        if self.ack_persist > Duration::from_secs(3600) {
            err(
                "ack_persist_ms",
                format!("{} ms is more than an hour", self.ack_persist.as_millis()),
            );
        }
        out
    }

    /// Largest payload an append accepts with these options.
    pub fn max_payload(&self) -> usize {
        (self.segment_bytes as usize)
            .saturating_sub(OVERHEAD)
            .min(MAX_PAYLOAD)
    }
}

impl BufferConfig {
    /// The checked options, or every problem found.
    pub fn check(&self) -> Result<Options, Vec<ConfigError>> {
        let o = Options {
            dir: self.dir.clone(),
            max_bytes: self.max_bytes,
            segment_bytes: self.segment_bytes,
            full_policy: self.full_policy,
            sync: match self.fsync {
                FsyncMode::Always => Sync::Always,
                FsyncMode::Interval => {
                    Sync::Interval(Duration::from_millis(self.fsync_interval_ms))
                }
            },
            block_timeout: Duration::from_millis(self.block_timeout_ms),
            ack_persist: Duration::from_millis(self.ack_persist_ms),
            name: "buffer".into(),
        };
        let mut problems = o.problems();
        if self.fsync == FsyncMode::Always && self.fsync_interval_ms == 0 {
            // not used, but a zero would be wrong the day someone switches to "interval"
            problems.push(ConfigError {
                field: "fsync_interval_ms",
                message: "0 ms is out of range (1 ..= 60000)".into(),
            });
        }
        if problems.is_empty() {
            Ok(o)
        } else {
            Err(problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<BufferConfig, toml::de::Error> {
        toml::from_str(s)
    }

    #[test]
    fn defaults_when_empty() {
        let c = parse("").unwrap();
        assert_eq!(c, BufferConfig::default());
        let o = c.check().unwrap();
        assert_eq!(o.sync, Sync::Always);
        assert_eq!(o.full_policy, FullPolicy::Block);
        assert_eq!(o.max_bytes, 1 << 30);
    }

    #[test]
    fn every_key_parses() {
        let c = parse(
            r#"dir = "/var/lib/mw/forward"
max_bytes = 1048576
segment_bytes = 65536
full_policy = "drop_oldest"
fsync = "interval"
fsync_interval_ms = 200
block_timeout_ms = 10
ack_persist_ms = 0"#,
        )
        .unwrap();
        let o = c.check().unwrap();
        assert_eq!(o.sync, Sync::Interval(Duration::from_millis(200)));
        assert_eq!(o.full_policy, FullPolicy::DropOldest);
        assert_eq!(o.ack_persist, Duration::ZERO);
        assert_eq!(o.dir, PathBuf::from("/var/lib/mw/forward"));
    }

    #[test]
    fn unknown_keys_and_values_are_errors() {
        let e = parse("max_byte = 3").unwrap_err().to_string();
        assert!(e.contains("unknown field `max_byte`"), "{e}");
        let e = parse("full_policy = \"drop\"").unwrap_err().to_string();
        assert!(e.contains("drop_oldest"), "{e}");
    }

    #[test]
    fn every_problem_is_reported() {
        let c = BufferConfig {
            segment_bytes: 10,
            max_bytes: 15,
            fsync: FsyncMode::Interval,
            fsync_interval_ms: 0,
            ..BufferConfig::default()
        };
        let errs = c.check().unwrap_err();
        let fields: Vec<_> = errs.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["segment_bytes", "max_bytes", "fsync_interval_ms"]);
        assert_eq!(
            errs[1].to_string(),
            "buffer.max_bytes: 15 must be at least twice segment_bytes (10), so that a full \
             buffer can seal its open segment and still hold one more"
        );
    }
}
