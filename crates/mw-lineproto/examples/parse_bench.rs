//! Parse throughput on a TSBS-iot-like batch: trucks with tags name, fleet, driver, model and
//! fields latitude, longitude, elevation, velocity, heading, grade, fuel_consumption.
//!
//! `cargo run --release -p mw-lineproto --example parse_bench [TRUCKS] [POINTS_PER_TRUCK]`
//! (default 1000 × 100 = 100 000 lines). Deterministic data (own LCG); prints lines/s and MB/s
//! for `parse` alone and for `parse` + `to_samples`, best of 5 runs.

use std::time::Instant;

use mw_lineproto::{Precision, parse, to_samples};

fn main() {
    let mut args = std::env::args().skip(1);
    let trucks: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let per: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let body = generate(trucks, per);
    let lines = trucks * per;
    let mb = body.len() as f64 / 1e6;
    println!("batch: {lines} lines, {:.1} MB, {} fields per line", mb, 7);

    let mut best_parse = f64::MAX;
    let mut best_map = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        let pts = parse(&body, Precision::Nanoseconds, 0).expect("generated batch parses");
        best_parse = best_parse.min(t.elapsed().as_secs_f64());
        assert_eq!(pts.len(), lines);
        let t = Instant::now();
        let pts = parse(&body, Precision::Nanoseconds, 0).expect("generated batch parses");
        let samples = to_samples(&pts, 0).expect("generated batch maps");
        best_map = best_map.min(t.elapsed().as_secs_f64());
        assert_eq!(samples.len(), lines * 7);
    }
    for (what, s) in [("parse", best_parse), ("parse+to_samples", best_map)] {
        println!(
            "{what:>17}: {:>10.0} lines/s  {:>7.1} MB/s  {:>10.0} samples/s  ({:.1} ms)",
            lines as f64 / s,
            mb / s,
            (lines * 7) as f64 / s,
            s * 1e3
        );
    }
}

fn generate(trucks: usize, per: usize) -> String {
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rnd = move || {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    let fleets = ["East", "North", "South", "West"];
    let models = ["F-150", "G-2000", "H-2"];
    let mut out = String::new();
    let t0: i64 = 1_451_606_400_000_000_000;
    for i in 0..per {
        let ts = t0 + i as i64 * 10_000_000_000;
        for t in 0..trucks {
            use std::fmt::Write;
            let _ = writeln!(
                out,
                "readings,driver=Driver_{},fleet={},model={},name=truck_{t} latitude={:.5},longitude={:.5},elevation={:.1},velocity={:.1},heading={:.1},grade={:.1},fuel_consumption={:.2} {ts}",
                t % 50,
                fleets[t % 4],
                models[t % 3],
                rnd() * 180.0 - 90.0,
                rnd() * 360.0 - 180.0,
                rnd() * 500.0,
                rnd() * 100.0,
                rnd() * 360.0,
                rnd() * 100.0,
                rnd() * 50.0,
            );
        }
    }
    out
}
