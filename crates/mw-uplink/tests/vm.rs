//! The VictoriaMetrics uplink (`[[uplink]] url = "http://…"`) against a real `victoria-metrics`
//! (Debian package; ephemeral loopback port, own data directory, killed by pid): what the bus
//! commits is in VictoriaMetrics once per sample after an outage of the server (the buffer
//! keeps it meanwhile; a resent import is absorbed by `-dedup.minScrapeInterval`), single and
//! packed records alike; events are not taken. Skipped, with a message, when `victoria-metrics`
//! is not installed (scripts/setup-test-env.sh installs it).

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, sample, temp_dir, uplink};
use mw_bus::{Batch, BusBuilder, BusConfig, SourceRegistry};
use mw_model::{Event, EventKind};

const TAGS: usize = 3;

fn vm_bin() -> Option<&'static str> {
    [
        "/usr/bin/victoria-metrics",
        "/usr/local/bin/victoria-metrics",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
}

struct Vm {
    child: Child,
}

impl Vm {
    fn start(bin: &str, data: &Path, port: u16) -> Vm {
        let child = Command::new(bin)
            .arg(format!("-storageDataPath={}", data.display()))
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .args(["-dedup.minScrapeInterval=1ms", "-search.disableCache"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start victoria-metrics");
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "victoria-metrics did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Vm { child }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` over HTTP/1.0 (the body whole); no client library needed for two requests.
fn get(port: u16, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").expect("request");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("answer");
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

/// Every `mw_tag_value` point per tag: (ts ms, value), sorted.
fn points(port: u16) -> BTreeMap<String, Vec<(i64, f64)>> {
    get(port, "/internal/force_flush");
    let (status, body) = get(port, "/api/v1/export?match%5B%5D=mw_tag_value&start=0");
    assert_eq!(status, 200, "{body}");
    let mut got: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    for line in body.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).expect("export line");
        assert_eq!(v["metric"]["site"], "test");
        let e = got
            .entry(v["metric"]["tag"].as_str().expect("tag").to_owned())
            .or_default();
        let ts = v["timestamps"].as_array().expect("timestamps");
        for (t, x) in ts.iter().zip(v["values"].as_array().expect("values")) {
            e.push((t.as_i64().expect("ts"), x.as_f64().expect("value")));
        }
    }
    for p in got.values_mut() {
        p.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    }
    got
}

async fn forward_through_an_outage(pack: usize) {
    let Some(bin) = vm_bin() else {
        eprintln!(
            "SKIPPED: victoria-metrics is not installed (scripts/setup-test-env.sh installs it)"
        );
        return;
    };
    let dir = temp_dir(&format!("vm-uplink-{pack}"));
    let port = free_port();
    let mut vm = Some(Vm::start(bin, &dir.join("vm"), port));
    let toml = format!(
        "[[uplink]]\nname = \"v\"\nurl = \"http://127.0.0.1:{port}\"\nsite = \"test\"\npack = {pack}\nhold_ms = 3000\n\
         [uplink.buffer]\ndir = \"{}\"\nack_persist_ms = 100\n",
        dir.join("buf").display()
    );
    let sink = uplink(&toml);
    let (status, buffer) = (sink.status(), sink.buffer());
    let mut bus = BusBuilder::new(BusConfig::default());
    bus.sink(Box::new(sink));
    let p = bus.publisher();
    let running = bus.start(&SourceRegistry::new());
    // ms timestamps: VictoriaMetrics keeps milliseconds
    let base = (mw_model::now_ns() / 1_000_000 - 3_600_000) * 1_000_000;
    let n = 600u64;
    let ev = Event::new(
        base,
        "modbus/plc1",
        EventKind::ConnectionChange {
            up: true,
            reason: None,
        },
    );
    for i in 0..n {
        if i == n / 3 {
            vm = None; // the server goes away: records wait in the buffer
        }
        if i == 2 * n / 3 {
            vm = Some(Vm::start(bin, &dir.join("vm"), port));
        }
        let mut b = Batch::from_samples(
            (0..TAGS)
                // sample() adds i ns: this makes it i ms after `base`
                .map(|k| sample(k, i, base + i as i64 * 999_999))
                .collect(),
        );
        if i % 100 == 0 {
            b.events.push(ev.clone()); // not for VictoriaMetrics: the sink takes samples only
        }
        let a = p.send_with_ack(b).await.expect("send");
        assert!(a.outcome().await.is_committed(), "committed by the buffer");
    }
    let t = Instant::now();
    while buffer.stats().pending_records > 0 {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "not drained: {:?}",
            status.get()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let st = status.get();
    assert!(
        st.errors >= 1,
        "the outage broke at least one session: {st:?}"
    );
    assert!(st.acked_historical > 0, "the backlog drained: {st:?}");
    let got = points(port);
    assert_eq!(got.len(), TAGS, "{:?}", got.keys());
    for k in 0..TAGS {
        let tag = format!("plant/t{k}/v");
        let pts = &got[&tag];
        assert_eq!(pts.len() as u64, n, "{tag}: every sample once");
        for (i, (ts, v)) in pts.iter().enumerate() {
            let want_ts = base / 1_000_000 + i as i64;
            assert_eq!((*ts, *v), (want_ts, i as f64), "{tag} #{i}");
        }
    }
    drop(p);
    assert!(running.stop(Duration::from_secs(5)).await);
    drop(vm);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_reach_victoria_metrics_once_through_an_outage() {
    forward_through_an_outage(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packed_samples_reach_victoria_metrics_once_through_an_outage() {
    forward_through_an_outage(16).await;
}
