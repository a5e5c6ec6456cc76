//! `mw_model::TagPath::new` on arbitrary text; accepted paths must round-trip and respect the limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mw_model::{MAX_PATH_LEN, MAX_SEGMENT_LEN, MAX_SEGMENTS, TagPath};

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    if let Ok(p) = TagPath::new(&s) {
        assert_eq!(p.as_str(), &*s);
        assert!(p.as_str().len() <= MAX_PATH_LEN);
        assert!(p.segments().count() <= MAX_SEGMENTS);
        assert!(p.segments().all(|seg| seg.len() <= MAX_SEGMENT_LEN));
    }
});
