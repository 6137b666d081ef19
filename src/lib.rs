//! pushprobe: an RTMP test push client and load generator for Tencent Cloud CSS
//! style push domains, usable against any RTMP ingest.
//!
//! # Layout
//! - `avc`: H.264 SPS reading: display size from an FLV AVC sequence header; pure.
//! - `classify`: (wire evidence, local facts) -> outcome, evidence, checklist step and fix; pure.
//! - `flv`: FLV reader -> `Fixture` (sequence headers, metadata, media tags in one shared buffer); pure.
//! - `load`: the load runner, its plain records and their aggregation.
//! - `media`: fixture tags pre-chunked once into shared bodies, and the real-time cursor; pure.
//! - `publish`: one async publisher, phase by phase, returning a plain result record.
//! - `report`: text, JSON, `.hgrm` and SVG renderers over a load `Summary`.
//! - `rtmp`: handshake glue, AMF0, chunk codec, message types; sans-I/O.
//! - `secret`: keys that never print; loading from env or file.
//! - `sign`: push URL build/parse/verify and the callback signature; pure.

pub mod avc;
pub mod classify;
pub mod flv;
pub mod load;
pub mod media;
pub mod publish;
pub mod report;
pub mod rtmp;
pub mod secret;
pub mod sign;
