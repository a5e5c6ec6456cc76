//! Lines written by the Python `influxdb-client` library (`Point(...).to_line_protocol()`), with
//! tricky escapes, parse to what that library meant. Needs `MW_PYTHON` pointing at a Python with
//! `influxdb-client` (scripts/setup-test-env.sh installs it into the venv); skipped otherwise.

use std::process::Command;

use mw_lineproto::{FieldValue, Precision, parse};

const SCRIPT: &str = r#"
from influxdb_client import Point, WritePrecision
pts = [
    Point("my meas,ure").tag("t k=1", "v, =2").tag("plain", "a\\b").field("f=, x", 'say "hi" \\ ok').field("n", 3).field("x", -1.5).field("b", True).time(5, WritePrecision.S),
    Point("truck").tag("name", "t1").tag("fleet", "North").field("velocity", 3.25).time(1556813561098000000, WritePrecision.NS),
]
for p in pts:
    print(p.to_line_protocol())
"#;

#[test]
fn influxdb_client_lines_parse_as_meant() {
    let Ok(python) = std::env::var("MW_PYTHON") else {
        eprintln!(
            "SKIPPED influxdb_client_lines_parse_as_meant: set MW_PYTHON to a Python with influxdb-client (scripts/setup-test-env.sh)"
        );
        return;
    };
    let out = Command::new(&python)
        .arg("-c")
        .arg(SCRIPT)
        .output()
        .expect("run MW_PYTHON");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");

    let p = &parse(lines[0], Precision::Seconds, 0).unwrap_or_else(|e| panic!("{text}: {e}"))[0];
    assert_eq!(p.measurement, "my meas,ure", "{text}");
    let tags: Vec<(&str, &str)> = p.tags.iter().map(|t| (&*t.key, &*t.value)).collect();
    assert_eq!(tags, [("plain", r"a\b"), ("t k=1", "v, =2")], "{text}");
    let fields: Vec<(&str, FieldValue<'_>)> = p
        .fields
        .iter()
        .map(|f| (&*f.key, f.value.clone()))
        .collect();
    let mut fields = fields;
    fields.sort_by(|a, b| a.0.cmp(b.0));
    assert_eq!(
        fields,
        [
            ("b", FieldValue::Boolean(true)),
            ("f=, x", FieldValue::String(r#"say "hi" \ ok"#.into())),
            ("n", FieldValue::Integer(3)),
            ("x", FieldValue::Float(-1.5)),
        ],
        "{text}"
    );
    assert_eq!(p.timestamp_ns, 5_000_000_000);

    let p = &parse(lines[1], Precision::Nanoseconds, 0).unwrap()[0];
    let s = mw_lineproto::to_samples(std::slice::from_ref(p), 0).unwrap();
    assert_eq!(s[0].tag.as_str(), "truck/North/t1/velocity");
    assert_eq!(s[0].value, mw_model::Value::F64(3.25));
    assert_eq!(s[0].source_ts, 1556813561098000000);
}
