//! The univariate `auto` detector on long synthetic series (issue 14, "no standing alarms"):
//! every behaviour with a stated bound. Rows are regular; the default warm-up (400) is used.

mod common;

use common::{Rng, noise, run_uni};
use mw_analytics::{DetectorKind, build};

fn auto() -> Box<dyn mw_analytics::Detector> {
    build(DetectorKind::Auto, 1, None)
}

/// Rows at which an alarm starts.
fn onsets(out: &[(f64, bool)]) -> Vec<usize> {
    (0..out.len())
        .filter(|&i| out[i].1 && (i == 0 || !out[i - 1].1))
        .collect()
}

/// First row at or after `from` with the alarm off.
fn first_quiet(out: &[(f64, bool)], from: usize) -> usize {
    (from..out.len()).find(|&i| !out[i].1).unwrap_or(out.len())
}

const ONSET: usize = 3000;

#[test]
fn a_spike_is_flagged_on_its_row_and_its_event_ends_within_25_rows() {
    for seed in 1..6 {
        let mut xs = noise(seed, 6000, 10.0, 1.0);
        xs[ONSET] += 8.0;
        let out = run_uni(auto().as_mut(), &xs);
        assert!(out[ONSET].1, "seed {seed}: spike not flagged on its row");
        assert!(
            first_quiet(&out, ONSET) <= ONSET + 25,
            "seed {seed}: spike event lasted {} rows",
            first_quiet(&out, ONSET) - ONSET
        );
        let late = onsets(&out)
            .into_iter()
            .filter(|&i| i > ONSET)
            .collect::<Vec<_>>();
        assert!(
            late.is_empty(),
            "seed {seed}: onsets after the spike {late:?}"
        );
    }
}

/// A lasting level shift is an event, not a state: flagged within 4 rows, over within 100
/// rows (the 64-row rolling median takes the new level after 32 rows; the drift head's
/// EWMA then decays and the event needs 10 quiet rows), and no new onset in the 3000 rows
/// after it.
#[test]
fn a_persistent_level_shift_is_flagged_at_onset_and_becomes_the_new_normal() {
    for (seed, shift) in [(11, 5.0), (12, -5.0), (13, 10.0), (14, 3.0)] {
        let mut xs = noise(seed, 12_000, 10.0, 1.0);
        xs[ONSET..].iter_mut().for_each(|x| *x += shift);
        let out = run_uni(auto().as_mut(), &xs);
        let on = onsets(&out);
        let first = on
            .iter()
            .copied()
            .find(|&i| i >= ONSET)
            .unwrap_or_else(|| panic!("shift {shift}: never flagged"));
        assert!(
            first <= ONSET + 4,
            "shift {shift}: flagged {} rows late",
            first - ONSET
        );
        let end = first_quiet(&out, first);
        assert!(
            end <= ONSET + 100,
            "shift {shift}: alarm lasted {} rows",
            end - ONSET
        );
        let again: Vec<_> = on
            .iter()
            .filter(|&&i| i > first && i < ONSET + 3000)
            .collect();
        assert!(
            again.is_empty(),
            "shift {shift}: onsets after the first {again:?}"
        );
    }
}

/// The same on a series with a cycle: the seasonal memory is shifted when the event reaches
/// its longest duration (144 rows), so the alarm cannot stand for the cycles it would take
/// the per-phase medians to forget the old level.
#[test]
fn a_level_shift_on_a_seasonal_series_ends_within_the_longest_event() {
    let period = 48.0;
    let mut r = Rng::new(21);
    let mut xs: Vec<f64> = (0..12_000)
        .map(|i| 10.0 + 5.0 * (i as f64 * std::f64::consts::TAU / period).sin() + r.normal())
        .collect();
    xs[ONSET..].iter_mut().for_each(|x| *x += 6.0);
    let out = run_uni(auto().as_mut(), &xs);
    let on = onsets(&out);
    let first = on.iter().copied().find(|&i| i >= ONSET).expect("flagged");
    assert!(first <= ONSET + 4, "flagged {} rows late", first - ONSET);
    assert!(first_quiet(&out, first) <= ONSET + 144, "alarm stood");
    let after: Vec<_> = on.iter().filter(|&&i| i > ONSET + 144).collect();
    assert!(
        after.len() <= 1,
        "alarms after the shift was absorbed: {after:?}"
    );
    let flagged = out[ONSET..].iter().filter(|o| o.1).count();
    assert!(flagged <= 300, "{flagged} rows flagged after the shift");
}

/// Accelerating drift, x += 0.002·t² (t rows since its start; 0.2σ after 10 rows, 5σ after
/// 50): flagged within 60 rows.
#[test]
fn accelerating_drift_is_flagged_within_60_rows() {
    for seed in 31..36 {
        let mut xs = noise(seed, 6000, 10.0, 1.0);
        for (t, x) in xs[ONSET..].iter_mut().enumerate() {
            *x += 0.002 * (t * t) as f64;
        }
        let out = run_uni(auto().as_mut(), &xs);
        let early: Vec<_> = onsets(&out)
            .into_iter()
            .filter(|&i| i + 200 > ONSET && i < ONSET)
            .collect();
        assert!(
            early.is_empty(),
            "seed {seed}: alarms just before the drift {early:?}"
        );
        let at = (ONSET..out.len()).find(|&i| out[i].1);
        let at = at.unwrap_or_else(|| panic!("seed {seed}: drift never flagged"));
        assert!(
            at - ONSET <= 60,
            "seed {seed}: flagged after {} rows",
            at - ONSET
        );
    }
}

/// Stationary noise: fewer than 2 onsets per 10 000 rows, Gaussian or heavy-tailed.
#[test]
fn stationary_noise_raises_fewer_than_2_onsets_per_10000_rows() {
    let rows = 50_000;
    let mut gauss = 0;
    let mut laplace = 0;
    for seed in 41..45 {
        gauss += onsets(&run_uni(auto().as_mut(), &noise(seed, rows, 10.0, 1.0))).len();
        let mut r = Rng::new(seed);
        let xs: Vec<f64> = (0..rows)
            .map(|_| {
                let u = r.uniform() - 0.5;
                10.0 - u.signum() * (1.0 - 2.0 * u.abs()).max(1e-300).ln()
            })
            .collect();
        laplace += onsets(&run_uni(auto().as_mut(), &xs)).len();
    }
    let per_10k = |n: usize| n as f64 * 10_000.0 / (4 * rows) as f64;
    assert!(
        per_10k(gauss) < 2.0,
        "Gaussian: {} onsets per 10k rows",
        per_10k(gauss)
    );
    assert!(
        per_10k(laplace) < 2.0,
        "Laplace: {} onsets per 10k rows",
        per_10k(laplace)
    );
}

/// A daily cycle of 5-minute data (288 rows) is longer than half the warm-up, so it is found
/// by the second period search (2016 rows); before and after, the cycle itself must not
/// alarm: at most 3 onsets over 14 days (4032 rows, like NAB's artificial files).
#[test]
fn a_daily_cycle_without_anomalies_does_not_alarm_every_day() {
    for seed in 51..54 {
        let mut r = Rng::new(seed);
        let xs: Vec<f64> = (0..4032)
            .map(|i| {
                let day = i as f64 * std::f64::consts::TAU / 288.0;
                50.0 + 20.0 * day.sin() + 5.0 * (2.0 * day).cos() + r.normal()
            })
            .collect();
        let on = onsets(&run_uni(auto().as_mut(), &xs));
        assert!(on.len() <= 3, "seed {seed}: onsets {on:?}");
    }
}
