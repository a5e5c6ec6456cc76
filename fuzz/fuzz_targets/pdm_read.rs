//! `mw_pdm::read_runs` on arbitrary bytes; the first byte picks the format (even: C-MAPSS, odd: CSV).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mw_pdm::{CsvOptions, Format, read_runs};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, input)) = data.split_first() else {
        return;
    };
    let format = if sel % 2 == 0 {
        Format::Cmapss
    } else {
        Format::Csv
    };
    let _ = read_runs(input, format, &CsvOptions::default());
});
