//! MPEG-TS demuxer: 188-byte TS packets in, H.264/AAC access units out; pure.
