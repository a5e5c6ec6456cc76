//! The MQTT broker's packet boundary (`mw_mqtt::wire`) on arbitrary bytes, both protocol
//! versions: CONNECT sniffing and every packet until the first refusal; whatever decodes must not
//! panic, and a refused packet carries a reason code of MQTT 5's error range.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use mw_mqtt::wire::{Version, decode, sniff_version};

fuzz_target!(|data: &[u8]| {
    let Some((&v, rest)) = data.split_first() else {
        return;
    };
    let _ = sniff_version(rest);
    let version = if v & 1 == 0 { Version::V311 } else { Version::V5 };
    let mut buf = BytesMut::from(rest);
    for _ in 0..256 {
        match decode(&mut buf, version, 1 << 16) {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => {
                assert!(e.code >= 0x80, "refusal with a success code: {e}");
                break;
            }
        }
    }
});
