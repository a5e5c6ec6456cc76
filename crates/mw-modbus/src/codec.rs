//! Pure register codec: Modbus registers/bits ⇄ typed raw values.
//!
//! No I/O, no allocation beyond the encoded output, never panics: short or mistyped input is a
//! [`CodecError`]. A 32-bit value is split into its four big-endian bytes A (most significant)
//! … D and laid over two registers according to [`WordOrder`]:
//!
//! | order  | register 0 | register 1 |
//! |--------|------------|------------|
//! | `abcd` | `AB`       | `CD`       |
//! | `cdab` | `CD`       | `AB`       |
//! | `badc` | `BA`       | `DC`       |
//! | `dcba` | `DC`       | `BA`       |
//!
//! 16-bit values use one register as is (word order does not apply); booleans are one coil or
//! discrete-input bit. Extra input beyond what the type needs is ignored.

use crate::config::WordOrder;
use mw_model::DataType;

/// A value as it sits in the device, before scaling.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RawValue {
    Bool(bool),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
}

impl RawValue {
    pub fn data_type(self) -> DataType {
        match self {
            RawValue::Bool(_) => DataType::Bool,
            RawValue::U16(_) => DataType::U16,
            RawValue::I16(_) => DataType::I16,
            RawValue::U32(_) => DataType::U32,
            RawValue::I32(_) => DataType::I32,
            RawValue::F32(_) => DataType::F32,
        }
    }

    /// Lossless numeric view (every variant fits exactly in an `f64`); bool is 0/1.
    /// This is what [`mw_model::TagDef::convert_raw`] takes.
    pub fn to_f64(self) -> f64 {
        match self {
            RawValue::Bool(b) => f64::from(u8::from(b)),
            RawValue::U16(v) => f64::from(v),
            RawValue::I16(v) => f64::from(v),
            RawValue::U32(v) => f64::from(v),
            RawValue::I32(v) => f64::from(v),
            RawValue::F32(v) => f64::from(v),
        }
    }
}

/// Why registers or bits could not be decoded (or a value encoded).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("{data_type} needs {needed} {unit}, got {got}")]
    Short {
        data_type: DataType,
        needed: usize,
        got: usize,
        unit: &'static str,
    },
    #[error(
        "{data_type} cannot be held in {table} (bool needs a coil or discrete input; numbers need registers)"
    )]
    WrongTable {
        data_type: DataType,
        table: &'static str,
    },
    #[error(
        "data type {0} is not supported over Modbus (expected one of: bool, u16, i16, u32, i32, f32)"
    )]
    Unsupported(DataType),
}

/// Registers a type occupies (bits for `bool`), or `None` for types Modbus tags cannot have.
pub fn width(data_type: DataType) -> Option<u16> {
    match data_type {
        DataType::Bool | DataType::U16 | DataType::I16 => Some(1),
        DataType::U32 | DataType::I32 | DataType::F32 => Some(2),
        DataType::I64 | DataType::U64 | DataType::F64 | DataType::String => None,
    }
}

/// Lays the four big-endian bytes of a 32-bit value over two registers.
pub fn split_u32(bits: u32, order: WordOrder) -> [u16; 2] {
    let [a, b, c, d] = bits.to_be_bytes();
    let w = |hi: u8, lo: u8| u16::from_be_bytes([hi, lo]);
    match order {
        WordOrder::Abcd => [w(a, b), w(c, d)],
        WordOrder::Cdab => [w(c, d), w(a, b)],
        WordOrder::Badc => [w(b, a), w(d, c)],
        WordOrder::Dcba => [w(d, c), w(b, a)],
    }
}

/// Inverse of [`split_u32`].
pub fn join_u32(regs: [u16; 2], order: WordOrder) -> u32 {
    let [r0h, r0l] = regs[0].to_be_bytes();
    let [r1h, r1l] = regs[1].to_be_bytes();
    let [a, b, c, d] = match order {
        WordOrder::Abcd => [r0h, r0l, r1h, r1l],
        WordOrder::Cdab => [r1h, r1l, r0h, r0l],
        WordOrder::Badc => [r0l, r0h, r1l, r1h],
        WordOrder::Dcba => [r1l, r1h, r0l, r0h],
    };
    u32::from_be_bytes([a, b, c, d])
}

/// Decodes a numeric value from holding or input registers.
pub fn decode_registers(
    data_type: DataType,
    order: WordOrder,
    regs: &[u16],
) -> Result<RawValue, CodecError> {
    let needed = match width(data_type) {
        Some(_) if data_type == DataType::Bool => {
            return Err(CodecError::WrongTable {
                data_type,
                table: "a register table",
            });
        }
        Some(n) => usize::from(n),
        None => return Err(CodecError::Unsupported(data_type)),
    };
    if regs.len() < needed {
        return Err(CodecError::Short {
            data_type,
            needed,
            got: regs.len(),
            unit: "register(s)",
        });
    }
    let pair = || join_u32([regs[0], regs[1]], order);
    Ok(match data_type {
        DataType::U16 => RawValue::U16(regs[0]),
        DataType::I16 => RawValue::I16(i16::from_be_bytes(regs[0].to_be_bytes())),
        DataType::U32 => RawValue::U32(pair()),
        DataType::I32 => RawValue::I32(i32::from_be_bytes(pair().to_be_bytes())),
        DataType::F32 => RawValue::F32(f32::from_bits(pair())),
        // Excluded above; kept total without a panic path.
        other => return Err(CodecError::Unsupported(other)),
    })
}

/// Decodes a boolean from coil or discrete-input bits.
pub fn decode_bits(data_type: DataType, bits: &[bool]) -> Result<RawValue, CodecError> {
    match data_type {
        DataType::Bool => bits
            .first()
            .map(|&b| RawValue::Bool(b))
            .ok_or(CodecError::Short {
                data_type,
                needed: 1,
                got: 0,
                unit: "bit(s)",
            }),
        t if width(t).is_some() => Err(CodecError::WrongTable {
            data_type,
            table: "a bit table",
        }),
        t => Err(CodecError::Unsupported(t)),
    }
}

/// Encodes a numeric value into registers (inverse of [`decode_registers`]).
pub fn encode_registers(value: RawValue, order: WordOrder) -> Result<Vec<u16>, CodecError> {
    Ok(match value {
        RawValue::Bool(_) => {
            return Err(CodecError::WrongTable {
                data_type: DataType::Bool,
                table: "a register table",
            });
        }
        RawValue::U16(v) => vec![v],
        RawValue::I16(v) => vec![u16::from_be_bytes(v.to_be_bytes())],
        RawValue::U32(v) => split_u32(v, order).to_vec(),
        RawValue::I32(v) => split_u32(u32::from_be_bytes(v.to_be_bytes()), order).to_vec(),
        RawValue::F32(v) => split_u32(v.to_bits(), order).to_vec(),
    })
}

/// Encodes a boolean into one bit (inverse of [`decode_bits`]).
pub fn encode_bits(value: RawValue) -> Result<Vec<bool>, CodecError> {
    match value {
        RawValue::Bool(b) => Ok(vec![b]),
        other => Err(CodecError::WrongTable {
            data_type: other.data_type(),
            table: "a bit table",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fixed_vectors_f32() {
        let v = RawValue::F32(123.456);
        let cases = [
            (WordOrder::Abcd, [0x42F6, 0xE979]),
            (WordOrder::Cdab, [0xE979, 0x42F6]),
            (WordOrder::Badc, [0xF642, 0x79E9]),
            (WordOrder::Dcba, [0x79E9, 0xF642]),
        ];
        for (order, regs) in cases {
            assert_eq!(
                encode_registers(v, order).unwrap(),
                regs.to_vec(),
                "{order}"
            );
            assert_eq!(
                decode_registers(DataType::F32, order, &regs).unwrap(),
                v,
                "{order}"
            );
        }
    }

    #[test]
    fn fixed_vectors_integers() {
        let o = WordOrder::Abcd;
        assert_eq!(
            decode_registers(DataType::U16, o, &[0xFFFF]).unwrap(),
            RawValue::U16(65535)
        );
        assert_eq!(
            decode_registers(DataType::I16, o, &[0xFFFF]).unwrap(),
            RawValue::I16(-1)
        );
        assert_eq!(
            decode_registers(DataType::I16, o, &[0x8000]).unwrap(),
            RawValue::I16(i16::MIN)
        );
        assert_eq!(
            decode_registers(DataType::U32, o, &[0x1122, 0x3344]).unwrap(),
            RawValue::U32(0x1122_3344)
        );
        assert_eq!(
            decode_registers(DataType::U32, WordOrder::Cdab, &[0x3344, 0x1122]).unwrap(),
            RawValue::U32(0x1122_3344)
        );
        assert_eq!(
            decode_registers(DataType::U32, WordOrder::Badc, &[0x2211, 0x4433]).unwrap(),
            RawValue::U32(0x1122_3344)
        );
        assert_eq!(
            decode_registers(DataType::U32, WordOrder::Dcba, &[0x4433, 0x2211]).unwrap(),
            RawValue::U32(0x1122_3344)
        );
        assert_eq!(
            decode_registers(DataType::I32, o, &[0xFFFF, 0xFFFE]).unwrap(),
            RawValue::I32(-2)
        );
        assert_eq!(
            decode_registers(DataType::I32, WordOrder::Cdab, &[0xFFFE, 0xFFFF]).unwrap(),
            RawValue::I32(-2)
        );
        // 16-bit types ignore the word order and any extra registers.
        assert_eq!(
            decode_registers(DataType::U16, WordOrder::Dcba, &[0x1234, 9]).unwrap(),
            RawValue::U16(0x1234)
        );
        assert_eq!(
            decode_bits(DataType::Bool, &[true, false]).unwrap(),
            RawValue::Bool(true)
        );
        assert_eq!(RawValue::I32(-2).to_f64(), -2.0);
        assert_eq!(RawValue::U32(u32::MAX).to_f64(), 4_294_967_295.0);
    }

    #[test]
    fn short_or_mistyped_input_is_an_error() {
        assert_eq!(
            decode_registers(DataType::F32, WordOrder::Abcd, &[1]),
            Err(CodecError::Short {
                data_type: DataType::F32,
                needed: 2,
                got: 1,
                unit: "register(s)"
            })
        );
        assert!(matches!(
            decode_registers(DataType::U16, WordOrder::Abcd, &[]),
            Err(CodecError::Short { .. })
        ));
        assert!(matches!(
            decode_bits(DataType::Bool, &[]),
            Err(CodecError::Short { .. })
        ));
        assert!(matches!(
            decode_registers(DataType::Bool, WordOrder::Abcd, &[1]),
            Err(CodecError::WrongTable { .. })
        ));
        assert!(matches!(
            decode_bits(DataType::U16, &[true]),
            Err(CodecError::WrongTable { .. })
        ));
        assert_eq!(
            decode_registers(DataType::F64, WordOrder::Abcd, &[0; 4]),
            Err(CodecError::Unsupported(DataType::F64))
        );
        assert_eq!(
            decode_bits(DataType::String, &[true]),
            Err(CodecError::Unsupported(DataType::String))
        );
        assert!(encode_registers(RawValue::Bool(true), WordOrder::Abcd).is_err());
        assert!(encode_bits(RawValue::U16(1)).is_err());
        let msg = decode_registers(DataType::F32, WordOrder::Abcd, &[1])
            .unwrap_err()
            .to_string();
        assert_eq!(msg, "f32 needs 2 register(s), got 1");
    }

    fn any_order() -> impl Strategy<Value = WordOrder> {
        prop::sample::select(WordOrder::ALL.to_vec())
    }

    fn any_raw() -> impl Strategy<Value = RawValue> {
        prop_oneof![
            any::<bool>().prop_map(RawValue::Bool),
            any::<u16>().prop_map(RawValue::U16),
            any::<i16>().prop_map(RawValue::I16),
            any::<u32>().prop_map(RawValue::U32),
            any::<i32>().prop_map(RawValue::I32),
            // Every bit pattern, NaNs included (compared by bits below).
            any::<u32>().prop_map(|b| RawValue::F32(f32::from_bits(b))),
        ]
    }

    fn same(a: RawValue, b: RawValue) -> bool {
        match (a, b) {
            (RawValue::F32(x), RawValue::F32(y)) => x.to_bits() == y.to_bits(),
            _ => a == b,
        }
    }

    proptest! {
        #[test]
        fn decode_inverts_encode(v in any_raw(), order in any_order()) {
            let back = match v {
                RawValue::Bool(_) => decode_bits(v.data_type(), &encode_bits(v).unwrap()).unwrap(),
                _ => {
                    let regs = encode_registers(v, order).unwrap();
                    prop_assert_eq!(regs.len(), usize::from(width(v.data_type()).unwrap()));
                    decode_registers(v.data_type(), order, &regs).unwrap()
                }
            };
            prop_assert!(same(v, back), "{:?} came back as {:?}", v, back);
        }

        #[test]
        fn split_join_roundtrip(bits in any::<u32>(), order in any_order()) {
            prop_assert_eq!(join_u32(split_u32(bits, order), order), bits);
        }

        #[test]
        fn never_panics_on_arbitrary_input(
            t in prop::sample::select(DataType::ALL.to_vec()),
            order in any_order(),
            regs in prop::collection::vec(any::<u16>(), 0..4),
            bits in prop::collection::vec(any::<bool>(), 0..3),
        ) {
            let _ = decode_registers(t, order, &regs);
            let _ = decode_bits(t, &bits);
        }
    }
}
