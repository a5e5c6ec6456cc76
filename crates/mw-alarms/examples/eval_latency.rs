//! Measures the alarm engine's evaluation time per sample and per batch, and its throughput
//! (not a test: numbers on a shared machine are indicative). `--tags N` tags (default 1000) with
//! hi/hihi/lo/lolo each, batches of `--batch B` samples (default 1000) walking through the tags,
//! `--batches K` of them (default 500); every 50th batch drives 10 of its tags across their
//! limits, so transitions are journaled (fsync) on the real file system. One thread: the
//! throughput is on one core.
//!
//! `cargo run --release -p mw-alarms --example eval_latency [-- --tags 100000 --batch 10000 --batches 200]`

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

/// CPU time of the calling thread, ns (Linux `/proc/thread-self/schedstat`: on-CPU time), so the
/// throughput can be read on a loaded machine too; `None` elsewhere.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} takes a number, got {v:?}"))
        })
}

fn main() {
    let tags_n = arg("--tags", 1000);
    let batch_n = arg("--batch", 1000).min(tags_n).max(1);
    let batches = arg("--batches", 500);
    let t_open = Instant::now();
    let tags: Vec<TagPath> = (0..tags_n)
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
    let opened = t_open.elapsed();
    let mut per_batch = Vec::with_capacity(batches);
    let mut transitions = 0;
    let mut busy_total = std::time::Duration::ZERO;
    let mut cpu_total: Option<u64> = Some(0);
    for b in 0..batches {
        let now = clock();
        let first = (b * batch_n) % tags_n;
        let samples: Vec<Sample> = (0..batch_n)
            .map(|k| {
                let i = (first + k) % tags_n;
                let v = if b % 50 == 25 && k < 10 {
                    25.0
                } else {
                    1.0 + (i % 7) as f64 * 0.1
                };
                Sample::good(tags[i].clone(), Value::F64(v), now)
            })
            .collect();
        let mut batch = Batch::from_samples(samples);
        let c0 = thread_cpu_ns();
        let t0 = Instant::now();
        p.process(&mut batch);
        let took = t0.elapsed();
        cpu_total = match (cpu_total, c0, thread_cpu_ns()) {
            (Some(t), Some(a), Some(b)) => Some(t + b.saturating_sub(a)),
            _ => None,
        };
        busy_total += took;
        per_batch.push((took, batch.events.len()));
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
        "{tags_n} tags x 4 alarms (+ 1 bad-quality each), {batches} batches of {batch_n} samples, \
         {transitions} transition events; engine opened in {:.0} ms",
        opened.as_secs_f64() * 1e3
    );
    let total = (batches * batch_n) as f64;
    println!(
        "throughput, one core: {:.0} samples/s wall ({} samples in {:.3} s of process(), journal fsyncs included)",
        total / busy_total.as_secs_f64(),
        batches * batch_n,
        busy_total.as_secs_f64()
    );
    if let Some(cpu) = cpu_total.filter(|c| *c > 0) {
        println!(
            "throughput per CPU-second of the evaluating thread: {:.0} samples/s ({:.3} s on CPU; \
             the WAL's sync thread not counted)",
            total / (cpu as f64 / 1e9),
            cpu as f64 / 1e9
        );
    }
    println!(
        "batches without transitions: p50 {:.1} µs/batch = {:.3} µs/sample, p99 {:.1} µs/batch",
        pct(&quiet, 0.5) * 1e6,
        pct(&quiet, 0.5) * 1e6 / batch_n as f64,
        pct(&quiet, 0.99) * 1e6
    );
    if busy.is_empty() {
        println!("no batch with transitions (they come every 50th batch, from the 26th)");
    } else {
        println!(
            "batches with transitions (journal fsync): p50 {:.2} ms, max {:.2} ms",
            pct(&busy, 0.5) * 1e3,
            pct(&busy, 1.0) * 1e3
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}
