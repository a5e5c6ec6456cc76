//! Disk buffer benchmark on the real file system (a temporary directory):
//! append throughput with `sync = always` (one record per append, concurrent appenders sharing
//! fsyncs, batches) and `interval`, bytes on disk per record for a ~40-byte payload, and the
//! read + ack drain rate of 1,000,000 buffered records.
//!
//!   cargo run --release -p mw-buffer --example buffer_bench            # full
//!   cargo run --release -p mw-buffer --example buffer_bench -- --smoke # small counts (CI)
//!
//! `MW_BENCH_DIR` chooses the directory (default: the system temp dir); it is removed after.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mw_buffer::{Buffer, FullPolicy, Options, Sync};
use mw_storage::storage::FsStorage;

/// A typical forwarded sample: tag id, value, quality, timestamps — about 40 bytes encoded.
fn sample(i: u64) -> [u8; 40] {
    let mut p = [0u8; 40];
    p[0..8].copy_from_slice(&(i % 10_000).to_le_bytes());
    p[8..16].copy_from_slice(&(i as f64 * 0.25).to_le_bytes());
    p[16] = 0xc0;
    p[17..25].copy_from_slice(&(1_700_000_000_000_000_000i64 + i as i64).to_le_bytes());
    p[25..33].copy_from_slice(&(1_700_000_000_000_000_100i64 + i as i64).to_le_bytes());
    p
}

fn opts(dir: &std::path::Path, sync: Sync) -> Options {
    Options {
        max_bytes: 4 << 30,
        segment_bytes: 64 << 20,
        full_policy: FullPolicy::DropNewest,
        sync,
        ..Options::new(dir)
    }
}

fn fresh(base: &std::path::Path, name: &str, sync: Sync) -> Buffer {
    let dir = base.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    Buffer::open(Arc::new(FsStorage), opts(&dir, sync))
        .expect("open")
        .0
}

fn rate(n: u64, d: Duration) -> String {
    let r = n as f64 / d.as_secs_f64();
    if r >= 1e6 {
        format!("{:.2} M/s", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1} k/s", r / 1e3)
    } else {
        format!("{r:.0} /s")
    }
}

fn main() {
    let smoke = std::env::args().any(|a| a == "--smoke");
    let base = std::env::var_os("MW_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("mw-buffer-bench-{}", std::process::id()));
    std::fs::create_dir_all(&base).expect("bench dir");
    let (n_always, n_batch, n_interval, n_drain) = if smoke {
        (200, 10_000, 20_000, 20_000)
    } else {
        (2_000, 200_000, 1_000_000, 1_000_000)
    };
    println!("buffer_bench: dir {}, payload 40 bytes", base.display());

    // sync = always, one record per append, one thread: one fsync each
    let b = fresh(&base, "always1", Sync::Always);
    let t = Instant::now();
    for i in 0..n_always {
        b.append(i as i64, &sample(i)).unwrap();
    }
    let d = t.elapsed();
    println!(
        "append  sync=always   1 thread, 1 record/append   : {n_always:>8} records in {:>7.3} s = {}",
        d.as_secs_f64(),
        rate(n_always, d)
    );
    b.close().unwrap();

    // sync = always, 4 threads: concurrent appends share fsyncs (group commit)
    let b = fresh(&base, "always4", Sync::Always);
    let t = Instant::now();
    let per = n_always;
    std::thread::scope(|s| {
        for k in 0..4u64 {
            let b = b.clone();
            s.spawn(move || {
                for i in 0..per {
                    b.append(i as i64, &sample(k * per + i)).unwrap();
                }
            });
        }
    });
    let d = t.elapsed();
    println!(
        "append  sync=always   4 threads, 1 record/append  : {:>8} records in {:>7.3} s = {} ({:.2} records per fsync)",
        4 * per,
        d.as_secs_f64(),
        rate(4 * per, d),
        (4 * per) as f64 / b.stats().syncs as f64
    );
    b.close().unwrap();

    // sync = always, batches of 100 (what a sink with a batch of samples does)
    let b = fresh(&base, "always_batch", Sync::Always);
    let t = Instant::now();
    let mut i = 0;
    while i < n_batch {
        let batch: Vec<(i64, [u8; 40])> = (i..i + 100).map(|j| (j as i64, sample(j))).collect();
        b.append_batch(&batch).unwrap();
        i += 100;
    }
    let d = t.elapsed();
    println!(
        "append  sync=always   1 thread, batches of 100    : {n_batch:>8} records in {:>7.3} s = {}",
        d.as_secs_f64(),
        rate(n_batch, d)
    );
    b.close().unwrap();

    // sync = interval (1 s), one record per append
    let b = fresh(&base, "interval", Sync::Interval(Duration::from_secs(1)));
    let t = Instant::now();
    for i in 0..n_interval {
        b.append(i as i64, &sample(i)).unwrap();
    }
    let d = t.elapsed();
    let s = b.stats();
    println!(
        "append  sync=interval 1 thread, 1 record/append   : {n_interval:>8} records in {:>7.3} s = {}",
        d.as_secs_f64(),
        rate(n_interval, d)
    );
    println!(
        "bytes on disk per record (40-byte payload)        : {:.1} ({} bytes for {} records)",
        s.used_bytes as f64 / s.appended_records as f64,
        s.used_bytes,
        s.appended_records
    );
    b.close().unwrap();

    // drain: 1,000,000 records buffered, then read in batches of 1000 and acknowledged
    for (name, per_record) in [("ack_through per batch", false), ("ack per record", true)] {
        let b = fresh(&base, "drain", Sync::Interval(Duration::from_secs(1)));
        let mut i = 0;
        while i < n_drain {
            let batch: Vec<(i64, [u8; 40])> =
                (i..i + 1000).map(|j| (j as i64, sample(j))).collect();
            b.append_batch(&batch).unwrap();
            i += 1000;
        }
        b.flush().unwrap();
        // from a cold start, as after an outage with a restart
        b.close().unwrap();
        drop(b);
        let (b, report) =
            Buffer::open(Arc::new(FsStorage), opts(&base.join("drain"), Sync::Always)).unwrap();
        assert_eq!(report.pending_records, n_drain);
        let t = Instant::now();
        let mut next = report.first_unacked.unwrap();
        let mut got = 0u64;
        loop {
            let v = b.read_from(next, 1000).unwrap();
            let Some(last) = v.last() else { break };
            next = last.seq + 1;
            got += v.len() as u64;
            if per_record {
                for r in &v {
                    b.ack(r.seq).unwrap();
                }
            } else {
                b.ack_through(last.seq).unwrap();
            }
        }
        b.flush().unwrap();
        let d = t.elapsed();
        assert_eq!(got, n_drain);
        let s = b.stats();
        assert_eq!(s.pending_records, 0);
        println!(
            "drain   read 1000/batch + {name:<21}: {got:>8} records in {:>7.3} s = {} (left on disk: {} bytes)",
            d.as_secs_f64(),
            rate(got, d),
            s.used_bytes
        );
        b.close().unwrap();
    }
    std::fs::remove_dir_all(&base).expect("cleanup");
}
