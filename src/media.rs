//! The media fast path, sans-I/O: a fixture's tags pre-chunked once into shared
//! bodies, and a cursor that walks them in real time, looping with continuing
//! timestamps. Per connection only a small header is written per message.

use std::sync::Arc;

use bytes::Bytes;

use crate::codec::{Framing, VideoCodec};
use crate::flv::{Fixture, Tag, TagKind};
use crate::rtmp::chunk::{self, MEDIA_HEADER_MAX};
use crate::rtmp::message::{self, AUDIO, CSID_AUDIO, CSID_DATA, CSID_VIDEO, DATA_AMF0, VIDEO};
use crate::stamp;

/// One message ready to send: its body is already cut into chunks.
#[derive(Debug, Clone)]
pub struct PreTag {
    pub csid: u8,
    pub type_id: u8,
    pub timestamp_ms: u32,
    pub len: u32,
    pub body: Bytes,
    pub keyframe: bool,
    /// Where in `body` a stamp NAL of [`stamp::NAL_LEN`] bytes goes (a slot
    /// reserved by [`MediaPlan::with_stamps`]); the publisher writes its own
    /// stamp there instead of those bytes.
    pub stamp_slot: Option<u32>,
}

impl PreTag {
    fn from_parts(
        kind: TagKind,
        timestamp_ms: u32,
        payload: &[u8],
        keyframe: bool,
        cs: u32,
    ) -> Self {
        let (csid, type_id) = match kind {
            TagKind::Audio => (CSID_AUDIO, AUDIO),
            TagKind::Video => (CSID_VIDEO, VIDEO),
            TagKind::Script => (CSID_DATA, DATA_AMF0),
        };
        PreTag {
            csid,
            type_id,
            timestamp_ms,
            len: payload.len() as u32,
            body: chunk::prechunk(payload, cs, csid),
            keyframe,
            stamp_slot: None,
        }
    }

    fn from_tag(tag: &Tag, cs: u32) -> Self {
        PreTag::from_parts(tag.kind, tag.timestamp_ms, &tag.data, tag.is_keyframe(), cs)
    }

    /// An AVC NALU tag with a stamp slot after its 5-byte header: a length
    /// prefix of `length_size` bytes and [`stamp::NAL_LEN`] placeholder
    /// bytes, so the SEI comes before the first slice of the access unit.
    /// `None` when the tag is not an AVC NALU packet or the slot would not
    /// fit in the first chunk.
    fn stamped(tag: &Tag, cs: u32, length_size: usize) -> Option<Self> {
        let avc_nalu = tag.kind == TagKind::Video
            && tag.data.len() > 5
            && tag.data[0] & 0x0f == 7
            && tag.data[1] == 1;
        let slot = 5 + length_size;
        if !avc_nalu || slot + stamp::NAL_LEN > cs as usize {
            return None;
        }
        let mut payload = Vec::with_capacity(tag.data.len() + slot + stamp::NAL_LEN);
        payload.extend_from_slice(&tag.data[..5]);
        let len = (stamp::NAL_LEN as u32).to_be_bytes();
        payload.extend_from_slice(&len[4 - length_size..]);
        payload.extend_from_slice(&[0u8; stamp::NAL_LEN]);
        payload.extend_from_slice(&tag.data[5..]);
        let mut p = PreTag::from_parts(tag.kind, tag.timestamp_ms, &payload, tag.is_keyframe(), cs);
        p.stamp_slot = Some(slot as u32);
        Some(p)
    }
}

/// NALU length size of an FLV AVC sequence header tag
/// (AVCDecoderConfigurationRecord.lengthSizeMinusOne + 1), if it is one.
fn avc_length_size(seq_header: &Tag) -> Option<usize> {
    let d = &seq_header.data;
    let is_avc_config = d.len() > 9 && d[0] & 0x0f == 7 && d[1] == 0;
    match (d.get(9).map(|b| (b & 3) as usize + 1), is_avc_config) {
        (Some(n @ (1 | 2 | 4)), true) => Some(n),
        _ => None,
    }
}

/// A fixture prepared for one chunk size, shared by every publisher.
#[derive(Debug)]
pub struct MediaPlan {
    pub chunk_size: u32,
    /// `@setDataFrame onMetaData`, then the sequence headers: sent once at timestamp 0.
    pub preamble: Vec<PreTag>,
    /// Media tags, timestamps from 0.
    pub tags: Vec<PreTag>,
    /// Loop period.
    pub duration_ms: u32,
    /// Indices into `tags` of video keyframes (start offsets).
    pub keyframes: Vec<usize>,
    pub bitrate_bps: u64,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// The video codec pushed and how its tags name it.
    pub video_codec: Option<VideoCodec>,
    pub video_framing: Option<Framing>,
}

impl MediaPlan {
    pub fn new(fixture: &Fixture, chunk_size: u32) -> Arc<MediaPlan> {
        MediaPlan::build(fixture, chunk_size, false)
    }

    /// A plan whose H.264 frames each carry a slot for a per-frame latency
    /// stamp (see `stamp`). Fixtures without H.264 video get no slots.
    pub fn with_stamps(fixture: &Fixture, chunk_size: u32) -> Arc<MediaPlan> {
        MediaPlan::build(fixture, chunk_size, true)
    }

    /// Whether this plan's video frames carry stamp slots.
    pub fn stamped(&self) -> bool {
        self.tags.iter().any(|t| t.stamp_slot.is_some())
    }

    /// [`MediaPlan::new`] or, with `stamps`, [`MediaPlan::with_stamps`].
    pub fn build(fixture: &Fixture, chunk_size: u32, stamps: bool) -> Arc<MediaPlan> {
        let length_size = fixture
            .video_sequence_header
            .as_ref()
            .and_then(avc_length_size)
            .filter(|_| stamps);
        let mut preamble = Vec::new();
        if let Some(meta) = &fixture.metadata {
            let payload = message::set_data_frame(meta);
            preamble.push(PreTag::from_parts(
                TagKind::Script,
                0,
                &payload,
                false,
                chunk_size,
            ));
        }
        for t in [
            &fixture.video_sequence_header,
            &fixture.audio_sequence_header,
        ]
        .into_iter()
        .flatten()
        {
            let mut p = PreTag::from_tag(t, chunk_size);
            p.timestamp_ms = 0;
            preamble.push(p);
        }
        let tags: Vec<PreTag> = fixture
            .media
            .iter()
            .map(|t| {
                length_size
                    .and_then(|n| PreTag::stamped(t, chunk_size, n))
                    .unwrap_or_else(|| PreTag::from_tag(t, chunk_size))
            })
            .collect();
        let mut keyframes: Vec<usize> = tags
            .iter()
            .enumerate()
            .filter(|(_, t)| t.keyframe)
            .map(|(i, _)| i)
            .collect();
        if keyframes.is_empty() {
            keyframes.push(0);
        }
        Arc::new(MediaPlan {
            chunk_size,
            preamble,
            tags,
            duration_ms: fixture.duration_ms.max(1),
            keyframes,
            bitrate_bps: fixture.bitrate_bps(),
            width: fixture.width,
            height: fixture.height,
            video_codec: fixture.video_codec,
            video_framing: fixture.video_framing,
        })
    }

    /// The tag index publisher `n` starts at: keyframes in rotation, so that
    /// publishers started together do not send keyframes at the same instant.
    pub fn start_index(&self, n: u64) -> usize {
        self.keyframes[(n % self.keyframes.len() as u64) as usize]
    }

    /// The video codec and framing pushed, for the verdict.
    pub fn pushed_video(&self) -> Option<crate::classify::PushedVideo> {
        let (codec, framing) = self.video_codec.zip(self.video_framing)?;
        Some(crate::classify::PushedVideo { codec, framing })
    }

    /// The FourCC to advertise in `connect`: only for Enhanced RTMP video.
    pub fn enhanced_fourcc(&self) -> Option<&'static str> {
        match (self.video_codec, self.video_framing) {
            (Some(c), Some(Framing::Enhanced)) => Some(c.fourcc_str()),
            _ => None,
        }
    }
}

/// Where one publisher is in the plan. Pure: the caller passes elapsed time.
#[derive(Debug, Clone)]
pub struct Cursor {
    index: usize,
    loops: u64,
    /// Fixture timestamp of the first tag sent (stream time 0).
    origin_ms: u32,
    /// Last timestamp sent per chunk stream (audio, video), for fmt 1 deltas.
    last_ts: [Option<u64>; 2],
}

impl Cursor {
    pub fn new(plan: &MediaPlan, start_index: usize) -> Cursor {
        let index = start_index.min(plan.tags.len().saturating_sub(1));
        Cursor {
            index,
            loops: 0,
            origin_ms: plan.tags.get(index).map_or(0, |t| t.timestamp_ms),
            last_ts: [None, None],
        }
    }

    /// Stream time (ms since the first media message) at which the next tag is due.
    pub fn next_due_ms(&self, plan: &MediaPlan) -> u64 {
        let ts = plan.tags.get(self.index).map_or(0, |t| t.timestamp_ms) as u64;
        let base = self.loops * plan.duration_ms as u64;
        (base + ts).saturating_sub(self.origin_ms as u64)
    }

    /// Writes the header for the next tag into `hdr`, returns (header length,
    /// the tag, its due time in ms) and advances. Wraps at the end of the fixture.
    pub fn next<'p>(
        &mut self,
        plan: &'p MediaPlan,
        stream_id: u32,
        hdr: &mut [u8; MEDIA_HEADER_MAX],
    ) -> (usize, &'p PreTag, u64) {
        let due = self.next_due_ms(plan);
        let tag = &plan.tags[self.index];
        let slot = usize::from(tag.csid == CSID_VIDEO);
        let n = match self.last_ts[slot] {
            None => chunk::media_header(
                hdr,
                true,
                tag.csid,
                due as u32,
                tag.len,
                tag.type_id,
                stream_id,
            ),
            Some(prev) => {
                let delta = due.saturating_sub(prev) as u32;
                chunk::media_header(hdr, false, tag.csid, delta, tag.len, tag.type_id, stream_id)
            }
        };
        self.last_ts[slot] = Some(due);
        self.index += 1;
        if self.index >= plan.tags.len() {
            self.index = 0;
            self.loops += 1;
        }
        (n, tag, due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtmp::chunk::ChunkDecoder;
    use bytes::BytesMut;

    fn plan() -> Arc<MediaPlan> {
        MediaPlan::new(&crate::flv::default_fixture(), 4096)
    }

    #[test]
    fn plan_has_preamble_and_keyframes() {
        let p = plan();
        assert_eq!(p.preamble.len(), 3, "metadata + AVC + AAC headers");
        assert!(p.keyframes.len() >= 4, "2 s GOP over ~10 s");
        assert!(p.tags[p.keyframes[1]].keyframe);
        assert!(p.duration_ms > 9000 && p.duration_ms < 11000);
    }

    #[test]
    fn cursor_loops_with_continuing_timestamps_and_decodes() {
        let p = plan();
        let start = p.start_index(1);
        let mut c = Cursor::new(&p, start);
        let mut wire = BytesMut::new();
        let mut hdr = [0u8; MEDIA_HEADER_MAX];
        let mut dues = Vec::new();
        // Two and a half loops.
        let n = p.tags.len() * 5 / 2;
        for _ in 0..n {
            let (hl, tag, due) = c.next(&p, 1, &mut hdr);
            wire.extend_from_slice(&hdr[..hl]);
            wire.extend_from_slice(&tag.body);
            dues.push(due);
        }
        assert_eq!(dues[0], 0);
        // Per-track timestamps never go back across loops.
        let mut dec = ChunkDecoder::new(16 << 20);
        dec.set_chunk_size(4096).unwrap();
        let mut last = [0u32; 2];
        let mut count = 0;
        while let Some(m) = dec.decode(&mut wire).unwrap() {
            let slot = usize::from(m.type_id == VIDEO);
            assert!(m.timestamp >= last[slot], "track {slot} went back");
            last[slot] = m.timestamp;
            count += 1;
        }
        assert_eq!(count, n);
        let end = *dues.last().unwrap();
        assert!(end >= 2 * p.duration_ms as u64 - 20_000 / 10, "end {end}");
    }

    #[test]
    fn due_times_track_fixture_time() {
        let p = plan();
        let mut c = Cursor::new(&p, 0);
        let mut hdr = [0u8; MEDIA_HEADER_MAX];
        for i in 0..p.tags.len() {
            let (_, tag, due) = c.next(&p, 1, &mut hdr);
            assert_eq!(due, tag.timestamp_ms as u64, "tag {i}");
        }
        assert_eq!(c.next_due_ms(&p), p.duration_ms as u64);
    }

    #[test]
    fn stamped_plan_reserves_a_slot_before_the_first_slice() {
        let f = crate::flv::default_fixture();
        let plain = MediaPlan::new(&f, 4096);
        let p = MediaPlan::with_stamps(&f, 4096);
        assert!(p.stamped() && !plain.stamped());
        for (a, b) in plain.tags.iter().zip(&p.tags) {
            match b.stamp_slot {
                Some(at) => {
                    assert_eq!(at, 9, "after the 5-byte AVC header and a 4-byte length");
                    assert_eq!(b.len, a.len + 4 + crate::stamp::NAL_LEN as u32);
                    // Same message after the slot is filled, decoded back.
                    let mut body = b.body.to_vec();
                    let s = crate::stamp::Stamp {
                        publisher: 1,
                        sequence: 2,
                        sent_unix_us: 3,
                    };
                    let at = at as usize;
                    body[at..at + crate::stamp::NAL_LEN].copy_from_slice(&crate::stamp::nal(&s));
                    let mut wire = BytesMut::new();
                    let mut hdr = [0u8; MEDIA_HEADER_MAX];
                    let n = chunk::media_header(&mut hdr, true, b.csid, 0, b.len, b.type_id, 1);
                    wire.extend_from_slice(&hdr[..n]);
                    wire.extend_from_slice(&body);
                    let mut dec = ChunkDecoder::new(16 << 20);
                    dec.set_chunk_size(4096).unwrap();
                    let m = dec.decode(&mut wire).unwrap().expect("one message");
                    assert_eq!(crate::stamp::find_in_avcc(&m.payload[5..], 4), Some(s));
                }
                None => {
                    assert_eq!(a.len, b.len);
                    assert!(
                        a.type_id != VIDEO || b.body[1] != 1,
                        "AVC NALU tags get a slot"
                    );
                }
            }
        }
        assert!(p.tags.iter().filter(|t| t.stamp_slot.is_some()).count() > 200);
    }
}
