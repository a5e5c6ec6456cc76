//! Interop with pysparkplug 0.6 (tests/peers/sparkplug_codec.py): an NBIRTH with every scalar and
//! array type, a null, a DataSet and a Template, encoded by the peer and decoded here value by
//! value, and encoded here and decoded by the peer; and the peer's `EdgeNode` session (births with
//! aliases, data by name and by alias only, DDEATH, NDEATH) fed through `HostApp`, arriving as the
//! right values and qualities. Needs `MW_PYTHON` pointing at a Python with pysparkplug
//! (scripts/setup-test-env.sh); skips with a message otherwise.

use std::path::PathBuf;
use std::process::Command;

use mw_model::Quality;
use mw_sparkplug::host::{HostAction, HostApp, HostConfig, HostEvent, NodeId, NodeState};
use mw_sparkplug::{DataSet, DataType, Metric, MetricValue as V, Parameter, Payload, Template};

const TS: u64 = 1_700_000_000_000;

fn python() -> Option<String> {
    match std::env::var("MW_PYTHON") {
        Ok(p) => Some(p),
        Err(_) => {
            eprintln!(
                "SKIPPED sparkplug interop: set MW_PYTHON to a Python with pysparkplug (scripts/setup-test-env.sh)"
            );
            None
        }
    }
}

fn peer(python: &str, args: &[&str]) -> String {
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/peers/sparkplug_codec.py");
    let out = Command::new(python)
        .arg(script)
        .args(args)
        .output()
        .expect("run the peer script");
    assert!(
        out.status.success(),
        "peer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("peer prints UTF-8")
}

fn unhex(s: &str) -> Vec<u8> {
    let s = s.trim();
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn m(name: &str, alias: u64, value: V) -> Metric {
    let mut m = Metric::new(name, value);
    m.alias = Some(alias);
    m.timestamp = Some(TS);
    m
}

/// What the peer's `encode` builds, metric for metric.
fn expected() -> Payload {
    let scalars = vec![
        V::Int8(-128),
        V::Int16(-32768),
        V::Int32(i32::MIN),
        V::Int64(i64::MIN),
        V::UInt8(255),
        V::UInt16(65535),
        V::UInt32(u32::MAX),
        V::UInt64(u64::MAX),
        V::Float(1.5),
        V::Double(-2.25e300),
        V::Boolean(true),
        V::String("héllo".into()),
        V::DateTime(TS),
        V::Text("long text".into()),
        V::Uuid("123e4567-e89b-12d3-a456-426614174000".into()),
        V::Bytes(vec![0, 1, 0xff]),
        V::File(b"PK\x03\x04".to_vec()),
        V::Int8Array(vec![-1, 0, 127]),
        V::Int16Array(vec![-300, 300]),
        V::Int32Array(vec![-70000, 70000]),
        V::Int64Array(vec![-(1 << 40), 1 << 40]),
        V::UInt8Array(vec![0, 255]),
        V::UInt16Array(vec![1, 65535]),
        V::UInt32Array(vec![1, u32::MAX]),
        V::UInt64Array(vec![1, u64::MAX]),
        V::FloatArray(vec![0.5, -1.25]),
        V::DoubleArray(vec![1e-300, 3.0]),
        V::BooleanArray(vec![
            true, false, true, true, false, false, false, false, true,
        ]),
        V::StringArray(vec!["a".into(), "".into(), "ü".into()]),
        V::DateTimeArray(vec![TS]),
    ];
    let names = [
        "i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64", "f32", "f64", "bool", "str", "dt",
        "text", "uuid", "bytes", "file", "i8a", "i16a", "i32a", "i64a", "u8a", "u16a", "u32a",
        "u64a", "f32a", "f64a", "boola", "stra", "dta",
    ];
    let mut metrics = vec![m("bdSeq", 0, V::Int64(3))];
    for (i, (n, v)) in names.iter().zip(scalars).enumerate() {
        metrics.push(m(n, i as u64 + 1, v));
    }
    let mut null = Metric::new("null", V::Double(0.0));
    null.value = None;
    null.timestamp = Some(TS);
    metrics.push(null);
    metrics.push(Metric::new(
        "ds",
        V::DataSet(DataSet {
            columns: vec!["id".into(), "temp".into(), "label".into()],
            types: vec![DataType::Int32, DataType::Double, DataType::String],
            rows: vec![
                vec![
                    Some(V::Int32(-1)),
                    Some(V::Double(21.5)),
                    Some(V::String("a".into())),
                ],
                vec![
                    Some(V::Int32(2)),
                    Some(V::Double(-3.0)),
                    Some(V::String("b".into())),
                ],
            ],
        }),
    ));
    metrics.push(Metric::new(
        "motor",
        V::Template(Template {
            version: Some("v1".into()),
            template_ref: Some("Motor".into()),
            is_definition: false,
            metrics: vec![
                Metric::new("rpm", V::UInt16(1500)),
                Metric::new("on", V::Boolean(true)),
            ],
            parameters: vec![
                Parameter {
                    name: Some("maker".into()),
                    datatype: DataType::String,
                    value: Some(V::String("ACME".into())),
                },
                Parameter {
                    name: Some("poles".into()),
                    datatype: DataType::Int32,
                    value: Some(V::Int32(4)),
                },
            ],
        }),
    ));
    Payload {
        timestamp: Some(TS),
        metrics,
        seq: Some(0),
        uuid: None,
        body: None,
    }
}

#[test]
fn pysparkplug_nbirth_decodes_value_by_value() {
    let Some(py) = python() else { return };
    let bytes = unhex(&peer(&py, &["encode"]));
    let got = mw_sparkplug::decode(&bytes).expect("decode the peer's NBIRTH");
    let want = expected();
    assert_eq!(got.timestamp, want.timestamp);
    assert_eq!(got.seq, want.seq);
    assert_eq!(got.metrics.len(), want.metrics.len());
    for (g, w) in got.metrics.iter().zip(&want.metrics) {
        assert_eq!(g, w, "metric {:?}", w.name);
    }
}

#[test]
fn our_nbirth_decodes_in_pysparkplug_as_its_own() {
    let Some(py) = python() else { return };
    let ours = mw_sparkplug::encode(&expected()).expect("encode");
    let theirs = unhex(&peer(&py, &["encode"]));
    let ours_json: serde_json::Value =
        serde_json::from_str(&peer(&py, &["decode", &hex(&ours)])).expect("peer JSON");
    let theirs_json: serde_json::Value =
        serde_json::from_str(&peer(&py, &["decode", &hex(&theirs)])).expect("peer JSON");
    assert_eq!(ours_json, theirs_json);
    // And a few values spelled out, so the test does not depend on the peer's own encoding alone.
    let ms = &ours_json["metrics"];
    assert_eq!(ms["i8"]["value"], -128);
    assert_eq!(ms["u64"]["value"], u64::MAX);
    assert_eq!(
        ms["boola"]["value"],
        serde_json::json!([true, false, true, true, false, false, false, false, true])
    );
    assert_eq!(ms["stra"]["value"], serde_json::json!(["a", "", "ü"]));
    assert_eq!(ms["null"]["null"], true);
    assert_eq!(
        ms["ds"]["value"]["rows"],
        serde_json::json!([[-1, 21.5, "a"], [2, -3.0, "b"]])
    );
    assert_eq!(ms["motor"]["value"]["parameters"]["maker"], "ACME");
    assert_eq!(ms["motor"]["value"]["metrics"]["rpm"], 1500);
    assert_eq!(ms.as_object().map(|o| o.len()), Some(34));
}

/// An update the host made: device, metric, value, timestamp, quality.
type Seen = (Option<String>, String, Option<V>, u64, Quality);

/// One line of the peer's `edge` mode: a will it set or a message it published.
struct Sent {
    kind: String,
    topic: String,
    payload: Vec<u8>,
    connected: bool,
}

fn edge_session(python: &str) -> Vec<Sent> {
    peer(python, &["edge"])
        .lines()
        .map(|l| {
            let j: serde_json::Value = serde_json::from_str(l).expect("peer JSON line");
            let s = |k: &str| j[k].as_str().expect(k).to_owned();
            Sent {
                kind: s("kind"),
                topic: s("topic"),
                payload: unhex(&s("hex")),
                connected: j["connected"].as_bool().expect("connected"),
            }
        })
        .collect()
}

#[test]
fn pysparkplug_edge_node_session_arrives_through_the_host() {
    let Some(py) = python() else { return };
    let sent = edge_session(&py);
    let publishes: Vec<&Sent> = sent.iter().filter(|s| s.kind == "publish").collect();
    let topics: Vec<&str> = publishes.iter().map(|s| s.topic.as_str()).collect();
    assert_eq!(
        topics,
        [
            "spBv1.0/G/NBIRTH/pyedge",
            "spBv1.0/G/DBIRTH/pyedge/pump",
            "spBv1.0/G/NDATA/pyedge",
            "spBv1.0/G/DDATA/pyedge/pump",
            "spBv1.0/G/NDATA/pyedge",
            "spBv1.0/G/DDATA/pyedge/pump",
            "spBv1.0/G/DDEATH/pyedge/pump",
            "spBv1.0/G/NDEATH/pyedge",
        ]
    );
    // The will the broker would hold is the one set before the connection.
    let will = sent
        .iter()
        .find(|s| s.kind == "will" && !s.connected)
        .expect("a will set before connecting");
    assert_eq!(will.topic, "spBv1.0/G/NDEATH/pyedge");

    let mut h = HostApp::new(HostConfig::new("scada"));
    h.step(HostEvent::Connecting { now: 1 });
    h.step(HostEvent::Connected { now: 2 });
    let mut updates = Vec::new();
    for (i, s) in publishes[..7].iter().enumerate() {
        for a in h.step(HostEvent::Message {
            topic: s.topic.clone(),
            payload: s.payload.clone(),
            now: 3,
        }) {
            match a {
                HostAction::Update {
                    device,
                    metric,
                    value,
                    timestamp,
                    quality,
                    ..
                } => updates.push((device, metric, value, timestamp, quality)),
                HostAction::Online { .. } | HostAction::Offline { .. } => {}
                other => panic!("message {i} ({}): unexpected {other:?}", s.topic),
            }
        }
    }
    let good = |d: Option<&str>, m: &str, v: V, ts: u64| {
        (
            d.map(str::to_owned),
            m.to_owned(),
            Some(v),
            ts,
            Quality::Good,
        )
    };
    let pump = Some("pump");
    let (stale_rpm, stale_ratio) = (updates.pop(), updates.pop());
    assert_eq!(
        updates,
        vec![
            // NBIRTH (bdSeq is not a metric of the model)
            good(None, "temp", V::Double(20.5), TS),
            good(None, "count", V::UInt32(7), TS),
            good(None, "label", V::String("a".into()), TS),
            good(None, "on", V::Boolean(false), TS),
            // DBIRTH
            good(pump, "rpm", V::Int16(-5), TS),
            good(pump, "ratio", V::Float(0.25), TS),
            // EdgeNode.update / update_device: names, aliases and data types
            good(None, "temp", V::Double(21.5), TS + 1),
            good(pump, "rpm", V::Int16(-300), TS + 2),
            // by alias only, without data types: resolved through the births
            good(None, "count", V::UInt32(8), TS + 3),
            good(None, "label", V::String("b".into()), TS + 3),
            good(None, "on", V::Boolean(true), TS + 3),
            good(pump, "ratio", V::Float(0.5), TS + 4),
        ]
    );
    // DDEATH: the device's metrics turn stale with their last values, the node's stay good.
    let stale = Quality::Bad("stale: DDEATH".into());
    let strip = |u: Option<Seen>| u.map(|(d, m, v, _, q)| (d, m, v, q));
    assert_eq!(
        strip(stale_ratio),
        Some((
            pump.map(str::to_owned),
            "ratio".into(),
            Some(V::Float(0.5)),
            stale.clone()
        ))
    );
    assert_eq!(
        strip(stale_rpm),
        Some((
            pump.map(str::to_owned),
            "rpm".into(),
            Some(V::Int16(-300)),
            stale
        ))
    );
    let node = NodeId::new("G", "pyedge");
    assert_eq!(
        h.metric(&node, None, "label")
            .map(|m| (&m.value, m.quality.is_good())),
        Some((&Some(V::String("b".into())), true))
    );

    // pysparkplug 0.6 prepares the next session's bdSeq right after its births, so the NDEATH
    // of its clean disconnect carries bdSeq 1 while the NBIRTH said 0: to a host that is an older
    // (or newer) session's will, and the session it knows goes on.
    let ndeath = publishes[7];
    let a = h.step(HostEvent::Message {
        topic: ndeath.topic.clone(),
        payload: ndeath.payload.clone(),
        now: 4,
    });
    assert_eq!(a, vec![]);
    assert_eq!(h.node_state(&node), Some(NodeState::Online));
    // The will in force for the connection (bdSeq 0) ends it: every node metric turns stale.
    let a = h.step(HostEvent::Message {
        topic: will.topic.clone(),
        payload: will.payload.clone(),
        now: 5,
    });
    let stale: Vec<(String, Option<V>)> = a
        .into_iter()
        .filter_map(|a| match a {
            HostAction::Update {
                metric,
                value,
                quality: Quality::Bad(r),
                device: None,
                ..
            } if r == "stale: NDEATH" => Some((metric, value)),
            _ => None,
        })
        .collect();
    assert_eq!(
        stale,
        vec![
            ("count".into(), Some(V::UInt32(8))),
            ("label".into(), Some(V::String("b".into()))),
            ("on".into(), Some(V::Boolean(true))),
            ("temp".into(), Some(V::Double(21.5))),
        ]
    );
    assert_eq!(h.node_state(&node), Some(NodeState::Dead));
}
