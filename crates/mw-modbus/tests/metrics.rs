//! The poller's metrics, captured with a small in-test recorder (the only test in this binary,
//! since the recorder is process-global).

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use mw_modbus::config::{RegisterTable::*, WordOrder::*};
use mw_model::DataType::U16;

/// Every metric as `name{k=v,...}` → value (counter total, gauge value, or histogram count).
#[derive(Default)]
struct Captured(Mutex<BTreeMap<String, Arc<Cell>>>);

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

fn key_string(key: &Key) -> String {
    let mut labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    labels.sort();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

impl Captured {
    fn cell(&self, key: &Key) -> Arc<Cell> {
        self.0
            .lock()
            .unwrap()
            .entry(key_string(key))
            .or_default()
            .clone()
    }
    fn get(&self, k: &str) -> Option<u64> {
        self.0
            .lock()
            .unwrap()
            .get(k)
            .map(|c| c.0.load(Ordering::SeqCst))
    }
}

struct Rec(Arc<Captured>);

impl Recorder for Rec {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.0.cell(key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.0.cell(key))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.0.cell(key))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_match_what_was_published() {
    let cap = Arc::new(Captured::default());
    metrics::set_global_recorder(Rec(cap.clone())).expect("recorder installed once");

    let (ep, _srv, _h) = start_server(image_with_holding(&[1, 2, 3])).await;
    let refused = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().to_string()
    };
    let good = device(
        "good",
        ep.clone(),
        vec![
            tag("m/a", HoldingRegister, 0, U16, Abcd),
            tag("m/b", HoldingRegister, 2, U16, Abcd),
        ],
    );
    let exc = device("exc", ep, vec![tag("m/e", HoldingRegister, 50, U16, Abcd)]);
    let down = device(
        "down",
        refused,
        vec![tag("m/d", HoldingRegister, 0, U16, Abcd)],
    );
    let mut hs = spawn(vec![good, exc, down]);
    hs.record_for(Duration::from_millis(1000)).await;
    let snap = hs.registry.snapshot();
    let gauge = |k: &str| cap.get(k).map(f64::from_bits);
    assert_eq!(
        gauge("mw_connected{component=modbus,instance=good}"),
        Some(1.0)
    );
    assert_eq!(
        gauge("mw_connected{component=modbus,instance=exc}"),
        Some(1.0)
    );
    assert_eq!(
        gauge("mw_connected{component=modbus,instance=down}"),
        Some(0.0)
    );
    hs.stop(Duration::from_millis(500)).await;
    // Drain what was published before the stop.
    hs.record_for(Duration::from_millis(100)).await;

    let good_received = hs
        .all
        .iter()
        .filter(|s| s.tag.as_str().starts_with("m/") && s.quality.is_good())
        .count() as u64;
    let counted = cap
        .get("mw_received_samples_total{component=modbus,instance=good}")
        .unwrap();
    // The last cycle may have been counted and then cancelled by the shutdown before publishing.
    assert!(
        counted == good_received || counted == good_received + 2,
        "counted {counted}, received {good_received}"
    );
    assert!(good_received >= 10);
    let bytes = cap
        .get("mw_received_bytes_total{component=modbus,instance=good}")
        .unwrap();
    assert_eq!(
        bytes,
        counted / 2 * 6,
        "one 3-register read (6 bytes) per cycle of 2 samples"
    );

    let err = |inst: &str, t: &str| {
        cap.get(&format!(
            "mw_errors_total{{component=modbus,error_type={t},instance={inst},stage=receiving}}"
        ))
        .unwrap_or(0)
    };
    let exc_samples = hs.all.iter().filter(|s| s.tag.as_str() == "m/e").count() as u64;
    assert!(err("exc", "exception") >= exc_samples && err("exc", "exception") <= exc_samples + 1);
    assert!(err("down", "connect") >= 2, "refused connects counted");
    assert_eq!(
        err("down", "exception") + err("good", "timeout") + err("good", "io"),
        0
    );
    assert_eq!(
        cap.get("mw_received_samples_total{component=modbus,instance=down}")
            .unwrap_or(0),
        0
    );
    // One duration per cycle, failed cycles included.
    for (i, inst) in ["good", "exc", "down"].iter().enumerate() {
        let n = cap
            .get(&format!(
                "mw_poll_duration_seconds{{component=modbus,instance={inst}}}"
            ))
            .unwrap();
        assert!(
            n >= snap[i].cycles && n >= 5,
            "{inst}: {n} durations for {} cycles",
            snap[i].cycles
        );
    }
    assert_eq!(
        gauge("mw_connected{component=modbus,instance=good}"),
        Some(0.0),
        "0 after shutdown"
    );
    assert_eq!(
        cap.get("mw_reconnects_total{component=modbus,instance=good}"),
        Some(0)
    );
}
