//! cargo-fuzz target `url`: see `pushprobe_fuzz::url`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pushprobe_fuzz::url(data));
