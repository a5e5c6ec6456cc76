//! The ISA-18.2 alarm lifecycle as a pure state machine: [`step`] takes the current
//! [`Machine`] and one [`Input`] and returns the next machine or why the input is refused. No
//! I/O, no clock: times arrive inside the inputs. The runtime (`engine`) journals and emits what
//! it returns.
//!
//! States (ISA-18.2 figure 5, with the three "out of normal handling" states as states of their
//! own): `normal`, `unack_active`, `ack_active`, `rtn_unack`, `shelved`, `suppressed`,
//! `out_of_service`. The process condition (active or not) is kept beside the state, so that
//! leaving `shelved`, `suppressed` or `out_of_service` re-annunciates an alarm whose condition
//! is still active. A latching alarm stays `unack_active`/`ack_active` after its condition
//! clears until an operator resets it (`Reset`, allowed once acknowledged and clear).

use serde::{Deserialize, Serialize};

/// A lifecycle state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Normal,
    UnackActive,
    AckActive,
    RtnUnack,
    Shelved,
    Suppressed,
    OutOfService,
}

impl State {
    pub const ALL: [State; 7] = [
        State::Normal,
        State::UnackActive,
        State::AckActive,
        State::RtnUnack,
        State::Shelved,
        State::Suppressed,
        State::OutOfService,
    ];

    /// The name used in events, the journal and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Normal => "normal",
            State::UnackActive => "unack_active",
            State::AckActive => "ack_active",
            State::RtnUnack => "rtn_unack",
            State::Shelved => "shelved",
            State::Suppressed => "suppressed",
            State::OutOfService => "out_of_service",
        }
    }

    /// Annunciated to the operator (in the active list).
    pub fn is_annunciated(self) -> bool {
        matches!(
            self,
            State::UnackActive | State::AckActive | State::RtnUnack
        )
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An alarm's lifecycle position: the state, whether the process condition is active, and
/// (while shelved) until when.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    pub state: State,
    pub condition: bool,
    /// Ns since the epoch; meaningful in `shelved` only.
    pub shelved_until: Option<i64>,
    pub latching: bool,
}

impl Machine {
    pub fn new(latching: bool) -> Machine {
        Machine {
            state: State::Normal,
            condition: false,
            shelved_until: None,
            latching,
        }
    }
}

/// What can happen to an alarm.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Input {
    /// The evaluated process condition (after deadband and delays).
    Condition(bool),
    Acknowledge,
    /// Shelve until this time (ns).
    Shelve {
        until: i64,
    },
    Unshelve,
    /// The clock reached `now`: a shelved alarm past its time unshelves itself.
    Tick {
        now: i64,
    },
    /// Suppression by design (another tag's condition) turned on or off.
    Suppress(bool),
    RemoveFromService,
    ReturnToService,
    ResetLatched,
}

impl Input {
    /// The operator action's name, if this is one.
    pub fn action_name(&self) -> Option<&'static str> {
        Some(match self {
            Input::Acknowledge => "acknowledge",
            Input::Shelve { .. } => "shelve",
            Input::Unshelve => "unshelve",
            Input::RemoveFromService => "out_of_service",
            Input::ReturnToService => "return_to_service",
            Input::ResetLatched => "reset_latched",
            Input::Condition(_) | Input::Tick { .. } | Input::Suppress(_) => return None,
        })
    }
}

/// Why an operator action does not apply in the current state.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot {action} an alarm in state {state}: {why}")]
pub struct Refused {
    pub action: &'static str,
    pub state: State,
    pub why: &'static str,
}

/// The state an alarm returns to when it comes back into normal handling.
fn annunciate(condition: bool) -> State {
    if condition {
        State::UnackActive
    } else {
        State::Normal
    }
}

/// One step of the machine. Process inputs (`Condition`, `Tick`, `Suppress`) never fail; an
/// operator action that does not apply is refused (nothing changes). A step may leave the state
/// as it was (the caller emits a transition only when `state` changed).
pub fn step(m: Machine, input: Input) -> Result<Machine, Refused> {
    use State::*;
    let refuse = |why| {
        Err(Refused {
            action: input.action_name().unwrap_or("apply"),
            state: m.state,
            why,
        })
    };
    let mut n = m;
    match input {
        Input::Condition(c) => {
            n.condition = c;
            n.state = match (m.state, c) {
                (Normal, true) => UnackActive,
                (Normal, false) => Normal,
                (UnackActive, true) => UnackActive,
                (UnackActive, false) if m.latching => UnackActive,
                (UnackActive, false) => RtnUnack,
                (AckActive, true) => AckActive,
                (AckActive, false) if m.latching => AckActive,
                (AckActive, false) => Normal,
                (RtnUnack, true) => UnackActive,
                (RtnUnack, false) => RtnUnack,
                (s @ (Shelved | Suppressed | OutOfService), _) => s,
            };
        }
        Input::Acknowledge => {
            n.state = match m.state {
                UnackActive => AckActive,
                RtnUnack => Normal,
                AckActive => return refuse("it is already acknowledged"),
                Normal => return refuse("it is not active"),
                _ => return refuse("it is not annunciated"),
            }
        }
        Input::Shelve { until } => match m.state {
            OutOfService => return refuse("it is out of service"),
            Shelved => return refuse("it is already shelved (unshelve first)"),
            _ => {
                n.state = Shelved;
                n.shelved_until = Some(until);
            }
        },
        Input::Unshelve => {
            if m.state != Shelved {
                return refuse("it is not shelved");
            }
            n.state = annunciate(m.condition);
            n.shelved_until = None;
        }
        Input::Tick { now } => {
            if m.state == Shelved && m.shelved_until.is_some_and(|u| now >= u) {
                n.state = annunciate(m.condition);
                n.shelved_until = None;
            }
        }
        Input::Suppress(on) => {
            n.state = match (m.state, on) {
                (Shelved | OutOfService, _) => m.state,
                (Suppressed, true) => Suppressed,
                (Suppressed, false) => annunciate(m.condition),
                (_, true) => Suppressed,
                (s, false) => s,
            }
        }
        Input::RemoveFromService => {
            if m.state == OutOfService {
                return refuse("it is already out of service");
            }
            n.state = OutOfService;
            n.shelved_until = None;
        }
        Input::ReturnToService => {
            if m.state != OutOfService {
                return refuse("it is not out of service");
            }
            n.state = annunciate(m.condition);
        }
        Input::ResetLatched => match m.state {
            _ if !m.latching => return refuse("it is not a latching alarm"),
            AckActive if !m.condition => n.state = Normal,
            AckActive => return refuse("its condition is still active"),
            UnackActive => return refuse("it must be acknowledged first"),
            _ => return refuse("it is not latched"),
        },
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use State::*;

    fn m(state: State, condition: bool, latching: bool) -> Machine {
        Machine {
            state,
            condition,
            shelved_until: (state == Shelved).then_some(100),
            latching,
        }
    }

    /// (state, condition, latching, input) → Ok(state) or Err(())
    type Row = (State, bool, bool, Input, Result<State, ()>);

    const T: bool = true;
    const F: bool = false;

    #[rustfmt::skip]
    fn table() -> Vec<Row> {
        use Input::*;
        let sh = Shelve { until: 100 };
        vec![
            // condition changes, non-latching
            (Normal,       F, F, Condition(T), Ok(UnackActive)),
            (Normal,       F, F, Condition(F), Ok(Normal)),
            (UnackActive,  T, F, Condition(F), Ok(RtnUnack)),
            (UnackActive,  T, F, Condition(T), Ok(UnackActive)),
            (AckActive,    T, F, Condition(F), Ok(Normal)),
            (AckActive,    T, F, Condition(T), Ok(AckActive)),
            (RtnUnack,     F, F, Condition(T), Ok(UnackActive)),
            (RtnUnack,     F, F, Condition(F), Ok(RtnUnack)),
            (Shelved,      F, F, Condition(T), Ok(Shelved)),
            (Suppressed,   F, F, Condition(T), Ok(Suppressed)),
            (OutOfService, F, F, Condition(T), Ok(OutOfService)),
            // latching: stays until reset
            (UnackActive,  T, T, Condition(F), Ok(UnackActive)),
            (AckActive,    T, T, Condition(F), Ok(AckActive)),
            (AckActive,    F, T, ResetLatched, Ok(Normal)),
            (AckActive,    T, T, ResetLatched, Err(())),
            (UnackActive,  F, T, ResetLatched, Err(())),
            (Normal,       F, T, ResetLatched, Err(())),
            (AckActive,    F, F, ResetLatched, Err(())),
            // acknowledge
            (UnackActive,  T, F, Acknowledge, Ok(AckActive)),
            (RtnUnack,     F, F, Acknowledge, Ok(Normal)),
            (AckActive,    T, F, Acknowledge, Err(())),
            (Normal,       F, F, Acknowledge, Err(())),
            (Shelved,      T, F, Acknowledge, Err(())),
            (Suppressed,   T, F, Acknowledge, Err(())),
            (OutOfService, T, F, Acknowledge, Err(())),
            // shelve / unshelve / expiry
            (Normal,       F, F, sh, Ok(Shelved)),
            (UnackActive,  T, F, sh, Ok(Shelved)),
            (AckActive,    T, F, sh, Ok(Shelved)),
            (RtnUnack,     F, F, sh, Ok(Shelved)),
            (Suppressed,   F, F, sh, Ok(Shelved)),
            (Shelved,      F, F, sh, Err(())),
            (OutOfService, F, F, sh, Err(())),
            (Shelved,      T, F, Unshelve, Ok(UnackActive)),
            (Shelved,      F, F, Unshelve, Ok(Normal)),
            (Normal,       F, F, Unshelve, Err(())),
            (Shelved,      T, F, Tick { now: 99 }, Ok(Shelved)),
            (Shelved,      T, F, Tick { now: 100 }, Ok(UnackActive)),
            (Shelved,      F, F, Tick { now: 100 }, Ok(Normal)),
            (UnackActive,  T, F, Tick { now: 1000 }, Ok(UnackActive)),
            // suppression by design
            (Normal,       F, F, Suppress(T), Ok(Suppressed)),
            (UnackActive,  T, F, Suppress(T), Ok(Suppressed)),
            (AckActive,    T, F, Suppress(T), Ok(Suppressed)),
            (RtnUnack,     F, F, Suppress(T), Ok(Suppressed)),
            (Suppressed,   T, F, Suppress(F), Ok(UnackActive)),
            (Suppressed,   F, F, Suppress(F), Ok(Normal)),
            (Suppressed,   F, F, Suppress(T), Ok(Suppressed)),
            (Shelved,      F, F, Suppress(T), Ok(Shelved)),
            (OutOfService, F, F, Suppress(T), Ok(OutOfService)),
            (UnackActive,  T, F, Suppress(F), Ok(UnackActive)),
            // out of service
            (Normal,       F, F, RemoveFromService, Ok(OutOfService)),
            (UnackActive,  T, F, RemoveFromService, Ok(OutOfService)),
            (Shelved,      T, F, RemoveFromService, Ok(OutOfService)),
            (OutOfService, F, F, RemoveFromService, Err(())),
            (OutOfService, T, F, ReturnToService, Ok(UnackActive)),
            (OutOfService, F, F, ReturnToService, Ok(Normal)),
            (Normal,       F, F, ReturnToService, Err(())),
        ]
    }

    #[test]
    fn lifecycle_table() {
        for (i, (state, cond, latching, input, want)) in table().into_iter().enumerate() {
            let got = step(m(state, cond, latching), input)
                .map(|n| n.state)
                .map_err(|_| ());
            assert_eq!(
                got, want,
                "row {i}: {state} (condition {cond}, latching {latching}) + {input:?}"
            );
        }
    }

    /// Every (state, input) pair is answered (no panic), and refused actions change nothing.
    #[test]
    fn every_pair_answers_and_refusals_change_nothing() {
        let inputs = [
            Input::Condition(true),
            Input::Condition(false),
            Input::Acknowledge,
            Input::Shelve { until: 5 },
            Input::Unshelve,
            Input::Tick { now: 5 },
            Input::Suppress(true),
            Input::Suppress(false),
            Input::RemoveFromService,
            Input::ReturnToService,
            Input::ResetLatched,
        ];
        let mut refused = 0;
        for s in State::ALL {
            for c in [false, true] {
                for l in [false, true] {
                    for i in inputs {
                        match step(m(s, c, l), i) {
                            Ok(_) => {}
                            Err(r) => {
                                refused += 1;
                                assert!(i.action_name().is_some(), "{s} {i:?} refused");
                                assert_eq!(r.state, s);
                            }
                        }
                    }
                }
            }
        }
        assert!(refused > 0);
    }

    #[test]
    fn shelve_expiry_during_active_re_annunciates() {
        let a = step(Machine::new(false), Input::Condition(true)).unwrap();
        let s = step(a, Input::Shelve { until: 50 }).unwrap();
        let still = step(s, Input::Condition(true)).unwrap();
        assert_eq!(still.state, State::Shelved);
        let back = step(still, Input::Tick { now: 50 }).unwrap();
        assert_eq!(back.state, State::UnackActive);
        assert_eq!(back.shelved_until, None);
    }

    #[test]
    fn suppression_toggling_while_unacked_keeps_the_condition() {
        let a = step(Machine::new(false), Input::Condition(true)).unwrap();
        let s = step(a, Input::Suppress(true)).unwrap();
        let s = step(s, Input::Condition(false)).unwrap();
        let s = step(s, Input::Condition(true)).unwrap();
        assert_eq!(step(s, Input::Suppress(false)).unwrap().state, UnackActive);
    }
}
