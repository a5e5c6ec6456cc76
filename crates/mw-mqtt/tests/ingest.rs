//! `[[mqtt.broker.ingest]]`: what clients publish to the embedded broker becomes samples on the
//! bus, in process. Messages come from clients not written here (`mosquitto_pub`, rumqttc); the
//! source meets the bus's source contract (`mw_bus::testkit::check_source`); a stalled bus holds
//! publishers back through the broker's flow control instead of dropping.
//!
//! The tests with mosquitto_pub skip, saying why, when mosquitto-clients is not installed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mw_bus::testkit::{Recorded, RecordingSink, SourceLimits, check_source};
use mw_bus::{
    BoxFuture, BusBuilder, BusConfig, Component, Parts, Sink, SinkInput, SinkOptions,
    SourceRegistry, Wants,
};
use mw_model::{Quality, Value};
use mw_mqtt::client::config::{PayloadMap, PlainType, Subscription};
use mw_mqtt::ingest::IngestSource;
use mw_mqtt::{Acl, Broker, BrokerConfig, MqttBrokerComponent};

fn clients_present() -> bool {
    mw_testpeers::tools_present(&["mosquitto_pub"])
}

fn temp_dir(name: &str) -> PathBuf {
    mw_testpeers::temp_dir("mqtt-ingest", name)
}

use mw_testpeers::free_port;

async fn wait_for(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn mosquitto_pub(port: u16, topic: &str, msg: &str) {
    let out = tokio::process::Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args(["-t", topic, "-m", msg])
        .kill_on_drop(true)
        .output()
        .await
        .expect("mosquitto_pub runs");
    assert!(
        out.status.success(),
        "mosquitto_pub {topic}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn values_of(rec: &Recorded, tag: &str) -> Vec<(Value, Quality)> {
    rec.samples()
        .into_iter()
        .filter(|s| s.tag.as_str() == tag)
        .map(|s| (s.value, s.quality))
        .collect()
}

/// Through the component and its config: plain and JSON rules, a bad payload, and the broker's
/// own UNS publishes not coming back as samples (an ingest rule covering the UNS prefix).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_rules_turn_mosquitto_pub_messages_into_samples() {
    if !clients_present() {
        return;
    }
    let dir = temp_dir("config");
    let port = free_port();
    let toml = format!(
        r#"
[site]
data_dir = "{data}"
[mqtt.broker]
address = "127.0.0.1:{port}"
anonymous = true
uns_prefix = "uns"
[[mqtt.broker.ingest]]
topic = "plant/+/temp"
tag = "acme/p1/{{2}}/temp"
[[mqtt.broker.ingest]]
topic = "plant/+/json"
payload = "json"
field = "data.v"
tag = "acme/p1/{{2}}/j"
[[mqtt.broker.ingest]]
topic = "uns/#"
tag = "loop/{{topic}}"
"#,
        data = dir.join("data").display()
    );
    let registry = mw_bus::config_registry(&[&MqttBrokerComponent as &dyn Component]);
    let cfg = registry
        .parse(&toml, "test.toml")
        .unwrap_or_else(|d| panic!("config:\n{d}\n{toml}"));
    let mut parts = Parts::new();
    MqttBrokerComponent
        .build(&cfg, &mut parts)
        .expect("broker builds");
    let mut b = BusBuilder::new(BusConfig::default());
    let rec = RecordingSink::new("rec", 1024);
    let recorded = rec.recorded();
    b.sink(Box::new(rec));
    b.parts(parts);
    let sources = SourceRegistry::new();
    let bus = b.start(&sources);

    mosquitto_pub(port, "plant/m1/temp", "21.5").await;
    mosquitto_pub(port, "plant/m1/json", r#"{"data":{"v":7}}"#).await;
    mosquitto_pub(port, "plant/m2/temp", "warm").await;
    mosquitto_pub(port, "elsewhere/m1/temp", "3").await;
    wait_for("three samples", Duration::from_secs(10), || {
        recorded.samples().len() >= 3
    })
    .await;
    assert_eq!(
        values_of(&recorded, "acme/p1/m1/temp"),
        [(Value::F64(21.5), Quality::Good)]
    );
    assert_eq!(
        values_of(&recorded, "acme/p1/m1/j"),
        [(Value::I64(7), Quality::Good)]
    );
    let bad = values_of(&recorded, "acme/p1/m2/temp");
    assert_eq!(bad.len(), 1);
    assert!(
        matches!(&bad[0].1, Quality::Bad(r) if r.contains("not a number")),
        "{bad:?}"
    );
    // the UNS sink published those samples under uns/… (retained): a subscriber sees them
    let out = tokio::process::Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-t", "uns/#", "-v", "-C", "3", "-W", "10"])
        .kill_on_drop(true)
        .output()
        .await
        .expect("mosquitto_sub runs");
    let uns = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        uns.contains("uns/acme/p1/m1/temp {\"value\":21.5"),
        "the UNS sink ran: {uns}"
    );
    // the ingest works in order: once this one is a sample, the UNS publishes before it were
    // taken too — and none of them became a sample
    mosquitto_pub(port, "plant/m3/temp", "1").await;
    wait_for("the marker sample", Duration::from_secs(10), || {
        !values_of(&recorded, "acme/p1/m3/temp").is_empty()
    })
    .await;
    let tags: Vec<String> = recorded
        .samples()
        .iter()
        .map(|s| s.tag.as_str().to_owned())
        .collect();
    assert_eq!(
        tags,
        [
            "acme/p1/m1/temp",
            "acme/p1/m1/j",
            "acme/p1/m2/temp",
            "acme/p1/m3/temp"
        ],
        "no sample from elsewhere/… nor from the broker's own UNS publishes"
    );
    let snap = sources.snapshot();
    assert!(
        snap.iter()
            .any(|s| s.component == "mqtt-broker" && s.instance == "ingest"),
        "the ingest is a registered source"
    );
    assert!(bus.stop(Duration::from_secs(5)).await, "bus stops in 5 s");
    let _ = std::fs::remove_dir_all(&dir);
}

fn rule(filter: &str, tag: &str) -> Subscription {
    Subscription {
        filter: filter.into(),
        qos: 0,
        payload: PayloadMap::Plain(PlainType::Number),
        tag: mw_mqtt::client::config::parse_tag_template(tag).unwrap(),
        unit: None,
    }
}

async fn broker_on_loopback(cfg: BrokerConfig) -> (Broker, u16) {
    let broker = Broker::new(cfg, None, Acl::allow_all());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(mw_mqtt::listen(broker.clone(), l, None));
    (broker, port)
}

/// A rumqttc client publishing `count` messages `1..=count` on `topic` (QoS 1, at most 20 in
/// flight); returns how many PUBACKs it got when it is done or `within` ran out.
fn rumqttc_publisher(
    port: u16,
    topic: &'static str,
    count: u64,
    within: Duration,
) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut o = rumqttc::MqttOptions::new(format!("pub-{port}"), "127.0.0.1", port);
        o.set_inflight(20);
        let (client, mut lp) = rumqttc::AsyncClient::new(o, 64);
        let sender = tokio::spawn(async move {
            for i in 1..=count {
                if client
                    .publish(topic, rumqttc::QoS::AtLeastOnce, false, i.to_string())
                    .await
                    .is_err()
                {
                    break;
                }
            }
            client
        });
        let deadline = tokio::time::Instant::now() + within;
        let mut acked = 0;
        while acked < count {
            match tokio::time::timeout_at(deadline, lp.poll()).await {
                Ok(Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_)))) => acked += 1,
                Ok(Ok(_)) => {}
                Ok(Err(e)) => panic!("rumqttc: {e}"),
                Err(_) => break,
            }
        }
        let client = sender.await.unwrap();
        let _ = client.disconnect().await;
        acked
    })
}

/// The bus's source contract: publishes in order, stalls with a stalled bus, stops promptly.
/// Messages come from a rumqttc client publishing for the whole check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_source_meets_the_source_contract() {
    let (broker, port) = broker_on_loopback(BrokerConfig {
        allow_anonymous: true,
        ..BrokerConfig::default()
    })
    .await;
    let publisher = tokio::spawn(async move {
        let o = rumqttc::MqttOptions::new("steady", "127.0.0.1", port);
        let (client, mut lp) = rumqttc::AsyncClient::new(o, 16);
        tokio::spawn(async move { while lp.poll().await.is_ok() {} });
        // bounded: at most 60 s of messages, every 2 ms
        for i in 0..30_000u64 {
            if client
                .publish("contract/v", rumqttc::QoS::AtMostOnce, false, i.to_string())
                .await
                .is_err()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    let b = broker.clone();
    let report = check_source(
        move || {
            Box::new(IngestSource::new(&b, vec![rule("contract/+", "contract/{2}")], 64).unwrap())
        },
        SourceLimits {
            min_samples: 20,
            ..SourceLimits::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("source contract: {e}"));
    assert!(
        report
            .samples
            .iter()
            .all(|s| s.tag.as_str() == "contract/v")
    );
    publisher.abort();
    broker.shutdown();
}

/// Reads nothing until its gate opens; then records.
struct GatedSink {
    gate: Arc<tokio::sync::Notify>,
    inner: RecordingSink,
}

impl Sink for GatedSink {
    fn options(&self) -> SinkOptions {
        SinkOptions::new("gated", 1).wants(Wants::Samples)
    }

    fn run(self: Box<Self>, input: SinkInput) -> BoxFuture<()> {
        Box::pin(async move {
            self.gate.notified().await;
            Box::new(self.inner).run(input).await
        })
    }
}

/// While the bus is stalled the ingest stops taking messages, its queue fills and the broker
/// stops reading the publisher (flow control), so the publisher's QoS 1 window closes; when the
/// bus drains, every message arrives, in order, and nothing was dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_bus_holds_publishers_back_without_loss() {
    const N: u64 = 3000;
    let (broker, port) = broker_on_loopback(BrokerConfig {
        allow_anonymous: true,
        max_publish_wait: Duration::from_secs(120),
        ..BrokerConfig::default()
    })
    .await;
    let gate = Arc::new(tokio::sync::Notify::new());
    let rec = RecordingSink::new("rec", 1);
    let recorded = rec.recorded();
    let mut b = BusBuilder::new(BusConfig {
        capacity: 1,
        max_pending_acks: 16,
    });
    b.sink(Box::new(GatedSink {
        gate: gate.clone(),
        inner: rec,
    }));
    b.source(Box::new(
        IngestSource::new(&broker, vec![rule("held/+", "held/{2}")], 8).unwrap(),
    ));
    let sources = SourceRegistry::new();
    let bus = b.start(&sources);
    let publisher = rumqttc_publisher(port, "held/v", N, Duration::from_secs(60));
    // the publisher gets held back: what the broker took stops growing, short of N
    let mut last = u64::MAX;
    let mut same = 0;
    while same < 10 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = broker
            .stats()
            .received
            .load(std::sync::atomic::Ordering::Relaxed);
        if now == last {
            same += 1;
        } else {
            same = 0;
            last = now;
        }
    }
    // what can be held: 2 × 8 queued (an online queue takes up to twice its size before the
    // publisher waits), a batch of at most MAX_BATCH_MESSAGES in each of the source, the
    // ingress, the fan-out and the sink queue, 20 in flight
    let bound = 16 + 4 * mw_mqtt::ingest::MAX_BATCH_MESSAGES as u64 + 20;
    assert!(
        last > 0 && last <= bound,
        "while the bus is stalled the broker took {last} of {N} messages (at most {bound} expected)"
    );
    assert!(recorded.samples().is_empty());
    gate.notify_one();
    let acked = publisher.await.unwrap();
    assert_eq!(acked, N, "every publish acknowledged once the bus drained");
    let deadline = Instant::now() + Duration::from_secs(30);
    while (recorded.samples().len() as u64) < N && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let values: Vec<Value> = recorded.samples().into_iter().map(|s| s.value).collect();
    let want: Vec<Value> = (1..=N as i64).map(Value::I64).collect();
    if let Some(i) = (0..want.len()).find(|&i| values.get(i) != Some(&want[i])) {
        panic!(
            "every message, in order, once: {} samples, the first difference at #{i}: {:?} instead of {:?}",
            values.len(),
            values.get(i),
            want[i]
        );
    }
    assert_eq!(values.len(), want.len());
    let st = broker.stats();
    assert_eq!(
        st.dropped_slow_consumer
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    assert!(bus.stop(Duration::from_secs(5)).await);
    broker.shutdown();
}

/// A durable sink that commits each delivery only once its gate is open (or fails them all).
struct HeldDurableSink {
    open: tokio::sync::watch::Receiver<bool>,
    fail: bool,
    committed: Arc<std::sync::atomic::AtomicUsize>,
}

impl Sink for HeldDurableSink {
    fn options(&self) -> SinkOptions {
        SinkOptions::new("held", 64).wants(Wants::Samples).durable()
    }

    fn run(mut self: Box<Self>, mut input: SinkInput) -> BoxFuture<()> {
        Box::pin(async move {
            while let Some(d) = input.recv().await {
                if self.fail {
                    d.fail("the test's sink refuses");
                    continue;
                }
                let _ = self.open.wait_for(|o| *o).await;
                self.committed
                    .fetch_add(d.batch.samples.len(), std::sync::atomic::Ordering::SeqCst);
                d.commit();
            }
        })
    }
}

/// rumqttc (3.1.1) publishing `n` QoS 1 messages; counts PUBACKs and disconnections until
/// `until` says stop.
async fn count_pubacks(
    port: u16,
    n: u64,
    within: Duration,
    acks: Arc<std::sync::atomic::AtomicU64>,
    drops: Arc<std::sync::atomic::AtomicU64>,
) {
    let mut o = rumqttc::MqttOptions::new(format!("acked-{port}"), "127.0.0.1", port);
    o.set_clean_session(false);
    let (client, mut lp) = rumqttc::AsyncClient::new(o, 64);
    for i in 1..=n {
        client
            .publish("acked/v", rumqttc::QoS::AtLeastOnce, false, i.to_string())
            .await
            .unwrap();
    }
    let deadline = tokio::time::Instant::now() + within;
    while let Ok(ev) = tokio::time::timeout_at(deadline, lp.poll()).await {
        match ev {
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => {
                acks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            Ok(_) => {}
            Err(_) => {
                drops.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// A QoS 1 publish an ingest rule takes is acknowledged only once the bus committed its samples
/// (every durable sink has them); a commit that fails acknowledges nothing and disconnects the
/// 3.1.1 client, which sends again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubacks_wait_for_the_bus_commit() {
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    for fail in [false, true] {
        let (broker, port) = broker_on_loopback(BrokerConfig {
            allow_anonymous: true,
            ..BrokerConfig::default()
        })
        .await;
        let (open_tx, open_rx) = tokio::sync::watch::channel(false);
        let committed = Arc::new(AtomicUsize::new(0));
        let mut b = BusBuilder::new(BusConfig::default());
        b.sink(Box::new(HeldDurableSink {
            open: open_rx,
            fail,
            committed: committed.clone(),
        }));
        b.source(Box::new(
            IngestSource::new(&broker, vec![rule("acked/+", "acked/{2}")], 64).unwrap(),
        ));
        let bus = b.start(&SourceRegistry::new());
        let (acks, drops) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let client = tokio::spawn(count_pubacks(
            port,
            5,
            Duration::from_secs(4),
            acks.clone(),
            drops.clone(),
        ));
        // the samples are on the bus (the sink holds them), but not committed: no PUBACK
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(
            acks.load(Ordering::SeqCst),
            0,
            "fail={fail}: acknowledged before the commit"
        );
        if fail {
            assert!(
                drops.load(Ordering::SeqCst) >= 1,
                "a failed commit disconnects the 3.1.1 client"
            );
        } else {
            open_tx.send(true).unwrap();
            wait_for(
                "five PUBACKs after the commit",
                Duration::from_secs(5),
                || acks.load(Ordering::SeqCst) == 5,
            )
            .await;
            assert_eq!(committed.load(Ordering::SeqCst), 5);
            assert_eq!(drops.load(Ordering::SeqCst), 0);
        }
        client.abort();
        drop(open_tx);
        assert!(bus.stop(Duration::from_secs(5)).await);
        broker.shutdown();
    }
}
