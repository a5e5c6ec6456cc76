//! Rollups: per tag, the good numeric samples of every 1-minute and 1-hour bucket summarised as
//! count, min, max, sum, first and last, kept longer than raw points.
//!
//! Compaction computes them for a partition whenever it merges new points into it, from the
//! merged points of every tag (before raw retention drops any), and writes them as segment files
//! under `rollups/1m/` and `rollups/1h/` named like the partition's file (the newest per partition
//! counts). Each tag's buckets are stored as groups of six blocks with the bucket starts as
//! timestamps: count (`u64`), then min, max, sum, first, last (`f64`). No I/O here.

use mw_model::Quality;

use crate::block::{BlockStats, Column, Points};

/// The rollup periods (ns) and their directory names.
pub const PERIODS: [(i64, &str); 2] = [(60_000_000_000, "1m"), (3_600_000_000_000, "1h")];

/// One bucket of one tag.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Row {
    pub start: i64,
    pub count: u64,
    pub min: f64,
    pub max: f64,
    pub sum: f64,
    pub first: f64,
    pub last: f64,
}

impl Row {
    /// The bucket as block stats, for the aggregate fold.
    pub(crate) fn stats(&self) -> BlockStats {
        BlockStats {
            count: self.count.min(u64::from(u32::MAX)) as u32,
            good_count: self.count.min(u64::from(u32::MAX)) as u32,
            t_min: self.start,
            t_max: self.start,
            min: self.min,
            max: self.max,
            sum: self.sum,
            first: self.first,
            last: self.last,
        }
    }
}

/// The buckets of `period` over good numeric samples (time order).
pub fn rows(points: impl Iterator<Item = (i64, f64)>, period: i64) -> Vec<Row> {
    let mut out: Vec<Row> = Vec::new();
    for (ts, v) in points {
        let start = crate::compact::partition_of(ts, period);
        match out.last_mut() {
            Some(r) if r.start == start => {
                r.count += 1;
                r.min = r.min.min(v);
                r.max = r.max.max(v);
                r.sum += v;
                r.last = v;
            }
            _ => out.push(Row {
                start,
                count: 1,
                min: v,
                max: v,
                sum: v,
                first: v,
                last: v,
            }),
        }
    }
    out
}

/// `rows` as groups of six blocks of at most `max` buckets.
pub(crate) fn to_blocks(rows: &[Row], max: usize) -> Vec<Points> {
    let mut out = Vec::new();
    for chunk in rows.chunks(max.max(1)) {
        let ts: Vec<i64> = chunk.iter().map(|r| r.start).collect();
        let good = vec![Quality::Good; chunk.len()];
        let block = |values| Points {
            ts: ts.clone(),
            values,
            quality: good.clone(),
        };
        out.push(block(Column::U64(chunk.iter().map(|r| r.count).collect())));
        for f in [
            |r: &Row| r.min,
            |r: &Row| r.max,
            |r: &Row| r.sum,
            |r: &Row| r.first,
            |r: &Row| r.last,
        ] {
            out.push(block(Column::F64(chunk.iter().map(f).collect())));
        }
    }
    out
}

/// The rows of one group of six blocks (`None` when they do not fit together).
pub(crate) fn from_blocks(group: &[Points]) -> Option<Vec<Row>> {
    let [count, min, max, sum, first, last] = group else {
        return None;
    };
    let Column::U64(count) = &count.values else {
        return None;
    };
    let f = |p: &Points| match &p.values {
        Column::F64(v) if v.len() == count.len() => Some(v.clone()),
        _ => None,
    };
    let (min, max, sum, first, last) = (f(min)?, f(max)?, f(sum)?, f(first)?, f(last)?);
    let ts = &group[0].ts;
    if ts.len() != count.len() {
        return None;
    }
    Some(
        (0..count.len())
            .map(|i| Row {
                start: ts[i],
                count: count[i],
                min: min[i],
                max: max[i],
                sum: sum[i],
                first: first[i],
                last: last[i],
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_summarise_each_bucket_and_survive_their_blocks() {
        let pts = [(0, 2.0), (30, 4.0), (59, 1.0), (60, 5.0), (-1, 9.0)];
        let mut sorted = pts.to_vec();
        sorted.sort_by_key(|p| p.0);
        let r = rows(sorted.into_iter(), 60);
        assert_eq!(r.len(), 3);
        assert_eq!(
            r[1],
            Row {
                start: 0,
                count: 3,
                min: 1.0,
                max: 4.0,
                sum: 7.0,
                first: 2.0,
                last: 1.0
            }
        );
        assert_eq!((r[0].start, r[2].start), (-60, 60));
        let blocks = to_blocks(&r, 2);
        assert_eq!(blocks.len(), 12, "two groups of six");
        let back: Vec<Row> = blocks
            .chunks(6)
            .flat_map(|g| from_blocks(g).unwrap())
            .collect();
        assert_eq!(back, r);
        assert!(from_blocks(&blocks[1..7]).is_none(), "a group out of step");
    }
}
