//! mw-sim
