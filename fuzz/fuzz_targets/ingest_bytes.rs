//! cargo-fuzz target `ingest_bytes`: see `pushprobe_fuzz::ingest_bytes`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pushprobe_fuzz::ingest_bytes(data));
