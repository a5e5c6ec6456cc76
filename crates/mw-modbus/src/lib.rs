//! Modbus TCP for Millwright.
//!
//! * [`codec`] — pure: registers/bits ⇄ typed values for bool, u16, i16, u32, i32, f32 in the four
//!   word orders. No I/O.
//! * [`plan`] — pure: groups a device's tags into as few read requests as the protocol limits
//!   allow (≤ 125 registers, ≤ 2000 bits, holes of ≤ 8 addresses read across).
//! * [`poller`] — the I/O shell: one task per device ([`run_device`]) that connects with
//!   tokio-modbus, reads on every tick, publishes one sample per tag to the bus (bad quality with a
//!   reason when a read fails), reconnects with backoff and reports its status and metrics.
//!   Its module docs state the behaviour on disconnect, overload and restart.
//! * [`server`] — a read-only Modbus TCP server over a shared [`RegisterImage`] for the simulator
//!   and tests ([`serve`]).
//! * [`config`] — the `[[devices]]` section: device and register-map types and their
//!   validation, registered with `mw-config`.
//! * [`ModbusComponent`] / [`ModbusSource`] — the component registration: the section and one
//!   bus source per device.
//!
//! This crate knows nothing of storage or HTTP; it meets the rest of Millwright in `mw-model`
//! (samples, events), `mw-config` (the document walk its section uses) and `mw-bus` (the
//! source contract, publishing, status).

pub mod codec;
pub mod config;
pub mod plan;
pub mod poller;
pub mod server;
mod source;

pub use codec::{CodecError, RawValue};
pub use poller::{INITIAL_BACKOFF, Stopped, run_device};
pub use server::{
    AddressRange, MAX_CONNECTIONS, RegisterImage, SharedImage, serve, serve_with_limit,
};
pub use source::{ModbusComponent, ModbusSource};
