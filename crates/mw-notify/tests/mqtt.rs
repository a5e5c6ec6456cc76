//! The MQTT target against a real Mosquitto (started here on an ephemeral loopback port,
//! killed by pid): the broker is down when the alarm arrives, so the notification waits in the
//! target's queue and goes out (QoS 1, retained here so the subscriber started afterwards gets
//! it) once Mosquitto listens; read back with `mosquitto_sub`.
//!
//! Skips, saying why, when `mosquitto` or `mosquitto_sub` is not installed.

use std::path::PathBuf;
use std::time::Duration;

use mw_bus::{Batch, BusBuilder, BusConfig, Component, Parts, SourceRegistry};
use mw_model::{Event, EventKind, Value};

use mw_testpeers::{Mosquitto, free_port};

fn tools_present() -> bool {
    mw_testpeers::mosquitto_present(&["mosquitto_sub"])
}

fn temp_dir(name: &str) -> PathBuf {
    mw_testpeers::temp_dir("notify", name)
}

#[tokio::test]
async fn queued_while_the_broker_is_down_then_published_at_qos1() {
    if !tools_present() {
        return;
    }
    let dir = temp_dir("down-then-up");
    let port = free_port();
    let toml = format!(
        r#"
[site]
name = "Plant 1"

[[notify.mqtt]]
name = "scada"
url = "mqtt://127.0.0.1:{port}"
topic = "alarms/{{area}}/{{priority}}/{{alarm}}"
retain = true
backoff_max_ms = 200
"#
    );
    let reg = mw_bus::config_registry(&[&mw_notify::NotifyComponent as &dyn Component]);
    let cfg = reg.parse(&toml, "t.toml").unwrap_or_else(|d| panic!("{d}"));
    let mut parts = Parts::new();
    mw_notify::NotifyComponent.build(&cfg, &mut parts).unwrap();
    assert_eq!(parts.sink_count(), 1);
    let mut bus = BusBuilder::new(BusConfig::default());
    bus.parts(parts);
    let p = bus.publisher();
    let running = bus.start(&SourceRegistry::new());
    let ts = mw_model::now_ns();
    p.send(Batch::from_events(vec![
        Event::new(
            ts,
            "alarms/engine",
            EventKind::AlarmTransition {
                alarm: "gd1_lel_hihi".into(),
                tag: "acme/plant1/gas/gd1/lel".into(),
                priority: "critical".into(),
                area: "gas".into(),
                from: "normal".into(),
                to: "unack_active".into(),
                value: Some(Value::F64(67.6)),
                message: "gas detector gd1 at 67.6 %LEL".into(),
            },
        )
        .for_asset("acme/plant1/gas/gd1"),
    ]))
    .await
    .unwrap();
    // the broker comes up only now
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _broker = Mosquitto::start(&dir, port, "allow_anonymous true");
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::process::Command::new("mosquitto_sub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-t",
                "alarms/#",
                "-v",
                "-C",
                "1",
                "-q",
                "1",
            ])
            .output(),
    )
    .await
    .expect("the retained notification arrives within 20 s")
    .unwrap();
    let line = String::from_utf8(out.stdout).unwrap();
    let (topic, payload) = line.trim_end().split_once(' ').expect("topic payload");
    assert_eq!(topic, "alarms/gas/critical/gd1_lel_hihi");
    let j: serde_json::Value = serde_json::from_str(payload).unwrap();
    assert_eq!(j["type"], "alarm");
    assert_eq!(j["alarm"], "gd1_lel_hihi");
    assert_eq!(j["priority"], "critical");
    assert_eq!(j["to"], "unack_active");
    assert_eq!(j["value"], 67.6);
    assert_eq!(j["site"], "Plant 1");
    assert_eq!(j["ts"], mw_model::format_rfc3339_ns(ts));
    drop(p);
    assert!(running.stop(Duration::from_secs(10)).await);
}
