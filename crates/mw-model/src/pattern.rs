//! Glob patterns over tag paths (`plant/*/temperature`, `line1/**`, `pump?/flow`), for multi-tag
//! queries and per-tag-class settings.
//!
//! A pattern is split at `/` like a path. Within a segment `*` matches any run of characters
//! (none included) and `?` exactly one; a segment that is exactly `**` matches any number of
//! whole segments (none included). Everything else matches itself. Matching is linear in the
//! product of pattern and path length (no exponential backtracking) and never panics.

use std::fmt;

use crate::TagPath;

/// Longest pattern accepted, in bytes.
pub const MAX_PATTERN_LEN: usize = 512;

/// A compiled glob over tag paths.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TagPattern {
    text: String,
    segments: Vec<Seg>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Seg {
    /// `**`
    Any,
    /// A segment glob: its characters (`*` and `?` special).
    Glob(Vec<char>),
}

/// Why a pattern was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("tag pattern is empty")]
    Empty,
    #[error("tag pattern is {0} bytes long; at most {MAX_PATTERN_LEN}")]
    TooLong(usize),
    #[error("tag pattern {pattern:?} has an empty segment (two `/` in a row, or one at an end)")]
    EmptySegment { pattern: String },
    #[error(
        "tag pattern {pattern:?} has {ch:?}: a pattern holds the characters of a tag path (A-Z a-z 0-9 _ - .) and * ? /"
    )]
    BadChar { pattern: String, ch: char },
}

impl TagPattern {
    pub fn new(pattern: &str) -> Result<TagPattern, PatternError> {
        if pattern.is_empty() {
            return Err(PatternError::Empty);
        }
        if pattern.len() > MAX_PATTERN_LEN {
            return Err(PatternError::TooLong(pattern.len()));
        }
        let mut segments = Vec::new();
        for seg in pattern.split('/') {
            if seg.is_empty() {
                return Err(PatternError::EmptySegment {
                    pattern: pattern.to_owned(),
                });
            }
            if let Some(ch) = seg
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '*' | '?')))
            {
                return Err(PatternError::BadChar {
                    pattern: pattern.to_owned(),
                    ch,
                });
            }
            let s = if seg == "**" {
                Seg::Any
            } else {
                Seg::Glob(seg.chars().collect())
            };
            // `**/**` is the same as `**`
            if !(s == Seg::Any && segments.last() == Some(&Seg::Any)) {
                segments.push(s);
            }
        }
        Ok(TagPattern {
            text: pattern.to_owned(),
            segments,
        })
    }

    /// Whether the text has any `*` or `?` (a plain path is a pattern matching only itself).
    pub fn is_glob(text: &str) -> bool {
        text.contains(['*', '?'])
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `path` matches.
    pub fn matches(&self, path: &TagPath) -> bool {
        self.matches_str(path.as_str())
    }

    /// Whether the `/`-separated `path` matches.
    pub fn matches_str(&self, path: &str) -> bool {
        let segs: Vec<&str> = path.split('/').collect();
        // reach[j]: the pattern's first i segments can match the path's first j segments
        let mut reach = vec![false; segs.len() + 1];
        reach[0] = true;
        for p in &self.segments {
            let mut next = vec![false; segs.len() + 1];
            match p {
                Seg::Any => {
                    let mut on = false;
                    for j in 0..=segs.len() {
                        on |= reach[j];
                        next[j] = on;
                    }
                }
                Seg::Glob(g) => {
                    for j in 0..segs.len() {
                        if reach[j] && glob_segment(g, segs[j]) {
                            next[j + 1] = true;
                        }
                    }
                }
            }
            reach = next;
        }
        reach[segs.len()]
    }
}

impl fmt::Display for TagPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// One segment: `*` any run, `?` one character. Iterative with one backtrack point (linear).
fn glob_segment(pattern: &[char], text: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(p: &str, path: &str) -> bool {
        TagPattern::new(p).unwrap().matches_str(path)
    }

    #[test]
    fn table() {
        let cases = [
            ("plant/pump1/flow", "plant/pump1/flow", true),
            ("plant/pump1/flow", "plant/pump1/flows", false),
            ("plant/*/flow", "plant/pump1/flow", true),
            ("plant/*/flow", "plant/a/b/flow", false),
            ("plant/**/flow", "plant/a/b/flow", true),
            ("plant/**/flow", "plant/flow", true),
            ("**", "a/b", true),
            ("**/flow", "a/b/flow", true),
            ("**/flow", "a/b/flux", false),
            ("plant/**", "plant/x", true),
            ("plant/**", "other/x", false),
            ("pump?/flow", "pump1/flow", true),
            ("pump?/flow", "pump12/flow", false),
            ("p*1/f*w", "pump1/flow", true),
            ("p*1/f*w", "pump2/flow", false),
            ("*x*y*", "axbyc", true),
            ("*x*y*", "aybxc", false),
            ("a/**/**/b", "a/b", true),
        ];
        for (p, path, want) in cases {
            assert_eq!(m(p, path), want, "{p} vs {path}");
        }
    }

    #[test]
    fn refusals_name_the_problem() {
        assert_eq!(TagPattern::new(""), Err(PatternError::Empty));
        assert!(matches!(
            TagPattern::new("a//b"),
            Err(PatternError::EmptySegment { .. })
        ));
        let e = TagPattern::new("a/b c").unwrap_err();
        assert!(e.to_string().contains("' '"), "{e}");
        assert!(matches!(
            TagPattern::new(&"a".repeat(600)),
            Err(PatternError::TooLong(600))
        ));
    }

    /// A naive exponential matcher, the specification the linear one must equal.
    fn naive(p: &[&str], s: &[&str]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some((&"**", rest)) => (0..=s.len()).any(|k| naive(rest, &s[k..])),
            Some((g, rest)) => {
                !s.is_empty() && naive_seg(g.as_bytes(), s[0].as_bytes()) && naive(rest, &s[1..])
            }
        }
    }

    fn naive_seg(p: &[u8], s: &[u8]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some((b'*', rest)) => (0..=s.len()).any(|k| naive_seg(rest, &s[k..])),
            Some((b'?', rest)) => !s.is_empty() && naive_seg(rest, &s[1..]),
            Some((c, rest)) => s.first() == Some(c) && naive_seg(rest, &s[1..]),
        }
    }

    proptest! {
        #[test]
        fn equals_the_naive_matcher(
            p in proptest::collection::vec("(\\*\\*|[ab*?]{1,4})", 1..5),
            s in proptest::collection::vec("[ab]{1,4}", 1..6),
        ) {
            let pat = p.join("/");
            let path = s.join("/");
            let mut pv: Vec<&str> = p.iter().map(String::as_str).collect();
            pv.dedup_by(|a, b| *a == "**" && *b == "**");
            let sv: Vec<&str> = s.iter().map(String::as_str).collect();
            prop_assert_eq!(m(&pat, &path), naive(&pv, &sv), "{} vs {}", pat, path);
        }

        #[test]
        fn never_panics(p in "\\PC{0,40}", s in "\\PC{0,40}") {
            if let Ok(t) = TagPattern::new(&p) {
                let _ = t.matches_str(&s);
            }
        }
    }
}
