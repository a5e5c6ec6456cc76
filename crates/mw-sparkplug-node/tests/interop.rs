//! The Sparkplug runtime against a real broker (Mosquitto, started here on an ephemeral loopback
//! port, stopped by pid) and the PyPI peer pysparkplug 0.6 in both roles
//! (tests/peers/sparkplug_peer.py):
//!
//! - our edge node → pysparkplug's client decodes NBIRTH, DBIRTH and DDATA (aliases resolved
//!   from our births) with the right values; a new tag is a DBIRTH, a bad sample a null with
//!   `Quality` 0; a Rebirth NCMD from the peer gets a new NBIRTH; dropping our process's runtime
//!   (sockets closed without DISCONNECT) makes the broker publish our NDEATH with the birth's
//!   bdSeq; a restart on the same data dir is born with the next bdSeq, and a stop publishes
//!   its NDEATH itself.
//! - pysparkplug's EdgeNode → our host: births and data become samples with the right values,
//!   the retained online STATE is there, and the peer dying (will NDEATH) turns them stale.
//!
//! Skips with "SKIP: …" when mosquitto, Python (`MW_PYTHON`, else the venv of
//! scripts/setup-test-env.sh) or pysparkplug are missing. Deadlines are hang guards only.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mw_bus::testkit::{Recorded, RecordingSink};
use mw_bus::{BusBuilder, BusConfig, Component, Parts, Publisher, RunningBus, SourceRegistry};
use mw_model::{EventKind, Quality, Sample, TagPath, Value};
use mw_sparkplug_node::{SparkplugEdgeComponent, SparkplugHostComponent};
use serde_json::Value as J;

use mw_testpeers::{MOSQUITTO, Mosquitto};
const GUARD: Duration = Duration::from_secs(20);

fn python() -> Option<String> {
    let py = std::env::var("MW_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/millwright/venv/bin/python",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    if !Path::new(MOSQUITTO).exists() {
        eprintln!("SKIP: {MOSQUITTO} is not installed (apt-get install mosquitto)");
        return None;
    }
    let ok = Command::new(&py)
        .args(["-c", "import pysparkplug"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!(
            "SKIP: {py} cannot import pysparkplug (set MW_PYTHON, or run scripts/setup-test-env.sh)"
        );
        return None;
    }
    Some(py)
}

fn temp_dir(name: &str) -> PathBuf {
    mw_testpeers::temp_dir("spb", name)
}

/// A peer script process: JSON lines from its stdout, commands to its stdin; killed on drop.
struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<J>,
    seen: Vec<J>,
}

impl Peer {
    fn start(python: &str, args: &[&str]) -> Peer {
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/peers/sparkplug_peer.py");
        let mut child = Command::new(python)
            .arg(script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the peer starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(j) = serde_json::from_str::<J>(&line)
                    && tx.send(j).is_err()
                {
                    return;
                }
            }
        });
        let stdin = child.stdin.take();
        let mut p = Peer {
            child,
            stdin,
            lines,
            seen: Vec::new(),
        };
        p.expect("ready", |j| j["ready"] == true);
        p
    }

    fn send(&mut self, cmd: &str) {
        let s = self.stdin.as_mut().expect("stdin");
        writeln!(s, "{cmd}").expect("write to the peer");
        s.flush().unwrap();
    }

    /// The first line (after those already taken) matching `pred`; the others are kept in
    /// `seen`. Panics after the hang guard.
    fn expect(&mut self, what: &str, pred: impl Fn(&J) -> bool) -> J {
        let deadline = Instant::now() + GUARD;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(j) if pred(&j) => return j,
                Ok(j) => self.seen.push(j),
                Err(_) => panic!(
                    "the peer printed no {what} within {GUARD:?}; it printed:\n{}",
                    self.seen
                        .iter()
                        .map(J::to_string)
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
            }
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn metric<'a>(msg: &'a J, name: &str) -> Option<&'a J> {
    msg["metrics"]
        .as_array()?
        .iter()
        .find(|m| m["name"] == name)
}

fn is(msg: &J, kind: &str, topic_end: &str) -> bool {
    msg["type"] == kind
        && msg["topic"]
            .as_str()
            .is_some_and(|t| t.ends_with(topic_end))
}

fn sample(tag: &str, value: Value, quality: Quality) -> Sample {
    let ts = mw_model::now_ns();
    Sample {
        tag: TagPath::new(tag).unwrap(),
        value,
        quality,
        source_ts: ts,
        receive_ts: ts,
    }
}

/// A bus with one component built from `toml`, a recording sink and a publisher of its own.
struct Rig {
    bus: Option<RunningBus>,
    publisher: Option<Publisher>,
    recorded: Recorded,
}

fn rig(component: &dyn Component, toml: &str) -> Rig {
    rig_on(component, toml, Parts::new())
}

/// [`rig`] on parts prepared by the test (writable tags registered, …).
fn rig_on(component: &dyn Component, toml: &str, mut parts: Parts) -> Rig {
    let cfg = match mw_bus::config_registry(&[component]).parse(toml, "test.toml") {
        Ok(c) => c,
        Err(d) => panic!("config:\n{d}\n{toml}"),
    };
    component
        .build(&cfg, &mut parts)
        .expect("the component builds");
    let mut b = BusBuilder::new(BusConfig::default());
    let rec = RecordingSink::new("rec", 1024);
    let recorded = rec.recorded();
    b.sink(Box::new(rec));
    b.parts(parts);
    let publisher = b.publisher();
    let bus = b.start(&SourceRegistry::new());
    Rig {
        bus: Some(bus),
        publisher: Some(publisher),
        recorded,
    }
}

impl Rig {
    async fn publish(&self, samples: Vec<Sample>) {
        self.publisher
            .as_ref()
            .unwrap()
            .publish(samples)
            .await
            .unwrap();
    }

    async fn stop(mut self) {
        drop(self.publisher.take());
        if let Some(b) = self.bus.take() {
            assert!(b.stop(Duration::from_secs(5)).await, "the bus stops");
        }
    }
}

fn edge_toml(dir: &Path, port: u16) -> String {
    format!(
        "[site]\ndata_dir = {:?}\n[sparkplug.edge]\nurl = \"mqtt://127.0.0.1:{port}\"\ngroup_id = \"G1\"\nedge_node_id = \"E1\"\nbackoff_max_ms = 300\n",
        dir.join("data").display().to_string()
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn our_edge_node_is_read_by_pysparkplug_dies_with_its_bdseq_and_is_reborn_with_the_next() {
    let Some(py) = python() else { return };
    let dir = temp_dir("edge");
    let broker = Mosquitto::anonymous(&dir);
    let port = broker.port.to_string();
    let mut peer = Peer::start(&py, &["listen", &port, "G1"]);

    let rt = runtime();
    let rig1 = rt.block_on(async { rig(&SparkplugEdgeComponent, &edge_toml(&dir, broker.port)) });
    let nbirth = peer.expect("NBIRTH", |j| is(j, "NBIRTH", "/E1"));
    assert_eq!(metric(&nbirth, "bdSeq").unwrap()["value"], 0, "{nbirth}");
    assert_eq!(nbirth["seq"], 0);

    rt.block_on(rig1.publish(vec![
        sample("acme/plant/pump1/flow", Value::F64(12.5), Quality::Good),
        sample("acme/plant/pump1/running", Value::Bool(true), Quality::Good),
        sample("acme/plant/tank1/level", Value::I64(40), Quality::Good),
    ]));
    let pump = peer.expect("DBIRTH of pump1", |j| is(j, "DBIRTH", "/E1/pump1"));
    assert_eq!(metric(&pump, "flow").unwrap()["value"], 12.5, "{pump}");
    assert_eq!(
        metric(&pump, "flow").unwrap()["datatype"],
        10,
        "Double: {pump}"
    );
    assert_eq!(metric(&pump, "running").unwrap()["value"], true, "{pump}");
    let tank = peer.expect("DBIRTH of tank1", |j| is(j, "DBIRTH", "/E1/tank1"));
    assert_eq!(metric(&tank, "level").unwrap()["value"], 40, "{tank}");

    // report by exception: the changed value, its name resolved by the peer from the alias
    rt.block_on(rig1.publish(vec![
        sample("acme/plant/pump1/flow", Value::F64(13.0), Quality::Good),
        sample("acme/plant/pump1/running", Value::Bool(true), Quality::Good),
    ]));
    let d = peer.expect("DDATA of pump1", |j| is(j, "DDATA", "/E1/pump1"));
    assert_eq!(
        d["metrics"].as_array().unwrap().len(),
        1,
        "only the change: {d}"
    );
    assert_eq!(metric(&d, "flow").unwrap()["value"], 13.0, "{d}");

    // a new tag of a known device: born with the others, never sent as DATA first
    rt.block_on(rig1.publish(vec![sample(
        "acme/plant/pump1/speed",
        Value::F64(1450.0),
        Quality::Good,
    )]));
    let m = peer.expect("the next message of pump1", |j| {
        j["topic"]
            .as_str()
            .is_some_and(|t| t.ends_with("/E1/pump1"))
    });
    assert!(is(&m, "DBIRTH", "/E1/pump1"), "{m}");
    assert_eq!(metric(&m, "speed").unwrap()["value"], 1450.0, "{m}");
    assert_eq!(metric(&m, "flow").unwrap()["value"], 13.0, "{m}");

    // a bad sample is a null with its quality, not a value
    rt.block_on(rig1.publish(vec![sample(
        "acme/plant/pump1/flow",
        Value::F64(f64::NAN),
        Quality::Bad("timeout".into()),
    )]));
    let d = peer.expect("DDATA of the bad flow", |j| is(j, "DDATA", "/E1/pump1"));
    let flow = metric(&d, "flow").unwrap();
    assert_eq!(flow["is_null"], true, "{d}");
    assert_eq!(flow["quality"], 0, "{d}");

    // a rebirth asked by the peer: every birth again, same session (bdSeq)
    peer.send("rebirth E1");
    let again = peer.expect("NBIRTH after Rebirth", |j| is(j, "NBIRTH", "/E1"));
    assert_eq!(metric(&again, "bdSeq").unwrap()["value"], 0, "{again}");
    let pump = peer.expect("DBIRTH of pump1 after Rebirth", |j| {
        is(j, "DBIRTH", "/E1/pump1")
    });
    assert_eq!(metric(&pump, "flow").unwrap()["quality"], 0, "{pump}");

    // abrupt death: every task and socket dropped without DISCONNECT
    drop(rig1);
    rt.shutdown_background();
    let death = peer.expect("NDEATH (the will)", |j| is(j, "NDEATH", "/E1"));
    assert_eq!(metric(&death, "bdSeq").unwrap()["value"], 0, "{death}");

    // restart on the same data dir: the next bdSeq
    let rt = runtime();
    let rig2 = rt.block_on(async { rig(&SparkplugEdgeComponent, &edge_toml(&dir, broker.port)) });
    let nbirth = peer.expect("NBIRTH after the restart", |j| is(j, "NBIRTH", "/E1"));
    assert_eq!(metric(&nbirth, "bdSeq").unwrap()["value"], 1, "{nbirth}");
    // a stop says goodbye itself, with this session's bdSeq
    rt.block_on(rig2.stop());
    let death = peer.expect("NDEATH of the stop", |j| is(j, "NDEATH", "/E1"));
    assert_eq!(metric(&death, "bdSeq").unwrap()["value"], 1, "{death}");
    assert_eq!(
        std::fs::read_to_string(dir.join("data/sparkplug/G1/E1/bdseq")).unwrap(),
        "2\n",
        "the next session's bdSeq is on disk"
    );
    peer.send("quit");
}

fn latest(rec: &Recorded, tag: &str) -> Option<Sample> {
    rec.samples().into_iter().rfind(|s| s.tag.as_str() == tag)
}

async fn wait_sample(rec: &Recorded, tag: &str, what: &str, pred: impl Fn(&Sample) -> bool) {
    let deadline = Instant::now() + GUARD;
    loop {
        if latest(rec, tag).is_some_and(|s| pred(&s)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{tag}: no {what} within {GUARD:?}; latest {:?}",
            latest(rec, tag)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn pysparkplug_edge_node_becomes_samples_of_our_host_and_goes_stale_on_its_death() {
    let Some(py) = python() else { return };
    let dir = temp_dir("host");
    let broker = Mosquitto::anonymous(&dir);
    let rt = runtime();
    let toml = format!(
        "[sparkplug.host]\nurl = \"mqtt://127.0.0.1:{}\"\nhost_id = \"mwhost\"\ngroups = [\"PG\"]\nbackoff_max_ms = 300\n",
        broker.port
    );
    let r = rt.block_on(async { rig(&SparkplugHostComponent, &toml) });
    // the peer connects once our retained online STATE is there
    let mut peer = Peer::start(&py, &["edge", &broker.port.to_string(), "mwhost"]);
    let rec = r.recorded.clone();
    rt.block_on(async {
        let good = |v: Value| move |s: &Sample| s.value == v && s.quality.is_good();
        wait_sample(&rec, "PG/pyedge/temp", "21.5", good(Value::F64(21.5))).await;
        wait_sample(&rec, "PG/pyedge/count", "7", good(Value::I64(7))).await;
        wait_sample(&rec, "PG/pyedge/pump/speed", "900", good(Value::F32(900.0))).await;
    });
    assert!(
        rec.events()
            .iter()
            .any(|e| e.source == "sparkplug-host/PG/pyedge"
                && matches!(e.kind, EventKind::ConnectionChange { up: true, .. })),
        "an online event for the node: {:?}",
        rec.events()
    );
    if let Ok(o) = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &broker.port.to_string()])
        .args(["-t", "spBv1.0/STATE/mwhost", "-C", "1", "-W", "10"])
        .output()
    {
        let state: J = serde_json::from_slice(&o.stdout).expect("the retained STATE is JSON");
        assert_eq!(state["online"], true, "{state}");
        assert!(state["timestamp"].is_u64(), "{state}");
    }

    peer.send("temp 23.25");
    peer.expect("temp sent", |j| j["done"] == "temp");
    peer.send("speed 950");
    peer.expect("speed sent", |j| j["done"] == "speed");
    rt.block_on(async {
        wait_sample(&rec, "PG/pyedge/temp", "23.25", |s| {
            s.value == Value::F64(23.25) && s.quality.is_good()
        })
        .await;
        wait_sample(&rec, "PG/pyedge/pump/speed", "950", |s| {
            s.value == Value::F32(950.0) && s.quality.is_good()
        })
        .await;
    });

    // the peer dies without DISCONNECT: the broker's NDEATH makes everything stale
    peer.send("kill");
    let stale = |s: &Sample| s.quality == Quality::Bad("stale: NDEATH".into());
    rt.block_on(async {
        wait_sample(&rec, "PG/pyedge/temp", "stale quality", stale).await;
        wait_sample(&rec, "PG/pyedge/count", "stale quality", stale).await;
        wait_sample(&rec, "PG/pyedge/pump/speed", "stale quality", stale).await;
    });
    assert_eq!(
        latest(&rec, "PG/pyedge/temp").unwrap().value,
        Value::F64(23.25),
        "the stale sample keeps the last value"
    );
    assert!(
        rec.events()
            .iter()
            .any(|e| e.source == "sparkplug-host/PG/pyedge"
                && matches!(e.kind, EventKind::ConnectionChange { up: false, .. })),
        "an offline event for the node"
    );
    rt.block_on(r.stop());
}

/// A DCMD from pysparkplug reaches the owner of the tag through the write registry; the value
/// the owner then reports goes back out as DDATA; refusals (by the owner, for a metric that is
/// not writable, of the wrong type) write nothing else, and every write the owner saw is audited.
#[test]
fn a_dcmd_from_pysparkplug_writes_the_tag_through_its_owner_and_comes_back_as_ddata() {
    let Some(py) = python() else { return };
    let dir = temp_dir("edge-write");
    let broker = Mosquitto::anonymous(&dir);
    let port = broker.port.to_string();
    let mut peer = Peer::start(&py, &["listen", &port, "G1"]);
    let rt = runtime();

    let sp = TagPath::new("acme/plant/pump1/speed_sp").unwrap();
    let parts = Parts::new();
    let mut owner = parts
        .writes()
        .register("test/plc", [sp.clone()], 4)
        .unwrap();
    let rig = rt.block_on(async {
        rig_on(
            &SparkplugEdgeComponent,
            &edge_toml(&dir, broker.port),
            parts,
        )
    });
    let publisher = rig.publisher.clone().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    // The owner: takes values up to 3000 and then reports them, as a device poller would.
    let owner_task = rt.spawn(async move {
        while let Some(req) = owner.recv().await {
            seen2.lock().unwrap().push(req.value.clone());
            match req.value {
                Value::U64(v) if v <= 3000 => {
                    let tag = req.tag.clone();
                    req.reply(Ok(()));
                    let _ = publisher
                        .publish(vec![sample(tag.as_str(), Value::U64(v), Quality::Good)])
                        .await;
                }
                _ => req.refuse("above 3000"),
            }
        }
    });
    peer.expect("NBIRTH", |j| is(j, "NBIRTH", "/E1"));
    rt.block_on(rig.publish(vec![
        sample(sp.as_str(), Value::U64(1000), Quality::Good),
        sample("acme/plant/pump1/flow", Value::F64(12.5), Quality::Good),
    ]));
    let birth = peer.expect("DBIRTH of pump1", |j| is(j, "DBIRTH", "/E1/pump1"));
    assert_eq!(
        metric(&birth, "speed_sp").unwrap()["value"],
        1000,
        "{birth}"
    );

    peer.send("dcmd E1 pump1 speed_sp UINT64 1500");
    let d = peer.expect("DDATA with the written value", |j| {
        is(j, "DDATA", "/E1/pump1")
    });
    assert_eq!(metric(&d, "speed_sp").unwrap()["value"], 1500, "{d}");

    // Refused by the owner, not writable, wrong type: nothing comes back as data.
    peer.send("dcmd E1 pump1 speed_sp UINT64 5000");
    peer.send("dcmd E1 pump1 flow DOUBLE 3.0");
    peer.send("dcmd E1 pump1 speed_sp DOUBLE 1.0");
    peer.send("dcmd E1 pump1 speed_sp UINT64 2000");
    let d = peer.expect("DDATA of the last write", |j| is(j, "DDATA", "/E1/pump1"));
    assert_eq!(
        d["metrics"].as_array().unwrap().len(),
        1,
        "only the written metric: {d}"
    );
    assert_eq!(metric(&d, "speed_sp").unwrap()["value"], 2000, "{d}");
    assert_eq!(
        *seen.lock().unwrap(),
        vec![Value::U64(1500), Value::U64(5000), Value::U64(2000)],
        "the owner saw the writable, well-typed commands only"
    );

    let audits = || {
        rig.recorded
            .events()
            .into_iter()
            .filter_map(|e| match e.kind {
                EventKind::Audit {
                    action,
                    outcome,
                    detail,
                    ..
                } if action == "tag.write" => Some((outcome, detail, e.asset)),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while audits().len() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let a = audits();
    let outcomes: Vec<&str> = a.iter().map(|(o, ..)| o.as_str()).collect();
    assert_eq!(outcomes, ["ok", "refused", "ok"], "{a:?}");
    assert!(
        a[1].1.contains("above 3000") && a[1].1.contains("DCMD pump1/speed_sp"),
        "{a:?}"
    );
    assert_eq!(
        a[0].2.as_deref(),
        Some(sp.as_str()),
        "the audit's target is the tag"
    );
    assert!(
        a[0].1.contains("old=1000 value=1500"),
        "old and new value: {a:?}"
    );
    owner_task.abort(); // it holds a publisher: the bus stops once every publisher is gone
    let _ = rt.block_on(owner_task);
    rt.block_on(rig.stop());
    peer.send("quit");
}
