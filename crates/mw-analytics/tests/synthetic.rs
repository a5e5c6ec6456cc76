//! Synthetic series with known anomalies: each must be detected within a stated delay,
//! and the same detectors must stay silent on clean noise of the same length.

mod common;

use common::{Rng, alarms_in, first_alarm, noise, run_rows, run_uni};
use mw_analytics::{DetectorKind, build};

const WARMUP: usize = 400;
const LEN: usize = 1200;
const ONSET: usize = 700;

fn uni(kind: DetectorKind) -> Box<dyn mw_analytics::Detector> {
    build(kind, 1, Some(WARMUP))
}

/// Asserts an alarm within `max_delay` rows of the onset and none before it.
fn assert_detected(name: &str, out: &[(f64, bool)], max_delay: usize) {
    assert_eq!(
        alarms_in(out, 0..ONSET),
        0,
        "{name}: false alarm before the onset"
    );
    let at = first_alarm(out, ONSET).unwrap_or_else(|| panic!("{name}: never detected"));
    assert!(
        at - ONSET <= max_delay,
        "{name}: detected after {} rows (allowed {max_delay})",
        at - ONSET
    );
}

#[test]
fn auto_detects_a_spike_at_once() {
    let mut xs = noise(1, LEN, 10.0, 1.0);
    xs[ONSET] += 8.0;
    let out = run_uni(uni(DetectorKind::Auto).as_mut(), &xs);
    assert_detected("spike", &out, 0);
    // A single spike does not hold the alarm for long.
    assert!(alarms_in(&out, ONSET..ONSET + 50) <= 10);
}

#[test]
fn auto_detects_a_level_shift_within_8_rows() {
    let mut xs = noise(2, LEN, 10.0, 1.0);
    xs[ONSET..].iter_mut().for_each(|x| *x += 3.0);
    assert_detected(
        "level shift",
        &run_uni(uni(DetectorKind::Auto).as_mut(), &xs),
        8,
    );
}

#[test]
fn auto_detects_a_drift_within_60_rows() {
    // 0.05 σ per row: one σ after 20 rows, three after 60.
    let mut xs = noise(3, LEN, 10.0, 1.0);
    for (i, x) in xs[ONSET..].iter_mut().enumerate() {
        *x += 0.05 * i as f64;
    }
    assert_detected("drift", &run_uni(uni(DetectorKind::Auto).as_mut(), &xs), 60);
}

#[test]
fn auto_detects_a_variance_increase_within_30_rows() {
    let mut xs = noise(4, LEN, 10.0, 1.0);
    let mut r = Rng::new(44);
    for x in &mut xs[ONSET..] {
        *x = 10.0 + 4.0 * r.normal();
    }
    assert_detected(
        "variance change",
        &run_uni(uni(DetectorKind::Auto).as_mut(), &xs),
        30,
    );
}

#[test]
fn auto_detects_a_stuck_sensor_within_12_rows() {
    let mut xs = noise(5, LEN, 10.0, 1.0);
    let stuck = xs[ONSET];
    xs[ONSET..].iter_mut().for_each(|x| *x = stuck);
    assert_detected("stuck", &run_uni(uni(DetectorKind::Auto).as_mut(), &xs), 12);
}

#[test]
fn auto_detects_a_spike_on_a_seasonal_series() {
    // Period 50 with amplitude 5σ: a 4σ spike is within the seasonal range, so only a
    // seasonal baseline catches it.
    let season = |i: usize| 5.0 * (i as f64 * std::f64::consts::TAU / 50.0).sin();
    let base = noise(6, LEN, 0.0, 1.0);
    let mut xs: Vec<f64> = base
        .iter()
        .enumerate()
        .map(|(i, x)| x + season(i))
        .collect();
    let clean = xs.clone();
    // At a trough, +12 (12σ) leaves the value inside the overall range of the series.
    let trough = (ONSET / 50) * 50 + 37;
    xs[trough] += 12.0;
    let out = run_uni(uni(DetectorKind::Auto).as_mut(), &xs);
    assert!(
        out[trough].1,
        "seasonal spike not flagged: {:?}",
        &out[trough - 2..trough + 3]
    );
    let quiet = run_uni(uni(DetectorKind::Auto).as_mut(), &clean);
    assert_eq!(
        alarms_in(&quiet, 0..LEN),
        0,
        "false alarms on the clean seasonal series"
    );
}

#[test]
fn named_detectors_find_a_6_sigma_level_shift_within_10_rows() {
    for (kind, delay) in [
        (DetectorKind::Mad, 5),
        (DetectorKind::Ewma, 10),
        (DetectorKind::Cusum, 10),
        (DetectorKind::Seasonal, 5),
    ] {
        let mut xs = noise(7, LEN, 10.0, 1.0);
        xs[ONSET..].iter_mut().for_each(|x| *x += 6.0);
        assert_detected(kind.as_str(), &run_uni(uni(kind).as_mut(), &xs), delay);
    }
}

#[test]
fn no_alarms_on_clean_noise() {
    for kind in DetectorKind::ALL {
        for seed in 100..110 {
            let xs = noise(seed, LEN, 10.0, 1.0);
            let out = run_uni(uni(kind).as_mut(), &xs);
            assert_eq!(
                alarms_in(&out, 0..LEN),
                0,
                "{kind} raised an alarm on clean noise (seed {seed})"
            );
            assert!(out.iter().all(|o| (0.0..=1.0).contains(&o.0)));
        }
    }
}

/// Four correlated sensors: a shared process factor plus independent noise.
fn asset(seed: u64, n: usize) -> Vec<Vec<f64>> {
    let mut r = Rng::new(seed);
    let mut factor = 0.0;
    (0..n)
        .map(|_| {
            factor = 0.8 * factor + 0.6 * r.normal();
            vec![
                50.0 + 2.0 * factor + 0.5 * r.normal(),
                20.0 - 1.0 * factor + 0.3 * r.normal(),
                5.0 + 0.5 * factor + 0.2 * r.normal(),
                100.0 + 3.0 * r.normal(),
            ]
        })
        .collect()
}

#[test]
fn multivariate_auto_detects_a_correlation_break_within_40_rows() {
    // Sensor 1 stops following the process factor: each value stays in its normal
    // range, only the relationship breaks.
    let mut rows = asset(8, LEN);
    let mut r = Rng::new(88);
    for row in &mut rows[ONSET..] {
        row[1] = 20.0 + 1.2 * r.normal();
    }
    let out = run_rows(build(DetectorKind::Auto, 4, Some(WARMUP)).as_mut(), &rows);
    assert_detected("correlation break", &out, 40);
}

#[test]
fn multivariate_auto_detects_a_3_sigma_shift_within_12_rows_and_a_stuck_sensor_within_12() {
    let mut rows = asset(9, LEN);
    rows[ONSET..].iter_mut().for_each(|r| r[3] += 9.0); // 3σ
    assert_detected(
        "shift",
        &run_rows(build(DetectorKind::Auto, 4, Some(WARMUP)).as_mut(), &rows),
        12,
    );

    let mut rows = asset(10, LEN);
    let v = rows[ONSET][2];
    rows[ONSET..].iter_mut().for_each(|r| r[2] = v);
    assert_detected(
        "stuck",
        &run_rows(build(DetectorKind::Auto, 4, Some(WARMUP)).as_mut(), &rows),
        12,
    );
}

#[test]
fn multivariate_detectors_stay_quiet_on_a_clean_asset() {
    for kind in [DetectorKind::Auto, DetectorKind::Pca] {
        for seed in 200..210 {
            let out = run_rows(build(kind, 4, Some(WARMUP)).as_mut(), &asset(seed, LEN));
            assert_eq!(
                alarms_in(&out, 0..LEN),
                0,
                "{kind} raised an alarm on a clean asset (seed {seed})"
            );
        }
    }
}

#[test]
fn detectors_are_deterministic() {
    let xs = noise(11, 600, 3.0, 1.0);
    let a = run_uni(uni(DetectorKind::Auto).as_mut(), &xs);
    let b = run_uni(uni(DetectorKind::Auto).as_mut(), &xs);
    assert_eq!(a, b);
}

#[test]
fn warmup_never_alarms_and_nan_repeats_the_last_output() {
    let mut xs = noise(12, 600, 0.0, 1.0);
    xs[10] = 1e6; // an absurd value during warm-up
    let mut det = uni(DetectorKind::Auto);
    for (i, &x) in xs.iter().enumerate() {
        let o = det.update(i as i64, &[x]);
        if i < WARMUP {
            assert!(o.warming_up && !o.anomalous && o.score == 0.0);
        }
    }
    let before = det.update(0, &[100.0]);
    let again = det.update(0, &[f64::NAN]);
    assert_eq!(before, again);
}

/// Rows of `asset` with a large fault on sensors 0 and 3 from `ONSET` for 200 rows, after
/// which the process returns with `offset` (in σ of sensor 0) left on sensor 0.
fn fault_then_offset(seed: u64, offset_sd: f64) -> Vec<Vec<f64>> {
    let mut rows = asset(seed, LEN);
    for (i, row) in rows.iter_mut().enumerate().skip(ONSET) {
        if i < ONSET + 200 {
            row[0] += 60.0; // ≈ 30 σ
            row[3] += 60.0; // 20 σ
        } else {
            row[0] += offset_sd * 2.0;
        }
    }
    rows
}

#[test]
fn multivariate_auto_clears_once_a_large_fault_is_over() {
    // A 3 σ residual offset after a 20–30 σ fault: the process settled at a slightly
    // different operating point; the alarm must not stand for ever.
    for seed in [21, 22, 23] {
        let rows = fault_then_offset(seed, 3.0);
        let out = run_rows(build(DetectorKind::Auto, 4, Some(WARMUP)).as_mut(), &rows);
        assert_detected("large fault", &out, 2);
        assert!(
            alarms_in(&out, ONSET..ONSET + 200) >= 195,
            "seed {seed}: the alarm did not hold through the fault"
        );
        assert_eq!(
            alarms_in(&out, ONSET + 350..LEN),
            0,
            "seed {seed}: the alarm still stands 150 rows after the fault ended"
        );
    }
}

#[test]
fn multivariate_auto_keeps_alarming_when_a_fault_only_partly_recovers() {
    // A 30 σ fault falling back to 12 σ is not over: the remaining distance is far more
    // than the re-baselining allows, so the alarm must stand to the end.
    let rows = fault_then_offset(24, 12.0);
    let out = run_rows(build(DetectorKind::Auto, 4, Some(WARMUP)).as_mut(), &rows);
    assert_detected("large fault", &out, 2);
    assert!(alarms_in(&out, ONSET + 200..LEN) >= 290);
}

#[test]
fn multivariate_auto_catches_a_second_fault_after_re_baselining() {
    let mut rows = fault_then_offset(25, 3.0);
    let second = ONSET + 400;
    rows[second..].iter_mut().for_each(|r| r[3] += 15.0); // 5 σ
    let out = run_rows(build(DetectorKind::Auto, 4, Some(WARMUP)).as_mut(), &rows);
    assert_eq!(alarms_in(&out, ONSET + 350..second), 0);
    let at = first_alarm(&out, second).expect("second fault detected");
    assert!(
        at - second <= 12,
        "second fault detected after {} rows",
        at - second
    );
}

#[test]
fn multivariate_auto_does_not_mirror_a_fault_on_a_wandering_sensor() {
    // Sensor 2 wanders (random walk), so `auto` follows it with a moving mean; a large
    // fault on it must not drag that mean along and then show up as a mirror-image
    // excursion when the fault ends.
    let mut rows = asset(26, LEN);
    let mut r = Rng::new(260);
    let mut walk = 0.0;
    for row in &mut rows {
        walk += 0.05 * r.normal();
        row[2] += walk;
    }
    for row in &mut rows[ONSET..ONSET + 100] {
        row[2] += 20.0;
    }
    let out = run_rows(build(DetectorKind::Auto, 4, Some(WARMUP)).as_mut(), &rows);
    assert_detected("fault on a wandering sensor", &out, 2);
    assert_eq!(
        alarms_in(&out, ONSET + 250..LEN),
        0,
        "mirror excursion after the fault"
    );
}
