//! Bus throughput: one publisher, N sinks, with or without end-to-end acknowledgements.
//! Used by `bench/bus.sh`, which runs the previous bus (`bench/bus/baseline.rs`) side by side.
//!
//! ```text
//! cargo run --release -p mw-bus --example bus_throughput -- SINKS ACKS BATCH SECONDS [RATE]
//! ```
//! * `ACKS` = 1: every batch is published with `send_with_ack` (up to 256 in flight) and every
//!   sink is durable (commits each delivery at once), the most expensive case.
//! * `RATE` = samples/s to pace at (0 or absent: as fast as possible).
//!
//! Prints one line: `samples_per_s=… cpu_s=… wall_s=… cpu_per_msample=…`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use mw_bus::{
    Batch, BoxFuture, BusBuilder, BusConfig, Sink, SinkInput, SinkOptions, SourceRegistry,
};
use mw_model::{Sample, TagPath, Value};

struct Consume {
    name: String,
    durable: bool,
}

impl Sink for Consume {
    fn options(&self) -> SinkOptions {
        let o = SinkOptions::new(self.name.clone(), 1024);
        if self.durable { o.durable() } else { o }
    }

    fn run(self: Box<Self>, mut input: SinkInput) -> BoxFuture<()> {
        Box::pin(async move {
            let mut n = 0u64;
            while let Some(d) = input.recv().await {
                n += d.batch.samples.len() as u64;
                d.commit();
            }
            std::hint::black_box(n);
        })
    }
}

/// User + system CPU seconds of this process (Linux `/proc/self/stat`, clock ticks of 10 ms).
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
    let acks = arg(&args, 2, 0) == 1;
    let batch = arg(&args, 3, 100) as usize;
    let seconds = arg(&args, 4, 3);
    let rate = arg(&args, 5, 0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let mut b = BusBuilder::new(BusConfig {
            capacity: 1024,
            max_pending_acks: 4096,
        });
        for i in 0..sinks {
            b.sink(Box::new(Consume {
                name: format!("s{i}"),
                durable: acks,
            }));
        }
        let p = b.publisher();
        let running = b.start(&SourceRegistry::new());
        let tags: Vec<TagPath> = (0..batch)
            .map(|i| TagPath::new(&format!("bench/a/t{i}")).expect("tag"))
            .collect();
        let mut in_flight = VecDeque::new();
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
            if acks {
                in_flight.push_back(
                    p.send_with_ack(Batch::from_samples(samples))
                        .await
                        .expect("bus"),
                );
                if in_flight.len() >= 256
                    && let Some(rx) = in_flight.pop_front()
                {
                    assert!(rx.outcome().await.is_committed());
                }
            } else {
                p.publish(samples).await.expect("bus");
            }
            sent += batch as u64;
        }
        for rx in in_flight {
            assert!(rx.outcome().await.is_committed());
        }
        drop(p);
        running.stop(Duration::from_secs(30)).await;
        let wall = start.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu0;
        println!(
            "samples_per_s={:.0} cpu_s={cpu:.2} wall_s={wall:.2} cpu_per_msample={:.3}",
            sent as f64 / wall,
            cpu / (sent as f64 / 1e6)
        );
    });
}
