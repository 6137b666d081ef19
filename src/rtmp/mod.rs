//! RTMP protocol pieces, all sans-I/O: handshake glue, AMF0, chunk stream
//! decoding/encoding and message types.

pub mod amf0;
pub mod chunk;
pub mod handshake;
pub mod message;
