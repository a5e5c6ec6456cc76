//! The uplink against a real 3-node JetStream cluster on loopback (three `nats-server -js`
//! processes with routes between them, each with its own store, stopped by pid): the stream is
//! created with 3 replicas, the node leading it is killed with SIGKILL in the middle of
//! forwarding, and every batch the bus saw committed is in the stream afterwards exactly once and
//! in order per tag — a PubAck from an R3 stream means a quorum has it. Skipped, with a message,
//! when `nats-server` is not installed.

mod common;

use std::time::{Duration, Instant};

use async_nats::jetstream;
use common::{
    NatsServer, check_once_and_ordered, free_port, read_all_within, sample, temp_dir, uplink,
};
use mw_bus::{Batch, BusBuilder, BusConfig, SourceRegistry};

const TAGS: usize = 3;

async fn stream_leader(url: &str) -> Option<String> {
    let client = async_nats::connect(url).await.ok()?;
    let js = jetstream::new(client);
    let mut s = js.get_stream("MW_TEST").await.ok()?;
    let info = s.info().await.ok()?;
    info.cluster.as_ref().and_then(|c| c.leader.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_stream_leader_loses_no_acknowledged_batch() {
    need_nats!();
    let dir = temp_dir("cluster");
    let client_ports = [free_port(), free_port(), free_port()];
    let route_ports = [free_port(), free_port(), free_port()];
    let mut servers: Vec<Option<NatsServer>> = (0..3)
        .map(|i| {
            let routes: Vec<String> = (0..3)
                .filter(|&j| j != i)
                .map(|j| format!("nats://127.0.0.1:{}", route_ports[j]))
                .collect();
            let name = format!("n{}", i + 1);
            let cluster = format!("nats://127.0.0.1:{}", route_ports[i]);
            let routes = routes.join(",");
            Some(NatsServer::start_with(
                client_ports[i],
                &dir.join(&name),
                &[
                    "--name",
                    &name,
                    "--cluster_name",
                    "mwtest",
                    "--cluster",
                    &cluster,
                    "--routes",
                    &routes,
                ],
            ))
        })
        .collect();
    let urls: Vec<String> = client_ports
        .iter()
        .map(|p| format!("nats://127.0.0.1:{p}"))
        .collect();
    let toml = format!(
        "[[uplink]]\nname = \"t\"\nurl = \"{}\"\nsite = \"test\"\nbatch = 32\nreplicas = 3\n\
         [uplink.buffer]\ndir = \"{}\"\nack_persist_ms = 100\n",
        urls.join(","),
        dir.join("buf").display()
    );
    let sink = uplink(&toml);
    let status = sink.status();
    let mut bus = BusBuilder::new(BusConfig::default());
    bus.sink(Box::new(sink));
    let p = bus.publisher();
    let running = bus.start(&SourceRegistry::new());

    // The cluster elects its meta leader, then the uplink creates the R3 stream.
    let t = Instant::now();
    let leader = loop {
        if status.get().sessions >= 1
            && let Some(l) = stream_leader(&urls[0]).await
        {
            break l;
        }
        assert!(
            t.elapsed() < Duration::from_secs(45),
            "no session on an R3 stream within 45 s: {:?}",
            status.get()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    let base = mw_model::now_ns();
    let n = 300u64;
    let mut acks = Vec::new();
    for i in 0..n {
        let b = Batch::from_samples((0..TAGS).map(|k| sample(k, i, base)).collect());
        acks.push(p.send_with_ack(b).await.unwrap());
        if i == n / 2 {
            // kill -9 the node that leads the stream, in the middle of forwarding
            let k: usize = leader.trim_start_matches('n').parse::<usize>().unwrap() - 1;
            drop(servers[k].take());
        }
        if i % 20 == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    for a in acks {
        assert!(a.outcome().await.is_committed());
    }
    let survivor = servers
        .iter()
        .position(Option::is_some)
        .map(|i| urls[i].clone())
        .unwrap();
    let want = n * TAGS as u64;
    let t = Instant::now();
    loop {
        let st = status.get();
        if st.acked >= want {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the uplink did not get PubAcks for everything within 60 s: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // the consumer needs the stream's new leader: under load the election can take seconds
    let got = read_all_within(&survivor, "MW_TEST", Duration::from_secs(30)).await;
    let seen = check_once_and_ordered(&got).unwrap();
    assert_eq!(
        seen.len() as u64,
        want,
        "every committed sample is in the stream once"
    );
    let t = Instant::now();
    let new_leader = loop {
        let l = stream_leader(&survivor).await;
        if l.is_some() && l.as_deref() != Some(leader.as_str())
            || t.elapsed() > Duration::from_secs(30)
        {
            break l;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        new_leader.is_some() && new_leader.as_deref() != Some(leader.as_str()),
        "a surviving node leads the stream now: {new_leader:?} (was {leader})"
    );
    drop(p);
    assert!(running.stop(Duration::from_secs(10)).await);
    let _ = std::fs::remove_dir_all(&dir);
}
