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
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mw_bus::{BoxFuture, BuildError, Component, Parts, Sink, SinkInput, SinkOptions, Wants};
use mw_config::{Config, Cx, Section, SectionValue, Table};

use crate::engine::{Historian, Options};
use crate::record::Point;
use crate::storage::FsStorage;
use crate::wal::SyncPolicy;

/// The checked `[historian]` section.
#[derive(Clone, Debug, PartialEq)]
pub struct HistorianConfig {
    /// False when the section is absent.
    pub enabled: bool,
    /// `None`: `<site.data_dir>/historian`.
    pub dir: Option<PathBuf>,
    pub sync: SyncPolicy,
    pub flush_points: usize,
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
            create_tags: true,
        }
    }
}

struct HistorianSection;

const KEYS: &[&str] = &["dir", "fsync", "interval_ms", "flush_points", "create_tags"];

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
        if let Some(f) = cx.boolean(t, "create_tags", false) {
            out.create_tags = f.v;
        }
        Box::new(out)
    }
}

/// The component: `[historian]`, its sink and the [`Historian`] handle.
pub struct HistorianComponent;

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
        let dir = hc
            .dir
            .clone()
            .unwrap_or_else(|| cfg.site.data_dir.join("historian"));
        let mut opts = Options::new(&dir);
        opts.sync = hc.sync;
        opts.flush_points = hc.flush_points;
        let (h, report) = Historian::open(Arc::new(FsStorage), opts).map_err(|e| BuildError {
            component: "historian",
            message: e.to_string(),
        })?;
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
        parts.add_sink(Box::new(HistorianSink {
            store: h.clone(),
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
/// storage error otherwise. Restart: the store reopens with everything acknowledged.
pub struct HistorianSink {
    store: Historian,
    opts: SinkOptions,
}

impl Sink for HistorianSink {
    fn options(&self) -> SinkOptions {
        self.opts.clone()
    }

    fn run(self: Box<Self>, mut input: SinkInput) -> BoxFuture<()> {
        Box::pin(async move {
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
