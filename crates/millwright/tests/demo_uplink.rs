//! `millwright demo --uplink nats://…` forwards the simulated plant to a real `nats-server -js`
//! (ephemeral loopback port, its own store directory, killed by pid): the plant's tags arrive in
//! the stream the uplink creates, on their subjects, with their units. Skipped, with a message,
//! when `nats-server` is not installed (scripts/setup-test-env.sh installs it).

mod common;

use std::time::{Duration, Instant};

use common::{Proc, TempDir, nats_server, register_map, start_demo};

#[test]
fn demo_with_uplink_forwards_the_plant_tags_to_jetstream() {
    let Some(bin) = nats_server() else {
        eprintln!("SKIPPED: nats-server is not installed (apt-get install nats-server)");
        return;
    };
    let store = TempDir::new("demo-uplink-nats");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let store_dir = store.path.to_str().expect("utf-8").to_owned();
    let _server = Proc::spawn(
        bin,
        &[
            "-js",
            "-a",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-sd",
            &store_dir,
        ],
    );
    let url = format!("nats://127.0.0.1:{port}");
    let mut demo = start_demo("demo-uplink", &["--uplink", &url, "--poll-interval", "100"]);
    let stream = "MW_ACME-PLANT-1-SIMULATED";
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let got = rt.block_on(async {
        let t = Instant::now();
        let js = loop {
            match async_nats::connect(url.as_str()).await {
                Ok(c) => break async_nats::jetstream::new(c),
                Err(e) if t.elapsed() > Duration::from_secs(10) => panic!("cannot connect: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        // the demo's first polls: wait (bounded) for 200 messages in the uplink's stream
        loop {
            let n = match js.get_stream(stream).await {
                Ok(s) => s.get_info().await.map(|i| i.state.messages).unwrap_or(0),
                Err(_) => 0,
            };
            if n >= 200 {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "only {n} messages in {stream} after 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let s = js.get_stream(stream).await.expect("stream");
        let mut out = Vec::new();
        for seq in 1..=200 {
            let m = s.get_raw_message(seq).await.expect("message");
            let v: serde_json::Value = serde_json::from_slice(&m.payload).expect("JSON");
            out.push((m.subject.to_string(), v));
        }
        out
    });
    let map = register_map();
    let mut plant_tags = std::collections::BTreeSet::new();
    let mut live = 0;
    for (subject, v) in &got {
        // what was buffered before the first connection is the (small) backlog
        live += usize::from(!v["historical"].as_bool().expect("historical flag"));
        let Some(tag) = v["tag"].as_str() else {
            assert!(
                subject.starts_with("mw.acme-plant-1-simulated.$events."),
                "{subject}"
            );
            continue;
        };
        assert_eq!(
            subject,
            &format!(
                "mw.acme-plant-1-simulated.{}",
                tag.replace('.', "~").replace('/', ".")
            ),
        );
        if let Some(row) = map.iter().find(|r| r.path == tag) {
            assert_eq!(v["unit"].as_str(), row.unit.as_deref(), "unit of {tag}");
            assert!(v["ts"].as_i64().is_some_and(|t| t > 0));
            plant_tags.insert(tag.to_owned());
        }
    }
    assert!(live > 0, "no live message among the first 200");
    assert!(
        plant_tags.len() >= 10,
        "plant tags in the first 200 messages: {plant_tags:?}"
    );
    demo.proc.sigterm();
    assert!(
        demo.proc.wait_exit(Duration::from_secs(5)).is_some(),
        "demo did not exit\n{}",
        demo.proc.report()
    );
}
