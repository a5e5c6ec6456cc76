//! A real edge crash: a child process (this test binary) runs the bus with the uplink sink and
//! its forwarder on the real file system and prints every batch the bus committed; it is killed
//! with SIGKILL while it drains a backlog into a real `nats-server -js`, and a second child on
//! the same buffer resumes. Every committed sample must be in the stream exactly once: the
//! restart resumes after the persisted acknowledged prefix, and what it sends again is dropped
//! by the server's duplicate window (same `Nats-Msg-Id`).

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    NatsServer, check_once_and_ordered, config, free_port, read_all, sample, temp_dir, uplink,
    wait_for_count,
};
use mw_bus::{Batch, BusBuilder, BusConfig, SourceRegistry};

const CHILD_ENV: &str = "MW_UPLINK_KILL_CHILD";
const TAGS: usize = 10;
/// Source timestamps are BASE + i, the same in both children.
const BASE: i64 = 1_700_000_000_000_000_000;
const TEST: &str = "kill_9_during_a_backlog_drain_loses_nothing_and_the_server_drops_the_resent";

/// The child: publishes batches `start..start+count`, one every ms, printing `ok I` once
/// committed, then prints `status ACKED DUPLICATES` every 100 ms for at most 30 s.
fn child(arg: &str) {
    let mut it = arg.split('|');
    let (dir, url) = (it.next().unwrap(), it.next().unwrap());
    let start: u64 = it.next().unwrap().parse().unwrap();
    let count: u64 = it.next().unwrap().parse().unwrap();
    println!(); // libtest printed "test NAME ... " without a newline
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let sink = uplink(&config(url, &Path::new(dir).join("buf"), ""));
        let status = sink.status();
        let mut bus = BusBuilder::new(BusConfig::default());
        bus.sink(Box::new(sink));
        let p = bus.publisher();
        let _running = bus.start(&SourceRegistry::new());
        for i in start..start + count {
            let b = Batch::from_samples((0..TAGS).map(|k| sample(k, i, BASE)).collect());
            if p.send_with_ack(b)
                .await
                .unwrap()
                .outcome()
                .await
                .is_committed()
            {
                println!("ok {i}");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(30) {
            let s = status.get();
            println!("status {} {}", s.acked, s.duplicates);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}

fn spawn(
    dir: &Path,
    url: &str,
    start: u64,
    count: u64,
) -> (Child, std::io::Lines<BufReader<ChildStdout>>) {
    let mut c = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(
            CHILD_ENV,
            format!("{}|{url}|{start}|{count}", dir.display()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let lines = BufReader::new(c.stdout.take().unwrap()).lines();
    (c, lines)
}

#[test]
fn kill_9_during_a_backlog_drain_loses_nothing_and_the_server_drops_the_resent() {
    if let Ok(arg) = std::env::var(CHILD_ENV) {
        child(&arg);
        return;
    }
    need_nats!();
    let dir = temp_dir("kill");
    let port = free_port();
    let url = format!("nats://127.0.0.1:{port}");
    let rt = tokio::runtime::Runtime::new().unwrap();

    // 1. child A buffers 1500 batches with no server, then the server starts and it drains
    let (mut a, mut lines) = spawn(&dir, &url, 0, 100_000);
    let mut committed = HashSet::new();
    let t = Instant::now();
    while committed.len() < 1500 && t.elapsed() < Duration::from_secs(30) {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(i) = line.strip_prefix("ok ") {
            committed.insert(i.parse::<u64>().unwrap());
        }
    }
    assert!(
        committed.len() >= 1500,
        "child A committed {} batches",
        committed.len()
    );
    let server = NatsServer::start_on(port, &dir.join("nats"));
    // 2. SIGKILL in the middle of the drain
    let in_stream = rt.block_on(wait_for_count(
        &url,
        "MW_TEST",
        600,
        Duration::from_secs(30),
    ));
    assert!(in_stream >= 600, "the drain did not start ({in_stream})");
    a.kill().expect("SIGKILL child A");
    let _ = a.wait();
    // what child A printed before it died (its pipe still holds it)
    for line in lines.map_while(Result::ok) {
        if let Some(i) = line.strip_prefix("ok ") {
            committed.insert(i.parse::<u64>().unwrap());
        }
    }
    let at_kill = rt.block_on(wait_for_count(&url, "MW_TEST", 0, Duration::ZERO));
    let total_a = *committed.iter().max().unwrap() + 1;
    assert!(
        at_kill < total_a * TAGS as u64,
        "killed during the drain: {at_kill} of at least {} in the stream",
        total_a * TAGS as u64
    );

    // 3. child B on the same buffer: resumes, and adds 200 batches of its own
    let (mut b, mut lines) = spawn(&dir, &url, 1_000_000, 200);
    let t = Instant::now();
    let mut dups = None;
    while t.elapsed() < Duration::from_secs(60) {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(i) = line.strip_prefix("ok ") {
            committed.insert(i.parse::<u64>().unwrap());
        } else if let Some(s) = line.strip_prefix("status ") {
            // printed once all of B's batches were committed
            let v: Vec<u64> = s.split(' ').map(|x| x.parse().unwrap()).collect();
            dups = Some(v[1]);
            let have = rt.block_on(wait_for_count(&url, "MW_TEST", 0, Duration::ZERO));
            if have >= (committed.len() * TAGS) as u64 {
                break;
            }
        }
    }
    // the stream is complete once it holds every committed sample (and nothing twice)
    let want = (committed.len() * TAGS) as u64;
    rt.block_on(wait_for_count(
        &url,
        "MW_TEST",
        want,
        Duration::from_secs(30),
    ));
    std::thread::sleep(Duration::from_millis(500)); // let a late copy show up if there were one
    let got = rt.block_on(read_all(&url, "MW_TEST"));
    let _ = b.kill();
    let _ = b.wait();
    let seen = check_once_and_ordered(&got).unwrap_or_else(|e| panic!("{e}"));
    for &i in &committed {
        for k in 0..TAGS {
            let key = (format!("plant/t{k}/v"), BASE + i as i64);
            assert!(seen.contains_key(&key), "committed sample t{k} #{i} lost");
        }
    }
    // nothing was invented: what is there beyond the printed commits was committed by child A
    // just before the kill (its line not yet written), so it lies below A's range end
    for g in &got {
        let i = (g.ts - BASE) as u64;
        assert!(
            committed.contains(&i) || i < 100_000,
            "unexpected sample #{i} (B committed {:?})",
            committed.iter().filter(|&&c| c >= 1_000_000).count()
        );
    }
    let dups = dups.expect("child B reported its status");
    assert!(
        dups < at_kill,
        "child B sent {dups} duplicates; it must resume after the persisted prefix, not from the start ({at_kill} were in the stream)"
    );
    eprintln!(
        "kill test: {} committed batches, {at_kill} messages in the stream at the kill, {dups} resent and dropped by the server",
        committed.len()
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
