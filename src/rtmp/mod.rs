//! RTMP protocol pieces: handshake glue, AMF0, chunk stream decoding and
//! encoding, message types and the session core shared by the publisher and
//! the ingest are sans-I/O; `drive` runs the handshake over a byte stream.

pub mod amf0;
pub mod chunk;
pub mod drive;
pub mod handshake;
pub mod message;
pub mod session;
