//! `mw_analytics::backtest::run` with default options on arbitrary CSV bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mw_analytics::backtest::{BacktestOptions, run};

fuzz_target!(|data: &[u8]| {
    let _ = run(
        data,
        Vec::new(),
        &BacktestOptions::default(),
        &mut |_, _| {},
    );
});
