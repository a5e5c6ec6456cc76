//! Round trips of every column type and codec, and decoding of damaged or arbitrary bytes.

use mw_model::Quality;
use proptest::prelude::*;

use super::*;

fn good(n: usize) -> Vec<Quality> {
    vec![Quality::Good; n]
}

fn roundtrip(p: &Points) -> Vec<u8> {
    let mut buf = Vec::new();
    let s = encode(p, &mut buf).expect("encode");
    assert_eq!(format!("{s:?}"), format!("{:?}", stats(p)));
    let back = decode(&buf).expect("decode");
    assert_eq!(back.ts, p.ts);
    assert_eq!(back.quality, p.quality);
    assert!(
        same_bits(&back.values, &p.values),
        "{:?} != {:?}",
        back.values,
        p.values
    );
    buf
}

/// Equality of the bit patterns (NaN payloads, -0.0).
fn same_bits(a: &Column, b: &Column) -> bool {
    match (a, b) {
        (Column::F64(x), Column::F64(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| a.to_bits() == b.to_bits())
        }
        (Column::F32(x), Column::F32(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| a.to_bits() == b.to_bits())
        }
        _ => a == b,
    }
}

#[test]
fn special_floats_keep_their_bits() {
    let v = vec![
        f64::NAN,
        f64::from_bits(0x7ff8_dead_beef_0001),
        f64::from_bits(0xfff0_0000_0000_0001),
        f64::INFINITY,
        f64::NEG_INFINITY,
        -0.0,
        0.0,
        f64::MIN_POSITIVE / 4.0,
        f64::MAX,
        f64::MIN,
    ];
    let n = v.len();
    let p = Points {
        ts: (0..n as i64).collect(),
        values: Column::F64(v),
        quality: good(n),
    };
    roundtrip(&p);
    let v32 = vec![
        f32::NAN,
        f32::from_bits(0x7fc0_1234),
        -0.0,
        f32::INFINITY,
        1e-45,
        60.263_14,
    ];
    let n = v32.len();
    let p = Points {
        ts: vec![5; n],
        values: Column::F32(v32),
        quality: good(n),
    };
    roundtrip(&p);
}

#[test]
fn extremes_and_empty_blocks() {
    let p = Points {
        ts: vec![i64::MIN, i64::MIN, -1, 0, i64::MAX],
        values: Column::I64(vec![i64::MAX, i64::MIN, 0, -1, i64::MIN]),
        quality: vec![
            Quality::Good,
            Quality::Bad("timeout".into()),
            Quality::Uncertain("".into()),
            Quality::Good,
            Quality::Good,
        ],
    };
    roundtrip(&p);
    let p = Points {
        ts: vec![i64::MIN, i64::MAX],
        values: Column::U64(vec![u64::MAX, 0]),
        quality: good(2),
    };
    roundtrip(&p);
    for values in [
        Column::Bool(vec![]),
        Column::I64(vec![]),
        Column::U64(vec![]),
        Column::F64(vec![]),
        Column::F32(vec![]),
        Column::Str(vec![]),
    ] {
        let p = Points {
            ts: vec![],
            values,
            quality: vec![],
        };
        roundtrip(&p);
    }
}

#[test]
fn encode_rejects_bad_input_and_appends_nothing() {
    let mut buf = vec![9];
    let p = Points {
        ts: vec![1, 2],
        values: Column::Bool(vec![true]),
        quality: good(2),
    };
    assert_eq!(
        encode(&p, &mut buf),
        Err(BlockError::LengthMismatch {
            ts: 2,
            values: 1,
            quality: 2
        })
    );
    let p = Points {
        ts: vec![1, 3, 2],
        values: Column::Bool(vec![true; 3]),
        quality: good(3),
    };
    let e = encode(&p, &mut buf).unwrap_err();
    assert_eq!(e, BlockError::Unsorted { index: 2 });
    assert_eq!(
        e.to_string(),
        "timestamps not sorted: point 2 is earlier than point 1"
    );
    assert_eq!(buf, vec![9]);
}

#[test]
fn blocks_append_and_decode_each() {
    let a = Points {
        ts: vec![1, 2],
        values: Column::Str(vec!["on".into(), "off".into()]),
        quality: good(2),
    };
    let b = Points {
        ts: vec![7],
        values: Column::Bool(vec![true]),
        quality: good(1),
    };
    let mut buf = Vec::new();
    encode(&a, &mut buf).unwrap();
    let cut = buf.len();
    encode(&b, &mut buf).unwrap();
    assert_eq!(decode(&buf[..cut]).unwrap(), a);
    assert_eq!(decode(&buf[cut..]).unwrap(), b);
    // the two together are one block with trailing bytes
    assert!(matches!(decode(&buf), Err(BlockError::Trailing { offset, .. }) if offset == cut));
}

#[test]
fn stats_follow_quality_and_finiteness() {
    let p = Points {
        ts: vec![10, 20, 30, 40, 50],
        values: Column::F64(vec![f64::NAN, 3.0, -1.0, 100.0, 2.0]),
        quality: vec![
            Quality::Good,
            Quality::Good,
            Quality::Uncertain("warm-up".into()),
            Quality::Bad("timeout".into()),
            Quality::Good,
        ],
    };
    let s = stats(&p);
    assert_eq!(
        (s.count, s.good_count, s.t_min, s.t_max),
        (5, 2, 10, 50),
        "only good, finite values count: not the NaN, the uncertain or the bad one"
    );
    assert_eq!(
        (s.min, s.max, s.sum, s.first, s.last),
        (2.0, 3.0, 5.0, 3.0, 2.0)
    );
    let p = Points {
        ts: vec![1, 2],
        values: Column::Bool(vec![true, false]),
        quality: good(2),
    };
    let s = stats(&p);
    assert_eq!(
        (s.sum, s.first, s.last, s.min, s.max),
        (1.0, 1.0, 0.0, 0.0, 1.0)
    );
    let p = Points {
        ts: vec![1],
        values: Column::Str(vec!["x".into()]),
        quality: good(1),
    };
    let s = stats(&p);
    assert_eq!((s.count, s.good_count, s.t_min, s.t_max), (1, 0, 1, 1));
    assert!(s.min.is_nan() && s.sum.is_nan() && s.first.is_nan());
}

#[test]
fn damaged_blocks_are_errors_with_offsets() {
    let p = Points {
        ts: vec![1, 2, 3],
        values: Column::F64(vec![1.0, 2.0, 3.0]),
        quality: good(3),
    };
    let buf = roundtrip(&p);
    assert_eq!(
        decode(&[]),
        Err(BlockError::Truncated {
            offset: 0,
            need: 1,
            what: "block version"
        })
    );
    let mut b = buf.clone();
    b[0] = 7;
    assert_eq!(decode(&b), Err(BlockError::Version { version: 7 }));
    let mut b = buf.clone();
    b[1] = 6;
    assert_eq!(decode(&b), Err(BlockError::ColumnType { id: 6 }));
    let mut b = buf.clone();
    b[2..6].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(
        decode(&b),
        Err(BlockError::TooManyPoints {
            count: u32::MAX as usize
        })
    );
    let mut b = buf.clone();
    b[6] = 200;
    assert_eq!(
        decode(&b),
        Err(BlockError::UnknownCodec {
            offset: 6,
            id: 200,
            what: "timestamp"
        })
    );
    // every strict prefix is an error, never a panic
    for k in 0..buf.len() {
        assert!(decode(&buf[..k]).is_err(), "prefix {k}");
    }
}

fn forced_roundtrip(p: &Points, codec: Codec) -> Layout {
    let mut buf = Vec::new();
    encode_with(p, Only::Values(codec), &mut buf).expect("encode");
    let back = decode(&buf).expect("decode");
    assert_eq!(back.ts, p.ts);
    assert_eq!(back.quality, p.quality);
    assert!(
        same_bits(&back.values, &p.values),
        "{codec:?}: {:?} != {:?}",
        back.values,
        p.values
    );
    layout(&buf).expect("layout")
}

#[test]
fn each_codec_is_chosen_where_it_wins() {
    let n = 1000;
    let ts: Vec<i64> = (0..n)
        .map(|i| 1_700_000_000_000_000_000 + i * 10_000_000_000)
        .collect();
    // decimal readings with two digits
    let v: Vec<f64> = (0..n)
        .map(|i| ((i * 37 % 200) as f64 + 1000.0) / 100.0)
        .collect();
    let p = Points {
        ts: ts.clone(),
        values: Column::F64(v),
        quality: good(n as usize),
    };
    let mut buf = Vec::new();
    encode(&p, &mut buf).unwrap();
    assert!(layout(&buf).unwrap().values.1 < n as usize * 2);
    buf.clear();
    encode_with(&p, Only::Fast, &mut buf).unwrap();
    let l = layout(&buf).unwrap();
    assert_eq!(l.ts.0, Codec::DodBits);
    // t0 + first delta (64-bit bucket) + one bit per further point
    assert!(l.ts.1 <= 8 + 9 + n as usize / 8 + 1, "{l:?}");
    assert_eq!(l.values.0, Codec::Decimal, "{l:?}");
    assert!(l.values.1 < n as usize * 2, "{l:?}");
    assert_eq!(l.quality, (Codec::Rle, 4)); // 1 run: varint 1, varint 1000, status
    assert_eq!(
        forced_roundtrip(&p, Codec::Gorilla).values.0,
        Codec::Gorilla
    );
    // a slowly changing f32 gauge: Gorilla on 32 bits beats raw's 4 bytes
    let v: Vec<f32> = (0..n)
        .map(|i| 20.0 + (i as f32 * 0.01).sin() * 1e-3)
        .collect();
    let p = Points {
        ts: ts.clone(),
        values: Column::F32(v),
        quality: good(n as usize),
    };
    let l = forced_roundtrip(&p, Codec::Gorilla);
    assert_eq!(l.values.0, Codec::Gorilla);
    assert!(l.values.1 < n as usize * 4, "{l:?}");
    let p = Points {
        ts: ts.clone(),
        values: Column::I64((0..n).map(|i| 5000 + i % 7).collect()),
        quality: good(n as usize),
    };
    let l = forced_roundtrip(&p, Codec::DeltaPack);
    assert_eq!(l.values.0, Codec::DeltaPack);
    assert!(l.values.1 < n as usize, "{l:?}");
    let p = Points {
        ts: ts.clone(),
        values: Column::Bool((0..n).map(|i| i / 100 % 2 == 0).collect()),
        quality: good(n as usize),
    };
    assert_eq!(forced_roundtrip(&p, Codec::Rle).values, (Codec::Rle, 12));
    let states = ["running", "stopped", "maintenance"];
    let p = Points {
        ts,
        values: Column::Str(
            (0..n)
                .map(|i| states[(i / 10 % 3) as usize].to_string())
                .collect(),
        ),
        quality: good(n as usize),
    };
    let l = forced_roundtrip(&p, Codec::Dict);
    assert_eq!(l.values.0, Codec::Dict);
    assert!(l.values.1 < 300, "{l:?}");
    // jittery timestamps: varint dod can win; either way they round-trip
    let ts: Vec<i64> = (0..n)
        .map(|i| i * 1_000_003 + (i * 7919 % 1000) * 1_000)
        .collect();
    let mut ts = ts;
    ts.sort_unstable();
    let p = Points {
        ts,
        values: Column::Bool(vec![true; n as usize]),
        quality: good(n as usize),
    };
    roundtrip(&p);
}

#[test]
fn huge_expansion_is_rejected_not_allocated() {
    // a run of MAX_POINTS bad qualities with a 1 KiB reason would be 1 GiB of text
    let mut b = vec![1, 0];
    b.extend_from_slice(&(MAX_POINTS as u32).to_le_bytes());
    b.extend_from_slice(&[1, 0, 0, 0, 0]); // timestamps, DodVarint, empty: truncated anyway
    assert!(decode(&b).is_err());
    let reason = "x".repeat(1024);
    let mut q = Vec::new();
    bits::put_varint(1, &mut q);
    bits::put_varint(MAX_POINTS as u64, &mut q);
    raw::put_q(&Quality::Bad(reason), &mut q);
    let mut budget = Budget(MAX_STRING_BYTES);
    let e = strs::get_quality_rle(&mut Reader::new(&q, 0), MAX_POINTS, &mut budget).unwrap_err();
    assert!(matches!(e, BlockError::TooMuchText { .. }), "{e}");
}

fn arb_quality() -> impl Strategy<Value = Quality> {
    prop_oneof![
        8 => Just(Quality::Good),
        1 => "[a-z ]{0,12}".prop_map(Quality::Uncertain),
        1 => "[a-z ]{0,12}".prop_map(Quality::Bad),
    ]
}

fn arb_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<u64>().prop_map(f64::from_bits),
        (-1000i64..1000).prop_map(|x| x as f64 / 100.0),
        Just(f64::NAN),
        Just(-0.0),
        Just(f64::INFINITY),
        (0u64..1 << 52).prop_map(f64::from_bits),
    ]
}

fn arb_f32() -> impl Strategy<Value = f32> {
    prop_oneof![
        any::<u32>().prop_map(f32::from_bits),
        (-1000i32..1000).prop_map(|x| x as f32 / 10.0),
        Just(f32::NAN),
        Just(-0.0f32),
    ]
}

fn arb_ts(n: usize) -> impl Strategy<Value = Vec<i64>> {
    prop_oneof![
        // regular with jitter and gaps
        (
            any::<i64>(),
            prop::collection::vec(
                prop_oneof![8 => Just(10_000_000_000i64), 1 => 0i64..1000, 1 => 0i64..1 << 40],
                n
            )
        )
            .prop_map(|(start, d)| {
                let mut t = start / 2;
                d.iter()
                    .map(|d| {
                        t = t.saturating_add(*d);
                        t
                    })
                    .collect()
            }),
        // anything, sorted: huge deltas up to i64::MIN..i64::MAX
        prop::collection::vec(prop_oneof![any::<i64>(), Just(i64::MIN), Just(i64::MAX)], n)
            .prop_map(|mut v| {
                v.sort_unstable();
                v
            }),
    ]
}

fn arb_column(n: usize) -> impl Strategy<Value = Column> {
    prop_oneof![
        prop::collection::vec(prop_oneof![any::<bool>(), Just(true)], n).prop_map(Column::Bool),
        prop::collection::vec(
            prop_oneof![any::<i64>(), -50i64..50, Just(i64::MIN), Just(i64::MAX)],
            n
        )
        .prop_map(Column::I64),
        prop::collection::vec(prop_oneof![any::<u64>(), 0u64..50, Just(u64::MAX)], n)
            .prop_map(Column::U64),
        prop::collection::vec(arb_f64(), n).prop_map(Column::F64),
        prop::collection::vec(arb_f32(), n).prop_map(Column::F32),
        prop::collection::vec(prop_oneof!["[a-c]{0,3}", ".{0,20}"], n).prop_map(Column::Str),
    ]
}

fn arb_points() -> impl Strategy<Value = Points> {
    (0usize..300).prop_flat_map(|n| {
        (
            arb_ts(n),
            arb_column(n),
            prop::collection::vec(arb_quality(), n),
        )
            .prop_map(|(ts, values, quality)| Points {
                ts,
                values,
                quality,
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_block_round_trips_bit_for_bit(p in arb_points()) {
        roundtrip(&p);
    }

    #[test]
    fn every_codec_round_trips_bit_for_bit(p in arb_points()) {
        for c in [Codec::Raw, Codec::Rle, Codec::DeltaPack, Codec::Gorilla, Codec::Decimal, Codec::Dict, Codec::Pco] {
            forced_roundtrip(&p, c);
        }
        // the timestamp codecs, each on its own
        let mut b = Vec::new();
        ts::put_bits(&p.ts, &mut b);
        prop_assert_eq!(ts::get_bits(&mut Reader::new(&b, 0), p.ts.len()).unwrap(), p.ts.clone());
        b.clear();
        ts::put_varints(&p.ts, &mut b);
        prop_assert_eq!(ts::get_varints(&mut Reader::new(&b, 0), p.ts.len()).unwrap(), p.ts.clone());
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = decode(&b);
        // behind a valid header for every type and codec, so the codecs see the random bytes
        for ty in 0..6u8 {
            for codec in 0..9u8 {
                let n = b.len() as u32 / 2;
                let mut blk = vec![1, ty];
                blk.extend_from_slice(&n.to_le_bytes());
                for sec in 0..3u8 {
                    let c = if sec == 1 { codec } else { (b.len() as u8 % 3).min(2) };
                    blk.push(c);
                    blk.extend_from_slice(&(b.len() as u32).to_le_bytes());
                    blk.extend_from_slice(&b);
                }
                if let Ok(q) = decode(&blk) {
                    prop_assert_eq!(q.ts.len(), n as usize);
                }
            }
        }
    }

    #[test]
    fn mutated_blocks_never_panic(p in arb_points(), edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
        let mut buf = Vec::new();
        encode(&p, &mut buf).unwrap();
        for (i, byte) in edits {
            let i = i.index(buf.len());
            buf[i] = byte;
        }
        if let Ok(q) = decode(&buf) {
            // whatever decodes is a well-formed block
            prop_assert_eq!(q.ts.len(), q.values.len());
            prop_assert_eq!(q.ts.len(), q.quality.len());
            prop_assert!(q.ts.windows(2).all(|w| w[0] <= w[1]));
        }
    }
}

#[test]
fn rice_frames_round_trip() {
    for vals in [
        vec![3u64, 0, 1, 7, 2, 5, 100, 4],
        (0..300).map(|i| (i * 7919) % 61).collect(),
        vec![u64::MAX, 0, 5],
    ] {
        let mut b = Vec::new();
        ints::pack(&vals, &mut b);
        let back = ints::unpack(&mut Reader::new(&b, 0), vals.len(), "t")
            .unwrap_or_else(|e| panic!("{e} {b:?}"));
        assert_eq!(back, vals);
    }
}
