//! Aggregation over time buckets: the pure part of [`crate::engine::Historian::aggregate`].
//!
//! The engine hands over what it read of one tag, in time order: single good points and whole
//! blocks it did not need to decode ([`Item::Block`], whose good points all lie in one bucket
//! and interleave with no other point). This module folds them into [`Bucket`]s. It does no I/O.
//!
//! # Definitions
//! The range is half-open, `[from, to)`; bucket `k` is `[from + k·step, from + (k+1)·step)`, cut
//! at `to`. Only **good numeric samples** count: quality [`mw_model::Quality::Good`], a bool
//! (0/1), integer or float value, finite (NaN and ±∞ are left out). A bucket without one is not
//! returned; `count` is the number of good numeric samples in the bucket.
//!
//! - `min`, `max`, `sum`, `count`, `avg` (= sum / count), `first`, `last` (the value of the
//!   earliest / latest sample by timestamp) over the bucket's samples.
//! - `twa`, the time-weighted average with sample and hold: each good sample's value holds from
//!   its timestamp until the next good sample (bad, uncertain and non-finite samples neither
//!   count nor end a hold). Over bucket `[b, e)` (with `e` cut at `to`) the held value is
//!   integrated and divided by the time covered: from `b` when some good sample precedes the
//!   bucket (its value holds until the bucket's first sample), else from the bucket's first
//!   sample; always to `e`. So `twa = Σ vᵢ·(tᵢ₊₁ − tᵢ) / (e − start)` with `t₀ = b` holding the
//!   previous value, the last interval ending at `e`.

use crate::block::BlockStats;

/// An aggregate function (see the module docs for the definitions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Agg {
    Min,
    Max,
    Avg,
    Sum,
    Count,
    First,
    Last,
    /// Time-weighted average, sample and hold.
    Twa,
}

impl Agg {
    pub const ALL: [Agg; 8] = [
        Agg::Min,
        Agg::Max,
        Agg::Avg,
        Agg::Sum,
        Agg::Count,
        Agg::First,
        Agg::Last,
        Agg::Twa,
    ];

    /// The lowercase name (`"twa"`), as the query API spells it.
    pub fn name(self) -> &'static str {
        match self {
            Agg::Min => "min",
            Agg::Max => "max",
            Agg::Avg => "avg",
            Agg::Sum => "sum",
            Agg::Count => "count",
            Agg::First => "first",
            Agg::Last => "last",
            Agg::Twa => "twa",
        }
    }

    /// The function named `s` (`"avg"`, …), or `None`.
    pub fn parse(s: &str) -> Option<Agg> {
        Agg::ALL.into_iter().find(|a| a.name() == s)
    }
}

/// One time bucket of an aggregate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bucket {
    /// Start of the bucket (ns), `from + k·step`.
    pub start: i64,
    pub value: f64,
    /// Good numeric samples in the bucket.
    pub count: u64,
}

/// What the engine read, in time order.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Item {
    /// A good numeric sample.
    Point(i64, f64),
    /// A block's good samples, all in one bucket, no other item between its `t_min` and `t_max`.
    Block(BlockStats),
}

impl Item {
    pub(crate) fn ts(&self) -> i64 {
        match self {
            Item::Point(t, _) => *t,
            Item::Block(s) => s.t_min,
        }
    }
}

/// The bucket index of `ts`, `None` outside `[from, to)`.
pub(crate) fn bucket_of(ts: i64, from: i64, to: i64, step: i64) -> Option<i128> {
    if ts < from || ts >= to || step <= 0 {
        return None;
    }
    Some((i128::from(ts) - i128::from(from)) / i128::from(step))
}

fn bucket_start(k: i128, from: i64, step: i64) -> i64 {
    // within [from, to) by construction, so it fits
    (i128::from(from) + k * i128::from(step)) as i64
}

#[derive(Clone, Copy)]
struct Acc {
    count: u64,
    min: f64,
    max: f64,
    sum: f64,
    first: f64,
    last: f64,
}

impl Acc {
    fn new() -> Acc {
        Acc {
            count: 0,
            min: f64::NAN,
            max: f64::NAN,
            sum: 0.0,
            first: f64::NAN,
            last: f64::NAN,
        }
    }

    fn add(&mut self, n: u64, min: f64, max: f64, sum: f64, first: f64, last: f64) {
        if n == 0 {
            return;
        }
        if self.count == 0 {
            (self.min, self.max, self.first) = (min, max, first);
        } else {
            self.min = self.min.min(min);
            self.max = self.max.max(max);
        }
        self.sum += sum;
        self.last = last;
        self.count += n;
    }

    fn value(&self, agg: Agg) -> f64 {
        match agg {
            Agg::Min => self.min,
            Agg::Max => self.max,
            Agg::Sum => self.sum,
            Agg::Avg => self.sum / self.count as f64,
            Agg::Count => self.count as f64,
            Agg::First => self.first,
            Agg::Last => self.last,
            Agg::Twa => f64::NAN, // computed by `twa`
        }
    }
}

/// Folds `items` (sorted by time) into buckets for every `agg` but [`Agg::Twa`].
pub(crate) fn fold(items: &[Item], from: i64, to: i64, step: i64, agg: Agg) -> Vec<Bucket> {
    let mut accs: Vec<(i128, Acc)> = Vec::new();
    for it in items {
        let Some(k) = bucket_of(it.ts(), from, to, step) else {
            continue;
        };
        if accs.last().is_none_or(|(last, _)| *last != k) {
            accs.push((k, Acc::new()));
        }
        let Some((_, acc)) = accs.last_mut() else {
            continue;
        };
        match *it {
            Item::Point(_, v) => acc.add(1, v, v, v, v, v),
            Item::Block(s) => acc.add(
                u64::from(s.good_count),
                s.min,
                s.max,
                s.sum,
                s.first,
                s.last,
            ),
        }
    }
    accs.into_iter()
        .filter(|(_, acc)| acc.count > 0)
        .map(|(k, acc)| Bucket {
            start: bucket_start(k, from, step),
            value: acc.value(agg),
            count: acc.count,
        })
        .collect()
}

/// Time-weighted averages over `points` (good numeric samples sorted by time, all in
/// `[from, to)`), `prior` the last good sample before `from` if any.
pub(crate) fn twa(
    points: &[(i64, f64)],
    prior: Option<(i64, f64)>,
    from: i64,
    to: i64,
    step: i64,
) -> Vec<Bucket> {
    let mut out = Vec::new();
    let mut held = prior.map(|p| p.1);
    let mut i = 0;
    while i < points.len() {
        let Some(k) = bucket_of(points[i].0, from, to, step) else {
            i += 1;
            continue;
        };
        let b = i128::from(bucket_start(k, from, step));
        let e = (b + i128::from(step)).min(i128::from(to));
        let mut j = i;
        while j < points.len() && bucket_of(points[j].0, from, to, step) == Some(k) {
            j += 1;
        }
        let mut area = 0.0;
        let start = match held {
            Some(v) => {
                area += v * (i128::from(points[i].0) - b) as f64;
                b
            }
            None => i128::from(points[i].0),
        };
        for n in i..j {
            let until = if n + 1 < j {
                i128::from(points[n + 1].0)
            } else {
                e
            };
            area += points[n].1 * (until - i128::from(points[n].0)) as f64;
        }
        out.push(Bucket {
            start: b as i64,
            value: area / (e - start) as f64,
            count: (j - i) as u64,
        });
        held = Some(points[j - 1].1);
        i = j;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(n: u32, t: (i64, i64), min: f64, max: f64, sum: f64, fl: (f64, f64)) -> BlockStats {
        BlockStats {
            count: n + 1, // one bad point besides
            good_count: n,
            t_min: t.0,
            t_max: t.1,
            min,
            max,
            sum,
            first: fl.0,
            last: fl.1,
        }
    }

    #[test]
    fn buckets_are_half_open_and_blocks_fold_like_their_points() {
        // bucket 0: [0,10): points 1 -> 4, block at 3..=6 (values 2, 8), point 9 -> 1
        // bucket 1: [10,20): point 10 -> 5; bucket 2: none; bucket 3 [30,35): point 34 -> 7
        let items = [
            Item::Point(1, 4.0),
            Item::Block(stats(2, (3, 6), 2.0, 8.0, 10.0, (2.0, 8.0))),
            Item::Point(9, 1.0),
            Item::Point(10, 5.0),
            Item::Point(34, 7.0),
            Item::Point(35, 100.0), // at `to`: outside
        ];
        let got = |agg| -> Vec<(i64, f64, u64)> {
            fold(&items, 0, 35, 10, agg)
                .into_iter()
                .map(|b| (b.start, b.value, b.count))
                .collect()
        };
        assert_eq!(got(Agg::Min), vec![(0, 1.0, 4), (10, 5.0, 1), (30, 7.0, 1)]);
        assert_eq!(got(Agg::Max)[0], (0, 8.0, 4));
        assert_eq!(got(Agg::Sum)[0], (0, 15.0, 4));
        assert_eq!(got(Agg::Avg)[0], (0, 3.75, 4));
        assert_eq!(got(Agg::Count)[0], (0, 4.0, 4));
        assert_eq!(got(Agg::First)[0], (0, 4.0, 4));
        assert_eq!(got(Agg::Last)[0], (0, 1.0, 4));
        // a block with no good point makes no bucket
        let empty = [Item::Block(stats(
            0,
            (3, 6),
            f64::NAN,
            f64::NAN,
            0.0,
            (f64::NAN, f64::NAN),
        ))];
        assert!(fold(&empty, 0, 35, 10, Agg::Avg).is_empty());
    }

    #[test]
    fn twa_holds_values_into_the_next_bucket_and_cuts_the_last_at_to() {
        // held 2 from before `from`; bucket [0,10): 2 for 0..4, 6 for 4..10 -> (8 + 36) / 10
        // bucket [10,20): nothing -> absent; bucket [20,25) cut at to=25: 6 for 20..22, 1 for 22..25
        let pts = [(4, 6.0), (22, 1.0)];
        let b = twa(&pts, Some((-3, 2.0)), 0, 25, 10);
        assert_eq!(
            b,
            vec![
                Bucket {
                    start: 0,
                    value: 4.4,
                    count: 1
                },
                Bucket {
                    start: 20,
                    value: (6.0 * 2.0 + 3.0) / 5.0,
                    count: 1
                },
            ]
        );
        // no prior: the first bucket starts at its first sample (6 for 4..10)
        assert_eq!(twa(&pts, None, 0, 25, 10)[0].value, 6.0);
    }

    #[test]
    fn names_round_trip() {
        for a in Agg::ALL {
            assert_eq!(Agg::parse(a.name()), Some(a));
        }
        assert_eq!(Agg::parse("mean"), None);
    }
}
