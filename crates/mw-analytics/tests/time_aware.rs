//! Time-aware detectors (issue 14, item 2): a deadband-compressed or report-by-exception
//! series gives the same alarm onsets as the regular series it came from; gaps, duration
//! warm-ups, clock steps and duplicate timestamps. docs/analytics.md ("Time") describes the
//! layer; every bound below is stated where it is asserted.
//!
//! The regular series is simulator data (`mw-sim`, pump flow, 1 s polls, noise σ 0.4 m³/h)
//! with a spike, a level shift and an accelerating drift added; the compressed series is the same readings through `mw_model::DeadbandFilter`,
//! the filter Millwright's deadband processor uses.

mod common;

use common::noise;
use mw_analytics::{Detector, DetectorKind, Length, TimeOptions, build, build_timed};
use mw_model::{DeadbandFilter, TagPath, Value};
use mw_sim::{FaultKind, FaultRequest, Plant, SimConfig};

const S: i64 = 1_000_000_000;
/// Rows of the simulated run (1 s each).
const ROWS: usize = 12_000;
const SPIKE_AT: usize = 3_000;
const SHIFT_AT: usize = 5_000;
const DRIFT_AT: usize = 8_000;

/// Pump flow from the simulator, one reading per second (row `i` at `t0 + (i + 1)` s), with
/// a spike (+4 m³/h, 10 σ) at `SPIKE_AT`, a lasting level shift (+2.4 m³/h, 6 σ) from
/// `SHIFT_AT` and an accelerating drift (+10⁻⁵ m³/h · s², 2.5 m³/h after 500 s) from
/// `DRIFT_AT`. (The simulator's own `sensor_drift`, 10 m³/h per hour, is too slow for the
/// univariate `auto` to tell from the process within the hour: see docs/analytics.md.)
fn simulated_flow(seed: u64) -> Vec<(i64, f64)> {
    let mut plant = Plant::new(SimConfig {
        seed,
        ..SimConfig::default()
    });
    let flow = |p: &Plant| {
        p.points()
            .into_iter()
            .find(|r| r.asset.ends_with("/pump1") && r.name == "flow")
            .and_then(|r| r.value)
            .expect("pump1 flow reads")
    };
    let mut out = Vec::with_capacity(ROWS);
    for i in 0..ROWS {
        plant.step(1.0);
        let mut x = flow(&plant);
        if i == SPIKE_AT {
            x += 4.0;
        }
        if i >= SHIFT_AT {
            x += 2.4;
        }
        if i >= DRIFT_AT {
            x += 1e-5 * ((i - DRIFT_AT) as f64).powi(2);
        }
        out.push((plant.now_ns(), x));
    }
    out
}

/// The rows a deadband of `db` passes (the first row always passes).
fn deadband(rows: &[(i64, f64)], db: f64) -> Vec<(i64, f64)> {
    let tag = TagPath::new("acme/plant1/utilities/water/pump1/flow").expect("tag");
    let mut f = DeadbandFilter::default();
    rows.iter()
        .copied()
        .filter(|&(_, x)| f.pass(&tag, &Value::F64(x), true, db))
        .collect()
}

/// Report by exception of a sensor with resolution `q`: values rounded to `q`, a row only
/// when the rounded value changed.
fn quantised(rows: &[(i64, f64)], q: f64) -> Vec<(i64, f64)> {
    rows.iter()
        .map(|&(t, x)| (t, (x / q).round() * q))
        .collect()
}
fn report_by_exception(rows: &[(i64, f64)]) -> Vec<(i64, f64)> {
    let mut last = f64::NAN;
    rows.iter()
        .copied()
        .filter(|&(_, x)| {
            let send = x != last;
            last = x;
            send
        })
        .collect()
}

/// Times (ns) at which an alarm starts.
fn onset_times(det: &mut dyn Detector, rows: &[(i64, f64)]) -> Vec<i64> {
    let mut was = false;
    let mut out = Vec::new();
    for &(t, x) in rows {
        let o = det.update(t, &[x]);
        assert!((0.0..=1.0).contains(&o.score), "score {} at {t}", o.score);
        if o.anomalous && !was {
            out.push(t);
        }
        was = o.anomalous;
    }
    out
}

fn secs(ts: &[i64], t0: i64) -> Vec<i64> {
    ts.iter().map(|t| (t - t0) / S).collect()
}

/// What a run's onsets say about the three anomalies: the first onset (s after `t0`) in
/// the spike's window (30 s), the shift's (300 s) and the drift's (to the end), and the
/// onsets outside them (false alarms).
#[derive(Debug, PartialEq)]
struct Found {
    spike: Option<i64>,
    shift: Option<i64>,
    drift: Option<i64>,
    outside: Vec<i64>,
}

fn found(on: &[i64], t0: i64) -> Found {
    let row = |i: usize| i as i64 + 1; // row i is read at t0 + (i + 1) s
    let at = secs(on, t0);
    let first = |from: i64, to: i64| at.iter().copied().find(|t| (from..to).contains(t));
    let windows = [
        (row(SPIKE_AT), row(SPIKE_AT) + 30),
        (row(SHIFT_AT), row(SHIFT_AT) + 300),
        (row(DRIFT_AT), i64::MAX),
    ];
    Found {
        spike: first(windows[0].0, windows[0].1),
        shift: first(windows[1].0, windows[1].1),
        drift: first(windows[2].0, windows[2].1),
        outside: at
            .iter()
            .copied()
            .filter(|t| !windows.iter().any(|w| (w.0..w.1).contains(t)))
            .collect(),
    }
}

/// The regular series: the spike is flagged on its row, the shift within 3 rows, the drift
/// within 600 s of its start (1e-5 · 600² = 3.6 m³/h, 9 σ), and nothing else fires.
fn check_regular(f: &Found, seed: u64) {
    let row = |i: usize| i as i64 + 1;
    assert_eq!(f.spike, Some(row(SPIKE_AT)), "seed {seed}: {f:?}");
    assert!(
        f.shift.is_some_and(|t| t <= row(SHIFT_AT) + 3),
        "seed {seed}: {f:?}"
    );
    assert!(
        f.drift.is_some_and(|t| t <= row(DRIFT_AT) + 600),
        "seed {seed}: {f:?}"
    );
    assert!(f.outside.is_empty(), "seed {seed}: {f:?}");
}

/// A deadband of 0.5 σ and of 1 σ of the noise (0.2 and 0.4 m³/h) drops 28 % and about half
/// of the rows. The compressed series gives the regular series' onsets: the spike and the
/// shift at the same second (within 2 s), the drift at most 900 s later (a deadband hides
/// up to its width of a slow change: the drift's evidence grows later; measured 0–810 s on
/// these seeds), and no false alarm.
#[test]
fn a_deadband_series_gives_the_onsets_of_its_regular_source() {
    for seed in [1, 2, 3] {
        let regular = simulated_flow(seed);
        let t0 = regular[0].0 - S;
        let reg = found(
            &onset_times(build(DetectorKind::Auto, 1, None).as_mut(), &regular),
            t0,
        );
        check_regular(&reg, seed);
        for (db, kept_range) in [(0.2, 0.6..0.85), (0.4, 0.35..0.6)] {
            let compressed = deadband(&regular, db);
            let kept = compressed.len() as f64 / regular.len() as f64;
            assert!(
                kept_range.contains(&kept),
                "seed {seed}: the deadband {db} kept {kept:.2} of the rows"
            );
            let mut det = build(DetectorKind::Auto, 1, None);
            let f = found(&onset_times(det.as_mut(), &compressed), t0);
            let report = det.time_report().expect("time-aware");
            assert_eq!(report.interval_ns, Some(S), "seed {seed}: the source's 1 s");
            assert!(report.filled > 0, "seed {seed}: {report:?}");
            let near = |a: Option<i64>, b: Option<i64>, lo: i64, hi: i64| matches!((a, b), (Some(a), Some(b)) if (lo..=hi).contains(&(b - a)));
            let why = format!("seed {seed}, deadband {db}: regular {reg:?} vs {f:?} ({report:?})");
            assert!(near(reg.spike, f.spike, -2, 2), "{why}");
            assert!(near(reg.shift, f.shift, -2, 2), "{why}");
            assert!(near(reg.drift, f.drift, -300, 900), "{why}");
            assert!(f.outside.is_empty(), "{why}");
        }
    }
}

/// Without the layer's fill the same compressed rows are scored as if consecutive: shown
/// here so that the test above cannot pass by accident. With a known 1 s interval the fill
/// is the same as with the learnt one.
#[test]
fn the_fill_is_what_makes_the_deadband_series_agree() {
    let regular = simulated_flow(1);
    let compressed = deadband(&regular, 0.4);
    let given = TimeOptions {
        interval_ns: Some(S),
        ..TimeOptions::default()
    };
    let learnt = onset_times(build(DetectorKind::Auto, 1, None).as_mut(), &compressed);
    let known = onset_times(
        build_timed(DetectorKind::Auto, 1, &given).as_mut(),
        &compressed,
    );
    assert_eq!(learnt, known);
    // Consecutive rows, no time: timestamps all equal (duplicates are never filled).
    let flat: Vec<(i64, f64)> = compressed.iter().map(|&(_, x)| (0, x)).collect();
    let mut det = build(DetectorKind::Auto, 1, None);
    let mut was = false;
    let mut rows_on = Vec::new();
    for (i, &(_, x)) in flat.iter().enumerate() {
        let o = det.update(0, &[x]);
        if o.anomalous && !was {
            rows_on.push(compressed[i].0);
        }
        was = o.anomalous;
    }
    assert_eq!(det.time_report().map(|r| r.filled), Some(0));
    assert_ne!(
        rows_on, learnt,
        "row-counting gives other onsets on the compressed rows"
    );
    let t0 = regular[0].0 - S;
    assert_eq!(found(&learnt, t0).outside, Vec::<i64>::new());
}

/// Report by exception of a sensor with 0.1 m³/h resolution: the regular (quantised) series
/// and its exceptions give the same onsets: spike and shift within 2 s, the drift within
/// 60 s, no false alarm. Each suppressed row repeated the value before it, so the fill
/// restores the regular series to within the resolution (held ticks lean toward the slow
/// level by at most the smallest step seen, 0.1), and the stuck test ignores held ticks.
#[test]
fn a_report_by_exception_series_gives_the_onsets_of_its_regular_source() {
    for seed in [4, 5] {
        let regular = quantised(&simulated_flow(seed), 0.1);
        let t0 = regular[0].0 - S;
        let rbe = report_by_exception(&regular);
        assert!(
            rbe.len() < regular.len() * 95 / 100,
            "seed {seed}: {}",
            rbe.len()
        );
        let reg = found(
            &onset_times(build(DetectorKind::Auto, 1, None).as_mut(), &regular),
            t0,
        );
        check_regular(&reg, seed);
        let f = found(
            &onset_times(build(DetectorKind::Auto, 1, None).as_mut(), &rbe),
            t0,
        );
        let near = |a: Option<i64>, b: Option<i64>, tol: i64| matches!((a, b), (Some(a), Some(b)) if (a - b).abs() <= tol);
        let why = format!("seed {seed}: regular {reg:?} vs report-by-exception {f:?}");
        assert!(near(reg.spike, f.spike, 2), "{why}");
        assert!(near(reg.shift, f.shift, 2), "{why}");
        assert!(near(reg.drift, f.drift, 60), "{why}");
        assert!(f.outside.is_empty(), "{why}");
    }
}

/// A regular series is passed through untouched: no tick filled, no gap, and the outputs are
/// those of the same rows without any time information (all timestamps equal).
#[test]
fn a_regular_series_is_scored_exactly_as_rows() {
    let rows = simulated_flow(7);
    for kind in [
        DetectorKind::Auto,
        DetectorKind::Mad,
        DetectorKind::Seasonal,
    ] {
        let mut timed = build(kind, 1, None);
        let mut untimed = build(kind, 1, None);
        for &(t, x) in &rows {
            assert_eq!(
                timed.update(t, &[x]),
                untimed.update(0, &[x]),
                "{kind} at {t}"
            );
        }
        let r = timed.time_report().expect("time-aware");
        assert_eq!((r.filled, r.gaps, r.interval_ns), (0, 0, Some(S)), "{kind}");
    }
}

/// A gap of 50 intervals (the source was silent, not steady) is reported, not filled, and
/// raises no alarm: on noise none at all; on a cycle of 120 rows, whose phase the seasonal
/// baseline moves on by the 50 missed ticks, no onset the same series without the gap does
/// not have (within 5 rows; a baseline left 50 ticks out of phase would see residuals of
/// up to 9 amplitude-σ right after the gap).
#[test]
fn a_gap_of_50_intervals_is_reported_and_raises_no_alarm() {
    let cycle = |i: usize| 5.0 * (i as f64 * std::f64::consts::TAU / 120.0).sin();
    for (name, xs) in [
        ("noise", noise(21, 6_000, 10.0, 1.0)),
        (
            "cycle",
            noise(22, 6_000, 10.0, 0.5)
                .into_iter()
                .enumerate()
                .map(|(i, x)| x + cycle(i))
                .collect(),
        ),
    ] {
        // Rows 3000..3050 are missing: a step of 51 intervals.
        let rows: Vec<(i64, f64)> = xs
            .iter()
            .enumerate()
            .filter(|(i, _)| !(3_000..3_050).contains(i))
            .map(|(i, &x)| (i as i64 * 5 * S, x))
            .collect();
        let full: Vec<(i64, f64)> = xs
            .iter()
            .enumerate()
            .map(|(i, &x)| (i as i64 * 5 * S, x))
            .collect();
        let on_full = onset_times(build(DetectorKind::Auto, 1, None).as_mut(), &full);
        let mut det = build(DetectorKind::Auto, 1, None);
        let on = onset_times(det.as_mut(), &rows);
        let r = det.time_report().expect("time-aware");
        assert_eq!((r.gaps, r.filled), (1, 0), "{name}: {r:?}");
        let new: Vec<i64> = on
            .iter()
            .copied()
            .filter(|t| !on_full.iter().any(|u| (t - u).abs() <= 25 * S))
            .collect();
        assert!(
            new.is_empty(),
            "{name}: onsets at {:?} s, without the gap {:?} s",
            secs(&on, 0),
            secs(&on_full, 0)
        );
        if name == "noise" {
            assert!(on.is_empty(), "{name}: onsets at {:?} s", secs(&on, 0));
        }
    }
}

/// The real case of issue 14: 5-minute data whose clock steps back 55 minutes (11 rows fall
/// behind), plus duplicated rows. Nothing is filled, nothing is a gap, nothing fires, and the
/// layer counts what it saw.
#[test]
fn a_clock_step_back_and_duplicate_timestamps_do_not_break_the_layer() {
    let xs = noise(31, 3_000, 20.0, 1.0);
    let mut rows: Vec<(i64, f64)> = Vec::new();
    for (i, &x) in xs.iter().enumerate() {
        let mut t = i as i64 * 300 * S;
        if i >= 2_000 {
            t -= 3_300 * S; // the clock was corrected by 55 minutes
        }
        rows.push((t, x));
        if i % 500 == 7 {
            rows.push((t, x)); // the same row again
        }
    }
    let mut det = build(DetectorKind::Auto, 1, None);
    let on = onset_times(det.as_mut(), &rows);
    let r = det.time_report().expect("time-aware");
    assert_eq!((r.backwards, r.duplicates), (1, 6), "{r:?}");
    assert_eq!((r.filled, r.gaps), (0, 0), "{r:?}");
    assert!(on.is_empty(), "onsets {on:?}");
}

/// A warm-up given as a duration is the row warm-up at the interval: 2000 s of 5 s rows is
/// 400 rows, whether the interval is learnt or given, and the outputs are identical.
#[test]
fn a_duration_warmup_equals_the_row_warmup_at_the_interval() {
    let mut xs = noise(41, 2_000, 10.0, 1.0);
    xs[1_500] += 12.0;
    let rows: Vec<(i64, f64)> = xs
        .iter()
        .enumerate()
        .map(|(i, &x)| (1_700_000_000 * S + i as i64 * 5 * S, x))
        .collect();
    let by_rows = TimeOptions {
        warmup: Some(Length::Rows(400)),
        ..TimeOptions::default()
    };
    let by_time = TimeOptions {
        warmup: Some("2000s".parse().expect("duration")),
        ..TimeOptions::default()
    };
    let by_time_known = TimeOptions {
        interval_ns: Some(5 * S),
        ..by_time
    };
    for kind in [DetectorKind::Auto, DetectorKind::Ewma, DetectorKind::Pca] {
        let mut a = build_timed(kind, 1, &by_rows);
        let mut b = build_timed(kind, 1, &by_time);
        let mut c = build_timed(kind, 1, &by_time_known);
        let mut warm = 0;
        for &(t, x) in &rows {
            let (oa, ob, oc) = (a.update(t, &[x]), b.update(t, &[x]), c.update(t, &[x]));
            assert_eq!(oa, ob, "{kind} at {t}");
            assert_eq!(oa, oc, "{kind} at {t}");
            warm += usize::from(oa.warming_up);
        }
        assert_eq!(warm, 400, "{kind}");
        assert_eq!(a.warmup(), 400);
        assert_eq!(b.warmup(), 400);
        assert_eq!(b.time_report().and_then(|r| r.warmup_rows), Some(400));
    }
}

/// The stuck-sensor test fires on a flat line only where the source would have sent
/// changes. A regular source whose sensor freezes (the simulator's `sensor_stuck`) repeats
/// its value: flagged. Behind a deadband the frozen sensor sends nothing; the held ticks are
/// no evidence of a stuck sensor, so the stuck test stays quiet, and the silence is reported
/// as a gap once it is longer than the gap factor.
#[test]
fn a_stuck_sensor_fires_on_a_regular_source_and_is_a_gap_behind_a_deadband() {
    let mut plant = Plant::new(SimConfig {
        seed: 9,
        ..SimConfig::default()
    });
    let mut rows = Vec::new();
    for i in 0..3_000 {
        if i == 2_000 {
            plant
                .inject(FaultRequest {
                    asset: "pump1".into(),
                    kind: FaultKind::SensorStuck,
                    duration_s: 300.0,
                    point: Some("flow".into()),
                })
                .expect("inject");
        }
        plant.step(1.0);
        let x = plant
            .points()
            .into_iter()
            .find(|r| r.asset.ends_with("/pump1") && r.name == "flow")
            .and_then(|r| r.value)
            .expect("flow");
        rows.push((plant.now_ns(), x));
    }
    let t0 = rows[0].0 - S;
    let on = onset_times(build(DetectorKind::Auto, 1, None).as_mut(), &rows);
    let at = secs(&on, t0);
    assert!(
        at.iter().any(|&t| (2_000..=2_030).contains(&t)),
        "regular: the frozen sensor is flagged within 30 s: {at:?}"
    );
    let compressed = deadband(&rows, 0.4);
    let mut det = build(DetectorKind::Auto, 1, None);
    let on_db = onset_times(det.as_mut(), &compressed);
    let r = det.time_report().expect("time-aware");
    assert!(r.gaps >= 1, "the 300 s silence is a gap: {r:?}");
    let at_db = secs(&on_db, t0);
    assert!(
        !at_db.iter().any(|&t| (2_000..2_300).contains(&t)),
        "no alarm from held ticks during the silence: {at_db:?}"
    );
}

/// The backtest of a deadband CSV: the summary gives the source's 1 s interval (not the
/// typical silence), says how many held ticks were filled, counts the gaps with the gap
/// factor given, and a warm-up given as a duration ends after that much time.
#[test]
fn the_backtest_of_a_deadband_file_reports_the_fill_and_takes_a_duration_warmup() {
    use mw_analytics::backtest::{self, BacktestOptions};
    let regular = simulated_flow(1);
    let compressed = deadband(&regular, 0.4);
    let mut csv = String::from("timestamp,flow\n");
    for (t, x) in &compressed {
        csv.push_str(&format!("{},{x:.4}\n", t / S));
    }
    let o = BacktestOptions {
        warmup_duration_ns: Some(600 * S),
        gap_factor: Some(20),
        ..Default::default()
    };
    let mut out = Vec::new();
    let s = backtest::run(csv.as_bytes(), &mut out, &o, &mut |_, _| {}).expect("runs");
    let t = s.time.expect("time");
    assert_eq!(t.typical_interval_ns, Some(S));
    assert_eq!(t.gap_factor, 20);
    let layer = s.time_layer.expect("time layer");
    assert_eq!(layer.warmup_rows, Some(600), "600 s of 1 s ticks");
    assert!(
        layer.filled > 0 && layer.interval_ns == Some(S),
        "{layer:?}"
    );
    // The warm-up ends at the first row at least 600 s (ticks) in.
    let warm_rows = usize::try_from(s.warmup_rows).expect("fits");
    assert!(compressed[warm_rows - 1].0 - compressed[0].0 < 600 * S);
    assert!(compressed[warm_rows].0 - compressed[0].0 >= 599 * S);
    let text = s.to_string();
    assert!(text.contains("held values"), "{text}");
    assert!(text.contains("(20 typical intervals)"), "{text}");
}
