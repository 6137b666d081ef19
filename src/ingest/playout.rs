//! Play-out of one live stream: a fan-out that any ingest source (the RTMP
//! connection, later SRT) pushes FLV tags into, and that hands each viewer
//! the stream's metadata and sequence headers, the cached GOP from the last
//! keyframe, then live tags from one queue per stream, each viewer at its
//! own place in it. A viewer that falls the queue's length behind is dropped
//! and counted; the publisher never waits for a viewer.
//!
//! Tags are shared, never copied per viewer: each is an `Arc<MediaTag>`
//! whose RTMP chunking and FLV framing are made once, on first use, and
//! written by every viewer as the same `Bytes`. Media bodies are relayed
//! byte for byte (codec-agnostic: legacy FLV codec ids and Enhanced RTMP
//! FourCC tags pass through unchanged; only the frame type and packet type
//! bits are read to find keyframes and sequence headers).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};

use bytes::{BufMut, Bytes, BytesMut};

use crate::rtmp::chunk;
use crate::rtmp::message::{self, CSID_AUDIO, CSID_DATA, CSID_VIDEO};

/// The message stream id the ingest gives every `createStream` (and so every play).
pub const PLAY_STREAM_ID: u32 = 1;
/// Chunk size of the media the ingest sends (announced in `connect`).
pub const PLAY_CHUNK_SIZE: u32 = 4096;
/// Live tags a viewer may have queued before it is dropped (about 7 s of a
/// 30 fps stream with AAC audio); `serve --play-queue` sets another.
pub const DEFAULT_QUEUE_TAGS: usize = 512;
/// The GOP cache stops growing past either bound (a stream without
/// keyframes); new viewers then start at the next keyframe.
pub const GOP_MAX_TAGS: usize = 8192;
pub const GOP_MAX_BYTES: usize = 32 << 20;
/// FLV file header with audio and video flags, then PreviousTagSize0.
pub const FLV_HEADER: [u8; 13] = [b'F', b'L', b'V', 1, 5, 0, 0, 0, 9, 0, 0, 0, 0];

/// One FLV tag / RTMP media message, shared by every viewer.
#[derive(Debug)]
pub struct MediaTag {
    /// 8 audio, 9 video, 18 AMF0 data (15 AMF3 data is relayed to RTMP only).
    pub type_id: u8,
    /// Milliseconds, as the source stamped it.
    pub timestamp: u32,
    /// The message body, as received.
    pub data: Bytes,
    rtmp: OnceLock<Bytes>,
    flv: OnceLock<Bytes>,
}

impl MediaTag {
    pub fn new(type_id: u8, timestamp: u32, data: Bytes) -> MediaTag {
        MediaTag {
            type_id,
            timestamp,
            data,
            rtmp: OnceLock::new(),
            flv: OnceLock::new(),
        }
    }

    /// The whole RTMP message (fmt 0 header with the absolute timestamp,
    /// continuation chunks at [`PLAY_CHUNK_SIZE`]) on the play stream.
    pub fn rtmp(&self) -> &Bytes {
        self.rtmp.get_or_init(|| {
            let csid = match self.type_id {
                message::AUDIO => CSID_AUDIO,
                message::VIDEO => CSID_VIDEO,
                _ => CSID_DATA,
            };
            let mut out = BytesMut::with_capacity(self.data.len() + 16);
            chunk::write_message(
                &mut out,
                PLAY_CHUNK_SIZE,
                u32::from(csid),
                self.timestamp,
                self.type_id,
                PLAY_STREAM_ID,
                &self.data,
            );
            out.freeze()
        })
    }

    /// The FLV tag: 11-byte header, body, PreviousTagSize.
    pub fn flv(&self) -> &Bytes {
        self.flv.get_or_init(|| {
            let len = self.data.len() as u32;
            let mut out = BytesMut::with_capacity(self.data.len() + 15);
            out.put_u8(self.type_id);
            out.put_slice(&len.to_be_bytes()[1..]);
            out.put_slice(&self.timestamp.to_be_bytes()[1..]);
            out.put_u8((self.timestamp >> 24) as u8);
            out.put_slice(&[0, 0, 0]);
            out.put_slice(&self.data);
            out.put_u32(len + 11);
            out.freeze()
        })
    }

    /// Whether an FLV file may carry it (types 8, 9, 18).
    pub fn fits_flv(&self) -> bool {
        matches!(
            self.type_id,
            message::AUDIO | message::VIDEO | message::DATA_AMF0
        )
    }

    fn retimed(&self, timestamp: u32) -> Arc<MediaTag> {
        Arc::new(MediaTag::new(self.type_id, timestamp, self.data.clone()))
    }
}

/// What a tag is to the play-out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `onMetaData` (the body to send, `@setDataFrame` stripped).
    Metadata,
    VideoHeader,
    AudioHeader,
    /// A video frame a decoder can start at.
    Keyframe,
    /// Any other frame or data.
    Frame,
}

/// `@setDataFrame` as an AMF0 string.
const SET_DATA_FRAME: &[u8] = b"\x02\x00\x0d@setDataFrame";
/// `onMetaData` as an AMF0 string.
const ON_METADATA: &[u8] = b"\x02\x00\x0aonMetaData";

/// Classifies a tag by its type and first bytes; `Metadata` comes with the
/// body viewers get (without `@setDataFrame`).
pub fn classify(type_id: u8, data: &Bytes) -> (Role, Bytes) {
    let b0 = data.first().copied().unwrap_or(0);
    let b1 = data.get(1).copied();
    let role = match type_id {
        message::DATA_AMF0 => {
            let body = data
                .strip_prefix(SET_DATA_FRAME)
                .map_or(data.clone(), |rest| data.slice(data.len() - rest.len()..));
            if body.starts_with(ON_METADATA) {
                return (Role::Metadata, body);
            }
            Role::Frame
        }
        message::VIDEO if data.is_empty() => Role::Frame,
        message::VIDEO => {
            let header = if b0 & 0x80 != 0 {
                // Enhanced RTMP: PacketType in the low nibble; 0 SequenceStart,
                // 5 MPEG2TSSequenceStart.
                matches!(b0 & 0x0f, 0 | 5)
            } else {
                // Legacy: AVC 7, and the Chinese-CDN ids HEVC 12, AV1 13,
                // VVC 14, share AVC's layout (packet type 0 = config record).
                matches!(b0 & 0x0f, 7 | 12 | 13 | 14) && b1 == Some(0)
            };
            if header {
                Role::VideoHeader
            } else if (b0 >> 4) & 0x07 == 1 {
                Role::Keyframe
            } else {
                Role::Frame
            }
        }
        message::AUDIO => match b0 >> 4 {
            // AAC: AACPacketType 0 is the AudioSpecificConfig.
            10 if b1 == Some(0) => Role::AudioHeader,
            // Enhanced audio (ExHeader): AudioPacketType 0 SequenceStart.
            9 if b0 & 0x0f == 0 => Role::AudioHeader,
            _ => Role::Frame,
        },
        _ => Role::Frame,
    };
    (role, data.clone())
}

/// Splits an aggregate message (type 22: FLV tags back to back, each with
/// its PreviousTagSize) into tags, timestamps rebased on the message's.
/// A truncated tail is ignored.
pub fn split_aggregate(timestamp: u32, payload: &Bytes) -> Vec<MediaTag> {
    let mut out = Vec::new();
    let mut at = 0usize;
    let mut base: Option<u32> = None;
    while payload.len() >= at + 11 {
        let h = &payload[at..at + 11];
        let len = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        let ts = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        let end = at + 11 + len;
        if payload.len() < end {
            break;
        }
        let first = *base.get_or_insert(ts);
        out.push(MediaTag::new(
            h[0],
            timestamp.wrapping_add(ts.wrapping_sub(first)),
            payload.slice(at + 11..end),
        ));
        at = end + 4;
    }
    out
}

/// Which protocol a viewer plays with (counted apart in `/streams`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewerKind {
    Rtmp,
    Flv,
}

/// Why a viewer's live tags ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewerEnd {
    /// The publisher left (or was replaced).
    PublisherLeft,
    /// Its queue overflowed: it read slower than the stream came in.
    Dropped,
}

/// Viewer counts of one stream, as `/streams` shows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ViewerCounts {
    /// Viewers receiving the stream (a dropped one no longer counts).
    pub rtmp: u64,
    pub flv: u64,
    /// Viewers dropped for reading too slowly, since the push started.
    pub dropped: u64,
}

/// A viewer's place in the stream's live queue.
struct Slot {
    /// Sequence number of the next live tag this viewer takes.
    next: u64,
    /// Set while the viewer waits for a tag.
    waker: Option<Waker>,
    /// It fell a whole queue behind and is dropped.
    dropped: bool,
    kind: ViewerKind,
    /// Still counted in its kind's gauge.
    counted: bool,
}

#[derive(Default)]
struct Cache {
    metadata: Option<Arc<MediaTag>>,
    video_header: Option<Arc<MediaTag>>,
    audio_header: Option<Arc<MediaTag>>,
    /// From the last keyframe on; empty before the first or after overflow.
    gop: Vec<Arc<MediaTag>>,
    gop_bytes: usize,
    /// The GOP grew past its bounds: nothing is cached until the next keyframe.
    gop_overflow: bool,
    /// Live tags some viewer has not taken yet, shared by all of them:
    /// `live[0]` has sequence number `live_start`.
    live: VecDeque<Arc<MediaTag>>,
    live_start: u64,
    /// Viewers by slot index (a dropped `Viewer` frees its slot).
    viewers: Vec<Option<Slot>>,
    free: Vec<usize>,
}

impl Cache {
    fn live_end(&self) -> u64 {
        self.live_start + self.live.len() as u64
    }
}

/// The fan-out of one live stream. Sources call [`Fanout::push`]; viewers
/// [`Fanout::subscribe`]; the registry calls [`Fanout::close`] when the push ends.
///
/// One queue per stream, not one per viewer: a push appends the tag once
/// and wakes the viewers waiting for it; each viewer takes every tag from
/// its own position, and the queue keeps only what some viewer has not
/// taken. A viewer `queue_tags` behind is dropped.
pub struct Fanout {
    cache: Mutex<Cache>,
    queue_tags: usize,
    ended: AtomicBool,
    rtmp_viewers: AtomicU64,
    flv_viewers: AtomicU64,
    dropped: AtomicU64,
}

impl std::fmt::Debug for Fanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fanout")
            .field("counts", &self.counts())
            .field("ended", &self.is_ended())
            .finish()
    }
}

impl Fanout {
    pub fn new(queue_tags: usize) -> Fanout {
        Fanout {
            cache: Mutex::new(Cache::default()),
            queue_tags: queue_tags.max(1),
            ended: AtomicBool::new(false),
            rtmp_viewers: AtomicU64::new(0),
            flv_viewers: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn push(&self, tag: MediaTag) {
        if self.is_ended() {
            return;
        }
        let (role, body) = classify(tag.type_id, &tag.data);
        let tag = Arc::new(if role == Role::Metadata {
            MediaTag::new(tag.type_id, 0, body)
        } else {
            tag
        });
        let mut c = self.lock();
        match role {
            Role::Metadata => c.metadata = Some(tag.clone()),
            Role::VideoHeader => c.video_header = Some(tag.clone()),
            Role::AudioHeader => c.audio_header = Some(tag.clone()),
            Role::Keyframe => {
                c.gop.clear();
                c.gop_bytes = 0;
                c.gop_overflow = false;
                c.gop.push(tag.clone());
                c.gop_bytes = tag.data.len();
            }
            Role::Frame => {
                if !c.gop.is_empty() && !c.gop_overflow {
                    c.gop_bytes += tag.data.len();
                    c.gop.push(tag.clone());
                    if c.gop.len() > GOP_MAX_TAGS || c.gop_bytes > GOP_MAX_BYTES {
                        c.gop = Vec::new();
                        c.gop_bytes = 0;
                        c.gop_overflow = true;
                    }
                }
            }
        }
        c.live.push_back(tag);
        let end = c.live_end();
        let oldest_allowed = end.saturating_sub(self.queue_tags as u64);
        let mut wake = Vec::new();
        let mut dropped = 0u64;
        let mut lowest = end;
        for slot in c.viewers.iter_mut().flatten() {
            if slot.dropped {
                continue;
            }
            if slot.next < oldest_allowed {
                slot.dropped = true;
                dropped += 1;
                if std::mem::take(&mut slot.counted) {
                    self.gauge(slot.kind).fetch_sub(1, Ordering::Relaxed);
                }
            } else {
                lowest = lowest.min(slot.next);
            }
            wake.extend(slot.waker.take());
        }
        // What every viewer has taken (or lost) leaves the queue.
        while c.live_start < lowest {
            c.live.pop_front();
            c.live_start += 1;
        }
        drop(c);
        for w in wake {
            w.wake();
        }
        if dropped > 0 {
            self.dropped.fetch_add(dropped, Ordering::Relaxed);
            tracing::info!(
                "{dropped} slow viewer(s) dropped: {} tags behind",
                self.queue_tags
            );
        }
    }

    pub fn subscribe(self: &Arc<Self>, kind: ViewerKind) -> Option<Viewer> {
        let mut c = self.lock();
        if self.is_ended() {
            return None;
        }
        let start = c.gop.first().map(|t| t.timestamp);
        let mut startup = Vec::with_capacity(3 + c.gop.len());
        startup.extend(c.metadata.iter().cloned());
        for t in [&c.video_header, &c.audio_header].into_iter().flatten() {
            startup.push(match start {
                Some(ts) => t.retimed(ts),
                None => t.clone(),
            });
        }
        startup.extend(c.gop.iter().cloned());
        let slot = Slot {
            next: c.live_end(),
            waker: None,
            dropped: false,
            kind,
            counted: true,
        };
        let index = match c.free.pop() {
            Some(i) => {
                c.viewers[i] = Some(slot);
                i
            }
            None => {
                c.viewers.push(Some(slot));
                c.viewers.len() - 1
            }
        };
        self.gauge(kind).fetch_add(1, Ordering::Relaxed);
        drop(c);
        Some(Viewer {
            startup,
            index,
            fanout: self.clone(),
            need_keyframe: start.is_none(),
        })
    }

    fn gauge(&self, kind: ViewerKind) -> &AtomicU64 {
        match kind {
            ViewerKind::Rtmp => &self.rtmp_viewers,
            ViewerKind::Flv => &self.flv_viewers,
        }
    }

    /// The push ended: viewers take what is queued, then end.
    pub fn close(&self) {
        self.ended.store(true, Ordering::Release);
        let mut c = self.lock();
        c.gop = Vec::new();
        let wake: Vec<Waker> = c
            .viewers
            .iter_mut()
            .flatten()
            .filter_map(|s| s.waker.take())
            .collect();
        drop(c);
        for w in wake {
            w.wake();
        }
    }

    pub fn is_ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    pub fn counts(&self) -> ViewerCounts {
        ViewerCounts {
            rtmp: self.rtmp_viewers.load(Ordering::Relaxed),
            flv: self.flv_viewers.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

/// One viewer of a [`Fanout`]: the startup tags, then the live ones.
pub struct Viewer {
    pub startup: Vec<Arc<MediaTag>>,
    index: usize,
    fanout: Arc<Fanout>,
    need_keyframe: bool,
}

impl Viewer {
    /// Up to `max` live tags into `out` (at least one when ready), or the
    /// end; `Pending` (waker kept) when nothing is queued.
    pub fn poll_batch(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut Vec<Arc<MediaTag>>,
        max: usize,
    ) -> Poll<Result<(), ViewerEnd>> {
        match self.take(Some(cx), max, |t| out.push(t)) {
            Ok(0) => Poll::Pending,
            Ok(_) => Poll::Ready(Ok(())),
            Err(end) => Poll::Ready(Err(end)),
        }
    }

    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Result<Arc<MediaTag>, ViewerEnd>> {
        let mut one = None;
        match self.take(Some(cx), 1, |t| one = Some(t)) {
            Err(end) => Poll::Ready(Err(end)),
            Ok(_) => one.map_or(Poll::Pending, |t| Poll::Ready(Ok(t))),
        }
    }

    /// The next queued live tag, if any (never waits, never ends).
    pub fn try_next(&mut self) -> Option<Arc<MediaTag>> {
        let mut one = None;
        let _ = self.take(None, 1, |t| one = Some(t));
        one
    }

    /// Takes up to `max` tags into `out`; 0 taken means nothing is queued
    /// (with `cx`, its waker is kept for the next push).
    fn take(
        &mut self,
        cx: Option<&mut Context<'_>>,
        max: usize,
        mut out: impl FnMut(Arc<MediaTag>),
    ) -> Result<usize, ViewerEnd> {
        let mut c = self.fanout.lock();
        let (start, end) = (c.live_start, c.live_end());
        let Some(slot) = c.viewers.get_mut(self.index).and_then(Option::as_mut) else {
            return Err(ViewerEnd::Dropped);
        };
        if slot.dropped || slot.next < start {
            return Err(ViewerEnd::Dropped);
        }
        let mut next = slot.next;
        let mut taken = 0;
        while next < end && taken < max {
            let tag = &c.live[(next - start) as usize];
            next += 1;
            if !skip(&mut self.need_keyframe, tag) {
                out(tag.clone());
                taken += 1;
            }
        }
        let Some(slot) = c.viewers.get_mut(self.index).and_then(Option::as_mut) else {
            return Err(ViewerEnd::Dropped);
        };
        slot.next = next;
        if taken == 0 {
            if self.fanout.is_ended() {
                return Err(ViewerEnd::PublisherLeft);
            }
            if let Some(cx) = cx {
                match &mut slot.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    w => *w = Some(cx.waker().clone()),
                }
            }
        }
        Ok(taken)
    }
}

/// Whether a viewer that still waits for its first keyframe skips `tag`
/// (video before a keyframe; sequence headers and audio pass).
fn skip(need_keyframe: &mut bool, tag: &MediaTag) -> bool {
    if !*need_keyframe || tag.type_id != message::VIDEO {
        return false;
    }
    match classify(tag.type_id, &tag.data).0 {
        Role::Keyframe => {
            *need_keyframe = false;
            false
        }
        Role::VideoHeader => false,
        _ => true,
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        let mut c = self.fanout.lock();
        if let Some(slot) = c.viewers.get_mut(self.index).and_then(Option::take) {
            c.free.push(self.index);
            if slot.counted {
                self.fanout.gauge(slot.kind).fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(type_id: u8, ts: u32, body: &[u8]) -> MediaTag {
        MediaTag::new(type_id, ts, Bytes::copy_from_slice(body))
    }
    const AVC_HEADER: &[u8] = &[0x17, 0, 0, 0, 0, 1, 2];
    const AVC_KEY: &[u8] = &[0x17, 1, 0, 0, 0, 9];
    const AVC_INTER: &[u8] = &[0x27, 1, 0, 0, 0, 8];
    const AAC_HEADER: &[u8] = &[0xaf, 0, 0x12, 0x10];
    const AAC_FRAME: &[u8] = &[0xaf, 1, 7];

    fn metadata() -> Vec<u8> {
        let mut v = SET_DATA_FRAME.to_vec();
        v.extend_from_slice(ON_METADATA);
        v.extend_from_slice(&[0x08, 0, 0, 0, 0, 0, 0, 9]);
        v
    }

    fn drain(v: &mut Viewer) -> Vec<(u8, u32, Vec<u8>)> {
        let mut out: Vec<_> = std::mem::take(&mut v.startup)
            .into_iter()
            .map(|t| (t.type_id, t.timestamp, t.data.to_vec()))
            .collect();
        while let Some(t) = v.try_next() {
            out.push((t.type_id, t.timestamp, t.data.to_vec()));
        }
        out
    }

    #[test]
    fn classifies_legacy_and_enhanced_tags() {
        let c = |t, b: &[u8]| classify(t, &Bytes::copy_from_slice(b)).0;
        assert_eq!(c(9, AVC_HEADER), Role::VideoHeader);
        assert_eq!(c(9, AVC_KEY), Role::Keyframe);
        assert_eq!(c(9, AVC_INTER), Role::Frame);
        // Legacy HEVC (codec id 12) header and keyframe.
        assert_eq!(c(9, &[0x1c, 0, 0, 0, 0]), Role::VideoHeader);
        assert_eq!(c(9, &[0x1c, 1, 0, 0, 0]), Role::Keyframe);
        // Enhanced RTMP: IsExHeader | key frame | SequenceStart, 'hvc1'.
        assert_eq!(c(9, b"\x90hvc1\x01"), Role::VideoHeader);
        // CodedFrames (1) key frame, and CodedFramesX (3) inter frame, 'av01'.
        assert_eq!(c(9, b"\x91av01"), Role::Keyframe);
        assert_eq!(c(9, b"\xa3av01"), Role::Frame);
        assert_eq!(c(8, AAC_HEADER), Role::AudioHeader);
        assert_eq!(c(8, AAC_FRAME), Role::Frame);
        // Enhanced audio: SoundFormat 9, AudioPacketType 0, 'Opus'.
        assert_eq!(c(8, b"\x90Opus"), Role::AudioHeader);
        assert_eq!(c(8, &[0x2f, 1]), Role::Frame, "MP3");
        let (role, body) = classify(18, &Bytes::from(metadata()));
        assert_eq!(role, Role::Metadata);
        assert!(body.starts_with(ON_METADATA), "@setDataFrame stripped");
        assert_eq!(c(18, b"\x02\x00\x0aonTextData"), Role::Frame);
        assert_eq!(c(9, &[]), Role::Frame);
    }

    #[test]
    fn a_late_viewer_starts_with_headers_then_the_last_keyframe() {
        let f = Arc::new(Fanout::new(16));
        f.push(tag(18, 0, &metadata()));
        f.push(tag(9, 0, AVC_HEADER));
        f.push(tag(8, 0, AAC_HEADER));
        f.push(tag(9, 0, AVC_KEY));
        f.push(tag(9, 33, AVC_INTER));
        f.push(tag(9, 1000, AVC_KEY));
        f.push(tag(8, 1010, AAC_FRAME));
        f.push(tag(9, 1033, AVC_INTER));
        let mut v = f.subscribe(ViewerKind::Flv).unwrap();
        f.push(tag(9, 1066, AVC_INTER));
        let got = drain(&mut v);
        let kinds: Vec<(u8, u32)> = got.iter().map(|(t, ts, _)| (*t, *ts)).collect();
        assert_eq!(
            kinds,
            [
                (18, 0),
                (9, 1000),
                (8, 1000),
                (9, 1000),
                (8, 1010),
                (9, 1033),
                (9, 1066)
            ]
        );
        assert!(got[0].2.starts_with(ON_METADATA));
        assert_eq!(got[1].2, AVC_HEADER);
        assert_eq!(got[3].2, AVC_KEY, "the first frame is the last keyframe");
        assert_eq!(
            f.counts(),
            ViewerCounts {
                rtmp: 0,
                flv: 1,
                dropped: 0
            }
        );
        drop(v);
        assert_eq!(f.counts().flv, 0);
    }

    #[test]
    fn a_full_queue_drops_that_viewer_only() {
        let f = Arc::new(Fanout::new(4));
        f.push(tag(9, 0, AVC_KEY));
        let mut slow = f.subscribe(ViewerKind::Rtmp).unwrap();
        let mut fast = f.subscribe(ViewerKind::Flv).unwrap();
        fast.startup.clear();
        for i in 1..=10u32 {
            f.push(tag(9, i * 33, AVC_INTER));
            while fast.try_next().is_some() {}
        }
        assert_eq!(
            f.counts(),
            ViewerCounts {
                rtmp: 0,
                flv: 1,
                dropped: 1
            }
        );
        // The slow one gets its startup, then the end: nothing stale.
        assert_eq!(drain(&mut slow).len(), 1);
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert!(matches!(
            slow.poll_next(&mut cx),
            Poll::Ready(Err(ViewerEnd::Dropped))
        ));
        assert!(fast.poll_next(&mut cx).is_pending());
        f.close();
        assert!(matches!(
            fast.poll_next(&mut cx),
            Poll::Ready(Err(ViewerEnd::PublisherLeft))
        ));
        assert!(f.subscribe(ViewerKind::Flv).is_none());
        drop((slow, fast));
        assert_eq!(f.counts().rtmp + f.counts().flv, 0);
        assert_eq!(f.counts().dropped, 1);
    }

    #[test]
    fn viewers_take_batches_and_the_queue_keeps_only_what_one_has_not_taken() {
        let f = Arc::new(Fanout::new(64));
        f.push(tag(9, 0, AVC_KEY));
        let mut a = f.subscribe(ViewerKind::Rtmp).unwrap();
        let mut b = f.subscribe(ViewerKind::Flv).unwrap();
        for i in 1..=10u32 {
            f.push(tag(9, i * 33, AVC_INTER));
        }
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut got = Vec::new();
        assert!(a.poll_batch(&mut cx, &mut got, 4).is_ready());
        assert_eq!(
            got.iter().map(|t| t.timestamp).collect::<Vec<_>>(),
            [33, 66, 99, 132]
        );
        got.clear();
        while a.poll_batch(&mut cx, &mut got, 4).is_ready() {}
        assert_eq!(got.len(), 6, "the rest, in order");
        assert_eq!(got.last().map(|t| t.timestamp), Some(330));
        // b has taken nothing: the queue holds all ten for it.
        f.push(tag(9, 363, AVC_INTER));
        assert_eq!(f.lock().live.len(), 11);
        got.clear();
        while b.poll_batch(&mut cx, &mut got, 64).is_ready() {}
        assert_eq!(got.len(), 11);
        assert!(a.poll_batch(&mut cx, &mut Vec::new(), 64).is_ready());
        // Both took everything: the next push leaves just itself queued,
        // and with no viewer left nothing at all.
        f.push(tag(9, 396, AVC_INTER));
        assert_eq!(f.lock().live.len(), 1);
        drop((a, b));
        f.push(tag(9, 429, AVC_INTER));
        assert_eq!(f.lock().live.len(), 0);
    }

    #[test]
    fn without_a_cached_gop_video_waits_for_a_keyframe() {
        let f = Arc::new(Fanout::new(16));
        f.push(tag(9, 0, AVC_HEADER));
        let mut v = f.subscribe(ViewerKind::Rtmp).unwrap();
        f.push(tag(9, 33, AVC_INTER));
        f.push(tag(8, 40, AAC_FRAME));
        f.push(tag(9, 66, AVC_KEY));
        f.push(tag(9, 99, AVC_INTER));
        let ts: Vec<u32> = drain(&mut v).iter().map(|t| t.1).collect();
        assert_eq!(ts, [0, 40, 66, 99]);
    }

    #[test]
    fn tags_are_framed_once_and_shared() {
        let t = tag(9, 0x0102_0304, AVC_KEY);
        let flv = t.flv().clone();
        assert_eq!(
            &flv[..11],
            &[9, 0, 0, 6, 0x02, 0x03, 0x04, 0x01, 0, 0, 0],
            "type, length, timestamp (low 24 bits, then high byte), stream id"
        );
        assert_eq!(&flv[11..17], AVC_KEY);
        assert_eq!(&flv[17..], &[0, 0, 0, 17]);
        assert_eq!(t.flv().as_ptr(), flv.as_ptr(), "made once");
        let rtmp = tag(9, 40, &[0x27; 5000]).rtmp().clone();
        // fmt 0 csid 6, ts 40, length 5000, type 9, stream 1; one fmt 3
        // continuation after 4096 bytes.
        assert_eq!(&rtmp[..12], &[6, 0, 0, 40, 0, 0x13, 0x88, 9, 1, 0, 0, 0]);
        assert_eq!(rtmp.len(), 12 + 5000 + 1);
        assert_eq!(rtmp[12 + 4096], 0xC6);
    }

    #[test]
    fn aggregates_split_into_rebased_tags() {
        let mut p = Vec::new();
        for (ty, ts, body) in [(9u8, 500u32, AVC_KEY), (8, 520, AAC_FRAME)] {
            p.push(ty);
            p.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
            p.extend_from_slice(&ts.to_be_bytes()[1..]);
            p.push(0);
            p.extend_from_slice(&[0, 0, 0]);
            p.extend_from_slice(body);
            p.extend_from_slice(&(body.len() as u32 + 11).to_be_bytes());
        }
        p.extend_from_slice(&[9, 0, 0]); // truncated tail
        let tags = split_aggregate(10_000, &Bytes::from(p));
        let got: Vec<(u8, u32, &[u8])> = tags
            .iter()
            .map(|t| (t.type_id, t.timestamp, &t.data[..]))
            .collect();
        assert_eq!(got, [(9, 10_000, AVC_KEY), (8, 10_020, AAC_FRAME)]);
    }
}
