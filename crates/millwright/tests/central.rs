//! `millwright central` against real peers on loopback ports, each started by the test and
//! stopped by pid: `nats-server -js`, `victoria-metrics` and a PostgreSQL 15 cluster made with
//! `initdb` in a temp dir (run as `nobody` when the test runs as root: postgres refuses root).
//!
//! Two central replicas share one durable consumer; one is killed with SIGKILL while samples
//! and events are still being published. VictoriaMetrics and PostgreSQL must end with exactly
//! what was published: every sample once (VictoriaMetrics' `-dedup.minScrapeInterval=1ms`
//! absorbs a batch written twice), every event once (`ON CONFLICT DO NOTHING` on the message id).
//! Skipped, with a message, when one of the servers is not installed.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Proc, TempDir, request};
use mw_model::{Event, EventKind, Sample, TagPath, Value};

const NATS: &[&str] = &[
    "/usr/sbin/nats-server",
    "/usr/bin/nats-server",
    "/usr/local/bin/nats-server",
];
const VM: &[&str] = &[
    "/usr/bin/victoria-metrics",
    "/usr/local/bin/victoria-metrics",
];
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

const TAGS: usize = 10;
const PER_TAG: usize = 1500;
const EVENTS: usize = 300;
/// Steps published a second time after the duplicate window.
const RESENT: usize = 100;

fn find(cands: &[&str]) -> Option<String> {
    cands
        .iter()
        .find(|p| Path::new(p).exists())
        .map(|p| p.to_string())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn wait_port(port: u16, what: &str, within: Duration) {
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < within,
            "{what} did not listen on {port} within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn am_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

/// A PostgreSQL cluster in a temp dir; stopped by pid (SIGINT: fast shutdown, then SIGKILL).
struct Postgres {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    nobody: Option<u32>,
    /// More `postgres` arguments (`-c ssl=on`, …).
    extra: Vec<String>,
}

impl Postgres {
    fn start(dir: &Path) -> Postgres {
        Postgres::start_with(dir, None)
    }

    /// With `tls = (certificate, key)`: TLS on, and TCP clients accepted only over TLS
    /// (`hostssl`; plain `host` connections are rejected).
    fn start_with(dir: &Path, tls: Option<(&Path, &Path)>) -> Postgres {
        let nobody = am_root().then_some(65534u32);
        std::fs::create_dir_all(dir).expect("dir");
        if let Some(uid) = nobody {
            Command::new("chown")
                .arg(format!("{uid}:{uid}"))
                .arg(dir)
                .status()
                .expect("chown");
        }
        let mut initdb = Command::new(format!("{PG_BIN}/initdb"));
        initdb
            .args(["-U", "mw", "--auth=trust", "-E", "UTF8", "--no-sync", "-D"])
            .arg(dir.join("pgdata"));
        if let Some(uid) = nobody {
            initdb.uid(uid).gid(uid);
        }
        let out = initdb.output().expect("run initdb");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut p = Postgres {
            child: None,
            port: free_port(),
            dir: dir.to_path_buf(),
            nobody,
            extra: Vec::new(),
        };
        if let Some((cert, key)) = tls {
            // the key must belong to the server's user and be private to it
            let k = dir.join("server.key");
            std::fs::copy(key, &k).expect("copy key");
            std::fs::copy(cert, dir.join("server.pem")).expect("copy cert");
            std::fs::set_permissions(&k, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .expect("key mode");
            if let Some(uid) = nobody {
                for f in [&k, &dir.join("server.pem")] {
                    Command::new("chown")
                        .arg(format!("{uid}:{uid}"))
                        .arg(f)
                        .status()
                        .expect("chown");
                }
            }
            std::fs::write(
                dir.join("pgdata/pg_hba.conf"),
                "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
            )
            .expect("pg_hba.conf");
            p.extra = vec![
                "-c".into(),
                "ssl=on".into(),
                "-c".into(),
                format!("ssl_cert_file={}", dir.join("server.pem").display()),
                "-c".into(),
                format!("ssl_key_file={}", k.display()),
            ];
        }
        p.run();
        p
    }

    /// Starts the server (again) on its port and data directory; waits until it answers.
    fn run(&mut self) {
        assert!(self.child.is_none(), "postgres already running");
        let mut pg = Command::new(format!("{PG_BIN}/postgres"));
        pg.arg("-D")
            .arg(self.dir.join("pgdata"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-k"])
            .arg(&self.dir)
            .args(["-c", "fsync=off"])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(uid) = self.nobody {
            pg.uid(uid).gid(uid);
        }
        self.child = Some(pg.spawn().expect("start postgres"));
        wait_port(self.port, "postgres", Duration::from_secs(20));
        // accepting TCP is not yet accepting queries
        let t = Instant::now();
        while self.psql("SELECT 1").as_deref() != Ok("1") {
            assert!(t.elapsed() < Duration::from_secs(20), "postgres not ready");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        let t = Instant::now();
        while child.try_wait().ok().flatten().is_none() {
            if t.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.wait();
    }

    fn psql(&self, sql: &str) -> Result<String, String> {
        let out = Command::new(format!("{PG_BIN}/psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "mw",
                "-d",
                "postgres",
                "-tAXc",
                sql,
            ])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

fn sigkill(p: &Proc) {
    let _ = Command::new("kill")
        .args(["-KILL", &p.pid().to_string()])
        .status();
}

/// Publishes, in the uplink's exact format (its own encoder), sample `i` of every tag (every
/// third step packed into one message) and, every fifth step, an event; `Nats-Msg-Id` = `edge1-{seq}` as the uplink sends it.
async fn publish(
    js: &async_nats::jetstream::Context,
    from: usize,
    to: usize,
    base_ms: i64,
    seq: &mut u64,
) {
    let mut acks = Vec::new();
    for i in from..to {
        let mut recs = Vec::new();
        let samples: Vec<Sample> = (0..TAGS)
            .map(|k| {
                let tag = TagPath::new(&format!("plant/t{k}/v")).expect("tag");
                Sample::good(tag, Value::U64(i as u64), (base_ms + i as i64) * 1_000_000)
            })
            .collect();
        if i % 3 == 0 {
            // every third step as one pack (`[[uplink]] pack`), the others one message each
            let pack = samples.iter().map(|s| (s, Some("Cel")));
            recs.push(mw_uplink::wire::encode_pack("test", pack));
        } else {
            for s in &samples {
                recs.push(mw_uplink::wire::encode_sample("test", s, Some("Cel")));
            }
        }
        if i * EVENTS / PER_TAG != (i + 1) * EVENTS / PER_TAG {
            let e = Event::new(
                (base_ms + i as i64) * 1_000_000,
                "modbus/plc1",
                EventKind::Audit {
                    actor: "test".into(),
                    action: "poke".into(),
                    outcome: "ok".into(),
                    detail: format!("event {i}"),
                },
            );
            recs.push(mw_uplink::wire::encode_event("test", &e));
        }
        for r in recs {
            *seq += 1;
            let (subject, body) = mw_uplink::wire::decode(&r, false).expect("decodes");
            let mut h = async_nats::HeaderMap::new();
            h.insert(
                "Nats-Msg-Id",
                mw_uplink::wire::msg_id("edge1", *seq).as_str(),
            );
            acks.push(
                js.publish_with_headers(subject, h, body.into())
                    .await
                    .expect("publish"),
            );
        }
        if acks.len() >= 500 {
            for a in acks.drain(..) {
                a.await.expect("PubAck");
            }
        }
    }
    for a in acks {
        a.await.expect("PubAck");
    }
}

/// Publishes `n` operator-action events (`alarm 0` …) in the uplink's format, ids `edge1-1` …,
/// each awaited to its PubAck.
async fn publish_acks(js: &async_nats::jetstream::Context, n: u64) {
    for i in 0..n {
        let e = Event::new(
            1_700_000_000_000_000_000 + i as i64,
            "alarms/engine",
            EventKind::OperatorAction {
                user: "op".into(),
                action: "ack".into(),
                target: format!("alarm {i}"),
                comment: String::new(),
            },
        );
        let (subject, body) =
            mw_uplink::wire::decode(&mw_uplink::wire::encode_event("test", &e), false)
                .expect("decodes");
        let mut h = async_nats::HeaderMap::new();
        h.insert(
            "Nats-Msg-Id",
            mw_uplink::wire::msg_id("edge1", i + 1).as_str(),
        );
        js.publish_with_headers(subject, h, body.into())
            .await
            .expect("publish")
            .await
            .expect("PubAck");
    }
}

/// Waits (bounded) until the consumer has acknowledged every message up to stream sequence `last`.
async fn all_acked(c: &async_nats::jetstream::consumer::PullConsumer, last: u64, b: &mut Proc) {
    let t = Instant::now();
    loop {
        let i = c.get_info().await.expect("consumer info");
        if i.num_pending == 0 && i.num_ack_pending == 0 && i.ack_floor.stream_sequence == last {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(90),
            "not all acknowledged up to {last}: {i:?}\n{}",
            b.report()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn start_nats(bin: &str, dir: &Path) -> (Proc, u16) {
    start_nats_with(bin, dir, &[])
}

/// [`start_nats`] with more arguments (`--user`, `--pass`).
fn start_nats_with(bin: &str, dir: &Path, extra: &[&str]) -> (Proc, u16) {
    let port = free_port();
    let store = dir.join("nats");
    let port_s = port.to_string();
    let mut args = vec![
        "-js",
        "-a",
        "127.0.0.1",
        "-p",
        &port_s,
        "-sd",
        store.to_str().expect("utf-8"),
    ];
    args.extend_from_slice(extra);
    let p = Proc::spawn(bin, &args);
    wait_port(port, "nats-server", Duration::from_secs(10));
    (p, port)
}

/// VictoriaMetrics with the deduplication central relies on (docs/central.md).
fn start_vm(bin: &str, dir: &Path, port: u16) -> Proc {
    let data = dir.join("vm");
    let p = Proc::spawn(
        bin,
        &[
            &format!("-storageDataPath={}", data.display()),
            &format!("-httpListenAddr=127.0.0.1:{port}"),
            "-dedup.minScrapeInterval=1ms",
            "-search.disableCache",
        ],
    );
    wait_port(port, "victoria-metrics", Duration::from_secs(20));
    p
}

async fn test_stream(url: &str) -> async_nats::jetstream::Context {
    // nats://USER:PASS@HOST:PORT logs in as USER
    let client = match url.split_once("://").and_then(|(_, r)| r.split_once('@')) {
        Some((cred, host)) => {
            let (u, p) = cred.split_once(':').expect("USER:PASS");
            async_nats::ConnectOptions::with_user_and_password(u.into(), p.into())
                .connect(format!("nats://{host}"))
                .await
        }
        None => async_nats::connect(url).await,
    };
    let js = async_nats::jetstream::new(client.expect("connect"));
    js.get_or_create_stream(async_nats::jetstream::stream::Config {
        name: "MW_TEST".into(),
        subjects: vec!["mw.test.>".into()],
        storage: async_nats::jetstream::stream::StorageType::File,
        duplicate_window: Duration::from_secs(1),
        ..Default::default()
    })
    .await
    .expect("stream");
    js
}

async fn shared_consumer(
    js: &async_nats::jetstream::Context,
) -> async_nats::jetstream::consumer::PullConsumer {
    let stream = js.get_stream("MW_TEST").await.expect("stream");
    let t = Instant::now();
    loop {
        match stream.get_consumer("millwright-central").await {
            Ok(c) => return c,
            Err(e) => assert!(
                t.elapsed() < Duration::from_secs(30),
                "central did not create the consumer: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every `mw_tag_value` point in VictoriaMetrics, per tag, sorted.
fn vm_points(vm_port: u16) -> BTreeMap<String, Vec<(i64, f64)>> {
    let vm_addr = format!("127.0.0.1:{vm_port}");
    request(&vm_addr, "GET", "/internal/force_flush", None).expect("force_flush");
    let r = request(
        &vm_addr,
        "GET",
        "/api/v1/export?match%5B%5D=mw_tag_value&start=0",
        None,
    )
    .expect("export");
    assert_eq!(r.status, 200, "{}", r.text());
    let mut got: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    for line in r.text().lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("export line");
        assert_eq!(v["metric"]["site"], "test");
        assert_eq!(v["metric"]["unit"], "Cel");
        let tag = v["metric"]["tag"].as_str().expect("tag").to_owned();
        let ts = v["timestamps"].as_array().expect("timestamps");
        let vals = v["values"].as_array().expect("values");
        let e = got.entry(tag).or_default();
        for (t, x) in ts.iter().zip(vals) {
            e.push((t.as_i64().expect("ts"), x.as_f64().expect("value")));
        }
    }
    for points in got.values_mut() {
        points.sort_by(|x, y| x.partial_cmp(y).expect("finite"));
    }
    got
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

/// Waits (30 s at most) until central's `/metrics` counts at least two
/// `mw_errors_total{error_type=KIND}`: its writes are failing.
fn wait_errors(metrics_addr: &str, kind: &str, central: &mut Proc) {
    let label = format!("error_type=\"{kind}\"");
    let t = Instant::now();
    loop {
        let m = request(metrics_addr, "GET", "/metrics", None)
            .expect("metrics")
            .text();
        if metric(&m, "mw_errors_total", &[label.as_str()]) >= 2.0 {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no {kind} error counted:\n{m}\n{}",
            central.report()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The sum of metric `name` over the series whose labels include every one of `labels`.
fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn victoria_metrics_down_nothing_is_acknowledged_until_it_is_back() {
    let (Some(nats), Some(vm)) = (find(NATS), find(VM)) else {
        eprintln!(
            "SKIP: nats-server or victoria-metrics is not installed (scripts/setup-test-env.sh)"
        );
        return;
    };
    let dir = TempDir::new("central-vm-down");
    // a server that requires a login: central reads its password from a file
    let (_nats, nats_port) = start_nats_with(
        &nats,
        &dir.path,
        &["--user", "central", "--pass", "s3cret-pw"],
    );
    let url = format!("nats://127.0.0.1:{nats_port}");
    let pw = dir.path.join("nats-password");
    std::fs::write(&pw, "s3cret-pw\n").expect("password file");
    let vm_port = free_port(); // nothing listens there yet
    let metrics_port = free_port();
    let cfg = dir.path.join("central.toml");
    std::fs::write(
        &cfg,
        format!(
            "[central]\nurl = \"{url}\"\nuser = \"central\"\npassword_file = \"{}\"\n\
             streams = [\"MW_TEST\"]\nbatch = 100\n\
             victoria_metrics = \"http://127.0.0.1:{vm_port}\"\n\
             metrics_address = \"127.0.0.1:{metrics_port}\"\n",
            pw.display()
        ),
    )
    .expect("config");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let js = rt.block_on(test_stream(&format!(
        "nats://central:s3cret-pw@127.0.0.1:{nats_port}"
    )));
    let mut central = Proc::millwright(&["central", "--config", cfg.to_str().expect("utf-8")]);
    wait_port(metrics_port, "central /metrics", Duration::from_secs(20));
    let base_ms = now_ms() - 3_600_000;
    let steps = 50; // no events: only the samples' sink is exercised
    let mut seq = 0u64;
    let c = rt.block_on(async {
        let mut s = 0u64;
        for i in 0..steps {
            let mut h = async_nats::HeaderMap::new();
            for k in 0..TAGS {
                let tag = TagPath::new(&format!("plant/t{k}/v")).expect("tag");
                let smp = Sample::good(tag, Value::U64(i as u64), (base_ms + i as i64) * 1_000_000);
                let (subject, body) = mw_uplink::wire::decode(
                    &mw_uplink::wire::encode_sample("test", &smp, Some("Cel")),
                    false,
                )
                .expect("decodes");
                s += 1;
                h.insert("Nats-Msg-Id", mw_uplink::wire::msg_id("edge1", s).as_str());
                js.publish_with_headers(subject, h.clone(), body.into())
                    .await
                    .expect("publish")
                    .await
                    .expect("PubAck");
            }
        }
        // a message central cannot read: terminated and counted, never blocking the rest
        js.publish("mw.test.garbage", "not json".into())
            .await
            .expect("publish")
            .await
            .expect("PubAck");
        seq = s + 1;
        shared_consumer(&js).await
    });
    // central fails to write (connection refused) and counts it; nothing may be acknowledged
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    wait_errors(&metrics_addr, "connect", &mut central);
    let info = rt.block_on(c.get_info()).expect("consumer info");
    assert_eq!(
        info.ack_floor.stream_sequence, 0,
        "acknowledged without a write: {info:?}"
    );
    // VictoriaMetrics comes up: the nak'ed batches are redelivered and written
    let _vm = start_vm(&vm, &dir.path, vm_port);
    rt.block_on(all_acked(&c, seq, &mut central));
    let got = vm_points(vm_port);
    assert_eq!(got.len(), TAGS);
    let want: Vec<(i64, f64)> = (0..steps).map(|i| (base_ms + i as i64, i as f64)).collect();
    for (tag, points) in got {
        assert_eq!(points, want, "{tag}");
    }
    let m = request(&metrics_addr, "GET", "/metrics", None)
        .expect("metrics")
        .text();
    assert_eq!(
        metric(&m, "mw_sent_samples_total", &[]),
        (steps * TAGS) as f64,
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "mw_discarded_messages_total",
            &["reason=\"bad_message\""]
        ),
        1.0,
        "{m}"
    );
    // SIGTERM: a clean stop
    central.sigterm();
    let st = central.wait_exit(Duration::from_secs(15));
    assert!(
        st.is_some_and(|s| s.success()),
        "central after SIGTERM: {st:?}\n{}",
        central.report()
    );
    assert!(
        !central.report().contains("s3cret-pw"),
        "the password appears in central's output"
    );
}

#[test]
fn two_replicas_one_killed_mid_stream_write_every_sample_and_event_exactly_once() {
    let (Some(nats), Some(vm)) = (find(NATS), find(VM)) else {
        eprintln!(
            "SKIP: nats-server or victoria-metrics is not installed (scripts/setup-test-env.sh)"
        );
        return;
    };
    if !Path::new(&format!("{PG_BIN}/postgres")).exists() {
        eprintln!("SKIP: PostgreSQL 15 is not installed ({PG_BIN}; scripts/setup-test-env.sh)");
        return;
    }
    let dir = TempDir::new("central");
    let (_nats, nats_port) = start_nats(&nats, &dir.path);
    let vm_port = free_port();
    let _vm = start_vm(&vm, &dir.path, vm_port);
    let pg = Postgres::start(&dir.path.join("pg"));

    let url = format!("nats://127.0.0.1:{nats_port}");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let js = rt.block_on(async {
        let js =
            async_nats::jetstream::new(async_nats::connect(url.as_str()).await.expect("connect"));
        js.get_or_create_stream(async_nats::jetstream::stream::Config {
            name: "MW_TEST".into(),
            subjects: vec!["mw.test.>".into()],
            storage: async_nats::jetstream::stream::StorageType::File,
            duplicate_window: Duration::from_secs(1),
            ..Default::default()
        })
        .await
        .expect("stream");
        js
    });

    let metrics_port = free_port();
    let cfg = |metrics: Option<u16>| {
        let path = dir.path.join(format!("central-{}.toml", metrics.is_some()));
        let mut text = format!(
            "[central]\nurl = \"{url}\"\nstreams = [\"MW_TEST\"]\nbatch = 200\nack_wait_s = 2\n\
             victoria_metrics = \"http://127.0.0.1:{vm_port}\"\n\
             postgres = \"host=127.0.0.1 port={} user=mw dbname=postgres\"\n",
            pg.port
        );
        if let Some(p) = metrics {
            text.push_str(&format!("metrics_address = \"127.0.0.1:{p}\"\n"));
        }
        std::fs::write(&path, text).expect("config");
        path
    };
    let (cfg_a, cfg_b) = (cfg(None), cfg(Some(metrics_port)));
    let a = Proc::millwright(&["central", "--config", cfg_a.to_str().expect("utf-8")]);
    let mut b = Proc::millwright(&["central", "--config", cfg_b.to_str().expect("utf-8")]);
    wait_port(metrics_port, "central /metrics", Duration::from_secs(20));

    let base_ms = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64)
        - 3_600_000;
    let mut seq = 0u64;
    rt.block_on(async {
        publish(&js, 0, PER_TAG / 3, base_ms, &mut seq).await;
        // kill A once the consumer has delivered a part of the stream, while more arrives
        let c = shared_consumer(&js).await;
        let t = Instant::now();
        loop {
            let i = c.get_info().await.expect("consumer info");
            if i.delivered.stream_sequence > seq / 2 {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "nothing consumed: {i:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        sigkill(&a);
        publish(&js, PER_TAG / 3, PER_TAG, base_ms, &mut seq).await;
        all_acked(&c, seq, &mut b).await;
        // an edge that sends again after the stream's duplicate window (a restart that resent
        // what was PubAck'd but not yet in its ledger): the same messages, same ids, new
        // stream sequence numbers; central writes them again and the sinks must absorb them
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let mut again = 0u64;
        publish(&js, 0, RESENT, base_ms, &mut again).await;
        all_acked(&c, seq + again, &mut b).await;
    });

    // VictoriaMetrics: exactly PER_TAG points per tag, the values sent, at their timestamps
    let got = vm_points(vm_port);
    assert_eq!(
        got.len(),
        TAGS,
        "series: {:?}",
        got.keys().collect::<Vec<_>>()
    );
    for (tag, points) in got {
        let want: Vec<(i64, f64)> = (0..PER_TAG)
            .map(|i| (base_ms + i as i64, i as f64))
            .collect();
        assert_eq!(
            points.len(),
            PER_TAG,
            "{tag}: {} points, {PER_TAG} sent",
            points.len()
        );
        assert_eq!(points, want, "{tag}");
    }

    // PostgreSQL: every event once, with its message id
    let n: usize = pg
        .psql("SELECT count(*) FROM events")
        .expect("count")
        .parse()
        .expect("number");
    assert_eq!(n, EVENTS, "events in PostgreSQL");
    let details: BTreeSet<String> = pg
        .psql("SELECT body->'kind'->>'detail' FROM events")
        .expect("details")
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(details.len(), EVENTS, "distinct events");
    assert_eq!(
        pg.psql("SELECT max(version) FROM schema_migrations")
            .as_deref(),
        Ok("1")
    );

    // the survivor's /metrics
    let m = request(
        &format!("127.0.0.1:{metrics_port}"),
        "GET",
        "/metrics",
        None,
    )
    .expect("metrics")
    .text();
    let has = |name: &str| m.lines().any(|l| l.starts_with(name));
    assert!(has("mw_sent_samples_total"), "{m}");
    assert!(has("mw_central_written_events_total"), "{m}");
    assert!(has("mw_central_pending_messages"), "{m}");
    // the resent events reached PostgreSQL and were refused there (A was killed before them)
    let dups: u64 = m
        .lines()
        .find(|l| l.starts_with("mw_central_duplicate_events_total"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let resent_events = (0..RESENT)
        .filter(|i| i * EVENTS / PER_TAG != (i + 1) * EVENTS / PER_TAG)
        .count() as u64;
    assert!(
        dups >= resent_events,
        "{dups} duplicate events counted, {resent_events} resent\n{m}"
    );
    for l in m.lines().filter(|l| {
        l.starts_with("mw_central_redelivered_total") || l.starts_with("mw_central_duplicate")
    }) {
        eprintln!("survivor: {l}");
    }
    drop(b);
    let _ = PathBuf::new();
}

#[test]
fn postgres_down_events_wait_and_arrive_once_it_is_back() {
    postgres_down(false);
}

/// Central started while PostgreSQL is down: it runs (samples would flow), migrates once
/// PostgreSQL answers and then stores the events that waited.
#[test]
fn postgres_down_at_start_central_waits_for_it_and_migrates_then() {
    postgres_down(true);
}

fn postgres_down(at_start: bool) {
    let Some(nats) = find(NATS) else {
        eprintln!("SKIP: nats-server is not installed (scripts/setup-test-env.sh)");
        return;
    };
    if !Path::new(&format!("{PG_BIN}/postgres")).exists() {
        eprintln!("SKIP: PostgreSQL 15 is not installed ({PG_BIN}; scripts/setup-test-env.sh)");
        return;
    }
    let dir = TempDir::new("central-pg-down");
    let (_nats, nats_port) = start_nats(&nats, &dir.path);
    let mut pg = Postgres::start(&dir.path.join("pg"));
    let url = format!("nats://127.0.0.1:{nats_port}");
    let metrics_port = free_port();
    let cfg = dir.path.join("central.toml");
    std::fs::write(
        &cfg,
        format!(
            "[central]\nurl = \"{url}\"\nstreams = [\"MW_TEST\"]\nbatch = 50\n\
             victoria_metrics = \"http://127.0.0.1:{}\"\n\
             postgres = \"host=127.0.0.1 port={} user=mw dbname=postgres connect_timeout=2\"\n\
             metrics_address = \"127.0.0.1:{metrics_port}\"\n",
            free_port(),
            pg.port
        ),
    )
    .expect("config");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let js = rt.block_on(test_stream(&url));
    if at_start {
        pg.stop();
    }
    let mut central = Proc::millwright(&["central", "--config", cfg.to_str().expect("utf-8")]);
    wait_port(metrics_port, "central /metrics", Duration::from_secs(20));
    let c = rt.block_on(shared_consumer(&js)); // created once central runs
    if !at_start {
        pg.stop();
    }
    let n = 120u64;
    rt.block_on(publish_acks(&js, n));
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    wait_errors(&metrics_addr, "postgres", &mut central);
    let info = rt.block_on(c.get_info()).expect("consumer info");
    assert_eq!(
        info.ack_floor.stream_sequence, 0,
        "acknowledged without a commit: {info:?}"
    );
    pg.run();
    rt.block_on(all_acked(&c, n, &mut central));
    assert_eq!(
        pg.psql("SELECT count(DISTINCT msg_id) || ' ' || count(*) FROM events WHERE kind = 'operator_action'")
            .as_deref(),
        Ok("120 120")
    );
    assert_eq!(
        pg.psql("SELECT body->'kind'->>'target' FROM events WHERE msg_id = 'edge1-7'")
            .as_deref(),
        Ok("alarm 6")
    );
}

/// The whole chain on the real binaries: `millwright demo --uplink` (the simulated plant, its
/// uplink's buffer and forwarder) → `nats-server` → `millwright central` → VictoriaMetrics and
/// PostgreSQL. The plant's tags arrive as series of its site, and the demo's start-up
/// `config_change` event as a row.
#[test]
fn a_real_edge_feeds_central_through_its_uplink() {
    let (Some(nats), Some(vm)) = (find(NATS), find(VM)) else {
        eprintln!(
            "SKIP: nats-server or victoria-metrics is not installed (scripts/setup-test-env.sh)"
        );
        return;
    };
    if !Path::new(&format!("{PG_BIN}/postgres")).exists() {
        eprintln!("SKIP: PostgreSQL 15 is not installed ({PG_BIN}; scripts/setup-test-env.sh)");
        return;
    }
    let dir = TempDir::new("central-edge");
    let (_nats, nats_port) = start_nats(&nats, &dir.path);
    let vm_port = free_port();
    let _vm = start_vm(&vm, &dir.path, vm_port);
    let pg = Postgres::start(&dir.path.join("pg"));
    let url = format!("nats://127.0.0.1:{nats_port}");
    let _demo = common::start_demo(
        "central-edge-demo",
        &["--uplink", &url, "--poll-interval", "100"],
    );
    let stream = "MW_ACME-PLANT-1-SIMULATED";
    // central needs the stream, which the edge's uplink creates
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let js =
            async_nats::jetstream::new(async_nats::connect(url.as_str()).await.expect("connect"));
        let t = Instant::now();
        while js.get_stream(stream).await.is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "the uplink created no stream"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let cfg = dir.path.join("central.toml");
    std::fs::write(
        &cfg,
        format!(
            "[central]\nurl = \"{url}\"\nstreams = [\"{stream}\"]\n\
             victoria_metrics = \"http://127.0.0.1:{vm_port}\"\n\
             postgres = \"host=127.0.0.1 port={} user=mw dbname=postgres\"\n",
            pg.port
        ),
    )
    .expect("config");
    let mut central = Proc::millwright(&["central", "--config", cfg.to_str().expect("utf-8")]);
    let vm_addr = format!("127.0.0.1:{vm_port}");
    let t = Instant::now();
    let (series, row) = loop {
        let _ = request(&vm_addr, "GET", "/internal/force_flush", None);
        let series = request(
            &vm_addr,
            "GET",
            "/api/v1/series?match%5B%5D=mw_tag_value%7Bsite%3D%22acme-plant-1-simulated%22%7D&start=0",
            None,
        )
        .map(|r| r.json()["data"].as_array().map_or(0, |a| a.len()))
        .unwrap_or(0);
        let row = pg
            .psql("SELECT source || ' ' || kind || ' ' || site FROM events WHERE kind = 'config_change'")
            .unwrap_or_default();
        if series >= 10 && !row.is_empty() {
            break (series, row);
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "after 60 s: {series} series, event row {row:?}\n{}",
            central.report()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        row,
        "millwright/config config_change acme-plant-1-simulated"
    );
    eprintln!("{series} series of the demo plant in VictoriaMetrics");
}

/// Events to PostgreSQL over TLS (`postgres_tls`): the server accepts TCP clients only over
/// TLS (`hostssl`), its certificate made by `millwright certs init` and verified by central
/// against that CA and the host name `127.0.0.1`.
#[test]
fn events_reach_postgres_over_tls() {
    let Some(nats) = find(NATS) else {
        eprintln!("SKIP: nats-server is not installed (scripts/setup-test-env.sh)");
        return;
    };
    if !Path::new(&format!("{PG_BIN}/postgres")).exists() {
        eprintln!("SKIP: PostgreSQL 15 is not installed ({PG_BIN}; scripts/setup-test-env.sh)");
        return;
    }
    let dir = TempDir::new("central-pg-tls");
    let certs = dir.path.join("certs");
    let (st, out, err) = common::run_to_end(
        &[
            "certs",
            "init",
            "--dir",
            certs.to_str().expect("utf-8"),
            "--hosts",
            "127.0.0.1",
            "--data-dir",
            dir.path.join("data").to_str().expect("utf-8"),
        ],
        Duration::from_secs(30),
    );
    assert!(st.success(), "certs init: {out}\n{err}");
    let pg = Postgres::start_with(
        &dir.path.join("pg"),
        Some((&certs.join("server.pem"), &certs.join("server.key"))),
    );
    let (_nats, nats_port) = start_nats(&nats, &dir.path);
    let url = format!("nats://127.0.0.1:{nats_port}");
    let cfg = dir.path.join("central.toml");
    std::fs::write(
        &cfg,
        format!(
            "[central]\nurl = \"{url}\"\nstreams = [\"MW_TEST\"]\n\
             victoria_metrics = \"http://127.0.0.1:{}\"\n\
             postgres = \"host=127.0.0.1 port={} user=mw dbname=postgres connect_timeout=5\"\n\
             postgres_tls = {{ ca = \"{}\" }}\n",
            free_port(),
            pg.port,
            certs.join("ca.pem").display()
        ),
    )
    .expect("config");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let js = rt.block_on(test_stream(&url));
    let mut central = Proc::millwright(&["central", "--config", cfg.to_str().expect("utf-8")]);
    let c = rt.block_on(shared_consumer(&js));
    let n = 20u64;
    rt.block_on(publish_acks(&js, n));
    rt.block_on(all_acked(&c, n, &mut central));
    assert_eq!(
        pg.psql("SELECT count(*) FROM events WHERE kind = 'operator_action'")
            .as_deref(),
        Ok("20")
    );
}
