//! `millwright sim --sparkplug URL` against Mosquitto (started here on an ephemeral loopback
//! port, stopped by pid): a subscriber (`mosquitto_sub`, hex payloads decoded here with
//! mw-sparkplug) sees the NBIRTH of `spBv1.0/millwright/NBIRTH/sim` with bdSeq 0 and one DBIRTH
//! per asset carrying every point of that asset as a metric, and the NDEATH when the simulator
//! is stopped. Skips with "SKIP: …" without mosquitto and its clients.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use mw_sparkplug::MetricValue;

const GUARD: Duration = Duration::from_secs(30);

#[test]
fn sim_publishes_the_plant_as_a_sparkplug_edge_node() {
    let dir = TempDir::new("sim-spb");
    let Some((_broker, port)) = start_mosquitto(&dir.path) else {
        return;
    };
    // line-buffered through stdbuf (mosquitto_sub does not flush a piped stdout per line)
    let mut sub = mosquitto_sub_hex(port, "spBv1.0/millwright/#");

    let data = dir.path.join("data");
    let url = format!("mqtt://127.0.0.1:{port}");
    let mut sim = Proc::millwright(&[
        "sim",
        "--modbus",
        "127.0.0.1:0",
        "--fault-interval",
        "0",
        "--sparkplug",
        &url,
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    sim.wait_line("Sparkplug B edge node", GUARD);

    let nbirth = spb_payload(&sub.wait_line("spBv1.0/millwright/NBIRTH/sim ", GUARD));
    let bd_seq = nbirth
        .metrics
        .iter()
        .find(|m| m.name.as_deref() == Some("bdSeq"))
        .and_then(|m| m.value.clone());
    assert_eq!(bd_seq, Some(MetricValue::Int64(0)));

    // every point of the register map, grouped by device (the asset's last segment)
    let mut want: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in mw_sim::register_map() {
        let device = r.asset.rsplit('/').next().unwrap().to_owned();
        want.entry(device).or_default().push(r.name.to_owned());
    }
    assert!(want.len() >= 3, "the plant has several assets: {want:?}");
    for (device, names) in &want {
        let line = sub.wait_line(&format!("spBv1.0/millwright/DBIRTH/sim/{device} "), GUARD);
        let birth = spb_payload(&line);
        let mut got: Vec<String> = birth
            .metrics
            .iter()
            .filter_map(|m| m.name.clone())
            .collect();
        got.sort();
        let mut names = names.clone();
        names.sort();
        assert_eq!(got, names, "DBIRTH of {device}");
        assert!(
            birth
                .metrics
                .iter()
                .all(|m| m.alias.is_some() && m.timestamp.is_some()),
            "aliases and timestamps in the birth of {device}"
        );
    }

    sim.sigterm();
    let death = spb_payload(&sub.wait_line("spBv1.0/millwright/NDEATH/sim ", GUARD));
    assert_eq!(
        death.metrics.first().and_then(|m| m.value.clone()),
        Some(MetricValue::Int64(0)),
        "the NDEATH of the stop carries the session's bdSeq"
    );
    assert!(
        sim.wait_exit(GUARD).is_some_and(|s| s.success()),
        "{}",
        sim.report()
    );
    assert_eq!(
        std::fs::read_to_string(data.join("sparkplug/millwright/sim/bdseq")).unwrap(),
        "1\n"
    );
}
