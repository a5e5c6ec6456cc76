//! How long data is kept: raw points per tag class, rollups.
//!
//! A tag's raw retention is that of the first class whose pattern matches its path, else the
//! default. Retention is per partition: a partition `[P, P + len)` of a tag has expired once
//! `P + len <= now − retention`. Expired points are not returned by any query from that moment on,
//! and compaction removes them (rewriting or deleting the partition's file).

use mw_model::{TagPath, TagPattern};

/// Retention of raw points per tag class and of the rollups (all in ns).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Raw points of tags no class matches.
    pub raw: i64,
    /// Tried in order; the first match gives the tag's raw retention.
    pub classes: Vec<(TagPattern, i64)>,
    pub rollup_1m: i64,
    pub rollup_1h: i64,
}

/// Nanoseconds in a day.
const DAY: i64 = 86_400_000_000_000;

impl Default for Retention {
    fn default() -> Retention {
        Retention {
            raw: 30 * DAY,
            classes: Vec::new(),
            rollup_1m: 180 * DAY,
            rollup_1h: 5 * 365 * DAY,
        }
    }
}

impl Retention {
    /// How long raw points of `tag` are kept.
    pub fn raw_for(&self, tag: &TagPath) -> i64 {
        self.classes
            .iter()
            .find(|(g, _)| g.matches(tag))
            .map_or(self.raw, |c| c.1)
    }

    /// Whether partition `[p, p + len)` has expired at `now` for a retention of `keep`.
    pub fn expired(p: i64, len: i64, now: i64, keep: i64) -> bool {
        p.saturating_add(len) <= now.saturating_sub(keep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_matching_class_wins_and_partitions_expire_whole() {
        let r = Retention {
            classes: vec![
                (TagPattern::new("a/fast/**").unwrap(), 7 * DAY),
                (TagPattern::new("a/**").unwrap(), 90 * DAY),
            ],
            ..Retention::default()
        };
        assert_eq!(r.raw_for(&TagPath::new("a/fast/x").unwrap()), 7 * DAY);
        assert_eq!(r.raw_for(&TagPath::new("a/slow").unwrap()), 90 * DAY);
        assert_eq!(r.raw_for(&TagPath::new("b/x").unwrap()), 30 * DAY);
        // partition [0, 10) expires once now - keep reaches 10
        assert!(!Retention::expired(0, 10, 14, 5));
        assert!(Retention::expired(0, 10, 15, 5));
        assert!(!Retention::expired(i64::MIN, 10, 0, i64::MAX));
    }
}
