//! Tennessee Eastman (Braatz training files): the multivariate `auto` on runs that warm up
//! on normal operation, stay normal for 100 held-out rows, then turn faulty (construction in
//! `tep_runs/mod.rs`). Skips with a message when `shared/datasets/tep` is absent.
//!
//! Measured (docs/BENCHMARKS.md): over the 18 detectable faults 91.0 % of the faulty rows
//! flagged, mean first-detection delay 20.0 samples, no false alarm on the 500 held-out
//! normal rows (before the mean-of-Q head of issue 14: 86.2 %, 31.8, none). The goal
//! (≥ 88 %, ≤ 2 % false alarms, mean delay ≤ the textbook PCA T²'s 51.8) is inside the
//! bounds, which leave a little room for harmless floating-point changes.
//!
//! `cargo test -p mw-analytics --release --test tep -- --nocapture` prints the totals; the
//! per-fault table and the textbook PCA peer: `bash bench/tep.sh`.

mod tep_runs;

use mw_analytics::{DetectorKind, build};

const MIN_DETECTED: f64 = 0.905;
const MAX_FAR: f64 = 0.01;
const MAX_MEAN_DELAY: f64 = 21.0;

#[test]
fn tep_auto_meets_the_measured_totals() {
    let Some(dir) = tep_runs::tep_dir() else {
        eprintln!(
            "SKIPPED: TEP data set not found (expected shared/datasets/tep/d00.dat … d21.dat)"
        );
        return;
    };
    let tep = tep_runs::load(&dir);
    assert_eq!(tep.normal.len(), 500, "d00.dat holds 500 normal samples");
    assert!(
        tep.faults
            .iter()
            .all(|f| f.len() == 480 && f[0].len() == 52)
    );
    let tot = tep_runs::evaluate(&tep, &|w| build(DetectorKind::Auto, 52, Some(w)));
    let all = tep_runs::detectable();
    let (rate, delay, missed) = tot.summary(&all);
    println!(
        "TEP auto: detected {:.1} %, mean delay {delay:.1} samples (median {:.1}), never detected {missed}, false alarms {:.2} %",
        100.0 * rate,
        tot.median_delay(&all),
        100.0 * tot.far()
    );
    assert!(
        rate >= MIN_DETECTED,
        "detection rate {rate:.4} below {MIN_DETECTED}"
    );
    assert!(
        tot.far() <= MAX_FAR,
        "false-alarm rate {:.4} above {MAX_FAR}",
        tot.far()
    );
    assert!(
        delay <= MAX_MEAN_DELAY,
        "mean delay {delay:.1} above {MAX_MEAN_DELAY}"
    );
    assert_eq!(missed, 0, "every detectable fault is flagged at least once");
}
