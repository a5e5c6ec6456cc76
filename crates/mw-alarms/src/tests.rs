use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use mw_bus::{Batch, Processor};
use mw_config::Config;
use mw_historian::MemStorage;
use mw_model::{EventKind, Quality, Sample, TagPath, Value};

use super::*;
use crate::engine::{AlarmProcessor, Clock};

const S: i64 = 1_000_000_000;

const DEVICE: &str = r#"
[[devices]]
name = "d"
endpoint = "127.0.0.1:1"
[[devices.tags]]
path = "plant/north/gd1/lel"
table = "input"
address = 0
type = "f32"
unit = "%{LEL}"
[[devices.tags]]
path = "plant/north/p1/pressure"
table = "input"
address = 2
type = "f32"
unit = "bar"
[[devices.tags]]
path = "plant/north/p1/setpoint"
table = "holding"
address = 4
type = "f32"
unit = "bar"
[[devices.tags]]
path = "plant/north/p1/running"
table = "coil"
address = 0
type = "bool"
"#;

fn parse(extra: &str) -> Result<Config, mw_config::Diagnostics> {
    mw_bus::config_registry(&[&mw_modbus::ModbusComponent, &AlarmComponent])
        .parse(&format!("{DEVICE}{extra}"), "plant.toml")
}

fn defs(extra: &str) -> Vec<AlarmDef> {
    match parse(extra) {
        Ok(c) => c.section::<AlarmsConfig>().unwrap().alarms.clone(),
        Err(d) => panic!("{d}"),
    }
}

fn tag(s: &str) -> TagPath {
    TagPath::new(s).unwrap()
}

fn good(t: &str, v: f64, ts: i64) -> Sample {
    Sample::good(tag(t), Value::F64(v), ts)
}

fn bad(t: &str, ts: i64) -> Sample {
    Sample {
        quality: Quality::Bad("timeout after 1000 ms".into()),
        ..Sample::good(tag(t), Value::Bool(false), ts)
    }
}

struct Rig {
    clock: Arc<AtomicI64>,
    storage: MemStorage,
    p: AlarmProcessor,
    c: AlarmControl,
}

fn clock_of(a: &Arc<AtomicI64>) -> Clock {
    let a = a.clone();
    Arc::new(move || a.load(Ordering::SeqCst))
}

fn rig(defs: &[AlarmDef]) -> Rig {
    let storage = MemStorage::new();
    let clock = Arc::new(AtomicI64::new(0));
    let (p, c) = engine::open(
        defs,
        Arc::new(storage.clone()),
        PathBuf::from("/alarms"),
        clock_of(&clock),
    )
    .unwrap();
    Rig {
        clock,
        storage,
        p,
        c,
    }
}

impl Rig {
    /// Feeds samples at their own timestamps (the clock follows) and returns the transitions
    /// emitted as (alarm, from, to).
    fn feed(&mut self, samples: Vec<Sample>) -> Vec<(String, String, String)> {
        if let Some(t) = samples.iter().map(|s| s.receive_ts).max() {
            self.clock.store(t, Ordering::SeqCst);
        }
        let mut b = Batch::from_samples(samples);
        self.p.process(&mut b);
        transitions(&b)
    }

    fn at(&mut self, ts: i64) -> Vec<(String, String, String)> {
        self.clock.store(ts, Ordering::SeqCst);
        let mut b = Batch::default();
        self.p.process(&mut b);
        transitions(&b)
    }

    fn state(&self, id: &str) -> State {
        self.c
            .get(id)
            .unwrap_or_else(|| panic!("no alarm {id}"))
            .state
    }

    fn reopen(self, defs: &[AlarmDef]) -> Rig {
        let Rig { clock, storage, .. } = self;
        let (p, c) = engine::open(
            defs,
            Arc::new(storage.clone()),
            PathBuf::from("/alarms"),
            clock_of(&clock),
        )
        .unwrap();
        Rig {
            clock,
            storage,
            p,
            c,
        }
    }
}

fn transitions(b: &Batch) -> Vec<(String, String, String)> {
    b.events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::AlarmTransition {
                alarm, from, to, ..
            } => Some((alarm.clone(), from.clone(), to.clone())),
            _ => None,
        })
        .collect()
}

fn tr(a: &str, from: &str, to: &str) -> (String, String, String) {
    (a.into(), from.into(), to.into())
}

const GAS: &str = r#"
[[alarms]]
tag = "plant/north/gd1/lel"
kind = "gas"
"#;

const LEL: &str = "plant/north/gd1/lel";

// --- 1. definitions ---

#[test]
fn gas_template_defaults_to_10_and_20_percent_lel() {
    let d = defs(GAS);
    // the two limits, rate of rise, and the detector-fault alarms
    assert_eq!(d.len(), 5);
    assert_eq!(d[0].id, "plant/north/gd1/lel:hi");
    assert_eq!(d[0].condition, Condition::High(10.0));
    assert_eq!(d[0].priority, Priority::High);
    assert_eq!(d[1].id, "plant/north/gd1/lel:hihi");
    assert_eq!(d[1].condition, Condition::High(20.0));
    assert_eq!(d[1].priority, Priority::Critical);
    assert_eq!(d[1].area, "plant/north");
    assert_eq!(d[1].unit, "%{LEL}");
    assert_eq!(
        d[1].render(Some(67.6)),
        "GAS DANGER at plant/north/gd1/lel: 67.6 %{LEL} (limit 20), evacuate"
    );
    assert_eq!(
        d[0].render(None),
        "gas warning at plant/north/gd1/lel: unknown %{LEL} (limit 10)"
    );
}

#[test]
fn gas_thresholds_are_configurable() {
    let d = defs(&format!("{GAS}warning = 5\ndanger = 15\n"));
    assert_eq!(d[0].condition, Condition::High(5.0));
    assert_eq!(d[1].condition, Condition::High(15.0));
}

#[test]
fn every_kind_parses() {
    let d = defs(
        r#"
[[alarms]]
tag = "plant/north/p1/pressure"
kind = "hihi"
limit = 9.5
deadband = 0.2
on_delay_ms = 500
priority = "critical"
latching = true
message = "P {value} {unit} over {limit}"
area = "north/ops"
suppress_tag = "plant/north/p1/running"
suppress_value = 0
[[alarms]]
tag = "plant/north/p1/pressure"
kind = "deviation"
setpoint = "plant/north/p1/setpoint"
limit = 1
[[alarms]]
tag = "plant/north/p1/pressure"
kind = "rate"
limit = 2
[[alarms]]
tag = "plant/north/p1/running"
kind = "discrete"
state = false
[[alarms]]
tag = "plant/north/p1/pressure"
kind = "stale"
stale_after_s = 10
[[alarms]]
asset = "plant/north/p1"
kind = "anomaly"
[[alarms]]
asset = "plant/north/p1"
kind = "rul"
limit = 24
priority = "high"
"#,
    );
    assert_eq!(d.len(), 7);
    assert_eq!(d[0].on_delay_ns, 500_000_000);
    assert!(d[0].latching);
    assert_eq!(d[0].area, "north/ops");
    assert_eq!(d[0].render(Some(9.7)), "P 9.7 bar over 9.5");
    assert_eq!(d[3].condition, Condition::Discrete(0.0));
    assert_eq!(d[4].condition, Condition::Stale(10 * S));
    assert_eq!(d[5].tag.as_str(), "plant/north/p1/anomaly_score");
    assert_eq!(d[6].condition, Condition::RulBelow(24.0));
    assert_eq!(d[6].tag.as_str(), "plant/north/p1/rul");
}

#[test]
fn bad_definitions_are_all_reported_with_file_alarm_and_field() {
    let err = parse(
        r#"
[[alarms]]
tag = "plant/north/p1/pressure"
kind = "hi"
limt = 3
[[alarms]]
tag = "plant/north/p1/presure"
kind = "lo"
limit = 1
[[alarms]]
tag = "plant/north/p1/pressure"
kind = "hii"
[[alarms]]
tag = "plant/north/gd1/lel"
kind = "gas"
warning = 30
"#,
    )
    .unwrap_err()
    .to_string();
    for want in [
        "plant.toml:",
        "unknown key \"limt\"",
        "did you mean \"limit\"",
        "alarm on \"plant/north/p1/pressure\": kind \"hi\" needs \"limit\"",
        "unknown tag \"plant/north/p1/presure\"",
        "did you mean \"plant/north/p1/pressure\"",
        "unknown alarm kind \"hii\"",
        "\"warning\" (30) must be below \"danger\" (20)",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
}

#[test]
fn duplicate_alarm_ids_are_refused() {
    let err = parse(&format!("{GAS}{GAS}")).unwrap_err().to_string();
    assert!(err.contains("is defined twice"), "{err}");
}

// --- 2/4. evaluation, lifecycle, fail-safe ---

#[test]
fn gas_release_raises_warning_then_danger() {
    let mut r = rig(&defs(GAS));
    assert_eq!(r.feed(vec![good(LEL, 2.0, S)]), vec![]);
    assert_eq!(
        r.feed(vec![good(LEL, 12.0, 2 * S)]),
        vec![tr("plant/north/gd1/lel:hi", "normal", "unack_active")]
    );
    assert_eq!(
        r.feed(vec![good(LEL, 67.6, 3 * S)]),
        vec![tr("plant/north/gd1/lel:hihi", "normal", "unack_active")]
    );
    let active = r.c.active();
    assert_eq!(active[0].id, "plant/north/gd1/lel:hihi");
    assert_eq!(active[0].priority, Priority::Critical);
    assert_eq!(active[0].value, Some(67.6));
    assert_eq!(active[0].raised_at, Some(3 * S));
}

#[test]
fn deadband_stops_chattering_on_noise() {
    let mut r = rig(&defs(&format!("{GAS}deadband = 1.0\n")));
    let hi = "plant/north/gd1/lel:hi";
    let mut n = 0;
    for (i, v) in [10.2, 9.6, 10.1, 9.2, 10.4, 9.5].into_iter().enumerate() {
        n += r.feed(vec![good(LEL, v, (i as i64 + 1) * S)]).len();
    }
    assert_eq!(n, 1, "only the first crossing is a transition");
    assert_eq!(r.state(hi), State::UnackActive);
    assert_eq!(
        r.feed(vec![good(LEL, 8.9, 10 * S)]),
        vec![tr(hi, "unack_active", "rtn_unack")]
    );
}

#[test]
fn on_and_off_delays_use_sample_time() {
    let d = defs(&format!("{GAS}on_delay_ms = 2000\noff_delay_ms = 1000\n"));
    let mut r = rig(&d);
    let hi = "plant/north/gd1/lel:hi";
    assert!(r.feed(vec![good(LEL, 12.0, 10 * S)]).is_empty());
    assert!(r.feed(vec![good(LEL, 12.0, 11 * S)]).is_empty());
    // a dip resets the pending on-delay
    assert!(r.feed(vec![good(LEL, 5.0, 11 * S + 1)]).is_empty());
    assert!(r.feed(vec![good(LEL, 12.0, 12 * S)]).is_empty());
    assert_eq!(r.feed(vec![good(LEL, 12.0, 14 * S)]).len(), 1);
    assert!(r.feed(vec![good(LEL, 1.0, 20 * S)]).is_empty());
    assert_eq!(
        r.feed(vec![good(LEL, 1.0, 21 * S)]),
        vec![tr(hi, "unack_active", "rtn_unack")]
    );
}

#[test]
fn bad_quality_raises_its_own_alarm_and_never_reads_as_normal() {
    let mut r = rig(&defs(GAS));
    let hi = "plant/north/gd1/lel:hi";
    let q = "plant/north/gd1/lel:bad_quality";
    r.feed(vec![good(LEL, 15.0, S)]);
    assert_eq!(r.state(hi), State::UnackActive);
    // the read fails: its value is not a reading (false → 0.0) and must not clear the alarm
    assert_eq!(
        r.feed(vec![bad(LEL, 2 * S)]),
        vec![tr(q, "normal", "unack_active")]
    );
    assert_eq!(r.state(hi), State::UnackActive);
    let info = r.c.get(hi).unwrap();
    assert_eq!(info.value, None);
    assert!(info.message.contains("unknown"), "{}", info.message);
    // the quality alarm takes the priority of the most urgent alarm on the tag
    assert_eq!(r.c.get(q).unwrap().priority, Priority::Critical);
    // a failed input from the start never reads as normal either: nothing clears
    let mut r2 = rig(&defs(GAS));
    r2.feed(vec![bad(LEL, S)]);
    assert_eq!(r2.state(q), State::UnackActive);
    assert_eq!(r2.state(hi), State::Normal);
    assert_eq!(r2.c.get(hi).unwrap().value, None);
    // good again: the quality alarm returns to normal (unacknowledged)
    assert_eq!(
        r.feed(vec![good(LEL, 15.0, 3 * S)]),
        vec![tr(q, "unack_active", "rtn_unack")]
    );
}

#[test]
fn stale_input_alarms_on_the_injected_clock() {
    let d = defs(
        r#"
[[alarms]]
tag = "plant/north/p1/pressure"
kind = "stale"
stale_after_s = 10
"#,
    );
    let mut r = rig(&d);
    let id = "plant/north/p1/pressure:stale";
    r.feed(vec![good("plant/north/p1/pressure", 1.0, S)]);
    assert!(r.at(11 * S).is_empty());
    assert_eq!(r.at(11 * S + 1), vec![tr(id, "normal", "unack_active")]);
    assert_eq!(r.c.get(id).unwrap().value, None);
    assert_eq!(
        r.feed(vec![good("plant/north/p1/pressure", 1.0, 12 * S)]),
        vec![tr(id, "unack_active", "rtn_unack")]
    );
}

#[test]
fn deviation_rate_discrete_and_analytics_hooks() {
    let d = defs(
        r#"
[[alarms]]
tag = "plant/north/p1/pressure"
kind = "deviation"
setpoint = "plant/north/p1/setpoint"
limit = 1
[[alarms]]
tag = "plant/north/p1/pressure"
kind = "rate"
limit = 2
[[alarms]]
tag = "plant/north/p1/running"
kind = "discrete"
state = false
[[alarms]]
asset = "plant/north/p1"
kind = "anomaly"
[[alarms]]
asset = "plant/north/p1"
kind = "rul"
limit = 24
"#,
    );
    let mut r = rig(&d);
    let p = "plant/north/p1/pressure";
    r.feed(vec![
        good("plant/north/p1/setpoint", 5.0, S),
        good(p, 5.5, S),
    ]);
    // +3 bar in 1 s: rate 3/s ≥ 2 and deviation 3 ≥ 1
    let t = r.feed(vec![good(p, 8.5, 2 * S)]);
    assert_eq!(
        t,
        vec![
            tr(
                "plant/north/p1/pressure:deviation",
                "normal",
                "unack_active"
            ),
            tr("plant/north/p1/pressure:rate", "normal", "unack_active"),
        ]
    );
    let run = Sample::good(tag("plant/north/p1/running"), Value::Bool(false), 3 * S);
    assert_eq!(
        r.feed(vec![run]),
        vec![tr(
            "plant/north/p1/running:discrete",
            "normal",
            "unack_active"
        )]
    );
    assert_eq!(
        r.feed(vec![good("plant/north/p1/anomaly_score", 0.7, 4 * S)]),
        vec![tr(
            "plant/north/p1/anomaly_score:anomaly",
            "normal",
            "unack_active"
        )]
    );
    assert_eq!(
        r.feed(vec![good("plant/north/p1/rul", 9.6, 5 * S)]),
        vec![tr("plant/north/p1/rul:rul", "normal", "unack_active")]
    );
}

#[test]
fn suppressed_by_design_while_the_pump_is_stopped() {
    let d = defs(
        r#"
[[alarms]]
tag = "plant/north/p1/pressure"
kind = "lo"
limit = 2
suppress_tag = "plant/north/p1/running"
suppress_value = 0
"#,
    );
    let mut r = rig(&d);
    let id = "plant/north/p1/pressure:lo";
    let running = |b: bool, ts| Sample::good(tag("plant/north/p1/running"), Value::Bool(b), ts);
    r.feed(vec![
        running(false, S),
        good("plant/north/p1/pressure", 0.1, S),
    ]);
    assert_eq!(r.state(id), State::Suppressed);
    // the pump starts with the pressure still low: the alarm comes back, unacknowledged
    assert_eq!(
        r.feed(vec![running(true, 2 * S)]),
        vec![tr(id, "suppressed", "unack_active")]
    );
}

// --- operator actions ---

#[test]
fn actions_return_transitions_emit_events_and_refuse_clearly() {
    let mut r = rig(&defs(GAS));
    let hi = "plant/north/gd1/lel:hi";
    r.feed(vec![good(LEL, 12.0, S)]);
    let t = r.c.acknowledge(hi, "seen, checking", "olga").unwrap();
    assert_eq!((t.from, t.to), (State::UnackActive, State::AckActive));
    let e = r.c.acknowledge(hi, "", "olga").unwrap_err().to_string();
    assert_eq!(
        e,
        "alarm \"plant/north/gd1/lel:hi\": cannot acknowledge an alarm in state ack_active: it is already acknowledged"
    );
    let e =
        r.c.acknowledge("plant/north/gd1/lel:hh", "", "olga")
            .unwrap_err()
            .to_string();
    assert!(
        e.starts_with("unknown alarm \"plant/north/gd1/lel:hh\""),
        "{e}"
    );
    let e =
        r.c.shelve(hi, Duration::ZERO, "maintenance", "olga")
            .unwrap_err()
            .to_string();
    assert!(e.contains("shelve duration must be more than 0"), "{e}");
    let e = r.c.out_of_service(hi, " ", "olga").unwrap_err().to_string();
    assert!(e.contains("a reason is required"), "{e}");

    // the events ride on the next batch: action, then transition
    let mut b = Batch::default();
    r.p.process(&mut b);
    assert_eq!(b.events.len(), 2);
    match &b.events[0].kind {
        EventKind::OperatorAction {
            user,
            action,
            target,
            comment,
        } => {
            assert_eq!((user.as_str(), action.as_str()), ("olga", "acknowledge"));
            assert_eq!((target.as_str(), comment.as_str()), (hi, "seen, checking"));
        }
        k => panic!("{k:?}"),
    }
    assert_eq!(transitions(&b), vec![tr(hi, "unack_active", "ack_active")]);
    assert_eq!(b.events[1].asset.as_deref(), Some("plant/north/gd1"));
}

#[test]
fn shelve_expires_on_the_clock_and_re_annunciates() {
    let mut r = rig(&defs(GAS));
    let hi = "plant/north/gd1/lel:hi";
    r.feed(vec![good(LEL, 12.0, S)]);
    r.c.shelve(hi, Duration::from_secs(60), "sensor calibration", "olga")
        .unwrap();
    assert_eq!(r.c.get(hi).unwrap().shelved_until, Some(61 * S));
    assert!(transitions_of(&mut r, 60 * S).is_empty());
    assert_eq!(r.at(61 * S), vec![tr(hi, "shelved", "unack_active")]);
}

fn transitions_of(r: &mut Rig, ts: i64) -> Vec<(String, String, String)> {
    r.at(ts)
        .into_iter()
        .filter(|(_, from, _)| from != "unack_active")
        .collect()
}

#[test]
fn latching_needs_a_reset() {
    let mut r = rig(&defs(&format!("{GAS}latching = true\n")));
    let hi = "plant/north/gd1/lel:hi";
    r.feed(vec![good(LEL, 12.0, S)]);
    r.feed(vec![good(LEL, 1.0, 2 * S)]);
    assert_eq!(r.state(hi), State::UnackActive);
    assert!(r.c.reset_latched(hi, "olga").is_err());
    r.c.acknowledge(hi, "", "olga").unwrap();
    let t = r.c.reset_latched(hi, "olga").unwrap();
    assert_eq!((t.from, t.to), (State::AckActive, State::Normal));
}

// --- 3. journal ---

#[test]
fn state_survives_dropping_the_processor_and_reopening_the_journal() {
    let d = defs(GAS);
    let mut r = rig(&d);
    let hi = "plant/north/gd1/lel:hi";
    let hihi = "plant/north/gd1/lel:hihi";
    r.feed(vec![good(LEL, 25.0, S)]);
    r.c.acknowledge(hi, "on my way", "olga").unwrap();
    r.c.shelve(hihi, Duration::from_secs(600), "detector test", "ben")
        .unwrap();
    // a power cut loses nothing that was answered
    r.storage.crash();
    let r = r.reopen(&d);
    assert_eq!(r.state(hi), State::AckActive);
    assert_eq!(r.state(hihi), State::Shelved);
    assert_eq!(r.c.get(hihi).unwrap().shelved_until, Some(601 * S));
    assert_eq!(r.c.get(hi).unwrap().raised_at, Some(S));
    assert_eq!(r.state("plant/north/gd1/lel:bad_quality"), State::Normal);

    let (_, opened) = Journal::open(Arc::new(r.storage.clone()), PathBuf::from("/alarms")).unwrap();
    let recs = opened.records;
    // raise hi, raise hihi, ack, shelve
    assert_eq!(recs.len(), 4, "{recs:#?}");
    let ack = &recs[2];
    assert_eq!((ack.from, ack.to), (State::UnackActive, State::AckActive));
    assert_eq!(
        (ack.user.as_str(), ack.comment.as_str()),
        ("olga", "on my way")
    );
    assert_eq!(
        (ack.action.as_str(), ack.value),
        ("acknowledge", Some(25.0))
    );
    assert_eq!(ack.ts, S);
    assert_eq!(recs[3].comment, "detector test");
}

#[test]
fn restored_active_alarm_clears_on_the_next_samples() {
    let d = defs(GAS);
    let mut r = rig(&d);
    let hi = "plant/north/gd1/lel:hi";
    r.feed(vec![good(LEL, 12.0, S)]);
    r.c.acknowledge(hi, "", "olga").unwrap();
    let mut r = r.reopen(&d);
    assert_eq!(
        r.feed(vec![good(LEL, 1.0, 5 * S)]),
        vec![tr(hi, "ack_active", "normal")]
    );
}

#[test]
fn kpis_from_the_journal() {
    let d = defs(GAS);
    let mut r = rig(&d);
    for i in 0..3 {
        r.feed(vec![good(LEL, 12.0, (10 * i + 1) * S)]);
        r.feed(vec![good(LEL, 1.0, (10 * i + 5) * S)]);
    }
    let (_, opened) = Journal::open(Arc::new(r.storage.clone()), PathBuf::from("/alarms")).unwrap();
    let k = kpi::kpis(&opened.records, 60 * S, 600 * S);
    assert_eq!(k.chattering, vec!["plant/north/gd1/lel:hi".to_owned()]);
    // first raise from normal, then two re-raises from rtn_unack
    assert_eq!(k.top10, vec![("plant/north/gd1/lel:hi".to_owned(), 3)]);
    assert_eq!(k.per_area_per_10min["plant/north"], 3.0);
    assert_eq!(k.standing, 1);
}

// --- 5. the demo's alarms ---

#[test]
fn uncertain_input_is_held_without_a_quality_alarm() {
    let d = defs("[[alarms]]\nasset = \"plant/north/p1\"\nkind = \"anomaly\"\n");
    let mut r = rig(&d);
    let id = "plant/north/p1/anomaly_score:anomaly";
    r.feed(vec![good("plant/north/p1/anomaly_score", 0.9, S)]);
    let warming = Sample {
        quality: Quality::Uncertain("warming up".into()),
        ..good("plant/north/p1/anomaly_score", 0.0, 2 * S)
    };
    assert!(r.feed(vec![warming]).is_empty());
    assert_eq!(r.state(id), State::UnackActive);
    assert_eq!(
        r.state("plant/north/p1/anomaly_score:bad_quality"),
        State::Normal
    );
    assert_eq!(r.c.get(id).unwrap().value, None);
}

// --- observers, history, KPIs through the handle ---

#[test]
fn subscribers_get_every_journaled_transition_in_order_with_who_and_why() {
    let mut r = rig(&defs(GAS));
    let hi = "plant/north/gd1/lel:hi";
    let hihi = "plant/north/gd1/lel:hihi";
    let mut rx = r.c.subscribe();
    r.feed(vec![good(LEL, 25.0, 3 * S)]);
    // the critical one of the batch first
    let b = rx.try_recv().unwrap();
    let a = rx.try_recv().unwrap();
    assert_eq!((a.alarm.as_str(), a.to, a.seq), (hi, State::UnackActive, 2));
    assert_eq!(
        (b.alarm.as_str(), b.priority, b.seq),
        (hihi, Priority::Critical, 1)
    );
    assert_eq!((b.ts, b.value, b.action), (3 * S, Some(25.0), ""));
    assert_eq!((b.asset.as_str(), b.tag.as_str()), ("plant/north/gd1", LEL));
    assert_eq!(b.kind, "hihi");
    // an action is announced as soon as it is journaled, not with the next batch
    r.clock.store(4 * S, Ordering::SeqCst);
    let done = r.c.acknowledge(hihi, "on my way", "olga").unwrap();
    let c = rx.try_recv().unwrap();
    assert_eq!(c, done);
    assert_eq!(
        (c.action, c.user.as_str(), c.comment.as_str()),
        ("acknowledge", "olga", "on my way")
    );
    assert_eq!(
        (c.from, c.to, c.seq),
        (State::UnackActive, State::AckActive, 3)
    );
    // a refused action announces nothing
    assert!(r.c.acknowledge(hihi, "", "olga").is_err());
    assert!(rx.try_recv().is_err());
}

#[test]
fn a_slow_subscriber_lags_and_never_blocks_the_engine() {
    let mut r = rig(&defs(GAS));
    let mut rx = r.c.subscribe();
    let n = engine::TRANSITION_CHANNEL as i64 + 10;
    for i in 0..n {
        // hi raises at 12 and returns at 1: two transitions per pair of samples
        r.feed(vec![good(LEL, 12.0, (2 * i + 1) * S)]);
        r.feed(vec![good(LEL, 1.0, (2 * i + 2) * S)]);
    }
    match rx.try_recv() {
        Err(tokio::sync::broadcast::error::TryRecvError::Lagged(k)) => assert!(k > 0),
        other => panic!("expected a lag, got {other:?}"),
    }
    // it continues with the oldest still kept, numbered so the gap shows
    let next = rx.try_recv().unwrap();
    assert!(next.seq > 1, "{next:?}");
}

#[test]
fn history_is_newest_first_bounded_and_filtered() {
    let mut r = rig(&defs(GAS));
    let hi = "plant/north/gd1/lel:hi";
    r.feed(vec![good(LEL, 12.0, S)]);
    r.clock.store(2 * S, Ordering::SeqCst);
    r.c.acknowledge(hi, "checked", "olga").unwrap();
    r.feed(vec![good(LEL, 1.0, 3 * S)]);
    let h = r.c.history(10, None, None);
    let got: Vec<(i64, State, &str)> = h.iter().map(|x| (x.ts, x.to, x.action.as_str())).collect();
    assert_eq!(
        got,
        vec![
            (3 * S, State::Normal, ""),
            (2 * S, State::AckActive, "acknowledge"),
            (S, State::UnackActive, ""),
        ]
    );
    assert_eq!(r.c.history(1, None, None).len(), 1);
    assert_eq!(r.c.history(10, Some(2 * S), None).len(), 2);
    assert_eq!(r.c.history(10, None, Some("nope")).len(), 0);
    assert_eq!(r.c.history(10, None, Some(hi)).len(), 3);
    // the history survives a restart (read back from the journal)
    let d = defs(GAS);
    let r = r.reopen(&d);
    assert_eq!(r.c.history(10, None, None), h);
}

#[test]
fn perform_journals_comments_of_every_action_and_kpis_count_standing_now() {
    let mut r = rig(&defs(GAS));
    let hi = "plant/north/gd1/lel:hi";
    r.feed(vec![good(LEL, 12.0, S)]);
    r.c.perform(hi, Action::OutOfService, "ben", "detector swap")
        .unwrap();
    r.c.perform(hi, Action::ReturnToService, "ben", "swapped")
        .unwrap();
    let h = r.c.history(2, None, None);
    assert_eq!(
        (h[0].action.as_str(), h[0].comment.as_str()),
        ("return_to_service", "swapped")
    );
    assert_eq!(h[1].comment, "detector swap");
    let e = r.c.perform(
        hi,
        Action::Shelve(Duration::from_secs(31 * 86_400)),
        "ben",
        "x",
    );
    assert!(e.unwrap_err().to_string().contains("at most 30 days"));
    let k = r.c.kpis(600 * S);
    assert_eq!(k.standing, 1, "{k:?}");
    assert_eq!(k.top10, vec![(hi.to_owned(), 1)]);
}

// --- 5. hazard detection: rate of rise, detector faults, voting, critical first ---

#[test]
fn gas_template_adds_rate_of_rise_and_detector_faults_with_configurable_defaults() {
    let d = defs(GAS);
    let ids: Vec<&str> = d.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "plant/north/gd1/lel:hi",
            "plant/north/gd1/lel:hihi",
            "plant/north/gd1/lel:rate_of_rise",
            "plant/north/gd1/lel:stuck",
            "plant/north/gd1/lel:out_of_range",
        ]
    );
    assert_eq!(
        d[2].condition,
        Condition::RateOfRise {
            per_s: 10.0 / 60.0,
            window_ns: 30 * S
        }
    );
    assert_eq!(
        d[3].condition,
        Condition::Stuck {
            tolerance: 0.0,
            after_ns: 3600 * S
        }
    );
    assert_eq!(
        d[4].condition,
        Condition::OutOfRange {
            lo: -5.0,
            hi: 100.0
        }
    );
    assert!(d[2..].iter().all(|d| d.priority == Priority::High));
    let d = defs(&format!(
        "{GAS}rate_of_rise = 0\nstuck_after_s = 0\nrange = [-2, 110]\n"
    ));
    assert_eq!(d.len(), 3, "rate of rise and stuck are off at 0");
    assert_eq!(
        d[2].condition,
        Condition::OutOfRange {
            lo: -2.0,
            hi: 110.0
        }
    );
    let d = defs(&format!(
        "{GAS}rate_of_rise = 6\nrate_window_s = 20\nstuck_after_s = 600\nstuck_tolerance = 0.2\n"
    ));
    assert_eq!(
        d[2].condition,
        Condition::RateOfRise {
            per_s: 0.1,
            window_ns: 20 * S
        }
    );
    assert_eq!(
        d[3].condition,
        Condition::Stuck {
            tolerance: 0.2,
            after_ns: 600 * S
        }
    );
}

#[test]
fn rate_of_rise_warns_before_the_limits_and_ignores_noise() {
    let mut r = rig(&defs(GAS));
    let rise = "plant/north/gd1/lel:rate_of_rise";
    // a minute of clean-air noise (±0.5 % LEL at 1 Hz): no slope alarm
    let noise = [0.0, 0.5, 0.1, 0.0, 0.4, 0.0, 0.2, 0.5, 0.0, 0.3];
    for i in 0..60 {
        let got = r.feed(vec![good(LEL, noise[i as usize % 10], (i + 1) * S)]);
        assert_eq!(got, vec![], "at {i} s");
    }
    // a release rising 0.5 % LEL/s (30 % LEL per minute)
    let mut first = None;
    for k in 1..=30 {
        let got = r.feed(vec![good(LEL, 0.5 * k as f64, (60 + k) * S)]);
        if let Some(t) = got.first() {
            first.get_or_insert((k, t.clone()));
        }
    }
    let (k, t) = first.expect("an alarm");
    assert_eq!(t, tr(rise, "normal", "unack_active"));
    assert!(
        0.5 * (k as f64) < 10.0,
        "raised at {} % LEL, before the warning",
        0.5 * k as f64
    );
    // the rise stops: the slope falls back below the limit within the window
    let mut cleared = false;
    for k in 0..40 {
        for t in r.feed(vec![good(LEL, 15.0, (91 + k) * S)]) {
            cleared |= t == tr(rise, "unack_active", "rtn_unack");
        }
    }
    assert!(cleared, "{:?}", r.state(rise));
}

#[test]
fn stuck_and_out_of_range_detectors_raise_their_own_fault_alarms() {
    let mut r = rig(&defs(&format!(
        "{GAS}stuck_after_s = 60\nstuck_tolerance = 0.1\n"
    )));
    let stuck = "plant/north/gd1/lel:stuck";
    let range = "plant/north/gd1/lel:out_of_range";
    let mut got = Vec::new();
    for i in 0..=60 {
        // within the tolerance: no movement
        got.extend(r.feed(vec![good(LEL, 1.0 + 0.05 * (i % 2) as f64, (i + 1) * S)]));
    }
    assert_eq!(got, vec![tr(stuck, "normal", "unack_active")]);
    assert_eq!(
        r.feed(vec![good(LEL, 1.5, 70 * S)]),
        vec![tr(stuck, "unack_active", "rtn_unack")]
    );
    assert_eq!(
        r.feed(vec![good(LEL, -6.0, 71 * S)]),
        vec![tr(range, "normal", "unack_active")]
    );
    assert_eq!(
        r.feed(vec![good(LEL, 3.0, 72 * S)]),
        vec![tr(range, "unack_active", "rtn_unack")]
    );
    // over the span: the danger alarm and the fault, the critical one first
    assert_eq!(
        r.feed(vec![good(LEL, 100.5, 73 * S)]),
        vec![
            tr("plant/north/gd1/lel:hihi", "normal", "unack_active"),
            tr("plant/north/gd1/lel:hi", "normal", "unack_active"),
            // a jump of 97 % LEL in 3 s is a fast rise too
            tr("plant/north/gd1/lel:rate_of_rise", "normal", "unack_active"),
            tr(range, "rtn_unack", "unack_active"),
        ]
    );
}

const VOTE_DEVICE: &str = r#"
[[devices]]
name = "g"
endpoint = "127.0.0.1:2"
[[devices.tags]]
path = "plant/north/gd2/lel"
table = "input"
address = 0
type = "f32"
unit = "%{LEL}"
[[devices.tags]]
path = "plant/north/gd3/lel"
table = "input"
address = 2
type = "f32"
unit = "%{LEL}"
"#;

const VOTE: &str = r#"
[[alarms]]
kind = "vote"
tags = ["plant/north/gd1/lel", "plant/north/gd2/lel", "plant/north/gd3/lel"]
vote = "2oo3"
"#;

const GD2: &str = "plant/north/gd2/lel";
const GD3: &str = "plant/north/gd3/lel";
const EVAC: &str = "plant/north:vote";

fn vote_defs(extra: &str) -> Vec<AlarmDef> {
    defs(&format!("{VOTE_DEVICE}{GAS}{extra}"))
}

#[test]
fn vote_parses_with_defaults_and_refuses_bad_rules() {
    let d = vote_defs(VOTE);
    let v = d.iter().find(|d| d.kind == "vote").unwrap();
    assert_eq!(v.id, EVAC);
    assert_eq!(v.priority, Priority::Critical);
    assert_eq!(v.area, "plant/north");
    let Condition::Vote {
        members,
        need,
        limit,
        stale_ns,
    } = &v.condition
    else {
        panic!("{v:?}")
    };
    assert_eq!(
        (members.len(), *need, *limit, *stale_ns),
        (3, 2, 20.0, 10 * S)
    );
    assert_eq!(
        v.render(Some(2.0)),
        "EVACUATE plant/north: 2 of 3 detectors at or above 20 %{LEL} or faulty (2oo3)"
    );
    let err = parse(&format!(
        "{VOTE_DEVICE}{GAS}{}",
        r#"
[[alarms]]
kind = "vote"
tags = ["plant/north/gd1/lel", "plant/north/gd2/lel", "plant/north/gd3/lel"]
vote = "2oo4"
[[alarms]]
kind = "vote"
id = "b"
tags = ["plant/north/gd1/lel", "plant/north/gd2/lel"]
vote = "three"
[[alarms]]
kind = "vote"
id = "c"
tags = ["plant/north/gd1/lel", "plant/north/p1/pressure"]
vote = "1oo2"
[[alarms]]
kind = "vote"
id = "d"
tags = ["plant/north/gd1/lel"]
vote = "1oo1"
"#
    ))
    .unwrap_err()
    .to_string();
    // a glob names the matching configured tags, in file order
    let d = vote_defs(
        "[[alarms]]\nkind = \"vote\"\ntags = [\"plant/north/gd*/lel\"]\nvote = \"2oo3\"\n",
    );
    let v = d.iter().find(|d| d.kind == "vote").unwrap();
    let Condition::Vote { members, .. } = &v.condition else {
        panic!("{v:?}")
    };
    let names: Vec<&str> = members.iter().map(|m| m.as_str()).collect();
    assert_eq!(names, [LEL, GD2, GD3]);
    let glob_err = parse(&format!(
        "{VOTE_DEVICE}{GAS}[[alarms]]\nkind = \"vote\"\ntags = [\"plant/south/*/lel\", \"plant/north/gd1/lel\"]\nvote = \"1oo2\"\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(
        glob_err.contains("\"plant/south/*/lel\" in \"tags\" of [[alarms]] entry #")
            && glob_err.contains("matches no configured tag"),
        "{glob_err}"
    );
    for want in [
        "\"vote\" \"2oo4\" in [[alarms]] entry #",
        "is out of 4, but \"tags\" lists 3",
        "\"vote\" \"three\"",
        "is not M-out-of-N (expected e.g. \"2oo2\"",
        "kind \"vote\" needs \"limit\" (the members are not all in % LEL)",
        "a vote needs at least 2",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
}

#[test]
fn two_out_of_three_detectors_raise_the_area_evacuation() {
    let mut r = rig(&vote_defs(VOTE));
    let all = |r: &mut Rig, a: f64, b: f64, c: f64, ts: i64| {
        r.feed(vec![good(LEL, a, ts), good(GD2, b, ts), good(GD3, c, ts)])
    };
    assert!(!all(&mut r, 0.0, 0.0, 0.0, S).iter().any(|t| t.0 == EVAC));
    // one detector in danger: its own alarm, no evacuation
    let got = all(&mut r, 30.0, 1.0, 0.0, 2 * S);
    assert!(!got.iter().any(|t| t.0 == EVAC), "{got:?}");
    // the second: evacuation, first of the batch
    let got = all(&mut r, 35.0, 22.0, 0.0, 3 * S);
    assert_eq!(got[0], tr(EVAC, "normal", "unack_active"), "{got:?}");
    let v = r.c.get(EVAC).unwrap();
    assert_eq!((v.value, v.priority), (Some(2.0), Priority::Critical));
    // back below: returns
    let got = all(&mut r, 1.0, 1.0, 0.0, 4 * S);
    assert!(
        got.contains(&tr(EVAC, "unack_active", "rtn_unack")),
        "{got:?}"
    );
}

#[test]
fn a_faulty_detector_counts_as_a_vote() {
    let mut r = rig(&vote_defs(VOTE));
    // gd2 fails (bad quality) and gd3 is in danger: 2 of 3
    let got = r.feed(vec![good(LEL, 0.0, S), bad(GD2, S), good(GD3, 25.0, S)]);
    // both critical (the member's own fault alarm takes the vote's priority), ahead of the rest
    assert_eq!(
        got[..2],
        [
            tr("plant/north/gd2/lel:bad_quality", "normal", "unack_active"),
            tr(EVAC, "normal", "unack_active"),
        ],
        "{got:?}"
    );
    // gd2 reads again: only gd3 votes
    let got = r.feed(vec![
        good(LEL, 0.0, 2 * S),
        good(GD2, 0.0, 2 * S),
        good(GD3, 25.0, 2 * S),
    ]);
    assert!(
        got.contains(&tr(EVAC, "unack_active", "rtn_unack")),
        "{got:?}"
    );
    // gd1 out of range (a fault of its own) and gd3 in danger: 2 of 3
    let got = r.feed(vec![
        good(LEL, -9.0, 3 * S),
        good(GD2, 0.0, 3 * S),
        good(GD3, 25.0, 3 * S),
    ]);
    assert!(
        got.contains(&tr(EVAC, "rtn_unack", "unack_active")),
        "{got:?}"
    );
}

#[test]
fn silent_detectors_count_after_their_stale_time() {
    let mut r = rig(&vote_defs(VOTE));
    // only gd1 reports; gd2 and gd3 never do
    for i in 1..=10 {
        let got = r.feed(vec![good(LEL, 0.0, i * S)]);
        assert!(!got.iter().any(|t| t.0 == EVAC), "at {i} s: {got:?}");
    }
    let got = r.feed(vec![good(LEL, 0.0, 11 * S)]);
    assert!(got.contains(&tr(EVAC, "normal", "unack_active")), "{got:?}");
    // with no samples at all, the clock alone raises it too (here: still raised)
    assert_eq!(r.state(EVAC), State::UnackActive);
}

#[test]
fn critical_events_go_first_in_the_batch_and_on_the_subscription() {
    let mut r = rig(&defs(&format!(
        "{GAS}{}",
        r#"
[[alarms]]
tag = "plant/north/p1/pressure"
kind = "hi"
limit = 5
priority = "low"
"#
    )));
    let mut rx = r.c.subscribe();
    // an upstream event already in the batch
    let mut b = Batch::from_samples(vec![
        good("plant/north/p1/pressure", 9.0, S),
        good(LEL, 50.0, S),
    ]);
    b.events.push(mw_model::Event::new(
        S,
        "analytics",
        EventKind::ConnectionChange {
            up: true,
            reason: None,
        },
    ));
    r.clock.store(S, Ordering::SeqCst);
    r.p.process(&mut b);
    let order: Vec<String> = b
        .events
        .iter()
        .map(|e| match &e.kind {
            EventKind::AlarmTransition { alarm, .. } => alarm.clone(),
            _ => "other".into(),
        })
        .collect();
    assert_eq!(
        order,
        [
            "plant/north/gd1/lel:hihi",
            "other",
            "plant/north/gd1/lel:hi",
            "plant/north/p1/pressure:hi"
        ]
    );
    // a low-priority backlog on the subscription does not hold a later critical one back
    for i in 0..5 {
        r.feed(vec![good("plant/north/p1/pressure", 1.0, (2 + 2 * i) * S)]);
        r.feed(vec![good("plant/north/p1/pressure", 9.0, (3 + 2 * i) * S)]);
    }
    r.feed(vec![good(LEL, 5.0, 20 * S)]);
    r.feed(vec![good(LEL, 50.0, 21 * S)]);
    let first = rx.try_recv().unwrap();
    assert_eq!(first.alarm, "plant/north/gd1/lel:hihi");
    let second = rx.try_recv().unwrap();
    assert_eq!(
        (second.alarm.as_str(), second.ts),
        ("plant/north/gd1/lel:hihi", 20 * S)
    );
    let third = rx.try_recv().unwrap();
    assert_eq!(
        (third.alarm.as_str(), third.ts),
        ("plant/north/gd1/lel:hihi", 21 * S)
    );
    assert_ne!(rx.try_recv().unwrap().priority, Priority::Critical);
}

#[test]
fn engine_kpis_report_stale_and_shelved_alarms_on_the_injected_clock() {
    let mut r = rig(&defs(GAS));
    let hi = "plant/north/gd1/lel:hi";
    let hihi = "plant/north/gd1/lel:hihi";
    r.feed(vec![good(LEL, 25.0, S)]);
    r.c.shelve(
        hi,
        Duration::from_secs(7 * 86_400),
        "sensor cover on",
        "ben",
    )
    .unwrap();
    let k = r.c.kpis(600 * S);
    assert_eq!(k.stale, vec![]);
    assert_eq!(k.shelved, vec![(hi.to_owned(), Some(S + 7 * 86_400 * S))]);
    // the danger alarm stays active (the value stays) past 24 h
    r.feed(vec![good(LEL, 25.0, 86_400 * S + 2 * S)]);
    let k = r.c.kpis(600 * S);
    assert_eq!(k.stale, vec![(hihi.to_owned(), S)]);
    assert_eq!(k.shelved.len(), 1);
    // an acknowledged alarm is still active, so still stale; one that cleared is not
    r.c.acknowledge(hihi, "", "ben").unwrap();
    assert_eq!(r.c.kpis(600 * S).stale.len(), 1);
    r.feed(vec![good(LEL, 1.0, 86_400 * S + 3 * S)]);
    assert_eq!(r.c.kpis(600 * S).stale, vec![]);
}
