//! Decodes the register image with a small decoder written independently of the crate's encoder and compares
//! every point with `Plant::points()`.

use std::collections::BTreeSet;

use mw_sim::{FaultKind, Plant, RegisterPoint, Registers, Table, register_map};

use crate::{inject, plant};

/// Wire bytes → u32: the word order string names the logical byte (a = most significant) at each wire position.
fn u32_from_wire(words: [u16; 2], order: &str) -> u32 {
    let wire = [
        (words[0] >> 8) as u8,
        words[0] as u8,
        (words[1] >> 8) as u8,
        words[1] as u8,
    ];
    let pos = |c: char| order.find(c).expect("order contains a..d");
    u32::from_be_bytes([
        wire[pos('a')],
        wire[pos('b')],
        wire[pos('c')],
        wire[pos('d')],
    ])
}

enum Decoded {
    Bool(bool),
    Number(f64),
    NoData,
}

fn decode(regs: &Registers, p: &RegisterPoint) -> Decoded {
    let a = p.address as usize;
    let table = match p.table {
        Table::Coil => return Decoded::Bool(regs.coils[a]),
        Table::DiscreteInput => return Decoded::Bool(regs.discrete_inputs[a]),
        Table::InputRegister => &regs.input_registers,
        Table::HoldingRegister => &regs.holding_registers,
    };
    let raw: f64 = match p.data_type {
        "u16" if table[a] == 0xFFFF => return Decoded::NoData,
        "u16" => f64::from(table[a]),
        "i16" if table[a] == 0x8000 => return Decoded::NoData,
        "i16" => f64::from(table[a] as i16),
        _ => {
            let bits = u32_from_wire([table[a], table[a + 1]], p.word_order);
            match p.data_type {
                "f32" if f32::from_bits(bits).is_nan() => return Decoded::NoData,
                "f32" => f64::from(f32::from_bits(bits)),
                "u32" if bits == u32::MAX => return Decoded::NoData,
                "u32" => f64::from(bits),
                "i32" if bits == 0x8000_0000 => return Decoded::NoData,
                "i32" => f64::from(bits as i32),
                other => panic!("unexpected type {other}"),
            }
        }
    };
    Decoded::Number(match p.scale {
        Some((rlo, rhi, elo, ehi)) => elo + (raw - rlo) * (ehi - elo) / (rhi - rlo),
        None => raw,
    })
}

fn check_image(p: &Plant) -> usize {
    let regs = p.registers();
    let mut nodata = 0;
    for (rp, reading) in register_map().iter().zip(p.points()) {
        assert_eq!((rp.asset, rp.name), (reading.asset, reading.name));
        match (decode(&regs, rp), reading.value) {
            (Decoded::NoData, None) => nodata += 1,
            (Decoded::Bool(b), Some(v)) => assert_eq!(b, v == 1.0, "{}", rp.path()),
            (Decoded::Bool(b), None) => {
                assert!(!b, "{}: dropped-out bits read false", rp.path());
                nodata += 1;
            }
            (Decoded::Number(x), Some(v)) => {
                let tolerance = match rp.scale {
                    Some((rlo, rhi, elo, ehi)) => 0.5 * (ehi - elo) / (rhi - rlo) + 1e-9,
                    None => 0.0,
                };
                if rp.data_type == "f32" {
                    assert_eq!(x, f64::from(v as f32), "{}", rp.path());
                } else {
                    assert!(
                        (x - v).abs() <= tolerance,
                        "{}: decoded {x}, reading {v}",
                        rp.path()
                    );
                }
            }
            (Decoded::NoData, Some(v)) => panic!("{}: sentinel for a real reading {v}", rp.path()),
            (Decoded::Number(x), None) => panic!("{}: {x} for a dropped-out point", rp.path()),
        }
    }
    nodata
}

#[test]
fn register_image_decodes_to_the_readings() {
    let mut p = plant(31);
    for _ in 0..50 {
        p.step(7.0);
        assert_eq!(check_image(&p), 0);
    }
    // Some negative values for the signed types (net flow falls with a leak), scaled and float dropouts.
    inject(&mut p, "tank1", FaultKind::Leak, 600.0, None);
    for point in [
        "flow",
        "speed",
        "volume_total",
        "suction_pressure",
        "bearing_temperature",
        "running",
    ] {
        inject(&mut p, "pump1", FaultKind::Dropout, 60.0, Some(point));
    }
    inject(&mut p, "tank1", FaultKind::Dropout, 60.0, Some("net_flow"));
    inject(&mut p, "gd1", FaultKind::Dropout, 60.0, None);
    p.step(30.0);
    assert_eq!(crate::reading(&p, "tank1/net_flow"), None);
    assert_eq!(check_image(&p), 8);
    p.step(40.0);
    assert!(crate::val(&p, "tank1/net_flow") < -5.0);
    assert_eq!(check_image(&p), 0);
}

#[test]
fn map_exercises_every_type_and_word_order_in_dense_blocks() {
    let map = register_map();
    let types: BTreeSet<_> = map.iter().map(|p| p.data_type).collect();
    assert_eq!(
        types,
        BTreeSet::from(["bool", "f32", "i16", "i32", "u16", "u32"])
    );
    let orders: BTreeSet<_> = map
        .iter()
        .filter(|p| p.width() == 2)
        .map(|p| p.word_order)
        .collect();
    assert_eq!(orders, BTreeSet::from(["abcd", "badc", "cdab", "dcba"]));
    assert!(
        map.iter()
            .filter(|p| p.data_type == "f32" && p.word_order == "abcd")
            .count()
            >= 3
    );
    let regs = plant(1).registers();
    assert_eq!(
        (
            regs.coils.len(),
            regs.discrete_inputs.len(),
            regs.input_registers.len(),
            regs.holding_registers.len()
        ),
        (1, 5, 3, 105)
    );
    for p in map {
        assert!(p.path().starts_with("acme/plant1/"));
        assert!(!p.description.is_empty());
    }
}
