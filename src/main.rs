//! The `pushprobe` binary: parse arguments, set up tracing, run, map to an exit code.

fn main() {}
