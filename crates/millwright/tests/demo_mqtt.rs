//! `millwright demo --mqtt ADDR` runs the embedded broker and publishes the plant there: a real
//! `mosquitto_sub` (not written here) receives the UNS tree anonymously on loopback, as retained
//! JSON with value, unit, quality and timestamp, and a client with a username the user store
//! does not know is refused. Skipped, with a message, when mosquitto-clients is not installed.

mod common;

use std::process::Command;
use std::time::Duration;

use common::start_demo;

#[test]
fn demo_publishes_the_plant_on_its_mqtt_broker() {
    if Command::new("mosquitto_sub")
        .arg("--help")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: mosquitto_sub is not installed (apt-get install mosquitto-clients)");
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut demo = start_demo("demo-mqtt", &["--mqtt", &addr, "--poll-interval", "100"]);
    let line = demo
        .proc
        .wait_line("MQTT broker on", Duration::from_secs(10));
    assert!(
        line.contains("millwright/acme-plant-1-simulated/"),
        "{line}"
    );
    let port_s = port.to_string();
    let sub = |extra: &[&str]| {
        let mut args = vec!["-h", "127.0.0.1", "-p", port_s.as_str()];
        args.extend_from_slice(extra);
        Command::new("mosquitto_sub")
            .args(&args)
            .output()
            .expect("mosquitto_sub runs")
    };
    // retained: a late subscriber gets every tag's latest value at once
    let mut out = None;
    for _ in 0..30 {
        let o = sub(&[
            "-t",
            "millwright/acme-plant-1-simulated/#",
            "-v",
            "-C",
            "40",
            "-W",
            "5",
        ]);
        if o.status.success() {
            out = Some(String::from_utf8_lossy(&o.stdout).into_owned());
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let out = out.unwrap_or_else(|| {
        panic!(
            "no 40 UNS messages within the retries\n{}",
            demo.proc.report()
        )
    });
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 40, "{out}");
    let mut with_unit = 0;
    for l in &lines {
        let (topic, payload) = l.split_once(' ').unwrap_or_else(|| panic!("{l}"));
        assert!(
            topic.starts_with("millwright/acme-plant-1-simulated/"),
            "{topic}"
        );
        let j: serde_json::Value =
            serde_json::from_str(payload).unwrap_or_else(|e| panic!("{l}: {e}"));
        for k in ["value", "unit", "quality", "ts"] {
            assert!(j.get(k).is_some(), "{k} missing in {payload}");
        }
        assert!(
            j["ts"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{payload}"
        );
        if j["unit"].is_string() {
            with_unit += 1;
        }
    }
    assert!(with_unit > 0, "no message carried a unit:\n{out}");
    // one named tag: its topic is its path, and it keeps being updated (not only retained)
    let topic = lines[0].split_once(' ').unwrap().0;
    let o = sub(&["-t", topic, "-v", "-C", "3", "-W", "20"]);
    assert!(
        o.status.success(),
        "{topic}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let got = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(got.lines().all(|l| l.starts_with(topic)), "{got}");
    // unknown user: refused
    let o = sub(&[
        "-t", "#", "-C", "1", "-W", "5", "-u", "nobody", "-P", "nothing",
    ]);
    assert!(!o.status.success(), "an unknown user must be refused");
    demo.proc.sigterm();
    demo.proc.wait_exit(Duration::from_secs(20));
}
