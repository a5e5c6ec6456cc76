//! Tennessee Eastman detection figures for a detector (per fault: detection rate and
//! first-detection delay; false-alarm rate on held-out normal rows; totals over the 18
//! detectable faults and over the odd / even halves used to choose / check parameters).
//!
//! `cargo run --release -p mw-analytics --example tep [-- auto|pca]`
//!
//! The run construction is in `tests/tep_runs/mod.rs` (and docs/BENCHMARKS.md).

#[path = "../tests/tep_runs/mod.rs"]
mod tep_runs;

use mw_analytics::{DetectorKind, build};

fn main() {
    let kind: DetectorKind = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(DetectorKind::Auto);
    let Some(dir) = tep_runs::tep_dir() else {
        eprintln!("TEP data not found (expected ../shared/datasets/tep); nothing to do");
        return;
    };
    let tep = tep_runs::load(&dir);
    let tot = tep_runs::evaluate(&tep, &|w| build(kind, 52, Some(w)));
    println!("fault  detected  delay");
    for r in &tot.per_fault {
        let note = if tep_runs::UNDETECTABLE.contains(&r.fault) {
            "  (undetectable)"
        } else {
            ""
        };
        println!(
            "{:>5}  {:>7.1} %  {:>5}{note}",
            r.fault,
            100.0 * r.flagged as f64 / r.rows as f64,
            r.delay.map_or("never".to_owned(), |d| d.to_string())
        );
    }
    let all = tep_runs::detectable();
    let odd: Vec<usize> = all.iter().copied().filter(|k| k % 2 == 1).collect();
    let even: Vec<usize> = all.iter().copied().filter(|k| k % 2 == 0).collect();
    println!(
        "false alarms: {} of {} normal rows = {:.2} % (per fold {:?})",
        tot.false_alarms,
        tot.normal_rows,
        100.0 * tot.far(),
        tot.per_fold
    );
    for (name, set) in [
        ("detectable (18)", &all),
        ("odd (8)", &odd),
        ("even (10)", &even),
    ] {
        let (rate, delay, missed) = tot.summary(set);
        println!(
            "{kind} {name:<16} detected {:.1} %  mean delay {delay:.1} samples  median {:.1}  never detected {missed}",
            100.0 * rate,
            tot.median_delay(set)
        );
    }
}
