//! The runtime around the pure lifecycle: evaluates every configured condition on the samples
//! of each batch ([`AlarmProcessor`], a bus processor), runs the operator actions
//! ([`AlarmControl`]), journals both, and emits `AlarmTransition` / `OperatorAction` events.
//!
//! Both share one engine behind a mutex. Operator actions are journaled (synced) before they
//! take effect and before they are answered; their events wait in a bounded queue
//! ([`PENDING_EVENTS`]) and ride on the next batch the processor sees. Process transitions of a
//! batch are journaled together (one fsync per batch that has any) before the batch goes on;
//! if the journal fails they are still emitted (an alarm must reach the operator), and the
//! failure is logged and counted.
//!
//! Observers: [`AlarmControl::subscribe`] hands out a receiver of every transition (process and
//! operator), sent once the transition is journaled, on a bounded broadcast channel
//! ([`TRANSITION_CHANNEL`]): a receiver that falls behind loses the oldest and is told how many
//! (`RecvError::Lagged`), the engine never waits for it. [`AlarmControl::history`] reads the
//! newest journal records, kept in memory as a bounded ring ([`HISTORY_RECORDS`], filled from the
//! journal at start), and [`AlarmControl::kpis`] computes the KPIs over it.
//!
//! Fail-safe inputs: every input tag gets its own `TAG:bad_quality` alarm (unless the config
//! defines one): a sample of bad quality raises it, and every other alarm on that tag keeps its
//! condition (a failed input never reads as normal) and shows its value as unknown. An
//! `uncertain` sample (an analytics output warming up) is held the same way but raises no
//! quality alarm. A suppression input that is not good does not suppress.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use mw_bus::{Batch, Processor};
use mw_historian::Storage;
use mw_model::{Event, EventKind, Quality, Sample, TagPath, Value};

use crate::config::{AlarmDef, Condition, Priority};
use crate::journal::{Journal, JournalError, Record, restore};
use crate::lifecycle::{Input, Machine, Refused, State, step};

/// Ns since the Unix epoch, injected so tests need no real time.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64)
    })
}

/// Operator-action events waiting for the next batch; beyond this the oldest is dropped and
/// counted (`mw_discarded_events_total{component="alarms",reason="queue_full"}`). The journal
/// has them all regardless.
pub const PENDING_EVENTS: usize = 1024;

/// Transitions a [`AlarmControl::subscribe`] receiver may fall behind by before it loses the
/// oldest (and is told how many it lost).
pub const TRANSITION_CHANNEL: usize = 1024;

/// Newest journal records kept in memory for [`AlarmControl::history`] and
/// [`AlarmControl::kpis`] (the journal on disk keeps them all).
pub const HISTORY_RECORDS: usize = 10_000;

/// Event `source` of everything the engine emits.
pub const SOURCE: &str = "alarms/engine";

/// One state change, as returned to the caller of an action, emitted on the bus and sent to
/// every [`AlarmControl::subscribe`] receiver.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    pub alarm: String,
    /// Ns since the epoch: the causing sample's receive time, or when the action was done.
    pub ts: i64,
    pub from: State,
    pub to: State,
    pub value: Option<f64>,
    pub message: String,
    pub priority: Priority,
    pub tag: String,
    pub asset: String,
    pub area: String,
    pub kind: &'static str,
    /// The operator action that caused it (`acknowledge`, `shelve`, …), empty for the process.
    pub action: &'static str,
    /// Who did the action (empty for the process).
    pub user: String,
    /// The operator's comment or reason (empty for the process).
    pub comment: String,
    /// Sequence number of this transition since the process started (1, 2, …), so an observer
    /// can see that it missed some.
    pub seq: u64,
}

/// An operator action, for [`AlarmControl::perform`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Acknowledge,
    /// For this long (more than zero, at most 30 days); the comment is the reason (required).
    Shelve(Duration),
    Unshelve,
    /// The comment is the reason (required).
    OutOfService,
    ReturnToService,
    ResetLatched,
}

/// Longest shelve.
pub const MAX_SHELVE: Duration = Duration::from_secs(30 * 86_400);

/// One alarm as the console lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct AlarmInfo {
    pub id: String,
    pub tag: String,
    pub asset: String,
    pub area: String,
    pub kind: &'static str,
    pub priority: Priority,
    pub state: State,
    /// The process condition (true: in alarm).
    pub condition: bool,
    /// The input's last usable value (`None`: unknown, e.g. bad quality).
    pub value: Option<f64>,
    pub message: String,
    /// When it last went from normal to active.
    pub raised_at: Option<i64>,
    pub shelved_until: Option<i64>,
}

/// Why an operator action was not done.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("unknown alarm {id:?}{}", suggestion.as_ref().map(|s| format!(" (did you mean {s:?}?)")).unwrap_or_default())]
    UnknownAlarm {
        id: String,
        suggestion: Option<String>,
    },
    #[error("alarm {alarm:?}: {refused}")]
    Refused { alarm: String, refused: Refused },
    #[error("alarm {alarm:?}: {what}")]
    Invalid { alarm: String, what: String },
    #[error("alarm {alarm:?}: the action was not done because the journal failed: {source}")]
    Journal { alarm: String, source: JournalError },
}

/// What a step produced: the next machine, its journal record, its events and the transition.
type Applied = (Machine, Record, Vec<Event>, Transition);

/// What a batch produced: journal records, events, transitions.
type Out = (Vec<Record>, Vec<Event>, Vec<Transition>);

#[derive(Default)]
struct Eval {
    /// The condition as evaluated (deadband applied, delays not).
    raw: bool,
    /// Since when `raw` has differed from the machine's condition.
    since: Option<i64>,
    /// Previous (ts, value), for rates; (since, reference value) for `stuck`.
    prev: Option<(i64, f64)>,
    /// The good samples of a rate-of-rise window, oldest first (at most [`RISE_SAMPLES`]).
    window: VecDeque<(i64, f64)>,
    /// A vote's members, in config order.
    members: Vec<Member>,
}

/// What a vote knows of one member detector.
#[derive(Clone, Copy, Default)]
struct Member {
    /// Its last good value is at or above the vote's limit (deadband applied).
    tripped: bool,
    /// Its last sample had bad quality.
    bad: bool,
    /// Receive time of its last sample.
    last_seen: Option<i64>,
}

/// Samples a rate-of-rise window keeps at most (older ones are dropped first).
pub const RISE_SAMPLES: usize = 1024;

struct Slot {
    def: AlarmDef,
    machine: Machine,
    eval: Eval,
    value: Option<f64>,
    raised_at: Option<i64>,
}

struct Engine {
    slots: Vec<Slot>,
    by_id: HashMap<String, usize>,
    /// Input tag → its alarms (shared, so the hot path clones a pointer, not a list).
    by_tag: HashMap<TagPath, Arc<[usize]>>,
    by_suppress: HashMap<TagPath, Vec<usize>>,
    /// Member tag → (vote slot, member index).
    by_member: HashMap<TagPath, Vec<(usize, usize)>>,
    /// The vote slots.
    votes: Vec<usize>,
    stale: Vec<usize>,
    /// Latest good numeric value of every tag some alarm refers to as a setpoint.
    setpoints: HashMap<TagPath, f64>,
    last_seen: HashMap<TagPath, i64>,
    started: i64,
    journal: Journal,
    pending: VecDeque<Event>,
    journal_failed: bool,
    /// The newest journal records (at most [`HISTORY_RECORDS`]), oldest first.
    history: VecDeque<Record>,
    observers: tokio::sync::broadcast::Sender<Transition>,
    /// Critical transitions go on a channel of their own, read first by every
    /// [`Subscription`]: they never wait behind, or get lost with, lower-priority ones.
    critical: tokio::sync::broadcast::Sender<Transition>,
    seq: u64,
}

/// The alarm evaluator on the bus.
pub struct AlarmProcessor {
    engine: Arc<Mutex<Engine>>,
    clock: Clock,
}

/// The handle the HTTP layer (and tests) use: list and operate alarms. Cheap to clone.
#[derive(Clone)]
pub struct AlarmControl {
    engine: Arc<Mutex<Engine>>,
    clock: Clock,
}

fn lock(e: &Mutex<Engine>) -> MutexGuard<'_, Engine> {
    e.lock().unwrap_or_else(|p| p.into_inner())
}

/// Opens the journal in `dir`, restores every alarm's state from it, and returns the processor
/// and its control handle.
pub fn open(
    defs: &[AlarmDef],
    storage: Arc<dyn Storage>,
    dir: std::path::PathBuf,
    clock: Clock,
) -> Result<(AlarmProcessor, AlarmControl), JournalError> {
    let (journal, opened) = Journal::open(storage, dir.clone())?;
    for p in &opened.problems {
        tracing::warn!("alarm journal {}: {p}", dir.display());
    }
    let restored = restore(&opened.records);
    let mut raised: HashMap<&str, i64> = HashMap::new();
    for r in &opened.records {
        if r.from == State::Normal && r.to == State::UnackActive {
            raised.insert(&r.alarm, r.ts);
        }
    }
    let mut defs = defs.to_vec();
    // Fail-safe: one bad-quality alarm per input tag that has none.
    let mut tags: Vec<(TagPath, Priority, String, String)> = Vec::new();
    // (a vote's members are inputs too: each gets one, at the vote's priority at least)
    let inputs = defs.iter().flat_map(|d| match &d.condition {
        Condition::Vote { members, .. } => members
            .iter()
            .map(|m| (m.clone(), d.priority, d.area.clone(), m.asset().to_owned()))
            .collect::<Vec<_>>(),
        _ => vec![(d.tag.clone(), d.priority, d.area.clone(), d.asset.clone())],
    });
    // (indexed: linear searches here made opening 100 000 tags take minutes)
    let mut at: HashMap<TagPath, usize> = HashMap::new();
    for (tag, priority, area, asset) in inputs {
        match at.get(&tag) {
            Some(&i) => tags[i].1 = tags[i].1.min(priority),
            None => {
                at.insert(tag.clone(), tags.len());
                tags.push((tag, priority, area, asset));
            }
        }
    }
    let configured: std::collections::HashSet<TagPath> = defs
        .iter()
        .filter(|d| d.condition == Condition::BadQuality)
        .map(|d| d.tag.clone())
        .collect();
    for (tag, priority, area, asset) in tags {
        if !configured.contains(&tag) {
            defs.push(AlarmDef {
                id: format!("{}:bad_quality", tag.as_str()),
                kind: "bad_quality",
                condition: Condition::BadQuality,
                priority,
                deadband: 0.0,
                on_delay_ns: 0,
                off_delay_ns: 0,
                latching: false,
                message: format!(
                    "{}: input failed (bad quality), value unknown",
                    tag.as_str()
                ),
                unit: String::new(),
                area,
                asset,
                suppress: None,
                tag,
            });
        }
    }
    let mut e = Engine {
        slots: Vec::new(),
        by_id: HashMap::new(),
        by_tag: HashMap::new(),
        by_suppress: HashMap::new(),
        by_member: HashMap::new(),
        votes: Vec::new(),
        stale: Vec::new(),
        setpoints: HashMap::new(),
        last_seen: HashMap::new(),
        started: clock(),
        journal,
        pending: VecDeque::new(),
        journal_failed: false,
        history: VecDeque::with_capacity(opened.records.len().min(HISTORY_RECORDS)),
        observers: tokio::sync::broadcast::channel(TRANSITION_CHANNEL).0,
        critical: tokio::sync::broadcast::channel(TRANSITION_CHANNEL).0,
        seq: 0,
    };
    let skip = opened.records.len().saturating_sub(HISTORY_RECORDS);
    e.history.extend(opened.records.iter().skip(skip).cloned());
    let mut by_tag: HashMap<TagPath, Vec<usize>> = HashMap::new();
    for def in defs {
        let i = e.slots.len();
        let mut machine = restored
            .get(&def.id)
            .copied()
            .unwrap_or(Machine::new(false));
        machine.latching = def.latching;
        e.by_id.insert(def.id.clone(), i);
        let mut members = Vec::new();
        if let Condition::Vote { members: tags, .. } = &def.condition {
            for (m, t) in tags.iter().enumerate() {
                e.by_member.entry(t.clone()).or_default().push((i, m));
            }
            members = vec![Member::default(); tags.len()];
            e.votes.push(i);
        } else {
            by_tag.entry(def.tag.clone()).or_default().push(i);
        }
        if let Some(s) = &def.suppress {
            e.by_suppress.entry(s.tag.clone()).or_default().push(i);
        }
        if let Condition::Deviation { setpoint, .. } = &def.condition {
            e.setpoints.entry(setpoint.clone()).or_insert(f64::NAN);
        }
        if matches!(def.condition, Condition::Stale(_)) {
            e.stale.push(i);
        }
        let raised_at = restored
            .contains_key(&def.id)
            .then(|| raised.get(def.id.as_str()).copied())
            .flatten();
        e.slots.push(Slot {
            raised_at,
            eval: Eval {
                raw: machine.condition,
                members,
                ..Eval::default()
            },
            def,
            machine,
            value: None,
        });
    }
    e.by_tag = by_tag.into_iter().map(|(t, v)| (t, v.into())).collect();
    let engine = Arc::new(Mutex::new(e));
    Ok((
        AlarmProcessor {
            engine: engine.clone(),
            clock: clock.clone(),
        },
        AlarmControl { engine, clock },
    ))
}

/// Sorts a batch's process transitions by priority, most urgent first; stable, so the
/// transitions of one alarm (one priority) keep their order.
fn by_priority(out: Out) -> Out {
    let (records, events, transitions) = out;
    if transitions.len() != records.len() || events.len() != records.len() {
        // one record, one event and one transition per process step; keep any other shape as is
        return (records, events, transitions);
    }
    let mut all: Vec<(Record, Event, Transition)> = records
        .into_iter()
        .zip(events)
        .zip(transitions)
        .map(|((r, e), t)| (r, e, t))
        .collect();
    all.sort_by_key(|(_, _, t)| t.priority);
    let mut out: Out = (Vec::new(), Vec::new(), Vec::new());
    for (r, e, t) in all {
        out.0.push(r);
        out.1.push(e);
        out.2.push(t);
    }
    out
}

/// The priority of an alarm-transition event.
fn event_priority(e: &Event) -> Option<Priority> {
    match &e.kind {
        EventKind::AlarmTransition { priority, .. } => Priority::ALL
            .iter()
            .find(|(n, _)| n == priority)
            .map(|(_, p)| *p),
        _ => None,
    }
}

/// Least-squares slope of (ns, value) points, in value per second.
fn slope(w: &VecDeque<(i64, f64)>) -> Option<f64> {
    let t0 = w.front()?.0;
    let n = w.len() as f64;
    let (mut st, mut sv) = (0.0, 0.0);
    for &(t, v) in w {
        st += (t - t0) as f64 / 1e9;
        sv += v;
    }
    let (mt, mv) = (st / n, sv / n);
    let (mut num, mut den) = (0.0, 0.0);
    for &(t, v) in w {
        let dt = (t - t0) as f64 / 1e9 - mt;
        num += dt * (v - mv);
        den += dt * dt;
    }
    (den > 0.0).then(|| num / den)
}

/// A receiver of every journaled transition ([`AlarmControl::subscribe`]): critical ones
/// first. Critical transitions ride a channel of their own, so one waiting is handed out before
/// any waiting lower-priority transition, and a receiver that falls behind on the others does
/// not lose a critical one (each channel holds [`TRANSITION_CHANNEL`]). Across the two, order
/// is by priority, then by `seq`; within one alarm it is always `seq` order.
pub struct Subscription {
    critical: tokio::sync::broadcast::Receiver<Transition>,
    rest: tokio::sync::broadcast::Receiver<Transition>,
    critical_closed: bool,
}

impl Subscription {
    /// The next transition, critical first; `Lagged(n)` when this receiver lost `n` of one
    /// channel; `Closed` once the engine is gone and both channels are drained.
    pub async fn recv(&mut self) -> Result<Transition, tokio::sync::broadcast::error::RecvError> {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            if self.critical_closed {
                return self.rest.recv().await;
            }
            tokio::select! {
                biased;
                r = self.critical.recv() => match r {
                    Err(RecvError::Closed) => self.critical_closed = true,
                    r => return r,
                },
                r = self.rest.recv() => return r,
            }
        }
    }

    /// The next transition if one is waiting, critical first.
    pub fn try_recv(&mut self) -> Result<Transition, tokio::sync::broadcast::error::TryRecvError> {
        use tokio::sync::broadcast::error::TryRecvError;
        match self.critical.try_recv() {
            Err(TryRecvError::Empty | TryRecvError::Closed) => self.rest.try_recv(),
            r => r,
        }
    }
}

fn numeric(v: &Value) -> Option<f64> {
    v.as_f64().filter(|x| x.is_finite())
}

impl Engine {
    /// Feeds `input` to slot `i`; returns the record and events when the state changed (or
    /// always, for an operator action), without journaling or changing the slot (an action is
    /// journaled first, then committed).
    fn apply(
        &mut self,
        i: usize,
        input: Input,
        ts: i64,
        actor: Option<(&str, &str)>,
    ) -> Result<Option<Applied>, Refused> {
        let slot = &self.slots[i];
        let next = step(slot.machine, input)?;
        if next.state == slot.machine.state && actor.is_none() {
            return Ok(None);
        }
        let d = &slot.def;
        let message = d.render(slot.value);
        let (user, comment) = actor.unwrap_or(("", ""));
        let action = input
            .action_name()
            .filter(|_| actor.is_some())
            .unwrap_or("");
        let record = Record {
            ts,
            alarm: d.id.clone(),
            area: d.area.clone(),
            priority: d.priority.as_str().to_owned(),
            from: slot.machine.state,
            to: next.state,
            condition: next.condition,
            shelved_until: next.shelved_until,
            value: slot.value,
            action: action.to_owned(),
            user: user.to_owned(),
            comment: comment.to_owned(),
        };
        let mut events = Vec::new();
        if actor.is_some() {
            events.push(
                Event::new(
                    ts,
                    SOURCE,
                    EventKind::OperatorAction {
                        user: user.to_owned(),
                        action: action.to_owned(),
                        target: d.id.clone(),
                        comment: comment.to_owned(),
                    },
                )
                .for_asset(d.asset.clone()),
            );
        }
        events.push(
            Event::new(
                ts,
                SOURCE,
                EventKind::AlarmTransition {
                    alarm: d.id.clone(),
                    tag: d.tag.as_str().to_owned(),
                    priority: d.priority.as_str().to_owned(),
                    area: d.area.clone(),
                    from: slot.machine.state.as_str().to_owned(),
                    to: next.state.as_str().to_owned(),
                    value: slot.value.map(Value::F64),
                    message: message.clone(),
                },
            )
            .for_asset(d.asset.clone()),
        );
        let t = Transition {
            alarm: d.id.clone(),
            ts,
            from: slot.machine.state,
            to: next.state,
            value: slot.value,
            message,
            priority: d.priority,
            tag: d.tag.as_str().to_owned(),
            asset: d.asset.clone(),
            area: d.area.clone(),
            kind: d.kind,
            action,
            user: user.to_owned(),
            comment: comment.to_owned(),
            seq: 0,
        };
        Ok(Some((next, record, events, t)))
    }

    fn commit(&mut self, i: usize, next: Machine, t: &Transition) {
        let slot = &mut self.slots[i];
        if slot.machine.state == State::Normal && next.state == State::UnackActive {
            slot.raised_at = Some(t.ts);
        }
        slot.machine = next;
        if t.from != t.to {
            // The one log line per transition.
            tracing::info!(
                "alarm {} {} -> {} [{}] {}",
                t.alarm,
                t.from,
                t.to,
                slot.def.priority.as_str(),
                t.message
            );
        }
    }

    /// A process input: applied at once (journaled with the batch).
    fn feed(&mut self, i: usize, input: Input, ts: i64, out: &mut Out) {
        match self.apply(i, input, ts, None) {
            Ok(Some((next, rec, ev, t))) => {
                self.commit(i, next, &t);
                out.0.push(rec);
                out.1.extend(ev);
                out.2.push(t);
            }
            // The state stays, but the condition may have changed (latched, suppressed, …).
            Ok(None) => {
                if let Ok(next) = step(self.slots[i].machine, input) {
                    self.slots[i].machine = next;
                }
            }
            Err(_) => {}
        }
    }

    /// The condition after deadband, or `None` to hold the current one.
    fn evaluate(&mut self, i: usize, s: &Sample, good: bool) -> Option<bool> {
        let setpoints = &self.setpoints;
        let slot = &mut self.slots[i];
        let v = numeric(&s.value).filter(|_| good);
        slot.value = v;
        let was = slot.eval.raw;
        let db = slot.def.deadband;
        let above = |x: f64, l: f64| if was { x > l - db } else { x >= l };
        let raw = match &slot.def.condition {
            Condition::BadQuality => matches!(s.quality, Quality::Bad(_)),
            Condition::Stale(_) => false,
            _ if !good => return None,
            Condition::High(l) => above(v?, *l),
            Condition::Low(l) => {
                if was {
                    v? < l + db
                } else {
                    v? <= *l
                }
            }
            Condition::RulBelow(h) => {
                if was {
                    v? < h + db
                } else {
                    v? < *h
                }
            }
            Condition::Rate(l) => {
                let x = v?;
                let prev = slot.eval.prev.replace((s.source_ts, x));
                let (pt, px) = prev?;
                let dt = (s.source_ts - pt) as f64 / 1e9;
                if dt <= 0.0 {
                    return None;
                }
                let r = ((x - px) / dt).abs();
                above(r, *l)
            }
            Condition::Deviation { setpoint, limit } => {
                let sp = setpoints.get(setpoint).copied().filter(|x| x.is_finite())?;
                above((v? - sp).abs(), *limit)
            }
            Condition::Discrete(state) => v? == *state,
            Condition::Anomaly => v? >= 0.5,
            Condition::RateOfRise { per_s, window_ns } => {
                let x = v?;
                let w = &mut slot.eval.window;
                if w.back().is_some_and(|&(t, _)| s.source_ts <= t) {
                    return None; // out of order or repeated: no slope from it
                }
                w.push_back((s.source_ts, x));
                while w.len() > RISE_SAMPLES
                    || w.front()
                        .is_some_and(|&(t, _)| s.source_ts - t > *window_ns)
                {
                    w.pop_front();
                }
                let &(t0, _) = w.front()?;
                if w.len() < 3 || s.source_ts - t0 < window_ns / 2 {
                    return None;
                }
                let slope = slope(w)?;
                // compared per minute, so a deadband is in units per minute
                above(slope * 60.0, per_s * 60.0)
            }
            Condition::Stuck {
                tolerance,
                after_ns,
            } => {
                let x = v?;
                match slot.eval.prev {
                    Some((since, r)) if (x - r).abs() <= *tolerance => {
                        s.source_ts - since >= *after_ns
                    }
                    _ => {
                        slot.eval.prev = Some((s.source_ts, x));
                        false
                    }
                }
            }
            Condition::OutOfRange { lo, hi } => {
                let x = v?;
                x < *lo || x > *hi
            }
            // evaluated from its members, never from a sample of its own
            Condition::Vote { .. } => return None,
        };
        slot.eval.raw = raw;
        Some(raw)
    }

    /// Applies on/off delays to a raw condition seen at `ts`.
    fn delayed(&mut self, i: usize, raw: bool, ts: i64) -> Option<bool> {
        let slot = &mut self.slots[i];
        if raw == slot.machine.condition {
            slot.eval.since = None;
            return None;
        }
        let delay = if raw {
            slot.def.on_delay_ns
        } else {
            slot.def.off_delay_ns
        };
        let since = *slot.eval.since.get_or_insert(ts);
        if ts - since >= delay {
            slot.eval.since = None;
            Some(raw)
        } else {
            None
        }
    }

    fn process(&mut self, batch: &mut Batch, now: i64) {
        let mut out: Out = (Vec::new(), Vec::new(), Vec::new());
        let mut vote_ts = i64::MIN;
        for s in &batch.samples {
            let good = s.quality.is_good();
            if let Some(sp) = self.setpoints.get_mut(&s.tag) {
                *sp = numeric(&s.value).filter(|_| good).unwrap_or(f64::NAN);
            }
            if let Some(ids) = self.by_suppress.get(&s.tag).cloned() {
                let on = good
                    && numeric(&s.value).is_some_and(|v| {
                        ids.first()
                            .and_then(|&i| self.slots[i].def.suppress.as_ref())
                            .is_some_and(|sup| sup.value == v)
                    });
                for i in ids {
                    self.feed(i, Input::Suppress(on), s.receive_ts, &mut out);
                }
            }
            if let Some(ms) = (!self.by_member.is_empty())
                .then(|| self.by_member.get(&s.tag).cloned())
                .flatten()
            {
                self.member_sample(&ms, s, good);
                vote_ts = vote_ts.max(s.receive_ts);
            }
            let Some(ids) = self.by_tag.get(&s.tag).cloned() else {
                continue;
            };
            self.last_seen.insert(s.tag.clone(), s.receive_ts);
            for &i in ids.iter() {
                let Some(raw) = self.evaluate(i, s, good) else {
                    continue;
                };
                if let Some(c) = self.delayed(i, raw, s.receive_ts) {
                    self.feed(i, Input::Condition(c), s.receive_ts, &mut out);
                }
            }
        }
        // votes after their members' own alarms (a member's stuck / out-of-range counts)
        if !self.votes.is_empty() {
            let ts = if vote_ts == i64::MIN { now } else { vote_ts };
            self.vote(ts, now, &mut out);
        }
        self.tick(now, &mut out);
        let (records, events, transitions) = by_priority(out);
        if !records.is_empty() {
            metrics::counter!("mw_alarm_transitions_total", "component" => "alarms", "instance" => "engine")
                .increment(records.len() as u64);
            match self.journal.append(&records) {
                Ok(()) => self.journal_failed = false,
                Err(e) => {
                    if !self.journal_failed {
                        tracing::error!("alarm journal: {e}; transitions are still emitted");
                    }
                    self.journal_failed = true;
                    metrics::counter!("mw_errors_total", "component" => "alarms", "instance" => "engine",
                        "stage" => "processing", "error_type" => "journal_write")
                    .increment(1);
                }
            }
            self.remember(records);
        }
        for t in transitions {
            self.announce(t);
        }
        // Critical alarm events go first in the batch, before any other event (from upstream
        // processors or operator actions); the rest follow in priority order.
        let split = events.partition_point(|e| event_priority(e) == Some(Priority::Critical));
        let mut events = events;
        let rest = events.split_off(split);
        batch.events.splice(0..0, events);
        batch.events.extend(self.pending.drain(..));
        batch.events.extend(rest);
    }

    /// Updates every vote that `s`'s tag is a member of.
    fn member_sample(&mut self, ms: &[(usize, usize)], s: &Sample, good: bool) {
        for &(i, m) in ms {
            let slot = &mut self.slots[i];
            let Condition::Vote { limit, .. } = slot.def.condition else {
                continue;
            };
            let db = slot.def.deadband;
            let member = &mut slot.eval.members[m];
            member.last_seen = Some(s.receive_ts);
            member.bad = matches!(s.quality, Quality::Bad(_));
            // an uncertain sample, or one without a number, holds the member's vote
            if let Some(x) = numeric(&s.value).filter(|_| good) {
                member.tripped = if member.tripped {
                    x > limit - db
                } else {
                    x >= limit
                };
            }
        }
    }

    /// Counts the votes of every vote alarm at `now` (a member without a sample for its stale
    /// time counts as faulty) and feeds the result at `ts`.
    fn vote(&mut self, ts: i64, now: i64, out: &mut Out) {
        for k in 0..self.votes.len() {
            let i = self.votes[k];
            let Condition::Vote {
                members,
                need,
                stale_ns,
                ..
            } = &self.slots[i].def.condition
            else {
                continue;
            };
            let mut count = 0usize;
            for (m, tag) in members.iter().enumerate() {
                let st = self.slots[i].eval.members[m];
                let stale = now - st.last_seen.unwrap_or(self.started) > *stale_ns;
                let fault = self.by_tag.get(tag).is_some_and(|ids| {
                    ids.iter().any(|&j| {
                        matches!(
                            self.slots[j].def.condition,
                            Condition::Stuck { .. } | Condition::OutOfRange { .. }
                        ) && self.slots[j].machine.condition
                    })
                });
                if st.tripped || st.bad || stale || fault {
                    count += 1;
                }
            }
            let raw = count >= *need;
            let slot = &mut self.slots[i];
            slot.value = Some(count as f64);
            slot.eval.raw = raw;
            if let Some(c) = self.delayed(i, raw, ts) {
                self.feed(i, Input::Condition(c), ts, out);
            }
        }
    }

    /// Time-driven inputs: stale inputs and shelve expiry.
    fn tick(&mut self, now: i64, out: &mut Out) {
        for k in 0..self.stale.len() {
            let i = self.stale[k];
            let Condition::Stale(after) = self.slots[i].def.condition else {
                continue;
            };
            let last = self
                .last_seen
                .get(&self.slots[i].def.tag)
                .copied()
                .unwrap_or(self.started);
            let stale = now - last > after;
            if stale {
                self.slots[i].value = None;
            }
            if stale != self.slots[i].machine.condition {
                self.slots[i].eval.raw = stale;
                self.feed(i, Input::Condition(stale), now, out);
            }
        }
        for i in 0..self.slots.len() {
            if self.slots[i].machine.state == State::Shelved {
                self.feed(i, Input::Tick { now }, now, out);
            }
        }
    }

    /// Keeps journaled records for [`AlarmControl::history`] (the newest [`HISTORY_RECORDS`]).
    fn remember(&mut self, records: impl IntoIterator<Item = Record>) {
        for r in records {
            if self.history.len() >= HISTORY_RECORDS {
                self.history.pop_front();
            }
            self.history.push_back(r);
        }
    }

    /// Numbers a journaled transition and sends it to the observers (never waits: a receiver
    /// that fell behind loses the oldest). Returns it numbered.
    fn announce(&mut self, mut t: Transition) -> Transition {
        self.seq += 1;
        t.seq = self.seq;
        // no receiver is not an error
        let _ = if t.priority == Priority::Critical {
            self.critical.send(t.clone())
        } else {
            self.observers.send(t.clone())
        };
        t
    }

    fn push_pending(&mut self, events: Vec<Event>) {
        for e in events {
            if self.pending.len() >= PENDING_EVENTS {
                self.pending.pop_front();
                metrics::counter!("mw_discarded_events_total", "component" => "alarms", "instance" => "engine",
                    "reason" => "queue_full")
                .increment(1);
            }
            self.pending.push_back(e);
        }
    }

    fn info(&self, s: &Slot) -> AlarmInfo {
        AlarmInfo {
            id: s.def.id.clone(),
            tag: s.def.tag.as_str().to_owned(),
            asset: s.def.asset.clone(),
            area: s.def.area.clone(),
            kind: s.def.kind,
            priority: s.def.priority,
            state: s.machine.state,
            condition: s.machine.condition,
            value: s.value,
            message: s.def.render(s.value),
            raised_at: s.raised_at,
            shelved_until: s.machine.shelved_until,
        }
    }
}

impl Processor for AlarmProcessor {
    fn process(&mut self, batch: &mut Batch) {
        let now = (self.clock)();
        lock(&self.engine).process(batch, now);
    }
}

impl AlarmControl {
    /// Every alarm not in `normal`, most urgent first (priority, then oldest raised).
    pub fn active(&self) -> Vec<AlarmInfo> {
        let e = lock(&self.engine);
        let mut v: Vec<AlarmInfo> = e
            .slots
            .iter()
            .filter(|s| s.machine.state != State::Normal)
            .map(|s| e.info(s))
            .collect();
        v.sort_by_key(|a| (a.priority, a.raised_at.unwrap_or(i64::MAX), a.id.clone()));
        v
    }

    /// Every configured alarm (including the automatic bad-quality ones), in config order.
    pub fn all(&self) -> Vec<AlarmInfo> {
        let e = lock(&self.engine);
        e.slots.iter().map(|s| e.info(s)).collect()
    }

    /// One alarm by id.
    pub fn get(&self, id: &str) -> Option<AlarmInfo> {
        let e = lock(&self.engine);
        e.by_id.get(id).map(|&i| e.info(&e.slots[i]))
    }

    pub fn acknowledge(
        &self,
        id: &str,
        comment: &str,
        user: &str,
    ) -> Result<Transition, ActionError> {
        self.perform(id, Action::Acknowledge, user, comment)
    }

    /// Shelves for `duration` (more than zero, at most 30 days) with a reason.
    pub fn shelve(
        &self,
        id: &str,
        duration: Duration,
        reason: &str,
        user: &str,
    ) -> Result<Transition, ActionError> {
        self.perform(id, Action::Shelve(duration), user, reason)
    }

    pub fn unshelve(&self, id: &str, user: &str) -> Result<Transition, ActionError> {
        self.perform(id, Action::Unshelve, user, "")
    }

    pub fn out_of_service(
        &self,
        id: &str,
        reason: &str,
        user: &str,
    ) -> Result<Transition, ActionError> {
        self.perform(id, Action::OutOfService, user, reason)
    }

    pub fn return_to_service(&self, id: &str, user: &str) -> Result<Transition, ActionError> {
        self.perform(id, Action::ReturnToService, user, "")
    }

    pub fn reset_latched(&self, id: &str, user: &str) -> Result<Transition, ActionError> {
        self.perform(id, Action::ResetLatched, user, "")
    }

    /// Does `action` on alarm `id` for `user`, with a comment (the reason of a shelve or an
    /// out of service, which need one). Journaled before it takes effect; refused when it does
    /// not apply in the alarm's state (nothing is journaled then).
    pub fn perform(
        &self,
        id: &str,
        action: Action,
        user: &str,
        comment: &str,
    ) -> Result<Transition, ActionError> {
        let input = match action {
            Action::Acknowledge => Input::Acknowledge,
            Action::Shelve(duration) => {
                if duration.is_zero() || duration > MAX_SHELVE {
                    return Err(ActionError::Invalid {
                        alarm: id.to_owned(),
                        what: format!(
                            "shelve duration must be more than 0 and at most 30 days, got {duration:?}"
                        ),
                    });
                }
                self.need_reason(id, comment, "shelve")?;
                let until = (self.clock)().saturating_add(duration.as_nanos() as i64);
                Input::Shelve { until }
            }
            Action::Unshelve => Input::Unshelve,
            Action::OutOfService => {
                self.need_reason(id, comment, "put out of service")?;
                Input::RemoveFromService
            }
            Action::ReturnToService => Input::ReturnToService,
            Action::ResetLatched => Input::ResetLatched,
        };
        self.act(id, input, user, comment)
    }

    /// A receiver of every transition from now on (process and operator), each sent once it is
    /// journaled. Bounded ([`TRANSITION_CHANNEL`]): a receiver that falls behind gets
    /// `RecvError::Lagged(n)` and continues with the oldest still kept; the engine never waits.
    pub fn subscribe(&self) -> Subscription {
        let e = lock(&self.engine);
        Subscription {
            critical: e.critical.subscribe(),
            rest: e.observers.subscribe(),
            critical_closed: false,
        }
    }

    /// Up to `limit` of the newest journal records (of the last [`HISTORY_RECORDS`]) with
    /// `ts >= since` and, if given, of alarm `alarm`, newest first.
    pub fn history(&self, limit: usize, since: Option<i64>, alarm: Option<&str>) -> Vec<Record> {
        let e = lock(&self.engine);
        e.history
            .iter()
            .rev()
            .filter(|r| since.is_none_or(|s| r.ts >= s))
            .filter(|r| alarm.is_none_or(|a| r.alarm == a))
            .take(limit)
            .cloned()
            .collect()
    }

    /// How many journal records [`AlarmControl::history`] and [`AlarmControl::kpis`] read
    /// (at most [`HISTORY_RECORDS`]).
    pub fn history_len(&self) -> usize {
        lock(&self.engine).history.len()
    }

    /// The KPIs over the `window` (ns) ending now, from the newest [`HISTORY_RECORDS`] journal
    /// records; `standing`, `stale` and `shelved` are the alarms' states now.
    pub fn kpis(&self, window: i64) -> crate::kpi::Kpis {
        let now = (self.clock)();
        let e = lock(&self.engine);
        let records: Vec<Record> = e.history.iter().cloned().collect();
        let mut k = crate::kpi::kpis(&records, now, window);
        k.standing = e
            .slots
            .iter()
            .filter(|s| s.machine.state != State::Normal)
            .count();
        k.stale = e
            .slots
            .iter()
            .filter(|s| {
                matches!(s.machine.state, State::UnackActive | State::AckActive)
                    && s.machine.condition
            })
            .filter_map(|s| s.raised_at.map(|t| (s.def.id.clone(), t)))
            .filter(|(_, t)| now - t > crate::kpi::STALE)
            .collect();
        k.stale
            .sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        k.shelved = e
            .slots
            .iter()
            .filter(|s| s.machine.state == State::Shelved)
            .map(|s| (s.def.id.clone(), s.machine.shelved_until))
            .collect();
        k.shelved.sort();
        k
    }

    fn need_reason(&self, id: &str, reason: &str, what: &str) -> Result<(), ActionError> {
        if reason.trim().is_empty() {
            return Err(ActionError::Invalid {
                alarm: id.to_owned(),
                what: format!("a reason is required to {what} an alarm"),
            });
        }
        Ok(())
    }

    fn act(
        &self,
        id: &str,
        input: Input,
        user: &str,
        comment: &str,
    ) -> Result<Transition, ActionError> {
        let mut e = lock(&self.engine);
        let Some(&i) = e.by_id.get(id) else {
            let suggestion = e
                .by_id
                .keys()
                .filter(|k| k.contains(id) || id.contains(k.as_str()))
                .min()
                .cloned();
            return Err(ActionError::UnknownAlarm {
                id: id.to_owned(),
                suggestion,
            });
        };
        let now = (self.clock)();
        let applied = e.apply(i, input, now, Some((user, comment)));
        let (next, record, events, t) = match applied {
            Ok(Some(x)) => x,
            Ok(None) => {
                return Err(ActionError::Invalid {
                    alarm: id.to_owned(),
                    what: "the action changed nothing".into(),
                });
            }
            Err(refused) => {
                return Err(ActionError::Refused {
                    alarm: id.to_owned(),
                    refused,
                });
            }
        };
        e.journal
            .append(std::slice::from_ref(&record))
            .map_err(|source| ActionError::Journal {
                alarm: id.to_owned(),
                source,
            })?;
        e.remember([record]);
        e.commit(i, next, &t);
        e.push_pending(events);
        Ok(e.announce(t))
    }
}
