//! The Modbus register image of the simulated plant: the static register map and the encoder.
//!
//! The encoding is written out here on purpose (`f32::to_bits`, words split by byte order) instead of borrowing
//! the decoder of `mw-modbus`: the poller decodes independently, so a shared mistake cannot hide itself.

use std::fmt;

use crate::catalog::{GD1, GD2, GD3, MOTOR, PUMP, TANK, VALVE, WATER};

/// One of the four Modbus data tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// Coils (read with function code 1).
    Coil,
    /// Discrete inputs (function code 2).
    DiscreteInput,
    /// Input registers (function code 4).
    InputRegister,
    /// Holding registers (function code 3).
    HoldingRegister,
}

impl Table {
    /// The name used in the configuration file (`table = "..."`, see docs/config.md).
    pub fn as_str(self) -> &'static str {
        match self {
            Table::Coil => "coil",
            Table::DiscreteInput => "discrete",
            Table::InputRegister => "input",
            Table::HoldingRegister => "holding",
        }
    }

    /// `true` for the two 16-bit register tables.
    pub fn is_register(self) -> bool {
        matches!(self, Table::InputRegister | Table::HoldingRegister)
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One point of the register map. The same information is in `examples/plant.toml` and `docs/simulator.md`
/// (tests keep the three in step).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RegisterPoint {
    /// Asset path, e.g. `acme/plant1/utilities/water/pump1`.
    pub asset: &'static str,
    /// Point name within the asset; the tag path is `asset/name`.
    pub name: &'static str,
    /// UCUM unit of the engineering value (`""` for booleans).
    pub unit: &'static str,
    pub table: Table,
    /// 0-based protocol address (a 32-bit value also occupies `address + 1`).
    pub address: u16,
    /// `"f32" | "u16" | "i16" | "u32" | "i32" | "bool"`.
    pub data_type: &'static str,
    /// Byte order of 32-bit values, bytes A (most significant) … D: `"abcd" | "cdab" | "badc" | "dcba"`;
    /// `"abcd"` (meaningless) for 16-bit and boolean points.
    pub word_order: &'static str,
    /// Linear scaling `(raw_lo, raw_hi, eu_lo, eu_hi)`: `eu = eu_lo + (raw - raw_lo) * (eu_hi - eu_lo) / (raw_hi - raw_lo)`.
    pub scale: Option<(f64, f64, f64, f64)>,
    pub description: &'static str,
}

impl RegisterPoint {
    /// Number of 16-bit registers (or bits) the point occupies.
    pub fn width(&self) -> u16 {
        match self.data_type {
            "f32" | "u32" | "i32" => 2,
            _ => 1,
        }
    }

    /// The tag path `asset/name`.
    pub fn path(&self) -> String {
        format!("{}/{}", self.asset, self.name)
    }
}

/// A snapshot of the four tables, indexed by protocol address (`holding_registers[100]` is address 100).
/// Addresses between the blocks read as 0; addresses past the end of a vector do not exist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registers {
    pub coils: Vec<bool>,
    pub discrete_inputs: Vec<bool>,
    pub input_registers: Vec<u16>,
    pub holding_registers: Vec<u16>,
}

/// Raw values written for a point whose sensor has dropped out (see docs/simulator.md, "Dropout").
pub mod sentinel {
    /// Quiet NaN, `0x7FC0_0000`, split in the point's word order.
    pub const F32: u32 = 0x7FC0_0000;
    pub const U16: u16 = 0xFFFF;
    pub const I16: u16 = 0x8000;
    pub const U32: u32 = 0xFFFF_FFFF;
    pub const I32: u32 = 0x8000_0000;
}

#[allow(clippy::too_many_arguments)] // one argument per column of the register table below
const fn pt(
    asset: &'static str,
    name: &'static str,
    unit: &'static str,
    table: Table,
    address: u16,
    data_type: &'static str,
    word_order: &'static str,
    scale: Option<(f64, f64, f64, f64)>,
    description: &'static str,
) -> RegisterPoint {
    RegisterPoint {
        asset,
        name,
        unit,
        table,
        address,
        data_type,
        word_order,
        scale,
        description,
    }
}

use Table::{Coil, DiscreteInput, HoldingRegister, InputRegister};

const BAR: Option<(f64, f64, f64, f64)> = Some((0.0, 10_000.0, 0.0, 100.0));
const TENTHS: Option<(f64, f64, f64, f64)> = Some((0.0, 1000.0, 0.0, 100.0));

/// The register map, in the order of [`crate::catalog::P`] (a unit test checks the two agree).
pub(crate) static REGISTER_MAP: [RegisterPoint; crate::catalog::N_POINTS] = [
    // Holding registers 0..=21: 32-bit values.
    pt(
        PUMP,
        "flow",
        "m3/h",
        HoldingRegister,
        0,
        "f32",
        "abcd",
        None,
        "pump discharge flow",
    ),
    pt(
        PUMP,
        "motor_current",
        "A",
        HoldingRegister,
        2,
        "f32",
        "abcd",
        None,
        "motor current reported by the drive",
    ),
    pt(
        PUMP,
        "vibration",
        "mm/s",
        HoldingRegister,
        4,
        "f32",
        "abcd",
        None,
        "bearing housing vibration velocity, RMS",
    ),
    pt(
        PUMP,
        "speed",
        "%",
        HoldingRegister,
        6,
        "f32",
        "cdab",
        None,
        "drive output speed, % of nominal",
    ),
    pt(
        MOTOR,
        "current",
        "A",
        HoldingRegister,
        8,
        "f32",
        "abcd",
        None,
        "motor phase current (current transformer)",
    ),
    pt(
        MOTOR,
        "speed",
        "/min",
        HoldingRegister,
        10,
        "f32",
        "badc",
        None,
        "shaft speed",
    ),
    pt(
        MOTOR,
        "winding_temperature",
        "Cel",
        HoldingRegister,
        12,
        "f32",
        "dcba",
        None,
        "stator winding temperature (PT100)",
    ),
    pt(
        TANK,
        "level",
        "m",
        HoldingRegister,
        14,
        "f32",
        "abcd",
        None,
        "tank level",
    ),
    pt(
        TANK,
        "outflow",
        "m3/h",
        HoldingRegister,
        16,
        "f32",
        "abcd",
        None,
        "demand outflow to consumers",
    ),
    pt(
        PUMP,
        "volume_total",
        "m3",
        HoldingRegister,
        18,
        "u32",
        "abcd",
        Some((0.0, 1_000_000.0, 0.0, 100_000.0)),
        "pumped volume totalizer, 0.1 m3 per count",
    ),
    pt(
        TANK,
        "net_flow",
        "m3/h",
        HoldingRegister,
        20,
        "i32",
        "cdab",
        Some((-100_000.0, 100_000.0, -1000.0, 1000.0)),
        "tank inflow minus outflows, 0.01 m3/h per count",
    ),
    // Holding registers 100..=104: 16-bit scaled values.
    pt(
        PUMP,
        "suction_pressure",
        "bar",
        HoldingRegister,
        100,
        "u16",
        "abcd",
        BAR,
        "suction pressure (gauge), 0.01 bar per count",
    ),
    pt(
        PUMP,
        "discharge_pressure",
        "bar",
        HoldingRegister,
        101,
        "u16",
        "abcd",
        BAR,
        "discharge pressure (gauge), 0.01 bar per count",
    ),
    pt(
        PUMP,
        "bearing_temperature",
        "Cel",
        HoldingRegister,
        102,
        "i16",
        "abcd",
        TENTHS,
        "drive-end bearing temperature, 0.1 Cel per count",
    ),
    pt(
        VALVE,
        "position",
        "%",
        HoldingRegister,
        103,
        "u16",
        "abcd",
        TENTHS,
        "discharge control valve position feedback, 0.1 % per count",
    ),
    pt(
        WATER,
        "ambient_temperature",
        "Cel",
        HoldingRegister,
        104,
        "i16",
        "abcd",
        TENTHS,
        "outdoor air temperature, 0.1 Cel per count",
    ),
    // Input registers 0..=2: gas detectors.
    pt(
        GD1,
        "gas",
        "%{LEL}",
        InputRegister,
        0,
        "u16",
        "abcd",
        TENTHS,
        "combustible gas, 0.1 %LEL per count",
    ),
    pt(
        GD2,
        "gas",
        "%{LEL}",
        InputRegister,
        1,
        "u16",
        "abcd",
        TENTHS,
        "combustible gas, 0.1 %LEL per count",
    ),
    pt(
        GD3,
        "gas",
        "%{LEL}",
        InputRegister,
        2,
        "u16",
        "abcd",
        TENTHS,
        "combustible gas, 0.1 %LEL per count",
    ),
    // Coil 0.
    pt(
        PUMP,
        "running",
        "",
        Coil,
        0,
        "bool",
        "abcd",
        None,
        "pump running",
    ),
    // Discrete inputs 0..=4.
    pt(
        GD1,
        "alarm",
        "",
        DiscreteInput,
        0,
        "bool",
        "abcd",
        None,
        "gas alarm, on at >= 20 %LEL, off below 18 %LEL",
    ),
    pt(
        GD2,
        "alarm",
        "",
        DiscreteInput,
        1,
        "bool",
        "abcd",
        None,
        "gas alarm, on at >= 20 %LEL, off below 18 %LEL",
    ),
    pt(
        GD3,
        "alarm",
        "",
        DiscreteInput,
        2,
        "bool",
        "abcd",
        None,
        "gas alarm, on at >= 20 %LEL, off below 18 %LEL",
    ),
    pt(
        TANK,
        "level_high",
        "",
        DiscreteInput,
        3,
        "bool",
        "abcd",
        None,
        "high level switch, 4.5 m (stops the pump)",
    ),
    pt(
        TANK,
        "level_low",
        "",
        DiscreteInput,
        4,
        "bool",
        "abcd",
        None,
        "low level switch, 0.5 m",
    ),
];

/// The register map of the simulated plant (what `millwright sim` serves on Modbus TCP).
pub fn register_map() -> &'static [RegisterPoint] {
    &REGISTER_MAP
}

/// Splits a 32-bit value into two registers in the given byte order (A = most significant byte).
pub(crate) fn split_u32(bits: u32, word_order: &str) -> [u16; 2] {
    let [a, b, c, d] = bits.to_be_bytes();
    let w = |x: u8, y: u8| u16::from_be_bytes([x, y]);
    match word_order {
        "cdab" => [w(c, d), w(a, b)],
        "badc" => [w(b, a), w(d, c)],
        "dcba" => [w(d, c), w(b, a)],
        _ => [w(a, b), w(c, d)],
    }
}

/// Engineering value → raw value (unrounded) through the point's scale, identity without one.
fn to_raw(eu: f64, scale: Option<(f64, f64, f64, f64)>) -> f64 {
    match scale {
        Some((rlo, rhi, elo, ehi)) if ehi != elo => rlo + (eu - elo) * (rhi - rlo) / (ehi - elo),
        _ => eu,
    }
}

/// Rounds and clamps to `[lo, hi]`; NaN maps to `lo` (never produced by the physics, but never panic either).
fn clamp_round(x: f64, lo: f64, hi: f64) -> f64 {
    if x.is_nan() {
        lo
    } else {
        x.round().clamp(lo, hi)
    }
}

/// The register words of a 16/32-bit point for a reading (`None` = dropout → sentinel). Out-of-range values
/// saturate one count short of the sentinel, so a real reading is never mistaken for "no data".
pub(crate) fn encode_words(p: &RegisterPoint, value: Option<f64>) -> ([u16; 2], usize) {
    match p.data_type {
        "f32" => {
            let bits = value.map_or(sentinel::F32, |v| (v as f32).to_bits());
            (split_u32(bits, p.word_order), 2)
        }
        "u32" => {
            let bits = value.map_or(sentinel::U32, |v| {
                clamp_round(to_raw(v, p.scale), 0.0, (u32::MAX - 1) as f64) as u32
            });
            (split_u32(bits, p.word_order), 2)
        }
        "i32" => {
            let bits = value.map_or(sentinel::I32, |v| {
                clamp_round(to_raw(v, p.scale), (i32::MIN + 1) as f64, i32::MAX as f64) as i32
                    as u32
            });
            (split_u32(bits, p.word_order), 2)
        }
        "i16" => {
            let w = value.map_or(sentinel::I16, |v| {
                clamp_round(to_raw(v, p.scale), (i16::MIN + 1) as f64, i16::MAX as f64) as i16
                    as u16
            });
            ([w, 0], 1)
        }
        // "u16"
        _ => {
            let w = value.map_or(sentinel::U16, |v| {
                clamp_round(to_raw(v, p.scale), 0.0, (u16::MAX - 1) as f64) as u16
            });
            ([w, 0], 1)
        }
    }
}

/// Builds the register image from one reading per map point (same order as the map).
pub(crate) fn build(values: &[Option<f64>]) -> Registers {
    let mut r = Registers::default();
    for p in REGISTER_MAP.iter() {
        let end = usize::from(p.address) + usize::from(p.width());
        match p.table {
            Table::Coil if r.coils.len() < end => r.coils.resize(end, false),
            Table::DiscreteInput if r.discrete_inputs.len() < end => {
                r.discrete_inputs.resize(end, false)
            }
            Table::InputRegister if r.input_registers.len() < end => {
                r.input_registers.resize(end, 0)
            }
            Table::HoldingRegister if r.holding_registers.len() < end => {
                r.holding_registers.resize(end, 0)
            }
            _ => {}
        }
    }
    for (p, v) in REGISTER_MAP.iter().zip(values) {
        let a = usize::from(p.address);
        match p.table {
            // A dropped-out bit reads as false (bits have no spare value for a sentinel).
            Table::Coil => r.coils[a] = v.is_some_and(|x| x >= 0.5),
            Table::DiscreteInput => r.discrete_inputs[a] = v.is_some_and(|x| x >= 0.5),
            Table::InputRegister | Table::HoldingRegister => {
                let (words, n) = encode_words(p, *v);
                let table = if p.table == Table::InputRegister {
                    &mut r.input_registers
                } else {
                    &mut r.holding_registers
                };
                table[a..a + n].copy_from_slice(&words[..n]);
            }
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Independent decoder: the order string names which logical byte sits at each wire position.
    fn join(words: [u16; 2], order: &str) -> u32 {
        let wire = [
            words[0] >> 8,
            words[0] & 0xFF,
            words[1] >> 8,
            words[1] & 0xFF,
        ];
        let mut logical = [0u8; 4];
        for (i, ch) in order.bytes().enumerate() {
            logical[usize::from(ch - b'a')] = wire[i] as u8;
        }
        u32::from_be_bytes(logical)
    }

    #[test]
    fn known_f32_layouts() {
        // 1.0f32 = 0x3F800000: bytes A=3F B=80 C=00 D=00.
        let bits = 1.0f32.to_bits();
        assert_eq!(split_u32(bits, "abcd"), [0x3F80, 0x0000]);
        assert_eq!(split_u32(bits, "cdab"), [0x0000, 0x3F80]);
        assert_eq!(split_u32(bits, "badc"), [0x803F, 0x0000]);
        assert_eq!(split_u32(bits, "dcba"), [0x0000, 0x803F]);
        assert_eq!(split_u32(0x1122_3344, "badc"), [0x2211, 0x4433]);
        assert_eq!(split_u32(0x1122_3344, "dcba"), [0x4433, 0x2211]);
    }

    #[test]
    fn map_blocks_do_not_overlap_and_types_fit_tables() {
        let mut used = std::collections::HashSet::new();
        for p in REGISTER_MAP.iter() {
            assert_eq!(
                p.data_type == "bool",
                !p.table.is_register(),
                "{}",
                p.path()
            );
            assert!(["abcd", "cdab", "badc", "dcba"].contains(&p.word_order));
            for a in p.address..p.address + p.width() {
                assert!(
                    used.insert((p.table, a)),
                    "{} overlaps at {} {}",
                    p.path(),
                    p.table,
                    a
                );
            }
        }
    }

    proptest! {
        #[test]
        fn u32_words_roundtrip(bits: u32, order in prop::sample::select(vec!["abcd", "cdab", "badc", "dcba"])) {
            prop_assert_eq!(join(split_u32(bits, order), order), bits);
        }

        #[test]
        fn scaled_u16_roundtrip(eu in 0.0f64..100.0) {
            let p = REGISTER_MAP[11]; // suction pressure: raw 0..10000 <-> 0..100 bar
            let (w, n) = encode_words(&p, Some(eu));
            prop_assert_eq!(n, 1);
            prop_assert!((f64::from(w[0]) / 100.0 - eu).abs() <= 0.005 + 1e-9);
        }

        #[test]
        fn i32_roundtrip(eu in -999.0f64..999.0) {
            let p = REGISTER_MAP[10]; // net flow, i32 cdab, 0.01 per count
            let (w, _) = encode_words(&p, Some(eu));
            let raw = join(w, p.word_order) as i32;
            prop_assert!((f64::from(raw) / 100.0 - eu).abs() <= 0.005 + 1e-9);
        }
    }

    #[test]
    fn out_of_range_saturates_short_of_sentinels() {
        let u16p = REGISTER_MAP[11];
        assert_eq!(encode_words(&u16p, Some(1e9)).0[0], 0xFFFE);
        assert_eq!(encode_words(&u16p, Some(-5.0)).0[0], 0);
        assert_eq!(encode_words(&u16p, None).0[0], sentinel::U16);
        let i16p = REGISTER_MAP[13];
        assert_eq!(encode_words(&i16p, Some(-1e9)).0[0], 0x8001);
        assert_eq!(encode_words(&i16p, Some(-12.3)).0[0] as i16, -123);
        assert_eq!(encode_words(&i16p, None).0[0], sentinel::I16);
        let f = REGISTER_MAP[5];
        assert!(f32::from_bits(join(encode_words(&f, None).0, f.word_order)).is_nan());
    }
}
