//! Crashes: a power cut at every storage operation of an append/ack workload, and random
//! append/ack/restart/crash sequences against a simple model.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::*;
use mw_buffer::{Buffer, BufferError, FullPolicy, Options};
use mw_storage::storage::{MemStorage, Storage};
use proptest::prelude::*;

/// What the workload saw succeed before the crash.
#[derive(Default)]
struct Log {
    /// seq -> index of the payload, for every append that returned Ok.
    appended: BTreeMap<u64, u64>,
    /// Every payload index an append was attempted with.
    attempted: BTreeSet<u64>,
    acked: BTreeSet<u64>,
    /// A prefix known to be in the persisted ledger (every ack persists: `ack_persist` = 0).
    persisted: u64,
}

fn workload(b: &Buffer, log: &mut Log) -> Result<(), BufferError> {
    for i in 0..30u64 {
        log.attempted.insert(i);
        let seq = b.append(i as i64, &payload(i))?;
        log.appended.insert(seq, i);
        let seqs: Vec<u64> = log.appended.keys().copied().collect();
        if i % 3 == 2 {
            // out of order: the one before the newest first
            let s = seqs[seqs.len() - 2];
            log.acked.insert(s);
            b.ack(s)?;
            log.persisted = b.stats().acked;
        }
        if i % 7 == 6 {
            let s = seqs[seqs.len() - 4];
            log.acked.extend(seqs.iter().filter(|x| **x <= s));
            b.ack_through(s)?;
            log.persisted = b.stats().acked;
        }
        if i % 10 == 9 {
            b.flush()?;
        }
    }
    b.close()
}

fn crash_opts() -> Options {
    Options {
        ack_persist: Duration::ZERO,
        ..opts(256, 1 << 20, FullPolicy::Block)
    }
}

fn check_after_crash(mem: &MemStorage, log: &Log, point: u64, torn: usize) {
    let ctx = format!("crash at operation {point}, torn {torn}");
    let (b, report) = Buffer::open(std::sync::Arc::new(mem.clone()), crash_opts())
        .unwrap_or_else(|e| panic!("{ctx}: reopen: {e}"));
    let got = report.first_unacked.map_or_else(Vec::new, |f| drain(&b, f));
    let seqs: Vec<u64> = got.iter().map(|r| r.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "{ctx}: order {seqs:?}"
    );
    for r in &got {
        assert!(
            r.seq > log.persisted,
            "{ctx}: {} delivered again past the ledger ({})",
            r.seq,
            log.persisted
        );
        let i = r.ts as u64;
        assert!(log.attempted.contains(&i), "{ctx}: unknown record {r:?}");
        assert_eq!(r.payload, payload(i), "{ctx}");
        if let Some(&want) = log.appended.get(&r.seq) {
            assert_eq!(want, i, "{ctx}: seq {} holds another record", r.seq);
        }
    }
    for (seq, i) in &log.appended {
        if !log.acked.contains(seq) {
            assert!(
                seqs.contains(seq),
                "{ctx}: acknowledged-durable record {seq} (payload {i}) lost; got {seqs:?}"
            );
        }
    }
    let max = log.appended.keys().max().copied().unwrap_or(0);
    let next = b.append(0, b"after").unwrap();
    assert!(next > max, "{ctx}: {next} reuses a number (max {max})");
    assert!(next > seqs.last().copied().unwrap_or(0));
}

#[test]
fn a_crash_at_every_storage_operation_loses_no_durable_record_and_redelivers_nothing_acked() {
    // how many mutating operations a full run takes
    let total = {
        let mem = MemStorage::new();
        let d = Doomed::new(mem, u64::MAX);
        let (b, _) = open(&d, crash_opts());
        workload(&b, &mut Log::default()).unwrap();
        d.ops()
    };
    assert!(total > 60, "{total}");
    for torn in [0, 5, 100_000] {
        for point in 0..=total {
            let mem = MemStorage::new();
            mem.set_torn(torn);
            let d = Doomed::new(mem.clone(), point);
            let mut log = Log::default();
            if let Ok((b, _)) = Buffer::open(std::sync::Arc::new(d.clone()), crash_opts()) {
                let _ = workload(&b, &mut log);
            }
            if !d.dead() {
                d.kill();
            }
            mem.set_torn(0);
            check_after_crash(&mem, &log, point, torn);
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Append(u8),
    Ack(usize),
    AckThrough(usize),
    Flush,
    Restart,
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1u8..4).prop_map(Op::Append),
        4 => any::<usize>().prop_map(Op::Ack),
        1 => any::<usize>().prop_map(Op::AckThrough),
        1 => Just(Op::Flush),
        1 => Just(Op::Restart),
        1 => Just(Op::Crash),
    ]
}

/// The model: the records a consumer would get, which of them are acknowledged, and the
/// acknowledged prefix (in memory, and known persisted).
struct Model {
    records: Vec<(u64, Vec<u8>)>,
    acked: BTreeSet<u64>,
    prefix: u64,
    persisted: u64,
    max_seq: u64,
    n: u64,
}

impl Model {
    fn advance(&mut self) {
        for (s, _) in &self.records {
            if *s <= self.prefix {
                continue;
            }
            if !self.acked.contains(s) {
                break;
            }
            self.prefix = *s;
        }
    }
    fn pending(&self) -> u64 {
        self.records
            .iter()
            .filter(|(s, _)| *s > self.prefix && !self.acked.contains(s))
            .count() as u64
    }
}

fn reopen(mem: &MemStorage) -> (Doomed, Buffer, mw_buffer::OpenReport) {
    let d = Doomed::new(mem.clone(), u64::MAX);
    let (b, r) = open(&d, opts(256, 1 << 20, FullPolicy::Block));
    (d, b, r)
}

fn delivered(b: &Buffer, r: &mw_buffer::OpenReport) -> Vec<(u64, Vec<u8>)> {
    r.first_unacked
        .map_or_else(Vec::new, |f| drain(b, f))
        .into_iter()
        .map(|r| (r.seq, r.payload))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn random_sequences_match_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        let mem = MemStorage::new();
        let (mut d, mut b, _) = reopen(&mem);
        let mut m = Model { records: vec![], acked: BTreeSet::new(), prefix: 0, persisted: 0, max_seq: 0, n: 0 };
        for op in ops {
            match op {
                Op::Append(k) => {
                    let recs: Vec<(i64, Vec<u8>)> = (0..k).map(|j| (j as i64, payload(m.n + j as u64))).collect();
                    let (first, last) = b.append_batch(&recs).unwrap();
                    prop_assert!(first > m.max_seq, "{} after {}", first, m.max_seq);
                    prop_assert_eq!(last - first + 1, k as u64);
                    for (j, (_, p)) in recs.into_iter().enumerate() {
                        m.records.push((first + j as u64, p));
                    }
                    m.max_seq = last;
                    m.n += k as u64;
                }
                Op::Ack(i) => {
                    let open: Vec<u64> = m.records.iter().map(|(s, _)| *s)
                        .filter(|s| *s > m.prefix && !m.acked.contains(s)).collect();
                    if open.is_empty() { continue; }
                    let s = open[i % open.len()];
                    b.ack(s).unwrap();
                    m.acked.insert(s);
                    m.advance();
                }
                Op::AckThrough(i) => {
                    if m.records.is_empty() { continue; }
                    let s = m.records[i % m.records.len()].0;
                    b.ack_through(s).unwrap();
                    let all: Vec<u64> = m.records.iter().map(|(x, _)| *x).filter(|x| *x <= s).collect();
                    m.acked.extend(all);
                    m.prefix = m.prefix.max(s);
                    m.advance();
                }
                Op::Flush => {
                    b.flush().unwrap();
                    m.persisted = m.prefix;
                }
                Op::Restart => {
                    b.close().unwrap();
                    let (d2, b2, r) = reopen(&mem);
                    let want: Vec<(u64, Vec<u8>)> = m.records.iter().filter(|(s, _)| *s > m.prefix).cloned().collect();
                    prop_assert_eq!(r.acked, m.prefix);
                    prop_assert_eq!(delivered(&b2, &r), want.clone());
                    m.records = want;
                    m.acked.clear();
                    m.persisted = m.prefix;
                    (d, b) = (d2, b2);
                }
                Op::Crash => {
                    d.kill();
                    drop(b);
                    let (d2, b2, r) = reopen(&mem);
                    let got = delivered(&b2, &r);
                    prop_assert!(r.acked >= m.persisted && r.acked <= m.prefix, "{} not in {}..={}", r.acked, m.persisted, m.prefix);
                    let allowed: Vec<&(u64, Vec<u8>)> = m.records.iter().filter(|(s, _)| *s > m.persisted).collect();
                    for g in &got {
                        prop_assert!(allowed.contains(&g), "unexpected {:?}", g.0);
                    }
                    for r in m.records.iter().filter(|(s, _)| *s > m.prefix) {
                        prop_assert!(got.contains(r), "lost {}", r.0);
                    }
                    m.records = got;
                    m.acked.clear();
                    m.prefix = r.acked;
                    m.persisted = r.acked;
                    (d, b) = (d2, b2);
                }
            }
            let s = b.stats();
            prop_assert_eq!(s.acked, m.prefix);
            prop_assert_eq!(s.pending_records, m.pending());
            prop_assert_eq!(s.used_bytes, segment_bytes_on_disk(&mem));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    /// Bit rot, cut files and garbage anywhere: open never panics, delivers only records that
    /// were written (in order), and leaves the files clean for the next open.
    #[test]
    fn open_survives_any_damage(
        n in 1u64..60,
        edits in proptest::collection::vec((any::<usize>(), any::<usize>(), any::<u8>()), 0..6),
        cut in proptest::option::of((any::<usize>(), any::<usize>())),
    ) {
        let mem = MemStorage::new();
        let o = opts(256, 1 << 20, FullPolicy::Block);
        let (b, _) = open(&mem, o.clone());
        for i in 0..n {
            b.append(i as i64, &payload(i)).unwrap();
        }
        b.ack_through(n / 4).unwrap();
        b.close().unwrap();
        let files = mem.list(std::path::Path::new(DIR)).unwrap();
        for (f, at, byte) in edits {
            let p = &files[f % files.len()];
            let len = mem.content(p).unwrap().len();
            if len > 0 {
                let at = at % len;
                let old = mem.content(p).unwrap()[at];
                if old != byte {
                    mem.corrupt(p, at); // xor 0xff
                }
            }
        }
        if let Some((f, at)) = cut {
            let p = &files[f % files.len()];
            let len = mem.content(p).unwrap().len();
            mem.truncate(p, (at % (len + 1)) as u64).unwrap();
        }
        let (b, r) = open(&mem, o.clone());
        let got = r.first_unacked.map_or_else(Vec::new, |f| drain(&b, f));
        prop_assert!(got.windows(2).all(|w| w[0].seq < w[1].seq));
        for rec in &got {
            prop_assert_eq!(&rec.payload, &payload(rec.ts as u64));
            prop_assert_eq!(rec.seq, rec.ts as u64 + 1, "a record under another number");
        }
        b.close().unwrap();
        let (b2, r2) = open(&mem, o);
        prop_assert!(r2.quarantined.is_empty() && r2.truncated.is_none(), "{:?}", r2);
        let again = r2.first_unacked.map_or_else(Vec::new, |f| drain(&b2, f));
        prop_assert_eq!(again.len(), got.len());
    }
}
