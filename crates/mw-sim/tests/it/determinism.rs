use mw_sim::{FaultKind, Plant, ScheduledFault, SimConfig};

use crate::{inject, plant, val};

fn config(seed: u64) -> SimConfig {
    SimConfig {
        seed,
        random_faults: Some(300.0),
        schedule: vec![ScheduledFault {
            start_s: 100.0,
            asset: "gd2".into(),
            kind: FaultKind::GasRelease,
            duration_s: 60.0,
            point: None,
        }],
        ..SimConfig::default()
    }
}

/// Runs an irregular but fixed sequence of steps (small, fractional and large), with one API fault.
fn run(seed: u64) -> Plant {
    let mut p = Plant::new(config(seed));
    let dts = [0.1, 1.0, 0.37, 10.0, 0.05, 123.4];
    for i in 0..200 {
        p.step(dts[i % dts.len()]);
        if i == 50 {
            inject(
                &mut p,
                "pump1",
                FaultKind::SensorSpike,
                500.0,
                Some("vibration"),
            );
        }
    }
    p
}

fn bits(p: &Plant) -> Vec<Option<u64>> {
    p.points()
        .iter()
        .map(|r| r.value.map(f64::to_bits))
        .collect()
}

fn labels(p: &Plant) -> (Vec<u8>, Vec<u8>) {
    let (mut csv, mut json) = (Vec::new(), Vec::new());
    p.write_labels_csv(&mut csv).unwrap();
    p.write_labels_json(&mut json).unwrap();
    (csv, json)
}

#[test]
fn same_seed_same_steps_give_identical_output() {
    let (a, b) = (run(42), run(42));
    assert_eq!(a.time_s().to_bits(), b.time_s().to_bits());
    assert_eq!(a.registers(), b.registers());
    assert_eq!(bits(&a), bits(&b));
    assert_eq!(a.faults(), b.faults());
    assert_eq!(labels(&a), labels(&b));
    assert!(
        a.faults().len() > 10,
        "the random generator should have produced faults"
    );
}

#[test]
fn different_seeds_differ() {
    let (a, b) = (run(42), run(43));
    assert_ne!(a.registers(), b.registers());
    assert_ne!(bits(&a), bits(&b));
    assert_ne!(a.faults(), b.faults());
}

#[test]
fn process_does_not_depend_on_how_often_it_is_read() {
    // Ten 1 s steps and one 10 s step use the same 0.1 s substeps; only the number of readings differs, and
    // readings draw from their own noise stream.
    let (mut a, mut b) = (plant(5), plant(5));
    for _ in 0..10 {
        a.step(1.0);
    }
    b.step(10.0);
    assert_eq!(a.time_s(), 10.0);
    assert_eq!(a.now_ns(), b.now_ns());
    assert_eq!(a.bearing_wear().to_bits(), b.bearing_wear().to_bits());
    assert_eq!(
        val(&a, "pump1/volume_total").to_bits(),
        val(&b, "pump1/volume_total").to_bits()
    );
}

#[test]
fn time_is_exact_and_bad_steps_do_nothing() {
    let mut p = Plant::new(SimConfig {
        start_epoch_ns: 1_000,
        ..SimConfig::default()
    });
    for _ in 0..1000 {
        p.step(0.1);
    }
    assert_eq!(p.now_ns(), 1_000 + 100_000_000_000);
    assert_eq!(p.time_s(), 100.0);
    let before = p.registers();
    for dt in [0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        p.step(dt);
    }
    assert_eq!(p.time_s(), 100.0);
    assert_eq!(p.registers(), before);
}
