//! The uplink against a real `nats-server -js` on an ephemeral loopback port (its own store
//! directory, stopped by pid): what the bus commits arrives in the stream exactly once and in
//! order per tag; an outage loses nothing and duplicates nothing, the backlog is flagged
//! historical and drains behind live data; a full buffer does what its policy says, counted.
//! Skipped, with a message, when `nats-server` is not installed.

mod common;

use std::time::{Duration, Instant};

use common::{
    NatsServer, check_once_and_ordered, config, free_port, read_all, sample, temp_dir, uplink,
    wait_for_count,
};
use mw_bus::{AckOutcome, Batch, BusBuilder, BusConfig, Publisher, RunningBus, SourceRegistry};
use mw_model::{Event, EventKind};
use mw_uplink::StatusHandle;

const TAGS: usize = 4;

fn start(toml: &str) -> (Publisher, RunningBus, StatusHandle, mw_buffer::Buffer) {
    let sink = uplink(toml);
    let (status, buffer) = (sink.status(), sink.buffer());
    let mut bus = BusBuilder::new(BusConfig::default());
    bus.sink(Box::new(sink));
    let p = bus.publisher();
    let running = bus.start(&SourceRegistry::new());
    (p, running, status, buffer)
}

async fn until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn batch(i: u64, base: i64) -> Batch {
    Batch::from_samples((0..TAGS).map(|k| sample(k, i, base)).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_committed_arrives_exactly_once_in_order_per_tag() {
    need_nats!();
    let dir = temp_dir("once");
    let server = NatsServer::start(&dir.join("nats"));
    let (p, running, status, buffer) = start(&config(&server.url(), &dir.join("buf"), ""));
    until("a session", Duration::from_secs(10), || {
        status.get().sessions >= 1
    })
    .await;
    let base = mw_model::now_ns();
    let n = 500u64;
    let mut acks = Vec::new();
    for i in 0..n {
        acks.push(p.send_with_ack(batch(i, base)).await.unwrap());
    }
    let ev = Event::new(
        base,
        "modbus/plc1",
        EventKind::ConnectionChange {
            up: false,
            reason: Some("refused".into()),
        },
    );
    acks.push(p.send_with_ack(Batch::from_events(vec![ev])).await.unwrap());
    for a in acks {
        assert!(a.outcome().await.is_committed());
    }
    let want = n * TAGS as u64 + 1;
    let have = wait_for_count(&server.url(), "MW_TEST", want, Duration::from_secs(30)).await;
    assert_eq!(have, want, "messages in the stream");
    let got = read_all(&server.url(), "MW_TEST").await;
    let (events, samples): (Vec<_>, Vec<_>) = got.into_iter().partition(|g| g.tag.is_empty());
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].subject, "mw.test.$events.connection_change");
    let seen = check_once_and_ordered(&samples).unwrap();
    assert_eq!(seen.len() as u64, n * TAGS as u64);
    for k in 0..TAGS {
        for i in 0..n {
            let tag = format!("plant/t{k}/v");
            assert_eq!(
                seen.get(&(tag, base + i as i64)),
                Some(&false),
                "t{k} #{i} live"
            );
        }
    }
    // the value travelled too, and the id is edge-seq
    assert!(samples.iter().all(|g| g.value == (g.ts - base) as u64));
    assert!(
        samples[0]
            .msg_id
            .rsplit_once('-')
            .is_some_and(|(_, s)| s.parse::<u64>().is_ok())
    );
    drop(p);
    assert!(running.stop(Duration::from_secs(5)).await);
    let st = status.get();
    assert_eq!(st.acked, want);
    assert_eq!(st.duplicates, 0);
    assert_eq!(
        buffer.stats().pending_records,
        0,
        "every record acknowledged"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_loses_nothing_duplicates_nothing_and_flags_the_backlog_historical() {
    need_nats!();
    let dir = temp_dir("outage");
    let mut server = NatsServer::start(&dir.join("nats"));
    let url = server.url();
    let (p, running, status, buffer) = start(&config(&url, &dir.join("buf"), ""));
    until("a session", Duration::from_secs(10), || {
        status.get().sessions >= 1
    })
    .await;
    let base = mw_model::now_ns();
    // the source: one batch every 5 ms until told to stop, each awaited (its commit means "in
    // the buffer")
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // the bus (and with it the forwarder) stops once every publisher is gone: keep one
    let keep = p.clone();
    let src = tokio::spawn(async move {
        let mut slowest = Duration::ZERO;
        let mut i = 0u64;
        while !*stop_rx.borrow() {
            let t = Instant::now();
            let out = p
                .send_with_ack(batch(i, base))
                .await
                .unwrap()
                .outcome()
                .await;
            assert_eq!(out, AckOutcome::Committed { sinks: 1 }, "batch {i}");
            slowest = slowest.max(t.elapsed());
            i += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (i, slowest)
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    server.stop();
    let during = buffer.stats().next_seq;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let grew = buffer.stats().next_seq - during;
    assert!(
        grew > 100,
        "live data kept flowing into the buffer during the outage ({grew})"
    );
    assert!(!status.get().connected);
    server.restart();
    // live data after the reconnection, while the backlog drains
    until("a second session", Duration::from_secs(20), || {
        status.get().sessions >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let _ = stop_tx.send(true);
    let (n, slowest) = src.await.unwrap();
    assert!(
        slowest < Duration::from_secs(2),
        "a commit took {slowest:?} during the outage"
    );
    let want = n * TAGS as u64;
    let have = wait_for_count(&url, "MW_TEST", want, Duration::from_secs(30)).await;
    assert_eq!(have, want, "messages in the stream");
    until("backlog drained", Duration::from_secs(10), || {
        buffer.stats().pending_records == 0
    })
    .await;
    // nothing more arrives later (a duplicate would be a second copy of one sample)
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = read_all(&url, "MW_TEST").await;
    assert_eq!(got.len() as u64, want);
    let seen = check_once_and_ordered(&got).unwrap();
    assert_eq!(seen.len() as u64, want, "every sample once");
    let historical = got.iter().filter(|g| g.historical).count();
    assert!(
        historical > 100,
        "the outage's samples are historical ({historical})"
    );
    // the historical ones are those buffered during the outage: between live ones
    for k in 0..TAGS {
        let tag = format!("plant/t{k}/v");
        let hist: Vec<u64> = got
            .iter()
            .filter(|g| g.tag == tag && g.historical)
            .map(|g| g.value)
            .collect();
        let live: Vec<u64> = got
            .iter()
            .filter(|g| g.tag == tag && !g.historical)
            .map(|g| g.value)
            .collect();
        let (hmin, hmax) = (hist.iter().min().unwrap(), hist.iter().max().unwrap());
        assert!(
            live.iter().any(|v| v < hmin) && live.iter().any(|v| v > hmax),
            "{tag}"
        );
        assert_eq!(
            hmax - hmin + 1,
            hist.len() as u64,
            "{tag}: the backlog is contiguous"
        );
    }
    let st = status.get();
    assert!(st.reconnects >= 1, "{st:?}");
    drop(keep);
    assert!(st.acked_historical >= historical as u64, "{st:?}");
    assert!(running.stop(Duration::from_secs(5)).await);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packed_samples_survive_an_outage_exactly_once_in_order() {
    need_nats!();
    let dir = temp_dir("pack");
    let mut server = NatsServer::start(&dir.join("nats"));
    let toml = config(&server.url(), &dir.join("buf"), "")
        .replace("batch = 64\n", "batch = 64\npack = 8\n");
    assert!(toml.contains("pack = 8"));
    let (p, running, status, buffer) = start(&toml);
    until("a session", Duration::from_secs(10), || {
        status.get().sessions >= 1
    })
    .await;
    let base = mw_model::now_ns();
    let n = 400u64;
    for i in 0..n {
        if i == n / 2 {
            server.stop();
        }
        let a = p.send_with_ack(batch(i, base)).await.unwrap();
        assert!(a.outcome().await.is_committed());
    }
    server.restart();
    let want = n * TAGS as u64;
    until("every pack acknowledged", Duration::from_secs(30), || {
        buffer.stats().pending_records == 0
    })
    .await;
    let got = read_all(&server.url(), "MW_TEST").await;
    assert!(
        got.iter().all(|g| g.subject == "mw.test.$samples"),
        "every sample packed"
    );
    let messages: std::collections::HashSet<&str> = got.iter().map(|g| g.msg_id.as_str()).collect();
    assert!(
        messages.len() as u64 <= want / 4 && messages.len() as u64 >= want / 8,
        "{} messages for {want} samples (packs of up to 8, at least one bus batch of 4 each)",
        messages.len()
    );
    let seen = check_once_and_ordered(&got).unwrap();
    assert_eq!(seen.len() as u64, want, "every sample, once");
    assert!(seen.values().any(|h| *h), "some were sent from the backlog");
    assert!(got.iter().all(|g| g.value == (g.ts - base) as u64));
    drop(p);
    assert!(running.stop(Duration::from_secs(5)).await);
    assert_eq!(status.get().duplicates, 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_data_is_forwarded_while_a_backlog_drains_behind_it() {
    need_nats!();
    let dir = temp_dir("livefirst");
    let port = free_port();
    let url = format!("nats://127.0.0.1:{port}");
    let (p, running, status, buffer) = start(&config(&url, &dir.join("buf"), ""));
    // a backlog: 5000 batches buffered while no server runs
    let base = mw_model::now_ns();
    let backlog = 5000u64;
    let mut acks = Vec::new();
    for i in 0..backlog {
        acks.push(p.send_with_ack(batch(i, base)).await.unwrap());
    }
    for a in acks {
        assert!(a.outcome().await.is_committed());
    }
    assert_eq!(buffer.stats().pending_records, backlog * TAGS as u64);
    let _server = NatsServer::start_on(port, &dir.join("nats"));
    until("a session", Duration::from_secs(10), || {
        status.get().sessions >= 1
    })
    .await;
    // live data every 2 ms while it drains
    let live = 300u64;
    for i in backlog..backlog + live {
        p.send_with_ack(batch(i, base))
            .await
            .unwrap()
            .outcome()
            .await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let want = (backlog + live) * TAGS as u64;
    let have = wait_for_count(&url, "MW_TEST", want, Duration::from_secs(60)).await;
    assert_eq!(have, want);
    let got = read_all(&url, "MW_TEST").await;
    check_once_and_ordered(&got).unwrap();
    let last_hist = got.iter().rposition(|g| g.historical).expect("a backlog");
    let first_live = got.iter().position(|g| !g.historical).expect("live data");
    assert!(
        first_live < last_hist,
        "live data waited for the whole backlog: first live at {first_live}, last historical at {last_hist}"
    );
    assert_eq!(
        got.iter().filter(|g| g.historical).count() as u64,
        backlog * TAGS as u64,
        "exactly the backlog is historical"
    );
    drop(p);
    assert!(running.stop(Duration::from_secs(5)).await);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A buffer of two 4 KiB segments with no server: publishes `n` one-sample batches and answers
/// their outcomes (without waiting longer than `wait` for each).
async fn fill(p: &Publisher, n: u64, base: i64, wait: Duration) -> Vec<Option<AckOutcome>> {
    let mut out = Vec::new();
    for i in 0..n {
        let rx = p
            .send_with_ack(Batch::from_samples(vec![sample(0, i, base)]))
            .await
            .unwrap();
        out.push(tokio::time::timeout(wait, rx.outcome()).await.ok());
    }
    out
}

const SMALL: &str = "segment_bytes = 4096\nmax_bytes = 8192\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_buffer_drop_newest_refuses_counts_and_forwards_what_it_kept() {
    need_nats!();
    let dir = temp_dir("dropnewest");
    let port = free_port();
    let url = format!("nats://127.0.0.1:{port}");
    let extra = format!("{SMALL}full_policy = \"drop_newest\"\n");
    let (p, running, status, buffer) = start(&config(&url, &dir.join("buf"), &extra));
    let base = mw_model::now_ns();
    let outs = fill(&p, 200, base, Duration::from_secs(5)).await;
    let committed: Vec<u64> = (0..200u64)
        .filter(|&i| outs[i as usize].as_ref().is_some_and(|o| o.is_committed()))
        .collect();
    let failed = outs
        .iter()
        .filter(|o| matches!(o, Some(AckOutcome::Failed { .. })))
        .count() as u64;
    assert_eq!(committed.len() as u64 + failed, 200, "every batch settled");
    assert!(failed > 0 && !committed.is_empty(), "{failed} refused");
    let s = buffer.stats();
    assert_eq!(s.dropped_newest, failed, "every refused sample counted");
    assert!(s.used_bytes <= 8192, "{} bytes", s.used_bytes);
    let _server = NatsServer::start_on(port, &dir.join("nats"));
    let n = committed.len() as u64;
    assert_eq!(
        wait_for_count(&url, "MW_TEST", n, Duration::from_secs(30)).await,
        n
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let got = read_all(&url, "MW_TEST").await;
    check_once_and_ordered(&got).unwrap();
    let values: Vec<u64> = got.iter().map(|g| g.value).collect();
    assert_eq!(values, committed, "exactly the committed samples, in order");
    let _ = status;
    drop(p);
    assert!(running.stop(Duration::from_secs(5)).await);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_buffer_drop_oldest_keeps_the_newest_and_counts_the_rest() {
    need_nats!();
    let dir = temp_dir("dropoldest");
    let port = free_port();
    let url = format!("nats://127.0.0.1:{port}");
    let extra = format!("{SMALL}full_policy = \"drop_oldest\"\n");
    let (p, running, _status, buffer) = start(&config(&url, &dir.join("buf"), &extra));
    let base = mw_model::now_ns();
    let outs = fill(&p, 200, base, Duration::from_secs(5)).await;
    assert!(
        outs.iter()
            .all(|o| o.as_ref().is_some_and(|o| o.is_committed()))
    );
    let s = buffer.stats();
    assert!(s.dropped_oldest > 0, "{s:?}");
    assert!(s.used_bytes <= 8192, "{} bytes", s.used_bytes);
    let kept = 200 - s.dropped_oldest;
    let _server = NatsServer::start_on(port, &dir.join("nats"));
    assert_eq!(
        wait_for_count(&url, "MW_TEST", kept, Duration::from_secs(30)).await,
        kept
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let got = read_all(&url, "MW_TEST").await;
    check_once_and_ordered(&got).unwrap();
    let values: Vec<u64> = got.iter().map(|g| g.value).collect();
    assert_eq!(
        values,
        (200 - kept..200).collect::<Vec<_>>(),
        "the newest survive"
    );
    drop(p);
    assert!(running.stop(Duration::from_secs(5)).await);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_buffer_block_holds_the_source_until_the_upstream_drains_it() {
    need_nats!();
    let dir = temp_dir("block");
    let port = free_port();
    let url = format!("nats://127.0.0.1:{port}");
    let (p, running, _status, buffer) = start(&config(&url, &dir.join("buf"), SMALL));
    let base = mw_model::now_ns();
    let n = 200u64;
    let keep = p.clone(); // the forwarder runs as long as the bus does
    let src = tokio::spawn(async move {
        let mut acks = Vec::new();
        for i in 0..n {
            acks.push(
                p.send_with_ack(Batch::from_samples(vec![sample(0, i, base)]))
                    .await
                    .unwrap(),
            );
        }
        let mut ok = 0;
        for a in acks {
            let o = a.outcome().await;
            assert!(o.is_committed(), "{o:?}");
            ok += 1;
        }
        ok
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !src.is_finished(),
        "the source is held while the buffer is full"
    );
    let s = buffer.stats();
    assert!(s.used_bytes <= 8192 && s.appended_records < n, "{s:?}");
    assert_eq!(s.dropped_newest + s.dropped_oldest, 0);
    let _server = NatsServer::start_on(port, &dir.join("nats"));
    let ok = tokio::time::timeout(Duration::from_secs(30), src)
        .await
        .expect("released")
        .unwrap();
    assert_eq!(ok, n, "every batch committed once space was freed");
    assert_eq!(
        wait_for_count(&url, "MW_TEST", n, Duration::from_secs(30)).await,
        n
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let got = read_all(&url, "MW_TEST").await;
    check_once_and_ordered(&got).unwrap();
    assert_eq!(
        got.iter().map(|g| g.value).collect::<Vec<_>>(),
        (0..n).collect::<Vec<_>>()
    );
    drop(keep);
    assert!(running.stop(Duration::from_secs(5)).await);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_from_a_file_authenticate_and_a_wrong_one_is_reported_without_it() {
    need_nats!();
    let dir = temp_dir("auth");
    let port = free_port();
    let _server = NatsServer::start_with(
        port,
        &dir.join("nats"),
        &["--user", "edge1", "--pass", "s3cret-pw"],
    );
    std::fs::write(dir.join("pw"), "s3cret-pw\n").unwrap();
    std::fs::write(dir.join("bad"), "wrong-pw-xyz\n").unwrap();
    let entry = |name: &str, file: &str| {
        format!(
            "[[uplink]]\nname = \"{name}\"\nurl = \"nats://127.0.0.1:{port}\"\nsite = \"test\"\n\
             user = \"edge1\"\npassword_file = \"{}\"\n[uplink.buffer]\ndir = \"{}\"\n",
            dir.join(file).display(),
            dir.join(format!("buf-{name}")).display()
        )
    };
    // the wrong password: no session, the server's refusal reported, the password nowhere
    let (bad_p, bad_bus, bad_status, _) = start(&entry("bad", "bad"));
    // the right one, read from its file: forwards
    let (p, running, status, _) = start(&entry("good", "pw"));
    until("a session", Duration::from_secs(10), || {
        status.get().sessions >= 1
    })
    .await;
    let base = mw_model::now_ns();
    for i in 0..20 {
        assert!(
            p.send_with_ack(batch(i, base))
                .await
                .unwrap()
                .outcome()
                .await
                .is_committed()
        );
    }
    let authed = format!("nats://edge1:s3cret-pw@127.0.0.1:{port}");
    let want = 20 * TAGS as u64;
    assert_eq!(
        wait_for_count(&authed, "MW_TEST", want, Duration::from_secs(20)).await,
        want
    );
    until("the refusal reported", Duration::from_secs(10), || {
        bad_status.get().last_error.is_some()
    })
    .await;
    let st = bad_status.get();
    assert_eq!(st.sessions, 0, "{st:?}");
    let err = st.last_error.clone().unwrap();
    assert!(err.contains("authorization"), "{err}");
    assert!(!format!("{st:?}").contains("wrong-pw-xyz"), "{st:?}");
    drop((p, bad_p));
    assert!(running.stop(Duration::from_secs(5)).await);
    assert!(bad_bus.stop(Duration::from_secs(5)).await);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A buffer segment damaged while the edge was down (bit rot, a bad sector): at the next start
/// the damaged bytes are quarantined and reported, and every record around them is forwarded
/// once and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_segment_is_quarantined_and_the_rest_forwarded() {
    need_nats!();
    let dir = temp_dir("quarantine");
    let buf = dir.join("buf");
    // no server yet: everything stays in the buffer, in small segments
    let dead = format!("nats://127.0.0.1:{}", free_port());
    let (p, running, _status, _buffer) = start(&config(&dead, &buf, "segment_bytes = 4096"));
    let base = mw_model::now_ns();
    let n = 200u64;
    for i in 0..n {
        let a = p.send_with_ack(batch(i, base)).await.unwrap();
        assert!(a.outcome().await.is_committed());
    }
    drop(p);
    assert!(running.stop(Duration::from_secs(5)).await);
    let mut segs: Vec<_> = std::fs::read_dir(&buf)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    assert!(segs.len() >= 5, "{} segments", segs.len());
    // flip bytes in the middle of the third segment
    let victim = &segs[2];
    let mut bytes = std::fs::read(victim).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 8] {
        *b ^= 0x5a;
    }
    std::fs::write(victim, &bytes).unwrap();

    let server = NatsServer::start(&dir.join("nats"));
    let (p, running, status, buffer) = start(&config(&server.url(), &buf, "segment_bytes = 4096"));
    let t = Instant::now();
    while buffer.stats().pending_records > 0 {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "not drained: {:?}",
            status.get()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let quarantined: Vec<_> = std::fs::read_dir(buf.join("quarantine"))
        .expect("a quarantine directory")
        .filter_map(|e| e.ok())
        .collect();
    assert_eq!(quarantined.len(), 1, "the damaged span is kept aside");
    let got = read_all(&server.url(), "MW_TEST").await;
    let seen = check_once_and_ordered(&got).unwrap();
    let want = n * TAGS as u64;
    let lost = want - seen.len() as u64;
    assert!(
        (1..=40).contains(&lost),
        "only the records of the damaged span are lost ({lost} of {want}; a 4 KiB segment holds ~30)"
    );
    drop(p);
    assert!(running.stop(Duration::from_secs(5)).await);
    assert_eq!(status.get().duplicates, 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// TLS and a token towards a server that requires them: with the CA that signed the server's
/// certificate (`certs init`) and the right token file the uplink forwards (every record
/// PubAck'd); with another CA there is no session and the certificate error is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_a_token_file_against_a_server_that_requires_them() {
    need_nats!();
    let dir = temp_dir("tls");
    let certs = dir.join("certs");
    let other = dir.join("other-ca");
    mw_security::certs::init(&certs, &["127.0.0.1".into()], &[], false).expect("certs");
    mw_security::certs::init(&other, &["127.0.0.1".into()], &[], false).expect("other CA");
    let port = free_port();
    let (cert, key) = (certs.join("server.pem"), certs.join("server.key"));
    let _server = NatsServer::start_with(
        port,
        &dir.join("nats"),
        &[
            "--tls",
            "--tlscert",
            cert.to_str().unwrap(),
            "--tlskey",
            key.to_str().unwrap(),
            "--auth",
            "tok-3f9a2c",
        ],
    );
    std::fs::write(dir.join("token"), "tok-3f9a2c\n").unwrap();
    let entry = |name: &str, ca: &std::path::Path| {
        format!(
            "[[uplink]]\nname = \"{name}\"\nurl = \"tls://127.0.0.1:{port}\"\nsite = \"test\"\n\
             token_file = \"{}\"\ntls = {{ ca = \"{}\" }}\n[uplink.buffer]\ndir = \"{}\"\n",
            dir.join("token").display(),
            ca.join("ca.pem").display(),
            dir.join(format!("buf-{name}")).display()
        )
    };
    let (bad_p, bad_bus, bad_status, _) = start(&entry("untrusted", &other));
    let (p, running, status, buffer) = start(&entry("trusted", &certs));
    until("a TLS session", Duration::from_secs(15), || {
        status.get().sessions >= 1
    })
    .await;
    let base = mw_model::now_ns();
    for i in 0..20 {
        let a = p.send_with_ack(batch(i, base)).await.unwrap();
        assert!(a.outcome().await.is_committed());
    }
    until(
        "every record PubAck'd over TLS",
        Duration::from_secs(15),
        || buffer.stats().pending_records == 0,
    )
    .await;
    assert_eq!(status.get().acked, 20 * TAGS as u64);
    let st = bad_status.get();
    assert_eq!(
        st.sessions, 0,
        "an untrusted certificate gives no session: {st:?}"
    );
    let err = st.last_error.unwrap_or_default();
    assert!(!err.contains("tok-3f9a2c"), "the token never shows: {err}");
    drop((p, bad_p));
    assert!(running.stop(Duration::from_secs(5)).await);
    assert!(bad_bus.stop(Duration::from_secs(5)).await);
    let _ = std::fs::remove_dir_all(&dir);
}
