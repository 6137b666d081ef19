//! pushprobe: an RTMP test push client and load generator for Tencent Cloud CSS
//! style push domains, usable against any RTMP ingest.
//!
//! # Layout
//! - `secret`: keys that never print; loading from env or file.
//! - `sign`: push URL build/parse/verify and the callback signature; pure.

pub mod secret;
pub mod sign;
