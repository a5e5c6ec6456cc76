//! A set of sequence numbers kept as disjoint inclusive ranges: the acknowledgements above the
//! acknowledged prefix. Acks out of order mostly come in runs (a batch acknowledged ahead of an
//! earlier one), so a run costs one entry instead of one per record.

use std::collections::BTreeMap;

#[derive(Clone, Debug, Default)]
pub(crate) struct RangeSet {
    /// start → end (inclusive); disjoint and never adjacent.
    r: BTreeMap<u64, u64>,
    len: u64,
}

impl RangeSet {
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Ranges held (what the set costs in memory).
    #[cfg(test)]
    pub(crate) fn ranges(&self) -> usize {
        self.r.len()
    }

    pub(crate) fn contains(&self, x: u64) -> bool {
        self.r.range(..=x).next_back().is_some_and(|(_, e)| x <= *e)
    }

    /// Adds `x`; false if it was there.
    pub(crate) fn insert(&mut self, x: u64) -> bool {
        if self.contains(x) {
            return false;
        }
        let mut start = x;
        let mut end = x;
        if let Some((&s, &e)) = self.r.range(..x).next_back()
            && e.checked_add(1) == Some(x)
        {
            start = s;
        }
        if let Some(n) = x.checked_add(1)
            && let Some(e) = self.r.remove(&n)
        {
            end = e;
        }
        self.r.insert(start, end);
        self.len += 1;
        true
    }

    /// Removes `x`; false if it was not there.
    pub(crate) fn remove(&mut self, x: u64) -> bool {
        let Some((&s, &e)) = self.r.range(..=x).next_back() else {
            return false;
        };
        if x > e {
            return false;
        }
        self.r.remove(&s);
        if s < x {
            self.r.insert(s, x - 1);
        }
        if x < e {
            self.r.insert(x + 1, e);
        }
        self.len -= 1;
        true
    }

    /// Drops every member up to and including `x`.
    pub(crate) fn remove_through(&mut self, x: u64) {
        let Some(n) = x.checked_add(1) else {
            self.r.clear();
            self.len = 0;
            return;
        };
        let mut above = self.r.split_off(&n);
        if let Some((_, &e)) = self.r.iter().next_back()
            && e >= n
        {
            above.insert(n, e);
        }
        self.r = above;
        self.len = self.r.iter().map(|(s, e)| e - s + 1).sum();
    }

    /// Members in `lo..=hi`.
    pub(crate) fn count_in(&self, lo: u64, hi: u64) -> u64 {
        if lo > hi {
            return 0;
        }
        let mut n = 0;
        let first = self.r.range(..lo).next_back().map(|(s, e)| (*s, *e));
        for (s, e) in first
            .into_iter()
            .chain(self.r.range(lo..=hi).map(|(s, e)| (*s, *e)))
        {
            let (a, b) = (s.max(lo), e.min(hi));
            if a <= b {
                n += b - a + 1;
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn runs_are_one_range() {
        let mut s = RangeSet::default();
        for x in (10..20).rev() {
            assert!(s.insert(x));
        }
        assert!(!s.insert(15));
        assert_eq!((s.len(), s.ranges()), (10, 1));
        assert!(s.remove(15));
        assert_eq!((s.len(), s.ranges()), (9, 2));
        assert_eq!(s.count_in(12, 17), 5);
        s.remove_through(16);
        assert_eq!((s.len(), s.contains(17), s.contains(16)), (3, true, false));
        s.insert(u64::MAX);
        s.remove_through(u64::MAX);
        assert_eq!(s.len(), 0);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u64),
        Remove(u64),
        Through(u64),
    }

    proptest! {
        #[test]
        fn behaves_like_a_btreeset(ops in proptest::collection::vec(prop_oneof![
            4 => (0u64..64).prop_map(Op::Insert),
            2 => (0u64..64).prop_map(Op::Remove),
            1 => (0u64..64).prop_map(Op::Through),
        ], 0..100), lo in 0u64..64, hi in 0u64..64) {
            let mut s = RangeSet::default();
            let mut m = BTreeSet::new();
            for op in ops {
                match op {
                    Op::Insert(x) => prop_assert_eq!(s.insert(x), m.insert(x)),
                    Op::Remove(x) => prop_assert_eq!(s.remove(x), m.remove(&x)),
                    Op::Through(x) => {
                        s.remove_through(x);
                        m = m.split_off(&(x + 1));
                    }
                }
                prop_assert_eq!(s.len(), m.len() as u64);
                for x in 0..66 {
                    prop_assert_eq!(s.contains(x), m.contains(&x));
                }
            }
            let want = if lo <= hi { m.range(lo..=hi).count() as u64 } else { 0 };
            prop_assert_eq!(s.count_in(lo, hi), want);
            // never two adjacent ranges
            let v: Vec<(u64, u64)> = s.r.iter().map(|(a, b)| (*a, *b)).collect();
            prop_assert!(v.windows(2).all(|w| w[0].1 + 1 < w[1].0));
        }
    }
}
