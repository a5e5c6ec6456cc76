//! The buffer's metrics match its `Stats`, captured with a small in-test recorder (local to the
//! open call: the buffer registers its handles when it opens).

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use mw_buffer::{Buffer, FullPolicy, Options};
use mw_storage::storage::MemStorage;

#[derive(Default)]
struct Cell(AtomicU64);

impl CounterFn for Cell {
    fn increment(&self, v: u64) {
        self.0.fetch_add(v, Ordering::SeqCst);
    }
    fn absolute(&self, v: u64) {
        self.0.store(v, Ordering::SeqCst);
    }
}
impl GaugeFn for Cell {
    fn increment(&self, v: f64) {
        self.set(f64::from_bits(self.0.load(Ordering::SeqCst)) + v);
    }
    fn decrement(&self, v: f64) {
        GaugeFn::increment(self, -v);
    }
    fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::SeqCst);
    }
}
impl HistogramFn for Cell {
    fn record(&self, _v: f64) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Every metric as `name{k=v,...}`.
#[derive(Clone, Default)]
struct Rec(Arc<Mutex<BTreeMap<String, Arc<Cell>>>>);

impl Rec {
    fn cell(&self, key: &Key) -> Arc<Cell> {
        let mut labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        self.0.lock().unwrap().entry(name).or_default().clone()
    }
    fn get(&self, k: &str) -> u64 {
        self.0
            .lock()
            .unwrap()
            .get(k)
            .map(|c| c.0.load(Ordering::SeqCst))
            .unwrap_or_else(|| panic!("no metric {k}; have {:?}", self.0.lock().unwrap().keys()))
    }
}

impl Recorder for Rec {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.cell(key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.cell(key))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.cell(key))
    }
}

fn open_recorded(rec: &Rec, mem: &MemStorage, o: Options) -> Buffer {
    metrics::with_local_recorder(rec, || Buffer::open(Arc::new(mem.clone()), o))
        .expect("open")
        .0
}

#[test]
fn drops_and_appends_are_counted_on_the_metrics_as_in_stats() {
    let rec = Rec::default();
    let mem = MemStorage::new();
    let newest = open_recorded(
        &rec,
        &mem,
        Options {
            name: "newest".into(),
            ..opts(256, 1024, FullPolicy::DropNewest)
        },
    );
    for i in 0..50 {
        let _ = newest.append(0, &payload(i));
    }
    let s = newest.stats();
    assert!(s.dropped_newest > 0);
    let l = "component=buffer,instance=newest";
    assert_eq!(
        rec.get(&format!(
            "mw_buffer_dropped_records_total{{{l},reason=drop_newest}}"
        )),
        s.dropped_newest
    );
    assert_eq!(
        rec.get(&format!("mw_buffer_appended_records_total{{{l}}}")),
        s.appended_records
    );
    assert_eq!(
        rec.get(&format!("mw_buffer_appended_bytes_total{{{l}}}")),
        s.appended_bytes
    );
    assert_eq!(
        f64::from_bits(rec.get(&format!("mw_buffer_bytes{{{l}}}"))),
        s.used_bytes as f64
    );
    assert_eq!(
        f64::from_bits(rec.get(&format!("mw_buffer_pending_records{{{l}}}"))),
        s.pending_records as f64
    );

    let mem2 = MemStorage::new();
    let oldest = open_recorded(
        &rec,
        &mem2,
        Options {
            name: "oldest".into(),
            ..opts(256, 1024, FullPolicy::DropOldest)
        },
    );
    for i in 0..50 {
        oldest.append(0, &payload(i)).unwrap();
    }
    let s = oldest.stats();
    assert!(s.dropped_oldest > 0);
    assert_eq!(
        rec.get(
            "mw_buffer_dropped_records_total{component=buffer,instance=oldest,reason=drop_oldest}"
        ),
        s.dropped_oldest
    );
}
