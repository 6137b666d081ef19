//! Video codecs in FLV/RTMP video tags: which codec and framing a tag uses
//! (legacy FLV codec id or Enhanced RTMP FourCC), the display size from a
//! sequence header, and the enhanced -> legacy codec id rewrite. Pure, bounded.
//!
//! # Layout
//! - `tag`: the video tag header of both framings (ExVideoTagHeader included).
//! - `hevc`: HEVCDecoderConfigurationRecord -> SPS -> width/height.
//! - `av1`: AV1CodecConfigurationRecord -> sequence header OBU -> width/height.
//! - `legacy`: Enhanced RTMP bodies rewritten to FLV codec id 12/13 bodies.
//! - `bits`: the bit reader shared with `crate::avc`.

pub mod av1;
pub mod bits;
pub mod hevc;
pub mod legacy;
pub mod tag;

use std::fmt;

pub use tag::{Packet, VideoTag, parse_video_tag};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("video tag truncated: {what} needs {need} bytes, the tag has {have}")]
    Truncated {
        what: &'static str,
        need: usize,
        have: usize,
    },
    #[error("video tag uses FLV codec id {0}, which pushprobe does not know")]
    UnknownCodecId(u8),
    #[error("video tag uses FourCC {0:?}, which pushprobe does not know")]
    UnknownFourCc(String),
    #[error("{0} has no legacy FLV codec id: push it with Enhanced RTMP framing")]
    NoLegacyId(VideoCodec),
    #[error("video command frame (command {0}) names no codec")]
    CommandFrame(u8),
    #[error("multitrack video tags cannot be sent with a legacy FLV codec id")]
    MultitrackLegacy,
    #[error("unknown codec {0:?}: expected one of h264, hevc, av1, vp9 (aliases: avc, h265)")]
    UnknownName(String),
}

/// A video codec as named on the wire by an FLV codec id or a FourCC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VideoCodec {
    H264,
    Hevc,
    Av1,
    Vp9,
    Vp8,
    Vvc,
}

impl VideoCodec {
    pub const ALL: [VideoCodec; 6] = [
        VideoCodec::H264,
        VideoCodec::Hevc,
        VideoCodec::Av1,
        VideoCodec::Vp9,
        VideoCodec::Vp8,
        VideoCodec::Vvc,
    ];

    /// Name used in output and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            VideoCodec::H264 => "h264",
            VideoCodec::Hevc => "hevc",
            VideoCodec::Av1 => "av1",
            VideoCodec::Vp9 => "vp9",
            VideoCodec::Vp8 => "vp8",
            VideoCodec::Vvc => "vvc",
        }
    }

    /// Enhanced RTMP FourCC.
    pub fn fourcc(self) -> &'static [u8; 4] {
        match self {
            VideoCodec::H264 => b"avc1",
            VideoCodec::Hevc => b"hvc1",
            VideoCodec::Av1 => b"av01",
            VideoCodec::Vp9 => b"vp09",
            VideoCodec::Vp8 => b"vp08",
            VideoCodec::Vvc => b"vvc1",
        }
    }

    /// The FourCC as text (`hvc1`).
    pub fn fourcc_str(self) -> &'static str {
        std::str::from_utf8(self.fourcc()).expect("FourCCs are ASCII")
    }

    pub fn from_fourcc(fourcc: &[u8]) -> Option<VideoCodec> {
        VideoCodec::ALL
            .into_iter()
            .find(|c| c.fourcc().as_slice() == fourcc)
    }

    /// FLV codec id: 7 for H.264 (the FLV spec); 12 HEVC, 13 AV1, 14 VVC in
    /// the Chinese CDN extension (tencentyun/flv FLV_Codec.md).
    pub fn legacy_id(self) -> Option<u8> {
        match self {
            VideoCodec::H264 => Some(7),
            VideoCodec::Hevc => Some(12),
            VideoCodec::Av1 => Some(13),
            VideoCodec::Vvc => Some(14),
            VideoCodec::Vp9 | VideoCodec::Vp8 => None,
        }
    }

    pub fn from_legacy_id(id: u8) -> Option<VideoCodec> {
        VideoCodec::ALL
            .into_iter()
            .find(|c| c.legacy_id() == Some(id))
    }

    /// Parses a command-line name (`h264`, `avc`, `hevc`, `h265`, `av1`, `vp9`, ...).
    pub fn from_name(name: &str) -> Result<VideoCodec, CodecError> {
        let lower = name.trim().to_ascii_lowercase();
        match lower.as_str() {
            "avc" | "h.264" | "avc1" => return Ok(VideoCodec::H264),
            "h265" | "h.265" | "hvc1" => return Ok(VideoCodec::Hevc),
            "av01" => return Ok(VideoCodec::Av1),
            _ => {}
        }
        VideoCodec::ALL
            .into_iter()
            .find(|c| c.as_str() == lower)
            .ok_or_else(|| CodecError::UnknownName(name.to_string()))
    }

    /// Whether the codec has AVC-style composition times (B-frame reordering).
    pub fn has_composition_time(self) -> bool {
        matches!(self, VideoCodec::H264 | VideoCodec::Hevc | VideoCodec::Vvc)
    }
}

impl fmt::Display for VideoCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a video tag names its codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Framing {
    /// FLV codec id in the low nibble of byte 0 (7 H.264, 12 HEVC, 13 AV1).
    Legacy,
    /// Enhanced RTMP ExVideoTagHeader with a FourCC.
    Enhanced,
}

impl Framing {
    pub fn as_str(self) -> &'static str {
        match self {
            Framing::Legacy => "legacy-id",
            Framing::Enhanced => "enhanced",
        }
    }
}

impl fmt::Display for Framing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Display size from a sequence header tag body of any supported codec and
/// framing; `None` for other tags, VP9 (its size is in the key frames) or
/// malformed records.
pub fn sequence_header_dimensions(body: &[u8]) -> Option<(u32, u32)> {
    let tag = parse_video_tag(body).ok()?;
    if tag.packet != Packet::SequenceStart {
        return None;
    }
    let record = body.get(tag.payload_at..)?;
    match tag.codec {
        VideoCodec::H264 if tag.framing == Framing::Legacy => crate::avc::sps_dimensions(body),
        VideoCodec::H264 => {
            // The same record behind a 5-byte legacy header.
            let mut legacy = vec![0x17, 0, 0, 0, 0];
            legacy.extend_from_slice(record);
            crate::avc::sps_dimensions(&legacy)
        }
        VideoCodec::Hevc => hevc::record_dimensions(record),
        VideoCodec::Av1 => av1::record_dimensions(record),
        _ => None,
    }
}

/// An ingest's `_result` properties answering a client's `fourCcList` with
/// what `codecs` takes in Enhanced RTMP framing; none when it sent none.
pub fn answer_fourcc(
    client_connect: &crate::rtmp::amf0::Value,
    codecs: &CodecSet,
) -> Vec<(String, crate::rtmp::amf0::Value)> {
    let ours: Vec<&str> = VideoCodec::ALL.iter().map(|c| c.fourcc_str()).collect();
    crate::rtmp::message::FourCcReply::answer(client_connect, &ours, |f| codecs.takes_fourcc(f))
        .map(|r| r.properties())
        .unwrap_or_default()
}

/// What an ingest learns from a video tag: codec, framing, and for a
/// sequence header the display size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoSeen {
    pub codec: VideoCodec,
    pub framing: Framing,
    pub sequence_start: bool,
    pub size: Option<(u32, u32)>,
}

/// Reads a video tag body for the ingest; `None` when it names no codec.
pub fn video_seen(body: &[u8]) -> Option<VideoSeen> {
    let tag = parse_video_tag(body).ok()?;
    let sequence_start = tag.packet == Packet::SequenceStart;
    Some(VideoSeen {
        codec: tag.codec,
        framing: tag.framing,
        sequence_start,
        size: if sequence_start {
            sequence_header_dimensions(body)
        } else {
            None
        },
    })
}

/// The codecs an ingest takes (`serve --codecs h264,hevc:legacy-id`): each
/// entry a codec in any framing, or `CODEC:enhanced` / `CODEC:legacy-id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecSet(Vec<(VideoCodec, Option<Framing>)>);

impl Default for CodecSet {
    /// Every codec in every framing.
    fn default() -> CodecSet {
        CodecSet(VideoCodec::ALL.iter().map(|&c| (c, None)).collect())
    }
}

impl CodecSet {
    /// Parses a comma-separated list; an empty list is an error.
    pub fn parse(list: &str) -> Result<CodecSet, CodecError> {
        let mut set = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, framing) = match item.split_once(':') {
                None => (item, None),
                Some((name, "enhanced")) => (name, Some(Framing::Enhanced)),
                Some((name, "legacy-id" | "legacy")) => (name, Some(Framing::Legacy)),
                Some(_) => return Err(CodecError::UnknownName(item.to_string())),
            };
            set.push((VideoCodec::from_name(name)?, framing));
        }
        if set.is_empty() {
            return Err(CodecError::UnknownName(list.to_string()));
        }
        Ok(CodecSet(set))
    }

    pub fn accepts(&self, codec: VideoCodec, framing: Framing) -> bool {
        self.0
            .iter()
            .any(|&(c, f)| c == codec && f.is_none_or(|f| f == framing))
    }

    /// Takes this Enhanced RTMP FourCC.
    pub fn takes_fourcc(&self, fourcc: &str) -> bool {
        VideoCodec::from_fourcc(fourcc.as_bytes())
            .is_some_and(|c| self.accepts(c, Framing::Enhanced))
    }

    /// The list as given on the command line.
    pub fn describe(&self) -> String {
        self.0
            .iter()
            .map(|(c, f)| match f {
                None => c.as_str().to_string(),
                Some(f) => format!("{c}:{f}"),
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_ids_and_fourccs_round_trip() {
        for c in VideoCodec::ALL {
            assert_eq!(VideoCodec::from_fourcc(c.fourcc()), Some(c));
            assert_eq!(VideoCodec::from_name(c.as_str()), Ok(c));
            if let Some(id) = c.legacy_id() {
                assert_eq!(VideoCodec::from_legacy_id(id), Some(c));
            }
        }
        assert_eq!(VideoCodec::from_name("H265"), Ok(VideoCodec::Hevc));
        assert_eq!(VideoCodec::from_name("avc"), Ok(VideoCodec::H264));
        assert_eq!(VideoCodec::from_legacy_id(2), None);
        let set = CodecSet::parse("h264, hevc:legacy-id").unwrap();
        assert!(set.accepts(VideoCodec::H264, Framing::Enhanced));
        assert!(set.accepts(VideoCodec::Hevc, Framing::Legacy));
        assert!(!set.accepts(VideoCodec::Hevc, Framing::Enhanced));
        assert!(!set.accepts(VideoCodec::Av1, Framing::Legacy));
        assert_eq!(set.describe(), "h264,hevc:legacy-id");
        assert!(CodecSet::default().accepts(VideoCodec::Vp9, Framing::Enhanced));
        for bad in ["", " , ", "hevc:odd", "mpeg4"] {
            assert!(CodecSet::parse(bad).is_err(), "{bad:?}");
        }
        let seen = video_seen(b"\x90av01\x81").unwrap();
        assert_eq!(
            (seen.codec, seen.framing, seen.sequence_start, seen.size),
            (VideoCodec::Av1, Framing::Enhanced, true, None)
        );
        assert_eq!(video_seen(&[0x12, 0]), None);
        let err = VideoCodec::from_name("mpeg2").unwrap_err();
        assert!(
            err.to_string().starts_with("unknown codec \"mpeg2\""),
            "{err}"
        );
    }
}

/// The committed fixtures, checked against `ffmpeg -i` (ffmpeg 9.0.2, see
/// fixtures/make-fixtures.sh) as the independent reference.
#[cfg(test)]
mod fixture_tests {
    use super::*;
    use crate::flv;
    use std::path::Path;

    fn load(name: &str) -> flv::Fixture {
        flv::load(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("fixtures")
                .join(name),
        )
        .unwrap()
    }

    #[test]
    fn enhanced_fixtures_name_their_codec_and_size() {
        // (file, codec, size from its sequence header; ffmpeg -i says 640x360 for all)
        for (name, codec, size) in [
            ("hevc-360p.flv", VideoCodec::Hevc, Some((640, 360))),
            ("av1-360p.flv", VideoCodec::Av1, Some((640, 360))),
            ("vp9-360p.flv", VideoCodec::Vp9, None),
        ] {
            let f = load(name);
            assert_eq!(f.video_codec, Some(codec), "{name}");
            assert_eq!(f.video_framing, Some(Framing::Enhanced), "{name}");
            assert_eq!(f.width.zip(f.height), size, "{name}");
            let seq = f.video_sequence_header.as_ref().expect("sequence header");
            assert_eq!(
                parse_video_tag(&seq.data).unwrap().packet,
                Packet::SequenceStart
            );
            // 2 s GOP over 10 s: five key frames, first media video tag a key frame.
            assert_eq!(
                f.media.iter().filter(|t| t.is_keyframe()).count(),
                5,
                "{name}"
            );
            assert!(f.media.iter().all(|t| !t.is_sequence_header()), "{name}");
            assert!((9_900..=10_200).contains(&f.duration_ms), "{name}");
        }
    }

    #[test]
    fn legacy_rewrite_keeps_payloads_and_size() {
        for (name, id) in [("hevc-360p.flv", 12u8), ("av1-360p.flv", 13)] {
            let enhanced = load(name);
            let legacy = enhanced.with_legacy_codec_id().unwrap();
            assert_eq!(legacy.video_framing, Some(Framing::Legacy));
            let seq = &legacy.video_sequence_header.as_ref().unwrap().data;
            assert_eq!(seq[0], 0x10 | id, "{name}: key frame + codec id");
            assert_eq!(seq[1], 0, "{name}: AVCPacketType sequence header");
            assert_eq!(sequence_header_dimensions(seq), Some((640, 360)), "{name}");
            // Same pictures, same key frames; only the Metadata tag dropped.
            let videos = |f: &flv::Fixture| {
                f.media
                    .iter()
                    .filter(|t| t.kind == flv::TagKind::Video)
                    .filter_map(|t| {
                        let v = parse_video_tag(&t.data).ok()?;
                        (v.packet == Packet::CodedFrames).then(|| {
                            (
                                t.timestamp_ms,
                                v.is_keyframe(),
                                t.data.slice(v.payload_at..),
                            )
                        })
                    })
                    .collect::<Vec<_>>()
            };
            assert_eq!(videos(&enhanced), videos(&legacy), "{name}");
            assert!(
                legacy
                    .media
                    .iter()
                    .filter(|t| t.kind == flv::TagKind::Video)
                    .all(|t| t.data[0] & 0x0f == id)
            );
            assert_eq!(
                legacy.media.len() + 1,
                enhanced.media.len(),
                "{name}: colorInfo Metadata dropped"
            );
        }
        // VP9 has no legacy codec id.
        let err = load("vp9-360p.flv").with_legacy_codec_id().unwrap_err();
        assert!(
            format!("{:#}", anyhow::Error::from(err)).contains("vp9 has no legacy FLV codec id")
        );
        // H.264 fixtures are unchanged.
        let sd = flv::default_fixture();
        assert_eq!(sd.with_legacy_codec_id().unwrap().media, sd.media);
    }
}
