use mw_sim::{FaultKind, FaultOrigin, FaultRequest, Plant, ScheduledFault, SimConfig, SimError};

use crate::{inject, plant};

/// Runs a control plant and a faulted copy side by side and checks, at every step, that every point other than
/// the faulted one (and, for a gas reading, its detector's alarm) reads bit-identically. Returns the per-step
/// (control, faulted) readings of the faulted point while the fault is active.
fn isolate(
    kind: FaultKind,
    asset: &str,
    point: Option<&str>,
    expect_point: &str,
) -> Vec<(Option<f64>, Option<f64>)> {
    let mut control = plant(21);
    control.step(30.0);
    let mut faulty = control.clone();
    let id = inject(&mut faulty, asset, kind, 120.0, point);
    let rec = faulty
        .faults()
        .into_iter()
        .find(|f| f.id == id)
        .expect("record");
    assert_eq!(
        rec.point.as_deref(),
        Some(expect_point.rsplit('/').next().unwrap_or_default())
    );
    let mut seen = Vec::new();
    for step in 0..150 {
        control.step(1.0);
        faulty.step(1.0);
        let active = step < 119;
        for (c, f) in control.points().iter().zip(faulty.points()) {
            let path = c.path();
            let target = path.ends_with(expect_point);
            let same_detector_alarm = expect_point.ends_with("/gas")
                && path.ends_with("/alarm")
                && path.strip_suffix("/alarm") == expect_point.strip_suffix("/gas");
            if target && active {
                seen.push((c.value, f.value));
            } else if !same_detector_alarm || !active {
                assert_eq!(
                    c.value.map(f64::to_bits),
                    f.value.map(f64::to_bits),
                    "{kind} on {expect_point} changed {path} at step {step}"
                );
            }
        }
    }
    seen
}

#[test]
fn sensor_stuck_freezes_only_its_point() {
    let seen = isolate(FaultKind::SensorStuck, "pump1", Some("flow"), "pump1/flow");
    let frozen = seen[0].1;
    assert!(
        seen.iter().all(|(_, f)| *f == frozen),
        "stuck reading must not change"
    );
    assert!(
        seen.iter().filter(|(c, _)| c != &frozen).count() > 100,
        "the control keeps moving"
    );
}

#[test]
fn sensor_stuck_on_a_bool_and_default_points() {
    let seen = isolate(
        FaultKind::SensorStuck,
        "pump1",
        Some("running"),
        "pump1/running",
    );
    assert!(seen.iter().all(|(_, f)| *f == Some(1.0)));
    // Default point of the tank is its level.
    let seen = isolate(FaultKind::SensorStuck, "tank1", None, "tank1/level");
    assert!(seen.iter().all(|(_, f)| *f == seen[0].1));
}

#[test]
fn sensor_drift_grows_linearly_on_its_point_only() {
    let seen = isolate(
        FaultKind::SensorDrift,
        "acme/plant1/utilities/water/tank1",
        Some("level"),
        "tank1/level",
    );
    // Same noise in both runs: the difference is exactly the drift, 10 % of the 5 m span per hour.
    for (k, (c, f)) in seen.iter().enumerate() {
        let diff = f.unwrap() - c.unwrap();
        let expect = 0.1 * 5.0 * (k + 1) as f64 / 3600.0;
        assert!(
            (diff.abs() - expect).abs() < 1e-9,
            "step {k}: drift {diff}, expected ±{expect}"
        );
    }
}

#[test]
fn sensor_spike_hits_only_its_point_sometimes() {
    let seen = isolate(
        FaultKind::SensorSpike,
        "pump1_motor",
        Some("winding_temperature"),
        "pump1_motor/winding_temperature",
    );
    let spikes: Vec<f64> = seen
        .iter()
        .map(|(c, f)| f.unwrap() - c.unwrap())
        .filter(|d| *d != 0.0)
        .collect();
    assert!(
        (10..=60).contains(&spikes.len()),
        "{} spikes in {} readings",
        spikes.len(),
        seen.len()
    );
    assert!(
        spikes
            .iter()
            .all(|d| (0.2 * 150.0 - 1e-9..=0.5 * 150.0 + 1e-9).contains(&d.abs())),
        "{spikes:?}"
    );
}

#[test]
fn dropout_gives_no_data_on_its_point_only_and_recovers() {
    let seen = isolate(FaultKind::Dropout, "gd2", None, "gd2/gas");
    assert!(seen.iter().all(|(c, f)| c.is_some() && f.is_none()));

    let mut p = plant(22);
    inject(&mut p, "valve1", FaultKind::Dropout, 10.0, None);
    // Sensor faults show at once, without a step.
    assert_eq!(crate::reading(&p, "valve1/position"), None);
    let un: Vec<_> = p.unavailable().iter().map(|r| r.path()).collect();
    assert_eq!(un, ["acme/plant1/utilities/water/valve1/position"]);
    p.step(10.0);
    assert!(crate::reading(&p, "valve1/position").is_some());
    assert!(p.unavailable().is_empty());
    assert!(!p.faults()[0].active);
}

#[test]
fn inject_rejects_bad_requests_with_helpful_errors() {
    let mut p = plant(1);
    let req = |asset: &str, kind, d: f64, point: Option<&str>| FaultRequest {
        asset: asset.into(),
        kind,
        duration_s: d,
        point: point.map(str::to_string),
    };
    let e = p
        .inject(req("boiler", FaultKind::Leak, 10.0, None))
        .unwrap_err();
    assert!(matches!(e, SimError::UnknownAsset { .. }));
    assert!(
        e.to_string()
            .contains("acme/plant1/utilities/compressor_house/gd1"),
        "{e}"
    );
    let e = p
        .inject(req("gd1", FaultKind::BlockedValve, 10.0, None))
        .unwrap_err();
    assert!(matches!(e, SimError::NotApplicable { .. }), "{e}");
    let e = p
        .inject(req("pump1", FaultKind::SensorDrift, 10.0, Some("runing")))
        .unwrap_err();
    assert!(e.to_string().contains("flow"), "{e}");
    let e = p
        .inject(req("pump1", FaultKind::Leak, 10.0, Some("flow")))
        .unwrap_err();
    assert!(matches!(e, SimError::PointNotAllowed { .. }), "{e}");
    for d in [0.0, -5.0, f64::NAN, 1e12] {
        assert!(matches!(
            p.inject(req("pump1", FaultKind::Leak, d, None)),
            Err(SimError::BadDuration { .. })
        ));
    }
    assert!(p.faults().is_empty());
}

#[test]
fn scheduled_faults_start_and_end_on_time() {
    let cfg = SimConfig {
        seed: 2,
        schedule: vec![
            ScheduledFault {
                start_s: 50.0,
                asset: "valve1".into(),
                kind: FaultKind::BlockedValve,
                duration_s: 30.0,
                point: None,
            },
            ScheduledFault {
                start_s: 10.0,
                asset: "pump1".into(),
                kind: FaultKind::SensorStuck,
                duration_s: 5.0,
                point: Some("flow".into()),
            },
        ],
        ..SimConfig::default()
    };
    assert!(cfg.validate().is_empty());
    let mut p = Plant::new(cfg);
    p.step(9.0);
    assert!(p.faults().is_empty());
    p.step(1.0);
    let f = p.faults();
    assert_eq!(f.len(), 1);
    assert_eq!(
        (f[0].kind, f[0].origin, f[0].start_s, f[0].active),
        (FaultKind::SensorStuck, FaultOrigin::Scheduled, 10.0, true)
    );
    p.step(60.0);
    let f = p.faults();
    assert_eq!(f.len(), 2);
    assert_eq!(
        (f[1].kind, f[1].start_s, f[1].end_s),
        (FaultKind::BlockedValve, 50.0, 80.0)
    );
    assert!(!f[0].active && f[1].active);
    p.step(10.0);
    assert!(p.faults().iter().all(|f| !f.active));
}

#[test]
fn validate_reports_every_problem_and_new_skips_them() {
    let bad = |asset: &str, kind, start_s, duration_s| ScheduledFault {
        start_s,
        asset: asset.into(),
        kind,
        duration_s,
        point: None,
    };
    let cfg = SimConfig {
        random_faults: Some(0.0),
        schedule: vec![
            bad("pump1", FaultKind::Leak, 10.0, 60.0),
            bad("nowhere", FaultKind::Leak, 10.0, 60.0),
            bad("pump1", FaultKind::Leak, -1.0, 60.0),
            bad("gd1", FaultKind::BearingWear, 10.0, 0.0),
        ],
        ..SimConfig::default()
    };
    let problems = cfg.validate();
    let locations: Vec<&str> = problems.iter().map(|p| p.location.as_str()).collect();
    assert_eq!(
        locations,
        ["random_faults", "schedule[1]", "schedule[2]", "schedule[3]"]
    );
    let mut p = Plant::new(cfg);
    p.step(3600.0);
    let f = p.faults();
    assert_eq!(
        f.len(),
        1,
        "only the valid entry runs, no random faults: {f:?}"
    );
}

#[test]
fn random_faults_follow_the_mean_interval_and_cover_the_kinds() {
    let mut p = Plant::new(SimConfig {
        seed: 77,
        random_faults: Some(120.0),
        ..SimConfig::default()
    });
    p.step(20.0 * 3600.0);
    let f = p.faults();
    // 600 expected (20 h / 120 s); Poisson spread is ±25 at one sigma.
    assert!(
        (500..=700).contains(&f.len()),
        "{} random faults in 20 h",
        f.len()
    );
    assert!(f.iter().all(|r| r.origin == FaultOrigin::Random));
    for k in FaultKind::ALL {
        assert!(f.iter().any(|r| r.kind == k), "no random {k}");
    }
    assert!(
        f.windows(2)
            .all(|w| w[0].id < w[1].id && w[0].start_s <= w[1].start_s)
    );
    for r in &f {
        assert_eq!(r.point.is_some(), r.kind.is_sensor_fault(), "{r:?}");
        assert!(r.end_s > r.start_s);
    }
}
