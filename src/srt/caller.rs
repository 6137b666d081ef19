//! SRT caller: dial an SRT listener with a streamid and send TS payloads.
