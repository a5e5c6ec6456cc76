//! How long data is kept: raw points per tag class, rollups.
//!
//! A tag's raw retention is that of the first class whose pattern matches its path, else the
//! default. Retention is per partition: a partition `[P, P + len)` of a tag has expired once
//! `P + len <= now − retention`. Expired points are not returned by any query from that moment on,
//! and compaction removes them (rewriting or deleting the partition's file).

use mw_model::TagPath;

/// A tag-path pattern: segments separated by `/`; in a segment `*` matches any characters and `?`
/// one; a whole segment `**` matches any number of segments (also none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glob {
    pattern: String,
    segments: Vec<String>,
}

/// Why a pattern is not a [`Glob`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid tag pattern {pattern:?}: {why}")]
pub struct GlobError {
    pub pattern: String,
    pub why: &'static str,
}

impl Glob {
    pub fn new(pattern: &str) -> Result<Glob, GlobError> {
        let err = |why| GlobError {
            pattern: pattern.into(),
            why,
        };
        if pattern.is_empty() {
            return Err(err("it is empty"));
        }
        let segments: Vec<String> = pattern.split('/').map(str::to_string).collect();
        if segments.iter().any(String::is_empty) {
            return Err(err("empty segment (a leading, trailing or doubled '/')"));
        }
        let ok = |c: char| c.is_ascii_alphanumeric() || "_-.*?".contains(c);
        if !segments.iter().all(|s| s.chars().all(ok)) {
            return Err(err(
                "allowed are A-Z a-z 0-9 _ - . and the wildcards * ? and ** (a whole segment)",
            ));
        }
        if segments.iter().any(|s| s.contains("**") && s != "**") {
            return Err(err("** must be a whole segment"));
        }
        Ok(Glob {
            pattern: pattern.into(),
            segments,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    pub fn matches(&self, tag: &TagPath) -> bool {
        let parts: Vec<&str> = tag.as_str().split('/').collect();
        match_segments(&self.segments, &parts)
    }
}

fn match_segments(pat: &[String], parts: &[&str]) -> bool {
    match pat.split_first() {
        None => parts.is_empty(),
        Some((p, rest)) if p == "**" => {
            (0..=parts.len()).any(|skip| match_segments(rest, &parts[skip..]))
        }
        Some((p, rest)) => match parts.split_first() {
            Some((s, more)) => {
                match_segment(p.as_bytes(), s.as_bytes()) && match_segments(rest, more)
            }
            None => false,
        },
    }
}

/// `*` and `?` within one segment (iterative, with one backtracking point).
fn match_segment(p: &[u8], s: &[u8]) -> bool {
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < s.len() {
        if i < p.len() && (p[i] == b'?' || p[i] == s[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == b'*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == b'*')
}

/// Retention of raw points per tag class and of the rollups (all in ns).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Raw points of tags no class matches.
    pub raw: i64,
    /// Tried in order; the first match gives the tag's raw retention.
    pub classes: Vec<(Glob, i64)>,
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

    fn m(p: &str, t: &str) -> bool {
        Glob::new(p).unwrap().matches(&TagPath::new(t).unwrap())
    }

    #[test]
    fn globs_match_within_and_across_segments() {
        assert!(m("a/b/c", "a/b/c"));
        assert!(!m("a/b", "a/b/c"));
        assert!(m("a/*/c", "a/xyz/c"));
        assert!(!m("a/*", "a/b/c"), "* stays within a segment");
        assert!(m("a/**", "a/b/c"));
        assert!(m("a/b/**", "a/b"), "** also matches no segment");
        assert!(m("**/speed", "plant/line1/pump2/speed"));
        assert!(m("plant/**/pump*/sp?ed", "plant/l1/l2/pump12/speed"));
        assert!(!m("plant/**/pump*/sp?ed", "plant/l1/fan1/speed"));
        assert!(m("x/p*m*p", "x/pump"));
        assert!(!m("x/p*m*q", "x/pump"));
        for bad in ["", "a//b", "/a", "a/b**", "a b"] {
            assert!(Glob::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_first_matching_class_wins_and_partitions_expire_whole() {
        let r = Retention {
            classes: vec![
                (Glob::new("a/fast/**").unwrap(), 7 * DAY),
                (Glob::new("a/**").unwrap(), 90 * DAY),
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
