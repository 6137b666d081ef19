//! cargo-fuzz target `chunk`: see `pushprobe_fuzz::chunk`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pushprobe_fuzz::chunk(data));
