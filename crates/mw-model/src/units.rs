//! Engineering units as UCUM case-sensitive codes (<https://ucum.org>), limited to a curated
//! table of units met in plants. Annotated forms such as `%{LEL}` are spelled out explicitly.

/// A known unit: its UCUM code, a display symbol and the quantity it measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unit {
    pub code: &'static str,
    pub symbol: &'static str,
    pub quantity: &'static str,
}

const fn u(code: &'static str, symbol: &'static str, quantity: &'static str) -> Unit {
    Unit {
        code,
        symbol,
        quantity,
    }
}

/// Every unit code accepted in configuration.
pub const UNITS: &[Unit] = &[
    u("1", "", "dimensionless"),
    u("%", "%", "fraction"),
    u(
        "%{LEL}",
        "% LEL",
        "gas concentration (lower explosive limit)",
    ),
    u("ppm", "ppm", "concentration"),
    u("[ppm]", "ppm", "concentration"),
    u("Cel", "°C", "temperature"),
    u("K", "K", "temperature"),
    u("[degF]", "°F", "temperature"),
    u("bar", "bar", "pressure"),
    u("mbar", "mbar", "pressure"),
    u("Pa", "Pa", "pressure"),
    u("kPa", "kPa", "pressure"),
    u("MPa", "MPa", "pressure"),
    u("[psi]", "psi", "pressure"),
    u("m3/h", "m³/h", "volume flow"),
    u("L/min", "L/min", "volume flow"),
    u("L/s", "L/s", "volume flow"),
    u("kg/h", "kg/h", "mass flow"),
    u("t/h", "t/h", "mass flow"),
    u("A", "A", "electric current"),
    u("mA", "mA", "electric current"),
    u("V", "V", "voltage"),
    u("kV", "kV", "voltage"),
    u("W", "W", "power"),
    u("kW", "kW", "power"),
    u("MW", "MW", "power"),
    u("kW.h", "kWh", "energy"),
    u("Hz", "Hz", "frequency"),
    u("/min", "rpm", "rotational speed"),
    u("mm/s", "mm/s", "vibration velocity"),
    u("m/s", "m/s", "velocity"),
    u("m/s2", "m/s²", "acceleration"),
    u("[g]", "g", "acceleration"),
    u("m", "m", "length / level"),
    u("cm", "cm", "length / level"),
    u("mm", "mm", "length / level"),
    u("um", "µm", "length"),
    u("m3", "m³", "volume"),
    u("L", "L", "volume"),
    u("kg", "kg", "mass"),
    u("t", "t", "mass"),
    u("s", "s", "time"),
    u("min", "min", "time"),
    u("h", "h", "time"),
    u("d", "d", "time"),
    u("N.m", "N·m", "torque"),
    u("kg/m3", "kg/m³", "density"),
    u("S/m", "S/m", "conductivity"),
    u("[pH]", "pH", "acidity"),
    u("{count}", "", "count"),
];

/// Looks up a UCUM code (case-sensitive).
pub fn unit_info(code: &str) -> Option<&'static Unit> {
    UNITS.iter().find(|u| u.code == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_and_unknown_units() {
        assert_eq!(unit_info("Cel").unwrap().symbol, "°C");
        assert_eq!(unit_info("%{LEL}").unwrap().symbol, "% LEL");
        assert!(unit_info("cel").is_none(), "UCUM codes are case-sensitive");
        assert!(unit_info("furlong").is_none());
    }

    #[test]
    fn codes_are_unique() {
        let mut codes: Vec<_> = UNITS.iter().map(|u| u.code).collect();
        codes.sort_unstable();
        let n = codes.len();
        codes.dedup();
        assert_eq!(codes.len(), n);
    }
}
