//! MPEG-TS muxer: FLV H.264/AAC tags in, 188-byte TS packets out; pure.
