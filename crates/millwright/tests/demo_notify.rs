//! `millwright demo --webhook URL`: a gas release injected at gd1 raises the critical
//! `gas:hihi` alarm, and the webhook (a minimal HTTP/1.1 receiver on 127.0.0.1:0 in this test)
//! receives it as a JSON POST with the alarm's fields. Prints the time from the alarm's
//! transition (`ts`) to the POST's arrival; no threshold is asserted (shared machines).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value as J, json};

const GD1_GAS: &str = "acme/plant1/utilities/compressor_house/gd1/gas";

/// Accepts connections on `l` (one thread), answers every request 200 and sends each JSON body
/// with its arrival time (ns since the epoch) to the returned channel.
fn receiver(l: TcpListener) -> mpsc::Receiver<(J, i64)> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len.min(1 << 20)];
            if r.read_exact(&mut body).is_err() {
                continue;
            }
            let arrived = mw_model::now_ns();
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            if let Ok(j) = serde_json::from_slice(&body)
                && tx.send((j, arrived)).is_err()
            {
                return;
            }
        }
    });
    rx
}

#[test]
fn demo_posts_the_critical_gas_alarm_to_the_webhook() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/alarms", l.local_addr().unwrap());
    let rx = receiver(l);
    let mut demo = start_demo(
        "demo-notify",
        &["--webhook", &url, "--poll-interval", "100"],
    );
    demo.proc.wait_line(
        "Notifying critical and high alarms",
        Duration::from_secs(10),
    );
    wait_ready(&demo.http, Duration::from_secs(30));
    let r = post_json(
        &demo.http,
        "/api/v1/sim/faults",
        &json!({"asset": "gd1", "kind": "gas_release", "duration_s": 600}),
    )
    .expect("POST fault");
    assert_eq!(r.status, 201, "{}", r.text());
    let deadline = Instant::now() + Duration::from_secs(45);
    let mut seen = Vec::new();
    let (j, arrived) = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((j, at)) => {
                if j["tag"] == GD1_GAS && j["priority"] == "critical" && j["to"] == "unack_active" {
                    break (j, at);
                }
                seen.push(j);
            }
            Err(_) => panic!(
                "no critical gd1 notification within 45 s; got {seen:?}\n{}",
                demo.proc.report()
            ),
        }
    };
    assert_eq!(j["type"], "alarm", "{j}");
    assert_eq!(j["from"], "normal", "{j}");
    assert_eq!(j["escalation"], 0, "{j}");
    assert!(j["alarm"].as_str().unwrap().ends_with(":hihi"), "{j}");
    assert!(j["value"].as_f64().unwrap() >= 20.0, "{j}");
    assert!(!j["message"].as_str().unwrap().is_empty(), "{j}");
    assert!(!j["site"].as_str().unwrap().is_empty(), "{j}");
    // every notification the demo sent is at least high
    for o in &seen {
        assert!(
            o["priority"] == "critical" || o["priority"] == "high" || o["type"] == "suppressed",
            "{o}"
        );
    }
    // the delivery is counted (the counter moves once the 2xx answer is in: wait, bounded)
    let sent = wait_for("mw_notify_sent_total", Duration::from_secs(10), || {
        let m = get(&demo.http, "/metrics")?.text();
        m.lines()
            .find(|l| l.starts_with("mw_notify_sent_total{") && l.contains("target=\"demo\""))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .filter(|n| *n >= 1.0)
            .ok_or_else(|| "not yet".to_owned())
    });
    assert!(sent >= 1.0);
    let ts = parse_rfc3339_ns(j["ts"].as_str().unwrap()).expect("RFC 3339 ts");
    println!(
        "transition → webhook POST arrival: {:.1} ms",
        (i128::from(arrived) - ts) as f64 / 1e6
    );
}
