//! End to end through `millwright demo`: the built-in simulator on Modbus TCP, polled with
//! examples/plant.toml, served over HTTP. Everything is observed from outside the process (stdout,
//! HTTP, signals, files), the way an operator would.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value as J, json};

const GD1_GAS: &str = "acme/plant1/utilities/compressor_house/gd1/gas";
const GD1_ALARM: &str = "acme/plant1/utilities/compressor_house/gd1/alarm";
/// Tags with a deadband in examples/plant.toml: their value (and timestamp) only changes when the
/// reading moves by more than the deadband, so they may legitimately stand still between polls.
const DEADBANDED: [&str; 2] = [
    "acme/plant1/utilities/water/pump1/flow",
    "acme/plant1/utilities/water/pump1/discharge_pressure",
];

fn ts_ns(tag: &J) -> i128 {
    let ts = tag["ts"]
        .as_str()
        .unwrap_or_else(|| panic!("no ts in {tag}"));
    parse_rfc3339_ns(ts).unwrap_or_else(|| panic!("ts {ts:?} is not RFC 3339 in {tag}"))
}

fn num(tag: &J) -> f64 {
    tag["value"]
        .as_f64()
        .unwrap_or_else(|| panic!("value is not a number in {tag}"))
}

#[test]
fn demo_serves_the_simulated_plant_end_to_end() {
    let t_start = Instant::now();
    let phase = |what: &str| eprintln!("[{:>6.2?}] {what}", t_start.elapsed());
    // One process covers the whole scenario: --speed 20 makes both the value changes and the gas
    // plume fast; random faults are off so no dropout can turn a tag bad under our feet.
    let Demo {
        proc: mut demo,
        modbus,
        web_line: line,
        data,
        ..
    } = start_demo(
        "demo-e2e",
        &["--seed", "7", "--speed", "20", "--fault-interval", "0"],
    );
    assert!(modbus.ip().is_loopback() && modbus.port() != 0, "{modbus}");
    // "serving N tag(s) from 1 device(s)": the 25 points of the simulator, plus whatever the
    // built-in config derives from them (analytics), all listed by the API.
    assert!(line.contains("tag(s) from 1 device(s)"), "{line}");
    let served: usize = line
        .split("serving ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no tag count in {line:?}"));
    assert!(served >= 25, "{line}");
    let http = http_addr_from(&line);

    let health = get(&http, "/health").expect("GET /health");
    assert_eq!(health.status, 200, "{}", health.text());
    phase("started");
    wait_ready(&http, Duration::from_secs(20));
    phase("ready");

    // --- every point of the register map is a tag, with the documented unit, good, RFC 3339 ts
    let map = register_map();
    assert_eq!(
        map.len(),
        25,
        "docs/simulator.md register map should list 25 points"
    );
    let units: BTreeMap<&str, Option<&str>> = map
        .iter()
        .map(|r| (r.path.as_str(), r.unit.as_deref()))
        .collect();
    // the doc itself says what we expect (guards the parser as much as the doc)
    assert_eq!(
        units["acme/plant1/utilities/water/pump1/flow"],
        Some("m3/h")
    );
    assert_eq!(
        units["acme/plant1/utilities/water/pump1/suction_pressure"],
        Some("bar")
    );
    assert_eq!(
        units["acme/plant1/utilities/water/pump1/discharge_pressure"],
        Some("bar")
    );
    assert_eq!(units[GD1_GAS], Some("%{LEL}"));
    assert_eq!(units[GD1_ALARM], None);

    // The first cycle may have been only one poll ago; tags get their first sample in it.
    let first = wait_all_good(&http, &map, Duration::from_secs(10));
    assert_eq!(
        first.len(),
        served,
        "tags: {:?}",
        first.keys().collect::<Vec<_>>()
    );
    for row in &map {
        let t = first
            .get(&row.path)
            .unwrap_or_else(|| panic!("{} (docs/simulator.md) not served", row.path));
        assert_eq!(
            t["unit"].as_str(),
            row.unit.as_deref(),
            "unit of {}: {t}",
            row.path
        );
        assert!(t.get("reason").is_none(), "good tag with a reason: {t}");
        if row.dtype == "bool" {
            assert!(t["value"].is_boolean(), "{}: bool point, got {t}", row.path);
            assert_eq!(t["type"], "bool", "{t}");
        } else {
            assert!(num(t).is_finite(), "{}: {t}", row.path);
        }
        let asset = row
            .path
            .rsplit_once('/')
            .map(|(a, _)| a)
            .unwrap_or_default();
        assert_eq!(t["asset"], asset, "{t}");
        let ts = ts_ns(t);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_nanos() as i128;
        assert!(
            (now - ts).abs() < 60_000_000_000,
            "{}: ts {} is not about now",
            row.path,
            t["ts"]
        );
    }
    assert_eq!(first[GD1_GAS]["unit_symbol"], "% LEL", "{}", first[GD1_GAS]);

    // --- values are live: two snapshots ~2.5 s apart (≥ 2 poll cycles of 1 s)
    phase("all tags good");
    std::thread::sleep(Duration::from_millis(2500));
    let second = tags_by_path(&http);
    let mut changed = Vec::new();
    for row in map.iter().filter(|r| r.dtype != "bool") {
        let (a, b) = (&first[&row.path], &second[&row.path]);
        assert_eq!(b["quality"], "good", "{b}");
        if num(a) != num(b) {
            changed.push(row.path.as_str());
        }
    }
    assert!(
        changed.len() >= 8,
        "only {} analog tags changed in 2.5 s: {changed:?}",
        changed.len()
    );
    for row in map
        .iter()
        .filter(|r| !DEADBANDED.contains(&r.path.as_str()))
    {
        let (a, b) = (ts_ns(&first[&row.path]), ts_ns(&second[&row.path]));
        assert!(
            b > a,
            "{}: ts did not advance ({} → {})",
            row.path,
            first[&row.path]["ts"],
            second[&row.path]["ts"]
        );
    }

    // --- recent window: oldest first, strictly increasing timestamps
    let vib = "acme/plant1/utilities/water/pump1/vibration";
    let recent = get_json(&http, &format!("/api/v1/tags/{vib}/recent?limit=5"));
    assert_eq!(recent["path"], vib);
    assert_eq!(recent["unit"], "mm/s");
    let samples = recent["samples"].as_array().expect("samples");
    assert!(
        (3..=5).contains(&samples.len()),
        "expected 3..=5 samples after ≥ 4 polls: {recent}"
    );
    let ts: Vec<i128> = samples.iter().map(ts_ns).collect();
    assert!(
        ts.windows(2).all(|w| w[0] < w[1]),
        "timestamps not increasing: {recent}"
    );
    assert!(
        samples
            .iter()
            .all(|s| s["quality"] == "good" && s["value"].is_f64()),
        "{recent}"
    );

    // --- a gas release at gd1: its reading rises well above the pre-fault value and alarms
    let before = num(&second[GD1_GAS]);
    assert!(before < 5.0, "gd1 reads {before} %LEL before any release");
    let r = post_json(
        &http,
        "/api/v1/sim/faults",
        &json!({"asset": "gd1", "kind": "gas_release", "duration_s": 300}),
    )
    .expect("POST fault");
    assert_eq!(r.status, 201, "{}", r.text());
    let fault = r.json();
    let id = fault["id"]
        .as_u64()
        .unwrap_or_else(|| panic!("no id in {fault}"));
    assert_eq!(fault["kind"], "gas_release", "{fault}");
    assert_eq!(
        fault["asset"], "acme/plant1/utilities/compressor_house/gd1",
        "{fault}"
    );

    let faults = get_json(&http, "/api/v1/sim/faults");
    let listed = faults["faults"]
        .as_array()
        .and_then(|l| l.iter().find(|f| f["id"].as_u64() == Some(id)))
        .unwrap_or_else(|| panic!("fault {id} not listed: {faults}"));
    assert_eq!(listed["active"], true, "{listed}");
    assert_eq!(listed["kind"], "gas_release", "{listed}");

    // The plume reaches gd1 (1 m away) with lags of ~5 s sim = 0.25 s real at 20x; 1 s polls.
    let t0 = Instant::now();
    let peak = wait_for("gd1 gas to rise and alarm", Duration::from_secs(15), || {
        let tags = tags_by_path(&http);
        let (gas, alarm) = (&tags[GD1_GAS], &tags[GD1_ALARM]);
        let v = gas["value"].as_f64().unwrap_or(f64::NAN);
        if gas["quality"] == "good" && v > before + 15.0 && alarm["value"] == true {
            Ok(v)
        } else {
            Err(format!("gas {gas}, alarm {alarm}"))
        }
    });
    assert!(peak <= 100.0, "gas {peak} %LEL beyond the instrument range");
    eprintln!("gd1: {before} → {peak} %LEL in {:?}", t0.elapsed());

    // --- the HTML page shows every tag's row
    phase("gas alarm");
    let page = get(&http, "/").expect("GET /");
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .is_some_and(|c| c.starts_with("text/html")),
        "{:?}",
        page.headers
    );
    let html = page.text();
    assert!(
        html.contains("Acme Plant 1 (simulated)"),
        "site name missing from the page"
    );
    for row in &map {
        assert!(
            html.contains(&format!("t:{}", row.path)),
            "no row for {} on the page",
            row.path
        );
    }
    assert!(
        html.matches("<tr").count() >= 25,
        "fewer than 25 table rows on the page"
    );

    // --- metrics: the poller counted good samples for component modbus
    let metrics = get(&http, "/metrics").expect("GET /metrics").text();
    let received: f64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("mw_received_samples_total{") && l.contains("component=\"modbus\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(
        received >= 25.0,
        "mw_received_samples_total{{component=\"modbus\"}} = {received}:\n{metrics}"
    );

    // --- SIGTERM: clean exit within 2 s, ground-truth labels written
    assert!(
        demo.try_status().is_none(),
        "demo exited early\n{}",
        demo.report()
    );
    phase("SIGTERM");
    demo.sigterm();
    let status = demo.wait_exit(Duration::from_secs(2));
    let Some(status) = status else {
        panic!("demo did not exit within 2 s of SIGTERM\n{}", demo.report())
    };
    assert!(
        status.success(),
        "demo exit status {status}\n{}",
        demo.report()
    );
    let labels_path = data.path.join("sim-labels.csv");
    let labels = std::fs::read_to_string(&labels_path)
        .unwrap_or_else(|e| panic!("{}: {e}", labels_path.display()));
    assert!(
        labels.starts_with("id,kind,asset,point,origin,"),
        "{labels}"
    );
    let row = labels
        .lines()
        .find(|l| l.starts_with(&format!("{id},")))
        .unwrap_or_else(|| panic!("fault {id} not in the labels:\n{labels}"));
    assert!(
        row.contains("gas_release")
            && row.contains("compressor_house/gd1")
            && row.contains(",api,"),
        "{row}"
    );
}

#[test]
fn rfc3339_parser_of_these_tests() {
    assert_eq!(parse_rfc3339_ns("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(
        parse_rfc3339_ns("2024-01-01T00:00:00.5Z"),
        Some(1_704_067_200_500_000_000)
    );
    assert_eq!(
        parse_rfc3339_ns("2024-01-01T02:00:00+02:00"),
        Some(1_704_067_200_000_000_000)
    );
    assert_eq!(parse_rfc3339_ns("2024-01-01 00:00:00"), None);
    assert_eq!(parse_rfc3339_ns("2024-13-01T00:00:00Z"), None);
}
