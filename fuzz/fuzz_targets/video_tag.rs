//! cargo-fuzz target `video_tag`: see `pushprobe_fuzz::video_tag`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pushprobe_fuzz::video_tag(data));
