//! Per-frame latency stamps: an H.264 SEI user_data_unregistered NAL carrying a publisher id, a frame sequence and the send time; pure.
