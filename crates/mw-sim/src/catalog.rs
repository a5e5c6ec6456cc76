//! What the simulated plant consists of: its assets and the per-point measurement properties.

use crate::registers::REGISTER_MAP;

pub(crate) const ENTERPRISE: &str = "acme";
pub(crate) const SITE: &str = "acme/plant1";
pub(crate) const UTILITIES: &str = "acme/plant1/utilities";
pub(crate) const WATER: &str = "acme/plant1/utilities/water";
pub(crate) const PUMP: &str = "acme/plant1/utilities/water/pump1";
pub(crate) const MOTOR: &str = "acme/plant1/utilities/water/pump1_motor";
pub(crate) const VALVE: &str = "acme/plant1/utilities/water/valve1";
pub(crate) const TANK: &str = "acme/plant1/utilities/water/tank1";
pub(crate) const GAS_AREA: &str = "acme/plant1/utilities/compressor_house";
pub(crate) const GD1: &str = "acme/plant1/utilities/compressor_house/gd1";
pub(crate) const GD2: &str = "acme/plant1/utilities/compressor_house/gd2";
pub(crate) const GD3: &str = "acme/plant1/utilities/compressor_house/gd3";

/// One node of the simulated asset tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AssetInfo {
    /// ISA-95 path, e.g. `acme/plant1/utilities/water/pump1`.
    pub path: &'static str,
    /// Asset kind as used in the configuration (`pump`, `motor`, `tank`, `valve`, `gas_detector`, `area`, …).
    pub kind: &'static str,
    pub description: &'static str,
}

const fn asset(path: &'static str, kind: &'static str, description: &'static str) -> AssetInfo {
    AssetInfo {
        path,
        kind,
        description,
    }
}

pub(crate) static ASSETS: [AssetInfo; 12] = [
    asset(ENTERPRISE, "enterprise", "Acme Corp."),
    asset(SITE, "site", "Plant 1"),
    asset(UTILITIES, "area", "Utilities"),
    asset(
        WATER,
        "area",
        "Water supply: booster pump, discharge valve, elevated storage tank",
    ),
    asset(
        PUMP,
        "pump",
        "Centrifugal booster pump, 60 m3/h at 40 m, drive-controlled",
    ),
    asset(MOTOR, "motor", "Pump motor, 11 kW, 400 V, 2-pole"),
    asset(
        VALVE,
        "valve",
        "Discharge control valve, linear characteristic, 70 % open",
    ),
    asset(
        TANK,
        "tank",
        "Storage tank, 3 m diameter, 5 m high, drained by consumer demand",
    ),
    asset(
        GAS_AREA,
        "area",
        "Compressor house with three combustible-gas detectors",
    ),
    asset(
        GD1,
        "gas_detector",
        "Gas detector 1 (west, next to the compressor)",
    ),
    asset(
        GD2,
        "gas_detector",
        "Gas detector 2 (middle, 5 m east of gd1)",
    ),
    asset(
        GD3,
        "gas_detector",
        "Gas detector 3 (east, 10 m east of gd1)",
    ),
];

/// Every asset of the simulated plant, parents before children.
pub fn assets() -> &'static [AssetInfo] {
    &ASSETS
}

/// Index of each point in [`REGISTER_MAP`] (and in every per-point array of the simulator).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum P {
    PumpFlow,
    PumpMotorCurrent,
    PumpVibration,
    PumpSpeed,
    MotorCurrent,
    MotorSpeed,
    MotorWindingTemp,
    TankLevel,
    TankOutflow,
    PumpVolumeTotal,
    TankNetFlow,
    PumpSuctionPressure,
    PumpDischargePressure,
    PumpBearingTemp,
    ValvePosition,
    AmbientTemp,
    Gd1Gas,
    Gd2Gas,
    Gd3Gas,
    PumpRunning,
    Gd1Alarm,
    Gd2Alarm,
    Gd3Alarm,
    TankLevelHigh,
    TankLevelLow,
}

pub(crate) const N_POINTS: usize = 25;

/// Measurement properties of a point: white noise `sd + rel * |value|`, the span that sizes drift and spike
/// faults, and the instrument's output range.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meta {
    pub sd: f64,
    pub rel: f64,
    pub span: f64,
    pub lo: f64,
    pub hi: f64,
}

const fn m(sd: f64, rel: f64, span: f64, lo: f64, hi: f64) -> Meta {
    Meta {
        sd,
        rel,
        span,
        lo,
        hi,
    }
}
const BOOL: Meta = m(0.0, 0.0, 1.0, 0.0, 1.0);
const INF: f64 = f64::INFINITY;

pub(crate) static META: [Meta; N_POINTS] = [
    m(0.4, 0.0, 100.0, 0.0, 200.0),      // pump flow
    m(0.08, 0.0, 30.0, 0.0, 100.0),      // pump motor current
    m(0.03, 0.02, 20.0, 0.0, 50.0),      // vibration
    m(0.05, 0.0, 100.0, 0.0, 110.0),     // speed %
    m(0.08, 0.0, 30.0, 0.0, 100.0),      // motor current
    m(1.5, 0.0, 3000.0, 0.0, 3600.0),    // motor speed
    m(0.15, 0.0, 150.0, -50.0, 250.0),   // winding temperature
    m(0.005, 0.0, 5.0, 0.0, 5.5),        // tank level
    m(0.4, 0.0, 100.0, 0.0, 200.0),      // tank outflow
    m(0.0, 0.0, 1000.0, 0.0, INF), // volume totalizer (counts what the meter counted: no noise)
    m(0.5, 0.0, 100.0, -1000.0, 1000.0), // net flow
    m(0.005, 0.0, 10.0, 0.0, 100.0), // suction pressure
    m(0.01, 0.0, 10.0, 0.0, 100.0), // discharge pressure
    m(0.1, 0.0, 120.0, -50.0, 200.0), // bearing temperature
    m(0.05, 0.0, 100.0, 0.0, 100.0), // valve position
    m(0.1, 0.0, 60.0, -50.0, 60.0), // ambient temperature
    m(0.25, 0.0, 100.0, 0.0, 100.0), // gd1 gas
    m(0.25, 0.0, 100.0, 0.0, 100.0), // gd2 gas
    m(0.25, 0.0, 100.0, 0.0, 100.0), // gd3 gas
    BOOL,
    BOOL,
    BOOL,
    BOOL,
    BOOL,
    BOOL,
];

pub(crate) fn is_bool(i: usize) -> bool {
    REGISTER_MAP[i].data_type == "bool"
}

/// The point a sensor fault hits when the request names none.
pub(crate) fn default_point(asset: &str) -> Option<P> {
    Some(match asset {
        WATER => P::AmbientTemp,
        PUMP => P::PumpDischargePressure,
        MOTOR => P::MotorCurrent,
        VALVE => P::ValvePosition,
        TANK => P::TankLevel,
        GD1 => P::Gd1Gas,
        GD2 => P::Gd2Gas,
        GD3 => P::Gd3Gas,
        _ => return None,
    })
}

/// Indices of the points that belong to `asset`.
pub(crate) fn points_of(asset: &str) -> impl Iterator<Item = usize> + '_ {
    REGISTER_MAP
        .iter()
        .enumerate()
        .filter(move |(_, p)| p.asset == asset)
        .map(|(i, _)| i)
}

/// Resolves a full path or a unique last segment (`pump1`, `gd2`) to the canonical asset path.
pub(crate) fn resolve_asset(name: &str) -> Option<&'static str> {
    let name = name.trim().trim_matches('/');
    ASSETS
        .iter()
        .map(|a| a.path)
        .find(|p| *p == name || p.rsplit('/').next() == Some(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn point_enum_matches_register_map_order() {
        let expect = [
            (P::PumpFlow, PUMP, "flow"),
            (P::PumpMotorCurrent, PUMP, "motor_current"),
            (P::PumpVibration, PUMP, "vibration"),
            (P::PumpSpeed, PUMP, "speed"),
            (P::MotorCurrent, MOTOR, "current"),
            (P::MotorSpeed, MOTOR, "speed"),
            (P::MotorWindingTemp, MOTOR, "winding_temperature"),
            (P::TankLevel, TANK, "level"),
            (P::TankOutflow, TANK, "outflow"),
            (P::PumpVolumeTotal, PUMP, "volume_total"),
            (P::TankNetFlow, TANK, "net_flow"),
            (P::PumpSuctionPressure, PUMP, "suction_pressure"),
            (P::PumpDischargePressure, PUMP, "discharge_pressure"),
            (P::PumpBearingTemp, PUMP, "bearing_temperature"),
            (P::ValvePosition, VALVE, "position"),
            (P::AmbientTemp, WATER, "ambient_temperature"),
            (P::Gd1Gas, GD1, "gas"),
            (P::Gd2Gas, GD2, "gas"),
            (P::Gd3Gas, GD3, "gas"),
            (P::PumpRunning, PUMP, "running"),
            (P::Gd1Alarm, GD1, "alarm"),
            (P::Gd2Alarm, GD2, "alarm"),
            (P::Gd3Alarm, GD3, "alarm"),
            (P::TankLevelHigh, TANK, "level_high"),
            (P::TankLevelLow, TANK, "level_low"),
        ];
        assert_eq!(expect.len(), N_POINTS);
        for (i, (p, asset, name)) in expect.iter().enumerate() {
            assert_eq!(*p as usize, i);
            assert_eq!(
                (REGISTER_MAP[i].asset, REGISTER_MAP[i].name),
                (*asset, *name)
            );
            assert_eq!(
                is_bool(i),
                META[i].sd == 0.0 && META[i].span == 1.0,
                "{name}"
            );
        }
    }

    #[test]
    fn asset_names_resolve_and_are_unique() {
        for a in ASSETS.iter() {
            assert_eq!(resolve_asset(a.path), Some(a.path));
            let last = a.path.rsplit('/').next().unwrap_or_default();
            assert_eq!(resolve_asset(last), Some(a.path), "{last} must be unique");
        }
        assert_eq!(resolve_asset("pump9"), None);
        for p in REGISTER_MAP.iter() {
            assert!(
                ASSETS.iter().any(|a| a.path == p.asset),
                "{} has no asset entry",
                p.path()
            );
        }
    }
}
