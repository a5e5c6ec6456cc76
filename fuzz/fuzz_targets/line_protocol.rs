//! `mw_lineproto::parse` (every precision) and `to_samples` on arbitrary text; whatever parses and
//! maps must write back and parse to the same tags and values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mw_lineproto::{Precision, parse, to_samples, write_sample};

fuzz_target!(|data: &[u8]| {
    let Some((&p, rest)) = data.split_first() else {
        return;
    };
    let precision = [
        Precision::Nanoseconds,
        Precision::Microseconds,
        Precision::Milliseconds,
        Precision::Seconds,
        Precision::Minutes,
        Precision::Hours,
    ][usize::from(p) % 6];
    let text = String::from_utf8_lossy(rest);
    let Ok(points) = parse(&text, precision, 0) else {
        return;
    };
    let Ok(samples) = to_samples(&points, 0) else {
        return;
    };
    for s in &samples {
        let mut line = String::new();
        if write_sample(s, &mut line).is_err() {
            continue;
        }
        let back = parse(&line, Precision::Nanoseconds, 0).expect("written line parses");
        let back = to_samples(&back, 0).expect("written line maps");
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].tag, s.tag);
        assert_eq!(back[0].value, s.value);
        assert_eq!(back[0].source_ts, s.source_ts);
    }
});
