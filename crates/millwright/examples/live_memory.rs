//! Measures live analytics memory per tag: builds N detectors of a kind (default `auto`, univariate,
//! default warm-up), feeds each 2 × warm-up samples of noise so every window is full, and reports
//! the resident-memory growth per detector (from /proc/self/status). Used by bench/analytics.sh.
//!
//!     cargo run --release -p millwright --example live_memory -- [N] [KIND] [VARS] [ROWS]
//!
//! ROWS (default 2 × warm-up + 200) lets a run reach later states, e.g. the univariate `auto`'s
//! second period search at 2016 rows and the seasonal baseline it may switch to.

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(str::to_owned)
        })
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let kind: mw_analytics::DetectorKind = args
        .get(2)
        .map(|s| s.as_str())
        .unwrap_or("auto")
        .parse()
        .unwrap_or_default();
    let vars: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1);
    let before = rss_kb();
    let mut dets: Vec<_> = (0..n)
        .map(|_| mw_analytics::build(kind, vars, None))
        .collect();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let rows: usize = args
        .get(4)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2 * mw_analytics::DEFAULT_WARMUP + 200);
    let mut row = vec![0.0; vars];
    for t in 0..rows {
        for d in dets.iter_mut() {
            for v in row.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *v = (x % 10_000) as f64 / 10_000.0 + (t as f64 / 100.0).sin();
            }
            let _ = d.update(t as i64 * 1_000_000_000, &row);
        }
    }
    let after = rss_kb();
    let per = (after.saturating_sub(before)) as f64 * 1024.0 / n as f64;
    println!(
        "{n} x {kind} detector(s) over {vars} variable(s), {rows} samples each: RSS +{} kB = {:.1} KiB per detector ({:.1} KiB per input tag)",
        after.saturating_sub(before),
        per / 1024.0,
        per / 1024.0 / vars as f64
    );
}
