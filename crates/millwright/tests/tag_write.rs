//! Writing a setpoint end to end: an operator's `POST /api/v1/tags/{path}/write` to the real
//! binary reaches a real Modbus device (pymodbus's server, `tests/peers/modbus_server.py`),
//! whose register then holds the scaled value (read back with pymodbus's own client), and the
//! tag shows the new value. Refusals (limits, a tag that is not writable, a viewer, a malformed
//! body) write nothing, and every attempt is in the audit trail.

mod common;

use std::time::Duration;

use common::{
    Proc, TempDir, get_json, http_addr_from, python, register_token, request, root, run_to_end,
    wait_for,
};
use serde_json::Value as J;

const T: Duration = Duration::from_secs(20);
const SP: &str = "acme/p1/water/pump1/speed_sp";

fn token(dir: &str, role: &str) -> String {
    let (st, out, err) = run_to_end(
        &[
            "token",
            "create",
            "--role",
            role,
            "--expires",
            "1d",
            "--name",
            role,
            "--data-dir",
            dir,
        ],
        T,
    );
    assert!(st.success(), "token create: {out}{err}");
    out.split_whitespace()
        .find(|w| w.starts_with("mw_"))
        .unwrap_or_else(|| panic!("no token in {out:?}"))
        .to_owned()
}

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

#[test]
fn an_operator_writes_a_setpoint_to_a_real_modbus_device() {
    let py = python();
    let peers = root().join("tests/peers");
    let mut server = Proc::spawn(
        &py,
        &[peers.join("modbus_server.py").to_str().unwrap(), "0"],
    );
    let ready = server.wait_line("READY port=", T);
    let port: u16 = ready
        .split("port=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {ready:?}"));

    let data = TempDir::new("tag-write");
    let dir = data.path.to_str().unwrap().to_owned();
    let (operator, viewer, admin) = (
        token(&dir, "operator"),
        token(&dir, "viewer"),
        token(&dir, "admin"),
    );
    // modbus_server.py: holding 18 = 2500 (25 % with this scaling), holding 0 = 54321.
    let config = data.path.join("millwright.toml");
    std::fs::write(
        &config,
        format!(
            r#"[site]
name = "write test"
data_dir = "{dir}"

[http]
address = "127.0.0.1:0"

[[devices]]
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
write_min = 10
write_max = 80

[[devices.tags]]
path = "acme/p1/water/pump1/count"
table = "holding"
address = 0
type = "u16"
"#
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
    let spec = r#"[["holding",18,1]]"#;
    let (st, out, err) = {
        let mut cmd = std::process::Command::new(&py);
        cmd.arg(peers.join("modbus_read.py"))
            .args(["127.0.0.1", &port.to_string(), spec]);
        let o = cmd.output().expect("modbus_read.py");
        (
            o.status,
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    assert!(st.success(), "{out}{err}");
    let regs: J = serde_json::from_str(out.trim()).unwrap();
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
    mw.sigterm();
    mw.wait_exit(T);
}
