//! pushprobe: an RTMP test push client and load generator for Tencent Cloud CSS
//! style push domains, usable against any RTMP ingest.
//!
//! # Layers
//! Imports go one way, top to bottom: `main.rs` -> `cmd` -> the library ->
//! `rtmp`. Nothing below `cmd` imports `cmd` or `cli`.
//! - Interface: `cli` (clap structs, parsers, option groups; imports no
//!   command) and `cmd` (one file per subcommand: parse results in, library
//!   calls, rendering, exit code out).
//! - Library, jobs: `probe` (one classified push, the embedded ingest, the
//!   duplicate check), `load` (many publishers, records, aggregation, merge),
//!   `ingest` (the local Tencent-compatible ingest), `callback` (receiver),
//!   `notify` (sender), `report` (load report renderers).
//! - Library, parts: `publish` (one publisher's socket and phases), `classify`
//!   (pure verdicts), `sign`, `secret`, `flv`, `avc`, `media`, `errcode`,
//!   `clock` (the wall clock and time formatting), `signal` (Ctrl-C/SIGTERM).
//! - Protocol: `rtmp` (handshake, AMF0, chunks, messages; sans-I/O).
//!
//! # Layout
//! - `avc`: H.264 SPS reading: display size from an FLV AVC sequence header; pure.
//! - `callback`: push callback receiver: verify sign and t, spot retries, publish events.
//! - `classify`: (wire evidence, local facts) -> outcome, evidence, checklist step and fix; pure.
//! - `cli`: clap derive structs, shared option groups and value parsers.
//! - `clock`: `now_unix` for commands to pass down; time and duration formatting.
//! - `cmd`: the subcommands, each returning an exit code.
//! - `errcode`: the one typed table of Tencent interruption errcodes and errcode-18 sub-codes, with meanings.
//! - `flv`: FLV reader -> `Fixture` (sequence headers, metadata, media tags in one shared buffer); pure.
//! - `ingest`: the local Tencent-compatible RTMP ingest (`pushprobe serve`): rules, registry, records, HTTP view.
//! - `junit`: JUnit XML reports (`--junit FILE`) of smoke, doctor, dup and load checks.
//! - `load`: the load runner, its plain records and their aggregation.
//! - `media`: fixture tags pre-chunked once into shared bodies, and the real-time cursor; pure.
//! - `notify`: callback sender for the local ingest: queued, signed, retried POSTs.
//! - `play`: one player (RTMP play, HTTP-FLV, HLS) and its measurements.
//! - `probe`: one classified push (prepare, run, local facts, verdict), its JSON and text, the embedded ingest, the dup check.
//! - `publish`: one async publisher, phase by phase, returning a plain result record; `publish::dial` races every address (Happy Eyeballs).
//! - `report`: text, JSON, `.hgrm` and SVG renderers over a load `Summary`.
//! - `rtmp`: handshake glue, AMF0, chunk codec, message types and the session core
//!   publisher and ingest share (control, acks, chunk-size policy, command encoding);
//!   sans-I/O but for `rtmp::drive`, the handshake over a byte stream.
//! - `secret`: keys that never print; loading from env or file.
//! - `srt`: SRT: our own caller (packet codec and sender state machine) and the listener (the only user of the `srt-tokio` crate).
//! - `sign`: push URL build/parse/verify and the callback signature; pure.
//! - `signal`: a stop token for SIGINT/SIGTERM that remembers which came.
//! - `stamp`: the per-frame latency stamp (an H.264 SEI user_data_unregistered NAL): build and find; pure.
//! - `ts`: MPEG-TS mux (FLV tags -> TS packets) and demux; pure.
//! - `codec`: video codec and framing of a tag (FLV codec id or Enhanced RTMP FourCC), HEVC/AV1 display size, legacy id rewrite; pure.

pub mod avc;
pub mod callback;
pub mod classify;
pub mod cli;
pub mod clock;
pub mod cmd;
pub mod codec;
pub mod errcode;
pub mod flv;
pub mod ingest;
pub mod junit;
pub mod load;
pub mod media;
pub mod notify;
pub mod play;
pub mod probe;
pub mod publish;
pub mod report;
pub mod rtmp;
pub mod secret;
pub mod sign;
pub mod signal;
pub mod srt;
pub mod stamp;
pub mod ts;
