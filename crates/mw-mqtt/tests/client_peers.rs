//! The MQTT client against real brokers: Mosquitto (started here on an ephemeral loopback port
//! with a generated config, stopped by pid) and Millwright's own broker for MQTT 5. Messages
//! are published with `mosquitto_pub` and the sink's UNS publishes read with `mosquitto_sub`.
//!
//! Skips, saying why, when `mosquitto` or the mosquitto clients are not installed
//! (apt-get install mosquitto mosquitto-clients).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mw_bus::testkit::{Recorded, RecordingSink};
use mw_bus::{
    AckOutcome, Batch, BusBuilder, BusConfig, Component, Parts, Publisher, RunningBus,
    SourceRegistry, SourceState,
};
use mw_model::{EventKind, Quality, Sample, TagPath, Value};
use mw_mqtt::{MqttBrokerComponent, MqttClientComponent};

use mw_testpeers::{Mosquitto, free_port};

fn tools_present() -> bool {
    mw_testpeers::mosquitto_present(&["mosquitto_pub", "mosquitto_sub", "mosquitto_passwd"])
}

fn temp_dir(name: &str) -> PathBuf {
    mw_testpeers::temp_dir("mqttc", name)
}

fn registry() -> mw_config::Registry {
    mw_bus::config_registry(&[
        &MqttBrokerComponent as &dyn Component,
        &MqttClientComponent as &dyn Component,
    ])
}

/// A bus with the client of `toml` and a recording sink, plus a publisher to feed the
/// client's sink.
struct Rig {
    bus: Option<RunningBus>,
    publisher: Publisher,
    recorded: Recorded,
    registry: SourceRegistry,
}

impl Rig {
    fn start(toml: &str) -> Rig {
        let cfg = match registry().parse(toml, "test.toml") {
            Ok(c) => c,
            Err(d) => panic!("config:\n{d}\n{toml}"),
        };
        let mut parts = Parts::new();
        MqttClientComponent
            .build(&cfg, &mut parts)
            .expect("client builds");
        let mut b = BusBuilder::new(BusConfig::default());
        let rec = RecordingSink::new("rec", 1024);
        let recorded = rec.recorded();
        b.sink(Box::new(rec));
        b.parts(parts);
        let publisher = b.publisher();
        let registry = SourceRegistry::new();
        let bus = b.start(&registry);
        Rig {
            bus: Some(bus),
            publisher,
            recorded,
            registry,
        }
    }

    fn state(&self) -> SourceState {
        self.registry.snapshot()[0].state.clone()
    }

    async fn wait_up(&self) {
        wait_for("the client is up", Duration::from_secs(10), || {
            self.state() == SourceState::Up
        })
        .await;
    }

    fn samples_of(&self, tag: &str) -> Vec<Sample> {
        self.recorded
            .samples()
            .into_iter()
            .filter(|s| s.tag.as_str() == tag)
            .collect()
    }

    async fn stop(mut self) {
        drop(self.publisher);
        if let Some(b) = self.bus.take() {
            assert!(b.stop(Duration::from_secs(5)).await, "bus stops in 5 s");
        }
    }
}

async fn wait_for(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn pub_args(port: u16, extra: &[&str]) -> Vec<String> {
    let mut a = vec![
        "-h".to_string(),
        "127.0.0.1".into(),
        "-p".into(),
        port.to_string(),
    ];
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

/// Publishes with mosquitto_pub until `done` holds (the client's subscription may not be
/// active yet when the first message goes out).
async fn publish_until(
    port: u16,
    extra: &[&str],
    topic: &str,
    msg: &str,
    mut done: impl FnMut() -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = tokio::process::Command::new("mosquitto_pub")
            .args(pub_args(port, extra))
            .args(["-q", "1", "-t", topic, "-m", msg])
            .output()
            .await
            .expect("mosquitto_pub runs");
        assert!(
            out.status.success(),
            "mosquitto_pub failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for _ in 0..25 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            Instant::now() < deadline,
            "{topic} {msg:?} did not arrive in 10 s"
        );
    }
}

/// Reads `count` messages of `filter` with mosquitto_sub (`-v`: "topic payload" lines).
fn subscriber(port: u16, extra: &[&str], filter: &str, count: usize) -> tokio::process::Child {
    tokio::process::Command::new("mosquitto_sub")
        .args(pub_args(port, extra))
        .args([
            "-q",
            "1",
            "-v",
            "-W",
            "15",
            "-C",
            &count.to_string(),
            "-t",
            filter,
        ])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("mosquitto_sub runs")
}

async fn lines(child: tokio::process::Child) -> Vec<String> {
    let out = child.wait_with_output().await.unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn sample(tag: &str, v: Value, ts: i64) -> Sample {
    Sample::good(TagPath::new(tag).unwrap(), v, ts)
}

fn bad_reason(s: &Sample) -> &str {
    match &s.quality {
        Quality::Bad(r) => {
            assert!(matches!(s.value, Value::F64(v) if v.is_nan()), "{s:?}");
            r
        }
        q => panic!("expected a bad sample, got {q:?} for {s:?}"),
    }
}

fn client_toml(port: u16, extra: &str) -> String {
    format!(
        r#"
[[mqtt.client]]
name = "m1"
url = "mqtt://127.0.0.1:{port}"
backoff_max_ms = 300
{extra}
[[mqtt.client.subscribe]]
topic = "plant/+/temp"
qos = 1
tag = "acme/p1/{{2}}/temp"
unit = "Cel"

[[mqtt.client.subscribe]]
topic = "json/#"
payload = "json"
field = "data.value"
tag = "acme/j/{{2}}"

[[mqtt.client.subscribe]]
topic = "spBv1.0/g1/DDATA/+/+"
payload = "sparkplug"
tag = "acme/sp/{{5}}/{{metric}}"
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_and_json_payloads_from_mosquitto_become_tags() {
    if !tools_present() {
        return;
    }
    let dir = temp_dir("bridge");
    let port = free_port();
    let _m = Mosquitto::start(&dir, port, "allow_anonymous true");
    let rig = Rig::start(&client_toml(port, ""));
    rig.wait_up().await;

    publish_until(port, &[], "plant/line1/temp", "21.5", || {
        !rig.samples_of("acme/p1/line1/temp").is_empty()
    })
    .await;
    let s = &rig.samples_of("acme/p1/line1/temp")[0];
    assert_eq!((&s.value, &s.quality), (&Value::F64(21.5), &Quality::Good));
    publish_until(port, &[], "plant/line2/temp", "-7", || {
        !rig.samples_of("acme/p1/line2/temp").is_empty()
    })
    .await;
    assert_eq!(
        rig.samples_of("acme/p1/line2/temp")[0].value,
        Value::I64(-7)
    );
    publish_until(
        port,
        &[],
        "json/pump1",
        r#"{"data":{"value":3.25},"x":1}"#,
        || !rig.samples_of("acme/j/pump1").is_empty(),
    )
    .await;
    assert_eq!(rig.samples_of("acme/j/pump1")[0].value, Value::F64(3.25));

    // bad payloads: a bad sample without value each, and the client goes on
    publish_until(port, &[], "plant/line3/temp", "hot", || {
        !rig.samples_of("acme/p1/line3/temp").is_empty()
    })
    .await;
    assert!(bad_reason(&rig.samples_of("acme/p1/line3/temp")[0]).contains("not a number"));
    publish_until(port, &[], "json/pump2", "{\"data\":", || {
        !rig.samples_of("acme/j/pump2").is_empty()
    })
    .await;
    assert!(bad_reason(&rig.samples_of("acme/j/pump2")[0]).contains("not valid JSON"));
    publish_until(port, &[], "json/pump3", r#"{"data":{"other":1}}"#, || {
        !rig.samples_of("acme/j/pump3").is_empty()
    })
    .await;
    assert!(bad_reason(&rig.samples_of("acme/j/pump3")[0]).contains("no field \"data.value\""));
    // a Sparkplug B payload, sent as a file by mosquitto_pub
    let spb = mw_sparkplug::encode(&mw_sparkplug::Payload {
        timestamp: Some(1_764_842_400_000),
        metrics: vec![
            mw_sparkplug::Metric::new("Motor/Speed", mw_sparkplug::MetricValue::Float(1450.5)),
            mw_sparkplug::Metric::new("Running", mw_sparkplug::MetricValue::Boolean(true)),
        ],
        seq: Some(1),
        uuid: None,
        body: None,
    })
    .unwrap();
    let spb_file = dir.join("ddata.bin");
    std::fs::write(&spb_file, &spb).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while rig.samples_of("acme/sp/pump1/Running").is_empty() {
        assert!(
            Instant::now() < deadline,
            "the Sparkplug metrics did not arrive"
        );
        let st = tokio::process::Command::new("mosquitto_pub")
            .args(pub_args(
                port,
                &["-q", "1", "-t", "spBv1.0/g1/DDATA/edge1/pump1", "-f"],
            ))
            .arg(&spb_file)
            .status()
            .await
            .unwrap();
        assert!(st.success());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let speed = &rig.samples_of("acme/sp/pump1/Motor/Speed")[0];
    assert_eq!(speed.value, Value::F32(1450.5));
    assert_eq!(
        speed.source_ts, 1_764_842_400_000_000_000,
        "the payload's timestamp"
    );
    assert_eq!(
        rig.samples_of("acme/sp/pump1/Running")[0].value,
        Value::Bool(true)
    );
    // still fine after them
    publish_until(port, &[], "plant/line1/temp", "22", || {
        rig.samples_of("acme/p1/line1/temp")
            .iter()
            .any(|s| s.value == Value::I64(22))
    })
    .await;
    assert_eq!(rig.state(), SourceState::Up);
    rig.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

fn publish_toml(port: u16, qos: u8, retain: bool) -> String {
    format!(
        r#"
[[mqtt.client]]
name = "up"
url = "mqtt://127.0.0.1:{port}"
backoff_max_ms = 300
[mqtt.client.publish]
prefix = "uns"
qos = {qos}
retain = {retain}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sink_publishes_uns_json_acknowledged_after_puback() {
    if !tools_present() {
        return;
    }
    let dir = temp_dir("sink");
    let port = free_port();
    let _m = Mosquitto::start(&dir, port, "allow_anonymous true");
    let rig = Rig::start(&publish_toml(port, 1, false));
    rig.wait_up().await;
    let sub = subscriber(port, &[], "uns/#", 3);
    tokio::time::sleep(Duration::from_millis(500)).await; // let mosquitto_sub subscribe
    let ts = mw_model::parse_rfc3339_ns("2026-12-04T10:00:00.5Z").unwrap();
    let samples = vec![
        sample("acme/p1/flow", Value::F64(12.5), ts),
        sample("acme/p1/running", Value::Bool(true), ts),
        Sample {
            quality: Quality::Bad("timeout".into()),
            ..sample("acme/p1/level", Value::F64(f64::NAN), ts)
        },
    ];
    let ack = rig
        .publisher
        .send_with_ack(Batch::from_samples(samples.clone()))
        .await
        .unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(10), ack.outcome())
        .await
        .expect("acknowledged within 10 s");
    assert_eq!(
        outcome,
        AckOutcome::Committed { sinks: 1 },
        "the client sink is durable at QoS 1"
    );
    let got = lines(sub).await;
    let want: Vec<String> = samples
        .iter()
        .map(|s| {
            format!(
                "uns/{} {}",
                s.tag.as_str(),
                mw_mqtt::component::uns_json(s, None)
            )
        })
        .collect();
    assert_eq!(got, want);
    assert!(
        got[0].contains(r#""value":12.5"#) && got[0].contains(r#""ts":"2026-12-04T10:00:00.500Z""#),
        "{got:?}"
    );
    assert!(
        got[2].contains(r#""value":null"#) && got[2].contains(r#""quality":"bad""#),
        "{got:?}"
    );
    rig.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_a_mosquitto_restart() {
    if !tools_present() {
        return;
    }
    let dir = temp_dir("restart");
    let port = free_port();
    let mut m = Mosquitto::start(&dir, port, "allow_anonymous true");
    let toml = format!(
        "{}\n[mqtt.client.publish]\nprefix = \"uns\"\nqos = 1\nretain = true\n",
        client_toml(port, "")
    );
    let rig = Rig::start(&toml);
    rig.wait_up().await;
    publish_until(port, &[], "plant/a/temp", "1", || {
        !rig.samples_of("acme/p1/a/temp").is_empty()
    })
    .await;

    // a broker that stops answering: the publish is written, but without its PUBACK the
    // batch is not acknowledged
    m.signal("-STOP");
    let mut ack = rig
        .publisher
        .send_with_ack(Batch::from_samples(vec![sample(
            "acme/p1/while_down",
            Value::I64(77),
            1_000,
        )]))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(rig.state(), SourceState::Up, "the connection looks fine");
    assert_eq!(ack.try_outcome(), None, "no PUBACK, no acknowledgement");
    // then it dies with the message: the client sends it again to the restarted broker
    m.stop();
    wait_for("the client notices", Duration::from_secs(10), || {
        matches!(rig.state(), SourceState::Down(_))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(ack.try_outcome(), None, "still not acknowledged");

    m.restart();
    rig.wait_up().await;
    let outcome = tokio::time::timeout(Duration::from_secs(10), ack.outcome())
        .await
        .expect("acknowledged after the restart");
    assert_eq!(outcome, AckOutcome::Committed { sinks: 1 });
    // the new broker has it (retained), and the subscriptions were made again
    let sub = subscriber(port, &[], "uns/acme/p1/while_down", 1);
    let got = lines(sub).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with("uns/acme/p1/while_down {\"value\":77,"),
        "{got:?}"
    );
    publish_until(port, &[], "plant/b/temp", "2", || {
        !rig.samples_of("acme/p1/b/temp").is_empty()
    })
    .await;
    let changes: Vec<bool> = rig
        .recorded
        .events()
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ConnectionChange { up, .. } if e.source == "mqtt-client/m1" => Some(*up),
            _ => None,
        })
        .collect();
    assert_eq!(changes, [true, false, true], "connection changes as events");
    rig.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn username_and_password_against_a_mosquitto_password_file() {
    if !tools_present() {
        return;
    }
    let dir = temp_dir("auth");
    let pwfile = dir.join("passwd");
    let st = Command::new("mosquitto_passwd")
        .args(["-b", "-c"])
        .arg(&pwfile)
        .args(["gw1", "Gw1-Secret-pw"])
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::write(dir.join("good"), "Gw1-Secret-pw\n").unwrap();
    std::fs::write(dir.join("bad"), "wrong\n").unwrap();
    let port = free_port();
    let _m = Mosquitto::start(
        &dir,
        port,
        &format!("allow_anonymous false\npassword_file {}", pwfile.display()),
    );
    let creds = ["-u", "gw1", "-P", "Gw1-Secret-pw"];
    let wrong = Rig::start(&client_toml(
        port,
        &format!(
            "user = \"gw1\"\npassword_file = \"{}\"",
            dir.join("bad").display()
        ),
    ));
    let good = Rig::start(&client_toml(
        port,
        &format!(
            "user = \"gw1\"\npassword_file = \"{}\"",
            dir.join("good").display()
        ),
    ));
    good.wait_up().await;
    publish_until(port, &creds, "plant/x/temp", "5.5", || {
        !good.samples_of("acme/p1/x/temp").is_empty()
    })
    .await;
    assert_eq!(good.samples_of("acme/p1/x/temp")[0].value, Value::F64(5.5));
    wait_for(
        "a refusal",
        Duration::from_secs(10),
        || matches!(wrong.state(), SourceState::Down(r) if r.to_lowercase().contains("refused")),
    )
    .await;
    assert!(wrong.recorded.samples().is_empty());
    if let SourceState::Down(r) = wrong.state() {
        assert!(!r.contains("wrong"), "no password in the reason: {r}");
    }
    wrong.stop().await;
    good.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_against_mosquitto_with_certs_from_certs_init() {
    if !tools_present() {
        return;
    }
    let dir = temp_dir("tls");
    let certs = dir.join("certs");
    mw_security::certs::init(&certs, &["127.0.0.1".to_string()], &[], false).unwrap();
    let other = dir.join("other");
    mw_security::certs::init(&other, &["127.0.0.1".to_string()], &[], false).unwrap();
    let port = free_port();
    let _m = Mosquitto::start(
        &dir,
        port,
        &format!(
            "allow_anonymous true\ncafile {c}/ca.pem\ncertfile {c}/server.pem\nkeyfile {c}/server.key",
            c = certs.display()
        ),
    );
    let tls = |ca: &Path| {
        format!(
            r#"
[[mqtt.client]]
name = "tls"
url = "mqtts://127.0.0.1:{port}"
tls = {{ ca = "{}" }}
backoff_max_ms = 300
[[mqtt.client.subscribe]]
topic = "secure/+"
tag = "acme/s/{{2}}"
"#,
            ca.join("ca.pem").display()
        )
    };
    let untrusted = Rig::start(&tls(&other));
    let rig = Rig::start(&tls(&certs));
    rig.wait_up().await;
    let cafile = certs.join("ca.pem").display().to_string();
    publish_until(port, &["--cafile", &cafile], "secure/v", "42", || {
        !rig.samples_of("acme/s/v").is_empty()
    })
    .await;
    assert_eq!(rig.samples_of("acme/s/v")[0].value, Value::I64(42));
    wait_for("a TLS failure", Duration::from_secs(10), || {
        matches!(untrusted.state(), SourceState::Down(r) if r.contains("TLS") || r.contains("certificate"))
    })
    .await;
    assert!(untrusted.recorded.samples().is_empty());
    untrusted.stop().await;
    rig.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt5_against_millwrights_own_broker() {
    if !tools_present() {
        return;
    }
    let broker = mw_mqtt::Broker::new(
        mw_mqtt::BrokerConfig {
            allow_anonymous: true,
            ..mw_mqtt::BrokerConfig::default()
        },
        None,
        mw_mqtt::Acl::allow_all(),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(mw_mqtt::listen(broker.clone(), l, None));
    let toml = format!(
        r#"
[[mqtt.client]]
name = "v5"
url = "mqtt://127.0.0.1:{port}"
protocol = "5"
clean_start = false
[[mqtt.client.subscribe]]
topic = "dev/+/speed"
qos = 1
tag = "acme/v5/{{2}}/speed"
[mqtt.client.publish]
prefix = "uns5"
qos = 1
"#
    );
    let rig = Rig::start(&toml);
    rig.wait_up().await;
    let v5 = ["-V", "mqttv5"];
    publish_until(port, &v5, "dev/m1/speed", "1450.5", || {
        !rig.samples_of("acme/v5/m1/speed").is_empty()
    })
    .await;
    assert_eq!(
        rig.samples_of("acme/v5/m1/speed")[0].value,
        Value::F64(1450.5)
    );
    // what the client published back as UNS (the received sample) and one fed to its sink
    let sub = subscriber(port, &v5, "uns5/acme/v5/fed", 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ack = rig
        .publisher
        .send_with_ack(Batch::from_samples(vec![sample(
            "acme/v5/fed",
            Value::I64(9),
            0,
        )]))
        .await
        .unwrap();
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(10), ack.outcome())
            .await
            .unwrap(),
        AckOutcome::Committed { sinks: 1 }
    );
    let got = lines(sub).await;
    assert_eq!(
        got,
        [format!(
            "uns5/acme/v5/fed {}",
            mw_mqtt::component::uns_json(&sample("acme/v5/fed", Value::I64(9), 0), None)
        )]
    );
    rig.stop().await;
    broker.shutdown();
}
