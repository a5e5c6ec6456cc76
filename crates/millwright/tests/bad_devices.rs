//! `millwright run` with one good device and three failing ones (connection refused, Modbus
//! exceptions, never answers): each failure shows as bad quality with its own reason, the good
//! device is not disturbed, readiness still comes, and the process shuts down cleanly.
//! Config: tests/data/bad-devices/config.toml.tmpl with ephemeral endpoints filled in.

mod common;

use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use common::*;
use serde_json::Value as J;

/// A TCP server that accepts connections and never answers (keeps them open until dropped).
struct SilentServer {
    addr: String,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SilentServer {
    fn start() -> SilentServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind silent server");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr").to_string();
        let (accepted, stop) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (n, halt) = (accepted.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut held: Vec<TcpStream> = Vec::new();
            while !halt.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        held.push(s);
                        n.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        SilentServer {
            addr,
            accepted,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A loopback port nobody listens on (bound, then released).
fn refused_addr() -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("local addr").to_string()
}

fn reason(t: &J) -> String {
    t["reason"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn bad_devices_go_bad_with_their_reason_and_the_good_one_keeps_going() {
    let mut sim = Proc::millwright(&["sim", "--modbus", "127.0.0.1:0", "--fault-interval", "0"]);
    let sim_addr = addr_after(
        &sim.wait_line("Modbus TCP on ", Duration::from_secs(10)),
        "Modbus TCP on ",
    );
    let silent = SilentServer::start();
    let refused = refused_addr();

    let dir = TempDir::new("bad-devices");
    let template_path = root().join("tests/data/bad-devices/config.toml.tmpl");
    let template = std::fs::read_to_string(&template_path)
        .unwrap_or_else(|e| panic!("{}: {e}", template_path.display()));
    let config = template
        .replace("@SIM@", &sim_addr.to_string())
        .replace("@REFUSED@", &refused)
        .replace("@SILENT@", &silent.addr)
        .replace("@DATA@", dir.path.to_str().expect("utf-8 temp path"));
    let config_path = dir.path.join("config.toml");
    std::fs::write(&config_path, &config).expect("write config");
    let config_arg = config_path.to_str().expect("utf-8 temp path");

    let (st, out, err) = run_to_end(&["check", "--config", config_arg], Duration::from_secs(10));
    assert!(
        st.success(),
        "generated config is invalid:\n{out}\n{err}\n{config}"
    );

    // `run` has no demo login: the API is read with a viewer's API token
    let data_arg = dir.path.to_str().expect("utf-8 temp path");
    let (st, token, err) = run_to_end(
        &[
            "token",
            "create",
            "--role",
            "viewer",
            "--name",
            "test",
            "--expires",
            "1h",
            "--data-dir",
            data_arg,
        ],
        Duration::from_secs(10),
    );
    assert!(st.success(), "token create: {err}");
    let mut mw = Proc::millwright(&["run", "--config", config_arg]);
    let line = mw.wait_line("web UI at http://", Duration::from_secs(10));
    assert!(line.contains("serving 8 tag(s) from 4 device(s)"), "{line}");
    let http = http_addr_from(&line);
    register_token(&http, token.trim());
    wait_ready(&http, Duration::from_secs(10));

    // /ready counts completed cycles; their samples reach the live store through the bus a moment
    // later, so wait (bounded) for the expected qualities.
    let expect: [(&str, &[&str]); 4] = [
        ("test/refused/value", &["refused"]),
        (
            "test/exception/holding",
            &["modbus exception", "illegal data address"],
        ),
        (
            "test/exception/coil",
            &["modbus exception", "illegal data address"],
        ),
        ("test/silent/value", &["timeout after 300 ms"]),
    ];
    let first = wait_for(
        "every tag to show its expected quality",
        Duration::from_secs(10),
        || {
            let tags = tags_by_path(&http);
            let mut wrong = Vec::new();
            for (path, words) in expect {
                let t = &tags[path];
                let r = reason(t);
                if t["quality"] != "bad" || !words.iter().all(|w| r.contains(w)) {
                    wrong.push(format!("{path}: {t}"));
                }
            }
            for (path, t) in tags.iter().filter(|(p, _)| p.starts_with("acme/")) {
                if t["quality"] != "good" {
                    wrong.push(format!("{path}: {t}"));
                }
            }
            if wrong.is_empty() {
                Ok(tags)
            } else {
                Err(wrong.join("; "))
            }
        },
    );
    assert_eq!(first.len(), 8, "{:?}", first.keys().collect::<Vec<_>>());
    for (path, _) in expect {
        // never read successfully, so no last good value to carry: the neutral value
        // (NaN, served as null, for numbers; false for bools)
        let neutral = if path.ends_with("/coil") {
            J::Bool(false)
        } else {
            J::Null
        };
        assert_eq!(first[path]["value"], neutral, "{}", first[path]);
        assert!(
            parse_rfc3339_ns(first[path]["ts"].as_str().unwrap_or("")).is_some(),
            "{}",
            first[path]
        );
    }
    assert!(
        reason(&first["test/refused/value"]).contains("connection"),
        "{}",
        first["test/refused/value"]
    );
    assert!(
        silent.accepted.load(Ordering::Relaxed) >= 1,
        "the poller never connected to the silent device"
    );

    // The good device keeps updating (polls every 200 ms) while the others keep failing.
    std::thread::sleep(Duration::from_millis(1000));
    let second = tags_by_path(&http);
    let vib = "acme/plant1/utilities/water/pump1/vibration";
    for path in [
        "acme/plant1/utilities/water/pump1/vibration",
        "acme/plant1/utilities/compressor_house/gd1/gas",
    ] {
        let (a, b) = (&first[path], &second[path]);
        assert_eq!(b["quality"], "good", "{b}");
        let (ta, tb) = (
            parse_rfc3339_ns(a["ts"].as_str().unwrap_or("")),
            parse_rfc3339_ns(b["ts"].as_str().unwrap_or("")),
        );
        assert!(ta.is_some() && tb > ta, "{path} did not update: {a} → {b}");
    }
    assert!(
        second[vib]["value"]
            .as_f64()
            .is_some_and(|v| v > 0.5 && v < 20.0),
        "{}",
        second[vib]
    );
    assert_eq!(
        second["acme/plant1/utilities/water/pump1/running"]["value"],
        true
    );
    for (path, words) in expect {
        let t = &second[path];
        assert_eq!(t["quality"], "bad", "{t}");
        assert!(words.iter().all(|w| reason(t).contains(w)), "{t}");
        let (ta, tb) = (
            parse_rfc3339_ns(first[path]["ts"].as_str().unwrap_or("")),
            parse_rfc3339_ns(t["ts"].as_str().unwrap_or("")),
        );
        assert!(
            tb > ta,
            "{path}: bad samples should keep coming every poll: {} → {}",
            first[path],
            t
        );
    }

    // Device states: the exception device answers (up); refused and silent are down.
    let sources = get_json(&http, "/api/v1/sources");
    let state = |name: &str| -> J {
        sources["sources"]
            .as_array()
            .and_then(|l| l.iter().find(|s| s["instance"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("no source {name}: {sources}"))
    };
    assert_eq!(state("good")["state"], "up", "{sources}");
    assert_eq!(state("exception")["state"], "up", "{sources}");
    assert_eq!(state("refused")["state"], "down", "{sources}");
    assert_eq!(state("silent")["state"], "down", "{sources}");
    assert!(
        state("silent")["reason"]
            .as_str()
            .is_some_and(|r| r.contains("timeout")),
        "{sources}"
    );

    assert!(
        mw.try_status().is_none(),
        "millwright exited\n{}",
        mw.report()
    );
    assert!(get(&http, "/health").is_ok_and(|r| r.status == 200));
    mw.sigterm();
    let status = mw.wait_exit(Duration::from_secs(2));
    assert!(
        status.is_some_and(|s| s.success()),
        "exit after SIGTERM: {status:?}\n{}",
        mw.report()
    );
    sim.sigterm();
    let status = sim.wait_exit(Duration::from_secs(2));
    assert!(
        status.is_some_and(|s| s.success()),
        "sim exit after SIGTERM: {status:?}\n{}",
        sim.report()
    );
}
