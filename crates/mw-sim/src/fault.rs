//! Fault kinds, requests, records and the validation that turns a request into something the plant can apply.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

#[cfg(test)]
use crate::catalog::P;
use crate::catalog::{self, ASSETS, GAS_AREA, GD1, GD2, GD3, PUMP, TANK, VALVE};
use crate::registers::REGISTER_MAP;

/// Longest fault the simulator accepts: 30 days.
pub const MAX_FAULT_DURATION_S: f64 = 30.0 * 86_400.0;

/// What goes wrong. `Display`/`FromStr` use the snake_case names (`gas_release`, `sensor_stuck`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    /// Combustible gas leaks in the compressor house; the plume reaches the nearest detector first.
    GasRelease,
    /// The tank (or the pump's discharge pipe) loses water.
    Leak,
    /// The discharge valve is obstructed: flow collapses, discharge pressure rises, current drops.
    BlockedValve,
    /// Bearing wear runs 40 times faster than normal.
    BearingWear,
    /// One sensor freezes at its last reading.
    SensorStuck,
    /// One sensor's reading drifts away (10 % of its span per hour).
    SensorDrift,
    /// One sensor produces random spikes.
    SensorSpike,
    /// One sensor stops delivering: the point reads as "no data".
    Dropout,
}

impl FaultKind {
    /// Every kind, in declaration order.
    pub const ALL: [FaultKind; 8] = [
        FaultKind::GasRelease,
        FaultKind::Leak,
        FaultKind::BlockedValve,
        FaultKind::BearingWear,
        FaultKind::SensorStuck,
        FaultKind::SensorDrift,
        FaultKind::SensorSpike,
        FaultKind::Dropout,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::GasRelease => "gas_release",
            FaultKind::Leak => "leak",
            FaultKind::BlockedValve => "blocked_valve",
            FaultKind::BearingWear => "bearing_wear",
            FaultKind::SensorStuck => "sensor_stuck",
            FaultKind::SensorDrift => "sensor_drift",
            FaultKind::SensorSpike => "sensor_spike",
            FaultKind::Dropout => "dropout",
        }
    }

    /// `true` for the kinds that change one reading and nothing else (stuck, drift, spike, dropout).
    pub fn is_sensor_fault(self) -> bool {
        matches!(
            self,
            FaultKind::SensorStuck
                | FaultKind::SensorDrift
                | FaultKind::SensorSpike
                | FaultKind::Dropout
        )
    }

    /// Whether this kind can hit the point with the given register-map index.
    pub(crate) fn applies_to_point(self, i: usize) -> bool {
        match self {
            FaultKind::SensorStuck | FaultKind::Dropout => true,
            FaultKind::SensorDrift | FaultKind::SensorSpike => !catalog::is_bool(i),
            _ => false,
        }
    }

    /// The asset paths this kind can be injected on.
    pub fn assets(self) -> Vec<&'static str> {
        match self {
            FaultKind::GasRelease => vec![GAS_AREA, GD1, GD2, GD3],
            FaultKind::Leak => vec![TANK, PUMP],
            FaultKind::BlockedValve => vec![VALVE, PUMP],
            FaultKind::BearingWear => vec![PUMP],
            _ => ASSETS
                .iter()
                .map(|a| a.path)
                .filter(|a| catalog::points_of(a).any(|i| self.applies_to_point(i)))
                .collect(),
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FaultKind {
    type Err = SimError;
    fn from_str(s: &str) -> Result<Self, SimError> {
        FaultKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| SimError::UnknownKind {
                kind: s.to_string(),
            })
    }
}

/// Where a fault came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultOrigin {
    /// From `SimConfig::schedule`.
    Scheduled,
    /// Drawn by the seeded random fault generator (`SimConfig::random_faults`).
    Random,
    /// Injected on demand with `Plant::inject`.
    Api,
}

impl FaultOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            FaultOrigin::Scheduled => "scheduled",
            FaultOrigin::Random => "random",
            FaultOrigin::Api => "api",
        }
    }
}

impl fmt::Display for FaultOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identifier of a fault, unique within one `Plant`, increasing with start time (1, 2, 3, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FaultId(pub u64);

impl fmt::Display for FaultId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A fault to start now (`Plant::inject`).
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRequest {
    /// Full asset path or its unique last segment (`pump1`, `gd2`).
    pub asset: String,
    pub kind: FaultKind,
    /// Finite, > 0 and ≤ [`MAX_FAULT_DURATION_S`].
    pub duration_s: f64,
    /// Point name for sensor faults (`flow`, `gas`, …); `None` picks the asset's default point. Must be `None`
    /// for the other kinds.
    pub point: Option<String>,
}

/// A fault planned in the configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduledFault {
    /// Sim seconds from the start; finite and ≥ 0.
    pub start_s: f64,
    pub asset: String,
    pub kind: FaultKind,
    pub duration_s: f64,
    pub point: Option<String>,
}

/// A fault that has started (active or past): the ground truth for labels.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRecord {
    pub id: FaultId,
    pub kind: FaultKind,
    /// Canonical asset path.
    pub asset: String,
    /// The point a sensor fault hits; `None` for process faults.
    pub point: Option<String>,
    pub origin: FaultOrigin,
    /// Sim seconds since the start of the simulation.
    pub start_s: f64,
    /// `start_s + duration` (in the future while the fault is active).
    pub end_s: f64,
    /// `start_epoch_ns + start_s · 1e9`.
    pub start_ns: i64,
    pub end_ns: i64,
    /// `true` while the fault is in effect (`start_s ≤ now < end_s`).
    pub active: bool,
}

impl FaultRecord {
    /// The assets whose readings this fault changes (the physical reach of the fault, per
    /// docs/simulator.md): the ground truth for per-asset labels. A blocked valve starves the
    /// pump, its motor and the tank; a gas release reaches all three detectors; a sensor fault
    /// touches only its own asset.
    pub fn affected_assets(&self) -> Vec<&'static str> {
        use crate::catalog::{GAS_AREA, GD1, GD2, GD3, MOTOR, PUMP, TANK, VALVE};
        let own = crate::catalog::resolve_asset(&self.asset);
        match self.kind {
            FaultKind::GasRelease => vec![GAS_AREA, GD1, GD2, GD3],
            FaultKind::BlockedValve => vec![VALVE, PUMP, MOTOR, TANK],
            FaultKind::BearingWear => vec![PUMP, MOTOR],
            FaultKind::Leak if own == Some(PUMP) => vec![PUMP, MOTOR, TANK],
            _ => own.into_iter().collect(),
        }
    }
}

/// Errors of the simulator's API. Each says what was wrong and what would have been accepted.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum SimError {
    #[error("unknown asset \"{asset}\" (valid assets: {})", valid.join(", "))]
    UnknownAsset {
        asset: String,
        valid: Vec<&'static str>,
    },
    #[error("fault kind {kind} does not apply to asset \"{asset}\" (it applies to: {})", valid.join(", "))]
    NotApplicable {
        kind: FaultKind,
        asset: String,
        valid: Vec<&'static str>,
    },
    #[error("asset \"{asset}\" has no point \"{point}\" that fault kind {kind} applies to (points: {})", valid.join(", "))]
    UnknownPoint {
        kind: FaultKind,
        asset: String,
        point: String,
        valid: Vec<&'static str>,
    },
    #[error("fault kind {kind} takes no point (only sensor faults do); remove point \"{point}\"")]
    PointNotAllowed { kind: FaultKind, point: String },
    #[error("bad fault duration {duration_s} s: must be finite, > 0 and <= {max_s} s", max_s = MAX_FAULT_DURATION_S)]
    BadDuration { duration_s: f64 },
    #[error("bad fault start {start_s} s: must be finite and >= 0")]
    BadStart { start_s: f64 },
    #[error("bad random fault interval {mean_s} s: must be finite and >= 1 s")]
    BadInterval { mean_s: f64 },
    #[error(
        "unknown fault kind \"{kind}\" (expected one of: gas_release, leak, blocked_valve, bearing_wear, sensor_stuck, sensor_drift, sensor_spike, dropout)"
    )]
    UnknownKind { kind: String },
}

/// A validated fault: canonical asset, resolved point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Resolved {
    pub kind: FaultKind,
    pub asset: &'static str,
    pub point: Option<usize>,
    pub duration_s: f64,
}

pub(crate) fn resolve(
    asset: &str,
    kind: FaultKind,
    duration_s: f64,
    point: Option<&str>,
) -> Result<Resolved, SimError> {
    if !(duration_s.is_finite() && duration_s > 0.0 && duration_s <= MAX_FAULT_DURATION_S) {
        return Err(SimError::BadDuration { duration_s });
    }
    let Some(canonical) = catalog::resolve_asset(asset) else {
        return Err(SimError::UnknownAsset {
            asset: asset.to_string(),
            valid: ASSETS.iter().map(|a| a.path).collect(),
        });
    };
    let valid = kind.assets();
    if !valid.contains(&canonical) {
        return Err(SimError::NotApplicable {
            kind,
            asset: canonical.to_string(),
            valid,
        });
    }
    let point = if kind.is_sensor_fault() {
        let found = match point {
            Some(name) => {
                catalog::points_of(canonical).find(|&i| REGISTER_MAP[i].name == name.trim())
            }
            None => catalog::default_point(canonical).map(|p| p as usize),
        };
        match found {
            Some(i) if kind.applies_to_point(i) => Some(i),
            _ => {
                return Err(SimError::UnknownPoint {
                    kind,
                    asset: canonical.to_string(),
                    point: point.unwrap_or("(default)").to_string(),
                    valid: catalog::points_of(canonical)
                        .filter(|&i| kind.applies_to_point(i))
                        .map(|i| REGISTER_MAP[i].name)
                        .collect(),
                });
            }
        }
    } else {
        if let Some(p) = point {
            return Err(SimError::PointNotAllowed {
                kind,
                point: p.to_string(),
            });
        }
        None
    };
    Ok(Resolved {
        kind,
        asset: canonical,
        point,
        duration_s,
    })
}

/// Range of durations (seconds) the random fault generator draws from, per kind.
pub(crate) fn random_duration_range(kind: FaultKind) -> (f64, f64) {
    match kind {
        FaultKind::GasRelease => (60.0, 300.0),
        FaultKind::Leak => (600.0, 3600.0),
        FaultKind::BlockedValve => (300.0, 1800.0),
        FaultKind::BearingWear => (600.0, 3600.0),
        FaultKind::SensorStuck | FaultKind::SensorDrift | FaultKind::SensorSpike => (300.0, 1800.0),
        FaultKind::Dropout => (30.0, 600.0),
    }
}

/// The default point of an asset for a kind, for documentation and random faults.
pub(crate) fn applicable_points(kind: FaultKind, asset: &str) -> Vec<usize> {
    catalog::points_of(asset)
        .filter(|&i| kind.applies_to_point(i))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_roundtrip() {
        for k in FaultKind::ALL {
            assert_eq!(k.as_str().parse::<FaultKind>(), Ok(k));
            assert_eq!(k.to_string(), k.as_str());
        }
        let err = "gas-release".parse::<FaultKind>().unwrap_err();
        assert!(err.to_string().contains("gas_release, leak"), "{err}");
    }

    #[test]
    fn affected_assets_follow_the_physics() {
        use crate::catalog::{GD1, GD2, GD3, MOTOR, PUMP, TANK, VALVE};
        let rec = |kind, asset: &str| FaultRecord {
            id: FaultId(1),
            kind,
            asset: asset.into(),
            point: None,
            origin: FaultOrigin::Api,
            start_s: 0.0,
            end_s: 1.0,
            start_ns: 0,
            end_ns: 1,
            active: true,
        };
        let blocked = rec(FaultKind::BlockedValve, VALVE).affected_assets();
        for a in [VALVE, PUMP, MOTOR, TANK] {
            assert!(blocked.contains(&a), "{a}");
        }
        assert!(
            rec(FaultKind::GasRelease, GD2)
                .affected_assets()
                .contains(&GD1)
        );
        assert!(
            rec(FaultKind::GasRelease, GD1)
                .affected_assets()
                .contains(&GD3)
        );
        assert_eq!(rec(FaultKind::Leak, TANK).affected_assets(), vec![TANK]);
        assert!(rec(FaultKind::Leak, PUMP).affected_assets().contains(&TANK));
        assert_eq!(
            rec(FaultKind::SensorStuck, GD3).affected_assets(),
            vec![GD3]
        );
        assert!(
            !rec(FaultKind::BearingWear, PUMP)
                .affected_assets()
                .contains(&TANK)
        );
    }

    #[test]
    fn resolve_checks_everything() {
        let ok = resolve("pump1", FaultKind::SensorDrift, 10.0, Some("flow")).unwrap();
        assert_eq!((ok.asset, ok.point), (PUMP, Some(P::PumpFlow as usize)));
        let dflt = resolve(TANK, FaultKind::Dropout, 10.0, None).unwrap();
        assert_eq!(dflt.point, Some(P::TankLevel as usize));

        let e = resolve("pump9", FaultKind::Leak, 10.0, None).unwrap_err();
        assert!(matches!(e, SimError::UnknownAsset { .. }));
        assert!(
            e.to_string().contains("acme/plant1/utilities/water/pump1"),
            "{e}"
        );

        let e = resolve("gd1", FaultKind::Leak, 10.0, None).unwrap_err();
        assert!(
            e.to_string()
                .contains("applies to: acme/plant1/utilities/water/tank1"),
            "{e}"
        );

        let e = resolve("pump1", FaultKind::SensorSpike, 10.0, Some("running")).unwrap_err();
        assert!(matches!(e, SimError::UnknownPoint { .. }), "{e}");
        assert!(resolve("pump1", FaultKind::SensorStuck, 10.0, Some("running")).is_ok());
        assert!(resolve("compressor_house", FaultKind::SensorStuck, 10.0, None).is_err());
        assert!(matches!(
            resolve("valve1", FaultKind::BlockedValve, 10.0, Some("position")),
            Err(SimError::PointNotAllowed { .. })
        ));

        for d in [
            0.0,
            -1.0,
            f64::NAN,
            f64::INFINITY,
            MAX_FAULT_DURATION_S * 2.0,
        ] {
            assert!(matches!(
                resolve("tank1", FaultKind::Leak, d, None),
                Err(SimError::BadDuration { .. })
            ));
        }
    }
}
