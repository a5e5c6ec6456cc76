use std::fmt;
use std::sync::Arc;

/// Longest accepted path, in bytes.
pub const MAX_PATH_LEN: usize = 255;
/// Most segments in a path (ISA-95 enterprise/site/area/line/cell/asset/tag plus slack).
pub const MAX_SEGMENTS: usize = 10;
/// Longest accepted segment, in bytes.
pub const MAX_SEGMENT_LEN: usize = 64;

/// A validated Unified-Namespace / ISA-95 tag path such as
/// `acme/plant1/utilities/water/pump1/flow`.
///
/// Rules: 2 to [`MAX_SEGMENTS`] segments separated by `/`; each segment is 1 to
/// [`MAX_SEGMENT_LEN`] characters from `A-Z a-z 0-9 _ - .`, and does not start with `.`;
/// the whole path is at most [`MAX_PATH_LEN`] bytes. The last segment is the tag name, the
/// others form the asset path. Paths are case-sensitive.
///
/// Cloning is cheap (shared string).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TagPath(Arc<str>);

/// Why a string is not a valid [`TagPath`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("tag path is empty")]
    Empty,
    #[error("tag path is {len} bytes long (at most {MAX_PATH_LEN})")]
    TooLong { len: usize },
    #[error(
        "tag path has {count} segment(s); it needs at least 2 (asset/tag) and at most {MAX_SEGMENTS}"
    )]
    SegmentCount { count: usize },
    #[error("segment {index} of the tag path is empty (leading, trailing or doubled '/')")]
    EmptySegment { index: usize },
    #[error("segment {index} of the tag path is {len} characters long (at most {MAX_SEGMENT_LEN})")]
    SegmentTooLong { index: usize, len: usize },
    #[error(
        "invalid character {ch:?} in segment {index} of the tag path (allowed: A-Z a-z 0-9 _ - .)"
    )]
    BadChar { index: usize, ch: char },
    #[error("segment {index} of the tag path starts with '.'")]
    LeadingDot { index: usize },
}

impl TagPath {
    /// Parses and validates a path.
    pub fn new(s: &str) -> Result<Self, PathError> {
        validate(s)?;
        Ok(TagPath(Arc::from(s)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The segments, from enterprise down to the tag name.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The last segment: the tag's own name.
    pub fn name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// Everything before the last segment: the asset the tag belongs to.
    pub fn asset(&self) -> &str {
        match self.0.rfind('/') {
            Some(i) => &self.0[..i],
            None => "",
        }
    }

    /// A child path: `self/name`.
    pub fn join(&self, name: &str) -> Result<Self, PathError> {
        TagPath::new(&format!("{}/{}", self.0, name))
    }
}

/// Validates an asset path (one or more segments, same character rules as a tag path).
pub(crate) fn validate_segments(s: &str, min: usize) -> Result<(), PathError> {
    if s.is_empty() {
        return Err(PathError::Empty);
    }
    if s.len() > MAX_PATH_LEN {
        return Err(PathError::TooLong { len: s.len() });
    }
    let count = s.split('/').count();
    if count < min || count > MAX_SEGMENTS {
        return Err(PathError::SegmentCount { count });
    }
    for (index, seg) in s.split('/').enumerate() {
        if seg.is_empty() {
            return Err(PathError::EmptySegment { index });
        }
        let len = seg.chars().count();
        if len > MAX_SEGMENT_LEN {
            return Err(PathError::SegmentTooLong { index, len });
        }
        if seg.starts_with('.') {
            return Err(PathError::LeadingDot { index });
        }
        if let Some(ch) = seg
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
        {
            return Err(PathError::BadChar { index, ch });
        }
    }
    Ok(())
}

fn validate(s: &str) -> Result<(), PathError> {
    validate_segments(s, 2)
}

impl fmt::Display for TagPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TagPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TagPath({:?})", &*self.0)
    }
}

impl std::str::FromStr for TagPath {
    type Err = PathError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TagPath::new(s)
    }
}

impl serde::Serialize for TagPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for TagPath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        TagPath::new(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_isa95_paths() {
        let p = TagPath::new("acme/plant1/utilities/water/pump1/flow").unwrap();
        assert_eq!(p.name(), "flow");
        assert_eq!(p.asset(), "acme/plant1/utilities/water/pump1");
        assert_eq!(p.segments().count(), 6);
        assert_eq!(
            p.join("x").unwrap().as_str(),
            "acme/plant1/utilities/water/pump1/flow/x"
        );
    }

    #[test]
    fn rejects_bad_paths_with_reason() {
        let cases: &[(&str, PathError)] = &[
            ("", PathError::Empty),
            ("flow", PathError::SegmentCount { count: 1 }),
            ("a//b", PathError::EmptySegment { index: 1 }),
            ("/a/b", PathError::EmptySegment { index: 0 }),
            ("a/b/", PathError::EmptySegment { index: 2 }),
            ("a/b c", PathError::BadChar { index: 1, ch: ' ' }),
            ("a/.hidden", PathError::LeadingDot { index: 1 }),
            (
                "a/b/c/d/e/f/g/h/i/j/k",
                PathError::SegmentCount { count: 11 },
            ),
        ];
        for (input, want) in cases {
            assert_eq!(TagPath::new(input).unwrap_err(), *want, "input {input:?}");
        }
        let long_seg = format!("a/{}", "x".repeat(65));
        assert!(matches!(
            TagPath::new(&long_seg),
            Err(PathError::SegmentTooLong { .. })
        ));
        let long = ["abcdefghij"; 10].join("/") + &"y".repeat(200);
        assert!(matches!(
            TagPath::new(&long),
            Err(PathError::TooLong { .. })
        ));
    }

    #[test]
    fn serde_roundtrip_validates() {
        let p = TagPath::new("a/b").unwrap();
        let j = serde_json::to_string(&p).unwrap();
        assert_eq!(j, "\"a/b\"");
        assert_eq!(serde_json::from_str::<TagPath>(&j).unwrap(), p);
        assert!(serde_json::from_str::<TagPath>("\"nope\"").is_err());
    }

    proptest! {
        #[test]
        fn never_panics_and_valid_paths_roundtrip(s in "\\PC{0,80}") {
            if let Ok(p) = TagPath::new(&s) {
                prop_assert_eq!(p.as_str(), s.as_str());
                prop_assert_eq!(TagPath::new(p.as_str()).unwrap(), p);
            }
        }

        #[test]
        fn generated_valid_paths_accepted(segs in proptest::collection::vec("[A-Za-z0-9_][A-Za-z0-9_.-]{0,15}", 2..8)) {
            let s = segs.join("/");
            let p = TagPath::new(&s).unwrap();
            prop_assert_eq!(p.segments().count(), segs.len());
            prop_assert_eq!(p.name(), segs.last().unwrap().as_str());
        }
    }
}
