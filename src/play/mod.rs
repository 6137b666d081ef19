//! Play-back: one player engine (RTMP play, HTTP-FLV, HLS) returning a plain
//! result record with phases, frame counts, stalls and per-frame latency.
