//! Codec: round trips of every value kind (proptest) and typed errors for bad input.

use mw_sparkplug::pb;
use mw_sparkplug::{
    DataType, DecodeError, Limits, Metric, MetricValue as V, Payload, decode, decode_with, encode,
};
use proptest::prelude::*;
use prost::Message;

fn one(m: Metric) -> Payload {
    Payload {
        timestamp: Some(1),
        metrics: vec![m],
        seq: Some(7),
        uuid: None,
        body: None,
    }
}

fn scalar() -> impl Strategy<Value = V> {
    prop_oneof![
        any::<i8>().prop_map(V::Int8),
        any::<i16>().prop_map(V::Int16),
        any::<i32>().prop_map(V::Int32),
        any::<i64>().prop_map(V::Int64),
        any::<u8>().prop_map(V::UInt8),
        any::<u16>().prop_map(V::UInt16),
        any::<u32>().prop_map(V::UInt32),
        any::<u64>().prop_map(V::UInt64),
        any::<u64>().prop_map(V::DateTime),
        (-1e30f32..1e30).prop_map(V::Float),
        (-1e300f64..1e300).prop_map(V::Double),
        any::<bool>().prop_map(V::Boolean),
        ".*".prop_map(V::String),
        ".*".prop_map(V::Text),
    ]
}

fn value() -> impl Strategy<Value = V> {
    prop_oneof![
        scalar(),
        proptest::collection::vec(any::<u8>(), 0..20).prop_map(V::Bytes),
        proptest::collection::vec(any::<i8>(), 0..20).prop_map(V::Int8Array),
        proptest::collection::vec(any::<i16>(), 0..20).prop_map(V::Int16Array),
        proptest::collection::vec(any::<u32>(), 0..20).prop_map(V::UInt32Array),
        proptest::collection::vec(any::<i64>(), 0..20).prop_map(V::Int64Array),
        proptest::collection::vec(any::<bool>(), 0..40).prop_map(V::BooleanArray),
        proptest::collection::vec("[^\u{0}]*", 0..5).prop_map(V::StringArray),
        proptest::collection::vec(any::<u64>(), 0..5).prop_map(V::DateTimeArray),
    ]
}

proptest! {
    #[test]
    fn decode_of_encode_is_identity(v in value(), alias in any::<Option<u64>>()) {
        let mut m = Metric::new("x", v);
        m.alias = alias;
        let p = one(m);
        let bytes = encode(&p).expect("encode");
        prop_assert_eq!(decode(&bytes).expect("decode"), p);
    }

    #[test]
    fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode(&bytes);
    }
}

fn raw_metric(datatype: u32, value: pb::payload::metric::Value) -> Vec<u8> {
    pb::Payload {
        metrics: vec![pb::payload::Metric {
            name: Some("m".into()),
            datatype: Some(datatype),
            value: Some(value),
            ..Default::default()
        }],
        ..Default::default()
    }
    .encode_to_vec()
}

#[test]
fn bad_input_gives_typed_errors_naming_the_metric() {
    use pb::payload::metric::Value as W;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (vec![0x0a, 0xff], "not a valid Sparkplug B protobuf"),
        (
            raw_metric(99, W::IntValue(1)),
            "metrics[0] \"m\": unknown data type code 99",
        ),
        (
            raw_metric(DataType::Int8.code(), W::IntValue(300)),
            "out of range for Int8",
        ),
        (
            raw_metric(DataType::UInt8.code(), W::IntValue(256)),
            "out of range for UInt8",
        ),
        (
            raw_metric(DataType::Double.code(), W::IntValue(1)),
            "cannot be carried in the int_value",
        ),
        (
            raw_metric(DataType::Int32Array.code(), W::BytesValue(vec![1, 2, 3])),
            "not a whole number",
        ),
        (
            raw_metric(
                DataType::BooleanArray.code(),
                W::BytesValue(vec![9, 0, 0, 0, 0xff]),
            ),
            "claims 9 values",
        ),
        (
            raw_metric(DataType::BooleanArray.code(), W::BytesValue(vec![1, 0])),
            "boolean array",
        ),
        (
            raw_metric(DataType::StringArray.code(), W::BytesValue(b"ab".to_vec())),
            "not NUL-terminated",
        ),
        (
            raw_metric(DataType::StringArray.code(), W::BytesValue(vec![0xff, 0])),
            "not NUL-terminated UTF-8",
        ),
        (
            raw_metric(
                DataType::DataSet.code(),
                W::DatasetValue(pb::payload::DataSet {
                    num_of_columns: Some(2),
                    columns: vec!["a".into()],
                    types: vec![3],
                    rows: vec![],
                }),
            ),
            "data set has 1 columns",
        ),
    ];
    for (bytes, want) in cases {
        let e = decode(&bytes).expect_err(want).to_string();
        assert!(e.contains(want), "want {want:?}, got {e:?}");
    }
}

#[test]
fn limits_bound_size_metrics_and_template_depth() {
    let p = Payload {
        metrics: (0..10)
            .map(|i| Metric::new(format!("m{i}"), V::Boolean(true)))
            .collect(),
        ..Default::default()
    };
    let bytes = encode(&p).expect("encode");
    let small = Limits {
        max_bytes: 10,
        ..Limits::default()
    };
    assert!(matches!(
        decode_with(&bytes, &small),
        Err(DecodeError::TooLarge { .. })
    ));
    let few = Limits {
        max_metrics: 5,
        ..Limits::default()
    };
    assert_eq!(
        decode_with(&bytes, &few),
        Err(DecodeError::TooManyMetrics { max: 5 })
    );

    let mut v = V::Boolean(true);
    for _ in 0..4 {
        v = V::Template(mw_sparkplug::Template {
            metrics: vec![Metric::new("t", v)],
            ..Default::default()
        });
    }
    let bytes = encode(&one(Metric::new("deep", v))).expect("encode");
    let shallow = Limits {
        max_template_depth: 3,
        ..Limits::default()
    };
    assert!(matches!(
        decode_with(&bytes, &shallow),
        Err(DecodeError::TooDeep { .. })
    ));
    assert!(decode(&bytes).is_ok());
}

#[test]
fn sign_extended_small_ints_from_other_peers_decode() {
    use pb::payload::metric::Value as W;
    let p = decode(&raw_metric(DataType::Int8.code(), W::IntValue(0xFFFF_FFFF))).expect("decode");
    assert_eq!(p.metrics[0].value, Some(V::Int8(-1)));
    let p = decode(&raw_metric(DataType::Int16.code(), W::IntValue(0xFFFF))).expect("decode");
    assert_eq!(p.metrics[0].value, Some(V::Int16(-1)));
}

#[test]
fn model_values_convert_both_ways() {
    use mw_model::Value as M;
    assert_eq!(V::Int8(-3).to_model(), Some(M::I64(-3)));
    assert_eq!(V::UInt64(u64::MAX).to_model(), Some(M::U64(u64::MAX)));
    assert_eq!(V::Float(1.5).to_model(), Some(M::F32(1.5)));
    assert_eq!(V::Uuid("u".into()).to_model(), Some(M::Str("u".into())));
    assert_eq!(V::Int32Array(vec![1]).to_model(), None);
    for m in [
        M::Bool(true),
        M::I64(-1),
        M::U64(2),
        M::F32(0.5),
        M::F64(2.5),
        M::Str("s".into()),
    ] {
        assert_eq!(V::from_model(&m).to_model(), Some(m));
    }
}

#[test]
fn encode_refuses_a_value_of_another_type() {
    let mut m = Metric::new("x", V::Boolean(true));
    m.datatype = DataType::Int32;
    let e = encode(&one(m)).expect_err("mismatch").to_string();
    assert!(e.contains("metrics[0] \"x\""), "{e}");
}
