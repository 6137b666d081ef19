//! MPEG-TS, sans-I/O: `mux` turns FLV H.264/AAC tags into 188-byte TS packets
//! (for SRT pushes), `demux` turns TS packets back into access units (for the
//! SRT ingest and HLS play-back).

pub mod demux;
pub mod mux;
