//! Central's throughput into VictoriaMetrics, one replica, against local `nats-server -js` and
//! `victoria-metrics` started here on loopback ports (killed at the end by pid). In one run:
//! * peer: the same samples imported straight into a second VictoriaMetrics with the same body
//!   (`/api/v1/import`, `batch` samples per request, one request at a time): what the sink
//!   takes without JetStream;
//! * central: the samples published first (the uplink's subjects, JSON and `Nats-Msg-Id`),
//!   then `mw_central::run` consumes them — fetch, import, ack each — timed until the consumer's
//!   ack floor reaches the last message; then the points in VictoriaMetrics are counted.
//!
//! `cargo run --release -p mw-central --example central_bench -- [--samples N] [--batch B]`
//! (bench/central.sh).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use mw_central::config::{Auth, CentralConfig, VmUrl};
use mw_model::{Sample, TagPath, Value};

const TAGS: usize = 100;

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn wait(port: u16) {
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "port {port} not listening"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn vm(dir: &std::path::Path, name: &str) -> (Kill, u16) {
    let p = port();
    let c = Command::new("/usr/bin/victoria-metrics")
        .arg(format!("-storageDataPath={}", dir.join(name).display()))
        .arg(format!("-httpListenAddr=127.0.0.1:{p}"))
        .arg("-dedup.minScrapeInterval=1ms")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("victoria-metrics");
    wait(p);
    (Kill(c), p)
}

fn samples(n: usize, base_ms: i64) -> Vec<Sample> {
    (0..n)
        .map(|i| {
            let tag = TagPath::new(&format!(
                "acme/plant1/area{}/pump{}/flow",
                (i % TAGS) / 10,
                i % 10
            ))
            .expect("tag");
            Sample::good(
                tag,
                Value::F64(i as f64 * 0.5),
                (base_ms + (i / TAGS) as i64) * 1_000_000,
            )
        })
        .collect()
}

async fn points(port: u16) -> usize {
    let c = reqwest_free_get(port, "/internal/force_flush").await;
    drop(c);
    let body = reqwest_free_get(port, "/api/v1/export?match%5B%5D=mw_tag_value&start=0").await;
    body.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| v["values"].as_array().map_or(0, |a| a.len()))
        .sum()
}

/// A GET with a plain TCP stream (HTTP/1.0, the whole answer).
async fn reqwest_free_get(port: u16, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.expect("read");
    let text = String::from_utf8_lossy(&out).into_owned();
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |k: &str, d: usize| {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let smoke = args.iter().any(|a| a == "--smoke");
    let n = arg("--samples", if smoke { 5_000 } else { 200_000 });
    let batch = arg("--batch", 500);
    let dir = std::env::temp_dir().join(format!("mw-central-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let base_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
        - 3_600_000;
    let all = samples(n, base_ms);
    let rows: Vec<mw_central::wire::SampleRow> = all
        .iter()
        .map(|s| mw_central::wire::SampleRow {
            site: "bench".into(),
            tag: s.tag.as_str().to_owned(),
            ts_ns: s.source_ts,
            value: s.value.as_f64(),
            quality: 0,
            unit: None,
        })
        .collect();

    // peer: straight into VictoriaMetrics
    let (_vm_peer, peer_port) = vm(&dir, "vm-peer");
    let mut client = mw_central::vm::VmClient::new(
        VmUrl::parse(&format!("http://127.0.0.1:{peer_port}")).expect("url"),
    );
    let t = Instant::now();
    for chunk in rows.chunks(batch) {
        client
            .import(mw_central::wire::vm_import(chunk))
            .await
            .expect("import");
    }
    let peer_rate = n as f64 / t.elapsed().as_secs_f64();

    // central
    let np = port();
    let _nats = Kill(
        Command::new("/usr/sbin/nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &np.to_string(), "-sd"])
            .arg(dir.join("nats"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server"),
    );
    wait(np);
    let (_vm, vm_port) = vm(&dir, "vm");
    let url = format!("nats://127.0.0.1:{np}");
    let js = jetstream::new(async_nats::connect(url.as_str()).await.expect("connect"));
    js.get_or_create_stream(jetstream::stream::Config {
        name: "MW_BENCH".into(),
        subjects: vec!["mw.bench.>".into()],
        storage: jetstream::stream::StorageType::File,
        ..Default::default()
    })
    .await
    .expect("stream");
    let t = Instant::now();
    let mut acks = std::collections::VecDeque::new();
    for (i, s) in all.iter().enumerate() {
        let (subject, body) =
            mw_uplink::wire::decode(&mw_uplink::wire::encode_sample("bench", s, None), false)
                .expect("record");
        let mut h = async_nats::HeaderMap::new();
        h.insert(
            "Nats-Msg-Id",
            mw_uplink::wire::msg_id("bench", i as u64 + 1).as_str(),
        );
        acks.push_back(
            js.publish_with_headers(subject, h, body.into())
                .await
                .expect("publish"),
        );
        if acks.len() >= 256 {
            acks.pop_front().expect("ack").await.expect("PubAck");
        }
    }
    for a in acks {
        a.await.expect("PubAck");
    }
    let publish_rate = n as f64 / t.elapsed().as_secs_f64();

    let cfg = CentralConfig {
        urls: vec![url.clone()],
        auth: Auth::None,
        tls: None,
        streams: vec!["MW_BENCH".into()],
        filter_subject: None,
        consumer: "millwright-central".into(),
        batch,
        ack_wait: Duration::from_secs(30),
        max_deliver: 0,
        victoria_metrics: VmUrl::parse(&format!("http://127.0.0.1:{vm_port}")).expect("url"),
        postgres: None,
        postgres_password_file: None,
        postgres_tls: None,
        metrics_address: None,
    };
    let js2 = js.clone();
    let done = async move {
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let Ok(s) = js2.get_stream("MW_BENCH").await else {
                continue;
            };
            let Ok(c) = s
                .get_consumer::<jetstream::consumer::pull::Config>("millwright-central")
                .await
            else {
                continue;
            };
            if let Ok(i) = c.get_info().await
                && i.ack_floor.stream_sequence == n as u64
            {
                return;
            }
        }
    };
    let t = Instant::now();
    mw_central::run(cfg, None, done).await.expect("central");
    let central_rate = n as f64 / t.elapsed().as_secs_f64();
    let stored = points(vm_port).await;
    println!("samples: {n}, batch: {batch}");
    println!("JetStream publish (setup):                {publish_rate:>10.0} msg/s");
    println!("peer: VictoriaMetrics import, no JetStream: {peer_rate:>10.0} samples/s");
    println!("central: JetStream → VictoriaMetrics, acked: {central_rate:>10.0} samples/s");
    println!("ratio central / peer: {:.2}", central_rate / peer_rate);
    println!("points in VictoriaMetrics after central: {stored} (sent {n})");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(stored, n, "VictoriaMetrics holds what was sent");
}
