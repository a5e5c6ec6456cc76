//! Ingest, size and query latency of the historian engine alone (no HTTP), on a TSBS-like day.
//!
//! `cargo run --release -p mw-historian --example query_bench -- [TAGS] [DIR]`
//! (default 1000 tags, a temporary directory). Writes one day of 10 s readings per tag (decimal
//! random walks, 2 digits) in batches of 10 000 points with `fsync = "always"`, compacts the day,
//! then times: a 1-day raw range of one tag, 1-hour and 1-day step averages over every tag (from
//! the rollups, or the index stats where a block fits a bucket), the same as `twa` (every block
//! decoded), and the latest of every tag. Prints one line per figure.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use mw_historian::engine::{Clock, DAY, Historian, Options};
use mw_historian::record::Point;
use mw_historian::{Agg, FsStorage};
use mw_model::{Quality, TagPath, Value};

const S: i64 = 1_000_000_000;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let tags: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let dir = args
        .next()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::env::temp_dir().join(format!("mw-query-bench-{}", std::process::id()))
        });
    let _ = std::fs::remove_dir_all(&dir);
    let day0 = 20_000 * DAY; // 2024-10-04, a UTC midnight
    let now = Arc::new(AtomicI64::new(day0));
    let mut o = Options::new(&dir);
    let n = now.clone();
    o.clock = Clock::new(move || n.load(Ordering::SeqCst));
    o.flush_points = 2_000_000;
    o.retention.raw = 3650 * DAY;
    let (h, _) = Historian::open(Arc::new(FsStorage), o).unwrap();
    let names: Vec<TagPath> = (0..tags)
        .map(|i| TagPath::new(&format!("truck/t{i}/velocity")).unwrap())
        .collect();
    let mut level: Vec<i64> = (0..tags as i64).map(|i| 5_000 + i % 1000).collect();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let steps = (DAY / (10 * S)) as usize;
    let total = steps * tags;
    let mut batch = Vec::with_capacity(10_000);
    let t = Instant::now();
    for k in 0..steps {
        let ts = day0 + k as i64 * 10 * S;
        for (i, tag) in names.iter().enumerate() {
            level[i] += (next() % 21) as i64 - 10;
            batch.push(Point {
                tag: tag.clone(),
                ts,
                value: Value::F64(level[i] as f64 / 100.0),
                quality: Quality::Good,
            });
            if batch.len() == 10_000 {
                h.write(&batch).await.unwrap();
                batch.clear();
            }
        }
    }
    h.write(&batch).await.unwrap();
    let secs = t.elapsed().as_secs_f64();
    println!(
        "ingest: {total} points in {secs:.1} s = {:.0} points/s (fsync always, batches of 10000, one writer)",
        total as f64 / secs
    );
    now.store(day0 + DAY + S, Ordering::SeqCst); // the day has ended: the flush compacts it
    let t = Instant::now();
    h.flush().await.unwrap();
    println!(
        "flush + compaction of the day: {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let u = h.usage();
    println!(
        "on disk: {} segment files, {} B segments + {} B rollups + {} B WAL = {:.3} B/point raw, {:.3} B/point with rollups; compression ratio {:.1}",
        u.segments,
        u.segment_bytes,
        u.rollup_bytes,
        u.wal_bytes,
        u.segment_bytes as f64 / total as f64,
        u.total_bytes() as f64 / total as f64,
        u.compression_ratio().unwrap_or(0.0)
    );
    let time = |what: &str, reps: usize, f: &mut dyn FnMut() -> usize| {
        let t = Instant::now();
        let mut n = 0;
        for _ in 0..reps {
            n = f();
        }
        println!(
            "{what}: {:.2} ms ({n} results)",
            t.elapsed().as_secs_f64() * 1000.0 / reps as f64
        );
    };
    time("(a) 1-day raw range of one tag", 20, &mut || {
        h.range_half_open(&names[0], day0, day0 + DAY).len()
    });
    for (label, step, agg) in [
        (
            "(b) 1-hour avg over every tag (from the hourly rollups)",
            3600 * S,
            Agg::Avg,
        ),
        (
            "(b') 1-hour twa over every tag (every block decoded)",
            3600 * S,
            Agg::Twa,
        ),
        (
            "1-day avg over every tag (from block index stats)",
            DAY,
            Agg::Avg,
        ),
        ("1-day twa over every tag", DAY, Agg::Twa),
    ] {
        time(label, 3, &mut || {
            names
                .iter()
                .map(|t| h.aggregate(t, day0, day0 + DAY, step, agg).len())
                .sum()
        });
    }
    time("(c) latest of every tag", 3, &mut || {
        names.iter().filter(|t| h.latest(t).is_some()).count()
    });
    h.close();
    let _ = std::fs::remove_dir_all(&dir);
}
