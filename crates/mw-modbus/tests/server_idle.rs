//! The simulator's Modbus server disconnects clients that send nothing, so idle connections can
//! no longer hold every slot; a client that keeps polling stays connected. Real sockets on
//! loopback, every wait bounded.

mod common;

use std::time::{Duration, Instant};

use common::*;
use mw_modbus::server::{IDLE_TIMEOUT, ServerOptions, serve_with_options};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_modbus::client::{Reader, tcp};

const BOUND: Duration = Duration::from_secs(5);

/// Whether the server closed `s` (EOF or reset) within `within`.
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 16];
    match tokio::time::timeout(within, s.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(n)) => panic!("unexpected bytes from the server: {:?}", &buf[..n]),
        Err(_) => false,
    }
}

#[test]
fn the_default_idle_timeout_is_a_minute() {
    assert_eq!(IDLE_TIMEOUT, Duration::from_secs(60));
    assert_eq!(ServerOptions::default().idle_timeout, IDLE_TIMEOUT);
    assert_eq!(ServerOptions::default().max_connections, 64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_clients_are_disconnected_and_free_their_slots() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, rx) = tokio::sync::watch::channel(false);
    let options = ServerOptions {
        max_connections: 2,
        idle_timeout: Duration::from_millis(400),
    };
    let srv = tokio::spawn(serve_with_options(
        listener,
        image_with_holding(&[42]),
        rx,
        options,
    ));

    // Two clients that connect and send nothing take every slot ...
    let mut idle1 = TcpStream::connect(addr).await.unwrap();
    let mut idle2 = TcpStream::connect(addr).await.unwrap();
    let t0 = Instant::now();
    // ... until the idle timeout closes them.
    assert!(closed_within(&mut idle1, BOUND).await, "idle client 1 kept");
    assert!(closed_within(&mut idle2, BOUND).await, "idle client 2 kept");
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "closed after {took:?}"
    );

    // The slots are free again; a client that polls every 100 ms for 1.2 s (three idle
    // timeouts) stays connected throughout.
    let t = Duration::from_secs(2);
    let mut busy = None;
    let t0 = Instant::now();
    while busy.is_none() {
        assert!(t0.elapsed() < BOUND, "slots never freed");
        let mut c = tcp::connect(addr).await.unwrap();
        if let Ok(Ok(Ok(r))) = tokio::time::timeout(t, c.read_holding_registers(0, 1)).await {
            assert_eq!(r, vec![42]);
            busy = Some(c);
        }
    }
    let mut busy = busy.unwrap();
    for i in 0..12 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let r = tokio::time::timeout(t, busy.read_holding_registers(0, 1))
            .await
            .expect("answered in time");
        assert_eq!(r.unwrap().unwrap(), vec![42], "poll {i}");
    }
    // and once it stops polling, it is disconnected too
    tokio::time::sleep(Duration::from_millis(900)).await;
    let after = tokio::time::timeout(t, busy.read_holding_registers(0, 1))
        .await
        .expect("answered or closed in time");
    assert!(
        after.is_err(),
        "a client idle for 0.9 s was kept: {after:?}"
    );

    stop.send_replace(true);
    tokio::time::timeout(Duration::from_secs(2), srv)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
