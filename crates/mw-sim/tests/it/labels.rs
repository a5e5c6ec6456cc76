use mw_sim::{FaultKind, Plant, ScheduledFault, SimConfig};

use crate::inject;

const START: i64 = 1_704_067_200_000_000_000;

/// The scenario of the label examples in docs/simulator.md.
fn scenario() -> Plant {
    let mut p = Plant::new(SimConfig {
        seed: 7,
        start_epoch_ns: START,
        schedule: vec![ScheduledFault {
            start_s: 3600.0,
            asset: "acme/plant1/utilities/water/pump1".into(),
            kind: FaultKind::SensorDrift,
            duration_s: 1800.0,
            point: Some("flow".into()),
        }],
        ..SimConfig::default()
    });
    p.step(60.0);
    inject(&mut p, "valve1", FaultKind::BlockedValve, 600.0, None);
    for _ in 0..714 {
        p.step(10.0);
    }
    p
}

#[test]
fn csv_labels_list_every_fault_with_its_window() {
    let p = scenario();
    assert_eq!(p.time_s(), 7200.0);
    let mut out = Vec::new();
    p.write_labels_csv(&mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let expected = "\
id,kind,asset,point,origin,start_s,end_s,start_epoch_ns,end_epoch_ns,active
1,blocked_valve,acme/plant1/utilities/water/valve1,,api,60,660,1704067260000000000,1704067860000000000,false
2,sensor_drift,acme/plant1/utilities/water/pump1,flow,scheduled,3600,5400,1704070800000000000,1704072600000000000,false
";
    assert_eq!(text, expected);
    // The documentation shows the same file.
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/simulator.md"
    ))
    .unwrap();
    assert!(
        doc.contains(expected),
        "docs/simulator.md's CSV example is out of date"
    );
}

#[test]
fn json_labels_match_the_records() {
    let mut p = scenario();
    // One more, still active, with a point picked by default.
    inject(&mut p, "gd1", FaultKind::Dropout, 100.0, None);
    let mut out = Vec::new();
    p.write_labels_json(&mut out).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["seed"], 7);
    assert_eq!(v["start_epoch_ns"], START);
    assert_eq!(v["time_s"], 7200.0);
    let faults = v["faults"].as_array().unwrap();
    assert_eq!(faults.len(), 3);
    let f = &faults[0];
    assert_eq!(f["id"], 1);
    assert_eq!(f["kind"], "blocked_valve");
    assert_eq!(f["asset"], "acme/plant1/utilities/water/valve1");
    assert!(f["point"].is_null());
    assert_eq!(f["origin"], "api");
    assert_eq!(
        (f["start_s"].as_f64(), f["end_s"].as_f64()),
        (Some(60.0), Some(660.0))
    );
    assert_eq!(f["start_epoch_ns"], START + 60_000_000_000);
    assert_eq!(f["end_epoch_ns"], START + 660_000_000_000);
    assert_eq!(f["active"], false);
    let f = &faults[2];
    assert_eq!(
        (&f["kind"], &f["point"], &f["origin"], &f["active"]),
        (
            &"dropout".into(),
            &"gas".into(),
            &"api".into(),
            &true.into()
        )
    );
    assert_eq!(f["start_s"].as_f64(), Some(7200.0));
    assert_eq!(f["end_epoch_ns"], START + 7_300_000_000_000);
    // Records and JSON agree on every fault.
    for (r, j) in p.faults().iter().zip(faults) {
        assert_eq!(j["id"], r.id.0);
        assert_eq!(j["kind"], r.kind.to_string());
        assert_eq!(j["start_epoch_ns"], r.start_ns);
        assert_eq!(j["end_epoch_ns"], r.end_ns);
    }
}

#[test]
fn active_faults_are_the_active_records() {
    let mut p = Plant::new(SimConfig {
        seed: 7,
        start_epoch_ns: START,
        ..SimConfig::default()
    });
    assert!(p.active_faults().is_empty());
    inject(&mut p, "valve1", FaultKind::BlockedValve, 600.0, None);
    p.step(60.0);
    inject(&mut p, "gd1", FaultKind::GasRelease, 60.0, None);
    for _ in 0..4 {
        let active: Vec<_> = p.faults().into_iter().filter(|f| f.active).collect();
        assert_eq!(p.active_faults(), active);
        p.step(100.0);
    }
    assert_eq!(p.active_faults().len(), 1, "the gas release has ended");
    p.step(600.0);
    assert!(p.active_faults().is_empty());
}

#[test]
fn natural_degradation_is_a_permanent_label_in_files_and_exports() {
    // 20 minutes of accelerated wear raise the bearing's wear by more than DEGRADATION_WEAR_RISE; after the fault the damage stays,
    // and so does the label (id 0, origin natural), in the label files and in the export's per-asset columns.
    let mut p = Plant::new(SimConfig {
        seed: 3,
        start_epoch_ns: START,
        schedule: vec![ScheduledFault {
            start_s: 60.0,
            asset: "pump1".into(),
            kind: FaultKind::BearingWear,
            duration_s: 1200.0,
            point: None,
        }],
        ..SimConfig::default()
    });
    let mut out = Vec::new();
    mw_sim::export_csv(&mut p, 3600.0, 10.0, &mut out, |_, _| {}).unwrap();
    let d = p.degradation().expect("degraded");
    assert!(d.start_s > 60.0 && d.start_s < 1260.0, "{d:?}");
    let text = String::from_utf8(out).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
    let (pump, motor, tank, any, names) = (
        col("fault:acme/plant1/utilities/water/pump1"),
        col("fault:acme/plant1/utilities/water/pump1_motor"),
        col("fault:acme/plant1/utilities/water/tank1"),
        col("fault"),
        col("faults"),
    );
    for (i, l) in lines.enumerate() {
        let c: Vec<&str> = l.split(',').collect();
        let t = i as f64 * 10.0;
        let labelled = (60.0..1260.0).contains(&t) || t >= d.start_s;
        assert_eq!(c[pump] == "1", labelled, "pump label at {t} s");
        assert_eq!(c[motor] == "1", labelled, "motor label at {t} s");
        assert_eq!(c[any] == "1", labelled, "any label at {t} s");
        assert_eq!(c[tank], "0", "the tank is not affected");
        if t >= 1260.0 {
            assert_eq!(c[names], "pump1:bearing_degradation", "at {t} s");
        }
    }
    let mut csv = Vec::new();
    p.write_labels_csv(&mut csv).unwrap();
    let csv = String::from_utf8(csv).unwrap();
    let last = csv.lines().last().unwrap();
    assert_eq!(
        last,
        format!(
            "0,bearing_degradation,acme/plant1/utilities/water/pump1,,natural,{},3600,{},{},true",
            d.start_s,
            d.start_ns,
            START + 3_600_000_000_000
        )
    );
    let mut json = Vec::new();
    p.write_labels_json(&mut json).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    let f = v["faults"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(f["id"], 0);
    assert_eq!(f["kind"], "bearing_degradation");
    assert_eq!(f["origin"], "natural");
    assert_eq!(f["active"], true);
    assert_eq!(f["start_s"].as_f64(), Some(d.start_s));
}
