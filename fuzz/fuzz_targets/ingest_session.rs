//! cargo-fuzz target `ingest_session`: see `pushprobe_fuzz::ingest_session`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pushprobe_fuzz::ingest_session(data));
