//! The audit writer killed with SIGKILL while it appends: the log still verifies (a torn last
//! line is dropped when it is opened again), it holds every record whose `record()` had returned
//! (the child prints each seq after its fsync), and the next writer continues the chain.
//!
//! The child is this test binary itself, run with `MW_AUDIT_CRASH_CHILD` set, so it needs no
//! helper program.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mw_security::audit::{self, AuditEntry, AuditWriter};

const CHILD: &str = "MW_AUDIT_CRASH_CHILD";

/// Only does something as the child: appends records until killed.
#[test]
fn crash_child_writer() {
    let Ok(dir) = std::env::var(CHILD) else {
        return;
    };
    let mut w = AuditWriter::open_data_dir(Path::new(&dir)).expect("open");
    let mut out = std::io::stdout().lock();
    for i in 0..1_000_000usize {
        let e = AuditEntry::new(
            "crash",
            "test.write",
            format!("r{i}"),
            "ok",
            "x".repeat(i % 500),
        );
        let seq = w.record(&e).expect("record");
        writeln!(out, "acked {seq}").expect("stdout");
        out.flush().expect("stdout");
    }
}

fn temp_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "mw-security-crash-{}-{}",
        std::process::id(),
        mw_model::now_ns()
    ));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

#[test]
fn a_killed_writer_loses_nothing_it_acknowledged() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    let dir = temp_dir();
    let exe = std::env::current_exe().expect("test binary");
    let mut last_acked = 0u64;
    for round in 0..3u64 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_child_writer",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the child");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // libtest may print `test crash_child_writer ... ` on the same line first.
                let acked = line.rfind("acked ").map(|i| &line[i + "acked ".len()..]);
                if let Some(n) = acked.and_then(|n| n.parse::<u64>().ok())
                    && tx.send(n).is_err()
                {
                    break;
                }
            }
        });
        // Let it write a different number of records each round, then kill it mid-stream.
        let want = last_acked + 40 + round * 37;
        let deadline = Instant::now() + Duration::from_secs(30);
        while last_acked < want {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(n) => {
                    assert_eq!(n, last_acked + 1, "acknowledged seqs are consecutive");
                    last_acked = n;
                }
                Err(e) => {
                    let _ = child.kill();
                    panic!("the child stopped acknowledging at {last_acked}: {e}");
                }
            }
        }
        child.kill().expect("SIGKILL"); // Child::kill sends SIGKILL to this pid
        child.wait().expect("reap");
        let _ = reader.join();
        // Anything acknowledged after `want` but before the kill was printed, and arrives here.
        while let Ok(n) = rx.try_recv() {
            last_acked = n;
        }

        let w = AuditWriter::open_data_dir(&dir).expect("reopen after the crash");
        let on_disk = w.next_seq() - 1;
        assert!(
            on_disk >= last_acked,
            "round {round}: {on_disk} on disk < {last_acked} acked"
        );
        assert!(
            on_disk <= last_acked + 1,
            "at most the one unacknowledged record more"
        );
        let bytes = std::fs::read(audit::audit_dir(&dir).join(audit::FILE)).expect("read log");
        let v = audit::verify(&bytes, false).expect("the log verifies after reopening");
        assert_eq!(v.records, on_disk);
        last_acked = on_disk;
        drop(w);
    }
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
