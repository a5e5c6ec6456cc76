//! Multivariate step faults on correlated variables (issue 14 items 4 and 5): a step that
//! moves the process clearly is flagged within a few rows, correlated clean data raises
//! (almost) no alarm, and the contributors at the alarm onset name the variable that moved.

mod common;

use common::Rng;
use mw_analytics::{Detector, DetectorKind, build};

const WARMUP: usize = 400;
const ONSET: usize = 700;
const LEN: usize = 1000;
const VARS: usize = 6;

/// Six sensors driven by two autocorrelated process factors plus sensor noise: variables
/// 0–2 follow factor A, 3–5 factor B (with different gains and signs), so every variable
/// is strongly correlated with two others.
fn plant(seed: u64, n: usize) -> Vec<Vec<f64>> {
    let mut r = Rng::new(seed);
    let (mut a, mut b) = (0.0, 0.0);
    (0..n)
        .map(|_| {
            a = 0.9 * a + 0.44 * r.normal();
            b = 0.7 * b + 0.71 * r.normal();
            vec![
                10.0 + 2.0 * a + 0.3 * r.normal(),
                50.0 - 1.5 * a + 0.3 * r.normal(),
                3.0 + 1.0 * a + 0.2 * r.normal(),
                80.0 + 3.0 * b + 0.5 * r.normal(),
                20.0 + 1.0 * b + 0.2 * r.normal(),
                7.0 - 2.0 * b + 0.4 * r.normal(),
            ]
        })
        .collect()
}

/// Standard deviation of each variable over the warm-up rows.
fn spread(rows: &[Vec<f64>]) -> Vec<f64> {
    (0..VARS)
        .map(|j| {
            let n = WARMUP as f64;
            let m = rows[..WARMUP].iter().map(|r| r[j]).sum::<f64>() / n;
            (rows[..WARMUP]
                .iter()
                .map(|r| (r[j] - m).powi(2))
                .sum::<f64>()
                / n)
                .sqrt()
        })
        .collect()
}

/// Runs the rows; returns (first alarm row at or after the onset, top contributors then).
fn first_alarm_and_contributors(
    det: &mut dyn Detector,
    rows: &[Vec<f64>],
) -> (Option<usize>, Vec<mw_analytics::Contribution>) {
    for (i, r) in rows.iter().enumerate() {
        let out = det.update(i as i64 * 1_000_000_000, r);
        if out.anomalous {
            assert!(i >= ONSET, "false alarm at row {i}, before the onset");
            return (Some(i), det.contributors(3));
        }
    }
    (None, Vec::new())
}

/// A step of 4 warm-up standard deviations on one variable (sensor bias: the others do not
/// follow), for every variable and two seeds: flagged within 1 row by `auto` and `pca`
/// (measured: on the step's first row in all 24 cases), and the variable that moved is the
/// top contributor at the alarm onset (measured share 0.64–0.67).
#[test]
fn a_clear_step_on_one_variable_is_flagged_within_1_row_and_named() {
    for kind in [DetectorKind::Auto, DetectorKind::Pca] {
        for seed in [31, 32] {
            for k in 0..VARS {
                let mut rows = plant(seed, LEN);
                let s = spread(&rows)[k];
                rows[ONSET..].iter_mut().for_each(|r| r[k] += 4.0 * s);
                let mut det = build(kind, VARS, Some(WARMUP));
                let (at, top) = first_alarm_and_contributors(det.as_mut(), &rows);
                let at = at.unwrap_or_else(|| panic!("{kind} seed {seed}: step on {k} missed"));
                assert!(
                    at - ONSET <= 1,
                    "{kind} seed {seed}: step on {k} flagged after {} rows",
                    at - ONSET
                );
                assert_eq!(top[0].var, k, "{kind} seed {seed}: {top:?}");
                assert!(top[0].share > 0.4, "{kind} seed {seed}: {top:?}");
                let sum: f64 = top.iter().map(|c| c.share).sum();
                assert!(
                    top.iter().all(|c| (0.0..=1.0).contains(&c.share)) && sum <= 1.0 + 1e-9,
                    "{top:?}"
                );
            }
        }
    }
}

/// A smaller step (2 σ) on a variable of the correlated group is still flagged within 12
/// rows by `auto` (its 3- and 8-row heads) and attributed to that variable.
#[test]
fn a_moderate_step_is_flagged_within_12_rows_and_named() {
    for seed in [41, 42, 43] {
        for k in [0, 4] {
            let mut rows = plant(seed, LEN);
            let s = spread(&rows)[k];
            rows[ONSET..].iter_mut().for_each(|r| r[k] += 2.0 * s);
            let mut det = build(DetectorKind::Auto, VARS, Some(WARMUP));
            let (at, top) = first_alarm_and_contributors(det.as_mut(), &rows);
            let at = at.unwrap_or_else(|| panic!("seed {seed}: 2σ step on {k} missed"));
            assert!(
                at - ONSET <= 12,
                "seed {seed}: flagged after {} rows",
                at - ONSET
            );
            assert_eq!(top[0].var, k, "seed {seed}: {top:?}");
        }
    }
}

/// A process move (factor A steps by 8 of its standard deviations, all of 0–2 follow their
/// gains) is not a sensor fault: it is flagged, and the contributors are the variables of
/// factor A.
#[test]
fn a_process_step_is_attributed_to_the_group_that_moved() {
    let mut rows = plant(51, LEN);
    for r in &mut rows[ONSET..] {
        r[0] += 2.0 * 8.0;
        r[1] -= 1.5 * 8.0;
        r[2] += 8.0;
    }
    let mut det = build(DetectorKind::Auto, VARS, Some(WARMUP));
    let (at, top) = first_alarm_and_contributors(det.as_mut(), &rows);
    let at = at.expect("process step flagged");
    assert!(at - ONSET <= 3, "flagged after {} rows", at - ONSET);
    assert!(top.iter().all(|c| c.var <= 2), "{top:?}");
}

/// Correlated clean data: over 20 seeds × 600 scored rows (12,000 rows) `auto` and `pca`
/// raise at most 2 alarm onsets each (measured: 1 and 0).
#[test]
fn correlated_clean_data_raises_at_most_2_onsets_in_12000_rows() {
    for kind in [DetectorKind::Auto, DetectorKind::Pca] {
        let mut onsets = 0;
        for seed in 100..120 {
            let mut det = build(kind, VARS, Some(WARMUP));
            let mut prev = false;
            for (i, r) in plant(seed, LEN).iter().enumerate() {
                let a = det.update(i as i64, r).anomalous;
                onsets += usize::from(a && !prev);
                prev = a;
            }
        }
        assert!(onsets <= 2, "{kind}: {onsets} alarm onsets on clean data");
    }
}

/// A sensor that turns noisy (its own noise ×√10 ≈ 3.2 from the onset, no mean shift: a
/// loose connection, a sticking valve), on each variable, two seeds: row means average it
/// away, the mean-of-Q head of `auto` sees it. Flagged within 64 rows (two of that head's
/// windows) in at least 9 of the 12 cases (measured: 10, after 21–60 rows; variable 0 with
/// both seeds and variable 3 with seed 4 stay below the threshold), and never before the
/// onset (without that head: 4 of 12). Contributors are not asserted: the head explains
/// with the latest row's Q, one noisy row, which named the variable first in 5 of the 10.
#[test]
fn a_sensor_turning_noisy_is_flagged_within_64_rows_in_most_cases() {
    const NOISE: [f64; VARS] = [0.3, 0.3, 0.2, 0.5, 0.2, 0.4];
    let mut caught = 0;
    for seed in [3u64, 4] {
        for (k, noise) in NOISE.iter().enumerate() {
            let mut rows = plant(seed, LEN);
            let mut r = Rng::new(seed + 1000);
            for row in rows.iter_mut().skip(ONSET) {
                row[k] += 3.0 * noise * r.normal();
            }
            let mut det = build(DetectorKind::Auto, VARS, Some(WARMUP));
            let (at, _) = first_alarm_and_contributors(det.as_mut(), &rows);
            caught += usize::from(at.is_some_and(|at| at - ONSET <= 64));
        }
    }
    assert!(
        caught >= 9,
        "{caught} of 12 noisy sensors flagged within 64 rows"
    );
}

/// Before the first scored row there is nothing to explain.
#[test]
fn no_contributors_while_warming_up() {
    let mut det = build(DetectorKind::Auto, VARS, Some(WARMUP));
    for (i, r) in plant(7, 10).iter().enumerate() {
        det.update(i as i64, r);
    }
    assert!(det.contributors(3).is_empty());
}
