//! pushprobe: an RTMP test push client and load generator for Tencent Cloud CSS
//! style push domains, usable against any RTMP ingest.
//!
//! # Layout
//! - `avc`: H.264 SPS reading: display size from an FLV AVC sequence header; pure.
//! - `flv`: FLV reader -> `Fixture` (sequence headers, metadata, media tags in one shared buffer); pure.
//! - `secret`: keys that never print; loading from env or file.
//! - `sign`: push URL build/parse/verify and the callback signature; pure.

pub mod avc;
pub mod flv;
pub mod secret;
pub mod sign;
