//! The poller against our own server over real loopback sockets.

mod common;

use std::time::Duration;

use common::*;
use mw_bus::SourceState;
use mw_modbus::RegisterImage;
use mw_modbus::codec::{RawValue, encode_registers};
use mw_modbus::config::{RegisterTable::*, WordOrder::*};
use mw_model::DataType::{Bool, F32, I16, I32, U16, U32};
use mw_model::{Quality, Value, now_ns};

fn put(regs: &mut [u16], addr: usize, v: RawValue, order: mw_modbus::config::WordOrder) {
    let words = encode_registers(v, order).unwrap();
    regs[addr..addr + words.len()].copy_from_slice(&words);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decodes_every_type_and_word_order_with_scaling() {
    let mut img = RegisterImage::with_sizes(8, 4, 4, 20);
    let h = &mut img.holding_registers;
    put(h, 0, RawValue::U16(54321), Abcd);
    put(h, 1, RawValue::I16(-1234), Abcd);
    put(h, 2, RawValue::U32(3_000_000_000), Abcd);
    put(h, 4, RawValue::I32(-123_456_789), Cdab);
    put(h, 6, RawValue::F32(123.456), Abcd);
    put(h, 8, RawValue::F32(123.456), Cdab);
    put(h, 10, RawValue::F32(123.456), Badc);
    put(h, 12, RawValue::F32(123.456), Dcba);
    put(h, 14, RawValue::U32(0x1122_3344), Badc);
    put(h, 16, RawValue::I32(-2), Dcba);
    put(h, 18, RawValue::U16(2500), Abcd);
    // The fixed vector from the codec docs, as laid out on the wire.
    assert_eq!(
        &h[6..14],
        &[
            0x42F6, 0xE979, 0xE979, 0x42F6, 0xF642, 0x79E9, 0x79E9, 0xF642
        ]
    );
    put(&mut img.input_registers, 0, RawValue::F32(-1.5), Cdab);
    put(&mut img.input_registers, 2, RawValue::I16(-100), Abcd);
    img.coils[3] = true;
    img.discrete_inputs[1] = true;
    let (endpoint, _srv, _h) = start_server(img.shared()).await;

    let tags = vec![
        tag("t/u16", HoldingRegister, 0, U16, Abcd),
        tag("t/i16", HoldingRegister, 1, I16, Abcd),
        tag("t/u32", HoldingRegister, 2, U32, Abcd),
        tag("t/i32_cdab", HoldingRegister, 4, I32, Cdab),
        tag("t/f32_abcd", HoldingRegister, 6, F32, Abcd),
        tag("t/f32_cdab", HoldingRegister, 8, F32, Cdab),
        tag("t/f32_badc", HoldingRegister, 10, F32, Badc),
        tag("t/f32_dcba", HoldingRegister, 12, F32, Dcba),
        tag("t/u32_badc", HoldingRegister, 14, U32, Badc),
        tag("t/i32_dcba", HoldingRegister, 16, I32, Dcba),
        scaled(
            tag("t/level", HoldingRegister, 18, U16, Abcd),
            (0.0, 10000.0),
            (0.0, 100.0),
            "%",
        ),
        tag("t/in_f32", InputRegister, 0, F32, Cdab),
        scaled(
            tag("t/in_i16", InputRegister, 2, I16, Abcd),
            (-1000.0, 1000.0),
            (-10.0, 10.0),
            "bar",
        ),
        tag("t/coil2", Coil, 2, Bool, Abcd),
        tag("t/coil3", Coil, 3, Bool, Abcd),
        tag("t/di1", DiscreteInput, 1, Bool, Abcd),
    ];
    let n = tags.len();
    let before = now_ns();
    let mut hs = spawn(vec![device("dev", endpoint, tags)]);
    hs.wait_until(WAIT, "every tag good", |m| {
        m.len() == n && m.values().all(|s| s.quality.is_good())
    })
    .await;
    let after = now_ns();

    // f32 registers stay single precision end to end
    let f = 123.456f32;
    let expected = [
        ("t/u16", Value::U64(54321)),
        ("t/i16", Value::I64(-1234)),
        ("t/u32", Value::U64(3_000_000_000)),
        ("t/i32_cdab", Value::I64(-123_456_789)),
        ("t/f32_abcd", Value::F32(f)),
        ("t/f32_cdab", Value::F32(f)),
        ("t/f32_badc", Value::F32(f)),
        ("t/f32_dcba", Value::F32(f)),
        ("t/u32_badc", Value::U64(0x1122_3344)),
        ("t/i32_dcba", Value::I64(-2)),
        ("t/level", Value::F64(25.0)),
        ("t/in_f32", Value::F32(-1.5)),
        ("t/in_i16", Value::F64(-1.0)),
        ("t/coil2", Value::Bool(false)),
        ("t/coil3", Value::Bool(true)),
        ("t/di1", Value::Bool(true)),
    ];
    for (t, v) in expected {
        let s = &hs.latest[t];
        assert_eq!(s.value, v, "{t}");
        assert_eq!(s.quality, Quality::Good, "{t}");
        assert_eq!(
            s.source_ts, s.receive_ts,
            "{t}: good samples carry the response time twice"
        );
        assert!(
            s.source_ts >= before && s.source_ts <= after,
            "{t}: timestamp within the test"
        );
    }
    let snap = hs.registry.snapshot();
    assert_eq!(snap[0].state, SourceState::Up);
    assert!(snap[0].cycles >= 1 && hs.registry.all_polling());
    hs.stop(Duration::from_millis(500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exceptions_mark_only_their_tags_bad_and_keep_the_connection() {
    let img = image_with_holding(&[11, 22, 33]);
    let (endpoint, _srv, _h) = start_server(img.clone()).await;
    let tags = vec![
        tag("e/ok", HoldingRegister, 0, U16, Abcd),
        tag("e/beyond", HoldingRegister, 100, U16, Abcd), // not in the image
    ];
    let mut hs = spawn(vec![device("exc", endpoint, tags)]);
    hs.wait_until(WAIT, "ok good, beyond bad", |m| {
        is_good(m, "e/ok") && reason_is(m, "e/beyond", "modbus exception: illegal data address (2)")
    })
    .await;
    assert_eq!(hs.latest["e/ok"].value, Value::U64(11));
    // no value was ever read: neutral value
    assert!(matches!(hs.latest["e/beyond"].value, Value::F64(v) if v.is_nan()));
    assert_eq!(
        hs.registry.snapshot()[0].state,
        SourceState::Up,
        "an exception is not a disconnect"
    );

    // Simulated dropout: the good tag goes bad with exception 11, keeping its last value, then recovers.
    img.write().unwrap().mark_unavailable(HoldingRegister, 0, 1);
    hs.wait_until(WAIT, "dropout visible", |m| {
        reason_is(
            m,
            "e/ok",
            "modbus exception: gateway target device failed to respond (11)",
        )
    })
    .await;
    assert_eq!(
        hs.latest["e/ok"].value,
        Value::U64(11),
        "bad sample keeps the last good value"
    );
    img.write().unwrap().holding_registers[0] = 12;
    img.write()
        .unwrap()
        .clear_unavailable(HoldingRegister, 0, 1);
    hs.wait_until(WAIT, "recovered", |m| {
        is_good(m, "e/ok") && m["e/ok"].value == Value::U64(12)
    })
    .await;
    assert_eq!(hs.registry.snapshot()[0].state, SourceState::Up);
    hs.stop(Duration::from_millis(500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merged_read_refused_is_split_per_tag() {
    // 0..3 exist; a tag at 5 is within the merge gap but outside the image.
    let (endpoint, _srv, _h) = start_server(image_with_holding(&[1, 2, 3])).await;
    let tags = vec![
        tag("s/a", HoldingRegister, 0, U16, Abcd),
        tag("s/b", HoldingRegister, 5, U16, Abcd),
    ];
    let mut hs = spawn(vec![device("split", endpoint, tags)]);
    // First cycle: the merged read 0..6 is refused, both bad.
    hs.wait_until(WAIT, "first cycle", |m| m.len() == 2).await;
    assert_eq!(
        hs.reason("s/a").as_deref(),
        Some("modbus exception: illegal data address (2)")
    );
    // From the next cycle on: read one by one.
    hs.wait_until(WAIT, "a good, b bad", |m| {
        is_good(m, "s/a") && reason_is(m, "s/b", "modbus exception: illegal data address (2)")
    })
    .await;
    assert_eq!(hs.latest["s/a"].value, Value::U64(1));
    hs.stop(Duration::from_millis(500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_of_the_device_is_followed() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let img = image_with_holding(&[5]);
    let (stop1, rx1) = tokio::sync::watch::channel(false);
    let srv1 = tokio::spawn(mw_modbus::serve(listener, img.clone(), rx1));
    let mut hs = spawn(vec![device(
        "restart",
        addr.to_string(),
        vec![tag("r/x", HoldingRegister, 0, U16, Abcd)],
    )]);
    hs.wait_until(WAIT, "good", |m| is_good(m, "r/x")).await;

    // Device goes away: its connections are closed and new ones refused.
    stop1.send_replace(true);
    tokio::time::timeout(Duration::from_secs(2), srv1)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    hs.wait_until(WAIT, "bad after stop", |m| {
        m.get("r/x")
            .and_then(|s| s.quality.reason())
            .is_some_and(|r| r.starts_with("disconnected: "))
    })
    .await;
    assert_eq!(hs.latest["r/x"].value, Value::U64(5), "last value kept");
    assert!(
        matches!(hs.registry.snapshot()[0].state, SourceState::Down(ref r) if r.starts_with("disconnected: "))
    );

    // Device comes back on the same port with a new value.
    img.write().unwrap().holding_registers[0] = 6;
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let (_stop2, rx2) = tokio::sync::watch::channel(false);
    let _srv2 = tokio::spawn(mw_modbus::serve(listener, img, rx2));
    hs.wait_until(WAIT, "good again", |m| {
        is_good(m, "r/x") && m["r/x"].value == Value::U64(6)
    })
    .await;
    assert_eq!(hs.registry.snapshot()[0].state, SourceState::Up);
    hs.stop(Duration::from_millis(500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_bus_delays_polls_instead_of_queueing() {
    let (endpoint, _srv, _h) = start_server(image_with_holding(&[1])).await;
    let mut dev = device(
        "bp",
        endpoint,
        vec![tag("b/x", HoldingRegister, 0, U16, Abcd)],
    );
    dev.poll_interval = Duration::from_millis(10);
    let mut hs = spawn_with(vec![dev], 1, 1);
    // Nobody reads: at 10 ms per poll, 600 ms would be ~60 cycles if polls queued up.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let stuck = hs.registry.snapshot()[0].cycles;
    assert!(
        (1..=6).contains(&stuck),
        "polls must wait for the bus, got {stuck} cycles"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        hs.registry.snapshot()[0].cycles,
        stuck,
        "no poll while the publish is blocked"
    );
    // Draining the bus lets polling resume.
    hs.record_for(Duration::from_millis(300)).await;
    assert!(hs.registry.snapshot()[0].cycles > stuck + 5);
    assert!(
        hs.all
            .iter()
            .all(|s| s.quality.is_good() && s.value == Value::U64(1))
    );
    // Shutdown is prompt even while blocked in publish.
    tokio::time::sleep(Duration::from_millis(200)).await; // blocked again
    hs.stop(Duration::from_millis(500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_caps_connections_and_frees_slots() {
    use tokio_modbus::client::{Reader, tcp};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, rx) = tokio::sync::watch::channel(false);
    let srv = tokio::spawn(mw_modbus::serve_with_limit(
        listener,
        image_with_holding(&[42]),
        rx,
        2,
    ));
    let t = Duration::from_secs(2);
    let mut a = tcp::connect(addr).await.unwrap();
    let mut b = tcp::connect(addr).await.unwrap();
    for c in [&mut a, &mut b] {
        let r = tokio::time::timeout(t, c.read_holding_registers(0, 1))
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(r, vec![42]);
    }
    let mut c = tcp::connect(addr).await.unwrap();
    let third = tokio::time::timeout(t, c.read_holding_registers(0, 1))
        .await
        .expect("refused promptly");
    assert!(
        third.is_err(),
        "a third connection is closed by the server: {third:?}"
    );
    drop(a);
    // The slot is freed once the server sees the close; retry for a bounded time.
    let mut ok = false;
    for _ in 0..50 {
        let mut d = tcp::connect(addr).await.unwrap();
        if let Ok(Ok(Ok(r))) = tokio::time::timeout(t, d.read_holding_registers(0, 1)).await {
            assert_eq!(r, vec![42]);
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok, "a freed slot is reused");
    // Shutdown closes the listener and the open connections.
    stop.send_replace(true);
    tokio::time::timeout(Duration::from_millis(500), srv)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let after = tokio::time::timeout(t, b.read_holding_registers(0, 1))
        .await
        .expect("closed promptly");
    assert!(after.is_err(), "connection closed at shutdown: {after:?}");
    assert!(
        tcp::connect(addr).await.is_err(),
        "listener closed at shutdown"
    );
}
