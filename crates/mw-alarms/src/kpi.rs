//! Alarm KPIs per ISA-18.2 (and its technical report TR18.2.5 on monitoring), computed from
//! journal records by a pure function: the alarm rate per operator (an operator is an alarm
//! `area`: one console per area), its peak per 10 minutes and the share of time in flood,
//! standing, stale and shelved alarms, chattering and fleeting alarms and the top ten most
//! frequent ("bad actors").

use std::collections::{BTreeMap, HashMap};

use crate::journal::Record;
use crate::lifecycle::State;

/// Ten minutes in ns: the interval of the rate and flood figures.
pub const TEN_MINUTES: i64 = 600_000_000_000;
/// An area is in flood during a 10-minute interval with more than this many activations.
pub const FLOOD_ALARMS: usize = 10;
/// Chattering: at least this many activations of one alarm …
pub const CHATTER_ACTIVATIONS: usize = 3;
/// … within this window (ns).
pub const CHATTER_WINDOW: i64 = 60_000_000_000;
/// Fleeting: active (condition true) for less than this (ns) before the condition cleared.
pub const FLEETING: i64 = 1_000_000_000;
/// Stale: active for longer than this (ns).
pub const STALE: i64 = 24 * 3_600_000_000_000;

/// The KPIs over `[now - window, now]`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Kpis {
    /// Area → activations per 10 minutes over the window (the average rate).
    pub per_area_per_10min: BTreeMap<String, f64>,
    /// Area → the most activations in one 10-minute interval of the window.
    pub peak_per_10min: BTreeMap<String, usize>,
    /// Area → percent of the window's time in flood: the 10-minute intervals (counted back from
    /// `now`; the oldest may be shorter) with more than [`FLOOD_ALARMS`] activations.
    pub flood_percent: BTreeMap<String, f64>,
    /// Alarms whose last state is not `normal` (active, shelved, suppressed or out of service).
    pub standing: usize,
    /// Alarms active (`unack_active` or `ack_active`, condition true) for longer than
    /// [`STALE`], with when they were raised; oldest first.
    pub stale: Vec<(String, i64)>,
    /// Alarms shelved now, with until when; by id.
    pub shelved: Vec<(String, Option<i64>)>,
    /// Alarms with ≥ [`CHATTER_ACTIVATIONS`] activations inside some [`CHATTER_WINDOW`], sorted.
    pub chattering: Vec<String>,
    /// Alarms with an activation whose condition cleared within [`FLEETING`], sorted.
    pub fleeting: Vec<String>,
    /// (alarm, activations), most first, ties by id; at most 10.
    pub top10: Vec<(String, usize)>,
}

/// An activation: the alarm became annunciated-active from a state where it was not.
fn is_activation(r: &Record) -> bool {
    r.to == State::UnackActive && r.from != State::UnackActive && r.action.is_empty()
}

fn is_active(s: State) -> bool {
    matches!(s, State::UnackActive | State::AckActive)
}

/// Computes the KPIs of `records` (journal order) for the window ending at `now`. Standing,
/// stale and shelved describe the alarms' last state in the records (a caller that knows the
/// current states, like the engine, replaces them); the others count the window only.
pub fn kpis(records: &[Record], now: i64, window: i64) -> Kpis {
    let window = window.max(1);
    let start = now - window;
    let bins = ((window + TEN_MINUTES - 1) / TEN_MINUTES) as usize;
    let mut last: HashMap<&str, &Record> = HashMap::new();
    let mut raised: HashMap<&str, i64> = HashMap::new();
    let mut per_area: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    let mut times: HashMap<&str, Vec<i64>> = HashMap::new();
    // when the condition of each alarm last became true (process records)
    let mut onset: HashMap<&str, i64> = HashMap::new();
    let mut fleeting: Vec<String> = Vec::new();
    for r in records {
        last.insert(&r.alarm, r);
        if r.from == State::Normal && r.to == State::UnackActive {
            raised.insert(&r.alarm, r.ts);
        }
        let process = r.action.is_empty();
        let was_on = onset.contains_key(r.alarm.as_str());
        if process && r.condition && !was_on {
            onset.insert(&r.alarm, r.ts);
        } else if process && !r.condition && was_on {
            let on = onset.remove(r.alarm.as_str()).unwrap_or(r.ts);
            if r.ts >= start && r.ts <= now && r.ts - on < FLEETING {
                fleeting.push(r.alarm.clone());
            }
        }
        if r.ts < start || r.ts > now {
            continue;
        }
        if is_activation(r) {
            let bin = ((now - r.ts) / TEN_MINUTES) as usize;
            let v = per_area
                .entry(r.area.clone())
                .or_insert_with(|| vec![0; bins]);
            if let Some(n) = v.get_mut(bin) {
                *n += 1;
            }
            *counts.entry(&r.alarm).or_default() += 1;
            times.entry(&r.alarm).or_default().push(r.ts);
        }
    }
    let tens = window as f64 / TEN_MINUTES as f64;
    let bin_len = |b: usize| -> i64 {
        if b + 1 < bins {
            TEN_MINUTES
        } else {
            window - (bins as i64 - 1) * TEN_MINUTES
        }
    };
    let mut chattering: Vec<String> = times
        .into_iter()
        .filter(|(_, ts)| {
            let mut ts = ts.clone();
            ts.sort_unstable();
            ts.windows(CHATTER_ACTIVATIONS)
                .any(|w| w[CHATTER_ACTIVATIONS - 1] - w[0] <= CHATTER_WINDOW)
        })
        .map(|(a, _)| a.to_owned())
        .collect();
    chattering.sort();
    fleeting.sort();
    fleeting.dedup();
    let mut top: Vec<(String, usize)> =
        counts.into_iter().map(|(a, n)| (a.to_owned(), n)).collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    top.truncate(10);
    let mut stale: Vec<(String, i64)> = last
        .values()
        .filter(|r| is_active(r.to) && r.condition)
        .filter_map(|r| raised.get(r.alarm.as_str()).map(|&t| (r.alarm.clone(), t)))
        .filter(|(_, t)| now - t > STALE)
        .collect();
    stale.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    let mut shelved: Vec<(String, Option<i64>)> = last
        .values()
        .filter(|r| r.to == State::Shelved)
        .map(|r| (r.alarm.clone(), r.shelved_until))
        .collect();
    shelved.sort();
    Kpis {
        per_area_per_10min: per_area
            .iter()
            .map(|(a, v)| (a.clone(), v.iter().sum::<usize>() as f64 / tens))
            .collect(),
        peak_per_10min: per_area
            .iter()
            .map(|(a, v)| (a.clone(), v.iter().copied().max().unwrap_or(0)))
            .collect(),
        flood_percent: per_area
            .iter()
            .map(|(a, v)| {
                let flooded: i64 = v
                    .iter()
                    .enumerate()
                    .filter(|(_, n)| **n > FLOOD_ALARMS)
                    .map(|(b, _)| bin_len(b))
                    .sum();
                (a.clone(), 100.0 * flooded as f64 / window as f64)
            })
            .collect(),
        standing: last.values().filter(|r| r.to != State::Normal).count(),
        stale,
        shelved,
        chattering,
        fleeting,
        top10: top,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn rec(ts: i64, alarm: &str, area: &str, from: State, to: State) -> Record {
        Record {
            ts,
            alarm: alarm.into(),
            area: area.into(),
            priority: "high".into(),
            from,
            to,
            condition: to != State::Normal,
            shelved_until: None,
            value: None,
            action: String::new(),
            user: String::new(),
            comment: String::new(),
        }
    }

    #[test]
    fn rate_standing_chatter_and_top10() {
        use State::*;
        let mut r = vec![
            // a: chatters (3 activations in 40 s)
            rec(100 * S, "a", "north", Normal, UnackActive),
            rec(110 * S, "a", "north", UnackActive, RtnUnack),
            rec(120 * S, "a", "north", RtnUnack, UnackActive),
            rec(130 * S, "a", "north", UnackActive, RtnUnack),
            rec(140 * S, "a", "north", RtnUnack, UnackActive),
            // b: 3 transitions but spread over 200 s: not chattering
            rec(100 * S, "b", "south", Normal, UnackActive),
            rec(200 * S, "b", "south", UnackActive, RtnUnack),
            rec(300 * S, "b", "south", RtnUnack, Normal),
            // c: outside the window
            rec(-900 * S, "c", "south", Normal, UnackActive),
        ];
        // an operator action is no activation
        let mut ack = rec(150 * S, "a", "north", UnackActive, AckActive);
        ack.action = "acknowledge".into();
        r.push(ack);
        let k = kpis(&r, 600 * S, 600 * S);
        // north: 3 activations in 10 min, south: 1
        assert_eq!(k.per_area_per_10min.get("north"), Some(&3.0));
        assert_eq!(k.per_area_per_10min.get("south"), Some(&1.0));
        assert_eq!(k.chattering, vec!["a".to_owned()]);
        // a ack_active, c unack_active; b normal
        assert_eq!(k.standing, 2);
        assert_eq!(k.top10, vec![("a".to_owned(), 3), ("b".to_owned(), 1)]);
        // b's 3 transitions are one activation: not chattering either way
        assert!(k.fleeting.is_empty(), "{:?}", k.fleeting);
    }

    #[test]
    fn flood_is_the_share_of_10_minute_intervals_over_10_activations() {
        use State::*;
        let mut r = Vec::new();
        // an hour ending at 3600 s; 11 activations in [3000, 3600): the newest interval floods
        for i in 0..11 {
            r.push(rec(
                (3001 + i) * S,
                &format!("f{i}"),
                "north",
                Normal,
                UnackActive,
            ));
        }
        // exactly 10 in [1200, 1800): at the limit, no flood
        for i in 0..10 {
            r.push(rec(
                (1300 + i) * S,
                &format!("g{i}"),
                "north",
                Normal,
                UnackActive,
            ));
        }
        r.push(rec(100 * S, "s", "south", Normal, UnackActive));
        let k = kpis(&r, 3600 * S, 3600 * S);
        assert_eq!(k.peak_per_10min["north"], 11);
        let p = k.flood_percent["north"];
        assert!((p - 100.0 / 6.0).abs() < 1e-9, "{p}");
        assert_eq!(k.flood_percent["south"], 0.0);
        assert_eq!(k.peak_per_10min["south"], 1);
        // a window that is not a multiple of 10 min: the oldest interval is shorter
        let k = kpis(&r, 3600 * S, 900 * S);
        let p = k.flood_percent["north"];
        assert!((p - 600.0 / 9.0).abs() < 1e-9, "{p}");
    }

    #[test]
    fn fleeting_stale_and_shelved() {
        use State::*;
        let day = 86_400 * S;
        let mut off = rec(10 * day + 500_000_000, "blip", "n", UnackActive, RtnUnack);
        off.condition = false;
        let mut slow_off = rec(10 * day + 5 * S, "slow", "n", UnackActive, RtnUnack);
        slow_off.condition = false;
        let mut shelve = rec(10 * day, "sh", "n", UnackActive, Shelved);
        shelve.action = "shelve".into();
        shelve.shelved_until = Some(11 * day);
        let r = vec![
            rec(8 * day, "old", "n", Normal, UnackActive),
            rec(9 * day + 20 * S, "young", "n", Normal, UnackActive),
            rec(10 * day, "blip", "n", Normal, UnackActive),
            off,
            rec(10 * day, "slow", "n", Normal, UnackActive),
            slow_off,
            rec(10 * day - S, "sh", "n", Normal, UnackActive),
            shelve,
        ];
        let k = kpis(&r, 10 * day + 10 * S, 3600 * S);
        assert_eq!(k.fleeting, vec!["blip".to_owned()]);
        // active for two days; "young" for less than one
        assert_eq!(k.stale, vec![("old".to_owned(), 8 * day)]);
        assert_eq!(k.shelved, vec![("sh".to_owned(), Some(11 * day))]);
    }

    #[test]
    fn top10_keeps_ten() {
        let r: Vec<Record> = (0..15)
            .map(|i| {
                rec(
                    i,
                    &format!("x{i:02}"),
                    "a",
                    State::Normal,
                    State::UnackActive,
                )
            })
            .collect();
        let k = kpis(&r, 100, 1000);
        assert_eq!(k.top10.len(), 10);
        // ties sort by id
        assert_eq!(k.top10[0].0, "x00");
        // window 1000 ns: 15 activations are 15 / (1000 / 600e9) per 10 min
        assert!(k.per_area_per_10min["a"] > 1e9);
    }
}
