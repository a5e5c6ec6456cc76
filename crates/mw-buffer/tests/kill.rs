//! A real process crash: a child process appends and acknowledges on the real file system and
//! reports each durable append and each persisted ledger on stdout; it is killed with SIGKILL
//! mid-stream, and the reopened buffer must hold every reported record and none at or below
//! the reported ledger.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mw_buffer::{Buffer, FullPolicy, Options};
use mw_storage::storage::FsStorage;

const CHILD_ENV: &str = "MW_BUFFER_KILL_CHILD_DIR";

fn opts(dir: &std::path::Path) -> Options {
    Options {
        segment_bytes: 4096,
        max_bytes: 64 << 20,
        full_policy: FullPolicy::Block,
        ..Options::new(dir)
    }
}

fn payload(i: u64) -> Vec<u8> {
    format!("record {i:08}").into_bytes()
}

/// The child: appends forever (bounded), acknowledging behind itself.
fn child(dir: &str) {
    let (b, _) = Buffer::open(Arc::new(FsStorage), opts(dir.as_ref())).expect("child open");
    let mut out = std::io::stdout().lock();
    for i in 0..1_000_000u64 {
        let seq = b.append(i as i64, &payload(i)).expect("append");
        writeln!(out, "ok {seq} {i}").unwrap();
        out.flush().unwrap();
        if i % 10 == 9 {
            b.ack_through(seq - 5).expect("ack");
            b.flush().expect("flush");
            writeln!(out, "persisted {}", seq - 5).unwrap();
            out.flush().unwrap();
        }
    }
}

#[test]
fn kill_9_mid_stream_loses_no_durable_record_and_redelivers_nothing_persisted() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(&dir);
        return;
    }
    let dir = std::env::temp_dir().join(format!("mw-buffer-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut c = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "kill_9_mid_stream_loses_no_durable_record_and_redelivers_nothing_persisted",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let mut lines = BufReader::new(c.stdout.take().unwrap()).lines();
    let (mut durable, mut persisted) = (BTreeMap::new(), 0u64);
    let t = Instant::now();
    while durable.len() < 400 && t.elapsed() < Duration::from_secs(10) {
        let Some(Ok(line)) = lines.next() else { break };
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["ok", s, i] => {
                durable.insert(s.parse::<u64>().unwrap(), i.parse::<u64>().unwrap());
            }
            ["persisted", p] => persisted = p.parse().unwrap(),
            _ => {}
        }
    }
    c.kill().expect("SIGKILL the child by pid");
    c.wait().unwrap();
    assert!(
        durable.len() >= 100,
        "the child reported only {} appends",
        durable.len()
    );

    let (b, report) = Buffer::open(Arc::new(FsStorage), opts(&dir)).unwrap();
    assert!(report.acked >= persisted);
    let mut got = BTreeMap::new();
    let mut next = report.first_unacked.unwrap_or(u64::MAX);
    loop {
        let v = b.read_from(next, 100).unwrap();
        let Some(l) = v.last() else { break };
        next = l.seq + 1;
        for r in v {
            assert!(
                r.seq > persisted,
                "{} redelivered at or below the ledger {persisted}",
                r.seq
            );
            assert_eq!(r.payload, payload(r.ts as u64));
            got.insert(r.seq, r.ts as u64);
        }
    }
    for (seq, i) in durable.range(persisted + 1..) {
        assert_eq!(got.get(seq), Some(i), "durable record {seq} lost");
    }
    let last = *durable.keys().last().unwrap();
    assert!(b.append(0, b"after").unwrap() > last);
    b.close().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
