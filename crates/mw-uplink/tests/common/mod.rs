//! Helpers of the tests against a real `nats-server -js`: the server on an ephemeral loopback
//! port with its own store directory (stopped by pid), an uplink built from a config text, and a
//! JetStream reader of everything in a stream.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use mw_model::{Sample, TagPath, Value};
use mw_uplink::{UplinkComponent, UplinkSection, UplinkSink};

/// A `nats-server -js` child process.
pub struct NatsServer {
    pub port: u16,
    pub store: PathBuf,
    /// More command-line arguments (`--user`, `--pass`, …).
    pub extra: Vec<String>,
    child: Option<Child>,
}

/// The server binary, or `None` (the test then says so and skips).
pub fn nats_server_bin() -> Option<PathBuf> {
    [
        "/usr/sbin/nats-server",
        "/usr/bin/nats-server",
        "/usr/local/bin/nats-server",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

/// Skips the calling test (returns from it) if `nats-server` is absent.
#[macro_export]
macro_rules! need_nats {
    () => {
        if common::nats_server_bin().is_none() {
            eprintln!(
                "SKIPPED: nats-server is not installed (apt-get install nats-server; \
                 scripts/setup-test-env.sh installs it)"
            );
            return;
        }
    };
}

/// A free loopback port (bound, then released), never one handed out before in this process:
/// a test that starts its server later must not find another test's server on its port.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// A fresh temporary directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mw-uplink-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

impl NatsServer {
    /// Starts a server on `port` with its JetStream store in `store`; waits until it accepts.
    pub fn start_on(port: u16, store: &Path) -> NatsServer {
        NatsServer::start_with(port, store, &[])
    }

    /// [`NatsServer::start_on`] with more arguments.
    pub fn start_with(port: u16, store: &Path, extra: &[&str]) -> NatsServer {
        let mut s = NatsServer {
            port,
            store: store.to_path_buf(),
            extra: extra.iter().map(|a| a.to_string()).collect(),
            child: None,
        };
        s.restart();
        s
    }

    pub fn start(store: &Path) -> NatsServer {
        NatsServer::start_on(free_port(), store)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// (Re)starts the process on the same port and store.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let bin = nats_server_bin().expect("nats-server");
        let child = Command::new(bin)
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(&self.store)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let t = Instant::now();
        loop {
            // a server that could not bind exits: then whatever answers is not ours
            if let Some(st) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("nats-server on {addr} exited at start ({st}); is the port taken?");
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "nats-server did not listen on {addr} within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(50));
        if let Some(st) = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
        {
            panic!("nats-server on {addr} exited at start ({st}); is the port taken?");
        }
    }

    /// Stops it gracefully (SIGTERM: it flushes its store) and waits, bounded.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let t = Instant::now();
            while c.try_wait().ok().flatten().is_none() {
                if t.elapsed() > Duration::from_secs(5) {
                    let _ = c.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Logs to the test's captured output, filtered by `RUST_LOG` (nothing when unset).
pub fn init_logs() {
    if let Ok(f) = std::env::var("RUST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(f))
            .with_test_writer()
            .try_init();
    }
}

/// An uplink sink built from `toml` (an `[[uplink]]` entry and whatever else it needs) exactly
/// as the component builds it.
pub fn uplink(toml: &str) -> UplinkSink {
    init_logs();
    let reg = mw_bus::config_registry(&[&UplinkComponent]);
    let cfg = reg
        .parse(toml, "test.toml")
        .unwrap_or_else(|d| panic!("{d}"));
    let s = cfg.section::<UplinkSection>().expect("section").clone();
    mw_uplink::component::build_sink(&cfg, &s.uplinks[0]).expect("build the uplink")
}

/// Sample `i` of tag `k`: value i, source_ts `base + i`.
pub fn sample(k: usize, i: u64, base: i64) -> Sample {
    let tag = TagPath::new(&format!("plant/t{k}/v")).expect("tag");
    Sample::good(tag, Value::U64(i), base + i as i64)
}

/// One message read back from the stream.
#[derive(Clone, Debug)]
pub struct Got {
    pub subject: String,
    pub msg_id: String,
    pub tag: String,
    pub ts: i64,
    pub value: u64,
    pub historical: bool,
    /// Its place in a pack (`[[uplink]] pack`; 0 for a message of one sample).
    pub in_pack: usize,
}

/// A client of the test; `nats://USER:PASS@HOST:PORT` logs in with that user.
async fn test_client(url: &str) -> async_nats::Client {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    match rest.split_once('@') {
        Some((cred, host)) => {
            let (u, p) = cred.split_once(':').expect("USER:PASS");
            async_nats::ConnectOptions::with_user_and_password(u.into(), p.into())
                .connect(format!("{scheme}://{host}"))
                .await
                .expect("test client")
        }
        None => async_nats::connect(url).await.expect("test client"),
    }
}

/// Waits (bounded) until the stream holds at least `n` messages; answers how many it holds.
pub async fn wait_for_count(url: &str, stream: &str, n: u64, within: Duration) -> u64 {
    let js = jetstream::new(test_client(url).await);
    let t = Instant::now();
    loop {
        let have = match js.get_stream(stream).await {
            Ok(s) => s.get_info().await.map(|i| i.state.messages).unwrap_or(0),
            Err(_) => 0,
        };
        if have >= n || t.elapsed() > within {
            return have;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every message of `stream`, in stream order, read by an ephemeral pull consumer.
pub async fn read_all(url: &str, stream: &str) -> Vec<Got> {
    read_all_within(url, stream, Duration::ZERO).await
}

/// [`read_all`], retrying for up to `retry_for` while the stream does not answer (a JetStream
/// cluster that just lost a node answers only once a new stream leader is elected). Messages are
/// read one by one by sequence (`STREAM.MSG.GET`, answered by the stream leader): no consumer is
/// created, so the read does not wait for the meta leader to place one on a degraded cluster.
pub async fn read_all_within(url: &str, stream: &str, retry_for: Duration) -> Vec<Got> {
    let js = jetstream::new(test_client(url).await);
    let deadline = Instant::now() + retry_for + Duration::from_secs(30);
    let (s, first, last) = loop {
        let attempt = async {
            let mut s = js
                .get_stream(stream)
                .await
                .map_err(|e| format!("stream: {e}"))?;
            let info = s.info().await.map_err(|e| format!("info: {e}"))?;
            let (first, last) = (info.state.first_sequence, info.state.last_sequence);
            Ok::<_, String>((s, first, last))
        };
        match attempt.await {
            Ok(x) => break x,
            Err(e) if Instant::now() >= deadline => panic!("{e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    };
    let mut out = Vec::new();
    if last == 0 {
        return out;
    }
    for seq in first..=last {
        let m = loop {
            match s.get_raw_message(seq).await {
                Ok(m) => break Some(m),
                Err(e) if e.to_string().contains("no message found") => break None,
                Err(e) if Instant::now() >= deadline => panic!("message {seq}: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        };
        let Some(m) = m else { continue };
        let v: serde_json::Value = serde_json::from_slice(&m.payload).expect("JSON payload");
        let msg_id = m
            .headers
            .get("Nats-Msg-Id")
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default();
        let historical = v["historical"].as_bool().expect("historical flag");
        // a pack is read as its samples, in order, each with the pack's subject and id
        let items = match v["samples"].as_array() {
            Some(list) => list.clone(),
            None => vec![v],
        };
        for (in_pack, x) in items.iter().enumerate() {
            out.push(Got {
                subject: m.subject.to_string(),
                msg_id: msg_id.clone(),
                tag: x["tag"].as_str().unwrap_or("").to_owned(),
                ts: x["ts"].as_i64().unwrap_or(-1),
                value: x["value"].as_u64().unwrap_or(u64::MAX),
                historical,
                in_pack,
            });
        }
    }
    out
}

/// Checks exactly once and per-tag order within each flow (live, historical); answers the
/// (tag, ts) pairs seen.
pub fn check_once_and_ordered(got: &[Got]) -> Result<HashMap<(String, i64), bool>, String> {
    let mut seen = HashMap::new();
    let mut ids = std::collections::HashSet::new();
    let mut last: HashMap<(&str, bool), i64> = HashMap::new();
    for g in got {
        if seen.insert((g.tag.clone(), g.ts), g.historical).is_some() {
            return Err(format!("{} at {} arrived twice", g.tag, g.ts));
        }
        if !ids.insert((g.msg_id.clone(), g.in_pack)) {
            return Err(format!("message id {} twice", g.msg_id));
        }
        if let Some(prev) = last.insert((&g.tag, g.historical), g.ts)
            && prev > g.ts
        {
            return Err(format!(
                "{} ({}): {} after {prev}",
                g.tag,
                if g.historical { "historical" } else { "live" },
                g.ts
            ));
        }
        let want_subject = format!("mw.test.{}", g.tag.replace('/', "."));
        if g.subject != want_subject && g.subject != "mw.test.$samples" {
            return Err(format!("subject {} for tag {}", g.subject, g.tag));
        }
    }
    Ok(seen)
}

/// The `[[uplink]]` text of the tests: site `test`, stream `MW_TEST`, buffer in `dir`.
pub fn config(url: &str, dir: &Path, extra_buffer: &str) -> String {
    format!(
        "[[uplink]]\nname = \"t\"\nurl = \"{url}\"\nsite = \"test\"\nbatch = 64\n\
         [uplink.buffer]\ndir = \"{}\"\nack_persist_ms = 100\n{extra_buffer}\n",
        dir.display()
    )
}
