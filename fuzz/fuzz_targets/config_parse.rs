//! The config checker with every shipped section (`millwright::config_registry`) on arbitrary
//! text (bytes decoded lossily as UTF-8).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let source = String::from_utf8_lossy(data);
    let _ = millwright::config_registry().parse(&source, "fuzz.toml");
});
