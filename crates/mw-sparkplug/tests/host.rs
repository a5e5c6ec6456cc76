//! The host application state machine, table-tested: each row is (event, actions), the actions
//! written as short strings (publishes decoded: topic and metrics; updates as
//! `node[/device] name=value @timestamp quality`). The model is checked after the tables, and the
//! edge node state machine of this crate is the peer of a round trip.

use mw_model::Quality;
use mw_sparkplug::edge::{EdgeAction, EdgeEvent, EdgeNode, MetricDef};
use mw_sparkplug::host::{
    HostAction, HostApp, HostConfig, HostEvent, HostState, NodeId, NodeState, WriteError,
};
use mw_sparkplug::{DataType, Metric, MetricValue as V, Payload, decode, encode};

fn show_value(v: &Option<V>) -> String {
    match v {
        None => "null".into(),
        Some(V::Double(x)) => format!("{x}"),
        Some(V::Boolean(b)) => format!("{b}"),
        Some(V::Int64(i)) => format!("{i}"),
        Some(V::Int32(i)) => format!("{i}"),
        Some(v) => format!("{v:?}"),
    }
}

fn show_metrics(bytes: &[u8]) -> String {
    let p = decode(bytes).expect("the host's payloads decode");
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
            format!("{id}={}", show_value(&m.value))
        })
        .collect();
    format!("[{}]", ms.join(" "))
}

fn show_quality(q: &Quality) -> String {
    match q {
        Quality::Good => "good".into(),
        q => format!("{}({})", q.status(), q.reason().unwrap_or("")),
    }
}

fn show(a: &HostAction) -> String {
    let flags =
        |qos: &u8, retain: &bool| format!("q{qos}{}", if *retain { " retained" } else { "" });
    match a {
        HostAction::SetWill {
            topic,
            payload,
            qos,
            retain,
        } => format!(
            "will {topic} {} {}",
            String::from_utf8_lossy(payload),
            flags(qos, retain)
        ),
        HostAction::Subscribe { filter, qos } => format!("sub {filter} q{qos}"),
        HostAction::Publish {
            topic,
            payload,
            qos,
            retain,
        } if topic.contains("/STATE/") => format!(
            "pub {topic} {} {}",
            String::from_utf8_lossy(payload),
            flags(qos, retain)
        ),
        HostAction::Publish {
            topic,
            payload,
            qos,
            retain,
        } => format!(
            "pub {topic} {} {}",
            show_metrics(payload),
            flags(qos, retain)
        ),
        HostAction::Online { node, device } => match device {
            None => format!("online {node}"),
            Some(d) => format!("online {node}/{d}"),
        },
        HostAction::Offline {
            node,
            device,
            reason,
        } => match device {
            None => format!("offline {node} ({reason})"),
            Some(d) => format!("offline {node}/{d} ({reason})"),
        },
        HostAction::Update {
            node,
            device,
            metric,
            value,
            timestamp,
            quality,
        } => {
            let at = match device {
                None => node.to_string(),
                Some(d) => format!("{node}/{d}"),
            };
            format!(
                "{at} {metric}={} @{timestamp} {}",
                show_value(value),
                show_quality(quality)
            )
        }
        HostAction::Error(e) => format!("error {e}"),
    }
}

fn run(h: &mut HostApp, table: Vec<(HostEvent, Vec<&str>)>) {
    for (i, (event, want)) in table.into_iter().enumerate() {
        let what = format!("row {i}: {event:?}");
        let got: Vec<String> = h.step(event).iter().map(show).collect();
        assert_eq!(got, want, "{what}");
    }
}

/// A metric as an edge node puts it in a birth: name, alias, value.
fn bm(name: &str, alias: u64, v: V) -> Metric {
    let mut m = Metric::new(name, v);
    m.alias = Some(alias);
    m
}

/// A metric as it travels in DATA: alias only.
fn am(alias: u64, v: V) -> Metric {
    Metric {
        name: None,
        ..bm("", alias, v)
    }
}

fn msg(topic: &str, seq: Option<u64>, metrics: Vec<Metric>, now: u64) -> HostEvent {
    HostEvent::Message {
        topic: topic.into(),
        payload: encode(&Payload {
            timestamp: Some(now),
            metrics,
            seq,
            ..Payload::default()
        })
        .expect("encode"),
        now,
    }
}

fn nbirth(edge: &str, bd_seq: i64, now: u64) -> HostEvent {
    msg(
        &format!("spBv1.0/G/NBIRTH/{edge}"),
        Some(0),
        vec![
            Metric::new("bdSeq", V::Int64(bd_seq)),
            bm("temp", 1, V::Double(20.5)),
            bm("on", 2, V::Boolean(false)),
        ],
        now,
    )
}

fn ndeath(edge: &str, bd_seq: i64, now: u64) -> HostEvent {
    msg(
        &format!("spBv1.0/G/NDEATH/{edge}"),
        None,
        vec![Metric::new("bdSeq", V::Int64(bd_seq))],
        now,
    )
}

fn ndata(edge: &str, seq: u64, metrics: Vec<Metric>, now: u64) -> HostEvent {
    msg(&format!("spBv1.0/G/NDATA/{edge}"), Some(seq), metrics, now)
}

fn dbirth(device: &str, seq: u64, alias: u64, now: u64) -> HostEvent {
    msg(
        &format!("spBv1.0/G/DBIRTH/E/{device}"),
        Some(seq),
        vec![bm("speed", alias, V::Int32(0))],
        now,
    )
}

/// A host that is connected (will at 1, online at 2) to every group.
fn online_host(config: HostConfig) -> HostApp {
    let mut h = HostApp::new(config);
    h.step(HostEvent::Connecting { now: 1 });
    h.step(HostEvent::Connected { now: 2 });
    assert_eq!(h.state(), HostState::Online);
    h
}

fn host() -> HostApp {
    online_host(HostConfig::new("scada"))
}

fn e() -> NodeId {
    NodeId::new("G", "E")
}

const REBIRTH_E: &str = "pub spBv1.0/G/NCMD/E [Node Control/Rebirth=true] q0";

fn birth_rows(now: u64) -> Vec<&'static str> {
    match now {
        10 => vec![
            "online G/E",
            "G/E temp=20.5 @10 good",
            "G/E on=false @10 good",
        ],
        _ => unreachable!("birth_rows is written for now = 10"),
    }
}

#[test]
fn connect_hands_out_the_will_subscribes_then_publishes_online_state_with_the_wills_timestamp() {
    let mut config = HostConfig::new("scada");
    config.groups = vec!["G".into(), "H".into()];
    let mut h = HostApp::new(config);
    run(
        &mut h,
        vec![
            (
                HostEvent::Connected { now: 5 },
                vec![
                    "error connected without Connecting first: no will with a STATE timestamp was set",
                ],
            ),
            (
                HostEvent::Connecting { now: 1000 },
                vec![r#"will spBv1.0/STATE/scada {"online":false,"timestamp":1000} q1 retained"#],
            ),
            (
                HostEvent::Connected { now: 1040 },
                vec![
                    "sub spBv1.0/G/# q1",
                    "sub spBv1.0/H/# q1",
                    "sub spBv1.0/STATE/scada q1",
                    r#"pub spBv1.0/STATE/scada {"online":true,"timestamp":1000} q1 retained"#,
                ],
            ),
            // Another session's will for our host id: say again that we are online.
            (
                HostEvent::Message {
                    topic: "spBv1.0/STATE/scada".into(),
                    payload: br#"{"online":false,"timestamp":900}"#.to_vec(),
                    now: 1100,
                },
                vec![r#"pub spBv1.0/STATE/scada {"online":true,"timestamp":1000} q1 retained"#],
            ),
            // Our own online STATE echoed back, and another host's STATE: nothing to do.
            (
                HostEvent::Message {
                    topic: "spBv1.0/STATE/scada".into(),
                    payload: br#"{"online":true,"timestamp":1000}"#.to_vec(),
                    now: 1100,
                },
                vec![],
            ),
            (
                HostEvent::Message {
                    topic: "spBv1.0/STATE/other".into(),
                    payload: br#"{"online":false,"timestamp":1}"#.to_vec(),
                    now: 1100,
                },
                vec![],
            ),
            // A group we did not configure is not ours to model.
            (nbirth("E", 0, 10).with_topic("spBv1.0/X/NBIRTH/E"), vec![]),
            (
                HostEvent::Message {
                    topic: "spBv1.0/G/NFOO/E".into(),
                    payload: vec![],
                    now: 1100,
                },
                vec![
                    "error topic \"spBv1.0/G/NFOO/E\": unknown message type \"NFOO\" (expected NBIRTH, NDATA, NDEATH, NCMD, DBIRTH, DDATA, DDEATH, DCMD or STATE)",
                ],
            ),
        ],
    );
    assert_eq!(h.node_state(&NodeId::new("X", "E")), None);
    // A new connection: a new will timestamp, and the online STATE carries that one.
    h.step(HostEvent::ConnectionLost { now: 2000 });
    assert_eq!(h.state(), HostState::Offline);
    let a: Vec<String> = h
        .step(HostEvent::Connecting { now: 3000 })
        .iter()
        .chain(&h.step(HostEvent::Connected { now: 3500 }))
        .map(show)
        .collect();
    assert_eq!(
        a.first().map(String::as_str),
        Some(r#"will spBv1.0/STATE/scada {"online":false,"timestamp":3000} q1 retained"#)
    );
    assert_eq!(
        a.last().map(String::as_str),
        Some(r#"pub spBv1.0/STATE/scada {"online":true,"timestamp":3000} q1 retained"#)
    );
}

trait WithTopic {
    fn with_topic(self, topic: &str) -> Self;
}

impl WithTopic for HostEvent {
    fn with_topic(self, t: &str) -> HostEvent {
        match self {
            HostEvent::Message { payload, now, .. } => HostEvent::Message {
                topic: t.into(),
                payload,
                now,
            },
            other => other,
        }
    }
}

#[test]
fn all_groups_are_subscribed_when_none_is_configured() {
    let mut h = HostApp::new(HostConfig::new("scada"));
    h.step(HostEvent::Connecting { now: 7 });
    let a: Vec<String> = h
        .step(HostEvent::Connected { now: 8 })
        .iter()
        .map(show)
        .collect();
    assert_eq!(
        a,
        [
            "sub spBv1.0/# q1",
            "sub spBv1.0/STATE/scada q1",
            r#"pub spBv1.0/STATE/scada {"online":true,"timestamp":7} q1 retained"#,
        ]
    );
}

#[test]
fn birth_then_data_by_alias_and_name_then_death_stales_every_metric() {
    let mut h = host();
    let mut rows = vec![(nbirth("E", 3, 10), birth_rows(10))];
    rows.extend([
        (
            dbirth("pump", 1, 3, 11),
            vec!["online G/E/pump", "G/E/pump speed=0 @11 good"],
        ),
        (
            ndata("E", 2, vec![am(1, V::Double(21.0))], 12),
            vec!["G/E temp=21 @12 good"],
        ),
        // by name (no alias), and a null
        (
            ndata(
                "E",
                3,
                vec![
                    Metric::new("on", V::Boolean(true)),
                    Metric {
                        value: None,
                        ..am(1, V::Double(0.0))
                    },
                ],
                13,
            ),
            vec!["G/E on=true @13 good", "G/E temp=null @13 good"],
        ),
        (
            msg(
                "spBv1.0/G/DDATA/E/pump",
                Some(4),
                vec![am(3, V::Int32(1500))],
                14,
            ),
            vec!["G/E/pump speed=1500 @14 good"],
        ),
        // the death carries the birth's bdSeq: everything is stale at the death's timestamp
        (
            ndeath("E", 3, 20),
            vec![
                "offline G/E (stale: NDEATH)",
                "G/E on=true @20 bad(stale: NDEATH)",
                "G/E temp=null @20 bad(stale: NDEATH)",
                "offline G/E/pump (stale: NDEATH)",
                "G/E/pump speed=1500 @20 bad(stale: NDEATH)",
            ],
        ),
        // a second copy of the death changes nothing
        (ndeath("E", 3, 21), vec![]),
    ]);
    run(&mut h, rows);
    assert_eq!(h.node_state(&e()), Some(NodeState::Dead));
    let speed = h.metric(&e(), Some("pump"), "speed").expect("speed");
    assert_eq!(speed.value, Some(V::Int32(1500)));
    assert_eq!(speed.datatype, DataType::Int32);
    assert_eq!(speed.alias, Some(3));
    assert_eq!(speed.quality, Quality::Bad("stale: NDEATH".into()));
    assert!(
        h.metric(&e(), None, "bdSeq").is_none(),
        "bdSeq is not a metric of the model"
    );
    // And a new session brings it all back.
    let a: Vec<String> = h.step(nbirth("E", 4, 10)).iter().map(show).collect();
    assert_eq!(a, birth_rows(10));
    assert_eq!(h.node_state(&e()), Some(NodeState::Online));
}

#[test]
fn ndeath_with_another_sessions_bdseq_is_ignored() {
    let mut h = host();
    let mut rows = vec![(nbirth("E", 4, 10), birth_rows(10))];
    rows.extend([
        // the will of the session before (bdSeq 3) arrives late: this session lives on
        (ndeath("E", 3, 11), vec![]),
        (
            ndata("E", 1, vec![am(1, V::Double(1.0))], 12),
            vec!["G/E temp=1 @12 good"],
        ),
        // a death without bdSeq cannot be matched either
        (msg("spBv1.0/G/NDEATH/E", None, vec![], 13), vec![]),
        (
            ndeath("E", 4, 14),
            vec![
                "offline G/E (stale: NDEATH)",
                "G/E on=false @14 bad(stale: NDEATH)",
                "G/E temp=1 @14 bad(stale: NDEATH)",
            ],
        ),
    ]);
    run(&mut h, rows);
}

#[test]
fn seq_gap_asks_for_a_rebirth_and_resynchronises() {
    let mut h = host();
    let mut rows = vec![(nbirth("E", 0, 10), birth_rows(10))];
    rows.extend([
        (
            ndata("E", 1, vec![am(1, V::Double(1.0))], 11),
            vec!["G/E temp=1 @11 good"],
        ),
        // seq 2 was lost: the data is still applied, and a rebirth is requested
        (
            ndata("E", 3, vec![am(1, V::Double(3.0))], 12),
            vec![
                "error spBv1.0/G/NDATA/E: seq Some(3) where 2 was expected",
                "G/E temp=3 @12 good",
                REBIRTH_E,
            ],
        ),
        (
            ndata("E", 4, vec![am(1, V::Double(4.0))], 13),
            vec!["G/E temp=4 @13 good"],
        ),
        // a DATA without seq is a gap too
        (
            ndata("E", 5, vec![], 14).without_seq(),
            vec!["error spBv1.0/G/NDATA/E: seq None where 5 was expected"],
        ),
        // a repeated message is a gap (duplicate)
        (
            ndata("E", 4, vec![am(1, V::Double(4.0))], 15),
            vec![
                "error spBv1.0/G/NDATA/E: seq Some(4) where 5 was expected",
                "G/E temp=4 @15 good",
            ],
        ),
    ]);
    run(&mut h, rows);
}

trait WithoutSeq {
    fn without_seq(self) -> Self;
}

impl WithoutSeq for HostEvent {
    fn without_seq(self) -> HostEvent {
        match self {
            HostEvent::Message {
                topic,
                payload,
                now,
            } => {
                let mut p = decode(&payload).expect("decode");
                p.seq = None;
                HostEvent::Message {
                    topic,
                    payload: encode(&p).expect("encode"),
                    now,
                }
            }
            other => other,
        }
    }
}

#[test]
fn seq_wraps_from_255_to_0_without_a_gap() {
    let mut h = host();
    h.step(nbirth("E", 0, 10));
    for seq in 1..=255u64 {
        let a = h.step(ndata("E", seq, vec![am(1, V::Double(seq as f64))], 10));
        assert_eq!(a.len(), 1, "seq {seq}: {a:?}");
    }
    run(
        &mut h,
        vec![
            (
                ndata("E", 0, vec![am(1, V::Double(0.0))], 11),
                vec!["G/E temp=0 @11 good"],
            ),
            (
                ndata("E", 1, vec![am(1, V::Double(1.0))], 12),
                vec!["G/E temp=1 @12 good"],
            ),
            // 256 is not a seq at all
            (
                ndata("E", 256, vec![], 13),
                vec![
                    "error spBv1.0/G/NDATA/E: seq Some(256) where 2 was expected",
                    REBIRTH_E,
                ],
            ),
        ],
    );
}

#[test]
fn data_before_birth_asks_for_a_rebirth() {
    // The host started after the node: it sees data first.
    let mut h = host();
    run(
        &mut h,
        vec![
            (
                ndata("E", 17, vec![am(1, V::Double(1.0))], 10),
                vec![
                    "error spBv1.0/G/NDATA/E: no NBIRTH seen for this node (or it is dead or stale); message dropped",
                    REBIRTH_E,
                ],
            ),
            (nbirth("E", 2, 10), birth_rows(10)),
            (
                ndata("E", 1, vec![am(1, V::Double(2.0))], 21),
                vec!["G/E temp=2 @21 good"],
            ),
            // DDATA of a device without DBIRTH
            (
                msg(
                    "spBv1.0/G/DDATA/E/pump",
                    Some(2),
                    vec![am(3, V::Int32(1))],
                    10_000,
                ),
                vec![
                    "error spBv1.0/G/DDATA/E/pump: no DBIRTH seen for this device (or it is dead); message dropped",
                    "pub spBv1.0/G/NCMD/E [Node Control/Rebirth=true] q0",
                ],
            ),
            // after its death, the node's data is out of order too
            (
                ndeath("E", 2, 20_000),
                vec![
                    "offline G/E (stale: NDEATH)",
                    "G/E on=false @20000 bad(stale: NDEATH)",
                    "G/E temp=2 @20000 bad(stale: NDEATH)",
                ],
            ),
            (
                ndata("E", 3, vec![am(1, V::Double(3.0))], 20_001),
                vec![
                    "error spBv1.0/G/NDATA/E: no NBIRTH seen for this node (or it is dead or stale); message dropped",
                    REBIRTH_E,
                ],
            ),
        ],
    );
    assert_eq!(
        h.metric(&e(), None, "temp").and_then(|m| m.value.clone()),
        Some(V::Double(2.0))
    );
}

#[test]
fn unknown_alias_or_name_or_type_asks_for_a_rebirth() {
    let mut h = host();
    let mut rows = vec![(nbirth("E", 0, 10), birth_rows(10))];
    rows.extend([
        (
            ndata(
                "E",
                1,
                vec![am(99, V::Double(1.0)), am(1, V::Double(5.0))],
                11,
            ),
            vec![
                "error spBv1.0/G/NDATA/E: metric None (alias Some(99)) is not in the birth certificate",
                "G/E temp=5 @11 good",
                REBIRTH_E,
            ],
        ),
        (
            ndata("E", 2, vec![Metric::new("nope", V::Double(1.0))], 10_000),
            vec![
                "error spBv1.0/G/NDATA/E: metric Some(\"nope\") (alias None) is not in the birth certificate",
                REBIRTH_E,
            ],
        ),
        (
            ndata("E", 3, vec![am(1, V::Boolean(true))], 20_000),
            vec![
                "error spBv1.0/G/NDATA/E: metric \"temp\" was born Double but carries Boolean",
                REBIRTH_E,
            ],
        ),
    ]);
    run(&mut h, rows);
    assert_eq!(
        h.metric(&e(), None, "temp").and_then(|m| m.value.clone()),
        Some(V::Double(5.0))
    );
}

#[test]
fn data_without_datatype_takes_the_births_and_unknown_aliases_then_fail_to_decode() {
    use mw_sparkplug::pb;
    use prost::Message;
    let raw = |alias: u64, v: f64| pb::Payload {
        timestamp: Some(11),
        seq: Some(1),
        metrics: vec![pb::payload::Metric {
            alias: Some(alias),
            value: Some(pb::payload::metric::Value::DoubleValue(v)),
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut h = host();
    h.step(nbirth("E", 0, 10));
    run(
        &mut h,
        vec![
            (
                HostEvent::Message {
                    topic: "spBv1.0/G/NDATA/E".into(),
                    payload: raw(1, 7.5).encode_to_vec(),
                    now: 11,
                },
                vec!["G/E temp=7.5 @11 good"],
            ),
            (
                HostEvent::Message {
                    topic: "spBv1.0/G/NDATA/E".into(),
                    payload: raw(42, 1.0).encode_to_vec(),
                    now: 12,
                },
                vec![
                    "error spBv1.0/G/NDATA/E: metrics[0]: metric has no data type and none is known from the birth certificate",
                    REBIRTH_E,
                ],
            ),
        ],
    );
}

#[test]
fn rebirth_requests_are_rate_limited_per_node() {
    let mut config = HostConfig::new("scada");
    config.rebirth_interval_ms = 1000;
    let mut h = online_host(config);
    let no_birth = |edge: &str| {
        format!(
            "error spBv1.0/G/NDATA/{edge}: no NBIRTH seen for this node (or it is dead or stale); message dropped"
        )
    };
    let (e_err, f_err) = (no_birth("E"), no_birth("F"));
    let f_rebirth = REBIRTH_E.replace("/E ", "/F ");
    run(
        &mut h,
        vec![
            (ndata("E", 1, vec![], 5000), vec![&e_err, REBIRTH_E]),
            (ndata("E", 2, vec![], 5001), vec![&e_err]),
            (ndata("E", 3, vec![], 5999), vec![&e_err]),
            // another node has its own limit
            (ndata("F", 3, vec![], 5999), vec![&f_err, &f_rebirth]),
            (ndata("E", 4, vec![], 6000), vec![&e_err, REBIRTH_E]),
            (ndata("E", 5, vec![], 6500), vec![&e_err]),
            // a clock that went back does not silence a node for good
            (ndata("E", 6, vec![], 100), vec![&e_err, REBIRTH_E]),
        ],
    );
}

#[test]
fn the_default_rebirth_interval_is_5_s() {
    let mut h = host();
    let count = |h: &mut HostApp, now| {
        h.step(ndata("E", 1, vec![], now))
            .iter()
            .filter(|a| matches!(a, HostAction::Publish { .. }))
            .count()
    };
    assert_eq!(count(&mut h, 10_000), 1);
    assert_eq!(count(&mut h, 14_999), 0);
    assert_eq!(count(&mut h, 15_000), 1);
}

#[test]
fn ddeath_stales_only_that_device() {
    let mut h = host();
    let mut rows = vec![(nbirth("E", 0, 10), birth_rows(10))];
    rows.extend([
        (
            dbirth("pump", 1, 3, 11),
            vec!["online G/E/pump", "G/E/pump speed=0 @11 good"],
        ),
        (
            dbirth("valve", 2, 4, 11),
            vec!["online G/E/valve", "G/E/valve speed=0 @11 good"],
        ),
        (
            msg("spBv1.0/G/DDEATH/E/pump", Some(3), vec![], 12),
            vec![
                "offline G/E/pump (stale: DDEATH)",
                "G/E/pump speed=0 @12 bad(stale: DDEATH)",
            ],
        ),
        (
            msg("spBv1.0/G/DDATA/E/valve", Some(4), vec![am(4, V::Int32(9))], 13),
            vec!["G/E/valve speed=9 @13 good"],
        ),
        (
            ndata("E", 5, vec![am(1, V::Double(2.0))], 14),
            vec!["G/E temp=2 @14 good"],
        ),
        // the dead device's data is out of order
        (
            msg("spBv1.0/G/DDATA/E/pump", Some(6), vec![am(3, V::Int32(1))], 15),
            vec![
                "error spBv1.0/G/DDATA/E/pump: no DBIRTH seen for this device (or it is dead); message dropped",
                REBIRTH_E,
            ],
        ),
        // the DDEATH took a seq: a DDEATH with a gap is still applied
        (
            msg("spBv1.0/G/DDEATH/E/valve", Some(9), vec![], 16),
            vec![
                "error spBv1.0/G/DDEATH/E/valve: seq Some(9) where 6 was expected",
                "offline G/E/valve (stale: DDEATH)",
                "G/E/valve speed=9 @16 bad(stale: DDEATH)",
            ],
        ),
    ]);
    run(&mut h, rows);
    assert_eq!(h.node_state(&e()), Some(NodeState::Online));
    let good =
        |dev: Option<&str>, name: &str| h.metric(&e(), dev, name).map(|m| m.quality.is_good());
    assert_eq!(good(None, "temp"), Some(true));
    assert_eq!(good(None, "on"), Some(true));
    assert_eq!(good(Some("pump"), "speed"), Some(false));
    assert_eq!(good(Some("valve"), "speed"), Some(false));
}

#[test]
fn host_reconnect_stales_every_node_until_its_rebirth() {
    let mut h = host();
    h.step(nbirth("E", 0, 10));
    h.step(dbirth("pump", 1, 3, 10));
    h.step(nbirth("F", 0, 10));
    run(
        &mut h,
        vec![
            (
                HostEvent::ConnectionLost { now: 100 },
                vec![
                    "offline G/E (stale: host disconnected)",
                    "G/E on=false @100 bad(stale: host disconnected)",
                    "G/E temp=20.5 @100 bad(stale: host disconnected)",
                    "offline G/E/pump (stale: host disconnected)",
                    "G/E/pump speed=0 @100 bad(stale: host disconnected)",
                    "offline G/F (stale: host disconnected)",
                    "G/F on=false @100 bad(stale: host disconnected)",
                    "G/F temp=20.5 @100 bad(stale: host disconnected)",
                ],
            ),
            (
                HostEvent::Connecting { now: 200 },
                vec![r#"will spBv1.0/STATE/scada {"online":false,"timestamp":200} q1 retained"#],
            ),
            // back online: every known node is asked for a rebirth
            (
                HostEvent::Connected { now: 210 },
                vec![
                    "sub spBv1.0/# q1",
                    "sub spBv1.0/STATE/scada q1",
                    r#"pub spBv1.0/STATE/scada {"online":true,"timestamp":200} q1 retained"#,
                    REBIRTH_E,
                    "pub spBv1.0/G/NCMD/F [Node Control/Rebirth=true] q0",
                ],
            ),
            // data of the old session is not trusted (and the rebirth is already asked for)
            (
                ndata("E", 2, vec![am(1, V::Double(30.0))], 220),
                vec![
                    "error spBv1.0/G/NDATA/E: no NBIRTH seen for this node (or it is dead or stale); message dropped",
                ],
            ),
            // the rebirth: the node, then its device, are good again; F stays stale
            (nbirth("E", 0, 10), birth_rows(10)),
            (
                dbirth("pump", 1, 3, 231),
                vec!["online G/E/pump", "G/E/pump speed=0 @231 good"],
            ),
        ],
    );
    assert_eq!(h.node_state(&e()), Some(NodeState::Online));
    assert_eq!(h.node_state(&NodeId::new("G", "F")), Some(NodeState::Stale));
    let q = |n: &NodeId, name: &str| h.metric(n, None, name).map(|m| m.quality.clone());
    assert_eq!(q(&e(), "temp"), Some(Quality::Good));
    assert_eq!(
        q(&NodeId::new("G", "F"), "temp"),
        Some(Quality::Bad("stale: host disconnected".into()))
    );
    // F's will from before the reconnect still ends its session.
    let a: Vec<String> = h.step(ndeath("F", 0, 300)).iter().map(show).collect();
    assert_eq!(a, ["offline G/F (stale: NDEATH)"]);
    assert_eq!(h.node_state(&NodeId::new("G", "F")), Some(NodeState::Dead));
}

#[test]
fn dbirth_before_nbirth_asks_for_a_rebirth() {
    let mut h = host();
    let mut rows = vec![(
        dbirth("pump", 1, 3, 9),
        vec![
            "error spBv1.0/G/DBIRTH/E/pump: no NBIRTH seen for this node (or it is dead or stale); message dropped",
            REBIRTH_E,
        ],
    )];
    rows.push((nbirth("E", 0, 10), birth_rows(10)));
    rows.push((
        dbirth("pump", 1, 3, 11),
        vec!["online G/E/pump", "G/E/pump speed=0 @11 good"],
    ));
    run(&mut h, rows);
}

#[test]
fn rebirth_stales_devices_until_their_dbirth_and_drops_metrics_no_longer_born() {
    let mut h = host();
    h.step(nbirth("E", 0, 10));
    h.step(dbirth("pump", 1, 3, 10));
    run(
        &mut h,
        vec![(
            msg(
                "spBv1.0/G/NBIRTH/E",
                Some(0),
                vec![
                    Metric::new("bdSeq", V::Int64(0)),
                    bm("temp", 1, V::Double(22.0)),
                ],
                20,
            ),
            vec![
                "G/E on=false @20 bad(stale: not in the new birth)",
                "offline G/E/pump (stale: not in the new birth)",
                "G/E/pump speed=0 @20 bad(stale: not in the new birth)",
                "online G/E",
                "G/E temp=22 @20 good",
            ],
        )],
    );
    assert!(h.metric(&e(), None, "on").is_none());
}

#[test]
fn nbirth_without_bdseq_is_refused() {
    let mut h = host();
    run(
        &mut h,
        vec![(
            msg(
                "spBv1.0/G/NBIRTH/E",
                Some(0),
                vec![bm("temp", 1, V::Double(1.0))],
                10,
            ),
            vec!["error spBv1.0/G/NBIRTH/E: NBIRTH has no integer bdSeq metric; birth refused"],
        )],
    );
    assert_eq!(h.node_state(&e()), Some(NodeState::NoBirth));
}

#[test]
fn undecodable_payloads_are_reported_with_their_topic_and_ask_for_a_rebirth() {
    let mut h = host();
    h.step(nbirth("E", 0, 10));
    let bad = |topic: &str, payload: Vec<u8>, now| HostEvent::Message {
        topic: topic.into(),
        payload,
        now,
    };
    run(
        &mut h,
        vec![
            (
                bad("spBv1.0/G/NDATA/E", vec![0xff], 10),
                vec![
                    "error spBv1.0/G/NDATA/E: payload is not a valid Sparkplug B protobuf: failed to decode Protobuf message: invalid varint",
                    REBIRTH_E,
                ],
            ),
            (
                bad("spBv1.0/G/NBIRTH/H", vec![0x0a, 0x05, 0x01], 10),
                vec![
                    "error spBv1.0/G/NBIRTH/H: payload is not a valid Sparkplug B protobuf: failed to decode Protobuf message: Payload.timestamp: invalid wire type: LengthDelimited (expected Varint)",
                    "pub spBv1.0/G/NCMD/H [Node Control/Rebirth=true] q0",
                ],
            ),
        ],
    );
    // A payload over the configured limit is refused before decoding.
    let mut config = HostConfig::new("scada");
    config.limits.max_bytes = 8;
    let mut h = online_host(config);
    let a: Vec<String> = h.step(nbirth("E", 0, 10)).iter().map(show).collect();
    assert_eq!(a.len(), 2, "{a:?}");
    assert!(
        a[0].starts_with("error spBv1.0/G/NBIRTH/E: payload of "),
        "{a:?}"
    );
    assert_eq!(a[1], REBIRTH_E);
}

#[test]
fn nodes_beyond_the_limit_are_refused() {
    let mut config = HostConfig::new("scada");
    config.max_nodes = 1;
    let mut h = online_host(config);
    h.step(nbirth("E", 0, 10));
    let a: Vec<String> = h.step(nbirth("F", 0, 10)).iter().map(show).collect();
    assert_eq!(
        a,
        ["error spBv1.0/G/NBIRTH/F: more than 1 edge nodes; message dropped"]
    );
    assert_eq!(h.node_state(&NodeId::new("G", "F")), None);

    let mut config = HostConfig::new("scada");
    config.max_devices_per_node = 1;
    let mut h = online_host(config);
    h.step(nbirth("E", 0, 10));
    h.step(dbirth("pump", 1, 3, 10));
    let a: Vec<String> = h.step(dbirth("valve", 2, 4, 10)).iter().map(show).collect();
    assert_eq!(
        a,
        ["error spBv1.0/G/DBIRTH/E/valve: more than 1 devices on this node; DBIRTH dropped"]
    );
    assert!(h.metric(&e(), Some("valve"), "speed").is_none());
    // a device already known may be born again
    let a: Vec<String> = h.step(dbirth("pump", 3, 3, 11)).iter().map(show).collect();
    assert_eq!(a, ["online G/E/pump", "G/E/pump speed=0 @11 good"]);
}

#[test]
fn writes_go_by_alias_and_are_refused_for_unknown_or_offline_targets() {
    let mut h = host();
    h.step(msg(
        "spBv1.0/G/NBIRTH/E",
        Some(0),
        vec![
            Metric::new("bdSeq", V::Int64(0)),
            bm("setpoint", 1, V::Double(50.0)),
            Metric::new("mode", V::Int32(1)), // no alias
        ],
        10,
    ));
    h.step(dbirth("pump", 1, 3, 10));
    let w = |h: &HostApp, dev: Option<&str>, name: &str, v: V| {
        h.write(&e(), dev, name, v, 99).map(|a| show(&a))
    };
    assert_eq!(
        w(&h, None, "setpoint", V::Double(55.0)).as_deref(),
        Ok("pub spBv1.0/G/NCMD/E [#1=55] q0")
    );
    assert_eq!(
        w(&h, Some("pump"), "speed", V::Int32(1200)).as_deref(),
        Ok("pub spBv1.0/G/DCMD/E/pump [#3=1200] q0")
    );
    assert_eq!(
        w(&h, None, "mode", V::Int32(2)).as_deref(),
        Ok("pub spBv1.0/G/NCMD/E [mode=2] q0")
    );
    // the command carries the write's time and the metric's data type
    let Ok(HostAction::Publish { payload, .. }) =
        h.write(&e(), None, "setpoint", V::Double(1.0), 99)
    else {
        panic!("write refused");
    };
    let p = decode(&payload).expect("decode");
    assert_eq!(p.timestamp, Some(99));
    assert_eq!(p.seq, None);
    assert_eq!(p.metrics[0].datatype, DataType::Double);

    let err = |r: Result<HostAction, WriteError>| r.expect_err("refused").to_string();
    assert_eq!(
        err(h.write(&e(), None, "nope", V::Double(1.0), 99)),
        "write to G/E: unknown metric \"nope\""
    );
    assert_eq!(
        err(h.write(&e(), Some("pump"), "nope", V::Double(1.0), 99)),
        "write to G/E/pump: unknown metric \"nope\""
    );
    assert_eq!(
        err(h.write(&e(), None, "setpoint", V::Boolean(true), 99)),
        "write to G/E: metric \"setpoint\" is Double, the value is Boolean"
    );
    assert_eq!(
        err(h.write(&e(), Some("valve"), "speed", V::Int32(1), 99)),
        "write to G/E/valve: unknown device"
    );
    assert_eq!(
        err(h.write(&NodeId::new("G", "X"), None, "setpoint", V::Double(1.0), 99)),
        "write to G/X: unknown edge node"
    );
    h.step(msg("spBv1.0/G/DDEATH/E/pump", Some(2), vec![], 11));
    assert_eq!(
        h.write(&e(), Some("pump"), "speed", V::Int32(1), 99),
        Err(WriteError::DeviceOffline {
            node: e(),
            device: "pump".into()
        })
    );
    h.step(ndeath("E", 0, 12));
    assert_eq!(
        h.write(&e(), None, "setpoint", V::Double(1.0), 99),
        Err(WriteError::NodeOffline {
            node: e(),
            state: NodeState::Dead
        })
    );
}

// ---- the edge node of this crate as the peer ----

fn def(name: &str, v: V, writable: bool) -> MetricDef {
    MetricDef {
        name: name.into(),
        datatype: v.datatype(),
        value: Some(v),
        writable,
    }
}

fn edge_node() -> EdgeNode {
    EdgeNode::new(
        "G",
        "E",
        7,
        vec![
            def("temp", V::Double(20.0), false),
            def("setpoint", V::Double(50.0), true),
            def("count", V::UInt64(0), false),
        ],
        vec![
            ("pump".into(), vec![def("run", V::Boolean(false), true)]),
            (
                "tank".into(),
                vec![
                    def("level", V::Float(1.5), false),
                    def("name", V::String("t1".into()), false),
                ],
            ),
        ],
    )
}

/// Feeds the edge's publishes to the host; returns what the host did and the edge's will.
fn pass(edge_actions: Vec<EdgeAction>, h: &mut HostApp, now: u64) -> Vec<HostAction> {
    let mut out = Vec::new();
    for a in edge_actions {
        if let EdgeAction::Publish { topic, payload, .. } = a {
            out.extend(h.step(HostEvent::Message {
                topic,
                payload,
                now,
            }));
        }
    }
    out
}

fn updates(actions: &[HostAction]) -> Vec<(Option<String>, String, Option<V>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            HostAction::Update {
                device,
                metric,
                value,
                quality: Quality::Good,
                ..
            } => Some((device.clone(), metric.clone(), value.clone())),
            _ => None,
        })
        .collect()
}

fn problems(actions: &[HostAction]) -> Vec<String> {
    actions
        .iter()
        .filter(|a| matches!(a, HostAction::Error(_) | HostAction::Publish { .. }))
        .map(show)
        .collect()
}

#[test]
fn edge_to_host_round_trip_every_published_value_arrives() {
    let mut h = host();
    let mut n = edge_node();
    let will = n.step(EdgeEvent::Connecting);
    let born = pass(n.step(EdgeEvent::Connected { now: 100 }), &mut h, 100);
    assert_eq!(problems(&born), Vec::<String>::new());
    let s = |x: &str| Some(x.to_owned());
    assert_eq!(
        updates(&born),
        vec![
            (None, "Node Control/Rebirth".into(), Some(V::Boolean(false))),
            (None, "temp".into(), Some(V::Double(20.0))),
            (None, "setpoint".into(), Some(V::Double(50.0))),
            (None, "count".into(), Some(V::UInt64(0))),
            (s("pump"), "run".into(), Some(V::Boolean(false))),
            (s("tank"), "level".into(), Some(V::Float(1.5))),
            (s("tank"), "name".into(), Some(V::String("t1".into()))),
        ]
    );
    // 600 updates across node and devices: seq wraps twice; every value arrives, in order.
    let mut sent = Vec::new();
    let mut got = Vec::new();
    let mut published_metrics = 0;
    for i in 0..600u64 {
        let (device, values) = match i % 3 {
            // every value differs from the last (the edge reports by exception)
            0 => (
                None,
                vec![("temp", V::Double(i as f64)), ("count", V::UInt64(i + 1))],
            ),
            1 => (Some("pump"), vec![("run", V::Boolean((i / 3) % 2 == 0))]),
            _ => (Some("tank"), vec![("level", V::Float(i as f32))]),
        };
        for (name, v) in &values {
            sent.push((device.map(str::to_owned), name.to_string(), Some(v.clone())));
        }
        let ev = EdgeEvent::Update {
            device: device.map(str::to_owned),
            values: values
                .into_iter()
                .map(|(n, v)| (n.to_owned(), Some(v)).into())
                .collect(),
            now: 200 + i,
        };
        let published = n.step(ev);
        published_metrics += published
            .iter()
            .map(|a| match a {
                EdgeAction::Publish { payload, .. } => decode(payload)
                    .expect("the edge's payloads decode")
                    .metrics
                    .len(),
                _ => 0,
            })
            .sum::<usize>();
        let a = pass(published, &mut h, 200 + i);
        assert_eq!(problems(&a), Vec::<String>::new(), "update {i}");
        got.extend(updates(&a));
    }
    assert_eq!(got, sent);
    assert_eq!(got.len(), published_metrics);
    let level = h.metric(&e(), Some("tank"), "level").expect("level");
    assert_eq!(level.value, Some(V::Float(599.0)));
    assert_eq!(level.timestamp, 200 + 599);
    // a host write reaches the edge as a write of the right metric
    let Ok(HostAction::Publish { topic, payload, .. }) =
        h.write(&e(), Some("pump"), "run", V::Boolean(true), 900)
    else {
        panic!("write refused");
    };
    assert_eq!(
        n.step(EdgeEvent::Message {
            topic,
            payload,
            now: 900
        }),
        vec![EdgeAction::Write {
            device: Some("pump".into()),
            name: "run".into(),
            value: Some(V::Boolean(true)),
        }]
    );
    // the edge's will (its NDEATH with this session's bdSeq) stales everything
    let Some(EdgeAction::SetWill { topic, payload }) = will.into_iter().nth(1) else {
        panic!("no will");
    };
    let a = h.step(HostEvent::Message {
        topic,
        payload,
        now: 1000,
    });
    let stale = a
        .iter()
        .filter(|a| {
            matches!(
                a,
                HostAction::Update {
                    quality: Quality::Bad(_),
                    ..
                }
            )
        })
        .count();
    assert_eq!(stale, 7);
    assert_eq!(h.node_state(&e()), Some(NodeState::Dead));
}

#[test]
fn host_started_after_the_edge_gets_everything_through_a_rebirth() {
    let mut n = edge_node();
    n.step(EdgeEvent::Connecting);
    n.step(EdgeEvent::Connected { now: 100 }); // births the host never saw
    let mut h = host();
    let upd = |v: f64, now| EdgeEvent::Update {
        device: None,
        values: vec![("temp".to_owned(), Some(V::Double(v))).into()],
        now,
    };
    let a = pass(n.step(upd(1.0, 200)), &mut h, 200);
    assert_eq!(
        a.iter().map(show).collect::<Vec<_>>(),
        [
            "error spBv1.0/G/NDATA/E: no NBIRTH seen for this node (or it is dead or stale); message dropped",
            REBIRTH_E,
        ]
    );
    // the host's rebirth request, executed by the edge
    let Some(HostAction::Publish { topic, payload, .. }) = a.into_iter().nth(1) else {
        panic!("no rebirth request");
    };
    let births = n.step(EdgeEvent::Message {
        topic,
        payload,
        now: 300,
    });
    let a = pass(births, &mut h, 300);
    assert_eq!(problems(&a), Vec::<String>::new());
    assert_eq!(h.node_state(&e()), Some(NodeState::Online));
    assert_eq!(
        h.metric(&e(), None, "temp").and_then(|m| m.value.clone()),
        Some(V::Double(1.0))
    );
    let a = pass(n.step(upd(2.0, 400)), &mut h, 400);
    assert_eq!(
        updates(&a),
        vec![(None, "temp".into(), Some(V::Double(2.0)))]
    );
}

#[test]
fn quality_property_of_data_becomes_the_updates_quality_and_stopping_publishes_offline_state() {
    let mut h = host();
    let with_q = |mut m: Metric, code: i32| {
        m.properties = Some(mw_sparkplug::quality::property(code));
        m
    };
    let mut null = am(1, V::Double(0.0));
    null.value = None;
    let mut b = bm("temp", 1, V::Double(1.0));
    b.value = None;
    run(
        &mut h,
        vec![
            (
                msg(
                    "spBv1.0/G/NBIRTH/E",
                    Some(0),
                    vec![
                        Metric::new("bdSeq", V::Int64(0)),
                        with_q(b, 0),
                        bm("on", 2, V::Boolean(false)),
                    ],
                    10,
                ),
                vec![
                    "online G/E",
                    "G/E temp=null @10 bad(quality code 0)",
                    "G/E on=false @10 good",
                ],
            ),
            (
                ndata("E", 1, vec![with_q(am(1, V::Double(4.0)), 64)], 11),
                vec!["G/E temp=4 @11 uncertain(quality code 64)"],
            ),
            (
                ndata("E", 2, vec![with_q(null, 500)], 12),
                vec!["G/E temp=null @12 bad(stale)"],
            ),
            (
                ndata("E", 3, vec![with_q(am(1, V::Double(5.0)), 192)], 13),
                vec!["G/E temp=5 @13 good"],
            ),
            (
                HostEvent::Stopping,
                vec![r#"pub spBv1.0/STATE/scada {"online":false,"timestamp":1} q1 retained"#],
            ),
            (HostEvent::Stopping, vec![]),
        ],
    );
    assert_eq!(h.state(), HostState::Offline);
}
