//! Interop with pymodbus, a real peer not written here (`tests/peers/*.py`, run with the test
//! venv's Python: `$MW_PYTHON`, else `$HOME/.cache/millwright/venv/bin/python`).
//!
//! 1. our poller reads pymodbus's server (`modbus_server.py`, values documented there);
//! 2. pymodbus's client (`modbus_read.py`) reads our server.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use mw_modbus::RegisterImage;
use mw_modbus::codec::{RawValue, encode_registers};
use mw_modbus::config::{RegisterTable::*, WordOrder::*};
use mw_model::DataType::{Bool, F32, I16, I32, U16, U32};
use mw_model::{Quality, Value};

fn python() -> PathBuf {
    let p = match std::env::var_os("MW_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => {
            let home = std::env::var_os("HOME").expect("HOME is not set (or set MW_PYTHON)");
            Path::new(&home).join(".cache/millwright/venv/bin/python")
        }
    };
    assert!(
        p.exists(),
        "the pymodbus interop tests need the test venv's Python at {} (or set MW_PYTHON): run \
         scripts/test.sh or scripts/setup-test-env.sh, or create it by hand with \
         `python3 -m venv $HOME/.cache/millwright/venv && $HOME/.cache/millwright/venv/bin/pip install 'pymodbus>=3.6,<4'`",
        p.display()
    );
    p
}

fn peer(script: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/peers")
        .join(script)
}

/// Kills the child by pid when dropped.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `modbus_server.py` on a free port; returns the guard, the port and pymodbus's version.
fn start_pymodbus_server() -> (ChildGuard, u16, String) {
    let mut child = Command::new(python())
        .arg(peer("modbus_server.py"))
        .arg("0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start modbus_server.py");
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let guard = ChildGuard(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let (etx, erx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        let _ = etx.send(s);
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                // `READY port=<N> pymodbus=<version>`
                if let Some(rest) = line.strip_prefix("READY port=") {
                    let (port, version) = rest.split_once(" pymodbus=").unwrap_or((rest, "?"));
                    let port = port.trim().parse().expect("port number");
                    return (guard, port, version.trim().to_owned());
                }
            }
            Err(_) => {
                drop(guard); // kill, so stderr ends
                let err = erx.recv_timeout(Duration::from_secs(5)).unwrap_or_default();
                panic!("modbus_server.py did not print READY within 30 s; stderr:\n{err}");
            }
        }
    }
}

/// Runs a command to completion within `limit` (killed by pid otherwise); returns stdout.
fn run_bounded(cmd: &mut Command, limit: Duration) -> String {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let mut guard = ChildGuard(child);
    let o = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let e = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(st) = guard.0.try_wait().expect("wait") {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "command did not finish within {limit:?}: {cmd:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let (stdout, stderr) = (o.join().unwrap(), e.join().unwrap());
    assert!(
        status.success(),
        "{cmd:?} failed with {status}\nstdout: {stdout}\nstderr: {stderr}"
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poller_reads_pymodbus_server() {
    let (_server, port, version) = start_pymodbus_server();
    let tags = vec![
        tag("py/u16", HoldingRegister, 0, U16, Abcd),
        tag("py/i16", HoldingRegister, 1, I16, Abcd),
        tag("py/u32", HoldingRegister, 2, U32, Abcd),
        tag("py/i32", HoldingRegister, 4, I32, Abcd),
        tag("py/f32_abcd", HoldingRegister, 6, F32, Abcd),
        tag("py/f32_cdab", HoldingRegister, 8, F32, Cdab),
        tag("py/f32_badc", HoldingRegister, 10, F32, Badc),
        tag("py/f32_dcba", HoldingRegister, 12, F32, Dcba),
        tag("py/u32_cdab", HoldingRegister, 14, U32, Cdab),
        tag("py/i32_dcba", HoldingRegister, 16, I32, Dcba),
        scaled(
            tag("py/level", HoldingRegister, 18, U16, Abcd),
            (0.0, 10000.0),
            (0.0, 100.0),
            "%",
        ),
        tag("py/beef", HoldingRegister, 19, U16, Abcd),
        // 22 is outside pymodbus's image but close enough to be merged with the tags above:
        // pymodbus refuses the merged read, the poller then reads tag by tag.
        tag("py/missing", HoldingRegister, 22, U16, Abcd),
        tag("py/in_u16", InputRegister, 0, U16, Abcd),
        tag("py/in_f32", InputRegister, 1, F32, Abcd),
        tag("py/in_i16", InputRegister, 3, I16, Abcd),
        tag("py/coil0", Coil, 0, Bool, Abcd),
        tag("py/coil1", Coil, 1, Bool, Abcd),
        tag("py/coil7", Coil, 7, Bool, Abcd),
        tag("py/di0", DiscreteInput, 0, Bool, Abcd),
        tag("py/di2", DiscreteInput, 2, Bool, Abcd),
    ];
    let n = tags.len();
    let mut dev = device("pymodbus", format!("127.0.0.1:{port}"), tags);
    dev.timeout = Duration::from_millis(2000);
    let mut hs = spawn(vec![dev]);
    let missing = "modbus exception: illegal data address (2)";
    hs.wait_until(
        Duration::from_secs(20),
        &format!(
            "all good but the missing one (pymodbus {version}; needs >= 3.10, see modbus_server.py)"
        ),
        |m| {
            m.len() == n
                && m.iter().all(|(t, s)| {
                    if t == "py/missing" {
                        s.quality.reason() == Some(missing)
                    } else {
                        s.quality.is_good()
                    }
                })
        },
    )
    .await;
    let f = 123.456f32; // f32 registers stay single precision
    let expected = [
        ("py/u16", Value::U64(54321)),
        ("py/i16", Value::I64(-1234)),
        ("py/u32", Value::U64(3_000_000_000)),
        ("py/i32", Value::I64(-123_456_789)),
        ("py/f32_abcd", Value::F32(f)),
        ("py/f32_cdab", Value::F32(f)),
        ("py/f32_badc", Value::F32(f)),
        ("py/f32_dcba", Value::F32(f)),
        ("py/u32_cdab", Value::U64(0x1122_3344)),
        ("py/i32_dcba", Value::I64(-2)),
        ("py/level", Value::F64(25.0)),
        ("py/beef", Value::U64(0xBEEF)),
        ("py/in_u16", Value::U64(7)),
        ("py/in_f32", Value::F32(-1.5)),
        ("py/in_i16", Value::I64(-32768)),
        ("py/coil0", Value::Bool(true)),
        ("py/coil1", Value::Bool(false)),
        ("py/coil7", Value::Bool(true)),
        ("py/di0", Value::Bool(false)),
        ("py/di2", Value::Bool(true)),
    ];
    for (t, v) in expected {
        assert_eq!(hs.latest[t].value, v, "{t} (pymodbus {version})");
        assert_eq!(
            hs.latest[t].quality,
            Quality::Good,
            "{t} (pymodbus {version})"
        );
    }
    hs.stop(Duration::from_millis(500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pymodbus_client_reads_our_server() {
    let mut img = RegisterImage::with_sizes(10, 5, 4, 8);
    img.holding_registers[..2]
        .copy_from_slice(&encode_registers(RawValue::F32(123.456), Abcd).unwrap());
    img.holding_registers[2..4]
        .copy_from_slice(&encode_registers(RawValue::F32(123.456), Cdab).unwrap());
    img.holding_registers[4] = 0xFFFF;
    img.holding_registers[7] = 0x0102;
    img.input_registers.copy_from_slice(&[1, 2, 3, 65535]);
    for i in [0, 3, 9] {
        img.coils[i] = true;
    }
    img.discrete_inputs[4] = true;
    img.mark_unavailable(InputRegister, 2, 1);
    let (endpoint, _stop, _h) = start_server(img.shared()).await;
    let (host, port) = endpoint.rsplit_once(':').unwrap();
    let spec = r#"[["holding",0,8],["coil",0,10],["discrete",0,5],["input",0,2],["input",1,2],["holding",7,2],["coil",9,1]]"#;
    let mut cmd = Command::new(python());
    cmd.arg(peer("modbus_read.py"))
        .args([host, port, spec, "7"]);
    let stdout =
        tokio::task::spawn_blocking(move || run_bounded(&mut cmd, Duration::from_secs(30)))
            .await
            .unwrap();
    let got: serde_json::Value =
        serde_json::from_str(stdout.trim()).expect("modbus_read.py prints JSON");
    let want = serde_json::json!([
        {"table": "holding", "address": 0, "values": [0x42F6, 0xE979, 0xE979, 0x42F6, 0xFFFF, 0, 0, 0x0102]},
        {"table": "coil", "address": 0, "values": [true, false, false, true, false, false, false, false, false, true]},
        {"table": "discrete", "address": 0, "values": [false, false, false, false, true]},
        {"table": "input", "address": 0, "values": [1, 2]},
        {"table": "input", "address": 1, "exception": 11},
        {"table": "holding", "address": 7, "exception": 2},
        {"table": "coil", "address": 9, "values": [true]},
    ]);
    assert_eq!(got, want);
}

/// Our writes land in pymodbus's registers, checked with pymodbus's own client (so a word-order
/// or scaling mistake shared by our encoder and decoder cannot hide), and the poller publishes
/// the written value; refusals say why and send nothing; a write to a gone device fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_reach_pymodbus_server_and_refusals_send_nothing() {
    use mw_bus::WriteRegistry;
    use mw_modbus::config::WriteLimits;
    use mw_model::TagPath;

    let (server, port, version) = start_pymodbus_server();
    let writable = |mut t: mw_modbus::config::ModbusTag, max: Option<f64>| {
        t.write = Some(WriteLimits { min: None, max });
        t
    };
    let tags = vec![
        writable(tag("py/u16", HoldingRegister, 0, U16, Abcd), None),
        tag("py/i16", HoldingRegister, 1, I16, Abcd),
        writable(tag("py/f32_cdab", HoldingRegister, 8, F32, Cdab), None),
        writable(
            scaled(
                tag("py/level", HoldingRegister, 18, U16, Abcd),
                (0.0, 10000.0),
                (0.0, 100.0),
                "%",
            ),
            Some(80.0),
        ),
        writable(tag("py/coil1", Coil, 1, Bool, Abcd), None),
    ];
    let paths: Vec<TagPath> = tags
        .iter()
        .filter(|t| t.write.is_some())
        .map(|t| t.def.path.clone())
        .collect();
    let registry = WriteRegistry::new();
    let rx = registry.register("modbus/pymodbus", paths, 4).unwrap();
    let mut dev = device("pymodbus", format!("127.0.0.1:{port}"), tags);
    dev.timeout = Duration::from_millis(2000);
    dev.poll_interval = Duration::from_millis(200);
    let mut hs = spawn_with_writes(dev, rx);
    hs.wait_until(WAIT, "first good cycle", |m| {
        m.get("py/level").is_some_and(|s| s.quality.is_good())
    })
    .await;

    let t = |s: &str| TagPath::new(s).unwrap();
    let w = |tag: &str, v: Value| {
        let registry = registry.clone();
        let tag = t(tag);
        async move {
            registry
                .write(&tag, v, "test", Duration::from_secs(5))
                .await
        }
    };
    assert_eq!(w("py/u16", Value::U64(1234)).await, Ok(()));
    assert_eq!(w("py/f32_cdab", Value::F64(42.5)).await, Ok(()));
    assert_eq!(w("py/level", Value::F64(60.0)).await, Ok(()));
    assert_eq!(w("py/coil1", Value::Bool(true)).await, Ok(()));

    let refused = [
        (
            "py/level",
            Value::F64(90.0),
            "90 is above the tag's write_max 80",
        ),
        (
            "py/u16",
            Value::U64(70000),
            "70000 does not fit a u16 register (0..=65535)",
        ),
        (
            "py/u16",
            Value::F64(1.5),
            "a u16 tag takes whole numbers, not 1.5",
        ),
        (
            "py/coil1",
            Value::F64(0.5),
            "a bool tag takes true or false, not 0.5",
        ),
        (
            "py/f32_cdab",
            Value::string("hot"),
            "a f32 tag takes a number, not hot",
        ),
    ];
    for (tag, v, why) in refused {
        let e = w(tag, v.clone()).await.unwrap_err();
        assert_eq!(e.kind(), "refused", "{tag} {v}: {e}");
        assert!(e.to_string().ends_with(why), "{tag} {v}: {e}");
    }
    let e = w("py/i16", Value::I64(1)).await.unwrap_err();
    assert_eq!(e.kind(), "not_writable", "{e}");

    // What pymodbus holds now, read by its own client.
    let spec = r#"[["holding",0,2],["holding",8,2],["holding",18,1],["coil",0,2]]"#;
    let mut cmd = Command::new(python());
    cmd.arg(peer("modbus_read.py"))
        .args(["127.0.0.1", &port.to_string(), spec]);
    let stdout =
        tokio::task::spawn_blocking(move || run_bounded(&mut cmd, Duration::from_secs(30)))
            .await
            .unwrap();
    let got: serde_json::Value = serde_json::from_str(stdout.trim()).expect("JSON");
    // 42.5f32 = 0x422A_0000; cdab puts the low word first. i16 at 1 is untouched (-1234).
    let want = serde_json::json!([
        {"table": "holding", "address": 0, "values": [1234, 0xFB2E]},
        {"table": "holding", "address": 8, "values": [0x0000, 0x422A]},
        {"table": "holding", "address": 18, "values": [6000]},
        {"table": "coil", "address": 0, "values": [true, true]},
    ]);
    assert_eq!(got, want, "pymodbus {version}");

    hs.wait_until(WAIT, "the written values published", |m| {
        m.get("py/level")
            .is_some_and(|s| s.value == Value::F64(60.0))
            && m.get("py/f32_cdab")
                .is_some_and(|s| s.value == Value::F32(42.5))
            && m.get("py/u16").is_some_and(|s| s.value == Value::U64(1234))
            && m.get("py/coil1")
                .is_some_and(|s| s.value == Value::Bool(true))
    })
    .await;

    // The device goes away: a write fails with the reason, at once or within the timeout.
    drop(server);
    hs.wait_until(WAIT, "tags bad after the server is gone", |m| {
        m.get("py/level").is_some_and(|s| !s.quality.is_good())
    })
    .await;
    let e = w("py/level", Value::F64(10.0)).await.unwrap_err();
    assert_eq!(e.kind(), "failed", "{e}");
    assert!(e.to_string().contains("disconnected"), "{e}");
    hs.stop(Duration::from_millis(500)).await;
}
