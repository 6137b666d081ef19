//! The local Tencent-compatible RTMP ingest (`pushprobe serve`): admission
//! rules, a live-stream registry, refusal and interruption records.
//!
//! - `rules`: the publish admission rules (app, disabled, txTime, txSecret); pure.
//! - `registry`: live streams (reject or replace a duplicate) and the records ring.

pub mod registry;
pub mod rules;

pub use registry::{DuplicateMode, Record, Registry, StreamView};
pub use rules::Refusal;
