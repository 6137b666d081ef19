//! FLV reader: parses a whole FLV file held in memory into a `Fixture` (sequence
//! headers, metadata and media tags sharing one buffer) that publishers loop over.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::codec::{self, CodecError, Framing, Packet, VideoCodec};

/// Largest FLV file we accept. Fixtures are held in memory by every run, so a
/// bigger file is almost certainly the wrong file.
pub const MAX_FILE_BYTES: u64 = 512 * 1024 * 1024;

/// A media tag may be up to this much earlier than the tag of the other track
/// just before it (audio and video are interleaved, not strictly ordered).
pub const MAX_INTERLEAVE_SKEW_MS: u32 = 50;

/// A forward jump between consecutive media tags larger than this is a gap
/// (ingests such as Tencent's flag jumps over 1 s).
pub const MAX_GAP_MS: u32 = 1000;

/// Loop period step for an audio-only file: one AAC frame at 44.1 kHz.
const AUDIO_ONLY_FRAME_MS: u32 = 23;

const FILE_HEADER_LEN: usize = 9;
const TAG_HEADER_LEN: usize = 11;
const PREVIOUS_TAG_SIZE_LEN: usize = 4;

/// FLV codec id of H.264/AVC video.
pub const CODEC_AVC: u8 = 7;
/// FLV sound format of AAC audio.
pub const CODEC_AAC: u8 = 10;

/// One FLV tag: type (8 audio, 9 video, 18 script), timestamp in ms, body.
/// What a player reads off an HTTP-FLV body and what an SRT push's TS
/// becomes for the fan-out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlvTag {
    pub type_id: u8,
    pub timestamp_ms: u32,
    pub body: Bytes,
}

#[derive(Debug, thiserror::Error)]
pub enum FlvError {
    #[error("not an FLV file: expected signature 'FLV' at offset 0")]
    NotFlv,
    #[error("FLV file truncated in {what} at offset {offset}")]
    Truncated { what: &'static str, offset: usize },
    #[error(
        "FLV header data offset {data_offset} is invalid: it must be at least 9 and within the {len}-byte file"
    )]
    DataOffset { data_offset: u32, len: usize },
    #[error(
        "FLV file truncated or corrupt: the tag at offset {offset} claims {claims} bytes but only {remain} remain"
    )]
    TagTooLong {
        offset: usize,
        claims: usize,
        remain: usize,
    },
    #[error("FLV {kind} tag at offset {offset} has an empty payload")]
    EmptyTag { kind: TagKind, offset: usize },
    #[error(
        "FLV tag at offset {offset} has unknown type {tag_type} (expected 8 audio, 9 video or 18 script)"
    )]
    UnknownTagType { tag_type: u8, offset: usize },
    #[error(
        "FLV tag at offset {offset} is encrypted (filter bit set): encrypted FLV is not supported"
    )]
    Encrypted { offset: usize },
    #[error("FLV file has no audio or video tags")]
    NoMedia,
    #[error("FLV {kind} timestamps go backwards at tag {tag} (from {from} ms to {to} ms)")]
    Backwards {
        kind: TagKind,
        tag: usize,
        from: u32,
        to: u32,
    },
    #[error(
        "FLV {kind} tag {tag} at {to} ms comes after a {other} tag at {from} ms: more than {MAX_INTERLEAVE_SKEW_MS} ms backwards"
    )]
    Interleave {
        kind: TagKind,
        other: TagKind,
        tag: usize,
        from: u32,
        to: u32,
    },
    #[error(
        "FLV timestamps jump by {jump_ms} ms at tag {tag} (more than {MAX_GAP_MS} ms): the file has a gap"
    )]
    Gap { tag: usize, jump_ms: u32 },
    #[error("FLV file is {size} bytes, over the 512 MiB limit: use a shorter fixture")]
    TooLarge { size: u64 },
    #[error("cannot push this fixture with --legacy-codec-id")]
    Legacy(#[source] CodecError),
    #[error("cannot read FLV file {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// FLV tag types 8 (audio), 9 (video) and 18 (script data).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TagKind {
    Audio,
    Video,
    Script,
}

impl TagKind {
    fn from_type(tag_type: u8) -> Option<TagKind> {
        match tag_type {
            8 => Some(TagKind::Audio),
            9 => Some(TagKind::Video),
            18 => Some(TagKind::Script),
            _ => None,
        }
    }

    /// The FLV tag type, which is also the RTMP message type id.
    pub fn type_id(self) -> u8 {
        match self {
            TagKind::Audio => 8,
            TagKind::Video => 9,
            TagKind::Script => 18,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TagKind::Audio => "audio",
            TagKind::Video => "video",
            TagKind::Script => "script",
        }
    }
}

impl fmt::Display for TagKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One FLV tag: its kind, timestamp and body (the RTMP message payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub kind: TagKind,
    /// 24-bit timestamp plus the extended (high) byte, in milliseconds.
    pub timestamp_ms: u32,
    /// The tag body, a slice of the shared file buffer.
    pub data: Bytes,
}

impl Tag {
    /// A video tag whose frame type is 1 (key frame), in either framing (the
    /// Enhanced RTMP IsExHeader bit aside). Audio and script tags are not.
    pub fn is_keyframe(&self) -> bool {
        self.kind == TagKind::Video && self.data.first().is_some_and(|b| (b >> 4) & 0x07 == 1)
    }

    /// A video sequence header (AVC/HEVC/AV1 decoder configuration record,
    /// legacy codec id or Enhanced RTMP SequenceStart) or an AAC sequence
    /// header (AudioSpecificConfig).
    pub fn is_sequence_header(&self) -> bool {
        match self.kind {
            TagKind::Video => self.video_packet() == Some(Packet::SequenceStart),
            TagKind::Audio => {
                self.data.first().is_some_and(|b| b >> 4 == CODEC_AAC)
                    && self.data.get(1) == Some(&0)
            }
            TagKind::Script => false,
        }
    }

    /// A video end-of-sequence marker (AVC packet type 2 / SequenceEnd).
    fn is_end_of_sequence(&self) -> bool {
        self.kind == TagKind::Video && self.video_packet() == Some(Packet::SequenceEnd)
    }

    /// The video packet kind; `None` for other tags and unreadable headers.
    fn video_packet(&self) -> Option<Packet> {
        codec::parse_video_tag(&self.data).ok().map(|t| t.packet)
    }
}

/// A parsed FLV file, ready to be looped by a publisher.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// The file has at least one audio tag.
    pub has_audio: bool,
    /// The file has at least one video tag.
    pub has_video: bool,
    /// Body of the first onMetaData script tag, as in the file.
    pub metadata: Option<Bytes>,
    /// The first AVC sequence header (timestamp rebased like the media).
    pub video_sequence_header: Option<Tag>,
    /// The first AAC sequence header (timestamp rebased like the media).
    pub audio_sequence_header: Option<Tag>,
    /// Every audio and video tag except sequence headers and AVC
    /// end-of-sequence markers (which would end the stream for a player on
    /// every loop), in file order. Timestamps are rebased so the earliest media
    /// tag (normally the first) is at 0.
    pub media: Vec<Tag>,
    /// Loop period: last media timestamp plus one frame interval (the median
    /// video frame interval, else 23 ms), at least 1.
    pub duration_ms: u32,
    /// Display size from the AVC sequence header's SPS; `None` when there is
    /// no AVC header or its SPS cannot be read.
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Codec of the first video tag that names one (legacy id or FourCC).
    pub video_codec: Option<VideoCodec>,
    /// How that tag names its codec (legacy FLV codec id or Enhanced RTMP).
    pub video_framing: Option<Framing>,
    /// FLV sound format of the first audio tag (10 = AAC).
    pub audio_codec: Option<u8>,
}

impl Fixture {
    /// Bytes of media tag bodies sent per loop.
    pub fn media_bytes(&self) -> u64 {
        self.media.iter().map(|t| t.data.len() as u64).sum()
    }

    /// Average media bitrate over one loop, in bits per second.
    pub fn bitrate_bps(&self) -> u64 {
        self.media_bytes() * 8 * 1000 / u64::from(self.duration_ms.max(1))
    }

    /// The fixture with its Enhanced RTMP video rewritten to the legacy FLV
    /// codec id framing (12 HEVC, 13 AV1); Enhanced Metadata tags, which have
    /// no legacy form, are dropped. Legacy fixtures come back unchanged.
    /// Built once, before any publisher starts.
    pub fn with_legacy_codec_id(&self) -> Result<Fixture, FlvError> {
        if self.video_framing != Some(Framing::Enhanced) {
            return Ok(self.clone());
        }
        let rewrite = |tag: &Tag| -> Result<Option<Tag>, FlvError> {
            if tag.kind != TagKind::Video {
                return Ok(Some(tag.clone()));
            }
            let body = codec::legacy::to_legacy(&tag.data).map_err(FlvError::Legacy)?;
            Ok(body.map(|b| Tag {
                data: Bytes::from(b),
                ..tag.clone()
            }))
        };
        let mut media = Vec::with_capacity(self.media.len());
        for tag in &self.media {
            media.extend(rewrite(tag)?);
        }
        let video_sequence_header = match &self.video_sequence_header {
            Some(t) => rewrite(t)?,
            None => None,
        };
        Ok(Fixture {
            media,
            video_sequence_header,
            video_framing: Some(Framing::Legacy),
            ..self.clone()
        })
    }
}

/// Parses an FLV file from a byte slice (copied once into a shared buffer).
pub fn parse(bytes: &[u8]) -> Result<Fixture, FlvError> {
    check_size(bytes.len() as u64)?;
    parse_bytes(Bytes::copy_from_slice(bytes))
}

/// Parses an FLV file already in a shared buffer; tags are slices of it.
pub fn parse_bytes(buf: Bytes) -> Result<Fixture, FlvError> {
    check_size(buf.len() as u64)?;
    let tags = read_tags(&buf)?;
    build_fixture(tags)
}

/// Reads and parses an FLV file, refusing files over `MAX_FILE_BYTES`.
pub fn load(path: &Path) -> Result<Fixture, FlvError> {
    let io = |source| FlvError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    check_size(file.metadata().map_err(io)?.len())?;
    let mut buf = Vec::new();
    // `take` guards against files that grow or report no size (pipes).
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(io)?;
    parse_bytes(Bytes::from(buf))
}

/// The built-in fixture: 10 s of 640x360 H.264 + AAC at ~500 kbps.
pub fn default_fixture() -> Fixture {
    parse_bytes(Bytes::from_static(include_bytes!(
        "../fixtures/sd-360p.flv"
    )))
    .expect("the built-in fixture fixtures/sd-360p.flv parses (tested)")
}

/// The built-in 640x360 fixture of `codec` (same content, GOP and AAC audio
/// as sd-360p; HEVC, AV1 and VP9 in Enhanced RTMP framing), with its name;
/// `None` for codecs without one (VP8, VVC).
pub fn builtin_fixture(codec: VideoCodec) -> Option<(Fixture, &'static str)> {
    let (bytes, name): (&'static [u8], _) = match codec {
        VideoCodec::H264 => return Some((default_fixture(), "embedded sd-360p.flv")),
        VideoCodec::Hevc => (
            include_bytes!("../fixtures/hevc-360p.flv"),
            "embedded hevc-360p.flv",
        ),
        VideoCodec::Av1 => (
            include_bytes!("../fixtures/av1-360p.flv"),
            "embedded av1-360p.flv",
        ),
        VideoCodec::Vp9 => (
            include_bytes!("../fixtures/vp9-360p.flv"),
            "embedded vp9-360p.flv",
        ),
        VideoCodec::Vp8 | VideoCodec::Vvc => return None,
    };
    let fixture = parse_bytes(Bytes::from_static(bytes))
        .expect("the built-in fixtures parse (tested in codec::fixture_tests)");
    Some((fixture, name))
}

fn check_size(size: u64) -> Result<(), FlvError> {
    if size > MAX_FILE_BYTES {
        return Err(FlvError::TooLarge { size });
    }
    Ok(())
}

/// A tag as found in the file, with where it was.
struct RawTag {
    tag: Tag,
    index: usize,
}

fn be_uint(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0, |acc, &b| (acc << 8) | u32::from(b))
}

/// Splits the file into tags, checking the container structure only.
fn read_tags(buf: &Bytes) -> Result<Vec<RawTag>, FlvError> {
    let len = buf.len();
    if buf.get(..3) != Some(b"FLV".as_slice()) {
        return Err(FlvError::NotFlv);
    }
    let Some(header) = buf.get(..FILE_HEADER_LEN) else {
        return Err(FlvError::Truncated {
            what: "file header",
            offset: len,
        });
    };
    let data_offset = be_uint(&header[5..9]);
    let mut pos = match usize::try_from(data_offset) {
        Ok(p) if p >= FILE_HEADER_LEN && p <= len => p,
        _ => return Err(FlvError::DataOffset { data_offset, len }),
    };

    let mut tags = Vec::new();
    loop {
        // PreviousTagSize: a back-pointer only; a wrong value is harmless.
        // A missing one after the last tag is tolerated, a partial one is not.
        let remain = len - pos;
        if remain == 0 {
            break;
        }
        if remain < PREVIOUS_TAG_SIZE_LEN {
            return Err(FlvError::Truncated {
                what: "PreviousTagSize",
                offset: pos,
            });
        }
        pos += PREVIOUS_TAG_SIZE_LEN;
        if pos == len {
            break;
        }

        let offset = pos;
        let Some(head) = buf.get(pos..pos + TAG_HEADER_LEN) else {
            return Err(FlvError::Truncated {
                what: "tag header",
                offset,
            });
        };
        if head[0] & 0x20 != 0 {
            return Err(FlvError::Encrypted { offset });
        }
        let tag_type = head[0] & 0x1f;
        let kind =
            TagKind::from_type(tag_type).ok_or(FlvError::UnknownTagType { tag_type, offset })?;
        let size = be_uint(&head[1..4]) as usize;
        let timestamp_ms = be_uint(&head[4..7]) | (u32::from(head[7]) << 24);
        // head[8..11] is the stream id, always 0 in practice; not checked.
        pos += TAG_HEADER_LEN;
        let remain = len - pos;
        if size > remain {
            return Err(FlvError::TagTooLong {
                offset,
                claims: size,
                remain,
            });
        }
        if size == 0 {
            return Err(FlvError::EmptyTag { kind, offset });
        }
        let data = buf.slice(pos..pos + size);
        pos += size;
        tags.push(RawTag {
            tag: Tag {
                kind,
                timestamp_ms,
                data,
            },
            index: tags.len(),
        });
    }
    Ok(tags)
}

fn is_on_metadata(body: &[u8]) -> bool {
    // AMF0 string marker (2), u16 length, "onMetaData".
    const NAME: &[u8] = b"onMetaData";
    body.first() == Some(&2)
        && body.get(1..3) == Some([0, NAME.len() as u8].as_slice())
        && body.get(3..3 + NAME.len()) == Some(NAME)
}

/// Timestamp rules for media tags in file order (raw, not yet rebased).
#[derive(Default)]
struct TimestampCheck {
    last_audio: Option<u32>,
    last_video: Option<u32>,
    last_any: Option<(TagKind, u32)>,
}

impl TimestampCheck {
    fn check(&mut self, kind: TagKind, ts: u32, tag: usize) -> Result<(), FlvError> {
        let last_same = match kind {
            TagKind::Audio => &mut self.last_audio,
            _ => &mut self.last_video,
        };
        if let Some(from) = *last_same
            && ts < from
        {
            return Err(FlvError::Backwards {
                kind,
                tag,
                from,
                to: ts,
            });
        }
        *last_same = Some(ts);
        if let Some((other, from)) = self.last_any {
            if ts < from && from - ts > MAX_INTERLEAVE_SKEW_MS {
                return Err(FlvError::Interleave {
                    kind,
                    other,
                    tag,
                    from,
                    to: ts,
                });
            }
            if ts > from && ts - from > MAX_GAP_MS {
                return Err(FlvError::Gap {
                    tag,
                    jump_ms: ts - from,
                });
            }
        }
        self.last_any = Some((kind, ts));
        Ok(())
    }
}

fn build_fixture(tags: Vec<RawTag>) -> Result<Fixture, FlvError> {
    let mut metadata = None;
    let mut video_sequence_header = None;
    let mut audio_sequence_header = None;
    let mut video_codec = None;
    let mut video_framing = None;
    let mut has_video = false;
    let mut audio_codec = None;
    let mut media = Vec::new();
    let mut check = TimestampCheck::default();

    for RawTag { tag, index } in tags {
        match tag.kind {
            TagKind::Script => {
                if metadata.is_none() && is_on_metadata(&tag.data) {
                    metadata = Some(tag.data);
                }
                continue;
            }
            TagKind::Video => {
                if video_codec.is_none()
                    && let Ok(v) = codec::parse_video_tag(&tag.data)
                {
                    video_codec = Some(v.codec);
                    video_framing = Some(v.framing);
                }
                has_video = true;
            }
            TagKind::Audio => {
                audio_codec = audio_codec.or(tag.data.first().map(|b| b >> 4));
            }
        }
        if tag.is_sequence_header() {
            let first = match tag.kind {
                TagKind::Video => &mut video_sequence_header,
                _ => &mut audio_sequence_header,
            };
            if first.is_none() {
                *first = Some(tag);
            }
            continue;
        }
        if tag.is_end_of_sequence() {
            continue;
        }
        check.check(tag.kind, tag.timestamp_ms, index)?;
        media.push(tag);
    }

    let base = media
        .iter()
        .map(|t| t.timestamp_ms)
        .min()
        .ok_or(FlvError::NoMedia)?;
    for tag in media
        .iter_mut()
        .chain(video_sequence_header.iter_mut())
        .chain(audio_sequence_header.iter_mut())
    {
        tag.timestamp_ms = tag.timestamp_ms.saturating_sub(base);
    }
    let last = media.iter().map(|t| t.timestamp_ms).max().unwrap_or(0);
    let frame = median_video_interval(&media).unwrap_or(AUDIO_ONLY_FRAME_MS);
    let duration_ms = last.saturating_add(frame).max(1);

    let (width, height) = video_sequence_header
        .as_ref()
        .and_then(|tag| codec::sequence_header_dimensions(&tag.data))
        .unzip();

    Ok(Fixture {
        has_audio: audio_codec.is_some(),
        has_video,
        metadata,
        video_sequence_header,
        audio_sequence_header,
        media,
        duration_ms,
        width,
        height,
        video_codec,
        video_framing,
        audio_codec,
    })
}

/// Median gap between consecutive video media tags; None with fewer than two.
fn median_video_interval(media: &[Tag]) -> Option<u32> {
    let times: Vec<u32> = media
        .iter()
        .filter(|t| t.kind == TagKind::Video)
        .map(|t| t.timestamp_ms)
        .collect();
    let mut gaps: Vec<u32> = times
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]))
        .collect();
    gaps.sort_unstable();
    gaps.get(gaps.len() / 2).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds an FLV file: header with the given data offset, then
    /// `(tag type byte, timestamp, body)` tags with correct PreviousTagSize fields.
    fn flv_with_offset(data_offset: u32, tags: &[(u8, u32, &[u8])]) -> Vec<u8> {
        let mut out = b"FLV\x01\x05".to_vec();
        out.extend_from_slice(&data_offset.to_be_bytes());
        out.resize(data_offset as usize, 0xee);
        out.extend_from_slice(&0u32.to_be_bytes());
        for &(tag_type, ts, body) in tags {
            let start = out.len();
            out.push(tag_type);
            out.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
            out.extend_from_slice(&ts.to_be_bytes()[1..]);
            out.push((ts >> 24) as u8);
            out.extend_from_slice(&[0, 0, 0]);
            out.extend_from_slice(body);
            let size = (out.len() - start) as u32;
            out.extend_from_slice(&size.to_be_bytes());
        }
        out
    }

    fn flv(tags: &[(u8, u32, &[u8])]) -> Vec<u8> {
        flv_with_offset(9, tags)
    }

    const META: &[u8] = b"\x02\x00\x0aonMetaData\x08\x00\x00\x00\x00\x00\x00\x09";
    const AVC_SEQ: &[u8] = &[0x17, 0, 0, 0, 0, 1, 0x4d, 0x40, 0x1e];
    const AAC_SEQ: &[u8] = &[0xaf, 0, 0x12, 0x10];
    const KEY: &[u8] = &[0x17, 1, 0, 0, 0, 0xaa, 0xbb];
    const INTER: &[u8] = &[0x27, 1, 0, 0, 0, 0xcc];
    const AAC: &[u8] = &[0xaf, 1, 0x21, 0x22];
    const AVC_EOS: &[u8] = &[0x17, 2, 0, 0, 0];

    fn good_tags() -> Vec<(u8, u32, &'static [u8])> {
        vec![
            (18, 0, META),
            (9, 0, AVC_SEQ),
            (8, 0, AAC_SEQ),
            (9, 40, KEY),
            (8, 40, AAC),
            (8, 63, AAC),
            (9, 73, INTER),
            (8, 86, AAC),
            (9, 106, INTER),
            (9, 106, AVC_EOS),
        ]
    }

    #[test]
    fn good_file() {
        let f = parse(&flv(&good_tags())).unwrap();
        assert!(f.has_audio && f.has_video);
        assert_eq!(f.metadata.as_deref(), Some(META));
        assert_eq!(f.video_sequence_header.as_ref().unwrap().data, AVC_SEQ);
        assert_eq!(f.audio_sequence_header.as_ref().unwrap().data, AAC_SEQ);
        assert_eq!(f.video_codec, Some(VideoCodec::H264));
        assert_eq!(f.audio_codec, Some(CODEC_AAC));
        // The test's AVC header has no SPS: size unknown, not an error.
        assert_eq!((f.width, f.height), (None, None));
        let summary: Vec<(TagKind, u32, bool)> = f
            .media
            .iter()
            .map(|t| (t.kind, t.timestamp_ms, t.is_keyframe()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (TagKind::Video, 0, true),
                (TagKind::Audio, 0, false),
                (TagKind::Audio, 23, false),
                (TagKind::Video, 33, false),
                (TagKind::Audio, 46, false),
                (TagKind::Video, 66, false),
            ]
        );
        // Last media tag at 66 ms plus the median video interval (33 ms).
        assert_eq!(f.duration_ms, 99);
        assert_eq!(f.media_bytes(), 7 + 4 + 4 + 6 + 4 + 6);
        assert_eq!(f.bitrate_bps(), 31 * 8 * 1000 / 99);
        assert!(f.media.iter().all(|t| !t.is_sequence_header()));
    }

    #[test]
    fn tags_share_the_file_buffer() {
        let bytes = flv(&good_tags());
        let buf = Bytes::from(bytes);
        let range = buf.as_ptr_range();
        let f = parse_bytes(buf.clone()).unwrap();
        for t in &f.media {
            assert!(range.contains(&t.data.as_ptr()));
        }
    }

    #[test]
    fn tag_predicates() {
        let tag = |kind, data: &'static [u8]| Tag {
            kind,
            timestamp_ms: 0,
            data: Bytes::from_static(data),
        };
        assert!(tag(TagKind::Video, AVC_SEQ).is_sequence_header());
        assert!(tag(TagKind::Video, AVC_SEQ).is_keyframe());
        assert!(tag(TagKind::Audio, AAC_SEQ).is_sequence_header());
        assert!(!tag(TagKind::Audio, AAC).is_sequence_header());
        assert!(!tag(TagKind::Audio, AAC).is_keyframe());
        assert!(!tag(TagKind::Video, INTER).is_keyframe());
        assert!(!tag(TagKind::Video, &[0x17]).is_sequence_header());
        assert!(!tag(TagKind::Video, &[]).is_keyframe());
        assert!(!tag(TagKind::Script, META).is_sequence_header());
        // Frame type 1 but codec 2 (Sorenson): a key frame, not an AVC header.
        assert!(!tag(TagKind::Video, &[0x12, 0]).is_sequence_header());
        assert!(tag(TagKind::Video, &[0x12, 0]).is_keyframe());
        // MP3 (sound format 2) packet with a zero second byte.
        assert!(!tag(TagKind::Audio, &[0x2f, 0]).is_sequence_header());
    }

    #[test]
    fn data_offset_is_honoured() {
        let f = parse(&flv_with_offset(13, &good_tags())).unwrap();
        assert_eq!(f.media.len(), 6);
        for bad in [0u32, 8, 10_000] {
            let mut bytes = flv(&good_tags());
            bytes[5..9].copy_from_slice(&bad.to_be_bytes());
            let err = parse(&bytes).unwrap_err();
            assert!(matches!(err, FlvError::DataOffset { .. }), "{bad}: {err}");
            assert!(err.to_string().starts_with("FLV header data offset"));
        }
    }

    #[test]
    fn extended_timestamp_byte() {
        // 0x01_000010 ms: 24-bit part 0x000010, extended byte 0x01.
        let base = 0x0100_0010;
        let f = parse(&flv(&[
            (9, base, KEY),
            (8, base + 5, AAC),
            (9, base + 40, INTER),
        ]))
        .unwrap();
        let times: Vec<u32> = f.media.iter().map(|t| t.timestamp_ms).collect();
        assert_eq!(times, vec![0, 5, 40]);
        // The raw reader keeps the full 32-bit value.
        let raw = read_tags(&Bytes::from(flv(&[(9, base, KEY)]))).unwrap();
        assert_eq!(raw[0].tag.timestamp_ms, 16_777_232);
    }

    #[test]
    fn previous_tag_size_mismatch_is_tolerated() {
        let mut bytes = flv(&good_tags());
        // PreviousTagSize0 and the one after the first tag.
        bytes[9..13].copy_from_slice(&7u32.to_be_bytes());
        let after_first = 13 + TAG_HEADER_LEN + META.len();
        bytes[after_first..after_first + 4].copy_from_slice(&0xdead_beefu32.to_be_bytes());
        assert_eq!(parse(&bytes).unwrap().media.len(), 6);
        // The trailing PreviousTagSize may be missing altogether.
        bytes.truncate(bytes.len() - 4);
        assert_eq!(parse(&bytes).unwrap().media.len(), 6);
    }

    #[test]
    fn not_flv() {
        for bytes in [&b""[..], b"FL", b"GIF89a", b"flv\x01\x05\0\0\0\x09"] {
            let err = parse(bytes).unwrap_err();
            assert!(matches!(err, FlvError::NotFlv), "{err}");
            assert_eq!(
                err.to_string(),
                "not an FLV file: expected signature 'FLV' at offset 0"
            );
        }
    }

    #[test]
    fn truncated_file_header() {
        let err = parse(b"FLV\x01\x05\0").unwrap_err();
        assert!(
            matches!(err, FlvError::Truncated { offset: 6, .. }),
            "{err}"
        );
    }

    #[test]
    fn truncated_tag_header() {
        let mut bytes = flv(&good_tags());
        bytes.extend_from_slice(&[9, 0, 0]);
        let at = bytes.len() - 3;
        let err = parse(&bytes).unwrap_err();
        assert!(
            matches!(err, FlvError::Truncated { offset, .. } if offset == at),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            format!("FLV file truncated in tag header at offset {at}")
        );
    }

    #[test]
    fn truncated_previous_tag_size() {
        let mut bytes = flv(&good_tags());
        bytes.truncate(bytes.len() - 2);
        let err = parse(&bytes).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("FLV file truncated in PreviousTagSize"),
            "{err}"
        );
    }

    #[test]
    fn truncated_last_tag() {
        let full = flv(&good_tags());
        // Cut into the body of the last tag (AVC end of sequence, 5 bytes).
        let bytes = &full[..full.len() - 4 - 2];
        let at = full.len() - 4 - 5 - TAG_HEADER_LEN;
        let err = parse(bytes).unwrap_err();
        assert!(
            matches!(err, FlvError::TagTooLong { offset, claims: 5, remain: 3 } if offset == at),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "FLV file truncated or corrupt: the tag at offset {at} claims 5 bytes but only 3 remain"
            )
        );
    }

    #[test]
    fn huge_size_claim() {
        let mut bytes = flv(&[(9, 0, KEY)]);
        bytes[14..17].copy_from_slice(&[0xbc, 0x61, 0x4e]);
        let err = parse(&bytes).unwrap_err();
        assert!(
            err.to_string().contains("claims 12345678 bytes but only"),
            "{err}"
        );
    }

    #[test]
    fn empty_payload() {
        let err = parse(&flv(&[(9, 0, KEY), (8, 0, &[])])).unwrap_err();
        assert!(
            matches!(
                err,
                FlvError::EmptyTag {
                    kind: TagKind::Audio,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("FLV audio tag at offset"), "{err}");
    }

    #[test]
    fn unknown_tag_type() {
        let err = parse(&flv(&[(9, 0, KEY), (7, 0, b"x")])).unwrap_err();
        assert!(
            matches!(err, FlvError::UnknownTagType { tag_type: 7, .. }),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("FLV tag at offset 35 has unknown type 7"),
            "{err}"
        );
    }

    #[test]
    fn encrypted_tag() {
        let err = parse(&flv(&[(9 | 0x20, 0, KEY)])).unwrap_err();
        assert!(matches!(err, FlvError::Encrypted { offset: 13 }), "{err}");
        assert!(err.to_string().contains("FLV"), "{err}");
    }

    #[test]
    fn no_media() {
        for bytes in [
            flv(&[]),
            flv(&[(18, 0, META)]),
            flv(&[(9, 0, AVC_SEQ), (8, 0, AAC_SEQ)]),
            b"FLV\x01\x05\0\0\0\x09".to_vec(),
        ] {
            let err = parse(&bytes).unwrap_err();
            assert!(matches!(err, FlvError::NoMedia), "{err}");
            assert_eq!(err.to_string(), "FLV file has no audio or video tags");
        }
    }

    #[test]
    fn video_going_backwards() {
        let err = parse(&flv(&[(9, 0, KEY), (9, 40, INTER), (9, 30, INTER)])).unwrap_err();
        assert!(
            matches!(
                err,
                FlvError::Backwards {
                    kind: TagKind::Video,
                    tag: 2,
                    from: 40,
                    to: 30
                }
            ),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "FLV video timestamps go backwards at tag 2 (from 40 ms to 30 ms)"
        );
    }

    #[test]
    fn audio_going_backwards() {
        let err = parse(&flv(&[(8, 10, AAC), (9, 10, KEY), (8, 9, AAC)])).unwrap_err();
        assert!(
            matches!(
                err,
                FlvError::Backwards {
                    kind: TagKind::Audio,
                    tag: 2,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn interleave_skew() {
        // Audio 50 ms behind video is fine; 51 ms is not.
        let ok = parse(&flv(&[
            (9, 100, KEY),
            (8, 50, AAC),
            (9, 133, INTER),
            (8, 83, AAC),
        ]))
        .unwrap();
        assert_eq!(ok.media.first().unwrap().timestamp_ms, 50);
        assert_eq!(ok.media.get(1).unwrap().timestamp_ms, 0);
        let err = parse(&flv(&[(9, 100, KEY), (8, 49, AAC)])).unwrap_err();
        assert!(
            matches!(
                err,
                FlvError::Interleave {
                    kind: TagKind::Audio,
                    other: TagKind::Video,
                    tag: 1,
                    from: 100,
                    to: 49
                }
            ),
            "{err}"
        );
        assert!(
            err.to_string().starts_with("FLV audio tag 1 at 49 ms"),
            "{err}"
        );
    }

    #[test]
    fn gap() {
        let ok = parse(&flv(&[(9, 0, KEY), (8, 1000, AAC)]));
        assert!(ok.is_ok());
        let err = parse(&flv(&[(9, 0, KEY), (8, 10, AAC), (9, 1011, INTER)])).unwrap_err();
        assert!(
            matches!(
                err,
                FlvError::Gap {
                    tag: 2,
                    jump_ms: 1001
                }
            ),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "FLV timestamps jump by 1001 ms at tag 2 (more than 1000 ms): the file has a gap"
        );
    }

    #[test]
    fn audio_only_duration() {
        let f = parse(&flv(&[
            (8, 0, AAC_SEQ),
            (8, 0, AAC),
            (8, 23, AAC),
            (8, 46, AAC),
        ]))
        .unwrap();
        assert!(f.has_audio && !f.has_video);
        assert_eq!(f.video_codec, None);
        assert_eq!(f.duration_ms, 46 + 23);
        let single = parse(&flv(&[(9, 0, KEY)])).unwrap();
        assert_eq!(single.duration_ms, 23);
    }

    #[test]
    fn too_large() {
        assert!(check_size(MAX_FILE_BYTES).is_ok());
        let err = check_size(MAX_FILE_BYTES + 1).unwrap_err();
        assert!(
            err.to_string()
                .contains("FLV file is 536870913 bytes, over the 512 MiB limit")
        );
        // A sparse file: load must refuse it before reading it.
        let file = tempfile::NamedTempFile::new().unwrap();
        file.as_file().set_len(MAX_FILE_BYTES + 1).unwrap();
        let err = load(file.path()).unwrap_err();
        assert!(matches!(err, FlvError::TooLarge { .. }), "{err}");
    }

    #[test]
    fn io_error_names_the_path() {
        let err = load(Path::new("/nonexistent/dir/x.flv")).unwrap_err();
        assert!(matches!(err, FlvError::Io { .. }));
        assert_eq!(
            err.to_string(),
            "cannot read FLV file /nonexistent/dir/x.flv"
        );
        assert!(std::error::Error::source(&err).is_some());
    }

    #[test]
    fn load_reads_a_file() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), flv(&good_tags())).unwrap();
        assert_eq!(load(file.path()).unwrap().media.len(), 6);
    }

    /// (file, width, height, target bits per second)
    const FIXTURES: [(&str, u32, u32, u64); 3] = [
        ("sd-360p.flv", 640, 360, 500_000),
        ("hd-720p.flv", 1280, 720, 2_500_000),
        ("low-240p.flv", 426, 240, 250_000),
    ];

    #[test]
    fn committed_fixtures() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
        for (name, width, height, target) in FIXTURES {
            let f = load(&dir.join(name)).unwrap();
            assert_eq!((f.width, f.height), (Some(width), Some(height)), "{name}");
            assert!(f.has_audio && f.has_video, "{name}");
            assert_eq!(f.video_codec, Some(VideoCodec::H264), "{name}");
            assert_eq!(f.audio_codec, Some(CODEC_AAC), "{name}");
            assert!(f.metadata.is_some(), "{name}");
            assert!(f.video_sequence_header.is_some(), "{name}");
            assert!(f.audio_sequence_header.is_some(), "{name}");
            assert!(
                (9_900..=10_200).contains(&f.duration_ms),
                "{name}: {} ms",
                f.duration_ms
            );
            assert!(f.media.first().unwrap().timestamp_ms == 0, "{name}");
            assert!(
                f.media
                    .iter()
                    .find(|t| t.kind == TagKind::Video)
                    .unwrap()
                    .is_keyframe(),
                "{name}"
            );
            // 2 s GOP over 10 s: five key frames.
            assert_eq!(
                f.media.iter().filter(|t| t.is_keyframe()).count(),
                5,
                "{name}"
            );
            let bps = f.bitrate_bps();
            assert!(
                bps * 10 >= target * 7 && bps * 10 <= target * 13,
                "{name}: {bps} bps vs target {target}"
            );
        }
    }

    #[test]
    fn default_fixture_is_sd() {
        let f = default_fixture();
        assert_eq!(f.video_codec, Some(VideoCodec::H264));
        assert_eq!((f.width, f.height), (Some(640), Some(360)));
        assert!(f.media.len() > 500);
    }
}
