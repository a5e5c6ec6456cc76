//! The live store: the latest sample of every tag plus a bounded window of recent samples per
//! tag, and the most recent events (connection changes, …), in memory.
//!
//! Memory is bounded: at most `window` samples per tag, and at most `max_tags` tags (samples of
//! further tags are counted in `mw_discarded_samples_total{component="live",reason="too_many_tags"}`
//! and dropped). The live store is one sink of the bus; durable history (the historian) is
//! another sink that subscribes to the same bus, so it plugs in without touching this crate.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, RwLock};

use mw_bus::{BoxFuture, BuildError, Component, Overload, Parts, Sink, SinkInput, SinkOptions};
use mw_model::{Event, Sample, TagPath};

/// Default cap on distinct tags held.
pub const DEFAULT_MAX_TAGS: usize = 100_000;
/// Events kept (the oldest go first).
pub const MAX_EVENTS: usize = 1000;

struct TagState {
    recent: VecDeque<Sample>,
}

struct Inner {
    tags: HashMap<TagPath, TagState>,
    events: VecDeque<Event>,
}

/// Shared, cheaply cloneable handle to the live store.
#[derive(Clone)]
pub struct LiveStore {
    inner: Arc<RwLock<Inner>>,
    window: usize,
    max_tags: usize,
}

impl LiveStore {
    /// `window`: samples kept per tag (≥ 1).
    pub fn new(window: usize) -> LiveStore {
        LiveStore::with_limits(window, DEFAULT_MAX_TAGS)
    }

    pub fn with_limits(window: usize, max_tags: usize) -> LiveStore {
        LiveStore {
            inner: Arc::new(RwLock::new(Inner {
                tags: HashMap::new(),
                events: VecDeque::new(),
            })),
            window: window.max(1),
            max_tags,
        }
    }

    pub fn window(&self) -> usize {
        self.window
    }

    /// Applies a batch in order. Samples older than the tag's latest (by source timestamp) are
    /// kept in the window but do not replace the latest value.
    pub fn apply(&self, batch: &[Sample]) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let mut refused = 0u64;
        for s in batch {
            let n = inner.tags.len();
            let state = match inner.tags.get_mut(&s.tag) {
                Some(st) => st,
                None if n >= self.max_tags => {
                    refused += 1;
                    continue;
                }
                None => inner.tags.entry(s.tag.clone()).or_insert_with(|| TagState {
                    recent: VecDeque::with_capacity(self.window.min(64)),
                }),
            };
            if state.recent.len() == self.window {
                state.recent.pop_front();
            }
            // keep the window sorted by source time: insert late arrivals in place
            let pos = state
                .recent
                .iter()
                .rposition(|x| x.source_ts <= s.source_ts)
                .map_or(0, |p| p + 1);
            state.recent.insert(pos, s.clone());
        }
        drop(inner);
        if refused > 0 {
            metrics::counter!("mw_discarded_samples_total", "component" => "live", "instance" => "store",
                "reason" => "too_many_tags")
            .increment(refused);
        }
    }

    /// The latest sample of every tag, sorted by path.
    pub fn latest_all(&self) -> Vec<Sample> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<Sample> = inner
            .tags
            .values()
            .filter_map(|t| t.recent.back().cloned())
            .collect();
        v.sort_by(|a, b| a.tag.cmp(&b.tag));
        v
    }

    pub fn latest(&self, tag: &TagPath) -> Option<Sample> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner.tags.get(tag).and_then(|t| t.recent.back().cloned())
    }

    /// Up to `limit` most recent samples of a tag, oldest first; `None` if the tag is unknown.
    pub fn recent(&self, tag: &TagPath, limit: usize) -> Option<Vec<Sample>> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let t = inner.tags.get(tag)?;
        let skip = t.recent.len().saturating_sub(limit);
        Some(t.recent.iter().skip(skip).cloned().collect())
    }

    /// Keeps events, the newest [`MAX_EVENTS`] of them, in arrival order.
    pub fn apply_events(&self, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        for e in events {
            if inner.events.len() == MAX_EVENTS {
                inner.events.pop_front();
            }
            inner.events.push_back(e.clone());
        }
    }

    /// The newest `limit` events, oldest first.
    pub fn recent_events(&self, limit: usize) -> Vec<Event> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let skip = inner.events.len().saturating_sub(limit);
        inner.events.iter().skip(skip).cloned().collect()
    }

    pub fn tag_count(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .tags
            .len()
    }

    /// The store as a bus sink fed as `opts` says (samples and events, never durable: it keeps
    /// nothing across a restart, so it never holds an acknowledgement back).
    pub fn sink(&self, opts: SinkOptions) -> LiveSink {
        LiveSink {
            store: self.clone(),
            opts: SinkOptions {
                wants: mw_bus::Wants::Both,
                durable: false,
                ..opts
            },
        }
    }
}

/// The live store as a component: one store sized by `[pipeline] live_window`, its sink with the
/// queue and overload policy of `[pipeline] sink_capacity` / `overload`, and the store itself
/// provided as a handle (the HTTP API reads it).
pub struct LiveComponent;

impl Component for LiveComponent {
    fn name(&self) -> &'static str {
        "live"
    }

    fn build(&self, cfg: &mw_config::Config, parts: &mut Parts) -> Result<(), BuildError> {
        let store = LiveStore::new(cfg.pipeline.live_window);
        parts.add_sink(Box::new(
            store.sink(
                SinkOptions::new("live", cfg.pipeline.sink_capacity)
                    .overload(Overload::from_config(cfg.pipeline.overload)),
            ),
        ));
        parts.provide(store);
        Ok(())
    }
}

/// The live store's bus sink (see [`LiveStore::sink`]). Disconnect: it has no upstream.
/// Overload: its queue follows the configured policy (`[pipeline] overload`, default `block`;
/// `drop_oldest` suits a store that only shows the present). Restart: it starts empty.
pub struct LiveSink {
    store: LiveStore,
    opts: SinkOptions,
}

impl Sink for LiveSink {
    fn options(&self) -> SinkOptions {
        self.opts.clone()
    }

    fn run(self: Box<Self>, mut input: SinkInput) -> BoxFuture<()> {
        Box::pin(async move {
            let received = metrics::counter!("mw_received_samples_total", "component" => "live",
                "instance" => self.opts.name.clone());
            while let Some(d) = input.recv().await {
                self.store.apply(&d.batch.samples);
                self.store.apply_events(&d.batch.events);
                received.increment(d.batch.samples.len() as u64);
                d.commit();
            }
            tracing::debug!("live store sink finished");
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mw_bus::{BusBuilder, BusConfig};
    use mw_model::{Quality, Value};

    fn s(tag: &str, v: f64, ts: i64) -> Sample {
        Sample::good(TagPath::new(tag).unwrap(), Value::F64(v), ts)
    }

    #[test]
    fn keeps_latest_and_bounded_window() {
        let st = LiveStore::new(3);
        for i in 0..10 {
            st.apply(&[s("a/x", i as f64, i)]);
        }
        st.apply(&[s("a/y", 1.0, 5)]);
        let x = TagPath::new("a/x").unwrap();
        assert_eq!(st.latest(&x).unwrap().value, Value::F64(9.0));
        let r: Vec<_> = st
            .recent(&x, 100)
            .unwrap()
            .iter()
            .map(|s| s.source_ts)
            .collect();
        assert_eq!(r, vec![7, 8, 9]);
        assert_eq!(st.recent(&x, 2).unwrap().len(), 2);
        assert!(st.recent(&TagPath::new("a/z").unwrap(), 5).is_none());
        let all: Vec<_> = st.latest_all().iter().map(|s| s.tag.to_string()).collect();
        assert_eq!(all, vec!["a/x", "a/y"]);
    }

    #[test]
    fn late_sample_does_not_replace_latest() {
        let st = LiveStore::new(10);
        st.apply(&[s("a/x", 2.0, 20), s("a/x", 1.0, 10)]);
        let x = TagPath::new("a/x").unwrap();
        assert_eq!(st.latest(&x).unwrap().value, Value::F64(2.0));
        let r: Vec<_> = st
            .recent(&x, 10)
            .unwrap()
            .iter()
            .map(|s| s.source_ts)
            .collect();
        assert_eq!(r, vec![10, 20]);
    }

    #[test]
    fn keeps_the_newest_events_in_order() {
        let st = LiveStore::new(1);
        let ev = |i: i64| {
            Event::new(
                i,
                "test/x",
                mw_model::EventKind::ConfigChange {
                    summary: format!("{i}"),
                },
            )
        };
        let all: Vec<Event> = (0..(MAX_EVENTS as i64 + 5)).map(ev).collect();
        st.apply_events(&all[..10]);
        st.apply_events(&all[10..]);
        let ts: Vec<i64> = st.recent_events(3).iter().map(|e| e.ts).collect();
        let n = MAX_EVENTS as i64 + 5;
        assert_eq!(ts, [n - 3, n - 2, n - 1]);
        assert_eq!(st.recent_events(usize::MAX).len(), MAX_EVENTS, "bounded");
        assert_eq!(
            st.recent_events(usize::MAX)[0].ts,
            5,
            "the oldest went first"
        );
    }

    #[test]
    fn tag_cap_is_enforced() {
        let st = LiveStore::with_limits(2, 2);
        st.apply(&[s("a/1", 1.0, 1), s("a/2", 1.0, 1), s("a/3", 1.0, 1)]);
        assert_eq!(st.tag_count(), 2);
        assert!(st.latest(&TagPath::new("a/3").unwrap()).is_none());
    }

    #[tokio::test]
    async fn runs_as_bus_sink() {
        let mut b = BusBuilder::new(BusConfig::default());
        let p = b.publisher();
        let st = LiveStore::new(5);
        b.sink(Box::new(st.sink(SinkOptions::new("live", 4))));
        let running = b.start(&mw_bus::SourceRegistry::new());
        let mut bad = s("a/x", f64::NAN, 3);
        bad.quality = Quality::Bad("timeout".into());
        p.publish(vec![s("a/x", 1.0, 1), s("a/x", 2.0, 2), bad])
            .await
            .unwrap();
        drop(p);
        assert!(running.stop(std::time::Duration::from_secs(1)).await);
        let latest = st.latest(&TagPath::new("a/x").unwrap()).unwrap();
        assert_eq!(latest.quality, Quality::Bad("timeout".into()));
        assert_eq!(
            st.recent(&TagPath::new("a/x").unwrap(), 10).unwrap().len(),
            3
        );
    }
}
