//! cargo-fuzz target `amf0_command`: see `pushprobe_fuzz::amf0_command`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pushprobe_fuzz::amf0_command(data));
