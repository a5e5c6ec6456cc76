//! The historian as a pipeline component: the `[historian]` config section, a durable bus sink
//! that stores every sample, and the store offered as a handle to other layers (queries).
//!
//! ```toml
//! [historian]                  # present = on; absent = no history kept
//! dir = "millwright-data/historian"   # default: <site.data_dir>/historian
//! fsync = "always"             # default: a batch is acknowledged once it is on disk
//! # interval_ms = 100          # instead of fsync: acknowledged when written, synced within N ms
//! flush_points = 500000        # the in-memory head is written to a segment file beyond this
//! create_tags = true           # an HTTP line-protocol write may create tags (typed by its field)
//! partition = "1d"             # flushed files are compacted into one file per partition
//! retention = "30d"            # raw points of tags no class below matches
//! rollup_1m = "180d"           # 1-minute rollups (min, max, avg, count, first, last)
//! rollup_1h = "5y"             # 1-hour rollups
//! # max_bytes = "20GB"         # disk quota: beyond it the oldest partitions are evicted
//!
//! [[historian.retention_class]] # first match wins
//! match = "plant/**/vibration*" # `*` within a segment, `**` any number of segments
//! raw = "7d"
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mw_bus::{BoxFuture, BuildError, Component, Parts, Sink, SinkInput, SinkOptions, Wants};
use mw_config::{Config, Cx, Section, SectionValue, Table};

use crate::engine::{Historian, Options};
use crate::record::Point;
use crate::retention::Retention;
use crate::storage::FsStorage;
use crate::wal::SyncPolicy;
use mw_model::TagPattern;

/// The checked `[historian]` section.
#[derive(Clone, Debug, PartialEq)]
pub struct HistorianConfig {
    /// False when the section is absent.
    pub enabled: bool,
    /// `None`: `<site.data_dir>/historian`.
    pub dir: Option<PathBuf>,
    pub sync: SyncPolicy,
    pub flush_points: usize,
    /// Length of a time partition (ns).
    pub partition: i64,
    pub retention: Retention,
    /// The disk quota in bytes, if any.
    pub max_bytes: Option<u64>,
    /// Whether an HTTP write may create a tag that does not exist yet.
    pub create_tags: bool,
}

impl Default for HistorianConfig {
    fn default() -> Self {
        HistorianConfig {
            enabled: false,
            dir: None,
            sync: SyncPolicy::Always,
            flush_points: 500_000,
            partition: crate::engine::DAY,
            retention: Retention::default(),
            max_bytes: None,
            create_tags: true,
        }
    }
}

/// A size like `"20GB"`: a whole number and a unit of `B`, `kB`, `MB`, `GB`, `TB` (powers of
/// 1000) or `KiB`, `MiB`, `GiB`, `TiB` (powers of 1024). Returns bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let bad = || {
        format!(
            "invalid size {s:?} (expected a whole number and a unit: B, kB, MB, GB, TB, KiB, \
             MiB, GiB or TiB, e.g. \"20GB\")"
        )
    };
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = t.split_at(split);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let unit: u64 = match unit.trim_start() {
        "B" => 1,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        _ => return Err(bad()),
    };
    n.checked_mul(unit)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

const SECOND: i64 = 1_000_000_000;

/// A duration like `"30d"`: a positive integer and one unit of `s`, `m` (minutes), `h`, `d`,
/// `w` (7 days) or `y` (365 days). Returns nanoseconds.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let bad = || {
        format!(
            "invalid duration {s:?} (expected a whole number and a unit: s, m, h, d, w or y, \
             e.g. \"30d\")"
        )
    };
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = t.split_at(split);
    let n: i64 = n.parse().map_err(|_| bad())?;
    let unit = match unit {
        "s" => SECOND,
        "m" => 60 * SECOND,
        "h" => 3_600 * SECOND,
        "d" => 86_400 * SECOND,
        "w" => 7 * 86_400 * SECOND,
        "y" => 365 * 86_400 * SECOND,
        _ => return Err(bad()),
    };
    n.checked_mul(unit)
        .ok_or_else(|| format!("duration {s:?} is too long (at most about 292 years)"))
}

/// The duration `key` of `t`, reported unless within `[min, max]` (ns; their names for messages).
fn duration(
    cx: &mut Cx<'_>,
    t: Table<'_, '_>,
    key: &str,
    (min, min_s): (i64, &str),
    (max, max_s): (i64, &str),
) -> Option<i64> {
    let f = cx.string(t, key, false)?;
    match parse_duration(f.v) {
        Ok(v) if (min..=max).contains(&v) => Some(v),
        Ok(_) => {
            cx.err(
                f.span.start,
                format!(
                    "\"{key}\" in {} is {:?}: it must be between {min_s} and {max_s}",
                    t.name(),
                    f.v
                ),
            );
            None
        }
        Err(e) => {
            cx.err(f.span.start, format!("\"{key}\" in {}: {e}", t.name()));
            None
        }
    }
}

struct HistorianSection;

const KEYS: &[&str] = &[
    "dir",
    "fsync",
    "interval_ms",
    "flush_points",
    "partition",
    "retention",
    "retention_class",
    "rollup_1m",
    "rollup_1h",
    "max_bytes",
    "create_tags",
];

/// The longest retention: 100 years.
const MAX_KEEP: (i64, &str) = (100 * 365 * 86_400 * SECOND, "\"100y\"");
const MIN_KEEP: (i64, &str) = (3_600 * SECOND, "\"1h\"");

impl Section for HistorianSection {
    fn key(&self) -> &'static str {
        "historian"
    }

    fn check(&self, root: Table<'_, '_>, cx: &mut Cx<'_>) -> Box<dyn SectionValue> {
        let mut out = HistorianConfig::default();
        let Some(t) = cx.table(root, "historian", false, "[historian]") else {
            return Box::new(out);
        };
        let t = t.v;
        out.enabled = true;
        cx.unknown_keys(t, KEYS);
        if let Some(f) = cx.string(t, "dir", false) {
            if f.v.trim().is_empty() {
                cx.err(
                    f.span.start,
                    "\"dir\" in [historian] is empty; leave it out for <site.data_dir>/historian",
                );
            } else {
                out.dir = Some(f.v.into());
            }
        }
        let fsync = cx.choice(t, "fsync", "fsync policy", &[("always", ())]);
        if let Some(f) = cx.integer(t, "interval_ms", false, 1..=60_000) {
            if let Some(a) = &fsync {
                cx.err(
                    a.span.start,
                    "[historian] has both \"fsync\" and \"interval_ms\": \"fsync = \\\"always\\\"\" \
                     acknowledges after the disk has the data, \"interval_ms\" syncs within that \
                     time after acknowledging; keep one",
                );
            }
            out.sync = SyncPolicy::Interval(Duration::from_millis(f.v as u64));
        }
        if let Some(f) = cx.integer(t, "flush_points", false, 1_000..=50_000_000) {
            out.flush_points = f.v as usize;
        }
        if let Some(v) = duration(
            cx,
            t,
            "partition",
            (3_600 * SECOND, "\"1h\""),
            (31 * 86_400 * SECOND, "\"31d\""),
        ) {
            if v % (3_600 * SECOND) == 0 {
                out.partition = v;
            } else if let Some(at) = t.key_start("partition") {
                cx.err(
                    at,
                    "\"partition\" in [historian] must be a whole number of hours (rollups of \
                     1 h must not straddle partitions), e.g. \"6h\" or \"1d\"",
                );
            }
        }
        if let Some(v) = duration(cx, t, "retention", MIN_KEEP, MAX_KEEP) {
            out.retention.raw = v;
        }
        if let Some(v) = duration(cx, t, "rollup_1m", MIN_KEEP, MAX_KEEP) {
            out.retention.rollup_1m = v;
        }
        if let Some(v) = duration(cx, t, "rollup_1h", MIN_KEEP, MAX_KEEP) {
            out.retention.rollup_1h = v;
        }
        if let Some(f) = cx.string(t, "max_bytes", false) {
            match parse_size(f.v) {
                Ok(v) if v >= 16 << 20 => out.max_bytes = Some(v),
                Ok(_) => cx.err(
                    f.span.start,
                    format!(
                        "\"max_bytes\" in [historian] is {:?}: at least \"16MiB\" (the WAL and \
                         the files not yet compacted are never evicted)",
                        f.v
                    ),
                ),
                Err(e) => cx.err(f.span.start, format!("\"max_bytes\" in [historian]: {e}")),
            }
        }
        for item in cx.array_of_tables(t, "retention_class", "historian.retention_class") {
            let c = item.table("[[historian.retention_class]]");
            cx.unknown_keys(c, &["match", "raw"]);
            cx.require(c, &["match", "raw"]);
            let glob = cx
                .string(c, "match", false)
                .and_then(|f| match TagPattern::new(f.v) {
                    Ok(g) => Some(g),
                    Err(e) => {
                        cx.err(
                            f.span.start,
                            format!("\"match\" in [[historian.retention_class]]: {e}"),
                        );
                        None
                    }
                });
            let raw = duration(cx, c, "raw", MIN_KEEP, MAX_KEEP);
            if let (Some(g), Some(raw)) = (glob, raw) {
                out.retention.classes.push((g, raw));
            }
        }
        if let Some(f) = cx.boolean(t, "create_tags", false) {
            out.create_tags = f.v;
        }
        Box::new(out)
    }
}

/// The component: `[historian]`, its sink and the [`Historian`] handle.
pub struct HistorianComponent;

/// The store's directory for a `[historian]` section: its `dir`, else `<data_dir>/historian`.
pub fn store_dir(hc: &HistorianConfig, data_dir: &Path) -> PathBuf {
    hc.dir.clone().unwrap_or_else(|| data_dir.join("historian"))
}

/// An exclusive lock on a historian directory (`LOCK` in it, an OS file lock), held while the
/// store is open, so that two processes — a running server and an offline `millwright query`,
/// `export` or `import` — never open the same store. The OS releases it when the process ends,
/// however it ends, so a crash leaves no stale lock.
#[derive(Debug)]
pub struct DirLock {
    _file: std::fs::File,
}

impl DirLock {
    /// Takes the lock of `dir` (created if missing) or says who may hold it.
    pub fn acquire(dir: &Path) -> Result<DirLock, String> {
        std::fs::create_dir_all(dir).map_err(|e| {
            format!(
                "cannot create the historian directory {}: {e}",
                dir.display()
            )
        })?;
        let path = dir.join("LOCK");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(DirLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(format!(
                "the historian in {} is in use by another Millwright process (a running server, or \
                 another import, export or query); stop it first, or read the running server's \
                 history over HTTP (GET /api/v1/query)",
                dir.display()
            )),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(format!("cannot lock {}: {e}", path.display()))
            }
        }
    }
}

/// Opens (or creates) the store a `[historian]` section describes, locked, logging what the
/// open found (a torn WAL tail cut off, damaged records skipped).
pub fn open_store(
    hc: &HistorianConfig,
    data_dir: &Path,
) -> Result<(Historian, crate::engine::OpenReport, DirLock), String> {
    let dir = store_dir(hc, data_dir);
    let lock = DirLock::acquire(&dir)?;
    let mut opts = Options::new(&dir);
    opts.sync = hc.sync;
    opts.flush_points = hc.flush_points;
    opts.partition = hc.partition;
    opts.retention = hc.retention.clone();
    opts.max_bytes = hc.max_bytes;
    let (h, report) = Historian::open(Arc::new(FsStorage), opts).map_err(|e| e.to_string())?;
    if let Some(t) = &report.wal_truncated {
        tracing::warn!(segment = %t.segment.display(), dropped_bytes = t.dropped_bytes,
            reason = t.reason, "historian WAL had a torn tail (a crash mid-write); cut off");
    }
    for c in &report.wal_corrupt {
        tracing::error!(segment = %c.segment.display(), at = c.at, skipped_bytes = c.skipped_bytes,
            reason = c.reason, "historian WAL damaged inside; the rest of that segment is skipped");
    }
    for b in &report.bad_records {
        tracing::error!(record = %b, "historian WAL record unreadable; skipped");
    }
    tracing::info!(dir = %dir.display(), segments = report.segments,
        replayed_points = report.replayed_points, "historian open");
    Ok((h, report, lock))
}

impl Component for HistorianComponent {
    fn name(&self) -> &'static str {
        "historian"
    }

    fn sections(&self) -> Vec<Box<dyn Section>> {
        vec![Box::new(HistorianSection)]
    }

    fn build(&self, cfg: &Config, parts: &mut Parts) -> Result<(), BuildError> {
        let hc = cfg
            .section::<HistorianConfig>()
            .cloned()
            .unwrap_or_default();
        if !hc.enabled {
            return Ok(());
        }
        let (h, _report, lock) =
            open_store(&hc, &cfg.site.data_dir).map_err(|message| BuildError {
                component: "historian",
                message,
            })?;
        parts.add_sink(Box::new(HistorianSink {
            store: h.clone(),
            _lock: lock,
            opts: SinkOptions::new("historian", cfg.pipeline.sink_capacity)
                .wants(Wants::Samples)
                .durable(),
        }));
        parts.provide(h);
        Ok(())
    }
}

/// The historian's bus sink. Disconnect: it has no upstream. Overload: its queue blocks when
/// full (history must not have holes), so a stalled disk backs pressure up to the sources.
/// Acknowledgement: a delivery is committed once its samples are durable, failed with the
/// storage error otherwise. Restart: the store reopens with everything acknowledged, and
/// compacts, beside the writes, the flushed files an earlier run left.
pub struct HistorianSink {
    store: Historian,
    /// Held while the sink runs: no other process opens the store meanwhile.
    _lock: DirLock,
    opts: SinkOptions,
}

impl Sink for HistorianSink {
    fn options(&self) -> SinkOptions {
        self.opts.clone()
    }

    fn run(self: Box<Self>, mut input: SinkInput) -> BoxFuture<()> {
        Box::pin(async move {
            // What an earlier run flushed but did not compact (a stop cuts a compaction short,
            // and a flush compacts only what has ended by then) is compacted now, beside the
            // writes: until then queries decode those files instead of using rollups and stats.
            let store = self.store.clone();
            tokio::spawn(async move {
                match store.compact().await {
                    Ok(c) if !c.partitions.is_empty() => {
                        tracing::info!(
                            partitions = c.partitions.len(),
                            replaced = c.replaced,
                            "historian compacted what an earlier run left"
                        );
                    }
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e,
                        "historian compaction at start failed; the flushed files stay as they are"),
                }
            });
            let mut warned = false;
            while let Some(d) = input.recv().await {
                let points: Vec<Point> = d.batch.samples.iter().map(Point::from).collect();
                match self.store.write(&points).await {
                    Ok(()) => {
                        warned = false;
                        d.commit();
                    }
                    Err(e) => {
                        metrics::counter!("mw_historian_write_errors_total").increment(1);
                        if !warned {
                            tracing::error!(error = %e, "historian cannot store samples; \
                                they are not acknowledged");
                            warned = true;
                        }
                        d.fail(e.to_string());
                    }
                }
            }
            if let Err(e) = self.store.flush().await {
                tracing::error!(error = %e, "historian flush at shutdown failed; the WAL keeps the data");
            }
            let store = self.store.clone();
            let _ = tokio::task::spawn_blocking(move || store.close()).await;
        })
    }
}

#[cfg(test)]
mod lock_tests {
    use super::*;

    #[test]
    fn a_store_directory_is_opened_by_one_holder_at_a_time() {
        let dir = std::env::temp_dir().join(format!("mw-dirlock-{}", std::process::id()));
        let first = DirLock::acquire(&dir).expect("the first lock");
        let e = DirLock::acquire(&dir).expect_err("a second holder is refused");
        assert!(e.contains("is in use by another Millwright process"), "{e}");
        drop(first);
        let again = DirLock::acquire(&dir).expect("free again once released");
        drop(again);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
