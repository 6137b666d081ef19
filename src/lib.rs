//! pushprobe: an RTMP test push client and load generator for Tencent Cloud CSS
//! style push domains, usable against any RTMP ingest.
//!
//! # Layout
//! - `callback`: push callback receiver: verify sign and t, spot retries, publish events.
//! - `errcode`: Tencent interruption errcodes and errcode-18 sub-codes -> meanings.
//! - `notify`: callback sender for the local ingest: queued, signed, retried POSTs.
//! - `secret`: keys that never print; loading from env or file.
//! - `sign`: push URL build/parse/verify and the callback signature; pure.

pub mod callback;
pub mod errcode;
pub mod notify;
pub mod secret;
pub mod sign;
