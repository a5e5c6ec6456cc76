//! `mw-sim`: a deterministic plant simulator for Millwright.
//!
//! A water booster pump with its motor, a discharge valve and a storage tank, plus a compressor house with three
//! gas detectors, simulated from first principles (pump and system curves, affinity laws, a tank mass balance,
//! first-order thermal lags, bearing wear, a gas plume). Faults can be scheduled, drawn at random from the seed,
//! or injected on demand; each one becomes a ground-truth label. The plant's readings are available as values
//! ([`Plant::points`]) and as a Modbus register image ([`Plant::registers`], layout in [`register_map`]).
//!
//! The crate is pure: no I/O except the label writers and the CSV export ([`export_csv`]), which take
//! `impl Write`; no clock, no threads, no async. Fault schedule files are parsed from text ([`parse_schedule`]).
//! The same [`SimConfig`] and the same sequence of [`Plant::step`] calls give bit-identical output on a given
//! build. The model, its equations and the register map are documented in `docs/simulator.md`.
//!
//! ```
//! use mw_sim::{FaultKind, FaultRequest, Plant, SimConfig};
//! let mut plant = Plant::new(SimConfig { seed: 7, ..SimConfig::default() });
//! plant.step(60.0);
//! let id = plant.inject(FaultRequest {
//!     asset: "valve1".into(), kind: FaultKind::BlockedValve, duration_s: 600.0, point: None,
//! }).unwrap();
//! plant.step(30.0);
//! assert!(plant.faults().iter().any(|f| f.id == id && f.active));
//! ```

mod catalog;
mod export;
mod fault;
mod labels;
mod physics;
mod registers;
mod rng;
mod schedule;

use std::io::{self, Write};

pub use catalog::{AssetInfo, assets};
pub use export::{ExportError, export_csv, export_rows};
pub use fault::{
    FaultId, FaultKind, FaultOrigin, FaultRecord, FaultRequest, MAX_FAULT_DURATION_S,
    ScheduledFault, SimError,
};
pub use labels::CSV_HEADER as LABELS_CSV_HEADER;
pub use physics::DEGRADATION_WEAR_RISE;
pub use registers::{RegisterPoint, Registers, Table, register_map, sentinel};
pub use schedule::{ScheduleError, ScheduleProblem, parse_schedule};

use catalog::{META, N_POINTS, P};
use fault::{FaultKind as K, Resolved};
use physics::{Effects, State};
use registers::REGISTER_MAP;
use rng::Rng;

/// Longest internal integration step, s. `step(dt)` is split into `ceil(dt / 0.1 s)` equal substeps.
pub const MAX_SUBSTEP_S: f64 = 0.1;
const MAX_SUBSTEP_NS: i64 = 100_000_000;
/// Shortest mean interval accepted for random faults, s.
pub const MIN_RANDOM_INTERVAL_S: f64 = 1.0;
/// Gas alarm thresholds of the detectors, %LEL (on at ≥ 20, off below 18).
pub const GAS_ALARM_ON: f64 = 20.0;
pub const GAS_ALARM_OFF: f64 = 18.0;
/// Drift rate of a `sensor_drift` fault: this fraction of the point's span per hour.
pub const DRIFT_PER_HOUR: f64 = 0.1;
/// Probability that a reading taken during a `sensor_spike` fault is a spike.
pub const SPIKE_PROBABILITY: f64 = 0.25;

// Independent random streams of one seed; see `rng::Rng::new`.
const STREAM_PROCESS: u64 = 1;
const STREAM_MEASUREMENT: u64 = 2;
const STREAM_RANDOM_FAULTS: u64 = 3;
const STREAM_FAULT_EFFECTS: u64 = 4;
const STREAM_INITIAL: u64 = 5;

/// Configuration of a simulation run.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Seeds every random number of the run (noise, initial wear, random faults).
    pub seed: u64,
    /// Wall-clock time of sim time 0, ns since the Unix epoch; drives the daily cycles and the labels' epoch times.
    pub start_epoch_ns: i64,
    /// Mean interval of random faults in sim seconds (exponential inter-arrival); `None` = no random faults.
    pub random_faults: Option<f64>,
    /// Planned faults. Entries that fail validation are skipped by [`Plant::new`]; call [`SimConfig::validate`].
    pub schedule: Vec<ScheduledFault>,
}

/// 2024-01-01T00:00:00Z.
pub const DEFAULT_START_EPOCH_NS: i64 = 1_704_067_200_000_000_000;

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 0,
            start_epoch_ns: DEFAULT_START_EPOCH_NS,
            random_faults: None,
            schedule: Vec::new(),
        }
    }
}

/// A problem found by [`SimConfig::validate`]: where (`random_faults`, `schedule[3]`) and what.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigProblem {
    pub location: String,
    pub error: SimError,
}

impl SimConfig {
    /// Every problem of the configuration (not only the first). Empty means [`Plant::new`] uses all of it.
    pub fn validate(&self) -> Vec<ConfigProblem> {
        let mut out = Vec::new();
        if let Some(mean_s) = self.random_faults
            && !(mean_s.is_finite() && mean_s >= MIN_RANDOM_INTERVAL_S)
        {
            out.push(ConfigProblem {
                location: "random_faults".into(),
                error: SimError::BadInterval { mean_s },
            });
        }
        for (i, f) in self.schedule.iter().enumerate() {
            let location = format!("schedule[{i}]");
            if !(f.start_s.is_finite() && f.start_s >= 0.0) {
                out.push(ConfigProblem {
                    location: location.clone(),
                    error: SimError::BadStart { start_s: f.start_s },
                });
            }
            if let Err(error) = fault::resolve(&f.asset, f.kind, f.duration_s, f.point.as_deref()) {
                out.push(ConfigProblem { location, error });
            }
        }
        out
    }
}

/// The current reading of one point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PointReading {
    pub asset: &'static str,
    pub name: &'static str,
    /// UCUM code (`""` for booleans).
    pub unit: &'static str,
    /// Engineering value; booleans are 0.0 / 1.0. `None` while the sensor has dropped out.
    pub value: Option<f64>,
}

impl PointReading {
    /// The tag path `asset/name`.
    pub fn path(&self) -> String {
        format!("{}/{}", self.asset, self.name)
    }
}

#[derive(Debug, Clone)]
struct Entry {
    id: u64,
    r: Resolved,
    origin: FaultOrigin,
    start_ns: i64,
    end_ns: i64,
    active: bool,
    stuck_value: f64,
    sign: f64,
}

#[derive(Debug, Clone)]
struct Pending {
    start_ns: i64,
    r: Resolved,
}

/// The simulated plant. Cheap to clone (to fork a what-if run).
#[derive(Debug, Clone)]
pub struct Plant {
    cfg: SimConfig,
    elapsed_ns: i64,
    phys: State,
    fx: Effects,
    rng_process: Rng,
    rng_measurement: Rng,
    rng_random_faults: Rng,
    rng_fault_effects: Rng,
    entries: Vec<Entry>,
    /// Indices into `entries` of active faults, ascending (= by id).
    active: Vec<usize>,
    schedule: Vec<Pending>,
    next_scheduled: usize,
    random_mean_s: Option<f64>,
    next_random_ns: Option<i64>,
    next_event_ns: i64,
    /// Truth plus noise, clamped to the instrument range, before sensor faults.
    raw: [f64; N_POINTS],
    /// What the sensors deliver.
    measured: [Option<f64>; N_POINTS],
    gas_alarm: [bool; 3],
    /// Zero offset of each gas detector, %LEL (seeded).
    gas_offsets: [f64; 3],
    /// Sim ns at which the bearing's wear first reached `wear0` + [`DEGRADATION_WEAR_RISE`] (wear never falls).
    degraded_ns: Option<i64>,
    /// The bearing's wear at the start of the run.
    wear0: f64,
}

/// The bearing's natural degradation as a label: from the substep where its wear first reached
/// its initial wear + [`DEGRADATION_WEAR_RISE`] on, for good (wear never falls). Not a fault: it is the state the plant's own wear (and the
/// damage a `bearing_wear` fault leaves behind) brings the pump to.
#[derive(Debug, Clone, PartialEq)]
pub struct DegradationRecord {
    /// `bearing_degradation`.
    pub kind: &'static str,
    /// The pump; [`DegradationRecord::affected_assets`] also names its motor.
    pub asset: &'static str,
    /// Sim seconds since the start when the threshold was reached.
    pub start_s: f64,
    /// `start_epoch_ns + start_s · 1e9`.
    pub start_ns: i64,
}

impl DegradationRecord {
    /// The assets whose readings a worn bearing changes: the pump (vibration, bearing temperature) and its motor
    /// (friction current), as for a `bearing_wear` fault.
    pub fn affected_assets(&self) -> Vec<&'static str> {
        vec![catalog::PUMP, catalog::MOTOR]
    }
}

fn secs_to_ns(s: f64) -> i64 {
    (s * 1e9).round() as i64
}

impl Plant {
    /// A plant in steady state at sim time 0. Scheduled faults that fail [`SimConfig::validate`] are skipped.
    pub fn new(cfg: SimConfig) -> Plant {
        let mut init = Rng::new(cfg.seed, STREAM_INITIAL);
        let wear0 = 0.15 + 0.1 * init.uniform();
        let gas_offset_draws: [f64; 3] = [init.uniform(), init.uniform(), init.uniform()];
        let mut schedule: Vec<Pending> = cfg
            .schedule
            .iter()
            .filter(|f| f.start_s.is_finite() && f.start_s >= 0.0)
            .filter_map(|f| {
                fault::resolve(&f.asset, f.kind, f.duration_s, f.point.as_deref())
                    .ok()
                    .map(|r| Pending {
                        start_ns: secs_to_ns(f.start_s),
                        r,
                    })
            })
            .collect();
        schedule.sort_by_key(|p| p.start_ns); // stable: equal starts keep config order
        let random_mean_s = cfg
            .random_faults
            .filter(|m| m.is_finite() && *m >= MIN_RANDOM_INTERVAL_S);
        let mut rng_random_faults = Rng::new(cfg.seed, STREAM_RANDOM_FAULTS);
        let next_random_ns =
            random_mean_s.map(|m| secs_to_ns(rng_random_faults.exponential(m)).max(1));
        let mut plant = Plant {
            phys: State::new(cfg.start_epoch_ns, wear0),
            fx: Effects::default(),
            rng_process: Rng::new(cfg.seed, STREAM_PROCESS),
            rng_measurement: Rng::new(cfg.seed, STREAM_MEASUREMENT),
            rng_random_faults,
            rng_fault_effects: Rng::new(cfg.seed, STREAM_FAULT_EFFECTS),
            cfg,
            elapsed_ns: 0,
            entries: Vec::new(),
            active: Vec::new(),
            schedule,
            next_scheduled: 0,
            random_mean_s,
            next_random_ns,
            next_event_ns: 0,
            raw: [0.0; N_POINTS],
            measured: [None; N_POINTS],
            gas_alarm: [false; 3],
            gas_offsets: gas_offset_draws.map(|u| 0.4 * u),
            degraded_ns: None,
            wear0,
        };
        plant.check_degradation();
        plant.process_events();
        plant.measure();
        plant
    }

    /// Advances sim time by `dt_s` seconds, in equal internal substeps of at most 0.1 s. A `dt_s` that is not
    /// finite or not positive does nothing. Readings are taken once, at the end.
    pub fn step(&mut self, dt_s: f64) {
        if !(dt_s.is_finite() && dt_s > 0.0) {
            return;
        }
        let dt_ns = secs_to_ns(dt_s.min(1e9));
        if dt_ns <= 0 {
            return;
        }
        let n = (dt_ns + MAX_SUBSTEP_NS - 1) / MAX_SUBSTEP_NS;
        let t0 = self.elapsed_ns;
        for i in 0..n {
            // Integer split: substeps differ by at most 1 ns and add up to exactly dt_ns.
            let a = (i128::from(dt_ns) * i128::from(i) / i128::from(n)) as i64;
            let b = (i128::from(dt_ns) * i128::from(i + 1) / i128::from(n)) as i64;
            let h = (b - a) as f64 / 1e9;
            self.elapsed_ns = t0 + b;
            self.phys.substep(
                h,
                self.elapsed_ns as f64 / 1e9,
                &self.fx,
                &mut self.rng_process,
            );
            self.process_events();
            self.check_degradation();
        }
        self.measure();
    }

    fn check_degradation(&mut self) {
        if self.degraded_ns.is_none() && self.phys.wear >= self.wear0 + DEGRADATION_WEAR_RISE {
            self.degraded_ns = Some(self.elapsed_ns);
        }
    }

    /// The bearing's degradation label, once its wear has risen by [`DEGRADATION_WEAR_RISE`] since the start
    /// (docs/simulator.md "Labels").
    pub fn degradation(&self) -> Option<DegradationRecord> {
        self.degraded_ns.map(|ns| DegradationRecord {
            kind: "bearing_degradation",
            asset: catalog::PUMP,
            start_s: ns as f64 / 1e9,
            start_ns: self.cfg.start_epoch_ns.saturating_add(ns),
        })
    }

    /// Sim seconds since the start.
    pub fn time_s(&self) -> f64 {
        self.elapsed_ns as f64 / 1e9
    }

    /// Current sim time as ns since the Unix epoch (`start_epoch_ns + time`).
    pub fn now_ns(&self) -> i64 {
        self.cfg.start_epoch_ns.saturating_add(self.elapsed_ns)
    }

    /// The configuration the plant was built from.
    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    /// Starts a fault now, for `duration_s`. Process faults act from the next internal substep; sensor faults
    /// show in the readings at once.
    pub fn inject(&mut self, req: FaultRequest) -> Result<FaultId, SimError> {
        let r = fault::resolve(&req.asset, req.kind, req.duration_s, req.point.as_deref())?;
        let id = self.start_fault(r, FaultOrigin::Api);
        self.update_next_event();
        self.recompute_effects();
        self.overlay();
        Ok(FaultId(id))
    }

    /// Every fault that has started (active and past), by id. Scheduled faults appear when they start.
    pub fn faults(&self) -> Vec<FaultRecord> {
        self.entries.iter().map(|e| self.record(e)).collect()
    }

    /// The faults in effect now, by id (what [`Plant::faults`] marks `active`, without the past ones).
    pub fn active_faults(&self) -> Vec<FaultRecord> {
        self.active
            .iter()
            .map(|&i| self.record(&self.entries[i]))
            .collect()
    }

    fn record(&self, e: &Entry) -> FaultRecord {
        FaultRecord {
            id: FaultId(e.id),
            kind: e.r.kind,
            asset: e.r.asset.to_string(),
            point: e.r.point.map(|i| REGISTER_MAP[i].name.to_string()),
            origin: e.origin,
            start_s: e.start_ns as f64 / 1e9,
            end_s: e.end_ns as f64 / 1e9,
            start_ns: self.cfg.start_epoch_ns.saturating_add(e.start_ns),
            end_ns: self.cfg.start_epoch_ns.saturating_add(e.end_ns),
            active: e.active,
        }
    }

    /// The current reading of every point, in [`register_map`] order.
    pub fn points(&self) -> Vec<PointReading> {
        REGISTER_MAP
            .iter()
            .zip(&self.measured)
            .map(|(p, v)| PointReading {
                asset: p.asset,
                name: p.name,
                unit: p.unit,
                value: *v,
            })
            .collect()
    }

    /// The register image of the current readings (layout: [`register_map`]). Dropped-out points hold the
    /// [`sentinel`] values; bits of dropped-out points read `false`.
    pub fn registers(&self) -> Registers {
        registers::build(&self.measured)
    }

    /// The map points whose sensor has currently dropped out, for a server that prefers answering reads of them
    /// with a Modbus exception over serving the sentinel.
    pub fn unavailable(&self) -> Vec<&'static RegisterPoint> {
        REGISTER_MAP
            .iter()
            .zip(&self.measured)
            .filter(|(_, v)| v.is_none())
            .map(|(p, _)| p)
            .collect()
    }

    /// Ground truth of the pump bearing's health: wear from 0 (new) to 1 (failed). Not a sensor.
    pub fn bearing_wear(&self) -> f64 {
        self.phys.wear
    }

    /// Writes the labels (all started faults) as CSV; header [`LABELS_CSV_HEADER`].
    /// The bearing's degradation, once reached, is the last row (id 0, see [`Plant::degradation`]).
    pub fn write_labels_csv(&self, w: impl Write) -> io::Result<()> {
        labels::write_csv(&self.faults(), self.degradation_label().as_ref(), w)
    }

    fn degradation_label(&self) -> Option<labels::DegradationLabel> {
        self.degradation().map(|d| labels::DegradationLabel {
            record: d,
            now_s: self.time_s(),
            now_ns: self.now_ns(),
        })
    }

    /// Writes the labels as a JSON object `{seed, start_epoch_ns, time_s, faults: [...]}`; the bearing's
    /// degradation, once reached, is the last entry of `faults` (id 0, origin `natural`).
    pub fn write_labels_json(&self, w: impl Write) -> io::Result<()> {
        labels::write_json(
            self.cfg.seed,
            self.cfg.start_epoch_ns,
            self.time_s(),
            &self.faults(),
            self.degradation_label().as_ref(),
            w,
        )
    }

    // ---- faults -----------------------------------------------------------------------------------------

    /// Ends, starts and draws the faults due at the current time.
    fn process_events(&mut self) {
        let now = self.elapsed_ns;
        if now < self.next_event_ns {
            return;
        }
        let mut changed = false;
        let mut k = 0;
        while k < self.active.len() {
            let idx = self.active[k];
            if self.entries[idx].end_ns <= now {
                let e = &mut self.entries[idx];
                e.active = false;
                if e.r.kind == K::GasRelease {
                    self.phys.end_release(e.id);
                }
                self.active.remove(k);
                changed = true;
            } else {
                k += 1;
            }
        }
        while let Some(p) = self.schedule.get(self.next_scheduled)
            && p.start_ns <= now
        {
            let r = p.r;
            self.next_scheduled += 1;
            self.start_fault(r, FaultOrigin::Scheduled);
            changed = true;
        }
        while let (Some(t), Some(mean)) = (self.next_random_ns, self.random_mean_s)
            && t <= now
        {
            let r = self.draw_random_fault();
            self.start_fault(r, FaultOrigin::Random);
            let gap = secs_to_ns(self.rng_random_faults.exponential(mean)).max(1);
            self.next_random_ns = Some(t.saturating_add(gap));
            changed = true;
        }
        self.update_next_event();
        if changed {
            self.recompute_effects();
        }
    }

    fn update_next_event(&mut self) {
        let ends = self.active.iter().map(|&i| self.entries[i].end_ns);
        let sched = self.schedule.get(self.next_scheduled).map(|p| p.start_ns);
        self.next_event_ns = ends
            .chain(sched)
            .chain(self.next_random_ns)
            .min()
            .unwrap_or(i64::MAX);
    }

    fn draw_random_fault(&mut self) -> Resolved {
        let rng = &mut self.rng_random_faults;
        let kind = K::ALL[rng.below(K::ALL.len())];
        let assets = kind.assets();
        let asset = assets[rng.below(assets.len())];
        let point = if kind.is_sensor_fault() {
            let pts = fault::applicable_points(kind, asset);
            Some(pts[rng.below(pts.len())])
        } else {
            None
        };
        let (lo, hi) = fault::random_duration_range(kind);
        let duration_s = lo + (hi - lo) * rng.uniform();
        Resolved {
            kind,
            asset,
            point,
            duration_s,
        }
    }

    fn start_fault(&mut self, r: Resolved, origin: FaultOrigin) -> u64 {
        let id = self.entries.len() as u64 + 1;
        let start_ns = self.elapsed_ns;
        let end_ns = start_ns.saturating_add(secs_to_ns(r.duration_s).max(1));
        let stuck_value = r
            .point
            .map_or(0.0, |i| self.measured[i].unwrap_or(self.raw[i]));
        let sign = if r.kind == K::SensorDrift && self.rng_fault_effects.uniform() < 0.5 {
            -1.0
        } else {
            1.0
        };
        if r.kind == K::GasRelease {
            self.phys.start_release(id, r.asset);
        }
        self.entries.push(Entry {
            id,
            r,
            origin,
            start_ns,
            end_ns,
            active: true,
            stuck_value,
            sign,
        });
        self.active.push(self.entries.len() - 1);
        id
    }

    /// Re-derives what the active faults do to the process and re-solves the operating point, so flows and
    /// pressures change at the instant a process fault starts or ends.
    fn recompute_effects(&mut self) {
        let mut fx = Effects::default();
        for &i in &self.active {
            match self.entries[i].r.kind {
                K::BlockedValve => fx.valve_blocked = true,
                K::Leak if self.entries[i].r.asset == catalog::TANK => fx.tank_leak = true,
                K::Leak => fx.pipe_leak = true,
                K::BearingWear => fx.wear_mult = physics::WEAR_FAULT_MULT,
                _ => {}
            }
        }
        self.fx = fx;
        self.phys.solve(&self.fx);
    }

    // ---- readings ---------------------------------------------------------------------------------------

    /// True value of every point.
    fn truth(&self) -> [f64; N_POINTS] {
        let s = &self.phys;
        let b = |x: bool| if x { 1.0 } else { 0.0 };
        let mut t = [0.0; N_POINTS];
        t[P::PumpFlow as usize] = s.q_pump;
        t[P::PumpMotorCurrent as usize] = s.current;
        t[P::PumpVibration as usize] = s.vibration;
        t[P::PumpSpeed as usize] = 100.0 * s.speed;
        t[P::MotorCurrent as usize] = s.current;
        t[P::MotorSpeed as usize] = s.motor_speed;
        t[P::MotorWindingTemp as usize] = s.t_winding;
        t[P::TankLevel as usize] = s.level;
        t[P::TankOutflow as usize] = s.q_out;
        t[P::PumpVolumeTotal as usize] = s.volume_total;
        t[P::TankNetFlow as usize] = s.net_flow();
        t[P::PumpSuctionPressure as usize] = s.p_suction;
        t[P::PumpDischargePressure as usize] = s.p_discharge;
        t[P::PumpBearingTemp as usize] = s.t_bearing;
        t[P::ValvePosition as usize] = 100.0 * physics::VALVE_OPENING;
        t[P::AmbientTemp as usize] = s.ambient;
        t[P::Gd1Gas as usize] = s.gas[0] + self.gas_offsets[0];
        t[P::Gd2Gas as usize] = s.gas[1] + self.gas_offsets[1];
        t[P::Gd3Gas as usize] = s.gas[2] + self.gas_offsets[2];
        t[P::PumpRunning as usize] = b(s.running);
        // Gas alarms are computed from the (possibly faulty) gas readings in `overlay`.
        t[P::TankLevelHigh as usize] = b(s.level >= physics::LEVEL_HIGH);
        t[P::TankLevelLow as usize] = b(s.level <= physics::LEVEL_LOW);
        t
    }

    /// Takes a reading of every point: truth plus noise (one normal per analog point, always, so the noise stream
    /// does not depend on faults), then the sensor faults.
    fn measure(&mut self) {
        let truth = self.truth();
        for (i, (raw, (v, m))) in self.raw.iter_mut().zip(truth.iter().zip(&META)).enumerate() {
            let noise = if catalog::is_bool(i) || m.sd == 0.0 {
                0.0
            } else {
                (m.sd + m.rel * v.abs()) * self.rng_measurement.normal()
            };
            *raw = (v + noise).clamp(m.lo, m.hi);
        }
        self.overlay();
    }

    /// Applies the active sensor faults (in id order) to the raw readings, and runs the gas detectors' alarm
    /// logic on their resulting readings.
    fn overlay(&mut self) {
        const GAS: [usize; 3] = [P::Gd1Gas as usize, P::Gd2Gas as usize, P::Gd3Gas as usize];
        const ALARM: [usize; 3] = [
            P::Gd1Alarm as usize,
            P::Gd2Alarm as usize,
            P::Gd3Alarm as usize,
        ];
        let now = self.elapsed_ns;
        for (i, meta) in META.iter().enumerate() {
            let mut v = Some(self.raw[i]);
            if let Some(d) = ALARM.iter().position(|&a| a == i) {
                // The detector's own logic, with hysteresis; a detector without a reading holds its state.
                if let Some(g) = self.measured[GAS[d]] {
                    self.gas_alarm[d] = if self.gas_alarm[d] {
                        g >= GAS_ALARM_OFF
                    } else {
                        g >= GAS_ALARM_ON
                    };
                }
                v = Some(if self.gas_alarm[d] { 1.0 } else { 0.0 });
            }
            for &e in &self.active {
                let e = &self.entries[e];
                if e.r.point != Some(i) {
                    continue;
                }
                v = match e.r.kind {
                    K::SensorStuck => Some(e.stuck_value),
                    K::SensorDrift => {
                        let hours = (now - e.start_ns) as f64 / 3.6e12;
                        v.map(|x| x + e.sign * DRIFT_PER_HOUR * meta.span * hours)
                    }
                    K::SensorSpike => {
                        let rng = &mut self.rng_fault_effects;
                        let (hit, size, up) = (rng.uniform(), rng.uniform(), rng.uniform());
                        if hit < SPIKE_PROBABILITY {
                            let sign = if up < 0.5 { -1.0 } else { 1.0 };
                            v.map(|x| x + sign * (0.2 + 0.3 * size) * meta.span)
                        } else {
                            v
                        }
                    }
                    K::Dropout => None,
                    _ => v,
                };
            }
            self.measured[i] = v.map(|x| x.clamp(meta.lo, meta.hi));
        }
    }
}
