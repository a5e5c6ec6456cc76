//! The write-ahead log under the failures real disks produce, through the fault-injecting
//! in-memory storage, plus a round trip on the real file system.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mw_storage::storage::{FsStorage, MemStorage, Storage};
use mw_storage::wal::{self, SyncPolicy, Wal, WalOptions, WalWriter};
use proptest::prelude::*;

fn opts(sync: SyncPolicy) -> WalOptions {
    WalOptions {
        sync,
        ..WalOptions::new("/data/wal")
    }
}

fn rec(i: u32) -> Vec<u8> {
    format!("record {i:05} ").repeat(3).into_bytes()
}

fn open(storage: &MemStorage, o: WalOptions) -> (Wal, wal::Replay) {
    Wal::open(Arc::new(storage.clone()) as Arc<dyn Storage>, o).expect("open")
}

/// Writes `n` records through a writer; returns how many were acknowledged.
async fn write_all(w: &WalWriter, range: std::ops::Range<u32>) -> usize {
    let mut ok = 0;
    for i in range {
        if w.write(rec(i)).await.is_ok() {
            ok += 1;
        }
    }
    ok
}

#[tokio::test]
async fn acknowledged_records_survive_a_crash_in_order() {
    let disk = MemStorage::new();
    let (wal, replay) = open(&disk, opts(SyncPolicy::Always));
    assert!(replay.records.is_empty() && replay.truncated.is_none());
    let (w, thread) = WalWriter::start(wal).unwrap();
    assert_eq!(write_all(&w, 0..100).await, 100);
    disk.crash(); // power cut right after the last acknowledgement
    drop(w);
    thread.join().unwrap();
    let (_, replay) = open(&disk, opts(SyncPolicy::Always));
    let expected: Vec<Vec<u8>> = (0..100).map(rec).collect();
    assert_eq!(replay.records, expected);
    assert_eq!(replay.truncated, None);
}

#[tokio::test]
async fn concurrent_writes_share_one_fsync_per_group() {
    let disk = MemStorage::new();
    let (wal, _) = open(&disk, opts(SyncPolicy::Always));
    let (w, thread) = WalWriter::start(wal).unwrap();
    let mut tasks = Vec::new();
    for t in 0..8u32 {
        let w = w.clone();
        tasks.push(tokio::spawn(async move {
            write_all(&w, t * 100..t * 100 + 100).await
        }));
    }
    let mut acked = 0;
    for t in tasks {
        acked += t.await.unwrap();
    }
    assert_eq!(acked, 800);
    let syncs = disk.syncs();
    assert!(syncs < 800, "group commit: {syncs} fsyncs for 800 writes");
    drop(w);
    thread.join().unwrap();
    let (_, replay) = open(&disk, opts(SyncPolicy::Always));
    assert_eq!(replay.records.len(), 800);
}

#[tokio::test]
async fn a_torn_tail_is_cut_and_reported_and_the_log_goes_on() {
    let disk = MemStorage::new();
    // ten records synced, then ten under the interval policy: written, not yet synced, when
    // the power goes
    let (wal, _) = open(&disk, opts(SyncPolicy::Always));
    let (w, thread) = WalWriter::start(wal).unwrap();
    assert_eq!(write_all(&w, 0..10).await, 10);
    drop(w);
    thread.join().unwrap();
    let (wal, _) = open(&disk, opts(SyncPolicy::Interval(Duration::from_secs(3600))));
    let (w, thread) = WalWriter::start(wal).unwrap();
    assert_eq!(write_all(&w, 10..20).await, 10, "acknowledged once written");
    disk.set_torn(13); // the crash leaves 13 bytes of the unsynced records
    disk.crash();
    drop(w);
    thread.join().unwrap();
    disk.set_torn(0);
    let (wal, replay) = open(&disk, opts(SyncPolicy::Always));
    assert_eq!(replay.records, (0..10).map(rec).collect::<Vec<_>>());
    let t = replay.truncated.expect("the torn tail is reported");
    assert_eq!(t.dropped_bytes, 13);
    assert_eq!(t.reason, "short record");
    // appending after the cut works, and the next start reads everything cleanly
    let (w, thread) = WalWriter::start(wal).unwrap();
    assert_eq!(write_all(&w, 20..25).await, 5);
    drop(w);
    thread.join().unwrap();
    let (_, replay) = open(&disk, opts(SyncPolicy::Always));
    let want: Vec<Vec<u8>> = (0..10).chain(20..25).map(rec).collect();
    assert_eq!(replay.records, want);
    assert_eq!(replay.truncated, None);
}

#[tokio::test]
async fn interval_policy_syncs_on_its_own_when_writes_stop() {
    let disk = MemStorage::new();
    let (wal, _) = open(&disk, opts(SyncPolicy::Interval(Duration::from_millis(50))));
    let (w, thread) = WalWriter::start(wal).unwrap();
    assert_eq!(write_all(&w, 0..3).await, 3);
    tokio::time::sleep(Duration::from_millis(300)).await;
    disk.crash();
    drop(w);
    thread.join().unwrap();
    let (_, replay) = open(&disk, opts(SyncPolicy::Always));
    assert_eq!(
        replay.records.len(),
        3,
        "synced by the timer, not by a later write"
    );
}

#[tokio::test]
async fn a_full_disk_refuses_the_write_and_keeps_everything_acknowledged() {
    let disk = MemStorage::new();
    let (wal, _) = open(&disk, opts(SyncPolicy::Always));
    let (w, thread) = WalWriter::start(wal).unwrap();
    assert_eq!(write_all(&w, 0..5).await, 5);
    disk.set_space(Some(20)); // less than one record
    let err = w.write(rec(5)).await.unwrap_err();
    // the kind survives the WAL thread: callers make room by it, not by the message's words
    assert!(
        matches!(err, wal::WalError::DiskFull(_)) && err.is_disk_full(),
        "{err:?}"
    );
    assert!(err.to_string().contains("the disk is full"), "{err}");
    disk.set_space(None);
    assert_eq!(
        write_all(&w, 6..8).await,
        2,
        "writes work again once there is space"
    );
    drop(w);
    thread.join().unwrap();
    let (_, replay) = open(&disk, opts(SyncPolicy::Always));
    let want: Vec<Vec<u8>> = [0, 1, 2, 3, 4, 6, 7].into_iter().map(rec).collect();
    assert_eq!(
        replay.records, want,
        "the refused record left no garbage behind"
    );
    assert_eq!(replay.truncated, None);
}

#[tokio::test]
async fn corruption_inside_the_log_is_reported_and_later_segments_still_read() {
    let disk = MemStorage::new();
    let small = WalOptions {
        segment_bytes: 200,
        ..opts(SyncPolicy::Always)
    };
    let (wal, _) = open(&disk, small.clone());
    let (w, thread) = WalWriter::start(wal).unwrap();
    assert_eq!(write_all(&w, 0..20).await, 20);
    drop(w);
    thread.join().unwrap();
    let segs = disk.list(&PathBuf::from("/data/wal")).unwrap();
    assert!(segs.len() >= 3, "{segs:?}");
    disk.corrupt(&segs[0], 10); // inside the first record's payload
    let (_, replay) = open(&disk, small);
    assert_eq!(replay.corrupt.len(), 1);
    let c = &replay.corrupt[0];
    assert_eq!(
        (c.segment.clone(), c.at, c.reason),
        (segs[0].clone(), 0, "checksum mismatch")
    );
    let first_seg = wal::decode(&disk.content(&segs[0]).unwrap()).0.len();
    assert_eq!(first_seg, 0);
    assert!(
        replay.records.len() >= 20 - 4,
        "only the damaged segment's records are lost"
    );
    assert_eq!(replay.records.last(), Some(&rec(19)));
}

#[tokio::test]
async fn round_trip_on_the_file_system() {
    let dir = std::env::temp_dir().join(format!("mw-wal-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let o = WalOptions::new(dir.join("wal"));
    let fs: Arc<dyn Storage> = Arc::new(FsStorage);
    let (wal, _) = Wal::open(fs.clone(), o.clone()).unwrap();
    let (w, thread) = WalWriter::start(wal).unwrap();
    assert_eq!(write_all(&w, 0..50).await, 50);
    drop(w);
    thread.join().unwrap();
    // a torn tail on disk, as a crash mid-write leaves it
    let seg = fs.list(&o.dir).unwrap().pop().unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes.extend_from_slice(&[42, 0, 0, 0, 1, 2]);
    std::fs::write(&seg, &bytes).unwrap();
    let (_, replay) = Wal::open(fs, o).unwrap();
    assert_eq!(replay.records, (0..50).map(rec).collect::<Vec<_>>());
    assert_eq!(replay.truncated.map(|t| t.dropped_bytes), Some(6));
    let _ = std::fs::remove_dir_all(&dir);
}

proptest! {
    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let (records, damage) = wal::decode(&bytes);
        let used: usize = records.iter().map(|r| r.len() + 8).sum();
        match damage {
            Some(d) => prop_assert_eq!(d.at as usize, used),
            None => prop_assert_eq!(used, bytes.len()),
        }
    }

    #[test]
    fn encode_then_decode_round_trips(records in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..16)) {
        let mut buf = Vec::new();
        for r in &records {
            wal::encode(r, &mut buf);
        }
        let (got, damage) = wal::decode(&buf);
        prop_assert!(damage.is_none());
        prop_assert_eq!(got, records.iter().map(Vec::as_slice).collect::<Vec<_>>());
    }
}

#[tokio::test]
async fn rotate_then_remove_drops_exactly_the_records_stored_elsewhere() {
    let disk = MemStorage::new();
    let (wal, _) = open(&disk, opts(SyncPolicy::Always));
    let first = wal.current_seq();
    let (w, thread) = WalWriter::start(wal).unwrap();
    assert_eq!(write_all(&w, 0..10).await, 10);
    let next = w.rotate().await.unwrap();
    assert_eq!(next, first + 1);
    assert_eq!(write_all(&w, 10..15).await, 5);
    drop(w);
    thread.join().unwrap();
    let dir = PathBuf::from("/data/wal");
    assert_eq!(wal::remove_segments_before(&disk, &dir, next).unwrap(), 1);
    disk.crash();
    let (_, replay) = open(&disk, opts(SyncPolicy::Always));
    let want: Vec<Vec<u8>> = (10..15).map(rec).collect();
    assert_eq!(replay.records, want);
    assert_eq!(replay.segments, 1);
}

#[test]
fn ranged_reads_agree_between_the_file_system_and_memory() {
    let dir = std::env::temp_dir().join(format!("mw-range-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mem = MemStorage::new();
    let stores: [&dyn Storage; 2] = [&FsStorage, &mem];
    for s in stores {
        s.create_dir_all(&dir).unwrap();
        let p = dir.join("f");
        let mut f = s.open_append(&p).unwrap();
        f.append(b"0123456789").unwrap();
        f.sync().unwrap();
        assert_eq!(s.file_len(&p).unwrap(), 10);
        assert_eq!(s.read_range(&p, 3, 4).unwrap(), b"3456");
        assert_eq!(s.read_range(&p, 10, 0).unwrap(), b"");
        assert!(s.read_range(&p, 8, 3).is_err(), "past the end is an error");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
