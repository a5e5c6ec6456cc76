//! `mw_sparkplug::decode` (Sparkplug B payloads, protobuf with DataSets and Templates) on
//! arbitrary bytes: never panics; whatever decodes encodes again and decodes to the same payload.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(p) = mw_sparkplug::decode(data) else {
        return;
    };
    let Ok(bytes) = mw_sparkplug::encode(&p) else {
        return;
    };
    let again = mw_sparkplug::decode(&bytes).expect("a re-encoded payload decodes");
    assert_eq!(format!("{p:?}"), format!("{again:?}"), "round trip changed the payload");
});
