//! Tennessee Eastman runs built from the Braatz training files (shared by `tests/tep.rs` and
//! `examples/tep.rs`).
//!
//! Construction (we have no test runs that start normal and turn faulty, so we build them):
//! `d00.dat` (500 normal samples) is cut into 5 contiguous blocks of 100 rows. A run for
//! fault `k` (1..=21) holds out block `f = (k − 1) mod 5`: the detector warms up on the other
//! 400 normal rows in time order, then sees the 100 held-out normal rows (false-alarm rate),
//! then the 480 rows of `dNN.dat` (all recorded after the fault was introduced: detection rate
//! and first-detection delay). The normal part of a run depends only on its fold, so the
//! false-alarm rate is measured once per fold, on all 500 normal rows.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use mw_analytics::Detector;

pub const FOLDS: usize = 5;
pub const BLOCK: usize = 100;
/// Faults conventionally treated as undetectable.
pub const UNDETECTABLE: [usize; 3] = [3, 9, 15];

pub fn tep_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets/tep");
    dir.join("d00.dat").is_file().then_some(dir)
}

fn numbers(text: &str) -> Vec<f64> {
    text.split_whitespace()
        .map(|t| t.parse::<f64>().unwrap_or(f64::NAN))
        .collect()
}

pub struct Tep {
    /// 500 × 52 normal rows (d00.dat transposed back).
    pub normal: Vec<Vec<f64>>,
    /// `faults[k − 1]`: 480 × 52 rows of fault k.
    pub faults: Vec<Vec<Vec<f64>>>,
}

pub fn load(dir: &Path) -> Tep {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).expect("read TEP file");
    let t = read("d00.dat");
    let lines: Vec<Vec<f64>> = t.lines().map(numbers).filter(|l| !l.is_empty()).collect();
    let (vars, n) = (lines.len(), lines[0].len());
    let normal = (0..n)
        .map(|i| (0..vars).map(|j| lines[j][i]).collect())
        .collect();
    let faults = (1..=21)
        .map(|k| {
            read(&format!("d{k:02}.dat"))
                .lines()
                .map(numbers)
                .filter(|l| !l.is_empty())
                .collect()
        })
        .collect();
    Tep { normal, faults }
}

/// Rows of one fold: (warm-up, held-out normal).
pub fn fold(tep: &Tep, f: usize) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
    let (a, b) = (f * BLOCK, (f + 1) * BLOCK);
    let warm = tep.normal[..a]
        .iter()
        .chain(&tep.normal[b..])
        .cloned()
        .collect();
    (warm, tep.normal[a..b].to_vec())
}

/// Flags of one run: (held-out normal rows, faulty rows).
pub fn run(
    make: &dyn Fn(usize) -> Box<dyn Detector>,
    warm: &[Vec<f64>],
    normal: &[Vec<f64>],
    faulty: &[Vec<f64>],
) -> (Vec<bool>, Vec<bool>) {
    let mut det = make(warm.len());
    let mut t = 0i64;
    let mut feed = |rows: &[Vec<f64>], det: &mut Box<dyn Detector>| -> Vec<bool> {
        rows.iter()
            .map(|r| {
                t += 180_000_000_000;
                det.update(t, r).anomalous
            })
            .collect()
    };
    feed(warm, &mut det);
    let n = feed(normal, &mut det);
    let f = feed(faulty, &mut det);
    (n, f)
}

#[derive(Debug, Clone, Copy, Default)]
pub struct FaultResult {
    pub fault: usize,
    pub flagged: usize,
    pub rows: usize,
    /// Index of the first flagged faulty row (0 = the first row after the fault's onset).
    pub delay: Option<usize>,
}

pub struct Totals {
    pub per_fault: Vec<FaultResult>,
    /// Flagged / total held-out normal rows over the 5 folds.
    pub false_alarms: usize,
    pub normal_rows: usize,
    /// False alarms per fold.
    pub per_fold: Vec<usize>,
}

impl Totals {
    /// (detection rate, mean delay, undetected count) over the given faults; an
    /// undetected fault counts with delay = its row count.
    pub fn summary(&self, faults: &[usize]) -> (f64, f64, usize) {
        let sel: Vec<&FaultResult> = self
            .per_fault
            .iter()
            .filter(|r| faults.contains(&r.fault))
            .collect();
        let flagged: usize = sel.iter().map(|r| r.flagged).sum();
        let rows: usize = sel.iter().map(|r| r.rows).sum();
        let delays: Vec<usize> = sel.iter().map(|r| r.delay.unwrap_or(r.rows)).collect();
        let missed = sel.iter().filter(|r| r.delay.is_none()).count();
        (
            flagged as f64 / rows.max(1) as f64,
            delays.iter().sum::<usize>() as f64 / delays.len().max(1) as f64,
            missed,
        )
    }

    /// Median first-detection delay over the given faults (undetected: row count).
    pub fn median_delay(&self, faults: &[usize]) -> f64 {
        let mut d: Vec<usize> = self
            .per_fault
            .iter()
            .filter(|r| faults.contains(&r.fault))
            .map(|r| r.delay.unwrap_or(r.rows))
            .collect();
        d.sort_unstable();
        match d.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => d[n / 2] as f64,
            n => (d[n / 2 - 1] + d[n / 2]) as f64 / 2.0,
        }
    }

    pub fn far(&self) -> f64 {
        self.false_alarms as f64 / self.normal_rows.max(1) as f64
    }
}

pub fn detectable() -> Vec<usize> {
    (1..=21).filter(|k| !UNDETECTABLE.contains(k)).collect()
}

/// Every fault run plus the false-alarm rate of every fold.
pub fn evaluate(tep: &Tep, make: &dyn Fn(usize) -> Box<dyn Detector>) -> Totals {
    let folds: Vec<_> = (0..FOLDS).map(|f| fold(tep, f)).collect();
    let mut per_fold = vec![0; FOLDS];
    let mut normal_rows = 0;
    for (f, (w, n)) in folds.iter().enumerate() {
        let (flags, _) = run(make, w, n, &[]);
        per_fold[f] = flags.iter().filter(|x| **x).count();
        normal_rows += flags.len();
    }
    let per_fault = (1..=21)
        .map(|k| {
            let (w, n) = &folds[(k - 1) % FOLDS];
            let (_, flags) = run(make, w, n, &tep.faults[k - 1]);
            FaultResult {
                fault: k,
                flagged: flags.iter().filter(|x| **x).count(),
                rows: flags.len(),
                delay: flags.iter().position(|x| *x),
            }
        })
        .collect();
    Totals {
        per_fault,
        false_alarms: per_fold.iter().sum(),
        normal_rows,
        per_fold,
    }
}
