//! pushprobe: an RTMP test push client and load generator for Tencent Cloud CSS
//! style push domains, usable against any RTMP ingest.
//!
//! # Layout
//! - `secret`: keys that never print; loading from env or file.
//! - `sign`: push URL build/parse/verify and the callback signature; pure.
//! - `rtmp`: handshake glue, AMF0, chunk codec, message types; sans-I/O.
//! - `ingest`: the local Tencent-compatible RTMP ingest (`pushprobe serve`): rules, registry, records, HTTP view.

pub mod ingest;
pub mod rtmp;
pub mod secret;
pub mod sign;
