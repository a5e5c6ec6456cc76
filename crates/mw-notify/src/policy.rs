//! The pure core: which alarm transitions become which notifications for which target, the
//! deduplication and rate limit per target, and the escalation timers. No I/O, no clock: every
//! call takes `now` (ns since the Unix epoch), so tests drive time explicitly.
//!
//! * **Filter**: a target is told of a transition when the alarm's priority is at least its
//!   `min_priority`, its area is listed (or none are) and the state entered is in `states`.
//! * **Dedup**: the same alarm entering the same state again within `dedup` of the last one sent
//!   to this target is dropped (`duplicate`).
//! * **Rate limit**: a token bucket per target, `max_per_minute` tokens, refilled continuously.
//!   A notification finding the bucket empty is dropped (`rate_limited`) and counted; once a
//!   token is back ([`Engine::tick`]) the target gets one summary, "N more notifications
//!   suppressed by the rate limit". Escalations and summaries take tokens too.
//! * **Escalation**: an alarm entering `unack_active` or `rtn_unack` starts an episode; every
//!   `[[notify.escalation]]` it matches fires `after` its start and then every `repeat` while the
//!   episode lasts. Any transition to another state (acknowledged, shelved, suppressed, out of
//!   service, normal) ends it. `escalation` in the notification counts the escalation
//!   notifications of the episode (1, 2, …; 0 for an ordinary notification).
//!
//! Memory is bounded: at most [`MAX_EPISODES`] open episodes and [`MAX_DEDUP`] remembered keys
//! per target (beyond, the oldest are forgotten and counted).

use std::collections::HashMap;
use std::time::Duration;

use mw_model::{Event, EventKind, Value};
use serde::Serialize;

use crate::config::{EscalationConfig, Filter, NotifySection, Priority};

/// Open escalation episodes kept at most (alarms unacknowledged at once).
pub const MAX_EPISODES: usize = 10_000;
/// Remembered (alarm, state) keys per target for deduplication.
pub const MAX_DEDUP: usize = 10_000;

const NS_PER_MINUTE: f64 = 60e9;

/// What a notification is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoteKind {
    /// An alarm transition.
    Alarm,
    /// An alarm still unacknowledged past an escalation's `after` (or `repeat`).
    Escalation,
    /// The rate limit's summary of what it dropped.
    Suppressed,
}

/// The alarm a notification is about.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlarmFields {
    pub alarm: String,
    pub tag: String,
    pub asset: Option<String>,
    pub area: String,
    pub priority: String,
    pub from: String,
    pub to: String,
    pub value: Option<Value>,
    /// Who caused the transition, when an operator did (acknowledge, shelve, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator: Option<Operator>,
}

/// The operator action behind a transition (from the `OperatorAction` event the alarm engine
/// emits just before it).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Operator {
    pub user: String,
    pub action: String,
    pub comment: String,
}

/// One notification, as sent (its JSON is the webhook body and the MQTT payload).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Notification {
    #[serde(rename = "type")]
    pub kind: NoteKind,
    /// Unique per notification: receivers can drop a retried delivery they already have.
    pub id: String,
    #[serde(flatten)]
    pub alarm: Option<AlarmFields>,
    pub message: String,
    /// When the transition happened (escalations and summaries: when they were made), RFC 3339.
    pub ts: String,
    pub site: String,
    pub host: String,
    /// 0: an ordinary notification; n: the n-th escalation of this unacknowledged episode.
    pub escalation: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub escalation_name: Option<String>,
    /// Summaries: how many notifications the rate limit dropped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppressed: Option<u64>,
    /// Critical notifications go first in a target's queue.
    #[serde(skip)]
    pub rank: Priority,
}

/// A notification for target `target` (an index into the section's targets).
#[derive(Clone, Debug, PartialEq)]
pub struct Outgoing {
    pub target: usize,
    pub note: Notification,
}

/// Why a notification was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    Duplicate,
    RateLimited,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Duplicate => "duplicate",
            DropReason::RateLimited => "rate_limited",
        }
    }
}

/// What one step produced.
#[derive(Debug, Default, PartialEq)]
pub struct Step {
    pub out: Vec<Outgoing>,
    pub dropped: Vec<(usize, DropReason)>,
}

/// A token bucket: `capacity` tokens, refilled at `capacity` per minute.
#[derive(Clone, Debug)]
struct Bucket {
    capacity: f64,
    tokens: f64,
    at: i64,
}

impl Bucket {
    fn new(per_minute: u32, now: i64) -> Bucket {
        Bucket {
            capacity: f64::from(per_minute),
            tokens: f64::from(per_minute),
            at: now,
        }
    }

    fn refill(&mut self, now: i64) {
        if now > self.at {
            let dt = (now - self.at) as f64;
            self.tokens = (self.tokens + dt * self.capacity / NS_PER_MINUTE).min(self.capacity);
            self.at = now;
        }
    }

    /// Takes a token if there is one (an unlimited bucket always has one).
    fn take(&mut self, now: i64) -> bool {
        if self.capacity == 0.0 {
            return true;
        }
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

struct TargetState {
    filter: Filter,
    bucket: Bucket,
    dedup_ns: i64,
    /// (alarm, state) → when last sent.
    sent: HashMap<(String, String), i64>,
    suppressed: u64,
}

struct Episode {
    since: i64,
    priority: Priority,
    area: String,
    fields: AlarmFields,
    message: String,
    /// Per escalation: how often it fired in this episode.
    fired: Vec<u32>,
    /// Escalation notifications of this episode so far.
    level: u32,
}

/// The notification policy of one `[notify]` section.
pub struct Engine {
    targets: Vec<TargetState>,
    escalations: Vec<EscalationConfig>,
    episodes: HashMap<String, Episode>,
    site: String,
    host: String,
    seq: u64,
    /// Episodes not opened because [`MAX_EPISODES`] were open.
    pub episodes_refused: u64,
    /// No escalation is due before this (ns): ticks before it skip the episode scan.
    wake: i64,
    /// The last operator action seen (alarm, ts, who), for the transition that follows it.
    last_action: Option<(String, i64, Operator)>,
}

fn matches(ep: &Episode, esc: &EscalationConfig) -> bool {
    ep.priority >= esc.min_priority && (esc.areas.is_empty() || esc.areas.contains(&ep.area))
}

fn ns(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// The states of an unacknowledged alarm (what escalation waits on).
pub fn unacknowledged(state: &str) -> bool {
    matches!(state, "unack_active" | "rtn_unack")
}

impl Engine {
    pub fn new(section: &NotifySection, site: &str, host: &str, now: i64) -> Engine {
        Engine {
            targets: section
                .targets
                .iter()
                .map(|t| TargetState {
                    filter: t.filter.clone(),
                    bucket: Bucket::new(t.max_per_minute, now),
                    dedup_ns: ns(t.dedup),
                    sent: HashMap::new(),
                    suppressed: 0,
                })
                .collect(),
            escalations: section.escalations.clone(),
            episodes: HashMap::new(),
            site: site.to_owned(),
            host: host.to_owned(),
            seq: 0,
            episodes_refused: 0,
            wake: i64::MAX,
            last_action: None,
        }
    }

    /// Open escalation episodes.
    pub fn open_episodes(&self) -> usize {
        self.episodes.len()
    }

    fn next_id(&mut self, now: i64) -> String {
        self.seq += 1;
        format!("{}-{now}-{}", self.host, self.seq)
    }

    /// Hands `note` to `target` through its rate limit.
    fn offer(&mut self, target: usize, note: Notification, now: i64, step: &mut Step) {
        let t = &mut self.targets[target];
        if t.bucket.take(now) {
            step.out.push(Outgoing { target, note });
        } else {
            t.suppressed += 1;
            step.dropped.push((target, DropReason::RateLimited));
        }
    }

    /// One event from the bus (anything but an alarm transition is ignored).
    pub fn on_event(&mut self, e: &Event, now: i64) -> Step {
        let mut step = Step::default();
        if let EventKind::OperatorAction {
            user,
            action,
            target,
            comment,
        } = &e.kind
        {
            let op = Operator {
                user: user.clone(),
                action: action.clone(),
                comment: comment.clone(),
            };
            self.last_action = Some((target.clone(), e.ts, op));
            return step;
        }
        let EventKind::AlarmTransition {
            alarm,
            tag,
            priority,
            area,
            from,
            to,
            value,
            message,
        } = &e.kind
        else {
            return step;
        };
        let rank = Priority::parse(priority);
        let operator = match self.last_action.take() {
            Some((target, ts, op)) if target == *alarm && ts == e.ts => Some(op),
            _ => None,
        };
        let fields = AlarmFields {
            alarm: alarm.clone(),
            tag: tag.clone(),
            asset: e.asset.clone(),
            area: area.clone(),
            priority: priority.clone(),
            from: from.clone(),
            to: to.clone(),
            value: value.clone(),
            operator,
        };
        // escalation episodes
        if unacknowledged(to) {
            if let Some(ep) = self.episodes.get_mut(alarm) {
                ep.fields = fields.clone();
                ep.message = message.clone();
            } else if self.episodes.len() < MAX_EPISODES {
                let ep = Episode {
                    since: e.ts,
                    priority: rank,
                    area: area.clone(),
                    fields: fields.clone(),
                    message: message.clone(),
                    fired: vec![0; self.escalations.len()],
                    level: 0,
                };
                for (k, esc) in self.escalations.iter().enumerate() {
                    if matches(&ep, esc)
                        && let Some(at) = next_due(&ep, k, esc)
                    {
                        self.wake = self.wake.min(at);
                    }
                }
                self.episodes.insert(alarm.clone(), ep);
            } else {
                self.episodes_refused += 1;
            }
        } else {
            self.episodes.remove(alarm);
        }
        // ordinary notifications
        for i in 0..self.targets.len() {
            let t = &mut self.targets[i];
            let f = &t.filter;
            if rank < f.min_priority
                || (!f.areas.is_empty() && !f.areas.contains(area))
                || !f.states.contains(to)
            {
                continue;
            }
            if t.dedup_ns > 0 {
                let key = (alarm.clone(), to.clone());
                if let Some(&last) = t.sent.get(&key)
                    && now.saturating_sub(last) < t.dedup_ns
                {
                    step.dropped.push((i, DropReason::Duplicate));
                    continue;
                }
                if t.sent.len() >= MAX_DEDUP {
                    let cut = now.saturating_sub(t.dedup_ns);
                    t.sent.retain(|_, at| *at >= cut);
                    if t.sent.len() >= MAX_DEDUP
                        && let Some(oldest) = t
                            .sent
                            .iter()
                            .min_by_key(|(_, at)| **at)
                            .map(|(k, _)| k.clone())
                    {
                        t.sent.remove(&oldest);
                    }
                }
                t.sent.insert(key, now);
            }
            let id = self.next_id(now);
            let note = Notification {
                kind: NoteKind::Alarm,
                id,
                alarm: Some(fields.clone()),
                message: message.clone(),
                ts: mw_model::format_rfc3339_ns(e.ts),
                site: self.site.clone(),
                host: self.host.clone(),
                escalation: 0,
                escalation_name: None,
                suppressed: None,
                rank,
            };
            self.offer(i, note, now, &mut step);
        }
        step
    }

    /// Time passing: due escalations, rate-limit summaries, dedup memory pruned.
    pub fn tick(&mut self, now: i64) -> Step {
        let mut step = Step::default();
        if now >= self.wake {
            self.escalate(now, &mut step);
        }
        // rate-limit summaries
        for i in 0..self.targets.len() {
            let t = &mut self.targets[i];
            if t.suppressed > 0 && t.bucket.take(now) {
                let n = std::mem::take(&mut t.suppressed);
                let id = self.next_id(now);
                step.out.push(Outgoing {
                    target: i,
                    note: Notification {
                        kind: NoteKind::Suppressed,
                        id,
                        alarm: None,
                        message: format!("{n} more notifications suppressed by the rate limit"),
                        ts: mw_model::format_rfc3339_ns(now),
                        site: self.site.clone(),
                        host: self.host.clone(),
                        escalation: 0,
                        escalation_name: None,
                        suppressed: Some(n),
                        rank: Priority::Low,
                    },
                });
            }
            let t = &mut self.targets[i];
            if t.dedup_ns > 0 && !t.sent.is_empty() {
                let cut = now.saturating_sub(t.dedup_ns);
                t.sent.retain(|_, at| *at >= cut);
            }
        }
        step
    }

    /// Fires the escalations due at `now`, oldest episode first (a deterministic order), and
    /// sets when the next one is due.
    fn escalate(&mut self, now: i64, step: &mut Step) {
        let mut due: Vec<(i64, String)> = Vec::new();
        for (alarm, ep) in &self.episodes {
            for (k, esc) in self.escalations.iter().enumerate() {
                if !matches(ep, esc) {
                    continue;
                }
                if let Some(at) = next_due(ep, k, esc)
                    && now >= at
                {
                    due.push((ep.since, alarm.clone()));
                    break;
                }
            }
        }
        due.sort();
        for (_, alarm) in due {
            let mut fire: Vec<(usize, u32, String)> = Vec::new();
            let Some(ep) = self.episodes.get_mut(&alarm) else {
                continue;
            };
            for (k, esc) in self.escalations.iter().enumerate() {
                if !matches(ep, esc) {
                    continue;
                }
                let Some(at) = next_due(ep, k, esc) else {
                    continue;
                };
                if now < at {
                    continue;
                }
                // fire once, and skip the repeats a stalled clock missed
                ep.fired[k] = match esc.repeat {
                    None => 1,
                    Some(r) => {
                        let first = ep.since.saturating_add(ns(esc.after));
                        let n = now.saturating_sub(first) / ns(r).max(1) + 1;
                        u32::try_from(n).unwrap_or(u32::MAX)
                    }
                };
                ep.level += 1;
                fire.push((k, ep.level, esc.name.clone()));
            }
            let fields = ep.fields.clone();
            let message = ep.message.clone();
            let since = ep.since;
            let rank = ep.priority;
            for (k, level, name) in fire {
                let mins = (now.saturating_sub(since)) / 60_000_000_000;
                let secs = (now.saturating_sub(since)) / 1_000_000_000 % 60;
                for ti in self.escalations[k].targets.clone() {
                    let id = self.next_id(now);
                    let note = Notification {
                        kind: NoteKind::Escalation,
                        id,
                        alarm: Some(fields.clone()),
                        message: format!("unacknowledged for {mins} min {secs} s: {message}"),
                        ts: mw_model::format_rfc3339_ns(now),
                        site: self.site.clone(),
                        host: self.host.clone(),
                        escalation: level,
                        escalation_name: Some(name.clone()),
                        suppressed: None,
                        rank,
                    };
                    self.offer(ti, note, now, step);
                }
            }
        }
        let mut wake = i64::MAX;
        for ep in self.episodes.values() {
            for (k, esc) in self.escalations.iter().enumerate() {
                if matches(ep, esc)
                    && let Some(at) = next_due(ep, k, esc)
                {
                    wake = wake.min(at);
                }
            }
        }
        self.wake = wake;
    }
}

/// When escalation `k` of `ep` fires next (`None`: it fired and does not repeat).
fn next_due(ep: &Episode, k: usize, esc: &EscalationConfig) -> Option<i64> {
    let n = ep.fired[k];
    let first = ep.since.saturating_add(ns(esc.after));
    match (n, esc.repeat) {
        (0, _) => Some(first),
        (_, None) => None,
        (n, Some(r)) => Some(first.saturating_add(ns(r).saturating_mul(i64::from(n)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{
        DEFAULT_SIGNATURE_HEADER, Endpoint, Retry, TargetConfig, TargetKind, WebhookConfig,
    };

    const S: i64 = 1_000_000_000;
    const T0: i64 = 1_800_000_000 * S;

    fn target(name: &str, per_minute: u32, dedup_s: u64) -> TargetConfig {
        TargetConfig {
            name: name.to_owned(),
            kind: TargetKind::Webhook(WebhookConfig {
                endpoint: Endpoint {
                    https: false,
                    host: "127.0.0.1".into(),
                    port: 9,
                    path: "/".into(),
                },
                ca: None,
                headers: vec![],
                header_files: vec![],
                secret_file: None,
                signature_header: DEFAULT_SIGNATURE_HEADER.into(),
                timeout: Duration::from_secs(1),
                retry: Retry {
                    retries: 0,
                    backoff: Duration::from_millis(1),
                    backoff_max: Duration::from_millis(1),
                },
            }),
            filter: Filter::default(),
            max_per_minute: per_minute,
            dedup: Duration::from_secs(dedup_s),
            queue: 16,
        }
    }

    fn tr(ts: i64, alarm: &str, prio: &str, area: &str, from: &str, to: &str) -> Event {
        Event::new(
            ts,
            "alarms/engine",
            EventKind::AlarmTransition {
                alarm: alarm.into(),
                tag: format!("acme/{alarm}/value"),
                priority: prio.into(),
                area: area.into(),
                from: from.into(),
                to: to.into(),
                value: Some(Value::F64(42.5)),
                message: format!("{alarm} is {to}"),
            },
        )
        .for_asset(format!("acme/{alarm}"))
    }

    fn sent(step: &Step) -> Vec<(usize, NoteKind, String, u32)> {
        step.out
            .iter()
            .map(|o| {
                (
                    o.target,
                    o.note.kind,
                    o.note
                        .alarm
                        .as_ref()
                        .map_or(String::new(), |a| a.to.clone()),
                    o.note.escalation,
                )
            })
            .collect()
    }

    fn engine(targets: Vec<TargetConfig>, escalations: Vec<EscalationConfig>) -> Engine {
        Engine::new(
            &NotifySection {
                targets,
                escalations,
            },
            "Plant 1",
            "gw1",
            T0,
        )
    }

    #[test]
    fn filters_by_state_priority_and_area() {
        let mut t1 = target("all", 0, 0);
        t1.filter.states = vec!["unack_active".into(), "normal".into(), "rtn_unack".into()];
        let mut t2 = target("crit-gas", 0, 0);
        t2.filter.min_priority = Priority::High;
        t2.filter.areas = vec!["gas".into()];
        let mut e = engine(vec![t1, t2], vec![]);
        // (event, targets told)
        let cases: &[(Event, &[usize])] = &[
            (tr(T0, "a", "low", "gas", "normal", "unack_active"), &[0]),
            (
                tr(T0, "b", "critical", "gas", "normal", "unack_active"),
                &[0, 1],
            ),
            (
                tr(T0, "c", "critical", "water", "normal", "unack_active"),
                &[0],
            ),
            (
                tr(T0, "b", "critical", "gas", "unack_active", "ack_active"),
                &[],
            ),
            (
                tr(T0, "b", "critical", "gas", "ack_active", "normal"),
                &[0, 1],
            ),
            (tr(T0, "a", "low", "gas", "unack_active", "rtn_unack"), &[0]),
            (tr(T0, "a", "low", "gas", "rtn_unack", "shelved"), &[]),
            (tr(T0, "d", "high", "gas", "normal", "out_of_service"), &[]),
        ];
        for (ev, want) in cases {
            let got: Vec<usize> = e.on_event(ev, T0).out.iter().map(|o| o.target).collect();
            assert_eq!(&got, want, "{:?}", ev.kind);
        }
        // other events are ignored
        let other = Event::new(
            T0,
            "x",
            EventKind::ConfigChange {
                summary: "s".into(),
            },
        );
        assert_eq!(e.on_event(&other, T0), Step::default());
    }

    #[test]
    fn body_carries_the_alarm() {
        let mut e = engine(vec![target("t", 0, 0)], vec![]);
        let s = e.on_event(
            &tr(
                T0,
                "gd1_lel_hihi",
                "critical",
                "gas",
                "normal",
                "unack_active",
            ),
            T0,
        );
        let j = serde_json::to_value(&s.out[0].note).unwrap();
        assert_eq!(j["type"], "alarm");
        assert_eq!(j["alarm"], "gd1_lel_hihi");
        assert_eq!(j["tag"], "acme/gd1_lel_hihi/value");
        assert_eq!(j["asset"], "acme/gd1_lel_hihi");
        assert_eq!(j["area"], "gas");
        assert_eq!(j["priority"], "critical");
        assert_eq!(j["from"], "normal");
        assert_eq!(j["to"], "unack_active");
        assert_eq!(j["value"], 42.5);
        assert_eq!(j["message"], "gd1_lel_hihi is unack_active");
        assert_eq!(j["ts"], "2027-01-15T08:00:00.000Z");
        assert_eq!(j["site"], "Plant 1");
        assert_eq!(j["host"], "gw1");
        assert_eq!(j["escalation"], 0);
        assert!(j.get("suppressed").is_none() && j.get("escalation_name").is_none());
        assert!(j["id"].as_str().unwrap().starts_with("gw1-"));
    }

    #[test]
    fn dedup_within_the_window_only() {
        let mut e = engine(vec![target("t", 0, 60)], vec![]);
        let up = |ts| tr(ts, "a", "high", "x", "normal", "unack_active");
        let down = |ts| tr(ts, "a", "high", "x", "ack_active", "normal");
        assert_eq!(e.on_event(&up(T0), T0).out.len(), 1);
        assert_eq!(e.on_event(&down(T0 + S), T0 + S).out.len(), 1);
        let s = e.on_event(&up(T0 + 30 * S), T0 + 30 * S);
        assert!(s.out.is_empty());
        assert_eq!(s.dropped, vec![(0, DropReason::Duplicate)]);
        // another alarm is not a duplicate
        assert_eq!(
            e.on_event(
                &tr(T0, "b", "high", "x", "normal", "unack_active"),
                T0 + 30 * S
            )
            .out
            .len(),
            1
        );
        // past the window (measured from the last one sent): sent again
        assert_eq!(e.on_event(&up(T0 + 61 * S), T0 + 61 * S).out.len(), 1);
        // pruned at a tick
        e.tick(T0 + 200 * S);
        assert!(e.targets[0].sent.is_empty());
    }

    #[test]
    fn rate_limit_then_one_summary() {
        let mut e = engine(vec![target("t", 6, 0)], vec![]);
        let mut out = 0;
        let mut dropped = 0;
        for i in 0..10 {
            let s = e.on_event(
                &tr(T0, &format!("a{i}"), "low", "x", "normal", "unack_active"),
                T0,
            );
            out += s.out.len();
            dropped += s.dropped.len();
        }
        assert_eq!((out, dropped), (6, 4));
        // no token yet: no summary
        assert!(e.tick(T0 + 5 * S).out.is_empty());
        // one token every 10 s
        let s = e.tick(T0 + 10 * S);
        assert_eq!(s.out.len(), 1);
        let n = &s.out[0].note;
        assert_eq!((n.kind, n.suppressed), (NoteKind::Suppressed, Some(4)));
        assert_eq!(
            n.message,
            "4 more notifications suppressed by the rate limit"
        );
        assert!(e.tick(T0 + 100 * S).out.is_empty());
    }

    fn esc(after_s: u64, repeat_s: Option<u64>, targets: Vec<usize>) -> EscalationConfig {
        EscalationConfig {
            name: "crit".into(),
            min_priority: Priority::Critical,
            areas: vec![],
            after: Duration::from_secs(after_s),
            repeat: repeat_s.map(Duration::from_secs),
            targets,
        }
    }

    #[test]
    fn escalation_fires_once_after_the_delay_and_is_cancelled_by_ack() {
        let mut e = engine(
            vec![target("t", 0, 0), target("boss", 0, 0)],
            vec![esc(300, None, vec![1])],
        );
        e.on_event(
            &tr(T0, "g", "critical", "gas", "normal", "unack_active"),
            T0,
        );
        assert!(e.tick(T0 + 299 * S).out.is_empty());
        let s = e.tick(T0 + 300 * S);
        assert_eq!(
            sent(&s),
            vec![(1, NoteKind::Escalation, "unack_active".into(), 1)]
        );
        assert_eq!(s.out[0].note.escalation_name.as_deref(), Some("crit"));
        assert_eq!(
            s.out[0].note.message,
            "unacknowledged for 5 min 0 s: g is unack_active"
        );
        // no repeat configured
        assert!(e.tick(T0 + 3000 * S).out.is_empty());
        // a low-priority alarm never escalates
        e.on_event(&tr(T0, "l", "low", "gas", "normal", "unack_active"), T0);
        assert!(e.tick(T0 + 4000 * S).out.is_empty());
        // acknowledged before the delay: nothing
        e.on_event(
            &tr(T0, "h", "critical", "gas", "normal", "unack_active"),
            T0,
        );
        e.on_event(
            &tr(
                T0 + 10 * S,
                "h",
                "critical",
                "gas",
                "unack_active",
                "ack_active",
            ),
            T0 + 10 * S,
        );
        assert!(e.tick(T0 + 5000 * S).out.is_empty());
    }

    #[test]
    fn escalation_repeats_survive_return_to_normal_unacked_and_end_on_shelve() {
        let mut e = engine(vec![target("t", 0, 0)], vec![esc(60, Some(120), vec![0])]);
        e.on_event(
            &tr(T0, "g", "critical", "gas", "normal", "unack_active"),
            T0,
        );
        assert_eq!(e.tick(T0 + 60 * S).out.len(), 1);
        // returned to normal, still unacknowledged: the episode goes on
        e.on_event(
            &tr(
                T0 + 90 * S,
                "g",
                "critical",
                "gas",
                "unack_active",
                "rtn_unack",
            ),
            T0 + 90 * S,
        );
        assert!(e.tick(T0 + 179 * S).out.is_empty());
        let s = e.tick(T0 + 180 * S);
        assert_eq!(
            sent(&s),
            vec![(0, NoteKind::Escalation, "rtn_unack".into(), 2)]
        );
        // a stalled clock: one notification, not one per missed repeat
        let s = e.tick(T0 + 1000 * S);
        assert_eq!(
            sent(&s),
            vec![(0, NoteKind::Escalation, "rtn_unack".into(), 3)]
        );
        assert!(e.tick(T0 + 1019 * S).out.is_empty());
        assert_eq!(e.tick(T0 + 1020 * S).out.len(), 1);
        // shelved: over
        e.on_event(
            &tr(
                T0 + 1030 * S,
                "g",
                "critical",
                "gas",
                "rtn_unack",
                "shelved",
            ),
            T0 + 1030 * S,
        );
        assert_eq!(e.open_episodes(), 0);
        assert!(e.tick(T0 + 9000 * S).out.is_empty());
    }

    #[test]
    fn escalations_take_rate_limit_tokens() {
        let mut e = engine(vec![target("t", 1, 0)], vec![esc(1, None, vec![0])]);
        e.on_event(
            &tr(T0, "g", "critical", "gas", "normal", "unack_active"),
            T0,
        );
        let s = e.tick(T0 + S);
        assert!(s.out.is_empty());
        assert_eq!(s.dropped, vec![(0, DropReason::RateLimited)]);
        let s = e.tick(T0 + 61 * S);
        assert_eq!(s.out[0].note.suppressed, Some(1));
    }

    #[test]
    fn a_later_episode_with_a_shorter_delay_is_not_missed() {
        let mut slow = esc(300, None, vec![0]);
        slow.name = "slow".into();
        let mut fast = esc(60, None, vec![0]);
        fast.name = "fast".into();
        fast.areas = vec!["gas".into()];
        let mut e = engine(vec![target("t", 0, 0)], vec![slow, fast]);
        // water: only the slow rule matches; a tick learns "nothing before T0 + 300 s"
        e.on_event(
            &tr(T0, "w", "critical", "water", "normal", "unack_active"),
            T0,
        );
        assert!(e.tick(T0 + 10 * S).out.is_empty());
        // gas, opened later, is due at T0 + 80 s under the fast rule
        e.on_event(
            &tr(
                T0 + 20 * S,
                "g",
                "critical",
                "gas",
                "normal",
                "unack_active",
            ),
            T0 + 20 * S,
        );
        assert!(e.tick(T0 + 79 * S).out.is_empty());
        let s = e.tick(T0 + 80 * S);
        let names: Vec<_> = s
            .out
            .iter()
            .map(|o| {
                (
                    o.note.alarm.as_ref().unwrap().alarm.as_str(),
                    o.note.escalation_name.as_deref(),
                )
            })
            .collect();
        assert_eq!(names, [("g", Some("fast"))]);
        let s = e.tick(T0 + 320 * S);
        let names: Vec<_> = s
            .out
            .iter()
            .map(|o| {
                (
                    o.note.alarm.as_ref().unwrap().alarm.as_str(),
                    o.note.escalation,
                    o.note.escalation_name.as_deref(),
                )
            })
            .collect();
        // oldest episode first; g's second escalation is level 2
        assert_eq!(names, [("w", 1, Some("slow")), ("g", 2, Some("slow"))]);
    }

    #[test]
    fn the_operator_behind_a_transition_is_named() {
        let mut t = target("t", 0, 0);
        t.filter.states = vec!["ack_active".into(), "unack_active".into()];
        let mut e = engine(vec![t], vec![]);
        let ack = |ts, target: &str| {
            Event::new(
                ts,
                "alarms/engine",
                EventKind::OperatorAction {
                    user: "bob".into(),
                    action: "ack".into(),
                    target: target.into(),
                    comment: "crew on the way".into(),
                },
            )
        };
        e.on_event(
            &tr(T0, "g", "critical", "gas", "normal", "unack_active"),
            T0,
        );
        assert!(e.on_event(&ack(T0 + S, "g"), T0 + S).out.is_empty());
        let s = e.on_event(
            &tr(T0 + S, "g", "critical", "gas", "unack_active", "ack_active"),
            T0 + S,
        );
        let j = serde_json::to_value(&s.out[0].note).unwrap();
        assert_eq!(j["operator"]["user"], "bob");
        assert_eq!(j["operator"]["action"], "ack");
        assert_eq!(j["operator"]["comment"], "crew on the way");
        // a process transition carries none, nor one after an action on another alarm
        e.on_event(&ack(T0 + 2 * S, "other"), T0 + 2 * S);
        let s = e.on_event(
            &tr(T0 + 2 * S, "h", "high", "gas", "normal", "unack_active"),
            T0 + 2 * S,
        );
        let j = serde_json::to_value(&s.out[0].note).unwrap();
        assert!(j.get("operator").is_none(), "{j}");
    }
}
