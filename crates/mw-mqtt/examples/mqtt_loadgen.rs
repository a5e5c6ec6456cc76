//! MQTT load generator for bench/mqtt-vs-mosquitto.sh: the same client against any broker.
//! Bounded in count and time; loopback only by intent (it takes a host, the script passes
//! 127.0.0.1). MQTT 3.1.1 over plain TCP, packets from rumqttc's codec.
//!
//!   mqtt_loadgen --port P fanin  --pubs 8 --qos 1 --size 64 --count 100000 [--rate 10000]
//!   mqtt_loadgen --port P fanout --subs 8 --qos 0 --size 1024 --count 50000 [--rate 10000]
//!   mqtt_loadgen --port P idle --conns 10000 --hold 10
//!
//! fanin: N publishers → 1 subscriber of `bench/#`; fanout: 1 publisher → N subscribers of
//! `bench/x`. `--count` is per publisher; `--rate` paces the total publish rate (otherwise as
//! fast as the broker takes them; QoS 1 keeps 64 unacknowledged per publisher). Every payload
//! carries its send time; the subscribers measure the end-to-end latency. Prints one JSON line:
//! sent, expected, received, lost, seconds, msg_per_s (received), p50_us, p99_us, max_us.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rumqttc::mqttbytes::v4::{Connect, Packet, PubAck, Publish, Subscribe};
use rumqttc::mqttbytes::{QoS, v4};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Args {
    host: String,
    port: u16,
    mode: String,
    pubs: usize,
    subs: usize,
    qos: u8,
    size: usize,
    count: u64,
    rate: Option<u64>,
    conns: usize,
    hold: u64,
    timeout: u64,
}

fn args() -> Args {
    let mut a = Args {
        host: "127.0.0.1".into(),
        port: 1883,
        mode: String::new(),
        pubs: 1,
        subs: 1,
        qos: 0,
        size: 64,
        count: 10_000,
        rate: None,
        conns: 1000,
        hold: 5,
        timeout: 120,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < v.len() {
        let val = || {
            v.get(i + 1)
                .cloned()
                .unwrap_or_else(|| panic!("{} needs a value", v[i]))
        };
        match v[i].as_str() {
            "--host" => a.host = val(),
            "--port" => a.port = val().parse().expect("--port"),
            "--pubs" => a.pubs = val().parse().expect("--pubs"),
            "--subs" => a.subs = val().parse().expect("--subs"),
            "--qos" => a.qos = val().parse().expect("--qos"),
            "--size" => a.size = val().parse().expect("--size"),
            "--count" => a.count = val().parse().expect("--count"),
            "--rate" => a.rate = Some(val().parse().expect("--rate")),
            "--conns" => a.conns = val().parse().expect("--conns"),
            "--hold" => a.hold = val().parse().expect("--hold"),
            "--timeout" => a.timeout = val().parse().expect("--timeout"),
            m if !m.starts_with("--") && a.mode.is_empty() => {
                a.mode = m.to_string();
                i += 1;
                continue;
            }
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    assert!(
        ["fanin", "fanout", "idle"].contains(&a.mode.as_str()),
        "mode: fanin | fanout | idle"
    );
    assert!(
        a.size >= 16,
        "--size at least 16 (the payload carries a timestamp)"
    );
    a
}

async fn connect(a: &Args, id: &str) -> TcpStream {
    let mut s = TcpStream::connect((a.host.as_str(), a.port))
        .await
        .expect("connect");
    s.set_nodelay(true).ok();
    let mut c = Connect::new(id);
    c.keep_alive = 600;
    let mut b = BytesMut::new();
    Packet::Connect(c).write(&mut b, usize::MAX).unwrap();
    s.write_all(&b).await.unwrap();
    let mut rb = BytesMut::new();
    loop {
        match Packet::read(&mut rb, 1 << 20) {
            Ok(Packet::ConnAck(ack)) => {
                assert_eq!(ack.code, v4::ConnectReturnCode::Success, "{id}: refused");
                return s;
            }
            Ok(p) => panic!("{id}: expected CONNACK, got {p:?}"),
            Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {
                if s.read_buf(&mut rb).await.unwrap() == 0 {
                    panic!("{id}: closed before CONNACK");
                }
            }
            Err(e) => panic!("{id}: {e}"),
        }
    }
}

fn now_us(t0: Instant) -> u64 {
    t0.elapsed().as_micros() as u64
}

fn qos_of(q: u8) -> QoS {
    if q == 0 {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    }
}

async fn subscriber(
    a: Arc<Args>,
    id: String,
    filter: &'static str,
    ready: tokio::sync::mpsc::Sender<()>,
    t0: Instant,
    expected: u64,
    got: Arc<AtomicU64>,
) -> Vec<u32> {
    let mut s = connect(&a, &id).await;
    let mut b = BytesMut::new();
    let mut sub = Subscribe::new(filter, qos_of(a.qos));
    sub.pkid = 1; // a SUBSCRIBE needs a non-zero packet identifier (MQTT-2.3.1-1)
    Packet::Subscribe(sub).write(&mut b, usize::MAX).unwrap();
    s.write_all(&b).await.unwrap();
    let mut rb = BytesMut::with_capacity(1 << 16);
    let mut wb = BytesMut::new();
    let mut lat = Vec::with_capacity(expected as usize);
    let mut n = 0u64;
    let deadline = Instant::now() + Duration::from_secs(a.timeout);
    while n < expected {
        loop {
            match Packet::read(&mut rb, 1 << 20) {
                Ok(Packet::SubAck(_)) => {
                    let _ = ready.send(()).await;
                }
                Ok(Packet::Publish(p)) => {
                    let sent = u64::from_be_bytes(p.payload[..8].try_into().unwrap());
                    lat.push(now_us(t0).saturating_sub(sent) as u32);
                    n += 1;
                    got.fetch_add(1, Ordering::Relaxed);
                    if p.qos == QoS::AtLeastOnce {
                        Packet::PubAck(PubAck::new(p.pkid))
                            .write(&mut wb, usize::MAX)
                            .unwrap();
                    }
                }
                Ok(_) => {}
                Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => break,
                Err(e) => panic!("{id}: {e}"),
            }
        }
        if !wb.is_empty() {
            s.write_all(&wb).await.unwrap();
            wb.clear();
        }
        if n >= expected {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left.min(Duration::from_secs(3)), s.read_buf(&mut rb)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(_)) => {}
            Err(_) => break, // 3 s without traffic: the rest is lost
        }
    }
    lat
}

async fn publisher(
    a: Arc<Args>,
    id: String,
    topic: String,
    t0: Instant,
    rate_each: Option<f64>,
) -> u64 {
    let mut s = connect(&a, &id).await;
    let (mut rd, mut wr) = s.split();
    let mut payload = vec![0u8; a.size];
    let mut wb = BytesMut::with_capacity(1 << 16);
    let mut rb = BytesMut::with_capacity(1 << 12);
    let mut inflight = 0usize;
    let mut pkid: u16 = 0;
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < a.count {
        if let Some(r) = rate_each {
            let due = start + Duration::from_secs_f64(sent as f64 / r);
            let now = Instant::now();
            if due > now {
                tokio::time::sleep(due - now).await;
            }
        }
        // a burst: up to 32 publishes per write when unpaced
        let burst = if rate_each.is_some() { 1 } else { 32 };
        for _ in 0..burst {
            if sent >= a.count || (a.qos > 0 && inflight >= 64) {
                break;
            }
            payload[..8].copy_from_slice(&now_us(t0).to_be_bytes());
            let mut p = Publish::new(topic.as_str(), qos_of(a.qos), payload.clone());
            if a.qos > 0 {
                pkid = if pkid == u16::MAX { 1 } else { pkid + 1 };
                p.pkid = pkid;
                inflight += 1;
            }
            Packet::Publish(p).write(&mut wb, usize::MAX).unwrap();
            sent += 1;
        }
        wr.write_all(&wb).await.unwrap();
        wb.clear();
        // QoS 1: take the PUBACKs that are there; wait for some when the window is full
        while a.qos > 0 && (inflight >= 64 || (sent >= a.count && inflight > 0)) {
            if rd.read_buf(&mut rb).await.unwrap_or(0) == 0 {
                return sent;
            }
            while let Ok(p) = Packet::read(&mut rb, 1 << 20) {
                if matches!(p, Packet::PubAck(_)) {
                    inflight -= 1;
                }
            }
        }
    }
    let mut b = BytesMut::new();
    Packet::Disconnect.write(&mut b, usize::MAX).unwrap();
    let _ = wr.write_all(&b).await;
    sent
}

fn pct(v: &[u32], p: f64) -> u32 {
    if v.is_empty() {
        return 0;
    }
    v[((v.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let a = Arc::new(args());
    let t0 = Instant::now();
    if a.mode == "idle" {
        let mut held = Vec::with_capacity(a.conns);
        for i in 0..a.conns {
            held.push(connect(&a, &format!("idle-{i}")).await);
        }
        println!(
            "{{\"connected\":{},\"seconds\":{:.2}}}",
            held.len(),
            t0.elapsed().as_secs_f64()
        );
        tokio::time::sleep(Duration::from_secs(a.hold)).await;
        return;
    }
    let (pubs, subs, filter) = if a.mode == "fanin" {
        (a.pubs, 1, "bench/#")
    } else {
        (1, a.subs, "bench/x")
    };
    let expected_each = a.count * pubs as u64; // every subscriber gets every message
    let got = Arc::new(AtomicU64::new(0));
    let (rtx, mut rrx) = tokio::sync::mpsc::channel(subs);
    let mut sub_tasks = Vec::new();
    for i in 0..subs {
        sub_tasks.push(tokio::spawn(subscriber(
            a.clone(),
            format!("sub-{i}"),
            filter,
            rtx.clone(),
            t0,
            expected_each,
            got.clone(),
        )));
    }
    for _ in 0..subs {
        rrx.recv().await.expect("a subscriber ready");
    }
    let rate_each = a.rate.map(|r| r as f64 / pubs as f64);
    let start = Instant::now();
    let mut pub_tasks = Vec::new();
    for i in 0..pubs {
        let topic = if a.mode == "fanin" {
            format!("bench/{i}")
        } else {
            "bench/x".to_string()
        };
        pub_tasks.push(tokio::spawn(publisher(
            a.clone(),
            format!("pub-{i}"),
            topic,
            t0,
            rate_each,
        )));
    }
    let mut sent = 0;
    for t in pub_tasks {
        sent += t.await.unwrap();
    }
    let mut lat: Vec<u32> = Vec::new();
    for t in sub_tasks {
        lat.extend(t.await.unwrap());
    }
    let secs = start.elapsed().as_secs_f64();
    let received = got.load(Ordering::Relaxed);
    let expected = expected_each * subs as u64;
    lat.sort_unstable();
    println!(
        "{{\"sent\":{sent},\"expected\":{expected},\"received\":{received},\"lost\":{},\"seconds\":{secs:.3},\"msg_per_s\":{:.0},\"p50_us\":{},\"p99_us\":{},\"max_us\":{}}}",
        expected - received.min(expected),
        received as f64 / secs,
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        lat.last().copied().unwrap_or(0)
    );
}
