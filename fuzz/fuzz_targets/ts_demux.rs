//! cargo-fuzz target `ts_demux`: see `pushprobe_fuzz::ts_demux`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pushprobe_fuzz::ts_demux(data));
