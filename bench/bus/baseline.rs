//! The same measurement as `crates/mw-bus/examples/bus_throughput.rs`, written against the bus
//! as it was before the component contracts (commit e04bb45: one overload policy for the whole
//! bus, samples only, no acknowledgements). `bench/bus.sh` copies it into a worktree of that
//! commit as an example of its mw-bus and runs both in one go. Not built by the workspace.
//!
//! Arguments: SINKS BATCH SECONDS [RATE] (no ACKS: that bus had none).

use std::time::{Duration, Instant};

use mw_bus::{BusBuilder, BusConfig, Overload};
use mw_model::{Sample, TagPath, Value};

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn arg(args: &[String], i: usize, default: u64) -> u64 {
    args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let sinks = arg(&args, 1, 1) as usize;
    let batch = arg(&args, 2, 100) as usize;
    let seconds = arg(&args, 3, 3);
    let rate = arg(&args, 4, 0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let mut b = BusBuilder::new(BusConfig {
            capacity: 1024,
            sink_capacity: 1024,
            overload: Overload::Block,
        });
        let mut tasks = Vec::new();
        for i in 0..sinks {
            let mut sub = b.subscribe(&format!("s{i}"));
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                while let Some(batch) = sub.recv().await {
                    n += batch.len() as u64;
                }
                std::hint::black_box(n);
            }));
        }
        let p = b.publisher();
        let fan_out = b.start();
        let tags: Vec<TagPath> = (0..batch)
            .map(|i| TagPath::new(&format!("bench/a/t{i}")).expect("tag"))
            .collect();
        let period = (rate > 0).then(|| Duration::from_secs_f64(batch as f64 / rate as f64));
        let cpu0 = cpu_seconds();
        let start = Instant::now();
        let end = start + Duration::from_secs(seconds);
        let mut sent = 0u64;
        let mut next = start;
        while Instant::now() < end {
            if let Some(period) = period {
                next += period;
                tokio::time::sleep_until(next.into()).await;
            }
            let ts = sent as i64;
            let samples: Vec<Sample> = tags
                .iter()
                .map(|t| Sample::good(t.clone(), Value::F64(ts as f64), ts))
                .collect();
            p.publish(samples).await.expect("bus");
            sent += batch as u64;
        }
        drop(p);
        let _ = fan_out.await;
        for t in tasks {
            let _ = t.await;
        }
        let wall = start.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu0;
        println!(
            "samples_per_s={:.0} cpu_s={cpu:.2} wall_s={wall:.2} cpu_per_msample={:.3}",
            sent as f64 / wall,
            cpu / (sent as f64 / 1e6)
        );
    });
}
