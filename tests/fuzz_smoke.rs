//! Issue 7's CI pass over the fuzz targets, on stable with no extra tools:
//! every committed seed in `fuzz/corpus/<target>/` (findings' reproducers
//! included), then a bounded mutation loop per target with a fixed seed,
//! through the same target bodies cargo-fuzz runs (`fuzz/src/lib.rs`).
//! A panic names the target and prints the input as a byte literal.

#[path = "../fuzz/src/lib.rs"]
mod targets;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

/// Mutated inputs per target (the session target runs a whole ingest
/// connection per input, so it gets fewer).
fn rounds(target: &str) -> usize {
    match target {
        "ingest_session" | "ingest_bytes" => 8_000,
        _ => 20_000,
    }
}

/// Inputs grow to at most this many bytes (the `-max_len` of the runs in
/// `fuzz/README.md`, rounded up).
fn max_len(target: &str) -> usize {
    if target == "flv" {
        64 * 1024
    } else {
        16 * 1024
    }
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// Runs one input, turning a panic into a report with the input.
fn run(target: &str, f: fn(&[u8]), input: &[u8]) {
    if catch_unwind(AssertUnwindSafe(|| f(input))).is_err() {
        panic!(
            "fuzz target {target} panicked on {} bytes: b\"{}\"",
            input.len(),
            input.escape_ascii()
        );
    }
}

/// xorshift64*: small, fast and the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Values that sit on boundaries of lengths, markers and flags.
const INTERESTING: [u8; 10] = [0, 1, 2, 3, 0x7f, 0x80, 0xff, 9, b'"', b'&'];

/// Applies one to four libFuzzer-style mutations to a copy of `seed`.
fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8], max_len: usize) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = v.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                v[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                v[i] = rng.next() as u8;
            }
            2 if len > 0 => {
                let i = rng.below(len);
                v[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            3 if len > 0 => {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(64));
                v.drain(at..at + n);
            }
            4 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                v.splice(at..at, bytes);
            }
            5 if len > 0 => {
                // Copy a run of the input elsewhere (repeats headers).
                let from = rng.below(len);
                let n = 1 + rng.below((len - from).min(256));
                let run = v[from..from + n].to_vec();
                let at = rng.below(len + 1);
                v.splice(at..at, run);
            }
            6 if !other.is_empty() => {
                // Splice: our head, another seed's tail.
                let cut = rng.below(len + 1);
                let from = rng.below(other.len());
                v.truncate(cut);
                v.extend_from_slice(&other[from..]);
            }
            7 if len > 0 => {
                let at = rng.below(len);
                v.truncate(at);
            }
            _ => {}
        }
    }
    v.truncate(max_len);
    v
}

fn smoke(target: &str) {
    let f = targets::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .unwrap_or_else(|| panic!("no target {target}"))
        .1;
    let mut pool = seeds(target);
    assert!(!pool.is_empty(), "no seeds for {target}");
    for s in &pool {
        run(target, f, s);
    }
    run(target, f, b"");
    // Fixed seed per target, so a failure reproduces.
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ target.len() as u64);
    for _ in 0..rounds(target) {
        let seed = &pool[rng.below(pool.len())];
        let other = &pool[rng.below(pool.len())];
        let input = mutate(&mut rng, seed, other, max_len(target));
        run(target, f, &input);
        // Keep some mutants as seeds, so mutations stack up.
        if rng.below(16) == 0 && pool.len() < 512 {
            pool.push(input);
        }
    }
}

#[test]
fn every_target_has_a_corpus_and_a_binary() {
    for (name, _) in targets::TARGETS {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
        assert!(!seeds(name).is_empty(), "{name}");
        assert!(
            root.join(format!("fuzz_targets/{name}.rs")).is_file(),
            "{name}"
        );
    }
}

#[test]
fn fuzz_smoke_video_tag() {
    smoke("video_tag");
}

#[test]
fn fuzz_smoke_flv() {
    smoke("flv");
}

#[test]
fn fuzz_smoke_url() {
    smoke("url");
}

#[test]
fn fuzz_smoke_callback() {
    smoke("callback");
}

#[test]
fn fuzz_smoke_amf0_command() {
    smoke("amf0_command");
}

#[test]
fn fuzz_smoke_chunk() {
    smoke("chunk");
}

#[test]
fn fuzz_smoke_ingest_bytes() {
    smoke("ingest_bytes");
}

#[test]
fn fuzz_smoke_ingest_session() {
    smoke("ingest_session");
}

#[test]
fn fuzz_smoke_report_merge() {
    smoke("report_merge");
}

#[test]
fn fuzz_smoke_ts_demux() {
    smoke("ts_demux");
}
