//! mw-bus
