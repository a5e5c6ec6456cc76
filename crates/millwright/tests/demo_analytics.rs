//! `millwright demo` with live analytics: detectors warm up on normal operation, then catch an
//! injected fault; the pump's RUL is published with its band; a sensor dropout turns only that
//! sensor's tag bad (regression: one dropout used to make a whole register block bad).

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

const GD1: &str = "acme/plant1/utilities/compressor_house/gd1";
const PUMP: &str = "acme/plant1/utilities/water/pump1";

#[test]
fn demo_detectors_catch_injected_faults_and_dropout_stays_local() {
    // 50 ms polls: the detectors' warm-ups (counted in polls) pass in seconds.
    let Demo {
        proc: mut demo,
        http,
        ..
    } = start_demo(
        "demo-analytics",
        &[
            "--seed",
            "3",
            "--speed",
            "5",
            "--fault-interval",
            "0",
            "--poll-interval",
            "50",
        ],
    );
    wait_ready(&http, Duration::from_secs(20));

    // Warm-up over: the gas detector's score is `good` and it is quiet on clean air.
    let score_tag = format!("{GD1}/anomaly_score");
    let flag_tag = format!("{GD1}/anomalous");
    wait_for("gd1 detector warm-up", Duration::from_secs(60), || {
        let tags = tags_by_path(&http);
        let s = &tags[&score_tag];
        if s["quality"] == "good" {
            Ok(())
        } else {
            Err(format!("{s}"))
        }
    });
    for _ in 0..10 {
        let tags = tags_by_path(&http);
        assert_eq!(
            tags[&flag_tag]["value"], false,
            "false alarm on clean air: {}",
            tags[&score_tag]
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // A gas release at gd1 is flagged anomalous.
    let r = post_json(
        &http,
        "/api/v1/sim/faults",
        &json!({"asset": "gd1", "kind": "gas_release", "duration_s": 600}),
    )
    .expect("POST fault");
    assert_eq!(r.status, 201, "{}", r.text());
    let score = wait_for(
        "gd1 anomalous after the release",
        Duration::from_secs(20),
        || {
            let tags = tags_by_path(&http);
            if tags[&flag_tag]["value"] == true {
                Ok(tags[&score_tag]["value"].as_f64().unwrap_or(f64::NAN))
            } else {
                Err(format!(
                    "flag {} score {}",
                    tags[&flag_tag], tags[&score_tag]
                ))
            }
        },
    );
    assert!(
        score >= 0.5,
        "a flagged row scores at least the threshold (0.5): {score}"
    );
    // A lasting release stays flagged (the gas detector's `ewma` keeps its warm-up reference).
    std::thread::sleep(Duration::from_secs(3));
    let tags = tags_by_path(&http);
    assert_eq!(
        tags[&flag_tag]["value"], true,
        "still anomalous while the gas is up: {}",
        tags[&score_tag]
    );
    let metrics = get(&http, "/metrics").expect("GET /metrics").text();
    let onsets = metrics
        .lines()
        .find(|l| {
            l.starts_with("mw_anomaly_onsets_total") && l.contains(&format!("instance=\"{GD1}\""))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no mw_anomaly_onsets_total for gd1 in /metrics"));
    assert!(onsets >= 1.0, "onsets {onsets}");

    // The operator accepts the new state: gd1's detector forgets what it learnt and warms up again.
    let listed = get_json(&http, "/api/v1/detectors");
    assert!(
        listed["detectors"]
            .as_array()
            .is_some_and(|d| d.iter().any(|d| d["asset"] == GD1 && d["kind"] == "ewma")),
        "{listed}"
    );
    let r = post_json(&http, "/api/v1/detectors/relearn", &json!({ "asset": GD1 }))
        .expect("POST relearn");
    assert_eq!(r.status, 202, "{}", r.text());
    wait_for("gd1 warming up again", Duration::from_secs(10), || {
        let s = &tags_by_path(&http)[&score_tag];
        if s["quality"] == "uncertain" && s["reason"] == "warming up" {
            Ok(())
        } else {
            Err(format!("{s}"))
        }
    });
    let r = post_json(
        &http,
        "/api/v1/detectors/relearn",
        &json!({ "asset": "nowhere/x" }),
    )
    .expect("POST relearn");
    assert_eq!(r.status, 404, "{}", r.text());
    let metrics = get(&http, "/metrics").expect("GET /metrics").text();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("mw_detector_relearns_total")
                && l.contains(&format!("instance=\"{GD1}\""))
                && l.ends_with(" 1")),
        "no mw_detector_relearns_total 1 for gd1"
    );

    // Pump RUL from the vibration trend: published in hours; lower ≤ rul, or, beyond the horizon
    // (a healthy pump), the band without ends, saying so.
    let (rul, lower) = wait_for("pump RUL", Duration::from_secs(30), || {
        let tags = tags_by_path(&http);
        let (r, l) = (
            &tags[&format!("{PUMP}/rul")],
            &tags[&format!("{PUMP}/rul_lower")],
        );
        match (r["value"].as_f64(), l["value"].as_f64()) {
            (Some(rv), lv)
                if r["unit"] == "h" && (lv.is_some() || l["reason"] == "beyond the horizon") =>
            {
                Ok((rv, lv))
            }
            _ => Err(format!("rul {r}, lower {l}")),
        }
    });
    assert!(
        rul >= 0.0 && lower.is_none_or(|l| l <= rul + 1e-9),
        "rul {rul} h, lower {lower:?} h"
    );

    // A dropout of the pump's flow sensor: flow goes bad, its register-block neighbours stay good.
    let r = post_json(
        &http,
        "/api/v1/sim/faults",
        &json!({"asset": PUMP, "kind": "dropout", "point": "flow", "duration_s": 600}),
    )
    .expect("POST dropout");
    assert_eq!(r.status, 201, "{}", r.text());
    wait_for("flow bad, neighbours good", Duration::from_secs(10), || {
        let tags = tags_by_path(&http);
        let flow = &tags[&format!("{PUMP}/flow")];
        let vib = &tags[&format!("{PUMP}/vibration")];
        let cur = &tags[&format!("{PUMP}/motor_current")];
        if flow["quality"] == "bad" && vib["quality"] == "good" && cur["quality"] == "good" {
            Ok(())
        } else {
            Err(format!("flow {flow}\nvibration {vib}\ncurrent {cur}"))
        }
    });
    demo.sigterm();
    let st = demo
        .wait_exit(Duration::from_secs(3))
        .expect("demo exits after SIGTERM");
    assert!(st.success(), "{st:?}");
}
