//! mw-modbus
