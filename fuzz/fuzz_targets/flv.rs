//! cargo-fuzz target `flv`: see `pushprobe_fuzz::flv`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pushprobe_fuzz::flv(data));
