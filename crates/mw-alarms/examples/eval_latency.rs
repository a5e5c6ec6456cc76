//! Measures the alarm engine's evaluation time per sample and per batch (not a test: numbers
//! on a shared machine are indicative). 1000 tags with hi/hihi/lo/lolo each, batches of 1000
//! samples; every 50th batch drives 10 tags across their limits, so transitions are journaled
//! (fsync) on the real file system.
//!
//! `cargo run --release -p mw-alarms --example eval_latency`

use std::sync::Arc;
use std::time::Instant;

use mw_alarms::engine;
use mw_alarms::{AlarmDef, Condition, Priority};
use mw_bus::{Batch, Processor};
use mw_model::{Sample, TagPath, Value};

fn def(tag: &TagPath, kind: &'static str, condition: Condition) -> AlarmDef {
    AlarmDef {
        id: format!("{}:{kind}", tag.as_str()),
        tag: tag.clone(),
        kind,
        condition,
        priority: Priority::High,
        deadband: 0.5,
        on_delay_ns: 0,
        off_delay_ns: 0,
        latching: false,
        message: "{value} {unit} vs {limit}".into(),
        unit: "%{LEL}".into(),
        area: "plant/area".into(),
        asset: tag.asset().to_owned(),
        suppress: None,
    }
}

fn main() {
    const TAGS: usize = 1000;
    const BATCHES: usize = 500;
    let tags: Vec<TagPath> = (0..TAGS)
        .map(|i| TagPath::new(&format!("plant/area/gd{i}/lel")).unwrap())
        .collect();
    let mut defs = Vec::new();
    for t in &tags {
        defs.push(def(t, "hi", Condition::High(10.0)));
        defs.push(def(t, "hihi", Condition::High(20.0)));
        defs.push(def(t, "lo", Condition::Low(-10.0)));
        defs.push(def(t, "lolo", Condition::Low(-20.0)));
    }
    let dir = std::env::temp_dir().join(format!("mw-alarms-latency-{}", std::process::id()));
    let clock = engine::system_clock();
    let (mut p, _c) = engine::open(
        &defs,
        Arc::new(mw_historian::FsStorage),
        dir.clone(),
        clock.clone(),
    )
    .expect("open journal");
    let mut per_batch = Vec::with_capacity(BATCHES);
    let mut transitions = 0;
    for b in 0..BATCHES {
        let now = clock();
        let samples: Vec<Sample> = tags
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let v = if b % 50 == 25 && i < 10 {
                    25.0
                } else {
                    1.0 + (i % 7) as f64 * 0.1
                };
                Sample::good(t.clone(), Value::F64(v), now)
            })
            .collect();
        let mut batch = Batch::from_samples(samples);
        let t0 = Instant::now();
        p.process(&mut batch);
        per_batch.push((t0.elapsed(), batch.events.len()));
        transitions += batch.events.len();
    }
    let mut quiet: Vec<f64> = per_batch
        .iter()
        .filter(|(_, e)| *e == 0)
        .map(|(d, _)| d.as_secs_f64())
        .collect();
    let mut busy: Vec<f64> = per_batch
        .iter()
        .filter(|(_, e)| *e > 0)
        .map(|(d, _)| d.as_secs_f64())
        .collect();
    quiet.sort_by(f64::total_cmp);
    busy.sort_by(f64::total_cmp);
    let pct = |v: &[f64], q: f64| {
        v.get(((v.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    println!(
        "{TAGS} tags x 4 alarms, {BATCHES} batches of {TAGS} samples, {transitions} transitions"
    );
    println!(
        "batches without transitions: p50 {:.1} µs/batch = {:.3} µs/sample, p99 {:.1} µs/batch",
        pct(&quiet, 0.5) * 1e6,
        pct(&quiet, 0.5) * 1e6 / TAGS as f64,
        pct(&quiet, 0.99) * 1e6
    );
    println!(
        "batches with transitions (journal fsync): p50 {:.2} ms, max {:.2} ms",
        pct(&busy, 0.5) * 1e3,
        pct(&busy, 1.0) * 1e3
    );
    let _ = std::fs::remove_dir_all(dir);
}
