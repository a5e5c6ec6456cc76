//! Uplink benchmark against a local `nats-server -js` (started here on a free loopback port with
//! its own store directory, killed by pid at the end):
//!
//! * **raw**: async-nats alone publishes N messages of the uplink's size and headers to a
//!   JetStream stream, `window` PubAcks outstanding, as fast as it can (what `nats bench js pub`
//!   measures, in-process);
//! * **uplink drain**: N samples are buffered first (mw-buffer, `sync = always`, batches of 1000
//!   per append — the bus sink's path), then the forwarder drains the backlog to another stream
//!   with the same window; the rate counts buffer records PubAck'd and acknowledged.
//!
//! With `--pack P` every message (raw and uplink alike) carries P samples, as `[[uplink]] pack`
//! sends them (`wire::encode_pack`); N counts samples. Prints both rates and their ratio.
//!
//!   cargo run --release -p mw-uplink --example uplink_bench -- [--records N] [--pack P] [--window W] [--smoke]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, message::PublishMessage, stream};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use mw_buffer::{Buffer, FullPolicy, Options, Sync};
use mw_model::{Sample, TagPath, Value};
use mw_storage::storage::FsStorage;
use mw_uplink::forward::{self, Credentials, ForwarderConfig, StatusHandle};
use mw_uplink::wire;

fn arg(name: &str) -> Option<u64> {
    let a: Vec<String> = std::env::args().collect();
    a.iter()
        .position(|x| x == name)
        .and_then(|i| a.get(i + 1))
        .and_then(|v| v.parse().ok())
}

fn sample(i: u64, base: i64) -> Sample {
    let tag =
        TagPath::new(&format!("acme/plant1/area{}/pump{}/flow", i % 10, i % 1000)).expect("tag");
    Sample::good(tag, Value::F64(i as f64 * 0.25), base + i as i64)
}

#[tokio::main]
async fn main() {
    let smoke = std::env::args().any(|a| a == "--smoke");
    let base = 1_700_000_000_000_000_000i64;
    let site = "bench";
    let n = arg("--records").unwrap_or(if smoke { 5_000 } else { 200_000 });
    let window = arg("--window").unwrap_or(256) as usize;
    let pack = arg("--pack").unwrap_or(1).max(1);
    // buffer records (= messages): one per sample, or one per pack of `pack` samples
    let records = n.div_ceil(pack);
    let encode = |r: u64| -> Vec<u8> {
        if pack == 1 {
            return wire::encode_sample(site, &sample(r, base), Some("m3/h"));
        }
        let samples: Vec<Sample> = (r * pack..((r + 1) * pack).min(n))
            .map(|i| sample(i, base))
            .collect();
        wire::encode_pack(site, samples.iter().map(|s| (s, Some("m3/h"))))
    };
    let bin = [
        "/usr/sbin/nats-server",
        "/usr/bin/nats-server",
        "/usr/local/bin/nats-server",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
    .expect("nats-server is not installed (apt-get install nats-server)");
    let base_dir = std::env::var_os("MW_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("mw-uplink-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base_dir);
    std::fs::create_dir_all(&base_dir).expect("bench dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let mut server = Command::new(bin)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(base_dir.join("nats"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nats-server");
    let url = format!("nats://127.0.0.1:{port}");
    let client = {
        let t = Instant::now();
        loop {
            match async_nats::connect(url.as_str()).await {
                Ok(c) => break c,
                Err(_) if t.elapsed() < Duration::from_secs(10) => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(e) => panic!("nats-server did not start: {e}"),
            }
        }
    };

    // raw async-nats
    let js = jetstream::ContextBuilder::new()
        .max_ack_inflight(window + 16)
        .backpressure_on_inflight(true)
        .build(client.clone());
    js.get_or_create_stream(stream::Config {
        name: "RAW".into(),
        subjects: vec!["raw.>".into()],
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .expect("raw stream");
    let msgs: Vec<(String, Vec<u8>)> = (0..records)
        .map(|i| {
            let rec = encode(i);
            let (subject, body) = wire::decode(&rec, true).expect("ours");
            (subject.replacen("mw.", "raw.", 1), body)
        })
        .collect();
    let bytes: usize = msgs.iter().map(|(s, b)| s.len() + b.len()).sum();
    let t = Instant::now();
    type Ack = std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = Result<
                        jetstream::publish::PublishAck,
                        jetstream::context::PublishError,
                    >,
                > + Send,
        >,
    >;
    let mut pending: FuturesUnordered<Ack> = FuturesUnordered::new();
    for (i, (subject, body)) in msgs.into_iter().enumerate() {
        if pending.len() >= window {
            pending.next().await.expect("one").expect("raw PubAck");
        }
        let msg = PublishMessage::build()
            .payload(body.into())
            .message_id(format!("raw-{i}"));
        let f = js.send_publish(subject, msg).await.expect("raw publish");
        pending.push(std::future::IntoFuture::into_future(f));
    }
    while let Some(r) = pending.next().await {
        r.expect("raw PubAck");
    }
    let raw_s = t.elapsed().as_secs_f64();
    let raw = records as f64 / raw_s;

    // the uplink: buffer first, then drain
    let opts = Options {
        max_bytes: 4 << 30,
        segment_bytes: 64 << 20,
        full_policy: FullPolicy::Block,
        sync: Sync::Always,
        ..Options::new(base_dir.join("buf"))
    };
    let (buffer, _) = Buffer::open(Arc::new(FsStorage), opts).expect("buffer");
    let t = Instant::now();
    let mut i = 0;
    while i < records {
        let end = (i + 1000).min(records);
        let recs: Vec<(i64, Vec<u8>)> = (i..end).map(|j| (base + j as i64, encode(j))).collect();
        buffer.append_batch_async(recs).await.expect("append");
        i = end;
    }
    let fill_s = t.elapsed().as_secs_f64();
    let cfg = ForwarderConfig {
        name: "bench".into(),
        urls: vec![url.clone()],
        edge_id: "bench".into(),
        site: site.into(),
        stream: "MW_BENCH".into(),
        batch: window, // per flow; only the backlog drains here
        duplicate_window: Duration::from_secs(120),
        replicas: 1,
        credentials: Credentials::None,
        tls: None,
        ack_timeout: Duration::from_secs(10),
    };
    let status = StatusHandle::default();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // live data during the drain: one sample every 10 ms, appended as the sink would; its
    // freshness is the time from the append to its delivery by the server (core subscription)
    let mut sub = client
        .subscribe("mw.bench.live.>")
        .await
        .expect("subscribe");
    let lat = Arc::new(std::sync::Mutex::new(Vec::new()));
    let lat_task = {
        let lat = lat.clone();
        tokio::spawn(async move {
            while let Some(m) = sub.next().await {
                let j: serde_json::Value = serde_json::from_slice(&m.payload).expect("JSON");
                let sent = j["receive_ts"].as_i64().expect("receive_ts");
                let ms = (mw_model::now_ns() - sent) as f64 / 1e6;
                lat.lock().unwrap_or_else(|e| e.into_inner()).push(ms);
            }
        })
    };
    let draining = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let t = Instant::now();
    let fwd = tokio::spawn(forward::run(cfg, buffer.clone(), status.clone(), stop_rx));
    let live = {
        let (buffer, status, draining) = (buffer.clone(), status.clone(), draining.clone());
        let tag = TagPath::new("live/x/v").expect("tag");
        tokio::spawn(async move {
            while status.get().sessions == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let mut k = 0u64;
            while draining.load(std::sync::atomic::Ordering::Relaxed) {
                let now = mw_model::now_ns();
                let s = Sample::good(tag.clone(), Value::U64(k), now);
                let rec = wire::encode_sample(site, &s, None);
                buffer
                    .append_batch_async(vec![(now, rec)])
                    .await
                    .expect("live append");
                k += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            k
        })
    };
    while status.get().acked_historical < records {
        assert!(
            t.elapsed() < Duration::from_secs(600),
            "drain stalled: {:?}",
            status.get()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let up_s = t.elapsed().as_secs_f64();
    let up = records as f64 / up_s;
    draining.store(false, std::sync::atomic::Ordering::Relaxed);
    let live_n = live.await.expect("live task");
    tokio::time::sleep(Duration::from_millis(500)).await; // the last live ones arrive
    let _ = stop_tx.send(true);
    let _ = fwd.await;
    lat_task.abort();
    let st = status.get();
    assert_eq!(st.duplicates, 0);
    let mut lat = lat.lock().unwrap_or_else(|e| e.into_inner()).clone();
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(f64::NAN)
    };
    assert!(
        st.acked_historical >= records,
        "the buffered samples drain as the backlog"
    );

    println!(
        "uplink bench: {n} samples in {records} records ({pack} per message), {:.0} bytes per message (subject + JSON), window {window}",
        bytes as f64 / records as f64
    );
    println!(
        "  buffer fill (sync = always, 1000 per append): {:.0} records/s",
        records as f64 / fill_s
    );
    println!("  raw async-nats JetStream publish:            {raw:.0} msg/s ({raw_s:.2} s)");
    println!(
        "  uplink backlog drain (buffer -> JetStream):  {up:.0} records/s ({up_s:.2} s) = {:.0} samples/s",
        n as f64 / up_s
    );
    println!(
        "  ratio uplink / raw:                          {:.2}",
        up / raw
    );
    println!(
        "  live during the drain: {} of {live_n} received, append -> delivery p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        lat.len(),
        pct(0.5),
        pct(0.99),
        lat.last().copied().unwrap_or(f64::NAN)
    );
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&base_dir);
}
