//! mw-config
