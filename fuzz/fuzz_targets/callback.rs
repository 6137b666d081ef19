//! cargo-fuzz target `callback`: see `pushprobe_fuzz::callback`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pushprobe_fuzz::callback(data));
