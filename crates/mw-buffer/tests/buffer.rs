//! The disk buffer: round trip, restart after acknowledgements, torn tails, corruption, the
//! full policies and their on-disk bound — through the fault-injecting in-memory storage, plus
//! a round trip on the real file system.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use mw_buffer::{Buffer, BufferError, FullPolicy, LedgerFound, Options, Sync};
use mw_storage::storage::{FsStorage, MemStorage, Storage};

fn seqs(v: &[mw_buffer::Record]) -> Vec<u64> {
    v.iter().map(|r| r.seq).collect()
}

fn seg_files(mem: &MemStorage) -> Vec<std::path::PathBuf> {
    mem.list(Path::new(DIR))
        .unwrap()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect()
}

#[test]
fn round_trip_in_order_across_segments() {
    let mem = MemStorage::new();
    let (b, report) = open(&mem, opts(256, 1 << 20, FullPolicy::Block));
    assert_eq!(report.next_seq, 1);
    assert_eq!(report.ledger, LedgerFound::Missing);
    for i in 0..200u64 {
        assert_eq!(b.append(i as i64 * 1000, &payload(i)).unwrap(), i + 1);
    }
    assert!(seg_files(&mem).len() > 20, "small segments roll");
    let all = drain(&b, 1);
    assert_eq!(seqs(&all), (1..=200).collect::<Vec<_>>());
    for (i, r) in all.iter().enumerate() {
        assert_eq!(r.ts, i as i64 * 1000);
        assert_eq!(r.payload, payload(i as u64));
    }
    // reading from the middle, and past the end
    assert_eq!(seqs(&b.read_from(150, 3).unwrap()), [150, 151, 152]);
    assert!(b.read_from(201, 10).unwrap().is_empty());
    let s = b.stats();
    assert_eq!(
        (s.appended_records, s.pending_records, s.next_seq),
        (200, 200, 201)
    );
    assert_eq!(s.used_bytes, segment_bytes_on_disk(&mem));
}

#[test]
fn batch_append_gets_consecutive_numbers_and_one_sync() {
    let mem = MemStorage::new();
    let (b, _) = open(&mem, opts(4096, 1 << 20, FullPolicy::Block));
    b.append(0, b"warm-up").unwrap(); // reserves sequence numbers (ledger write)
    let (before, counted) = (mem.syncs(), b.stats().syncs);
    let recs: Vec<(i64, Vec<u8>)> = (0..20).map(|i| (i, payload(i as u64))).collect();
    assert_eq!(b.append_batch(&recs).unwrap(), (2, 21));
    assert_eq!(mem.syncs() - before, 1);
    assert_eq!(b.stats().syncs - counted, 1);
    assert_eq!(drain(&b, 2).len(), 20);
    let big = vec![(0i64, vec![0u8; 3000]), (0, vec![0u8; 3000])];
    assert!(matches!(
        b.append_batch(&big),
        Err(BufferError::BatchTooLarge { .. })
    ));
    assert!(matches!(
        b.append(0, &vec![0u8; 5000]),
        Err(BufferError::TooLarge { len: 5000, .. })
    ));
}

#[test]
fn restart_resumes_after_the_acknowledged_prefix_with_out_of_order_acks() {
    let mem = MemStorage::new();
    let (b, _) = open(&mem, opts(256, 1 << 20, FullPolicy::Block));
    for i in 0..50 {
        b.append(0, &payload(i)).unwrap();
    }
    for s in (1..=10).rev() {
        b.ack(s).unwrap();
    }
    for s in 12..=20 {
        b.ack(s).unwrap();
    }
    assert_eq!(
        b.stats().acked,
        10,
        "11 is missing: the prefix stops before it"
    );
    assert_eq!(b.stats().pending_records, 50 - 10 - 9);
    assert!(matches!(
        b.ack(51),
        Err(BufferError::InvalidAck { seq: 51, next: 51 })
    ));
    b.close().unwrap();

    let (b, report) = open(&mem, opts(256, 1 << 20, FullPolicy::Block));
    assert_eq!(report.acked, 10);
    assert_eq!(report.first_unacked, Some(11));
    // 12..=20 were acknowledged beyond the prefix, which is all the ledger keeps: delivered again
    assert_eq!(seqs(&drain(&b, 11)), (11..=50).collect::<Vec<_>>());
    b.ack(11).unwrap();
    for s in 12..=20 {
        b.ack(s).unwrap();
    }
    assert_eq!(b.stats().acked, 20);
    let next = b.append(0, b"after restart").unwrap();
    assert!(next > 50, "sequence numbers are never reused: got {next}");
    b.close().unwrap();

    let (b, report) = open(&mem, opts(256, 1 << 20, FullPolicy::Block));
    assert_eq!(report.first_unacked, Some(21));
    let rest = drain(&b, 21);
    assert_eq!(rest.len(), 31);
    assert_eq!(rest.last().unwrap().payload, b"after restart");
    assert!(report.next_seq > next);
}

#[test]
fn fully_acknowledged_segments_are_deleted_and_space_returns() {
    let mem = MemStorage::new();
    let (b, _) = open(&mem, opts(256, 1 << 20, FullPolicy::Block));
    for i in 0..100 {
        b.append(0, &payload(i)).unwrap();
    }
    let before = seg_files(&mem).len();
    b.ack_through(60).unwrap();
    let after = seg_files(&mem).len();
    assert!(after < before / 2 + 2, "{before} -> {after}");
    assert_eq!(b.stats().used_bytes, segment_bytes_on_disk(&mem));
    assert_eq!(b.first_unacked(), Some(61));
    assert_eq!(seqs(&drain(&b, 1))[0], 61, "deleted records are not read");
}

#[test]
fn acks_are_persisted_after_ack_persist_even_without_flush() {
    let mem = MemStorage::new();
    let o = Options {
        ack_persist: Duration::from_millis(20),
        ..opts(256, 1 << 20, FullPolicy::Block)
    };
    let doomed = Doomed::new(mem.clone(), u64::MAX);
    let (b, _) = open(&doomed, o.clone());
    for i in 0..10 {
        b.append(0, &payload(i)).unwrap();
    }
    b.ack_through(4).unwrap();
    // the ticker persists the ledger within a few of its periods
    let t = Instant::now();
    loop {
        let l = mem.content(&Path::new(DIR).join("ledger")).unwrap();
        if mw_buffer::format::Ledger::decode(&l).is_some_and(|l| l.acked == 4) {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "ledger not persisted");
        std::thread::sleep(Duration::from_millis(5));
    }
    doomed.kill();
    drop(b);
    let (_, report) = open(&mem, o);
    assert_eq!(report.first_unacked, Some(5));
}

#[test]
fn torn_tail_is_truncated_and_reported_and_numbers_not_reused() {
    let mem = MemStorage::new();
    let doomed = Doomed::new(mem.clone(), u64::MAX);
    let o = Options {
        sync: Sync::Interval(Duration::from_secs(60)),
        ..opts(4096, 1 << 20, FullPolicy::Block)
    };
    let (b, _) = open(&doomed, o.clone());
    for i in 0..10 {
        b.append(0, &payload(i)).unwrap();
    }
    b.flush().unwrap();
    let mut unsynced = 0;
    for i in 10..15 {
        unsynced = b.append(0, &payload(i)).unwrap();
    }
    let frame = mw_buffer::format::framed_len(payload(10).len());
    mem.set_torn(frame as usize + 7); // one whole unsynced record and 7 bytes of the next
    doomed.kill();
    drop(b);
    mem.set_torn(0);

    let (b, report) = open(&mem, o.clone());
    let t = report.truncated.clone().expect("a torn tail");
    assert_eq!((t.bytes, t.records), (7, 1));
    assert_eq!(t.at, 11 * frame);
    let got = drain(&b, 1);
    assert_eq!(seqs(&got), (1..=11).collect::<Vec<_>>());
    assert_eq!(got[10].payload, payload(10));
    let next = b.append(0, b"new").unwrap();
    assert!(
        next > unsynced,
        "{next} reuses a number handed out before the crash ({unsynced})"
    );
    b.close().unwrap();
    let (_, report) = open(&mem, o);
    assert_eq!(report.truncated, None, "reported once");
}

#[test]
fn corrupt_sealed_segment_is_quarantined_and_the_rest_delivered() {
    let mem = MemStorage::new();
    let o = opts(256, 1 << 20, FullPolicy::Block);
    let (b, _) = open(&mem, o.clone());
    for i in 0..40 {
        b.append(0, &payload(i)).unwrap();
    }
    b.close().unwrap();
    let files = seg_files(&mem);
    let frame = mw_buffer::format::framed_len(payload(0).len()) as usize;
    let per_seg = 256 / frame; // records per segment
    // a payload byte of the middle record of the second segment, and the last record of the third
    mem.corrupt(&files[1], frame * (per_seg / 2) + 30);
    mem.corrupt(&files[2], frame * (per_seg - 1) + 9);
    let lost_mid = 1 + per_seg as u64 + per_seg as u64 / 2;
    let lost_tail = 3 * per_seg as u64;

    let (b, report) = open(&mem, o.clone());
    assert_eq!(report.quarantined.len(), 2, "{report:?}");
    let (q1, q2) = (&report.quarantined[0], &report.quarantined[1]);
    assert_eq!(
        (q1.segment.clone(), q1.lost_records, q1.bytes),
        (files[1].clone(), Some(1), frame as u64)
    );
    assert_eq!(q1.reason, "checksum mismatch");
    assert_eq!(
        (q2.segment.clone(), q2.lost_records),
        (files[2].clone(), None)
    );
    assert!(q1.file.starts_with(Path::new(DIR).join("quarantine")));
    assert_eq!(mem.content(&q1.file).unwrap().len(), frame);
    assert_eq!(report.truncated, None);
    let got = seqs(&drain(&b, 1));
    let want: Vec<u64> = (1..=40)
        .filter(|s| *s != lost_mid && *s != lost_tail)
        .collect();
    assert_eq!(got, want);
    assert_eq!(report.pending_records, 38);
    b.close().unwrap();

    // the damage is gone from the segments: a second open finds none and the same records
    let (b, report) = open(&mem, o);
    assert!(report.quarantined.is_empty(), "{report:?}");
    assert_eq!(seqs(&drain(&b, 1)), want);
}

#[test]
fn damage_found_while_reading_skips_the_rest_of_that_segment() {
    let mem = MemStorage::new();
    let (b, _) = open(&mem, opts(256, 1 << 20, FullPolicy::Block));
    for i in 0..30 {
        b.append(0, &payload(i)).unwrap();
    }
    let files = seg_files(&mem);
    mem.corrupt(&files[1], 20); // first record of the second segment
    let got = drain(&b, 1);
    let frame = mw_buffer::format::framed_len(payload(0).len()) as usize;
    let per_seg = (256 / frame) as u64;
    assert_eq!(b.stats().corrupt_records, per_seg);
    let want: Vec<u64> = (1..=30)
        .filter(|s| !(per_seg + 1..=2 * per_seg).contains(s))
        .collect();
    assert_eq!(seqs(&got), want);
    // acknowledging across the hole works
    b.ack_through(30).unwrap();
    assert_eq!(b.stats().pending_records, 0);
}

#[test]
fn garbage_files_and_a_damaged_ledger_do_not_panic() {
    let mem = MemStorage::new();
    let o = opts(256, 1 << 20, FullPolicy::Block);
    let (b, _) = open(&mem, o.clone());
    for i in 0..10 {
        b.append(0, &payload(i)).unwrap();
    }
    b.ack_through(3).unwrap();
    b.close().unwrap();
    mem.corrupt(&Path::new(DIR).join("ledger"), 12);
    let write = |name: &str, bytes: &[u8]| {
        let mut f = mem.open_append(&Path::new(DIR).join(name)).unwrap();
        f.append(bytes).unwrap();
        f.sync().unwrap();
    };
    write("00000000000000000005.seg", &[0xff; 100]); // a segment name inside another's range
    write("notes.txt", b"ignored");
    write("123.seg", b"not a segment name");
    let (b, report) = open(&mem, o);
    assert_eq!(report.ledger, LedgerFound::Damaged);
    let got = seqs(&drain(&b, 1));
    assert_eq!(got[0], 1, "a damaged ledger redelivers everything");
    assert!(got.len() >= 4, "{got:?}");
    assert!(report.next_seq > 10 + mw_buffer::RESERVE_STEP - 1);
}

#[test]
fn drop_newest_refuses_counts_and_keeps_the_bound() {
    let mem = MemStorage::new();
    let max = 1024;
    let (b, _) = open(&mem, opts(256, max, FullPolicy::DropNewest));
    let (mut ok, mut refused) = (Vec::new(), 0);
    for i in 0..60 {
        match b.append(0, &payload(i)) {
            Ok(s) => ok.push(s),
            Err(BufferError::Full {
                policy,
                used,
                max_bytes,
                ..
            }) => {
                assert_eq!((policy, max_bytes), ("drop_newest", max));
                assert!(used <= max);
                refused += 1;
            }
            Err(e) => panic!("{e}"),
        }
        assert!(segment_bytes_on_disk(&mem) <= max);
    }
    assert!(refused > 30);
    let s = b.stats();
    assert_eq!((s.dropped_newest, s.overflow_episodes), (refused, 1));
    assert_eq!(seqs(&drain(&b, 1)), ok, "the oldest records are kept");
    b.ack_through(*ok.last().unwrap()).unwrap();
    b.append(0, b"room again").unwrap();
}

#[test]
fn drop_oldest_deletes_old_records_counts_them_and_keeps_the_bound() {
    let mem = MemStorage::new();
    let max = 1024;
    let (b, _) = open(&mem, opts(256, max, FullPolicy::DropOldest));
    b.append(0, &payload(0)).unwrap();
    b.ack(1).unwrap(); // an acknowledged record is not counted as dropped
    for i in 1..200 {
        assert_eq!(b.append(0, &payload(i)).unwrap(), i + 1);
        assert!(segment_bytes_on_disk(&mem) <= max);
    }
    let s = b.stats();
    let got = drain(&b, 1);
    assert_eq!(
        s.dropped_oldest + got.len() as u64,
        199,
        "every record is kept or counted"
    );
    assert!(s.dropped_oldest > 100);
    // what is kept is the newest records, contiguous
    assert_eq!(
        seqs(&got),
        (201 - got.len() as u64..=200).collect::<Vec<_>>()
    );
    assert_eq!(b.first_unacked(), Some(got[0].seq));
    assert!(s.overflow_episodes >= 1);
}

#[test]
fn block_times_out_on_the_blocking_api_and_waits_on_the_async_one() {
    let mem = MemStorage::new();
    let max = 1024;
    let (b, _) = open(&mem, opts(256, max, FullPolicy::Block));
    let mut last = 0;
    loop {
        match b.append(0, &payload(last)) {
            Ok(s) => last = s,
            Err(BufferError::Full {
                policy: "block", ..
            }) => break,
            Err(e) => panic!("{e}"),
        }
        assert!(segment_bytes_on_disk(&mem) <= max);
    }
    let t = Instant::now();
    assert!(matches!(
        b.append(0, &payload(999)),
        Err(BufferError::Full { .. })
    ));
    assert!(
        t.elapsed() >= Duration::from_millis(45),
        "waited block_timeout"
    );
    let s = b.stats();
    assert_eq!(
        (s.block_timeouts, s.dropped_newest, s.dropped_oldest),
        (2, 0, 0)
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let b2 = b.clone();
        let waiting = tokio::spawn(async move { b2.append_async(0, payload(1000)).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiting.is_finished(), "the async append waits for space");
        b.ack_through(last).unwrap();
        let seq = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("woken by the ack")
            .unwrap()
            .unwrap();
        assert_eq!(seq, last + 1);
    });
    assert_eq!(drain(&b, 1).last().unwrap().payload, payload(1000));
    assert!(segment_bytes_on_disk(&mem) <= max);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_batch_waits_for_new_records() {
    let mem = MemStorage::new();
    let (b, _) = open(&mem, opts(4096, 1 << 20, FullPolicy::Block));
    let b2 = b.clone();
    let reader = tokio::spawn(async move { b2.next_batch(1, 10).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!reader.is_finished());
    b.append_async(5, b"hello".to_vec()).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .expect("woken")
        .unwrap()
        .unwrap();
    assert_eq!(
        (got[0].seq, got[0].ts, got[0].payload.as_slice()),
        (1, 5, &b"hello"[..])
    );
}

#[test]
fn disk_full_append_fails_cleanly_and_later_appends_follow_valid_records() {
    let mem = MemStorage::new();
    let o = opts(4096, 1 << 20, FullPolicy::Block);
    let (b, _) = open(&mem, o.clone());
    for i in 0..5 {
        b.append(0, &payload(i)).unwrap();
    }
    mem.set_space(Some(10));
    assert!(matches!(
        b.append(0, &payload(5)),
        Err(BufferError::Io { .. })
    ));
    mem.set_space(None);
    let s = b.append(0, &payload(6)).unwrap();
    b.close().unwrap();
    let (b, report) = open(&mem, o);
    assert!(
        report.truncated.is_none() && report.quarantined.is_empty(),
        "{report:?}"
    );
    let got = drain(&b, 1);
    assert_eq!(seqs(&got), [1, 2, 3, 4, 5, s]);
    assert_eq!(got[5].payload, payload(6));
}

#[test]
fn options_are_checked_at_open() {
    let mem = MemStorage::new();
    let err = Buffer::open(Arc::new(mem), opts(100, 150, FullPolicy::Block))
        .err()
        .expect("invalid");
    let msg = err.to_string();
    assert!(
        msg.contains("buffer.segment_bytes") && msg.contains("buffer.max_bytes"),
        "{msg}"
    );
}

#[test]
fn real_files_round_trip_and_restart() {
    let dir = std::env::temp_dir().join(format!("mw-buffer-fs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let o = Options {
        dir: dir.clone(),
        ..opts(4096, 1 << 20, FullPolicy::Block)
    };
    let (b, _) = Buffer::open(Arc::new(FsStorage), o.clone()).unwrap();
    for i in 0..300 {
        b.append(i as i64, &payload(i)).unwrap();
    }
    b.ack(1).unwrap();
    b.ack(3).unwrap();
    b.ack(2).unwrap();
    b.close().unwrap();
    let (b, report) = Buffer::open(Arc::new(FsStorage), o).unwrap();
    assert_eq!(report.first_unacked, Some(4));
    let mut got = Vec::new();
    let mut next = 4;
    loop {
        let v = b.read_from(next, 50).unwrap();
        let Some(l) = v.last() else { break };
        next = l.seq + 1;
        got.extend(v);
    }
    assert_eq!(got.len(), 297);
    assert_eq!(got[0].payload, payload(3));
    assert!(std::fs::read_dir(&dir).unwrap().count() > 3);
    b.close().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Collects formatted log lines.
#[derive(Clone, Default)]
struct Logs(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn one_warning_per_overflow_episode_not_per_record() {
    let logs = Logs::default();
    let w = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || w.clone())
        .with_ansi(false)
        .finish();
    let mem = MemStorage::new();
    let (b, _) = open(&mem, opts(256, 1024, FullPolicy::DropNewest));
    tracing::subscriber::with_default(subscriber, || {
        let mut refused = 0;
        let mut last = 0;
        for episode in 0..2 {
            for i in 0..60 {
                match b.append(0, &payload(i)) {
                    Ok(s) => last = s,
                    Err(BufferError::Full { .. }) => refused += 1,
                    Err(e) => panic!("{e}"),
                }
            }
            if episode == 0 {
                b.ack_through(last).unwrap(); // empties the buffer: the episode ends
            }
        }
        assert!(refused > 60, "{refused}");
        assert_eq!(b.stats().dropped_newest, refused);
    });
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert_eq!(text.matches("buffer full").count(), 2, "{text}");
    assert_eq!(text.matches("buffer no longer full").count(), 1, "{text}");
    assert_eq!(b.stats().overflow_episodes, 2);
}

#[test]
fn reopened_with_a_smaller_max_bytes_drop_oldest_restores_the_bound() {
    let mem = MemStorage::new();
    let (b, _) = open(&mem, opts(256, 8192, FullPolicy::DropOldest));
    for i in 0..60 {
        b.append(0, &payload(i)).unwrap();
    }
    b.close().unwrap();
    let (b, report) = open(&mem, opts(256, 1024, FullPolicy::DropOldest));
    assert!(report.used_bytes > 1024, "{}", report.used_bytes);
    let seq = b.append(0, &payload(60)).unwrap();
    assert!(segment_bytes_on_disk(&mem) <= 1024);
    let s = b.stats();
    let kept = drain(&b, 1);
    assert_eq!(s.dropped_oldest + kept.len() as u64, 61);
    assert_eq!(kept.last().unwrap().seq, seq);
}

#[test]
fn damage_in_the_open_segment_while_reading_keeps_later_appends_readable() {
    let mem = MemStorage::new();
    let (b, _) = open(&mem, opts(4096, 1 << 20, FullPolicy::Block));
    for i in 0..10 {
        b.append(0, &payload(i)).unwrap();
    }
    let open_seg = seg_files(&mem).pop().unwrap();
    let frame = mw_buffer::format::framed_len(payload(0).len()) as usize;
    mem.corrupt(&open_seg, 6 * frame + 20); // record 7
    assert_eq!(seqs(&drain(&b, 1)), [1, 2, 3, 4, 5, 6]);
    assert_eq!(b.stats().corrupt_records, 4);
    let s = b.append(0, &payload(10)).unwrap();
    let got = drain(&b, 1);
    assert_eq!(seqs(&got), [1, 2, 3, 4, 5, 6, s]);
    assert_eq!(got[6].payload, payload(10));
    b.ack_through(s).unwrap();
    assert_eq!(b.stats().pending_records, 0);
}

/// Regression: a read starting far (> 8 MiB of payload) into a segment, with no cursor there,
/// returned records from before `from` — the skip to the start position stopped at the read
/// byte cap (found by the uplink's backlog drain, which then sent records twice).
#[test]
fn read_from_deep_in_a_segment_starts_at_from() {
    let mem = MemStorage::new();
    let (b, _) = open(&mem, opts(64 << 20, 256 << 20, FullPolicy::Block));
    let big = vec![7u8; 4096];
    let recs: Vec<(i64, &[u8])> = (0..3000).map(|i| (i, &big[..])).collect();
    b.append_batch(&recs).unwrap();
    for from in [2900u64, 2500, 2998, 10] {
        assert_eq!(
            seqs(&b.read_from(from, 3).unwrap()),
            [from, from + 1, from + 2]
        );
    }
}

/// Two sequential readers at different places (the uplink's live flow and its backlog) read
/// correctly when interleaved, each continuing where it stopped.
#[test]
fn two_interleaved_readers_each_continue_where_they_stopped() {
    let mem = MemStorage::new();
    let (b, _) = open(&mem, opts(1 << 20, 8 << 20, FullPolicy::Block));
    for i in 0..2000u64 {
        b.append(i as i64, &payload(i)).unwrap();
    }
    let (mut a, mut z) = (1u64, 1500u64);
    let (mut got_a, mut got_z) = (Vec::new(), Vec::new());
    while a < 1500 || z <= 2000 {
        if a < 1500 {
            let r = b.read_from(a, 7).unwrap();
            let r: Vec<_> = r.into_iter().filter(|r| r.seq < 1500).collect();
            a = r.last().map_or(1500, |r| r.seq + 1);
            got_a.extend(seqs(&r));
        }
        if z <= 2000 {
            let r = b.read_from(z, 11).unwrap();
            z = r.last().map_or(2001, |r| r.seq + 1);
            got_z.extend(seqs(&r));
        }
    }
    assert_eq!(got_a, (1..1500).collect::<Vec<_>>());
    assert_eq!(got_z, (1500..=2000).collect::<Vec<_>>());
}
