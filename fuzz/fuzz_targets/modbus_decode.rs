//! The Modbus register codec over arbitrary data types, word orders and register/bit slices,
//! plus the read-only server's pure `RegisterImage::respond` on arbitrary requests and images.
//!
//! Input layout: `[type, order, image_sizes(4), unavailable(5), request(5), rest...]`; `rest` is
//! read as big-endian registers (and, bytewise, as bits). Short inputs are zero-padded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mw_modbus::config::{RegisterTable, WordOrder};
use mw_modbus::codec::{decode_bits, decode_registers, encode_bits, encode_registers, width};
use mw_modbus::server::RegisterImage;
use mw_model::DataType;
use tokio_modbus::{Request, Response};

const HEADER: usize = 16;

fuzz_target!(|data: &[u8]| {
    let mut h = [0u8; HEADER];
    let n = data.len().min(HEADER);
    h[..n].copy_from_slice(&data[..n]);
    let rest = &data[n..];

    // --- codec ---
    let data_type = DataType::ALL[usize::from(h[0]) % DataType::ALL.len()];
    let order = WordOrder::ALL[usize::from(h[1]) % WordOrder::ALL.len()];
    let regs: Vec<u16> = rest
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    let bits: Vec<bool> = rest.iter().map(|b| b & 1 == 1).collect();

    if let Ok(v) = decode_registers(data_type, order, &regs) {
        assert_eq!(v.data_type(), data_type);
        let enc = encode_registers(v, order).expect("decoded value re-encodes");
        assert_eq!(Some(enc.len()), width(data_type).map(usize::from));
        // Bit-exact round trip (compare registers, not values: NaN != NaN).
        assert_eq!(&enc[..], &regs[..enc.len()]);
    }
    if let Ok(v) = decode_bits(data_type, &bits) {
        assert_eq!(
            encode_bits(v).expect("decoded bit re-encodes"),
            vec![bits[0]]
        );
    }

    // --- server: RegisterImage::respond ---
    // Image sizes up to 255 * 8 entries per table, filled from `rest`.
    let size = |b: u8| usize::from(b) * 8;
    let mut image = RegisterImage::with_sizes(size(h[2]), size(h[3]), size(h[4]), size(h[5]));
    for (i, v) in image.holding_registers.iter_mut().enumerate() {
        *v = regs.get(i).copied().unwrap_or(i as u16);
    }
    for (i, v) in image.coils.iter_mut().enumerate() {
        *v = bits.get(i).copied().unwrap_or(false);
    }
    let table = RegisterTable::ALL[usize::from(h[6]) % RegisterTable::ALL.len()];
    let un_start = u16::from_be_bytes([h[7], h[8]]);
    let un_count = u16::from_be_bytes([h[9], h[10]]);
    image.mark_unavailable(table, un_start, un_count);

    let addr = u16::from_be_bytes([h[12], h[13]]);
    let qty = u16::from_be_bytes([h[14], h[15]]);
    let request = match h[11] % 8 {
        0 => Request::ReadCoils(addr, qty),
        1 => Request::ReadDiscreteInputs(addr, qty),
        2 => Request::ReadHoldingRegisters(addr, qty),
        3 => Request::ReadInputRegisters(addr, qty),
        4 => Request::WriteSingleCoil(addr, qty & 1 == 1),
        5 => Request::WriteSingleRegister(addr, qty),
        6 => Request::WriteMultipleRegisters(addr, regs.clone().into()),
        _ => Request::WriteMultipleCoils(addr, bits.clone().into()),
    };
    if let Ok(resp) = image.respond(&request) {
        let len = match resp {
            Response::ReadCoils(v) | Response::ReadDiscreteInputs(v) => v.len(),
            Response::ReadHoldingRegisters(v) | Response::ReadInputRegisters(v) => v.len(),
            other => panic!("read-only server answered {other:?} to {request:?}"),
        };
        assert_eq!(len, usize::from(qty));
    }
    image.clear_unavailable(table, un_start, un_count);
    assert!(!image.is_unavailable(table, un_start, un_count));
});
