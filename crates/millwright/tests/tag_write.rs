//! Writing a setpoint end to end, from HTTP and from Sparkplug: an operator's `POST /api/v1/tags/{path}/write` to the real
//! binary reaches a real Modbus device (pymodbus's server, `tests/peers/modbus_server.py`),
//! whose register then holds the scaled value (read back with pymodbus's own client), and the
//! tag shows the new value. Refusals (limits, a tag that is not writable, a viewer, a malformed
//! body) write nothing, and every attempt is in the audit trail.

mod common;

use std::time::Duration;

use common::{
    Proc, TempDir, create_token, get_json, http_addr_from, mosquitto_sub_hex, pymodbus_read,
    register_token, request, spb_payload, start_mosquitto, start_pymodbus, wait_for,
};
use serde_json::Value as J;

const T: Duration = Duration::from_secs(20);
const SP: &str = "acme/p1/water/pump1/speed_sp";

fn post(addr: &str, tag: &str, body: &str) -> (u16, J) {
    let r = request(
        addr,
        "POST",
        &format!("/api/v1/tags/{tag}/write"),
        Some(body),
    )
    .unwrap_or_else(|e| panic!("POST write {tag}: {e}"));
    (r.status, r.json())
}

fn value_of(addr: &str, tag: &str) -> J {
    get_json(addr, &format!("/api/v1/tags/{tag}"))["value"].clone()
}

/// The pymodbus device both configs poll: the set point (holding 18, writable up to 80 %, from
/// `write_min` when given) and a counter (holding 0).
fn devices_toml(port: u16, write_min: Option<u16>) -> String {
    let min = write_min.map_or(String::new(), |m| format!("write_min = {m}\n"));
    format!(
        r#"[[devices]]
name = "py"
endpoint = "127.0.0.1:{port}"
poll_interval_ms = 200
timeout_ms = 2000

[[devices.tags]]
path = "{SP}"
table = "holding"
address = 18
type = "u16"
unit = "%"
scale = {{ raw = [0, 10000], eu = [0, 100] }}
writable = true
{min}write_max = 80

[[devices.tags]]
path = "acme/p1/water/pump1/count"
table = "holding"
address = 0
type = "u16"
"#
    )
}

#[test]
fn an_operator_writes_a_setpoint_to_a_real_modbus_device() {
    let (_server, port) = start_pymodbus();
    let data = TempDir::new("tag-write");
    let dir = data.path.to_str().unwrap().to_owned();
    let (operator, viewer, admin) = (
        create_token(&dir, "operator", "operator"),
        create_token(&dir, "viewer", "viewer"),
        create_token(&dir, "admin", "admin"),
    );
    // modbus_server.py: holding 18 = 2500 (25 % with this scaling), holding 0 = 54321.
    let config = data.path.join("millwright.toml");
    let devices = devices_toml(port, Some(10));
    std::fs::write(
        &config,
        format!(
            r#"[site]
name = "write test"
data_dir = "{dir}"

[http]
address = "127.0.0.1:0"

{devices}"#
        ),
    )
    .unwrap();
    let mut mw = Proc::millwright(&["run", "--config", config.to_str().unwrap()]);
    let addr = http_addr_from(&mw.wait_line("web UI at http://", T));
    register_token(&addr, &operator);
    wait_for("the setpoint read from pymodbus", T, || {
        match value_of(&addr, SP).as_f64() {
            Some(25.0) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });

    let (status, body) = post(
        &addr,
        SP,
        r#"{"value": 60, "comment": "raise flow for CIP"}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["written"], true, "{body}");
    assert_eq!(body["owner"], "modbus/py", "{body}");
    wait_for("the new setpoint read back", T, || {
        match value_of(&addr, SP).as_f64() {
            Some(60.0) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });

    // The device's own register, read by pymodbus's client: 60 % of 10000.
    let regs = pymodbus_read(port, r#"[["holding",18,1]]"#);
    assert_eq!(regs[0]["values"], serde_json::json!([6000]), "{regs}");

    let refusals = [
        (
            SP,
            r#"{"value": 95}"#,
            422,
            "95 is above the tag's write_max 80",
        ),
        (
            SP,
            r#"{"value": 5}"#,
            422,
            "5 is below the tag's write_min 10",
        ),
        (
            "acme/p1/water/pump1/count",
            r#"{"value": 1}"#,
            409,
            "is not writable",
        ),
        (SP, r#"{"value": null}"#, 400, "must be a number"),
        (SP, r#"{"val": 1}"#, 400, "invalid write request"),
    ];
    for (tag, body, want, msg) in refusals {
        let (status, answer) = post(&addr, tag, body);
        assert_eq!(status, want, "{tag} {body}: {answer}");
        assert!(
            answer["error"].as_str().is_some_and(|e| e.contains(msg)),
            "{tag} {body}: {answer}"
        );
    }
    register_token(&addr, &viewer);
    let (status, answer) = post(&addr, SP, r#"{"value": 30}"#);
    assert_eq!(status, 403, "a viewer may not write: {answer}");
    assert_eq!(value_of(&addr, SP).as_f64(), Some(60.0), "nothing written");

    register_token(&addr, &admin);
    // The audit trail is written by its own sink: wait for the four writes that reached the
    // registry (the malformed bodies and the viewer were refused before).
    let writes = wait_for("the writes in the audit trail", T, || {
        let audit = get_json(&addr, "/api/v1/audit?limit=100");
        let w: Vec<(String, String)> = audit["records"]
            .as_array()
            .ok_or_else(|| format!("audit: {audit}"))?
            .iter()
            .filter(|e| e["action"] == "tag.write")
            .map(|e| {
                (
                    e["outcome"].as_str().unwrap_or("").to_owned(),
                    e["detail"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        if w.len() < 4 {
            return Err(format!("{w:?}"));
        }
        Ok(w)
    });
    let outcomes: Vec<&str> = writes.iter().map(|(o, _)| o.as_str()).collect();
    assert_eq!(
        outcomes,
        ["ok", "refused", "refused", "not_writable"],
        "every write that reached the registry is audited, in order: {writes:?}"
    );
    assert!(
        writes[0].1.contains(&format!("target={SP}"))
            && writes[0].1.contains("old=25 value=60")
            && writes[0].1.contains("raise flow for CIP"),
        "{writes:?}"
    );
    // The configuration this run applied is in the trail too, named by its SHA-256.
    let sum = std::process::Command::new("sha256sum")
        .arg(&config)
        .output()
        .expect("sha256sum");
    let sum = String::from_utf8_lossy(&sum.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    let audit = get_json(&addr, "/api/v1/audit?limit=100");
    let applied: Vec<&J> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "config.apply")
        .collect();
    assert_eq!(applied.len(), 1, "{audit}");
    assert!(
        applied[0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains(&format!("sha256={sum}"))),
        "the applied config is named by its SHA-256 {sum}: {}",
        applied[0]
    );
    mw.sigterm();
    mw.wait_exit(T);
}

/// The same write from the other side: a Sparkplug host's DCMD (published with
/// `mosquitto_pub` to a real Mosquitto, payload encoded with mw-sparkplug) reaches the
/// Modbus device through the binary's edge node and the tag-write registry; the new value
/// comes back as DDATA, a DCMD beyond the tag's `write_max` leaves the register alone, and both
/// are in the audit trail.
#[test]
fn a_sparkplug_dcmd_writes_a_setpoint_to_a_real_modbus_device() {
    use mw_sparkplug::{Metric, MetricValue, Payload};

    let data = TempDir::new("spb-write");
    let Some((_broker, mqtt)) = start_mosquitto(&data.path) else {
        return;
    };
    let (_server, port) = start_pymodbus();
    let dir = data.path.to_str().unwrap().to_owned();
    let config = data.path.join("millwright.toml");
    let devices = devices_toml(port, None);
    std::fs::write(
        &config,
        format!(
            r#"[site]
name = "spb write test"
data_dir = "{dir}"

[http]
address = "127.0.0.1:0"

{devices}
[sparkplug.edge]
url = "mqtt://127.0.0.1:{mqtt}"
group_id = "G1"
edge_node_id = "E1"
"#
        ),
    )
    .unwrap();
    let p = mqtt.to_string();
    // line-buffered through stdbuf (mosquitto_sub does not flush a piped stdout per line)
    let mut sub = mosquitto_sub_hex(mqtt, "spBv1.0/G1/#");
    let mut mw = Proc::millwright(&["run", "--config", config.to_str().unwrap()]);
    mw.wait_line("web UI at http://", T);

    let decode = spb_payload;
    let metric = |p: &Payload, name: &str| {
        p.metrics
            .iter()
            .find(|m| m.name.as_deref() == Some(name))
            .cloned()
    };
    let birth = decode(&sub.wait_line("spBv1.0/G1/DBIRTH/E1/pump1 ", T));
    let (sp, count) = (
        metric(&birth, "speed_sp").expect("speed_sp in the birth"),
        metric(&birth, "count").expect("count in the birth"),
    );
    assert_eq!(sp.value, Some(MetricValue::Double(25.0)), "{birth:?}");
    assert!(count.value.is_some());

    let dcmd = |value: f64| {
        let payload = mw_sparkplug::encode(&Payload {
            timestamp: Some(0),
            metrics: vec![Metric::new("speed_sp", MetricValue::Double(value))],
            ..Payload::default()
        })
        .unwrap();
        let file = data.path.join("dcmd.bin");
        std::fs::write(&file, payload).unwrap();
        let st = std::process::Command::new("mosquitto_pub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &p,
                "-t",
                "spBv1.0/G1/DCMD/E1/pump1",
                "-f",
            ])
            .arg(&file)
            .status()
            .unwrap();
        assert!(st.success());
    };
    dcmd(60.0);
    wait_for("the DDATA with the written setpoint", T, || {
        let line = sub.wait_line("spBv1.0/G1/DDATA/E1/pump1 ", T);
        let d = decode(&line);
        match d.metrics.iter().find(|m| m.alias == sp.alias) {
            Some(m) if m.value == Some(MetricValue::Double(60.0)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    assert_eq!(
        pymodbus_read(port, r#"[["holding",18,1]]"#)[0]["values"],
        serde_json::json!([6000])
    );
    dcmd(95.0); // above write_max: refused by the Modbus owner, nothing sent to the device
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        pymodbus_read(port, r#"[["holding",18,1]]"#)[0]["values"],
        serde_json::json!([6000]),
        "a refused write leaves the register alone"
    );
    mw.sigterm();
    mw.wait_exit(T);
    let audit = std::fs::read_to_string(data.path.join("audit/audit.jsonl")).unwrap_or_default();
    let writes: Vec<&str> = audit.lines().filter(|l| l.contains("tag.write")).collect();
    assert_eq!(writes.len(), 2, "both DCMDs are audited: {audit}");
    assert!(
        writes[0].contains("\"outcome\":\"ok\"") && writes[1].contains("\"outcome\":\"refused\""),
        "{writes:?}"
    );
}
