//! Stand-ins for `avc::sps_dimensions` and the callback sender
//! (`notify::{Notifier, PushInfo}`) until those modules are merged.

/// What a push callback says of a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushInfo {
    pub app_path: String,
    pub stream_id: String,
    pub sequence: String,
    pub user_ip: String,
    pub stream_param: String,
    pub width: u32,
    pub height: u32,
}

/// Where push events go. Implementations must not block: they queue.
pub trait PushEvents: Send + Sync + 'static {
    fn push_started(&self, info: &PushInfo, now_unix: u64);
    fn push_ended(
        &self,
        info: &PushInfo,
        errcode: u32,
        errmsg: &str,
        duration_ms: u64,
        now_unix: u64,
    );
}

/// The `sequence` shared by the two callbacks of one push.
pub fn sequence_for(conn_id: u64, start_unix: u64) -> String {
    format!("{start_unix}{conn_id:08}")
}

/// Width and height from an AVC sequence header tag body.
pub fn sps_dimensions(_avc_sequence_header_tag_body: &[u8]) -> Option<(u32, u32)> {
    None
}
