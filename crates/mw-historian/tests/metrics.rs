//! The historian's metrics, captured with a minimal in-test recorder (the only test in this
//! binary, since a recorder is process-global).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use mw_historian::engine::{Historian, Options};
use mw_historian::record::Point;
use mw_historian::{Agg, MemStorage};
use mw_model::{Quality, TagPath, Value};

/// Every series `name{k=v,…}` → what it received: counter increments summed, the last gauge
/// value, every histogram value.
#[derive(Default)]
struct Seen(Mutex<BTreeMap<String, Vec<f64>>>);

struct Handle(Arc<Seen>, String, Kind);

#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Handle {
    fn put(&self, v: f64) {
        let mut m = self.0.0.lock().unwrap();
        let e = m.entry(self.1.clone()).or_default();
        match self.2 {
            Kind::Counter => *e = vec![e.first().copied().unwrap_or(0.0) + v],
            Kind::Gauge => *e = vec![v],
            Kind::Histogram => e.push(v),
        }
    }
}

impl metrics::CounterFn for Handle {
    fn increment(&self, v: u64) {
        self.put(v as f64);
    }
    fn absolute(&self, _: u64) {}
}
impl metrics::GaugeFn for Handle {
    fn increment(&self, _: f64) {}
    fn decrement(&self, _: f64) {}
    fn set(&self, v: f64) {
        self.put(v);
    }
}
impl metrics::HistogramFn for Handle {
    fn record(&self, v: f64) {
        self.put(v);
    }
}

struct Rec(Arc<Seen>);

impl Rec {
    fn handle(&self, key: &Key, kind: Kind) -> Arc<Handle> {
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        Arc::new(Handle(self.0.clone(), name, kind))
    }
}

impl Recorder for Rec {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.handle(key, Kind::Counter))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.handle(key, Kind::Gauge))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.handle(key, Kind::Histogram))
    }
}

impl Seen {
    fn all(&self, k: &str) -> Vec<f64> {
        self.0.lock().unwrap().get(k).cloned().unwrap_or_default()
    }
    fn one(&self, k: &str) -> f64 {
        let v = self.all(k);
        assert_eq!(v.len(), 1, "{k}: {v:?}");
        v[0]
    }
}

#[tokio::test]
async fn sizes_writes_fsyncs_queries_and_evictions_are_reported() {
    let seen = Arc::new(Seen::default());
    metrics::set_global_recorder(Rec(seen.clone())).unwrap();
    let disk = MemStorage::new();
    let (h, _) = Historian::open(Arc::new(disk.clone()), Options::new("/h")).unwrap();
    assert_eq!(seen.one("mw_historian_evictions_total{}"), 0.0);
    assert_eq!(seen.one("mw_historian_wal_bytes{}"), 0.0);
    let tag = TagPath::new("a/x").unwrap();
    for batch in 0..3 {
        let pts: Vec<Point> = (0..100)
            .map(|i| Point {
                tag: tag.clone(),
                ts: (batch * 100 + i) * 1_000_000_000,
                value: Value::F64(20.0 + (i % 7) as f64 / 10.0),
                quality: Quality::Good,
            })
            .collect();
        h.write(&pts).await.unwrap();
    }
    assert_eq!(seen.one("mw_historian_points_written_total{}"), 300.0);
    let u = h.usage();
    assert!(u.wal_bytes > 300 * 16, "{u:?}");
    assert_eq!(seen.one("mw_historian_wal_bytes{}"), u.wal_bytes as f64);
    assert_eq!(seen.one("mw_historian_disk_bytes{}"), u.wal_bytes as f64);
    let fsyncs = seen.all("mw_historian_fsync_seconds{}");
    assert!(
        (1..=3).contains(&fsyncs.len()) && fsyncs.iter().all(|s| *s >= 0.0),
        "one fsync per acknowledged group: {fsyncs:?}"
    );
    assert!(seen.all("mw_historian_compression_ratio{}").is_empty());

    h.flush().await.unwrap();
    let u = h.usage();
    assert_eq!(u.segment_points, 300);
    assert_eq!(seen.one("mw_historian_wal_bytes{}"), u.wal_bytes as f64);
    assert_eq!(
        seen.one("mw_historian_disk_bytes{}"),
        (u.segment_bytes + u.wal_bytes) as f64
    );
    let ratio = seen.one("mw_historian_compression_ratio{}");
    assert_eq!(ratio, 16.0 * 300.0 / u.segment_bytes as f64);
    assert!(ratio > 4.0, "regular 1 s data with one decimal: {ratio}");

    assert_eq!(h.range(&tag, 0, i64::MAX).len(), 300);
    assert_eq!(h.range_half_open(&tag, 0, i64::MAX).len(), 300);
    let b = h.aggregate(&tag, 0, 300_000_000_000, 60_000_000_000, Agg::Max);
    assert_eq!(b.len(), 5);
    assert!(h.latest(&tag).is_some());
    assert_eq!(seen.all("mw_historian_query_seconds{query=range}").len(), 2);
    assert_eq!(
        seen.all("mw_historian_query_seconds{query=aggregate}")
            .len(),
        1
    );
    assert_eq!(
        seen.all("mw_historian_query_seconds{query=latest}").len(),
        1
    );
    h.close();
}
