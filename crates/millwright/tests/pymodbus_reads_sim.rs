//! An independent Modbus client (pymodbus, tests/peers/sim_read.py) reads every point of the
//! register map in docs/simulator.md from `millwright demo`'s simulator, decodes it the way the doc
//! says (type, word order, scale), and must get what Millwright's HTTP API reports for the same
//! tag at about the same moment. The table is parsed from the doc, so the doc is what is tested.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value as J, json};

/// Instrument span per unit, from docs/simulator.md § Faults: "Spans: flow 100 m³/h, pressures
/// 10 bar, currents 30 A, vibration 20 mm/s, level 5 m, gas 100 %LEL, temperatures 60–150 K,
/// speed 100 % / 3000 /min" (valve position is a % of 100 too). Temperatures take the smallest
/// documented span. The totalizer (`m3`) has no noise (it counts the true flow): span 0, so only
/// its resolution margin applies.
fn span(unit: Option<&str>) -> f64 {
    match unit {
        Some("m3/h") => 100.0,
        Some("bar") => 10.0,
        Some("A") => 30.0,
        Some("mm/s") => 20.0,
        Some("m") => 5.0,
        Some("%{LEL}") => 100.0,
        Some("Cel") => 60.0,
        Some("%") => 100.0,
        Some("/min") => 3000.0,
        Some("m3") => 0.0,
        other => {
            panic!("no instrument span known for unit {other:?}; add it from docs/simulator.md")
        }
    }
}

/// Allowed difference between the pymodbus reading and Millwright's value:
/// 2 % of the instrument span + 2 counts of the point's resolution (+ float slack).
///
/// Why this is tight enough: a wrong word order or type gives garbage (1e-38, 1e+20, 65 535 …),
/// a wrong scale is off by ×10/×100, a wrong address mostly lands on another quantity (suction
/// 0.9 vs discharge 4.85 bar) — all far beyond 2 %. Why it is loose enough: both clients sample a
/// live, noisy plant at slightly different instants. The documented noise is ≤ 0.4 % of span
/// (flow 0.4 m³/h σ is the largest), the difference of two readings ≤ 0.6 %, plus the flow's
/// 0.5 m³/h deadband in examples/plant.toml and 1 count of quantization on each side. Each point is
/// read 3 times and the closest reading counts, so one noise tail cannot fail the test, while a
/// systematic error is in all three. At --speed 1 the slow dynamics (level, temperatures,
/// totalizer) move far less than this in the ~3 s the comparison takes.
fn tolerance(row: &MapRow) -> f64 {
    0.02 * span(row.unit.as_deref()) + 2.0 * row.resolution().unwrap_or(0.0) + 1e-6
}

const PASSES: usize = 3;

#[test]
fn pymodbus_reads_what_docs_simulator_md_promises() {
    let map = register_map();
    assert_eq!(
        map.len(),
        25,
        "docs/simulator.md register map should list 25 points"
    );
    let Demo {
        proc: mut demo,
        http,
        modbus,
        ..
    } = start_demo("pymodbus-sim", &["--speed", "1", "--fault-interval", "0"]);
    wait_ready(&http, Duration::from_secs(20));
    let before = wait_all_good(&http, &map, Duration::from_secs(10));

    // Every documented point, plus two addresses of the documented gap (holding 22…99 read 0).
    let mut points: Vec<J> = map
        .iter()
        .map(|r| json!({"table": r.table, "address": r.address, "type": r.dtype, "word_order": r.word_order}))
        .collect();
    points.push(json!({"table": "holding", "address": 22, "type": "u16"}));
    points.push(json!({"table": "holding", "address": 99, "type": "u16"}));
    let request = json!({"unit": 1, "passes": PASSES, "interval_s": 0.15, "points": points});
    let script = root().join("tests/peers/sim_read.py");
    let (status, stdout, stderr) = run_python(
        &script,
        &[&modbus.ip().to_string(), &modbus.port().to_string()],
        &request.to_string(),
        Duration::from_secs(20),
    );
    assert!(
        status.success(),
        "sim_read.py failed ({status}):\n{stdout}\n{stderr}"
    );
    let out: J = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("bad JSON from sim_read.py ({e}): {stdout}"));
    let passes = out["passes"]
        .as_array()
        .unwrap_or_else(|| panic!("no passes: {out}"));
    assert_eq!(passes.len(), PASSES, "{out}");
    // Millwright polls every second: after 1.2 s its values come from a poll made after the
    // pymodbus reads, so `before` and `after` bracket them in time.
    std::thread::sleep(Duration::from_millis(1200));
    let after = tags_by_path(&http);

    // readings[point index] = the PASSES readings of that point
    let mut readings: Vec<Vec<&J>> = vec![Vec::new(); points.len()];
    for pass in passes {
        let pass = pass.as_array().unwrap_or_else(|| panic!("bad pass: {out}"));
        assert_eq!(pass.len(), points.len(), "{out}");
        for (i, r) in pass.iter().enumerate() {
            assert!(
                r.get("exception").is_none(),
                "{} answered with an exception: {r}",
                points[i]
            );
            readings[i].push(r);
        }
    }

    let mut failures = Vec::new();
    let mut table = Vec::new();
    for (row, reads) in map.iter().zip(&readings) {
        let (a, b) = (&before[&row.path], &after[&row.path]);
        for t in [a, b] {
            assert_eq!(t["quality"], "good", "{t}");
            assert_eq!(
                t["unit"].as_str(),
                row.unit.as_deref(),
                "unit of {}",
                row.path
            );
        }
        if row.dtype == "bool" {
            let api = [a["value"].as_bool(), b["value"].as_bool()];
            let got: Vec<Option<bool>> = reads.iter().map(|r| r["value"].as_bool()).collect();
            let ok = got.iter().any(|g| g.is_some() && api.contains(g));
            table.push(format!("{:<62} api {:?} pymodbus {:?}", row.path, api, got));
            if !ok {
                failures.push(format!(
                    "{}: pymodbus read {got:?}, Millwright reported {api:?}",
                    row.path
                ));
            }
            continue;
        }
        let (va, vb) = (a["value"].as_f64(), b["value"].as_f64());
        let (Some(va), Some(vb)) = (va, vb) else {
            failures.push(format!(
                "{}: Millwright value is not a number: {a} / {b}",
                row.path
            ));
            continue;
        };
        let (lo, hi) = (va.min(vb), va.max(vb));
        let tol = tolerance(row);
        let eu: Vec<f64> = reads
            .iter()
            .map(|r| {
                r["value"]
                    .as_f64()
                    .map(|raw| row.to_eu(raw))
                    .unwrap_or(f64::NAN)
            })
            .collect();
        // distance of each reading from the interval [lo, hi]
        let best = eu
            .iter()
            .map(|v| {
                if *v < lo {
                    lo - v
                } else if *v > hi {
                    v - hi
                } else {
                    0.0
                }
            })
            .fold(f64::NAN, f64::min);
        table.push(format!(
            "{:<62} api {va:>11.4} … {vb:>11.4}  pymodbus {:>11.4?}  tol {tol:.3}",
            row.path, eu
        ));
        if best.is_nan() || best > tol {
            failures.push(format!(
                "{} ({} {} {:?} @{}): pymodbus decoded {eu:?} (raw {:?}), Millwright reported {va} then {vb} (tolerance {tol})",
                row.path, row.table, row.dtype, row.word_order, row.address, reads[0]["raw"]
            ));
        }
    }
    for (i, r) in readings.iter().enumerate().skip(map.len()) {
        for x in r {
            if x["value"] != json!(0) {
                failures.push(format!(
                    "{}: should read 0 (docs: holding 22…99 read 0), got {x}",
                    points[i]
                ));
            }
        }
    }
    eprintln!("{}", table.join("\n"));
    assert!(
        failures.is_empty(),
        "pymodbus disagrees with Millwright / docs/simulator.md:\n{}",
        failures.join("\n")
    );

    assert!(
        demo.try_status().is_none(),
        "demo exited early\n{}",
        demo.report()
    );
    demo.sigterm();
    let status = demo.wait_exit(Duration::from_secs(3));
    assert!(
        status.is_some_and(|s| s.success()),
        "demo exit: {status:?}\n{}",
        demo.report()
    );
}
