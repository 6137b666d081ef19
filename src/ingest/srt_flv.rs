//! TS access units -> FLV tags, so an SRT push can be played out like an RTMP
//! one: an AVC sequence header from the SPS/PPS (again whenever they change),
//! AVCC (length-prefixed) NAL units with the composition time, an AAC
//! sequence header from the ADTS header, raw AAC frames; pure.
//!
//! Timestamps: 90 kHz DTS unwrapped past the 33-bit wrap, rebased to the
//! first unit's DTS, in milliseconds.

use bytes::Bytes;

use super::avc_sequence_header;
use crate::ts::demux::{AccessUnit, Kind, adts_header, annexb_nals};

/// FLV tag types.
pub const AUDIO: u8 = 8;
pub const VIDEO: u8 = 9;
/// AAC, 44 kHz flag, 16-bit, stereo: what FLV writers put for any AAC.
const AAC_FLAGS: u8 = 0xaf;
const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;
const NAL_AUD: u8 = 9;
const NAL_IDR: u8 = 5;

pub use crate::flv::FlvTag;

/// The converter; one per push.
#[derive(Debug, Default)]
pub struct TsToFlv {
    base: Option<u64>,
    last_raw: u64,
    wraps: u64,
    sps: Vec<u8>,
    pps: Vec<u8>,
    /// The SPS/PPS of the last video sequence header sent.
    sent_video_config: Option<(Vec<u8>, Vec<u8>)>,
    sent_audio_config: Option<[u8; 2]>,
}

const WRAP: u64 = 1 << 33;

impl TsToFlv {
    pub fn new() -> Self {
        Self::default()
    }

    /// The FLV tags for one access unit (none until video has an SPS and PPS).
    pub fn convert(&mut self, u: &AccessUnit) -> Vec<FlvTag> {
        let dts = self.unwrap(u.dts_90k);
        let base = *self.base.get_or_insert(dts);
        let ts_ms = (dts.saturating_sub(base) / 90) as u32;
        match u.kind {
            Kind::Video => self.video(u, ts_ms),
            Kind::Audio => self.audio(u, ts_ms),
        }
    }

    /// Extends a 33-bit time past wraps (a step back of over half the range
    /// is a wrap).
    fn unwrap(&mut self, raw: u64) -> u64 {
        if self.base.is_some() && raw + WRAP / 2 < self.last_raw {
            self.wraps += 1;
        }
        self.last_raw = raw;
        raw + self.wraps * WRAP
    }

    fn video(&mut self, u: &AccessUnit, ts_ms: u32) -> Vec<FlvTag> {
        let mut out = Vec::new();
        let mut nalus = Vec::new();
        let mut idr = false;
        for nal in annexb_nals(&u.data) {
            let Some(&h) = nal.first() else { continue };
            match h & 0x1f {
                NAL_SPS => self.sps = nal.to_vec(),
                NAL_PPS => self.pps = nal.to_vec(),
                NAL_AUD => {}
                t => {
                    idr |= t == NAL_IDR;
                    nalus.push(nal);
                }
            }
        }
        if self.sps.is_empty() || self.pps.is_empty() {
            return out;
        }
        let config = (self.sps.clone(), self.pps.clone());
        if self.sent_video_config.as_ref() != Some(&config)
            && let Some(header) = avc_sequence_header(&config.0, &config.1)
        {
            out.push(FlvTag {
                type_id: VIDEO,
                timestamp_ms: ts_ms,
                body: header.into(),
            });
            self.sent_video_config = Some(config);
        }
        if nalus.is_empty() {
            return out;
        }
        let cts = (u.pts_90k.wrapping_sub(u.dts_90k) & (WRAP - 1)) as i64;
        let cts = if cts >= (WRAP / 2) as i64 {
            cts - WRAP as i64
        } else {
            cts
        };
        let cts_ms = (cts / 90).clamp(-(1 << 23), (1 << 23) - 1) as i32;
        let frame = if idr || u.keyframe { 0x17 } else { 0x27 };
        let mut body = vec![frame, 1];
        body.extend_from_slice(&cts_ms.to_be_bytes()[1..]);
        for n in nalus {
            body.extend_from_slice(&(n.len() as u32).to_be_bytes());
            body.extend_from_slice(n);
        }
        out.push(FlvTag {
            type_id: VIDEO,
            timestamp_ms: ts_ms,
            body: body.into(),
        });
        out
    }

    fn audio(&mut self, u: &AccessUnit, ts_ms: u32) -> Vec<FlvTag> {
        let mut out = Vec::new();
        let Some(h) = adts_header(&u.data) else {
            return out;
        };
        let Some(raw) = u.data.get(h.header_len..h.frame_len) else {
            return out;
        };
        let asc = h.audio_specific_config();
        if self.sent_audio_config != Some(asc) {
            out.push(FlvTag {
                type_id: AUDIO,
                timestamp_ms: ts_ms,
                body: Bytes::copy_from_slice(&[AAC_FLAGS, 0, asc[0], asc[1]]),
            });
            self.sent_audio_config = Some(asc);
        }
        let mut body = Vec::with_capacity(2 + raw.len());
        body.extend_from_slice(&[AAC_FLAGS, 1]);
        body.extend_from_slice(raw);
        out.push(FlvTag {
            type_id: AUDIO,
            timestamp_ms: ts_ms,
            body: body.into(),
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(kind: Kind, pts: u64, dts: u64, data: &[u8]) -> AccessUnit {
        AccessUnit {
            pid: 0x100,
            kind,
            pts_90k: pts,
            dts_90k: dts,
            keyframe: kind == Kind::Audio,
            data: data.to_vec(),
        }
    }

    const SPS: &[u8] = &[0x67, 0x42, 0xc0, 0x1e, 0xd9];
    const PPS: &[u8] = &[0x68, 0xcb, 0x83];

    fn idr() -> Vec<u8> {
        let mut v = vec![0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1];
        v.extend_from_slice(SPS);
        v.extend_from_slice(&[0, 0, 1]);
        v.extend_from_slice(PPS);
        v.extend_from_slice(&[0, 0, 1, 0x65, 0x88, 0x80]);
        v
    }

    #[test]
    fn video_gets_a_sequence_header_then_avcc_frames() {
        let mut c = TsToFlv::new();
        // A P frame before any SPS is dropped.
        assert!(
            c.convert(&unit(Kind::Video, 9000, 9000, &[0, 0, 1, 0x41, 1]))
                .is_empty()
        );
        let tags = c.convert(&unit(Kind::Video, 12600, 9000, &idr()));
        assert_eq!(tags.len(), 2);
        let header = &tags[0].body;
        assert_eq!(&header[..5], &[0x17, 0, 0, 0, 0]);
        assert_eq!(&header[5..9], &[1, 0x42, 0xc0, 0x1e]);
        assert!(header.ends_with(PPS));
        // Keyframe, NALU, composition time 40 ms, one 4-byte-length NAL.
        assert_eq!(
            &tags[1].body[..],
            &[0x17, 1, 0, 0, 40, 0, 0, 0, 3, 0x65, 0x88, 0x80]
        );
        assert_eq!(tags[1].timestamp_ms, 0);
        // The same SPS/PPS again: no second header; times rebased.
        let tags = c.convert(&unit(Kind::Video, 12600 + 3000, 9000 + 3000, &idr()));
        assert_eq!(tags.len(), 1);
        assert_eq!(tags[0].timestamp_ms, 33);
    }

    #[test]
    fn audio_gets_a_config_then_raw_frames() {
        let mut c = TsToFlv::new();
        // AAC LC 48 kHz stereo, 3 payload bytes.
        let adts = [0xff, 0xf1, 0x4c, 0x80, 0x01, 0x5f, 0xfc, 1, 2, 3];
        let tags = c.convert(&unit(Kind::Audio, 90_000, 90_000, &adts));
        assert_eq!(tags.len(), 2);
        assert_eq!(&tags[0].body[..], &[0xaf, 0, 0x11, 0x90]);
        assert_eq!(&tags[1].body[..], &[0xaf, 1, 1, 2, 3]);
        let tags = c.convert(&unit(Kind::Audio, 90_000 + 1920, 90_000 + 1920, &adts));
        assert_eq!((tags.len(), tags[0].timestamp_ms), (1, 21));
    }

    #[test]
    fn times_continue_across_the_33_bit_wrap() {
        let mut c = TsToFlv::new();
        let adts = [0xff, 0xf1, 0x4c, 0x80, 0x01, 0x5f, 0xfc, 1, 2, 3];
        let near = WRAP - 900;
        c.convert(&unit(Kind::Audio, near, near, &adts));
        let tags = c.convert(&unit(Kind::Audio, 900, 900, &adts));
        assert_eq!(tags[0].timestamp_ms, 20);
    }
}
