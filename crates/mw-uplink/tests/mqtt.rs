//! The MQTT uplink (`[[uplink]] url = "mqtt://…"`) against a real Mosquitto (Debian's; ephemeral
//! loopback port, killed by pid) with `mosquitto_sub` as the consumer: every committed sample
//! arrives on its UNS topic `{prefix}/{tag path}` in order per tag, events on
//! `{prefix}/$events/{kind}`; a connection cut (a TCP relay between the uplink and the broker is
//! closed, then opened again) loses nothing — the backlog arrives flagged historical, and copies
//! (at least once) are the only difference. Skipped, with a message, when Mosquitto is absent.

mod common;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{sample, temp_dir, uplink};
use mw_bus::{Batch, BusBuilder, BusConfig, SourceRegistry};
use mw_model::{Event, EventKind};
use tokio::sync::Notify;

const TAGS: usize = 3;

/// A TCP relay on `listen` to `target`; `cut()` closes it and every connection through it,
/// `open()` listens again on the same port.
struct Relay {
    listen: u16,
    target: u16,
    stop: Arc<Notify>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Relay {
    fn new(target: u16) -> Relay {
        let mut r = Relay {
            listen: mw_testpeers::free_port(),
            target,
            stop: Arc::new(Notify::new()),
            task: None,
        };
        r.open();
        r
    }

    fn open(&mut self) {
        let listener = std::net::TcpListener::bind(("127.0.0.1", self.listen)).expect("relay bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let listener = tokio::net::TcpListener::from_std(listener).expect("relay listener");
        let (stop, target) = (self.stop.clone(), self.target);
        self.task = Some(tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    () = stop.notified() => break,
                    a = listener.accept() => {
                        let Ok((mut inbound, _)) = a else { continue };
                        conns.spawn(async move {
                            if let Ok(mut out) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await {
                                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                            }
                        });
                    }
                }
            }
            conns.abort_all(); // every connection through the relay is cut
        }));
    }

    async fn cut(&mut self) {
        self.stop.notify_one();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

struct Sub(Child);

impl Drop for Sub {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Every (topic, JSON) line `mosquitto_sub -v` wrote to `file`.
fn received(file: &std::path::Path) -> Vec<(String, serde_json::Value)> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (topic, json) = l.split_once(' ')?;
            Some((topic.to_owned(), serde_json::from_str(json).ok()?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_and_events_reach_the_broker_on_uns_topics_through_a_cut() {
    if !mw_testpeers::mosquitto_present(&["mosquitto_sub", "stdbuf"]) {
        eprintln!(
            "SKIPPED: mosquitto / mosquitto_sub is not installed (scripts/setup-test-env.sh installs them)"
        );
        return;
    }
    let dir = temp_dir("mqtt-uplink");
    let broker = mw_testpeers::Mosquitto::anonymous(&dir);
    let out = dir.join("sub.txt");
    let sub = Sub(Command::new("stdbuf")
        .args(["-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p"])
        .arg(broker.port.to_string())
        .args(["-q", "1", "-v", "-t", "uns/#"])
        .stdout(std::fs::File::create(&out).expect("sub file"))
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto_sub"));
    std::thread::sleep(Duration::from_millis(300)); // subscribed
    let mut relay = Relay::new(broker.port);
    let toml = format!(
        "[[uplink]]\nname = \"m\"\nurl = \"mqtt://127.0.0.1:{}\"\nsite = \"test\"\ntopic_prefix = \"uns\"\nbatch = 32\n\
         [uplink.buffer]\ndir = \"{}\"\nack_persist_ms = 100\n",
        relay.listen,
        dir.join("buf").display()
    );
    let sink = uplink(&toml);
    let (status, buffer) = (sink.status(), sink.buffer());
    let mut bus = BusBuilder::new(BusConfig::default());
    bus.sink(Box::new(sink));
    let p = bus.publisher();
    let running = bus.start(&SourceRegistry::new());
    let base = mw_model::now_ns();
    let n = 300u64;
    for i in 0..n {
        if i == n / 3 {
            relay.cut().await;
        }
        if i == 2 * n / 3 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            relay.open();
        }
        let mut b = Batch::from_samples((0..TAGS).map(|k| sample(k, i, base)).collect());
        if i == 0 {
            b.events.push(Event::new(
                base,
                "modbus/plc1",
                EventKind::ConnectionChange {
                    up: true,
                    reason: None,
                },
            ));
        }
        let a = p.send_with_ack(b).await.expect("send");
        assert!(a.outcome().await.is_committed());
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
    tokio::time::sleep(Duration::from_millis(300)).await; // the last lines reach the file
    let got = received(&out);
    let events: Vec<_> = got
        .iter()
        .filter(|(t, _)| t.starts_with("uns/$events/"))
        .collect();
    assert_eq!(events.len(), 1, "one event");
    assert_eq!(events[0].0, "uns/$events/connection_change");
    let mut seen: HashMap<(String, i64), u32> = HashMap::new();
    let mut last: HashMap<(String, bool), i64> = HashMap::new();
    let mut historical = 0;
    for (topic, v) in got.iter().filter(|(t, _)| !t.starts_with("uns/$events/")) {
        let tag = v["tag"].as_str().expect("tag").to_owned();
        assert_eq!(topic, &format!("uns/{tag}"), "UNS topic");
        let ts = v["ts"].as_i64().expect("ts");
        let h = v["historical"].as_bool().expect("historical");
        historical += usize::from(h);
        let count = seen.entry((tag.clone(), ts)).or_default();
        *count += 1;
        // first arrivals keep the tag's order within their flow (copies resent after the
        // cut repeat an earlier ts and are left out of this check)
        if *count == 1
            && let Some(prev) = last.insert((tag.clone(), h), ts)
        {
            let flow = if h { "historical" } else { "live" };
            assert!(prev < ts, "{tag} ({flow}): {ts} after {prev}");
        }
    }
    assert_eq!(
        seen.len() as u64,
        n * TAGS as u64,
        "every sample at least once"
    );
    assert!(historical > 0, "the backlog was flagged historical");
    let copies: u32 = seen.values().map(|c| c - 1).sum();
    eprintln!("copies after the cut: {copies} (at least once)");
    assert!(
        status.get().errors >= 1,
        "the cut broke a session: {:?}",
        status.get()
    );
    drop(p);
    assert!(running.stop(Duration::from_secs(5)).await);
    drop(sub);
    let _ = std::fs::remove_dir_all(&dir);
}
