//! `millwright demo` with the real alarm engine behind the web API: a gas release injected at
//! gd1 raises the critical `gas:hihi` alarm on the SSE stream (`/api/v1/alarms/stream`), in the
//! list and on the overview's banner; an operator acknowledges it through the API, and the
//! change shows on the stream, in the history and in the audit trail. Bad actions are refused
//! with clear 4xx answers and recorded nowhere.
//!
//! Prints the latency from the causing sample's receive timestamp (the transition's `ts_ns`) to
//! the event's arrival at this SSE client; no threshold is asserted (shared machines).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use serde_json::{Value as J, json};

const GD1_GAS: &str = "acme/plant1/utilities/compressor_house/gd1/gas";

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// One Server-Sent Event as this client received it.
#[derive(Debug)]
struct SseEvent {
    event: String,
    data: String,
    /// Wall clock at arrival, ns since the epoch.
    arrived_ns: i64,
}

/// Decodes a chunked body (HTTP/1.1 `Transfer-Encoding: chunked`), sending each chunk to `tx`.
fn dechunk(mut r: impl BufRead, tx: mpsc::Sender<Vec<u8>>) {
    loop {
        let mut size = String::new();
        if r.read_line(&mut size).unwrap_or(0) == 0 {
            return;
        }
        let Ok(n) = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16) else {
            return;
        };
        if n == 0 {
            return;
        }
        let mut buf = vec![0; n + 2]; // the chunk and its CRLF
        if r.read_exact(&mut buf).is_err() {
            return;
        }
        buf.truncate(n);
        if tx.send(buf).is_err() {
            return;
        }
    }
}

/// Opens the alarm stream with `token`; returns the events as they arrive (a reader thread
/// parses them; it ends when the server closes the stream or the receiver is dropped).
fn open_stream(http: &str, token: &str) -> Receiver<SseEvent> {
    let mut s = TcpStream::connect(http).expect("connect for the stream");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "GET /api/v1/alarms/stream HTTP/1.1\r\nHost: {http}\r\nAuthorization: Bearer {token}\r\n\
         Accept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).expect("stream head");
        if line == "\r\n" || line.is_empty() {
            break;
        }
        head.push_str(&line);
    }
    assert!(head.starts_with("HTTP/1.1 200"), "stream refused: {head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("content-type: text/event-stream"), "{head}");
    let chunked = lower.contains("transfer-encoding: chunked");
    let (bytes_tx, bytes_rx) = mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        if chunked {
            dechunk(r, bytes_tx);
        } else {
            let mut buf = [0u8; 4096];
            while let Ok(n) = r.read(&mut buf) {
                if n == 0 || bytes_tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        }
    });
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        while let Ok(bytes) = bytes_rx.recv() {
            let arrived_ns = now_ns();
            text.push_str(&String::from_utf8_lossy(&bytes));
            while let Some(end) = text.find("\n\n") {
                let frame: String = text.drain(..end + 2).collect();
                let mut ev = SseEvent {
                    event: String::new(),
                    data: String::new(),
                    arrived_ns,
                };
                for l in frame.lines() {
                    if let Some(v) = l.strip_prefix("event: ") {
                        ev.event = v.to_owned();
                    } else if let Some(v) = l.strip_prefix("data: ") {
                        ev.data.push_str(v);
                    }
                }
                if !ev.event.is_empty() && tx.send(ev).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

/// Waits (bounded) for a `transition` whose JSON satisfies `want`; returns it and its arrival.
fn wait_transition(
    rx: &Receiver<SseEvent>,
    what: &str,
    timeout: Duration,
    want: impl Fn(&J) -> bool,
) -> (J, i64) {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ev = rx.recv_timeout(left).unwrap_or_else(|e| {
            panic!("no {what} on the alarm stream within {timeout:?} ({e}); saw {seen:#?}")
        });
        if ev.event != "transition" {
            seen.push(format!("{}: {}", ev.event, ev.data));
            continue;
        }
        let j: J = serde_json::from_str(&ev.data).unwrap_or_else(|e| panic!("{e}: {}", ev.data));
        if want(&j) {
            return (j, ev.arrived_ns);
        }
        seen.push(format!("{} {} -> {}", j["alarm"], j["from"], j["to"]));
    }
}

#[test]
fn gas_release_raises_a_critical_alarm_on_the_stream_and_an_ack_is_seen_everywhere() {
    let demo = start_demo(
        "demo-alarms",
        &[
            "--seed",
            "3",
            "--fault-interval",
            "0",
            "--poll-interval",
            "100",
        ],
    );
    let http = demo.http.clone();
    wait_ready(&http, Duration::from_secs(20));
    let hihi = format!("{GD1_GAS}:hihi");

    // The demo configures the gas alarms; on clean air gd1's danger alarm is normal.
    let (s, j) = {
        let r = get(&http, "/api/v1/alarms?state=normal").expect("GET alarms");
        (r.status, r.json())
    };
    assert_eq!(s, 200, "{j}");
    let normal: Vec<&str> = j["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert!(
        normal.contains(&hihi.as_str()),
        "{hihi} not normal at start: {j}"
    );

    let stream = open_stream(&http, &demo.token);
    let r = post_json(
        &http,
        "/api/v1/sim/faults",
        &json!({"asset": "gd1", "kind": "gas_release", "duration_s": 600}),
    )
    .expect("POST fault");
    assert_eq!(r.status, 201, "{}", r.text());

    // The critical alarm arrives on the stream.
    let (t, arrived) = wait_transition(
        &stream,
        "gd1 gas:hihi raised",
        Duration::from_secs(30),
        |j| j["alarm"] == hihi.as_str() && j["to"] == "unack_active",
    );
    assert_eq!(t["priority"], "critical", "{t}");
    assert_eq!(t["from"], "normal", "{t}");
    assert_eq!(t["tag"], GD1_GAS, "{t}");
    assert_eq!(t["action"], "", "raised by the process: {t}");
    let value = t["value"]
        .as_f64()
        .unwrap_or_else(|| panic!("no value: {t}"));
    assert!(
        value >= 20.0,
        "danger limit is 20 %LEL, raised at {value}: {t}"
    );
    let ts_ns = t["ts_ns"].as_i64().expect("ts_ns");
    let latency_ms = (arrived - ts_ns) as f64 / 1e6;
    println!(
        "alarm latency, sample receive timestamp -> SSE event at the client: {latency_ms:.1} ms \
         ({hihi} at {value:.1} %LEL)"
    );
    assert!(
        latency_ms > -1000.0,
        "the event cannot precede its sample by a second: {latency_ms}"
    );

    // The list, the console and the overview's banner show it.
    let j = get_json(&http, "/api/v1/alarms?priority=critical");
    let a = j["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == hihi.as_str())
        .unwrap_or_else(|| panic!("{hihi} not listed as critical: {j}"))
        .clone();
    assert_eq!(a["state"], "unack_active", "{a}");
    assert_eq!(a["kind"], "hihi", "{a}");
    assert_eq!(
        a["asset"], "acme/plant1/utilities/compressor_house/gd1",
        "{a}"
    );
    assert!(
        a["raised_at"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{a}"
    );
    let overview = get(&http, "/").expect("GET /").text();
    assert!(
        overview.contains("<a id=alarmbanner href='/alarms' class='banner'>"),
        "banner not shown: {overview}"
    );
    assert!(
        overview.contains("unacknowledged critical alarm"),
        "{overview}"
    );
    assert!(
        overview.contains(
            "<section class='asset critical unack' data-asset='acme/plant1/utilities/compressor_house/gd1'>"
        ),
        "gd1 not coloured critical: {overview}"
    );
    let console = get(&http, "/alarms").expect("GET /alarms").text();
    assert!(console.contains(&format!("data-id='{hihi}'")), "{console}");

    // Acknowledge it through the API.
    let ack = format!("/api/v1/alarms/{hihi}/ack");
    let r = post_json(&http, &ack, &json!({"comment": "evacuation started (e2e)"})).expect("ack");
    assert_eq!(r.status, 200, "{}", r.text());
    let done = r.json();
    assert_eq!(done["transition"]["from"], "unack_active", "{done}");
    assert_eq!(done["transition"]["to"], "ack_active", "{done}");
    let (t, _) = wait_transition(
        &stream,
        "the acknowledgement",
        Duration::from_secs(10),
        |j| j["alarm"] == hihi.as_str() && j["action"] == "acknowledge",
    );
    assert_eq!(t["to"], "ack_active", "{t}");
    assert_eq!(t["user"], "demo-admin", "{t}");
    assert_eq!(t["comment"], "evacuation started (e2e)", "{t}");

    // Bad actions: 409 / 404 / 400, with a clear message.
    let r = post_json(&http, &ack, &json!({})).expect("second ack");
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.text().contains("already acknowledged"), "{}", r.text());
    let r = post_json(
        &http,
        "/api/v1/alarms/acme/plant1/nowhere/gas:hihi/ack",
        &json!({}),
    )
    .expect("ack unknown");
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(r.text().contains("unknown alarm"), "{}", r.text());
    let r = post_json(
        &http,
        &format!("/api/v1/alarms/{hihi}/shelve"),
        &json!({"duration_s": -60, "reason": "test"}),
    )
    .expect("shelve negative");
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("duration_s"), "{}", r.text());
    let r = request(
        &http,
        "POST",
        &format!("/api/v1/alarms/{hihi}/oos"),
        Some("{\"reason\":"),
    )
    .expect("malformed");
    assert_eq!(r.status, 400, "{}", r.text());

    // The history has the raise and exactly one acknowledgement, newest first.
    let h = get_json(&http, &format!("/api/v1/alarms/history?alarm={hihi}"));
    let recs = h["records"].as_array().unwrap();
    let acks: Vec<&J> = recs
        .iter()
        .filter(|r| r["action"] == "acknowledge")
        .collect();
    assert_eq!(acks.len(), 1, "one acknowledgement recorded: {h}");
    assert_eq!(acks[0]["user"], "demo-admin", "{h}");
    assert_eq!(acks[0]["comment"], "evacuation started (e2e)", "{h}");
    assert_eq!(
        (acks[0]["from"].as_str(), acks[0]["to"].as_str()),
        (Some("unack_active"), Some("ack_active")),
        "{h}"
    );
    assert!(
        recs.iter()
            .any(|r| r["from"] == "normal" && r["to"] == "unack_active" && r["action"] == ""),
        "the raise is in the history: {h}"
    );
    assert_eq!(recs[0]["action"], "acknowledge", "newest first: {h}");
    // ... and it is no longer among the unacknowledged criticals
    let j = get_json(
        &http,
        "/api/v1/alarms?priority=critical&state=unack_active,rtn_unack",
    );
    assert!(
        !j["alarms"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == hihi.as_str()),
        "{j}"
    );

    // The audit trail has the accepted and the refused acknowledgement.
    let audit = wait_for(
        "alarm actions in the audit trail",
        Duration::from_secs(10),
        || {
            let j = get_json(&http, "/api/v1/audit?limit=1000");
            let recs: Vec<J> = j["records"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|r| r["action"] == "alarm_acknowledge" && r.to_string().contains(&hihi))
                .collect();
            if recs.len() >= 2 {
                Ok(recs)
            } else {
                Err(format!("{j}"))
            }
        },
    );
    let outcomes: Vec<&str> = audit
        .iter()
        .map(|r| r["outcome"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(outcomes, vec!["ok", "refused"], "{audit:?}");
    assert!(
        audit.iter().all(|r| r["actor"]
            .as_str()
            .is_some_and(|a| a.contains("demo-admin"))),
        "{audit:?}"
    );

    // KPIs count the activation.
    let k = get_json(&http, "/api/v1/alarms/kpi?window_s=3600");
    assert!(k["standing"].as_u64().unwrap_or(0) >= 1, "{k}");
    assert!(
        k["top10"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["alarm"] == hihi.as_str()),
        "{k}"
    );
}

const VIBRATION: &str = "acme/plant1/utilities/water/pump1/vibration";

/// Bearing wear injected on the pump (the simulator at 120x, so the vibration climbs through
/// both limits within seconds): the demo's HI (4.5 mm/s, deadband 0.3, on-delay 5 s) is raised
/// once and before HIHI (7.1 mm/s, on-delay 2 s), neither chatters on the noise, and each was
/// raised only after its condition had held for its on-delay (checked against the stored samples).
#[test]
fn pump_bearing_wear_raises_hi_before_hihi_without_chattering_after_the_on_delays() {
    let demo = start_demo(
        "demo-alarms-pump",
        &[
            "--seed",
            "3",
            "--fault-interval",
            "0",
            "--poll-interval",
            "100",
            "--speed",
            "120",
        ],
    );
    let http = demo.http.clone();
    wait_ready(&http, Duration::from_secs(20));
    let hi = format!("{VIBRATION}:hi");
    let hihi = format!("{VIBRATION}:hihi");
    let stream = open_stream(&http, &demo.token);
    let r = post_json(
        &http,
        "/api/v1/sim/faults",
        &json!({"asset": "pump1", "kind": "bearing_wear", "duration_s": 36000}),
    )
    .expect("POST fault");
    assert_eq!(r.status, 201, "{}", r.text());

    // Every transition of the two vibration alarms until HIHI is raised.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen: Vec<J> = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ev = stream
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("no HIHI within 120 s ({e}); saw {seen:#?}"));
        if ev.event == "lagged" {
            panic!("the stream lagged: {}", ev.data);
        }
        if ev.event != "transition" {
            continue;
        }
        let j: J = serde_json::from_str(&ev.data).unwrap();
        if j["alarm"] != hi.as_str() && j["alarm"] != hihi.as_str() {
            continue;
        }
        let done = j["alarm"] == hihi.as_str() && j["to"] == "unack_active";
        seen.push(j);
        if done {
            break;
        }
    }
    let steps: Vec<(String, String, String)> = seen
        .iter()
        .map(|j| {
            let s = |k: &str| j[k].as_str().unwrap_or("").to_owned();
            (s("alarm"), s("from"), s("to"))
        })
        .collect();
    // HI once, then HIHI; no return (no chattering on the noise), no suppression on the way
    assert_eq!(
        steps,
        vec![
            (hi.clone(), "normal".into(), "unack_active".into()),
            (hihi.clone(), "normal".into(), "unack_active".into()),
        ],
        "{seen:#?}"
    );
    let raised_hi = seen[0]["ts_ns"].as_i64().unwrap();
    let raised_hihi = seen[1]["ts_ns"].as_i64().unwrap();
    assert!(raised_hi < raised_hihi, "{seen:#?}");
    assert!(seen[0]["value"].as_f64().unwrap() >= 4.5, "{seen:#?}");
    assert!(seen[1]["value"].as_f64().unwrap() >= 7.1, "{seen:#?}");

    // The on-delays: the stored samples of the seconds before each raise were all in alarm
    // (without the delay the alarm would come with the first sample over the limit, while
    // the ones just before it were still below). 0.5 s of margin for source vs receive time.
    let samples = |from: i64, to: i64| -> Vec<f64> {
        let q = get_json(
            &http,
            &format!("/api/v1/query?tag={VIBRATION}&from={from}&to={}", to + 1),
        );
        q["points"]
            .as_array()
            .unwrap_or_else(|| panic!("{q}"))
            .iter()
            .filter_map(|p| p[1].as_f64())
            .collect()
    };
    for (raised, limit, delay_s) in [(raised_hi, 4.5, 5), (raised_hihi, 7.1, 2)] {
        let held = samples(raised - delay_s * 1_000_000_000 + 500_000_000, raised);
        assert!(held.len() >= 10, "{delay_s} s at a 100 ms poll: {held:?}");
        assert!(
            held.iter().all(|v| *v >= limit),
            "raised at {raised} before {limit} held for {delay_s} s: {held:?}"
        );
    }
    // and the value went over the HI limit well before HI was raised
    let before = samples(raised_hi - 10_000_000_000, raised_hi - 5_000_000_000);
    assert!(before.iter().any(|v| *v < 4.5), "{before:?}");
}

/// A gas release at gd1 and gd2 together: two of the compressor house's three detectors vote,
/// and the area's evacuation alarm (critical) comes on the stream; then the demo is killed
/// (SIGKILL) while it is active and the gd1 warning is shelved, and restarted on the same data:
/// the evacuation alarm is still unacknowledged, the warning still shelved until the same
/// time, and the journal has both from before.
#[test]
fn evacuation_vote_and_a_kill_during_active_and_shelved_alarms_keep_state_and_journal() {
    let demo = start_demo(
        "demo-alarms-vote",
        &[
            "--seed",
            "3",
            "--fault-interval",
            "0",
            "--poll-interval",
            "100",
        ],
    );
    let http = demo.http.clone();
    wait_ready(&http, Duration::from_secs(20));
    let evac = "acme/plant1/utilities/compressor_house:evacuation";
    let warning = format!("{GD1_GAS}:hi");
    let stream = open_stream(&http, &demo.token);
    for gd in ["gd1", "gd2"] {
        let r = post_json(
            &http,
            "/api/v1/sim/faults",
            &json!({"asset": gd, "kind": "gas_release", "duration_s": 600}),
        )
        .expect("POST fault");
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let (t, _) = wait_transition(
        &stream,
        "the evacuation alarm",
        Duration::from_secs(60),
        |j| j["alarm"] == evac && j["to"] == "unack_active",
    );
    assert_eq!(t["priority"], "critical", "{t}");
    assert!(t["value"].as_f64().unwrap_or(0.0) >= 2.0, "{t}");
    assert!(
        t["message"].as_str().unwrap_or("").contains("EVACUATE"),
        "{t}"
    );

    let r = post_json(
        &http,
        &format!("/api/v1/alarms/{warning}/shelve"),
        &json!({"duration_s": 3600, "reason": "bump test (e2e)"}),
    )
    .expect("shelve");
    assert_eq!(r.status, 200, "{}", r.text());
    let until = get_json(&http, "/api/v1/alarms?state=shelved")["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == warning.as_str())
        .map(|a| a["shelved_until"].clone())
        .expect("shelved");
    assert!(until.is_string(), "{until}");

    let common::Demo { mut proc, data, .. } = demo;
    proc.kill9();
    let demo = start_demo_in(data, &["--fault-interval", "0", "--poll-interval", "100"]);
    let http = demo.http;
    wait_ready(&http, Duration::from_secs(20));
    let all = get_json(&http, "/api/v1/alarms");
    let find = |id: &str| {
        all["alarms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} not listed after the restart: {all}"))
    };
    // unacknowledged survives (the fresh simulator has clean air, so it may have returned)
    let e = find(evac);
    assert!(
        e["state"] == "unack_active" || e["state"] == "rtn_unack",
        "{e}"
    );
    let w = find(&warning);
    assert_eq!(w["state"], "shelved", "{w}");
    assert_eq!(w["shelved_until"], until, "{w}");
    let h = get_json(&http, "/api/v1/alarms/history?limit=10000");
    let recs = h["records"].as_array().unwrap();
    assert!(
        recs.iter()
            .any(|r| r["alarm"] == evac && r["from"] == "normal" && r["to"] == "unack_active"),
        "the evacuation's raise is in the journal: {h}"
    );
    let shelves: Vec<&J> = recs
        .iter()
        .filter(|r| r["alarm"] == warning.as_str() && r["action"] == "shelve")
        .collect();
    assert_eq!(shelves.len(), 1, "{h}");
    assert_eq!(shelves[0]["comment"], "bump test (e2e)", "{h}");
}
