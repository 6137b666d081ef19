//! cargo-fuzz target `report_merge`: see `pushprobe_fuzz::report_merge`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pushprobe_fuzz::report_merge(data));
