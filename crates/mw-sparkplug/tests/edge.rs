//! The edge node state machine, table-tested: each row is (event, state after, actions), the
//! actions written as short strings (publishes decoded: topic, seq, metrics).

use mw_model::Quality;
use mw_sparkplug::edge::{EdgeAction, EdgeEvent, EdgeNode, EdgeState, MetricDef, Reading};
use mw_sparkplug::{Metric, MetricValue as V, Payload, decode, encode};

fn def(name: &str, v: V, writable: bool) -> MetricDef {
    MetricDef {
        name: name.into(),
        datatype: v.datatype(),
        value: Some(v),
        writable,
    }
}

fn node(bd_seq: u8) -> EdgeNode {
    EdgeNode::new(
        "G",
        "E",
        bd_seq,
        vec![
            def("temp", V::Double(20.0), false),
            def("setpoint", V::Double(50.0), true),
        ],
        vec![("pump".into(), vec![def("run", V::Boolean(false), true)])],
    )
}

fn show_value(v: &Option<V>) -> String {
    match v {
        None => "null".into(),
        Some(V::Double(x)) => format!("{x}"),
        Some(V::Boolean(b)) => format!("{b}"),
        Some(V::Int64(i)) => format!("{i}"),
        Some(v) => format!("{v:?}"),
    }
}

fn show_payload(bytes: &[u8]) -> String {
    let p = decode(bytes).expect("our payloads decode");
    let ms: Vec<String> = p
        .metrics
        .iter()
        .map(|m| {
            let id = match (&m.name, m.alias) {
                (Some(n), Some(a)) => format!("{n}#{a}"),
                (Some(n), None) => n.clone(),
                (None, Some(a)) => format!("#{a}"),
                (None, None) => "?".into(),
            };
            match mw_sparkplug::quality::of_metric(m) {
                Some(q) => format!("{id}={}@{q}", show_value(&m.value)),
                None => format!("{id}={}", show_value(&m.value)),
            }
        })
        .collect();
    match p.seq {
        Some(s) => format!("seq={s} [{}]", ms.join(" ")),
        None => format!("[{}]", ms.join(" ")),
    }
}

fn show(a: &EdgeAction) -> String {
    match a {
        EdgeAction::PersistBdSeq(b) => format!("persist bdSeq={b}"),
        EdgeAction::SetWill { topic, payload } => format!("will {topic} {}", show_payload(payload)),
        EdgeAction::Subscribe(t) => format!("sub {t}"),
        EdgeAction::Publish { topic, payload, .. } => {
            format!("pub {topic} {}", show_payload(payload))
        }
        EdgeAction::Write {
            device,
            name,
            value,
        } => format!("write {device:?} {name}={}", show_value(value)),
        EdgeAction::Refused { reason } => format!("refused {reason}"),
    }
}

fn cmd(topic: &str, metrics: Vec<Metric>) -> EdgeEvent {
    let payload = encode(&Payload {
        timestamp: Some(9),
        metrics,
        ..Payload::default()
    })
    .expect("encode");
    EdgeEvent::Message {
        topic: topic.into(),
        payload,
        now: 9,
    }
}

fn upd(device: Option<&str>, values: &[(&str, V)]) -> EdgeEvent {
    EdgeEvent::Update {
        device: device.map(str::to_owned),
        values: values
            .iter()
            .map(|(n, v)| (n.to_string(), Some(v.clone())).into())
            .collect(),
        now: 5,
    }
}

fn run(n: &mut EdgeNode, table: Vec<(EdgeEvent, EdgeState, Vec<&str>)>) {
    for (i, (event, state, want)) in table.into_iter().enumerate() {
        let what = format!("row {i}: {event:?}");
        let got: Vec<String> = n.step(event).iter().map(show).collect();
        assert_eq!(got, want, "{what}");
        assert_eq!(n.state(), state, "{what}");
    }
}

const DBIRTH: &str = "pub spBv1.0/G/DBIRTH/E/pump seq=1 [run#3=false]";

#[test]
fn session_birth_report_by_exception_rebirth_and_death() {
    use EdgeState::*;
    let mut n = node(3);
    run(
        &mut n,
        vec![
            (upd(None, &[("temp", V::Double(21.0))]), Offline, vec![]),
            (
                EdgeEvent::Connecting,
                Connecting,
                vec!["persist bdSeq=4", "will spBv1.0/G/NDEATH/E [bdSeq=3]"],
            ),
            (
                EdgeEvent::Connected { now: 1 },
                Online,
                vec![
                    "sub spBv1.0/G/NCMD/E",
                    "sub spBv1.0/G/DCMD/E/+",
                    "pub spBv1.0/G/NBIRTH/E seq=0 [bdSeq=3 Node Control/Rebirth=false temp#1=21 setpoint#2=50]",
                    DBIRTH,
                ],
            ),
            // unchanged value: nothing published (report by exception)
            (upd(None, &[("temp", V::Double(21.0))]), Online, vec![]),
            (
                upd(
                    None,
                    &[("temp", V::Double(22.0)), ("setpoint", V::Double(50.0))],
                ),
                Online,
                vec!["pub spBv1.0/G/NDATA/E seq=2 [#1=22]"],
            ),
            (
                upd(Some("pump"), &[("run", V::Boolean(true))]),
                Online,
                vec!["pub spBv1.0/G/DDATA/E/pump seq=3 [#3=true]"],
            ),
            (
                upd(None, &[("temp", V::Boolean(true))]),
                Online,
                vec!["refused metric \"temp\" is Double, update is Boolean"],
            ),
            (
                upd(None, &[("nope", V::Double(1.0))]),
                Online,
                vec!["refused update for unknown metric \"nope\""],
            ),
            // rebirth: seq restarts at 0, same bdSeq, current values
            (
                cmd(
                    "spBv1.0/G/NCMD/E",
                    vec![Metric::new("Node Control/Rebirth", V::Boolean(true))],
                ),
                Online,
                vec![
                    "pub spBv1.0/G/NBIRTH/E seq=0 [bdSeq=3 Node Control/Rebirth=false temp#1=22 setpoint#2=50]",
                    "pub spBv1.0/G/DBIRTH/E/pump seq=1 [run#3=true]",
                ],
            ),
            // writes: by name, by alias, refused when read-only or of the wrong type
            (
                cmd(
                    "spBv1.0/G/NCMD/E",
                    vec![Metric::new("setpoint", V::Double(55.0))],
                ),
                Online,
                vec!["write None setpoint=55"],
            ),
            (
                cmd(
                    "spBv1.0/G/DCMD/E/pump",
                    vec![Metric {
                        name: None,
                        alias: Some(3),
                        ..Metric::new("", V::Boolean(true))
                    }],
                ),
                Online,
                vec!["write Some(\"pump\") run=true"],
            ),
            (
                cmd(
                    "spBv1.0/G/NCMD/E",
                    vec![Metric::new("temp", V::Double(1.0))],
                ),
                Online,
                vec!["refused spBv1.0/G/NCMD/E: metric \"temp\" is not writable"],
            ),
            (
                cmd(
                    "spBv1.0/G/NCMD/E",
                    vec![Metric::new("setpoint", V::Boolean(true))],
                ),
                Online,
                vec![
                    "refused spBv1.0/G/NCMD/E: metric \"setpoint\" is Double, command carries Boolean",
                ],
            ),
            (
                cmd("spBv1.0/H/NCMD/E", vec![]),
                Online,
                vec!["refused spBv1.0/H/NCMD/E: not a command for this node"],
            ),
            (
                EdgeEvent::Message {
                    topic: "spBv1.0/G/NCMD/E".into(),
                    payload: vec![0xff],
                    now: 9,
                },
                Online,
                vec![
                    "refused spBv1.0/G/NCMD/E: payload is not a valid Sparkplug B protobuf: failed to decode Protobuf message: invalid varint",
                ],
            ),
            (
                upd(None, &[("temp", V::Double(23.0))]),
                Online,
                vec!["pub spBv1.0/G/NDATA/E seq=2 [#1=23]"],
            ),
            // connection lost: the next session uses the next bdSeq (already persisted)
            (EdgeEvent::ConnectionLost, Offline, vec![]),
            (
                EdgeEvent::Connecting,
                Connecting,
                vec!["persist bdSeq=5", "will spBv1.0/G/NDEATH/E [bdSeq=4]"],
            ),
            (
                EdgeEvent::Connected { now: 2 },
                Online,
                vec![
                    "sub spBv1.0/G/NCMD/E",
                    "sub spBv1.0/G/DCMD/E/+",
                    "pub spBv1.0/G/NBIRTH/E seq=0 [bdSeq=4 Node Control/Rebirth=false temp#1=23 setpoint#2=50]",
                    DBIRTH.replace("false", "true").as_str(),
                ],
            ),
        ],
    );
}

#[test]
fn seq_wraps_after_255_and_bdseq_wraps_after_255() {
    let mut n = node(255);
    assert_eq!(
        n.step(EdgeEvent::Connecting).first(),
        Some(&EdgeAction::PersistBdSeq(0))
    );
    n.step(EdgeEvent::Connected { now: 0 });
    let mut seqs = Vec::new();
    for i in 0..300 {
        for a in n.step(upd(None, &[("temp", V::Double(f64::from(i)))])) {
            if let EdgeAction::Publish { payload, .. } = a {
                seqs.push(decode(&payload).expect("decode").seq.expect("seq"));
            }
        }
    }
    // NBIRTH 0, DBIRTH 1, then NDATA from 2, wrapping 255 -> 0
    assert_eq!(seqs[0], 2);
    assert_eq!(seqs[253], 255);
    assert_eq!(seqs[254], 0);
    n.step(EdgeEvent::ConnectionLost);
    assert_eq!(n.bd_seq(), 0);
}

#[test]
fn connected_without_connecting_is_refused() {
    let mut n = node(0);
    let a = n.step(EdgeEvent::Connected { now: 0 });
    assert!(matches!(&a[..], [EdgeAction::Refused { .. }]), "{a:?}");
    assert_eq!(n.state(), EdgeState::Offline);
}

fn reading(name: &str, v: V, q: Quality) -> Reading {
    Reading {
        name: name.into(),
        value: Some(v),
        quality: q,
        timestamp: None,
    }
}

#[test]
fn bad_readings_go_out_as_null_with_their_quality_and_good_ones_say_so_once() {
    use EdgeState::*;
    let mut n = node(0);
    n.step(EdgeEvent::Connecting);
    n.step(EdgeEvent::Connected { now: 1 });
    let q = |name: &str, v: V, q: Quality| EdgeEvent::Update {
        device: None,
        values: vec![reading(name, v, q)],
        now: 5,
    };
    run(
        &mut n,
        vec![
            // a bad sample's value (NaN, or a stale last value) is never published
            (
                q("temp", V::Double(f64::NAN), Quality::Bad("timeout".into())),
                Online,
                vec!["pub spBv1.0/G/NDATA/E seq=2 [#1=null@0]"],
            ),
            // still bad, another value: nothing changed on the wire
            (
                q("temp", V::Double(3.0), Quality::Bad("timeout".into())),
                Online,
                vec![],
            ),
            (
                q("temp", V::Double(3.0), Quality::Bad("stale: NDEATH".into())),
                Online,
                vec!["pub spBv1.0/G/NDATA/E seq=3 [#1=null@500]"],
            ),
            // good again: the value, and Quality=192 once so a consumer clears the bad state
            (
                q("temp", V::Double(22.0), Quality::Good),
                Online,
                vec!["pub spBv1.0/G/NDATA/E seq=4 [#1=22@192]"],
            ),
            (
                q("temp", V::Double(23.0), Quality::Good),
                Online,
                vec!["pub spBv1.0/G/NDATA/E seq=5 [#1=23]"],
            ),
            // uncertain keeps its value
            (
                q(
                    "temp",
                    V::Double(23.0),
                    Quality::Uncertain("warm-up".into()),
                ),
                Online,
                vec!["pub spBv1.0/G/NDATA/E seq=6 [#1=23@64]"],
            ),
            // a rebirth carries the quality of what is not good
            (
                cmd(
                    "spBv1.0/G/NCMD/E",
                    vec![Metric::new("Node Control/Rebirth", V::Boolean(true))],
                ),
                Online,
                vec![
                    "pub spBv1.0/G/NBIRTH/E seq=0 [bdSeq=0 Node Control/Rebirth=false temp#1=23@64 setpoint#2=50]",
                    "pub spBv1.0/G/DBIRTH/E/pump seq=1 [run#3=false]",
                ],
            ),
        ],
    );
}

fn define(device: Option<&str>, defs: Vec<MetricDef>) -> EdgeEvent {
    EdgeEvent::Define {
        device: device.map(str::to_owned),
        metrics: defs,
        now: 7,
    }
}

#[test]
fn new_metrics_are_born_not_sent_as_data() {
    use EdgeState::*;
    let mut n = node(0);
    run(
        &mut n,
        vec![
            // offline: remembered for the first birth
            (
                define(Some("tank"), vec![def("level", V::Float(1.5), false)]),
                Offline,
                vec![],
            ),
            (
                EdgeEvent::Connecting,
                Connecting,
                vec!["persist bdSeq=1", "will spBv1.0/G/NDEATH/E [bdSeq=0]"],
            ),
            (
                EdgeEvent::Connected { now: 1 },
                Online,
                vec![
                    "sub spBv1.0/G/NCMD/E",
                    "sub spBv1.0/G/DCMD/E/+",
                    "pub spBv1.0/G/NBIRTH/E seq=0 [bdSeq=0 Node Control/Rebirth=false temp#1=20 setpoint#2=50]",
                    "pub spBv1.0/G/DBIRTH/E/pump seq=1 [run#3=false]",
                    "pub spBv1.0/G/DBIRTH/E/tank seq=2 [level#4=Float(1.5)]",
                ],
            ),
            // a new metric of a device: that device's DBIRTH with every metric
            (
                define(Some("pump"), vec![def("speed", V::Double(900.0), false)]),
                Online,
                vec!["pub spBv1.0/G/DBIRTH/E/pump seq=3 [run#3=false speed#5=900]"],
            ),
            // a known metric, same type: nothing to announce
            (
                define(Some("pump"), vec![def("speed", V::Double(1.0), false)]),
                Online,
                vec![],
            ),
            // a new device
            (
                define(Some("fan"), vec![def("on", V::Boolean(true), false)]),
                Online,
                vec!["pub spBv1.0/G/DBIRTH/E/fan seq=4 [on#6=true]"],
            ),
            // another data type: reborn with it, same alias
            (
                define(Some("fan"), vec![def("on", V::Int64(2), false)]),
                Online,
                vec!["pub spBv1.0/G/DBIRTH/E/fan seq=5 [on#6=2]"],
            ),
            (
                upd(Some("pump"), &[("speed", V::Double(950.0))]),
                Online,
                vec!["pub spBv1.0/G/DDATA/E/pump seq=6 [#5=950]"],
            ),
            // a node metric: NBIRTH defines those, so everything is born again
            (
                define(None, vec![def("uptime", V::Int64(0), false)]),
                Online,
                vec![
                    "pub spBv1.0/G/NBIRTH/E seq=0 [bdSeq=0 Node Control/Rebirth=false temp#1=20 setpoint#2=50 uptime#7=0]",
                    "pub spBv1.0/G/DBIRTH/E/fan seq=1 [on#6=2]",
                    "pub spBv1.0/G/DBIRTH/E/pump seq=2 [run#3=false speed#5=950]",
                    "pub spBv1.0/G/DBIRTH/E/tank seq=3 [level#4=Float(1.5)]",
                ],
            ),
        ],
    );
    assert_eq!(n.metric_count(), 7);
    assert_eq!(
        n.datatype(Some("fan"), "on"),
        Some(mw_sparkplug::DataType::Int64)
    );
}

#[test]
fn stopping_publishes_the_sessions_ndeath_and_the_next_session_takes_the_next_bdseq() {
    use EdgeState::*;
    let mut n = node(7);
    run(
        &mut n,
        vec![
            (EdgeEvent::Stopping, Offline, vec![]),
            (
                EdgeEvent::Connecting,
                Connecting,
                vec!["persist bdSeq=8", "will spBv1.0/G/NDEATH/E [bdSeq=7]"],
            ),
            (
                EdgeEvent::Connected { now: 1 },
                Online,
                vec![
                    "sub spBv1.0/G/NCMD/E",
                    "sub spBv1.0/G/DCMD/E/+",
                    "pub spBv1.0/G/NBIRTH/E seq=0 [bdSeq=7 Node Control/Rebirth=false temp#1=20 setpoint#2=50]",
                    DBIRTH,
                ],
            ),
            (
                EdgeEvent::Stopping,
                Offline,
                vec!["pub spBv1.0/G/NDEATH/E [bdSeq=7]"],
            ),
            (EdgeEvent::ConnectionLost, Offline, vec![]),
            (
                EdgeEvent::Connecting,
                Connecting,
                vec!["persist bdSeq=9", "will spBv1.0/G/NDEATH/E [bdSeq=8]"],
            ),
        ],
    );
}

#[test]
fn a_device_whose_every_metric_is_bad_is_announced_dead_then_born_again() {
    use EdgeState::*;
    let mut n = node(0);
    n.step(EdgeEvent::Connecting);
    n.step(EdgeEvent::Connected { now: 1 });
    let pump = |v: V, q: Quality| EdgeEvent::Update {
        device: Some("pump".into()),
        values: vec![reading("run", v, q)],
        now: 5,
    };
    let timeout = || Quality::Bad("timeout".into());
    run(
        &mut n,
        vec![
            // the device's source cannot read it: DDEATH, not DDATA with nulls
            (
                pump(V::Boolean(false), timeout()),
                Online,
                vec!["pub spBv1.0/G/DDEATH/E/pump seq=2 []"],
            ),
            // still dead: nothing, whatever the (unusable) value
            (
                pump(V::Boolean(true), Quality::Bad("stale: NDEATH".into())),
                Online,
                vec![],
            ),
            // a usable reading again: the device is born again with every current value
            (
                pump(V::Boolean(true), Quality::Good),
                Online,
                vec!["pub spBv1.0/G/DBIRTH/E/pump seq=3 [run#3=true]"],
            ),
            // alive: data by exception as before
            (
                pump(V::Boolean(false), Quality::Good),
                Online,
                vec!["pub spBv1.0/G/DDATA/E/pump seq=4 [#3=false]"],
            ),
            (
                pump(V::Boolean(false), timeout()),
                Online,
                vec!["pub spBv1.0/G/DDEATH/E/pump seq=5 []"],
            ),
            // a rebirth while it is dead: the model, then that it is dead
            (
                cmd(
                    "spBv1.0/G/NCMD/E",
                    vec![Metric::new("Node Control/Rebirth", V::Boolean(true))],
                ),
                Online,
                vec![
                    "pub spBv1.0/G/NBIRTH/E seq=0 [bdSeq=0 Node Control/Rebirth=false temp#1=20 setpoint#2=50]",
                    "pub spBv1.0/G/DBIRTH/E/pump seq=1 [run#3=null@0]",
                    "pub spBv1.0/G/DDEATH/E/pump seq=2 []",
                ],
            ),
        ],
    );
    assert!(n.is_dead("pump"));
    // the node's own metrics have no death of their own: a bad node metric is NDATA null
    let a: Vec<String> = n
        .step(EdgeEvent::Update {
            device: None,
            values: vec![reading("temp", V::Double(1.0), timeout())],
            now: 6,
        })
        .iter()
        .map(show)
        .collect();
    assert_eq!(a, vec!["pub spBv1.0/G/NDATA/E seq=3 [#1=null@0]"]);
}
