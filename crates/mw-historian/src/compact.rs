//! Compaction: flushed segment files merged into one file per time partition.
//!
//! A flush writes the head as one file (`S-0.seg`, any times: "flushed"). Compaction takes the
//! **oldest flushed files in order** (by (S, G)) as long as every partition they touch is due —
//! it has ended by the clock, or there are more than `compact_files` flushed files and every
//! partition is due — and for every partition those files touch writes one new file holding the
//! partition's points from those files and from the partition's earlier compacted files, the
//! later write winning per tag and timestamp (overridden points are gone). The new file is named
//! `(S, G)` with `S` the highest input's and `G` one above every input's of that `S`, so it sorts
//! after all its inputs and before every flushed file left out (they are all newer: only a prefix
//! is taken). Only after every new file is written and synced are the inputs removed.
//!
//! A crash at any step leaves every point readable exactly once: before a new file has its
//! footer it is removed at open; after, it and its inputs hold the same points and the new file
//! wins, so a query merges them into one answer, and the next compaction takes the leftovers in
//! again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use mw_model::{Quality, TagPath, Value};

use crate::engine::{to_blocks, value_at};
use crate::segment::{Segment, SegmentError, Writer};
use crate::storage::Storage;

/// The start of the partition of length `len` that holds `ts` (partitions are aligned to 0).
pub fn partition_of(ts: i64, len: i64) -> i64 {
    ts.div_euclid(len.max(1)).saturating_mul(len.max(1))
}

/// The partitions (their starts) the blocks of `seg` span; a compacted file's own.
pub(crate) fn partitions_touched(seg: &Segment, len: i64) -> BTreeSet<i64> {
    if let Some(p) = seg.partition {
        return BTreeSet::from([p]);
    }
    let mut out = BTreeSet::new();
    for r in seg.series.values().flatten() {
        let mut p = partition_of(r.stats.t_min, len);
        loop {
            out.insert(p);
            match p.checked_add(len) {
                Some(n) if n <= r.stats.t_max => p = n,
                _ => break,
            }
        }
    }
    out
}

/// One partition's merge.
pub(crate) struct Job {
    pub partition: i64,
    /// In precedence order (later wins).
    pub inputs: Vec<Arc<Segment>>,
    /// `(seq, generation)` of the new file.
    pub out: (u64, u32),
}

/// What one compaction does: its merges, then removes `consumed`.
#[derive(Default)]
pub(crate) struct Plan {
    pub jobs: Vec<Job>,
    pub consumed: Vec<Arc<Segment>>,
}

/// Plans a compaction of `segments` (in precedence order) at time `now`; `expired(tag, p)` says
/// whether partition `p` of `tag` is past its retention (a compacted file holding such a tag is
/// rewritten without it).
pub(crate) fn plan(
    segments: &[Arc<Segment>],
    len: i64,
    now: i64,
    compact_open: bool,
    expired: &dyn Fn(&TagPath, i64) -> bool,
) -> Plan {
    let closed = |p: i64| compact_open || p.saturating_add(len) <= now;
    let mut partitions: BTreeSet<i64> = BTreeSet::new();
    let mut flushed: Vec<(Arc<Segment>, BTreeSet<i64>)> = Vec::new();
    for s in segments.iter().filter(|s| s.partition.is_none()) {
        let touched = partitions_touched(s, len);
        if !touched.iter().all(|&p| closed(p)) {
            break; // only a prefix: every file left out must be newer than every output
        }
        partitions.extend(touched.iter().copied());
        flushed.push((s.clone(), touched));
    }
    // a closed partition with two compacted files (a crash between writing and removing)
    let mut per: BTreeMap<i64, Vec<Arc<Segment>>> = BTreeMap::new();
    for s in segments {
        if let Some(p) = s.partition {
            per.entry(p).or_default().push(s.clone());
        }
    }
    for (&p, files) in &per {
        let stale = files.iter().any(|f| f.series.keys().any(|t| expired(t, p)));
        if (files.len() > 1 || stale) && closed(p) {
            partitions.insert(p);
        }
    }
    let mut out = Plan::default();
    for p in partitions {
        let mut inputs: Vec<Arc<Segment>> = per.get(&p).cloned().unwrap_or_default();
        inputs.extend(
            flushed
                .iter()
                .filter(|(_, t)| t.contains(&p))
                .map(|(s, _)| s.clone()),
        );
        inputs.sort_by_key(|s| (s.seq, s.generation));
        let Some(seq) = inputs.last().map(|s| s.seq) else {
            continue;
        };
        let generation = inputs
            .iter()
            .filter(|s| s.seq == seq)
            .map(|s| s.generation)
            .max()
            .unwrap_or(0)
            + 1;
        out.jobs.push(Job {
            partition: p,
            inputs,
            out: (seq, generation),
        });
    }
    let mut seen = BTreeSet::new();
    for s in out
        .jobs
        .iter()
        .flat_map(|j| j.inputs.iter())
        .chain(flushed.iter().map(|(s, _)| s))
    {
        if seen.insert(s.path.clone()) {
            out.consumed.push(s.clone());
        }
    }
    out
}

/// What one merge wrote.
pub(crate) struct Output {
    /// The partition's new file; `None` when no raw point is left.
    pub segment: Option<Segment>,
    /// Rollup files by their index in [`crate::rollup::PERIODS`].
    pub rollups: Vec<(usize, Segment)>,
}

/// Runs one merge: the points of `job.partition` from its inputs, the later write winning,
/// of the tags `keep` accepts, into a new file in `dir`; and the rollups of every tag into a
/// file in each of `rollups` (index in [`crate::rollup::PERIODS`], directory), finished before
/// the partition's file. A block that fails its checksum is skipped and logged (queries skip it
/// too). On error every file it started is removed.
pub(crate) fn run(
    storage: &dyn Storage,
    dir: &Path,
    rollups: &[(usize, &Path)],
    job: &Job,
    len: i64,
    block_points: usize,
    keep: &dyn Fn(&TagPath) -> bool,
) -> Result<Output, SegmentError> {
    let (lo, hi) = (job.partition, job.partition.saturating_add(len));
    let within = |t: i64| t >= lo && (t < hi || hi == i64::MAX);
    let tags: BTreeSet<&TagPath> = job
        .inputs
        .iter()
        .flat_map(|s| s.series.iter())
        .filter(|(t, refs)| {
            (keep(t) || !rollups.is_empty())
                && refs
                    .iter()
                    .any(|r| r.stats.t_max >= lo && r.stats.t_min < hi)
        })
        .map(|(t, _)| t)
        .collect();
    let id = (job.out.0, job.out.1, Some(job.partition));
    let mut started = Vec::new();
    let result = (|| {
        let mut w = Writer::create(storage, dir, id)?;
        started.push(w.path().to_path_buf());
        let mut rw = Vec::new();
        for &(i, d) in rollups {
            let r = Writer::create(storage, d, id)?;
            started.push(r.path().to_path_buf());
            rw.push((i, r));
        }
        for tag in tags {
            let mut merged: BTreeMap<i64, (Value, Quality)> = BTreeMap::new();
            for seg in &job.inputs {
                for r in seg.series.get(tag).into_iter().flatten() {
                    if r.stats.t_max < lo || r.stats.t_min >= hi {
                        continue;
                    }
                    let p = match seg.read_block(storage, tag, r) {
                        Ok(p) => p,
                        Err(e) => {
                            metrics::counter!("mw_historian_corrupt_blocks_total").increment(1);
                            tracing::error!(error = %e, "compaction skips a damaged block");
                            continue;
                        }
                    };
                    for (i, &ts) in p.ts.iter().enumerate() {
                        if !within(ts) {
                            continue;
                        }
                        if let (Some(v), Some(q)) = (value_at(&p.values, i), p.quality.get(i)) {
                            merged.insert(ts, (v, q.clone()));
                        }
                    }
                }
            }
            for (i, r) in &mut rw {
                let good = merged
                    .iter()
                    .filter_map(|(&t, (v, q))| crate::engine::good_number(v, q).map(|x| (t, x)));
                let rows = crate::rollup::rows(good, crate::rollup::PERIODS[*i].0);
                for b in crate::rollup::to_blocks(&rows, block_points) {
                    r.add(tag, &b)?;
                }
            }
            if keep(tag) {
                let it = merged.iter().map(|(&t, (v, q))| (t, v, q));
                for b in to_blocks(it, block_points) {
                    w.add(tag, &b)?;
                }
            }
        }
        let mut out = Output {
            segment: None,
            rollups: Vec::new(),
        };
        for (i, r) in rw {
            if r.points() == 0 {
                let _ = storage.remove(r.path());
            } else {
                out.rollups.push((i, r.finish()?));
            }
        }
        if w.points() == 0 {
            let _ = storage.remove(w.path());
        } else {
            out.segment = Some(w.finish()?);
        }
        Ok(out)
    })();
    if result.is_err() {
        for p in &started {
            let _ = storage.remove(p); // cut short by an error
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_aligned_to_zero_also_before_it() {
        assert_eq!(partition_of(0, 10), 0);
        assert_eq!(partition_of(9, 10), 0);
        assert_eq!(partition_of(10, 10), 10);
        assert_eq!(partition_of(-1, 10), -10);
        assert_eq!(partition_of(i64::MIN, 10), i64::MIN);
        let day = 86_400_000_000_000;
        assert_eq!(partition_of(i64::MAX, day), i64::MAX / day * day);
    }
}
