//! Broker flow control over real sockets: a subscriber that reads slowly but keeps reading
//! loses nothing (the publisher is held back instead), and a subscriber that stops reading
//! is set aside after `max_publish_wait` so that the others still get everything.
//!
//! The subscribers use a small receive buffer so that the broker's per-session queue, not the
//! kernel's socket buffers, is what fills up.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4::{Connect, Packet, Publish, Subscribe};
use rumqttc::mqttbytes::{QoS, v4};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use mw_mqtt::{Acl, Broker, BrokerConfig};

const N: u32 = 2000;
const SIZE: usize = 8 * 1024;
/// Guards against a hang; never a performance threshold.
const HANG: Duration = Duration::from_secs(120);

async fn start(cfg: BrokerConfig) -> (Broker, u16) {
    let broker = Broker::new(cfg, None, Acl::default());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(mw_mqtt::listen(broker.clone(), l, None));
    (broker, port)
}

fn cfg(max_publish_wait: Duration) -> BrokerConfig {
    BrokerConfig {
        allow_anonymous: true,
        max_queued: 16,
        max_publish_wait,
        ..BrokerConfig::default()
    }
}

async fn read_packet(s: &mut TcpStream, rb: &mut BytesMut) -> Packet {
    loop {
        match Packet::read(rb, 1 << 20) {
            Ok(p) => return p,
            Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {
                let n = tokio::time::timeout(HANG, s.read_buf(rb))
                    .await
                    .expect("the broker went silent")
                    .unwrap();
                assert!(n > 0, "the broker closed the connection");
            }
            Err(e) => panic!("undecodable packet from the broker: {e}"),
        }
    }
}

async fn connect(port: u16, id: &str, small_rcvbuf: bool) -> (TcpStream, BytesMut) {
    let sock = TcpSocket::new_v4().unwrap();
    if small_rcvbuf {
        sock.set_recv_buffer_size(4096).unwrap();
    }
    let mut s = sock.connect(([127, 0, 0, 1], port).into()).await.unwrap();
    let mut b = BytesMut::new();
    Packet::Connect(Connect::new(id))
        .write(&mut b, usize::MAX)
        .unwrap();
    s.write_all(&b).await.unwrap();
    let mut rb = BytesMut::new();
    match read_packet(&mut s, &mut rb).await {
        Packet::ConnAck(a) => assert_eq!(a.code, v4::ConnectReturnCode::Success, "{id}"),
        p => panic!("{id}: expected CONNACK, got {p:?}"),
    }
    (s, rb)
}

async fn subscriber(port: u16, id: &str) -> (TcpStream, BytesMut) {
    let (mut s, mut rb) = connect(port, id, true).await;
    let mut sub = Subscribe::new("flow/t", QoS::AtMostOnce);
    sub.pkid = 1;
    let mut b = BytesMut::new();
    Packet::Subscribe(sub).write(&mut b, usize::MAX).unwrap();
    s.write_all(&b).await.unwrap();
    match read_packet(&mut s, &mut rb).await {
        Packet::SubAck(_) => {}
        p => panic!("{id}: expected SUBACK, got {p:?}"),
    }
    (s, rb)
}

/// Publishes `N` numbered QoS 0 messages of `SIZE` bytes as fast as the broker takes them.
async fn publish_all(port: u16) {
    let (mut s, _) = connect(port, "flow-pub", false).await;
    let mut b = BytesMut::new();
    for i in 0..N {
        let mut payload = vec![0u8; SIZE];
        payload[..4].copy_from_slice(&i.to_be_bytes());
        Packet::Publish(Publish::from_bytes(
            "flow/t",
            QoS::AtMostOnce,
            Bytes::from(payload),
        ))
        .write(&mut b, usize::MAX)
        .unwrap();
        if b.len() >= 64 * 1024 {
            s.write_all(&b).await.unwrap();
            b.clear();
        }
    }
    s.write_all(&b).await.unwrap();
    // a PINGRESP proves the broker has read (and routed) everything before it
    b.clear();
    Packet::PingReq.write(&mut b, usize::MAX).unwrap();
    s.write_all(&b).await.unwrap();
    let mut rb = BytesMut::new();
    loop {
        if let Packet::PingResp = read_packet(&mut s, &mut rb).await {
            return;
        }
    }
}

/// Reads `N` messages and returns their numbers in arrival order; `pause` between reads.
async fn receive_all(mut s: TcpStream, mut rb: BytesMut, pause: Duration) -> Vec<u32> {
    let mut got = Vec::with_capacity(N as usize);
    let deadline = Instant::now() + HANG;
    while got.len() < N as usize {
        assert!(Instant::now() < deadline, "received {} of {N}", got.len());
        match Packet::read(&mut rb, 1 << 20) {
            Ok(Packet::Publish(p)) => {
                got.push(u32::from_be_bytes(p.payload[..4].try_into().unwrap()));
            }
            Ok(p) => panic!("unexpected {p:?}"),
            Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
                let mut chunk = [0u8; 4096];
                let n = tokio::time::timeout(HANG, s.read(&mut chunk))
                    .await
                    .expect("the broker went silent")
                    .unwrap();
                assert!(n > 0, "closed after {} of {N}", got.len());
                rb.extend_from_slice(&chunk[..n]);
            }
            Err(e) => panic!("{e}"),
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_that_keeps_reading_loses_nothing() {
    let (broker, port) = start(cfg(Duration::from_secs(60))).await;
    let (s, rb) = subscriber(port, "flow-slow").await;
    let reader = tokio::spawn(receive_all(s, rb, Duration::from_millis(1)));
    publish_all(port).await;
    let got = reader.await.unwrap();
    assert_eq!(got, (0..N).collect::<Vec<_>>(), "all, in order");
    let st = broker.stats();
    assert_eq!(st.dropped_slow_consumer.load(Ordering::Relaxed), 0);
    assert_eq!(st.dropped_queue_full.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_subscriber_is_set_aside_and_the_others_get_everything() {
    let (broker, port) = start(cfg(Duration::from_millis(200))).await;
    // connected and subscribed, never reads again
    let (_stalled, _) = subscriber(port, "flow-stalled").await;
    let (s, rb) = subscriber(port, "flow-live").await;
    let reader = tokio::spawn(receive_all(s, rb, Duration::ZERO));
    publish_all(port).await;
    let got = reader.await.unwrap();
    assert_eq!(
        got,
        (0..N).collect::<Vec<_>>(),
        "the live subscriber: all, in order"
    );
    let st = broker.stats();
    let dropped = st.dropped_slow_consumer.load(Ordering::Relaxed);
    assert!(
        dropped > 0 && dropped < u64::from(N),
        "the stalled subscriber's excess is dropped ({dropped})"
    );
    assert_eq!(st.dropped_queue_full.load(Ordering::Relaxed), 0);
}
