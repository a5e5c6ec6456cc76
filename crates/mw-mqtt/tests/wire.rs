//! The codec boundary never panics and refuses what the protocol forbids; topic rules by table.

use bytes::BytesMut;
use mw_mqtt::topic::{acl_matches, covers, matches, parse_subscription, valid_filter};
use mw_mqtt::wire::{self, In, Version, reason};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]
    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300), v5 in any::<bool>()) {
        let _ = wire::sniff_version(&bytes);
        let mut b = BytesMut::from(&bytes[..]);
        let v = if v5 { Version::V5 } else { Version::V311 };
        // every packet until an error or the end
        for _ in 0..64 {
            match wire::decode(&mut b, v, 1 << 16) {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }

    #[test]
    fn valid_publish_prefixes_are_incomplete_not_errors(topic in "[a-z/]{1,20}", payload in proptest::collection::vec(any::<u8>(), 0..50)) {
        let mut full = vec![0x30];
        let body_len = 2 + topic.len() + payload.len();
        full.push(body_len as u8);
        full.extend((topic.len() as u16).to_be_bytes());
        full.extend(topic.as_bytes());
        full.extend(&payload);
        prop_assume!(body_len < 128);
        for cut in 0..full.len() {
            let mut b = BytesMut::from(&full[..cut]);
            prop_assert_eq!(wire::decode(&mut b, Version::V311, 1 << 16), Ok(None));
        }
        let mut b = BytesMut::from(&full[..]);
        match wire::decode(&mut b, Version::V311, 1 << 16) {
            Ok(Some(In::Publish(p))) => {
                prop_assert_eq!(p.topic, topic);
                prop_assert_eq!(&p.payload[..], &payload[..]);
            }
            other => prop_assert!(false, "decoded {:?}", other),
        }
    }
}

#[test]
fn refusals_carry_the_reason_code() {
    let cases: &[(&[u8], u8)] = &[
        (b"\x30\x07\x00\x03a/#xy", reason::TOPIC_NAME_INVALID), // wildcard in topic
        (b"\x36\x05\x00\x01a\x00\x01", reason::MALFORMED_PACKET), // QoS 3
        (b"\x82\x06\x00\x01\x00\x01a\x00", reason::MALFORMED_PACKET), // SUBSCRIBE flags 0010 ok...
        (b"\x80\x06\x00\x01\x00\x01a\x00", reason::MALFORMED_PACKET), // ...0000 not
        (b"\x20\x02\x00\x00", reason::PROTOCOL_ERROR),          // CONNACK from a client
        (b"\x30\xff\xff\xff\xff\x01", reason::MALFORMED_PACKET), // 5-byte remaining length
        (b"\x30\xff\xff\x7f", reason::PACKET_TOO_LARGE),
        (b"\x82\x06\x00\x00\x00\x01a\x00", reason::MALFORMED_PACKET), // SUBSCRIBE id 0
        (b"\xa2\x05\x00\x00\x00\x01a", reason::MALFORMED_PACKET),     // UNSUBSCRIBE id 0
        (b"\x32\x05\x00\x01a\x00\x00", reason::MALFORMED_PACKET),     // QoS 1 PUBLISH id 0
    ];
    for (i, (bytes, code)) in cases.iter().enumerate() {
        let mut b = BytesMut::from(*bytes);
        let r = wire::decode(&mut b, Version::V311, 1 << 16);
        if i == 2 {
            assert!(
                matches!(r, Ok(Some(In::Subscribe { .. }))),
                "case {i}: {r:?}"
            );
            continue;
        }
        assert_eq!(r.map_err(|e| e.code), Err(*code), "case {i}");
    }
    // CONNECT version sniffing
    assert_eq!(
        wire::sniff_version(b"\x10\x10\x00\x04MQTT\x05"),
        Ok(Some(Version::V5))
    );
    assert_eq!(
        wire::sniff_version(b"\x10\x10\x00\x04MQTT\x04"),
        Ok(Some(Version::V311))
    );
    assert_eq!(wire::sniff_version(b"\x10\x10\x00\x04MQ"), Ok(None));
    assert_eq!(
        wire::sniff_version(b"\x10\x10\x00\x04MQTT\x06").map_err(|e| e.code),
        Err(reason::UNSUPPORTED_PROTOCOL_VERSION)
    );
    assert_eq!(
        wire::sniff_version(b"\x30\x00").map_err(|e| e.code),
        Err(reason::PROTOCOL_ERROR)
    );
}

#[test]
fn filters_and_matching() {
    for ok in ["#", "+", "a/+/c", "a/#", "+/+", "/", "a//b", "$SYS/#"] {
        assert!(valid_filter(ok).is_ok(), "{ok}");
    }
    for bad in ["", "a/#/b", "a#", "a/b+", "#/a", "a\0b"] {
        assert!(valid_filter(bad).is_err(), "{bad:?}");
    }
    let table = [
        ("a/b/c", "a/b/c", true),
        ("a/b/c", "a/+/c", true),
        ("a/b/c", "a/#", true),
        ("a", "a/#", true),
        ("a/b", "a/+", true),
        ("a/b/c", "a/+", false),
        ("a", "+/+", false),
        ("/x", "+/x", true),
        ("$SYS/x", "#", false),
        ("$SYS/x", "+/x", false),
        ("$SYS/x", "$SYS/#", true),
        ("a/b", "a/b/c", false),
    ];
    for (t, f, want) in table {
        assert_eq!(matches(t, f), want, "{t} vs {f}");
    }
    let s = parse_subscription("$share/g1/a/+").unwrap();
    assert_eq!((s.group, s.filter), (Some("g1"), "a/+"));
    assert!(parse_subscription("$share/g1").is_err());
    assert!(parse_subscription("$share/g+/a").is_err());
    // ACL coverage: a filter is allowed only if everything it matches is
    assert!(covers("a/+", "a/b"));
    assert!(covers("a/+", "a/+"));
    assert!(!covers("a/+", "a/#"));
    assert!(!covers("+", "#"));
    assert!(covers("#", "x/y"));
    assert!(acl_matches("plant/%u/#", "plant/bob/x", Some("bob"), "c1"));
    assert!(!acl_matches("plant/%u/#", "plant/eve/x", Some("bob"), "c1"));
    assert!(!acl_matches("plant/%u/#", "plant/bob/x", None, "c1"));
    assert!(
        !acl_matches("dev/%c", "dev/+", None, "+"),
        "an identity with wildcards must not widen a rule"
    );
    assert!(acl_matches("dev/%c", "dev/c1", None, "c1"));
}
