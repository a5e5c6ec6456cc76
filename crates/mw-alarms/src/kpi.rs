//! Alarm KPIs per ISA-18.2, computed from journal records by a pure function: alarm rate per
//! operator area (activations per 10 minutes), standing alarms, chattering alarms and the top
//! ten most frequent ("bad actors").

use std::collections::{BTreeMap, HashMap};

use crate::journal::Record;
use crate::lifecycle::State;

/// Ten minutes in ns.
pub const TEN_MINUTES: i64 = 600_000_000_000;
/// Chattering: at least this many transitions of one alarm …
pub const CHATTER_TRANSITIONS: usize = 3;
/// … within this window (ns).
pub const CHATTER_WINDOW: i64 = 60_000_000_000;

/// The KPIs over `[now - window, now]`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Kpis {
    /// Area → activations per 10 minutes over the window.
    pub per_area_per_10min: BTreeMap<String, f64>,
    /// Alarms whose last state is not `normal` (active, shelved, suppressed or out of service).
    pub standing: usize,
    /// Alarms with ≥ [`CHATTER_TRANSITIONS`] transitions inside some [`CHATTER_WINDOW`], sorted.
    pub chattering: Vec<String>,
    /// (alarm, activations), most first, ties by id; at most 10.
    pub top10: Vec<(String, usize)>,
}

/// An activation: the alarm became annunciated-active from a state where it was not.
fn is_activation(r: &Record) -> bool {
    r.to == State::UnackActive && r.from != State::UnackActive && r.action.is_empty()
}

/// Computes the KPIs of `records` (journal order) for the window ending at `now`. Standing
/// counts over every record; the others over the window only.
pub fn kpis(records: &[Record], now: i64, window: i64) -> Kpis {
    let start = now - window;
    let mut last: HashMap<&str, State> = HashMap::new();
    let mut per_area: BTreeMap<String, usize> = BTreeMap::new();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    let mut times: HashMap<&str, Vec<i64>> = HashMap::new();
    for r in records {
        last.insert(&r.alarm, r.to);
        if r.ts < start || r.ts > now {
            continue;
        }
        if r.from != r.to && r.action.is_empty() {
            times.entry(&r.alarm).or_default().push(r.ts);
        }
        if is_activation(r) {
            *per_area.entry(r.area.clone()).or_default() += 1;
            *counts.entry(&r.alarm).or_default() += 1;
        }
    }
    let tens = (window as f64 / TEN_MINUTES as f64).max(f64::MIN_POSITIVE);
    let mut chattering: Vec<String> = times
        .into_iter()
        .filter(|(_, ts)| {
            let mut ts = ts.clone();
            ts.sort_unstable();
            ts.windows(CHATTER_TRANSITIONS)
                .any(|w| w[CHATTER_TRANSITIONS - 1] - w[0] <= CHATTER_WINDOW)
        })
        .map(|(a, _)| a.to_owned())
        .collect();
    chattering.sort();
    let mut top: Vec<(String, usize)> =
        counts.into_iter().map(|(a, n)| (a.to_owned(), n)).collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    top.truncate(10);
    Kpis {
        per_area_per_10min: per_area
            .into_iter()
            .map(|(a, n)| (a, n as f64 / tens))
            .collect(),
        standing: last.values().filter(|s| **s != State::Normal).count(),
        chattering,
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
            // a: chatters (3 transitions in 20 s)
            rec(100 * S, "a", "north", Normal, UnackActive),
            rec(110 * S, "a", "north", UnackActive, RtnUnack),
            rec(120 * S, "a", "north", RtnUnack, UnackActive),
            // b: 3 transitions but spread over 200 s: not chattering
            rec(100 * S, "b", "south", Normal, UnackActive),
            rec(200 * S, "b", "south", UnackActive, RtnUnack),
            rec(300 * S, "b", "south", RtnUnack, Normal),
            // c: outside the window
            rec(-900 * S, "c", "south", Normal, UnackActive),
        ];
        // an operator action is no activation
        let mut ack = rec(130 * S, "a", "north", UnackActive, AckActive);
        ack.action = "acknowledge".into();
        r.push(ack);
        let k = kpis(&r, 600 * S, 600 * S);
        // north: 2 activations in 10 min, south: 1
        assert_eq!(k.per_area_per_10min.get("north"), Some(&2.0));
        assert_eq!(k.per_area_per_10min.get("south"), Some(&1.0));
        assert_eq!(k.chattering, vec!["a".to_owned()]);
        // a ack_active, c unack_active; b normal
        assert_eq!(k.standing, 2);
        assert_eq!(k.top10, vec![("a".to_owned(), 2), ("b".to_owned(), 1)]);
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
