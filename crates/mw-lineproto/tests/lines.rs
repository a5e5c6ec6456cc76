//! Valid and invalid lines from the line-protocol reference, each invalid one with its position.

use mw_lineproto::{
    FieldValue, LineError, Precision, Reader, parse, to_samples, write_sample, write_value_line,
};
use mw_model::{Quality, Sample, TagPath, Value};
use proptest::prelude::*;

const DEFAULT_TS: i64 = 42;

fn one(line: &str) -> mw_lineproto::Point<'_> {
    let mut v =
        parse(line, Precision::Nanoseconds, DEFAULT_TS).unwrap_or_else(|e| panic!("{line:?}: {e}"));
    assert_eq!(v.len(), 1, "{line:?}");
    v.remove(0)
}

/// (line, measurement, tags, fields, timestamp)
type ValidCase<'a> = (
    &'a str,
    &'a str,
    &'a [(&'a str, &'a str)],
    &'a [(&'a str, FieldValue<'a>)],
    i64,
);

#[test]
fn valid_lines_parse_as_the_reference_means() {
    use FieldValue::*;
    let cases: &[ValidCase<'_>] = &[
        ("m f=1", "m", &[], &[("f", Float(1.0))], DEFAULT_TS),
        (
            "m f=1.5,g=-2e3 1556813561098000000",
            "m",
            &[],
            &[("f", Float(1.5)), ("g", Float(-2000.0))],
            1556813561098000000,
        ),
        (
            "m f=.5,g=1.,h=+3E-2",
            "m",
            &[],
            &[("f", Float(0.5)), ("g", Float(1.0)), ("h", Float(0.03))],
            DEFAULT_TS,
        ),
        (
            "m i=-9223372036854775808i,u=18446744073709551615u",
            "m",
            &[],
            &[("i", Integer(i64::MIN)), ("u", Unsigned(u64::MAX))],
            DEFAULT_TS,
        ),
        (
            "m a=t,b=T,c=true,d=True,e=TRUE",
            "m",
            &[],
            &[
                ("a", Boolean(true)),
                ("b", Boolean(true)),
                ("c", Boolean(true)),
                ("d", Boolean(true)),
                ("e", Boolean(true)),
            ],
            DEFAULT_TS,
        ),
        (
            "m a=f,b=F,c=false,d=False,e=FALSE",
            "m",
            &[],
            &[
                ("a", Boolean(false)),
                ("b", Boolean(false)),
                ("c", Boolean(false)),
                ("d", Boolean(false)),
                ("e", Boolean(false)),
            ],
            DEFAULT_TS,
        ),
        (
            r#"m s="a \"q\" b\\c \d, =x""#,
            "m",
            &[],
            &[("s", String(r#"a "q" b\c \d, =x"#.into()))],
            DEFAULT_TS,
        ),
        (
            r#"m s="""#,
            "m",
            &[],
            &[("s", String("".into()))],
            DEFAULT_TS,
        ),
        // escapes in names: measurement `\,` `\ `; keys and tag values also `\=`; `\\` is one backslash
        (
            r"my\ meas\,x=1,t\ k\=1=v\,\ \=2 f\=\ \,k=1i",
            "my meas,x=1",
            &[("t k=1", "v, =2")],
            &[("f= ,k", Integer(1))],
            DEFAULT_TS,
        ),
        (
            r"m\\x\y,t=a\\b f=1",
            r"m\x\y",
            &[("t", r"a\b")],
            &[("f", Float(1.0))],
            DEFAULT_TS,
        ),
        // '=' needs no escape in a measurement
        ("a=b f=1", "a=b", &[], &[("f", Float(1.0))], DEFAULT_TS),
        // tags come out sorted by key
        (
            "truck,name=t1,fleet=North velocity=3 -5",
            "truck",
            &[("fleet", "North"), ("name", "t1")],
            &[("velocity", Float(3.0))],
            -5,
        ),
        // trailing whitespace, CRLF, leading whitespace
        ("  m f=1 7  \r", "m", &[], &[("f", Float(1.0))], 7),
        ("m f=1 \r", "m", &[], &[("f", Float(1.0))], DEFAULT_TS),
        // duplicate field keys are kept in order (the later wins downstream)
        (
            "m f=1,f=2",
            "m",
            &[],
            &[("f", Float(1.0)), ("f", Float(2.0))],
            DEFAULT_TS,
        ),
        ("m f=1 0", "m", &[], &[("f", Float(1.0))], 0),
    ];
    for (line, m, tags, fields, ts) in cases {
        let p = one(line);
        assert_eq!(p.measurement, *m, "{line:?}");
        let got_tags: Vec<(&str, &str)> = p.tags.iter().map(|t| (&*t.key, &*t.value)).collect();
        assert_eq!(got_tags, *tags, "{line:?}");
        let got_fields: Vec<(&str, FieldValue<'_>)> = p
            .fields
            .iter()
            .map(|f| (&*f.key, f.value.clone()))
            .collect();
        assert_eq!(got_fields, *fields, "{line:?}");
        assert_eq!(p.timestamp_ns, *ts, "{line:?}");
    }
}

#[test]
fn names_without_escapes_borrow() {
    let p = one("truck,fleet=North velocity=3");
    assert!(matches!(p.measurement, std::borrow::Cow::Borrowed(_)));
    assert!(matches!(p.tags[0].value, std::borrow::Cow::Borrowed(_)));
}

#[test]
fn comments_and_blank_lines_are_skipped() {
    let body = "# header\n\n   \nm f=1 1\r\n  # indented comment\nm f=2 2\n";
    let pts = parse(body, Precision::Nanoseconds, 0).unwrap();
    assert_eq!(pts.len(), 2);
    assert_eq!((pts[0].line, pts[1].line), (4, 6));
}

#[test]
fn invalid_lines_name_line_column_and_expectation() {
    // (input, line, column, message starts with)
    let cases: &[(&str, usize, usize, &str)] = &[
        ("m", 1, 2, "expected ' ' and a field set"),
        ("m,t=1", 1, 6, "expected ' ' and a field set"),
        ("m ", 1, 3, "expected field key"),
        (",t=1 f=1", 1, 1, "expected measurement name"),
        ("m,=1 f=1", 1, 3, "expected tag key"),
        ("m,t f=1", 1, 4, "expected '=' after tag key \"t\""),
        ("m,t= f=1", 1, 5, "expected a value for tag \"t\""),
        ("m,t=a=b f=1", 1, 6, "unescaped '=' in value of tag \"t\""),
        (
            "ok f=1\nok f=2\nm,t=a velocity 5",
            3,
            15,
            "expected '=' after field key \"velocity\"",
        ),
        ("m f=", 1, 5, "expected a value for field \"f\""),
        ("m f=1,", 1, 7, "expected field key"),
        ("m f=abc", 1, 5, "invalid value \"abc\" for field \"f\""),
        ("m f=1x", 1, 5, "invalid value \"1x\""),
        ("m f=NaN", 1, 5, "invalid value \"NaN\""),
        ("m f=inf", 1, 5, "invalid value \"inf\""),
        ("m f=1e", 1, 5, "invalid value \"1e\""),
        ("m f=-u", 1, 5, "invalid value \"-u\""),
        ("m f=-1u", 1, 5, "invalid value \"-1u\""),
        ("m f=1.5i", 1, 5, "invalid value \"1.5i\""),
        (
            "m f=1e999",
            1,
            5,
            "float 1e999 of field \"f\" is out of range",
        ),
        (
            "m f=9223372036854775808i",
            1,
            5,
            "integer 9223372036854775808i of field \"f\" is out of range for i64",
        ),
        (
            "m x=1,f=18446744073709551616u",
            1,
            9,
            "unsigned integer 18446744073709551616u of field \"f\" is out of range",
        ),
        (
            "m f=\"abc",
            1,
            5,
            "unterminated string value of field \"f\"",
        ),
        ("m f=\"a\"b", 1, 8, "expected ',', ' ' or end of line"),
        (
            "m f=1 12a",
            1,
            7,
            "expected an integer timestamp, found \"12a\"",
        ),
        ("m f=1 1 2", 1, 9, "expected end of line after timestamp"),
        (
            "m f=1 99999999999999999999",
            1,
            7,
            "timestamp 99999999999999999999 is out of range",
        ),
        ("m,a=1,a=2 f=1", 1, 9, "duplicate tag key \"a\""),
        // columns count characters, not bytes
        ("é,t f=1", 1, 4, "expected '=' after tag key \"t\""),
    ];
    for (input, line, column, msg) in cases {
        let e = parse(input, Precision::Nanoseconds, 0).expect_err(input);
        assert_eq!((e.line, e.column), (*line, *column), "{input:?}: {e}");
        assert!(e.message.starts_with(msg), "{input:?}: {e}");
    }
}

#[test]
fn error_display_reads_as_documented() {
    let e = parse(
        "a f=1\nb f=2\ntruck,fleet=N velocity 3",
        Precision::Nanoseconds,
        0,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "line 3, column 23: expected '=' after field key \"velocity\""
    );
}

#[test]
fn precision_scales_and_overflow_is_an_error() {
    let cases = [
        ("ns", 5),
        ("n", 5),
        ("us", 5_000),
        ("u", 5_000),
        ("ms", 5_000_000),
        ("s", 5_000_000_000),
        ("m", 300_000_000_000),
        ("h", 18_000_000_000_000),
    ];
    for (q, want) in cases {
        let p = Precision::from_query(q).unwrap();
        assert_eq!(parse("m f=1 5", p, 0).unwrap()[0].timestamp_ns, want, "{q}");
    }
    let e = Precision::from_query("sec").unwrap_err();
    assert!(e.to_string().contains("\"sec\"") && e.to_string().contains("ns, us, ms, s"));
    // 9223372037 s is just past i64::MAX ns; 9223372036 s fits
    assert_eq!(
        parse("m f=1 9223372036", Precision::Seconds, 0).unwrap()[0].timestamp_ns,
        9_223_372_036_000_000_000
    );
    let e = parse("m f=1 9223372037", Precision::Seconds, 0).unwrap_err();
    assert_eq!((e.line, e.column), (1, 7));
    assert!(e.message.contains("overflows 64-bit nanoseconds"), "{e}");
    let e = parse("m f=1 -9223372037", Precision::Seconds, 0).unwrap_err();
    assert!(e.message.contains("overflows"), "{e}");
}

#[test]
fn maps_to_tags_per_issue() {
    let pts = parse(
        "truck,name=t1,fleet=North velocity=3,moving=true,n=2i,c=7u,s=\"ok\" 10",
        Precision::Nanoseconds,
        0,
    )
    .unwrap();
    let s = to_samples(&pts, 99).unwrap();
    let got: Vec<(&str, Value)> = s
        .iter()
        .map(|s| (s.tag.as_str(), s.value.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("truck/North/t1/velocity", Value::F64(3.0)),
            ("truck/North/t1/moving", Value::Bool(true)),
            ("truck/North/t1/n", Value::I64(2)),
            ("truck/North/t1/c", Value::U64(7)),
            ("truck/North/t1/s", Value::Str("ok".into())),
        ]
    );
    assert!(
        s.iter()
            .all(|s| s.quality == Quality::Good && s.source_ts == 10 && s.receive_ts == 99)
    );
}

#[test]
fn duplicate_points_are_kept_in_order_last_wins() {
    let pts = parse("m,a=x f=1 5\nm,a=x f=2 5", Precision::Nanoseconds, 0).unwrap();
    let s = to_samples(&pts, 0).unwrap();
    assert_eq!(s.len(), 2);
    assert_eq!(s[1].value, Value::F64(2.0));
}

#[test]
fn invalid_path_segments_are_rejected_at_their_column() {
    let cases: &[(&str, usize, &str)] = &[
        (
            "truck,fleet=No\\ rth v=1",
            13,
            "value \"No rth\" of tag \"fleet\" is not a valid tag-path segment",
        ),
        (
            "truck,fleet=a/b v=1",
            13,
            "value \"a/b\" of tag \"fleet\" contains '/'",
        ),
        ("tr\\,uck v=1", 1, "measurement \"tr,uck\" is not a valid"),
        (
            "truck x=1,.v=1",
            11,
            "field key \".v\" is not a valid tag-path segment: it starts with '.'",
        ),
        ("truck,t=é v=1", 9, "value \"é\" of tag \"t\""),
    ];
    for (line, col, msg) in cases {
        let pts = parse(line, Precision::Nanoseconds, 0).unwrap();
        let e = to_samples(&pts, 0).expect_err(line);
        assert_eq!((e.line, e.column), (1, *col), "{line:?}: {e}");
        assert!(e.message.starts_with(msg), "{line:?}: {e}");
    }
    // too many segments: the whole path is checked too
    let pts = parse(
        "m,a=1,b=2,c=3,d=4,e=5,f=6,g=7,h=8,i=9 v=1",
        Precision::Nanoseconds,
        0,
    )
    .unwrap();
    assert!(to_samples(&pts, 0).unwrap_err().message.contains("segment"));
    let long = format!("m s=\"{}\"", "x".repeat(1025));
    let e = to_samples(&parse(&long, Precision::Nanoseconds, 0).unwrap(), 0).unwrap_err();
    assert!(e.message.contains("1025 bytes long"), "{e}");
}

#[test]
fn reader_streams_with_line_numbers() {
    let body = "# c\nm f=1 1\n\nm,t=x g=2i 2\r\nm f= 3\n";
    let mut r = Reader::new(body.as_bytes(), Precision::Nanoseconds, 0, 1 << 20);
    assert_eq!(r.next().unwrap().unwrap().line, 2);
    assert_eq!(
        r.next().unwrap().unwrap().fields[0].value,
        FieldValue::Integer(2)
    );
    let e = r.next().unwrap().unwrap_err();
    assert_eq!(
        e.to_string(),
        "line 5, column 5: expected a value for field \"f\""
    );
    assert!(r.next().is_none());
    let mut r = Reader::new("m f=12345\n".as_bytes(), Precision::Nanoseconds, 0, 5);
    assert!(
        r.next()
            .unwrap()
            .unwrap_err()
            .to_string()
            .contains("longer than 5 bytes")
    );
    let mut r = Reader::new(&b"m f=1\n\xff\n"[..], Precision::Nanoseconds, 0, 100);
    assert!(r.next().unwrap().is_ok());
    assert!(
        r.next()
            .unwrap()
            .unwrap_err()
            .to_string()
            .starts_with("line 2:")
    );
}

#[test]
fn writer_examples() {
    let tag = TagPath::new("truck/North/t1/velocity").unwrap();
    let mut out = String::new();
    write_value_line(&tag, &Value::F32(60.263_14), 7, &mut out).unwrap();
    write_value_line(&tag, &Value::Str("a \"b\" \\".into()), 8, &mut out).unwrap();
    write_value_line(&TagPath::new("a/b").unwrap(), &Value::I64(-3), 9, &mut out).unwrap();
    assert_eq!(
        out,
        "truck,l1=North,l2=t1 velocity=60.26314 7\ntruck,l1=North,l2=t1 velocity=\"a \\\"b\\\" \\\\\" 8\na b=-3i 9\n"
    );
    assert!(write_value_line(&tag, &Value::F64(f64::NAN), 0, &mut out).is_err());
    assert!(write_value_line(&tag, &Value::Str("a\nb".into()), 0, &mut out).is_err());
}

fn segment() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_-][A-Za-z0-9_.-]{0,11}"
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::I64),
        any::<u64>().prop_map(Value::U64),
        any::<f64>()
            .prop_filter("finite", |v| v.is_finite())
            .prop_map(Value::F64),
        any::<f32>()
            .prop_filter("finite", |v| v.is_finite())
            .prop_map(Value::F32),
        "[^\n]{0,40}".prop_map(Value::Str),
    ]
}

/// What the parser gives back for a written value: F32 comes back as the F64 of its digits.
fn expected(v: &Value) -> Value {
    match v {
        Value::F32(f) => Value::F64(f.to_string().parse().unwrap()),
        other => other.clone(),
    }
}

proptest! {
    #[test]
    fn parse_never_panics(s in "\\PC{0,120}") {
        if let Ok(pts) = parse(&s, Precision::Seconds, 0) {
            let _ = to_samples(&pts, 0);
        }
    }

    #[test]
    fn parse_never_panics_on_line_protocol_alphabet(s in "[a-c ,=\"\\\\0-9.eiu#tf\r\n-]{0,60}") {
        match parse(&s, Precision::Milliseconds, 0) {
            Ok(pts) => { let _ = to_samples(&pts, 0); }
            Err(LineError { line, column, .. }) => {
                prop_assert!(line >= 1 && column >= 1);
                let l = s.split('\n').nth(line - 1).unwrap();
                prop_assert!(column <= l.chars().count() + 1);
            }
        }
    }

    #[test]
    fn writer_then_parser_round_trips(
        segs in proptest::collection::vec(segment(), 2..=10),
        v in value(),
        ts in any::<i64>(),
    ) {
        let path = segs.join("/");
        prop_assume!(path.len() <= mw_model::MAX_PATH_LEN && segs.iter().all(|s| !s.starts_with('.')));
        let tag = TagPath::new(&path).unwrap();
        let sample = Sample { tag: tag.clone(), value: v.clone(), quality: Quality::Good, source_ts: ts, receive_ts: 1 };
        let mut out = String::new();
        write_sample(&sample, &mut out).unwrap();
        let pts = parse(&out, Precision::Nanoseconds, 0).unwrap();
        let back = to_samples(&pts, 1).unwrap();
        prop_assert_eq!(back.len(), 1);
        prop_assert_eq!(&back[0].tag, &tag);
        prop_assert_eq!(&back[0].value, &expected(&v));
        prop_assert_eq!(back[0].source_ts, ts);
        if let (Value::F32(f), Value::F64(d)) = (&v, &back[0].value) {
            prop_assert_eq!((*d as f32).to_bits(), f.to_bits());
        }
    }
}
