//! SRT listener: accept SRT callers, hand their streamid to a decision, and
//! deliver the TS payloads of accepted ones.
