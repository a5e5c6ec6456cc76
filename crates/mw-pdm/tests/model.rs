//! Model behaviour on small synthetic run-to-failure data (fast in debug builds).

use std::sync::Arc;

use mw_pdm::{
    CsvOptions, Format, GbmParams, Model, OnlineRul, PdmError, Run, TrainOptions, read_runs, train,
};

/// Deterministic pseudo-random stream for test data.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    fn noise(&mut self) -> f64 {
        self.next() + self.next() + self.next() - 1.5
    }
}

/// Units whose two health signals degrade exponentially towards failure, under two operating conditions that
/// shift the signals' levels, plus a constant column that must be dropped.
fn synthetic(units: usize, seed: u64) -> Vec<Run> {
    let mut rng = Lcg(seed);
    (0..units)
        .map(|u| {
            let life = 80 + (rng.next() * 120.0) as usize;
            let mut run = Run {
                unit: format!("u{u}"),
                cycles: Vec::new(),
                feature_names: vec![
                    "load".into(),
                    "temp".into(),
                    "vib".into(),
                    "const".into(),
                    "noise".into(),
                ],
                settings: 1,
                features: Vec::new(),
            };
            for c in 1..=life {
                let rul = (life - c) as f64;
                let high = rng.next() < 0.5;
                let load = if high { 80.0 } else { 20.0 } + rng.noise() * 0.1;
                let wear = (-rul / 40.0).exp();
                let temp = if high { 300.0 } else { 250.0 } + 10.0 * wear + rng.noise();
                let vib = if high { 2.0 } else { 1.0 } + 1.5 * wear + 0.1 * rng.noise();
                run.cycles.push(c as f64);
                run.features.push(vec![load, temp, vib, 7.0, rng.noise()]);
            }
            run
        })
        .collect()
}

fn small_options(seed: u64) -> TrainOptions {
    TrainOptions {
        rul_cap: 60.0,
        seed,
        gbm: GbmParams {
            n_trees: 40,
            learning_rate: 0.15,
            min_leaf: 10,
            ..GbmParams::default()
        },
        cv_folds: 3,
        interval: 0.8,
        threads: 2,
    }
}

fn rmse_last(model: &Model, runs: &[Run], cut: usize) -> f64 {
    let mut se = 0.0;
    for r in runs {
        let n = r.len() - cut;
        let p = model.predict_last(&r.truncated(n)).unwrap();
        let truth = (cut as f64).min(model.rul_cap());
        se += (p.rul - truth).powi(2);
    }
    (se / runs.len() as f64).sqrt()
}

#[test]
fn learns_synthetic_degradation() {
    let runs = synthetic(30, 1);
    let mut calls = Vec::new();
    let model = train(&runs, &small_options(5), &mut |d, t| calls.push((d, t))).unwrap();
    // Progress: one call per tree of 1 final + 3 fold models, ending at total.
    assert_eq!(calls.len(), 4 * 40);
    assert_eq!(*calls.last().unwrap(), (160, 160));
    assert!(calls.windows(2).all(|w| w[0].0 < w[1].0));
    let info = model.info();
    assert_eq!(info.dropped, vec!["const"]);
    assert_eq!(info.conditions, 2);
    assert!(info.cv_rmse.unwrap() < 12.0, "{info:?}");
    let test = synthetic(15, 99);
    // 20 cycles before failure the signals are clear: error well below the 60-cycle range.
    let e = rmse_last(&model, &test, 20);
    assert!(e < 10.0, "rmse {e}");
    // At failure the prediction is near 0; long before it, near the cap.
    for r in &test {
        let p = model.predict_last(r).unwrap();
        assert!(p.rul < 15.0, "{}: {p:?}", r.unit);
        assert!(p.lower <= p.rul && p.rul <= p.upper);
    }
}

#[test]
fn same_seed_same_model_and_threads_do_not_matter() {
    let runs = synthetic(12, 2);
    let mut o = small_options(9);
    o.gbm.n_trees = 15;
    let a = train(&runs, &o, &mut |_, _| {}).unwrap();
    o.threads = 1;
    let b = train(&runs, &o, &mut |_, _| {}).unwrap();
    assert!(a == b, "models differ");
    let pa = a.predict_all(&runs[0]).unwrap();
    assert_eq!(pa, b.predict_all(&runs[0]).unwrap());
    o.seed = 10;
    let c = train(&runs, &o, &mut |_, _| {}).unwrap();
    assert_ne!(pa, c.predict_all(&runs[0]).unwrap());
}

#[test]
fn save_load_round_trip_is_exact() {
    let runs = synthetic(10, 3);
    let mut o = small_options(1);
    o.gbm.n_trees = 20;
    let model = train(&runs, &o, &mut |_, _| {}).unwrap();
    let mut buf = Vec::new();
    model.save(&mut buf).unwrap();
    let loaded = Model::load(buf.as_slice()).unwrap();
    assert!(loaded == model, "loaded model differs");
    for r in &runs {
        assert_eq!(
            loaded.predict_all(r).unwrap(),
            model.predict_all(r).unwrap()
        );
    }
}

#[test]
fn load_rejects_garbage_other_versions_and_corrupt_trees() {
    assert!(matches!(
        Model::load(&b"not json"[..]),
        Err(PdmError::ModelFormat { .. })
    ));
    assert!(matches!(
        Model::load(&b"{\"format\":\"other\"}"[..]),
        Err(PdmError::ModelFormat { .. })
    ));
    let runs = synthetic(6, 4);
    let mut o = small_options(1);
    o.gbm.n_trees = 3;
    o.cv_folds = 2;
    let model = train(&runs, &o, &mut |_, _| {}).unwrap();
    let mut buf = Vec::new();
    model.save(&mut buf).unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
    v["version"] = 99.into();
    let e = Model::load(serde_json::to_vec(&v).unwrap().as_slice()).unwrap_err();
    assert!(
        matches!(
            e,
            PdmError::ModelVersion {
                found: 99,
                supported: 1
            }
        ),
        "{e}"
    );
    v["version"] = 1.into();
    // A child index pointing backwards would loop forever in predict: must be refused at load.
    v["gbm"]["trees"][0]["left"][0] = 0.into();
    v["gbm"]["trees"][0]["feature"][0] = 0.into();
    let e = Model::load(serde_json::to_vec(&v).unwrap().as_slice()).unwrap_err();
    assert!(matches!(e, PdmError::ModelFormat { .. }), "{e}");
}

#[test]
fn predictions_are_causal_and_online_matches_batch() {
    let runs = synthetic(10, 5);
    let mut o = small_options(2);
    o.gbm.n_trees = 20;
    let model = Arc::new(train(&runs, &o, &mut |_, _| {}).unwrap());
    let run = &synthetic(1, 77)[0];
    let all = model.predict_all(run).unwrap();
    for n in [1, 2, 17, 31, run.len()] {
        assert_eq!(
            model.predict_last(&run.truncated(n)).unwrap(),
            all[n - 1],
            "after {n} cycles"
        );
    }
    let mut online = OnlineRul::new(model.clone());
    assert_eq!(
        online.input_names(),
        &["load", "temp", "vib", "const", "noise"]
    );
    for (i, (c, row)) in run.cycles.iter().zip(&run.features).enumerate() {
        assert_eq!(online.push(*c, row).unwrap(), all[i]);
    }
    // Rejected rows leave the state untouched.
    let last = *run.cycles.last().unwrap();
    assert!(matches!(
        online.push(last, &run.features[0]),
        Err(PdmError::OnlineInput { .. })
    ));
    assert!(matches!(
        online.push(last + 1.0, &[1.0]),
        Err(PdmError::OnlineInput { .. })
    ));
    assert!(matches!(
        online.push(last + 1.0, &[1.0, f64::NAN, 1.0, 1.0, 1.0]),
        Err(PdmError::OnlineInput { .. })
    ));
}

#[test]
fn prediction_maps_columns_by_name_and_reports_missing_ones() {
    let runs = synthetic(8, 6);
    let mut o = small_options(3);
    o.gbm.n_trees = 10;
    o.cv_folds = 2;
    let model = train(&runs, &o, &mut |_, _| {}).unwrap();
    let want = model.predict_last(&runs[0]).unwrap();
    // Same data as CSV with the columns in another order and an extra column.
    let mut csv = String::from("extra,vib,cycle,noise,temp,asset,const,load\n");
    for (c, f) in runs[0].cycles.iter().zip(&runs[0].features) {
        csv += &format!(
            "1,{},{c},{},{},{},{},{}\n",
            f[2], f[4], f[1], runs[0].unit, f[3], f[0]
        );
    }
    let opts = CsvOptions {
        settings: vec!["load".into()],
        ..CsvOptions::default()
    };
    let read = read_runs(csv.as_bytes(), Format::Csv, &opts).unwrap();
    assert_eq!(model.predict_last(&read[0]).unwrap(), want);
    let mut r = runs[0].clone();
    r.feature_names[2] = "vibration".into();
    let e = model.predict_last(&r).unwrap_err();
    assert_eq!(
        e.to_string(),
        "run \"u0\" lacks column \"vib\" that the model was trained with"
    );
    let e = model.predict_last(&r.truncated(0)).unwrap_err();
    assert!(matches!(e, PdmError::EmptyRun { .. }));
}

#[test]
fn training_rejects_bad_data_and_options() {
    let runs = synthetic(4, 7);
    let o = small_options(1);
    assert!(matches!(
        train(&runs[..1], &o, &mut |_, _| {}),
        Err(PdmError::NotEnoughData { .. })
    ));
    assert!(matches!(
        train(&runs[..2], &o, &mut |_, _| {}),
        Err(PdmError::NotEnoughData { .. })
    ));
    let mut bad = runs.clone();
    bad[1].features[3][2] = f64::NAN;
    assert!(matches!(
        train(&bad, &o, &mut |_, _| {}),
        Err(PdmError::NonFiniteValue { .. })
    ));
    let mut bad = runs.clone();
    bad[2].feature_names.pop();
    for f in &mut bad[2].features {
        f.pop();
    }
    assert!(matches!(
        train(&bad, &o, &mut |_, _| {}),
        Err(PdmError::InconsistentRuns { .. })
    ));
    let mut o2 = o.clone();
    o2.rul_cap = 0.0;
    assert!(matches!(
        train(&runs, &o2, &mut |_, _| {}),
        Err(PdmError::InvalidOption {
            name: "rul_cap",
            ..
        })
    ));
    let mut o2 = o.clone();
    o2.cv_folds = 1;
    assert!(matches!(
        train(&runs, &o2, &mut |_, _| {}),
        Err(PdmError::InvalidOption { .. })
    ));
}
