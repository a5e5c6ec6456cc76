//! The process model: water booster pump → discharge valve → elevated tank → consumers, and a gas plume model for
//! the compressor house. Everything here is deterministic given the random stream passed in.
//!
//! Units inside: flow m3/h, head m, pressure bar (gauge), power W, temperature °C, time s.

use std::f64::consts::{PI, TAU};

use crate::catalog::{GAS_AREA, GD1, GD2, GD3};
use crate::rng::Rng;

// ---- water side ---------------------------------------------------------------------------------------------
/// ρ·g of water, N/m³.
pub(crate) const RHO_G: f64 = 998.0 * 9.81;
/// Pressure of one metre of water column, bar.
pub(crate) const BAR_PER_M: f64 = RHO_G / 1e5;
/// Pump shut-off head at nominal speed, m.
pub(crate) const H0: f64 = 55.0;
/// Pump curve coefficient: H = H0·s² − B·Q², m/(m3/h)².
pub(crate) const B: f64 = 15.0 / 3600.0;
/// Best-efficiency flow at nominal speed, m3/h, and the efficiency there.
pub(crate) const Q_BEP: f64 = 60.0;
pub(crate) const ETA_BEP: f64 = 0.75;
/// Shaft power at the best-efficiency point (60 m3/h at 40 m), W.
pub(crate) const P_BEP: f64 = RHO_G * 40.0 * Q_BEP / 3600.0 / ETA_BEP;
/// Supply header pressure at the pump suction, bar, and the suction line loss coefficient, bar/(m3/h)².
pub(crate) const P_SUPPLY: f64 = 1.0;
pub(crate) const K_SUCTION: f64 = 2.78e-5;
/// Height of the tank inlet above the pump, m.
pub(crate) const Z_TANK: f64 = 30.0;
/// Discharge pipe loss coefficient, m/(m3/h)².
pub(crate) const K_PIPE: f64 = 0.0015;
/// Valve flow coefficient at full opening (linear characteristic), (m3/h)/√m, and the fixed opening.
pub(crate) const KV_MAX: f64 = 25.5;
pub(crate) const VALVE_OPENING: f64 = 0.7;
/// Fraction of the valve's free area left by a blockage.
pub(crate) const BLOCKED_FRACTION: f64 = 0.06;
/// Fraction of the pump flow lost by a discharge-pipe leak.
pub(crate) const PIPE_LEAK_FRACTION: f64 = 0.3;
/// Tank: 3 m diameter, 5 m high.
pub(crate) const TANK_AREA: f64 = PI * 1.5 * 1.5;
pub(crate) const TANK_HEIGHT: f64 = 5.0;
/// Consumer outflow `q = demand · K_OUT · √level`, and a tank leak `q = K_TANK_LEAK · √level`, (m3/h)/√m.
pub(crate) const K_OUT: f64 = 37.95;
pub(crate) const K_TANK_LEAK: f64 = 12.0;
/// Level switches, m. The pump stops at LEVEL_HIGH and restarts at LEVEL_RESTART.
pub(crate) const LEVEL_HIGH: f64 = 4.5;
pub(crate) const LEVEL_RESTART: f64 = 4.0;
pub(crate) const LEVEL_LOW: f64 = 0.5;
/// Drive speed ramp, fraction of nominal per second.
pub(crate) const SPEED_RAMP: f64 = 0.1;

// ---- motor --------------------------------------------------------------------------------------------------
pub(crate) const ETA_MOTOR: f64 = 0.92;
pub(crate) const U_NOM: f64 = 400.0;
pub(crate) const I_MAG: f64 = 6.0;
pub(crate) const I_RATED: f64 = 21.0;
pub(crate) const P_RATED: f64 = 11_000.0;
pub(crate) const N_SYNC: f64 = 3000.0;
pub(crate) const SLIP_RATED: f64 = 0.02;
pub(crate) const TAU_WINDING: f64 = 1200.0;

// ---- bearing ------------------------------------------------------------------------------------------------
/// Normal wear rate: dw/dt = WEAR_RATE · load · (1 + WEAR_ACCEL · w) · multiplier, 1/s.
/// From w = 0.2 to failure (w = 1) at nominal load: ln(5 / 1.8) / (4 · WEAR_RATE) = 100 days; to the demo's
/// 7.1 mm/s limit (w ≈ 0.66) about 69 days. A healthy pump is healthy for the length of any demo.
pub(crate) const WEAR_RATE: f64 = 2.956e-8;
pub(crate) const WEAR_ACCEL: f64 = 4.0;
/// Multiplier of the wear rate while a `bearing_wear` fault is active: 4000, i.e. 1.18·10⁻⁴ /s·load·(1 + 4w), as
/// fast as before natural wear was slowed 100-fold (from w = 0.2 the bearing fails after 36 min of fault).
pub(crate) const WEAR_FAULT_MULT: f64 = 4000.0;
/// Wear above the run's initial wear from which the bearing counts as degraded in the labels
/// (`Plant::degradation`): at the design point the vibration is then 0.35–0.4 mm/s above its level at the start
/// (dv/dw = 6 + 18w² ≈ 6.4–7.1 for w = 0.15…0.3), four to five times the reading's noise (0.03 mm/s + 2 %) — a
/// lasting change that a detector which learnt the pump at the start is meant to notice. Natural wear takes about
/// 11 days to get there; a `bearing_wear` fault about 4 minutes.
pub const DEGRADATION_WEAR_RISE: f64 = 0.05;
pub(crate) const TAU_BEARING: f64 = 900.0;

// ---- environment --------------------------------------------------------------------------------------------
const TAU_AMBIENT_OU: f64 = 7200.0;
const TAU_DEMAND_OU: f64 = 1200.0;

// ---- gas ----------------------------------------------------------------------------------------------------
/// Detector positions in the compressor house, m (x east, y north).
pub(crate) const DETECTORS: [(f64, f64); 3] = [(0.0, 0.0), (5.0, 0.0), (10.0, 0.0)];
/// Where a release on the area itself happens: at the compressor, next to gd1.
pub(crate) const AREA_RELEASE: (f64, f64) = (1.0, 1.0);
/// A release "at gdN" happens 1 m north of that detector.
const RELEASE_OFFSET_Y: f64 = 1.0;
/// Plume attenuation length, m: a detector d metres away sees exp(−d/λ) of the source concentration.
pub(crate) const PLUME_LAMBDA: f64 = 5.0;
/// Transport: each detector sees the source through two first-order lags of τ = 4 s + 0.5 · d / 0.4 m/s.
const PLUME_TAU0: f64 = 4.0;
const PLUME_WIND: f64 = 0.4;
/// Source concentration at full release, %LEL, and its rise/decay time constants, s.
pub(crate) const SOURCE_MAX: f64 = 80.0;
const TAU_SOURCE_UP: f64 = 5.0;
const TAU_SOURCE_DOWN: f64 = 3.0;
const TURBULENCE: f64 = 0.12;
const TAU_TURBULENCE: f64 = 4.0;

/// What the active faults do to the process (sensor faults are applied to readings, not here).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Effects {
    pub valve_blocked: bool,
    pub tank_leak: bool,
    pub pipe_leak: bool,
    pub wear_mult: f64,
}

impl Default for Effects {
    fn default() -> Self {
        Effects {
            valve_blocked: false,
            tank_leak: false,
            pipe_leak: false,
            wear_mult: 1.0,
        }
    }
}

#[derive(Debug, Clone)]
struct Release {
    fault_id: u64,
    active: bool,
    source: f64,
    gain: [f64; 3],
    tau: [f64; 3],
    stage1: [f64; 3],
    stage2: [f64; 3],
}

/// Per-substep exponential factors, cached while the substep length stays the same.
#[derive(Debug, Clone, Copy, Default)]
struct Coeffs {
    h: f64,
    ambient_ou: f64,
    demand_ou: f64,
    turbulence_ou: f64,
    bearing: f64,
    winding: f64,
    source_up: f64,
    source_down: f64,
}

impl Coeffs {
    fn new(h: f64) -> Coeffs {
        let decay = |tau: f64| (-h / tau).exp();
        Coeffs {
            h,
            ambient_ou: decay(TAU_AMBIENT_OU),
            demand_ou: decay(TAU_DEMAND_OU),
            turbulence_ou: decay(TAU_TURBULENCE),
            bearing: 1.0 - decay(TAU_BEARING),
            winding: 1.0 - decay(TAU_WINDING),
            source_up: 1.0 - decay(TAU_SOURCE_UP),
            source_down: 1.0 - decay(TAU_SOURCE_DOWN),
        }
    }
}

/// Exact discretisation of a unit-variance Ornstein–Uhlenbeck process.
fn ou_step(x: f64, decay: f64, rng: &mut Rng) -> f64 {
    x * decay + (1.0 - decay * decay).sqrt() * rng.normal()
}

/// Plant state (integrated) and the algebraic quantities derived from it.
#[derive(Debug, Clone)]
pub(crate) struct State {
    /// Seconds into the day at the start of the simulation (from `start_epoch_ns`).
    tod0: f64,
    // integrated state
    pub level: f64,
    pub speed: f64,
    pub running: bool,
    pub wear: f64,
    pub t_bearing: f64,
    pub t_winding: f64,
    pub volume_total: f64,
    ambient_ou: f64,
    demand_ou: f64,
    turbulence: [f64; 3],
    releases: Vec<Release>,
    // exogenous
    pub ambient: f64,
    pub demand: f64,
    // algebraic
    pub q_pump: f64,
    pub q_in: f64,
    pub q_out: f64,
    pub q_leak: f64,
    pub head: f64,
    pub p_suction: f64,
    pub p_discharge: f64,
    pub p_shaft: f64,
    pub p_friction: f64,
    pub current: f64,
    pub motor_speed: f64,
    pub vibration: f64,
    pub gas: [f64; 3],
    coeffs: Coeffs,
}

impl State {
    /// A plant in steady state at `t = 0`: pump running at nominal speed, tank level where inflow equals demand,
    /// temperatures at their equilibrium, bearing wear `wear0`.
    pub(crate) fn new(start_epoch_ns: i64, wear0: f64) -> State {
        let tod0 = start_epoch_ns.rem_euclid(86_400_000_000_000) as f64 / 1e9;
        let mut s = State {
            tod0,
            level: 2.5,
            speed: 1.0,
            running: true,
            wear: wear0.clamp(0.0, 1.0),
            t_bearing: 0.0,
            t_winding: 0.0,
            volume_total: 0.0,
            ambient_ou: 0.0,
            demand_ou: 0.0,
            turbulence: [0.0; 3],
            releases: Vec::new(),
            ambient: 0.0,
            demand: 1.0,
            q_pump: 0.0,
            q_in: 0.0,
            q_out: 0.0,
            q_leak: 0.0,
            head: 0.0,
            p_suction: 0.0,
            p_discharge: 0.0,
            p_shaft: 0.0,
            p_friction: 0.0,
            current: 0.0,
            motor_speed: 0.0,
            vibration: 0.0,
            gas: [0.0; 3],
            coeffs: Coeffs::default(),
        };
        s.exogenous(0.0);
        let fx = Effects::default();
        // Bisection for the level where pump inflow equals demand outflow (inflow falls, outflow rises with level).
        let (mut lo, mut hi) = (0.01, LEVEL_RESTART);
        for _ in 0..60 {
            s.level = 0.5 * (lo + hi);
            s.solve(&fx);
            if s.q_in > s.q_out {
                lo = s.level
            } else {
                hi = s.level
            }
        }
        s.solve(&fx);
        s.t_bearing = s.bearing_target();
        s.t_winding = s.winding_target();
        s
    }

    /// Ambient temperature and consumer demand at sim time `t`: a daily cycle plus slow random variation.
    fn exogenous(&mut self, t: f64) {
        let tod_h = (self.tod0 + t).rem_euclid(86_400.0) / 3600.0;
        self.ambient = 15.0 + 7.0 * (TAU * (tod_h - 9.0) / 24.0).sin() + 0.8 * self.ambient_ou;
        self.demand = (1.0 + 0.15 * (TAU * (tod_h - 8.0) / 24.0).sin() + 0.05 * self.demand_ou)
            .clamp(0.75, 1.3);
    }

    fn bearing_target(&self) -> f64 {
        if self.speed < 0.01 {
            return self.ambient;
        }
        let w = self.wear;
        self.ambient + self.speed * (12.0 + 16.0 * self.p_shaft / P_BEP + 20.0 * w + 30.0 * w * w)
    }

    fn winding_target(&self) -> f64 {
        let r = self.current / I_RATED;
        self.ambient + 75.0 * r * r
    }

    /// Algebraic part: operating point of pump and system, power, current, vibration, tank flows.
    pub(crate) fn solve(&mut self, fx: &Effects) {
        let s = self.speed;
        let turning = s > 0.01;
        let static_head = Z_TANK + self.level - P_SUPPLY / BAR_PER_M;
        let alpha = if fx.pipe_leak {
            PIPE_LEAK_FRACTION
        } else {
            0.0
        };
        let opening = VALVE_OPENING
            * if fx.valve_blocked {
                BLOCKED_FRACTION
            } else {
                1.0
            };
        let kv = KV_MAX * opening;
        let k_valve = 1.0 / (kv * kv);
        // H0·s² − B·Q² = static + K_suction·Q² + (K_pipe + K_valve)·((1−α)·Q)²  (the pipe leak is proportional to Q)
        let denom = B + K_SUCTION / BAR_PER_M + (K_PIPE + k_valve) * (1.0 - alpha) * (1.0 - alpha);
        let driving = H0 * s * s - static_head;
        let q = if turning && driving > 0.0 {
            (driving / denom).sqrt()
        } else {
            0.0
        };
        self.q_pump = q;
        self.q_in = q * (1.0 - alpha);
        self.head = if turning { H0 * s * s - B * q * q } else { 0.0 };
        self.p_suction = P_SUPPLY - K_SUCTION * q * q;
        self.p_discharge = self.p_suction + self.head * BAR_PER_M;
        // P_shaft = ρ·g·Q·H / η(Q) with η = η_bep·x·(2 − x), x = Q / (Q_bep·s): finite at Q = 0.
        let x = if turning {
            (q / (Q_BEP * s)).min(1.8)
        } else {
            0.0
        };
        self.p_shaft = if turning {
            RHO_G * self.head * s * Q_BEP / (3600.0 * ETA_BEP * (2.0 - x))
        } else {
            0.0
        };
        let w = self.wear;
        self.p_friction = if turning {
            150.0 * s * s * s + 1200.0 * s * w * w
        } else {
            0.0
        };
        let p_mech = self.p_shaft + self.p_friction;
        if turning {
            let p_el = p_mech / ETA_MOTOR;
            let i_active = p_el / (3f64.sqrt() * U_NOM * s.max(0.1));
            self.current = (i_active * i_active + I_MAG * I_MAG).sqrt();
            self.motor_speed = N_SYNC * s * (1.0 - SLIP_RATED * p_mech / P_RATED);
            self.vibration =
                s * s * (1.4 + 1.2 * (1.0 - x) * (1.0 - x)) + s * (6.0 * w + 6.0 * w * w * w);
        } else {
            self.current = 0.0;
            self.motor_speed = 0.0;
            self.vibration = 0.05;
        }
        let root = self.level.max(0.0).sqrt();
        self.q_out = self.demand * K_OUT * root;
        self.q_leak = if fx.tank_leak {
            K_TANK_LEAK * root
        } else {
            0.0
        };
    }

    /// Advances by `h` seconds (≤ 0.1) ending at sim time `t_end`.
    pub(crate) fn substep(&mut self, h: f64, t_end: f64, fx: &Effects, rng: &mut Rng) {
        if self.coeffs.h != h {
            self.coeffs = Coeffs::new(h);
        }
        let c = self.coeffs;
        // Exogenous noise: drawn every substep whatever the plant state, so faults never shift the stream.
        self.ambient_ou = ou_step(self.ambient_ou, c.ambient_ou, rng);
        self.demand_ou = ou_step(self.demand_ou, c.demand_ou, rng);
        for t in &mut self.turbulence {
            *t = ou_step(*t, c.turbulence_ou, rng);
        }
        self.exogenous(t_end);

        // Tank: A · dh/dt = Q_in − Q_out − Q_leak (explicit Euler on the operating point at the step start).
        let net = self.q_in - self.q_out - self.q_leak;
        self.level = (self.level + net * h / 3600.0 / TANK_AREA).clamp(0.0, TANK_HEIGHT);
        self.volume_total += self.q_pump * h / 3600.0;
        if self.running && self.level >= LEVEL_HIGH {
            self.running = false;
        } else if !self.running && self.level <= LEVEL_RESTART {
            self.running = true;
        }
        let target = if self.running { 1.0 } else { 0.0 };
        self.speed += (target - self.speed).clamp(-SPEED_RAMP * h, SPEED_RAMP * h);

        // Bearing wear accumulates with load and accelerates with damage.
        if self.speed > 0.01 {
            let load = self.speed * (0.4 + 0.6 * self.p_shaft / P_BEP);
            let rate = WEAR_RATE * load * (1.0 + WEAR_ACCEL * self.wear) * fx.wear_mult;
            self.wear = (self.wear + rate * h).min(1.0);
        }
        self.t_bearing += (self.bearing_target() - self.t_bearing) * c.bearing;
        self.t_winding += (self.winding_target() - self.t_winding) * c.winding;

        // Gas plumes.
        let mut gas = [0.0; 3];
        for r in &mut self.releases {
            let (goal, k) = if r.active {
                (SOURCE_MAX, c.source_up)
            } else {
                (0.0, c.source_down)
            };
            r.source += (goal - r.source) * k;
            for (i, g) in gas.iter_mut().enumerate() {
                let a = 1.0 - (-h / r.tau[i]).exp();
                let input = r.gain[i] * r.source * (1.0 + TURBULENCE * self.turbulence[i]).max(0.0);
                r.stage1[i] += (input - r.stage1[i]) * a;
                r.stage2[i] += (r.stage1[i] - r.stage2[i]) * a;
                *g += r.stage2[i];
            }
        }
        self.releases.retain(|r| {
            r.active || r.source > 1e-6 || r.stage1.iter().chain(&r.stage2).any(|&v| v > 1e-6)
        });
        self.gas = gas;

        self.solve(fx);
    }

    /// Starts a gas release for fault `fault_id` at the location implied by `asset`.
    pub(crate) fn start_release(&mut self, fault_id: u64, asset: &str) {
        let at = match asset {
            GD1 => (DETECTORS[0].0, DETECTORS[0].1 + RELEASE_OFFSET_Y),
            GD2 => (DETECTORS[1].0, DETECTORS[1].1 + RELEASE_OFFSET_Y),
            GD3 => (DETECTORS[2].0, DETECTORS[2].1 + RELEASE_OFFSET_Y),
            _ => {
                debug_assert_eq!(asset, GAS_AREA);
                AREA_RELEASE
            }
        };
        let mut gain = [0.0; 3];
        let mut tau = [0.0; 3];
        for (i, (x, y)) in DETECTORS.iter().enumerate() {
            let d = ((x - at.0).powi(2) + (y - at.1).powi(2)).sqrt();
            gain[i] = (-d / PLUME_LAMBDA).exp();
            tau[i] = PLUME_TAU0 + 0.5 * d / PLUME_WIND;
        }
        self.releases.push(Release {
            fault_id,
            active: true,
            source: 0.0,
            gain,
            tau,
            stage1: [0.0; 3],
            stage2: [0.0; 3],
        });
    }

    /// Stops the release of fault `fault_id`; the gas then disperses.
    pub(crate) fn end_release(&mut self, fault_id: u64) {
        for r in self.releases.iter_mut().filter(|r| r.fault_id == fault_id) {
            r.active = false;
        }
    }

    pub(crate) fn net_flow(&self) -> f64 {
        self.q_in - self.q_out - self.q_leak
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn design_point_is_consistent() {
        let s = State::new(0, 0.2);
        // At nominal speed the pump runs close to its best-efficiency point.
        assert!((45.0..75.0).contains(&s.q_pump), "flow {}", s.q_pump);
        assert!((s.q_in - s.q_out).abs() < 1e-6, "steady state");
        // Discharge − suction = head.
        assert!(((s.p_discharge - s.p_suction) / BAR_PER_M - s.head).abs() < 1e-9);
        // Efficiency never exceeds the best-efficiency value.
        let eta = RHO_G * s.q_pump / 3600.0 * s.head / s.p_shaft;
        assert!(eta > 0.5 && eta <= ETA_BEP + 1e-12, "eta {eta}");
        assert!((10.0..20.0).contains(&s.current), "current {}", s.current);
        assert!((2900.0..3000.0).contains(&s.motor_speed));
    }

    #[test]
    fn affinity_laws_hold_for_the_pump_curve() {
        // H(s·Q, s) = s²·H(Q, 1) and P(s·Q, s) = s³·P(Q, 1) for the curves used in `solve`.
        let head = |q: f64, s: f64| H0 * s * s - B * q * q;
        let power = |q: f64, s: f64| {
            let x = q / (Q_BEP * s);
            RHO_G * head(q, s) * s * Q_BEP / (3600.0 * ETA_BEP * (2.0 - x))
        };
        for (q, s) in [(30.0, 0.8), (60.0, 0.9), (70.0, 0.7)] {
            assert!((head(s * q, s) - s * s * head(q, 1.0)).abs() < 1e-9);
            assert!((power(s * q, s) / power(q, 1.0) - s * s * s).abs() < 1e-9);
        }
    }
}
