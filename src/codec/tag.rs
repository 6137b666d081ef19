//! The video tag header of both framings: the legacy FLV header (frame type,
//! codec id, AVCPacketType, composition time) and Enhanced RTMP's
//! ExVideoTagHeader (IsExHeader, frame type, VideoPacketType, ModEx prefixes,
//! Multitrack, FourCC). Reads only the header; the payload is left in place.

use super::{CodecError, Framing, VideoCodec};

/// VideoPacketType values (Enhanced RTMP v1 and v2).
const PT_SEQUENCE_START: u8 = 0;
const PT_CODED_FRAMES: u8 = 1;
const PT_SEQUENCE_END: u8 = 2;
const PT_CODED_FRAMES_X: u8 = 3;
const PT_METADATA: u8 = 4;
const PT_MULTITRACK: u8 = 6;
const PT_MOD_EX: u8 = 7;

/// Frame type 5: a video info/command frame (carries no picture).
const FRAME_TYPE_COMMAND: u8 = 5;

/// ModEx prefixes a tag may stack before the real packet type; more is hostile.
const MAX_MOD_EX: usize = 8;

/// AvMultitrackType OneTrack (1 ManyTracks and 2 ManyTracksManyCodecs add a
/// 24-bit size per track).
const MULTITRACK_ONE_TRACK: u8 = 0;

/// What a video tag carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packet {
    /// The decoder configuration record (AVC packet type 0 / SequenceStart).
    SequenceStart,
    /// Coded pictures (AVC packet type 1 / CodedFrames / CodedFramesX).
    CodedFrames,
    /// End of sequence (AVC packet type 2 / SequenceEnd).
    SequenceEnd,
    /// Enhanced RTMP Metadata (colour info as AMF).
    Metadata,
    /// A packet type pushprobe does not interpret (MPEG2TSSequenceStart,
    /// reserved values).
    Other(u8),
}

/// A parsed video tag header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoTag {
    pub codec: VideoCodec,
    pub framing: Framing,
    /// 1 key frame, 2 inter frame, 5 command/info frame.
    pub frame_type: u8,
    pub packet: Packet,
    /// The tag is a v2 Multitrack packet (`payload_at` is the first track's).
    pub multitrack: bool,
    /// Composition time offset (SI24) in ms; 0 where the framing has none.
    pub composition_ms: i32,
    /// Offset in the tag body of the payload (record, NALUs or OBUs).
    pub payload_at: usize,
}

impl VideoTag {
    pub fn is_keyframe(&self) -> bool {
        self.frame_type == 1
    }
}

struct Reader<'a> {
    body: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], CodecError> {
        let end = self.pos + n;
        let bytes = self.body.get(self.pos..end).ok_or(CodecError::Truncated {
            what,
            need: end,
            have: self.body.len(),
        })?;
        self.pos = end;
        Ok(bytes)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, CodecError> {
        Ok(self.take(1, what)?[0])
    }

    fn si24(&mut self, what: &'static str) -> Result<i32, CodecError> {
        let b = self.take(3, what)?;
        // Sign-extend the 24-bit value.
        Ok(i32::from_be_bytes([b[0], b[1], b[2], 0]) >> 8)
    }

    fn fourcc(&mut self) -> Result<VideoCodec, CodecError> {
        let f = self.take(4, "FourCC")?;
        VideoCodec::from_fourcc(f)
            .ok_or_else(|| CodecError::UnknownFourCc(String::from_utf8_lossy(f).into_owned()))
    }
}

/// Parses the header of an FLV/RTMP video tag body of either framing.
pub fn parse_video_tag(body: &[u8]) -> Result<VideoTag, CodecError> {
    let mut r = Reader { body, pos: 0 };
    let first = r.u8("frame type")?;
    if first & 0x80 == 0 {
        parse_legacy(first, &mut r)
    } else {
        parse_enhanced(first, &mut r)
    }
}

fn parse_legacy(first: u8, r: &mut Reader) -> Result<VideoTag, CodecError> {
    let id = first & 0x0f;
    let codec = VideoCodec::from_legacy_id(id).ok_or(CodecError::UnknownCodecId(id))?;
    let packet_type = r.u8("AVCPacketType")?;
    let composition_ms = r.si24("composition time")?;
    let packet = match packet_type {
        0 => Packet::SequenceStart,
        1 => Packet::CodedFrames,
        2 => Packet::SequenceEnd,
        other => Packet::Other(other),
    };
    Ok(VideoTag {
        codec,
        framing: Framing::Legacy,
        frame_type: first >> 4,
        packet,
        multitrack: false,
        composition_ms,
        payload_at: r.pos,
    })
}

fn parse_enhanced(first: u8, r: &mut Reader) -> Result<VideoTag, CodecError> {
    let frame_type = (first >> 4) & 0x07;
    let mut packet_type = first & 0x0f;
    // v2 ModEx: size-prefixed modifier data, then the next packet type.
    let mut mod_ex = 0;
    while packet_type == PT_MOD_EX {
        mod_ex += 1;
        if mod_ex > MAX_MOD_EX {
            return Err(CodecError::Truncated {
                what: "ModEx chain (too long)",
                need: r.pos + 1,
                have: r.body.len(),
            });
        }
        let mut size = usize::from(r.u8("ModEx size")?) + 1;
        if size == 256 {
            let b = r.take(2, "ModEx size")?;
            size = usize::from(u16::from_be_bytes([b[0], b[1]])) + 1;
        }
        r.take(size, "ModEx data")?;
        packet_type = r.u8("ModEx packet type")? & 0x0f;
    }
    if packet_type != PT_METADATA && frame_type == FRAME_TYPE_COMMAND {
        let command = r.u8("video command")?;
        return Err(CodecError::CommandFrame(command));
    }
    let mut multitrack = false;
    let codec = if packet_type == PT_MULTITRACK {
        multitrack = true;
        let b = r.u8("multitrack type")?;
        let track_type = b >> 4;
        packet_type = b & 0x0f;
        let codec = r.fourcc()?;
        // ManyTracksManyCodecs puts the FourCC before each track instead:
        // the one just read is the first track's.
        r.u8("track id")?;
        if track_type != MULTITRACK_ONE_TRACK {
            r.take(3, "track size")?;
        }
        codec
    } else {
        r.fourcc()?
    };
    let (packet, has_cts) = match packet_type {
        PT_SEQUENCE_START => (Packet::SequenceStart, false),
        PT_CODED_FRAMES => (Packet::CodedFrames, codec.has_composition_time()),
        PT_CODED_FRAMES_X => (Packet::CodedFrames, false),
        PT_SEQUENCE_END => (Packet::SequenceEnd, false),
        PT_METADATA => (Packet::Metadata, false),
        other => (Packet::Other(other), false),
    };
    let composition_ms = if has_cts {
        r.si24("composition time")?
    } else {
        0
    };
    Ok(VideoTag {
        codec,
        framing: Framing::Enhanced,
        frame_type,
        packet,
        multitrack,
        composition_ms,
        payload_at: r.pos,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_avc_and_hevc_headers() {
        let t = parse_video_tag(&[0x17, 0, 0, 0, 0, 1, 0x64]).unwrap();
        assert_eq!(
            (t.codec, t.framing, t.packet, t.payload_at),
            (VideoCodec::H264, Framing::Legacy, Packet::SequenceStart, 5)
        );
        assert!(t.is_keyframe());
        // Codec id 12, inter frame, NALUs, composition time -2 (0xfffffe).
        let t = parse_video_tag(&[0x2c, 1, 0xff, 0xff, 0xfe, 0, 0, 0, 1]).unwrap();
        assert_eq!(
            (t.codec, t.packet, t.composition_ms),
            (VideoCodec::Hevc, Packet::CodedFrames, -2)
        );
        assert!(!t.is_keyframe());
        assert_eq!(
            parse_video_tag(&[0x1d, 2, 0, 0, 0]).unwrap().packet,
            Packet::SequenceEnd
        );
        assert_eq!(
            parse_video_tag(&[0x12, 0]),
            Err(CodecError::UnknownCodecId(2))
        );
    }

    #[test]
    fn enhanced_packet_types() {
        // 0x90: ex header, key frame, SequenceStart.
        let t = parse_video_tag(b"\x90hvc1\x01").unwrap();
        assert_eq!(
            (t.codec, t.framing, t.packet, t.payload_at),
            (
                VideoCodec::Hevc,
                Framing::Enhanced,
                Packet::SequenceStart,
                5
            )
        );
        // CodedFrames: hvc1 carries SI24 composition time, av01 does not.
        let t = parse_video_tag(b"\x91hvc1\x00\x00\x21\xaa").unwrap();
        assert_eq!(
            (t.packet, t.composition_ms, t.payload_at),
            (Packet::CodedFrames, 33, 8)
        );
        let t = parse_video_tag(b"\xa1av01\x12\x00").unwrap();
        assert_eq!(
            (t.codec, t.packet, t.payload_at, t.frame_type),
            (VideoCodec::Av1, Packet::CodedFrames, 5, 2)
        );
        // CodedFramesX: no composition time.
        let t = parse_video_tag(b"\x93hvc1\xaa").unwrap();
        assert_eq!(
            (t.packet, t.composition_ms, t.payload_at),
            (Packet::CodedFrames, 0, 5)
        );
        assert_eq!(
            parse_video_tag(b"\x92vp09").unwrap().packet,
            Packet::SequenceEnd
        );
        assert_eq!(
            parse_video_tag(b"\xd4vp09\x02").unwrap().packet,
            Packet::Metadata
        );
        assert_eq!(
            parse_video_tag(b"\x95av01").unwrap().packet,
            Packet::Other(5)
        );
    }

    #[test]
    fn enhanced_v2_mod_ex_multitrack_and_command() {
        // ModEx (7): one byte of data (size 0 + 1), then type nibble 0 and
        // packet type CodedFramesX.
        let t = parse_video_tag(b"\x97\x00\xff\x03av01\x12").unwrap();
        assert_eq!(
            (t.codec, t.packet, t.payload_at),
            (VideoCodec::Av1, Packet::CodedFrames, 8)
        );
        // Multitrack (6), OneTrack + SequenceStart, FourCC, track id 0.
        let t = parse_video_tag(b"\x96\x00hvc1\x00\x01").unwrap();
        assert_eq!(
            (t.codec, t.packet, t.multitrack, t.payload_at),
            (VideoCodec::Hevc, Packet::SequenceStart, true, 7)
        );
        // ManyTracks + CodedFrames: FourCC, track id, 24-bit track size, cts.
        let t = parse_video_tag(b"\x96\x11hvc1\x01\x00\x00\x04\x00\x00\x00\xaa").unwrap();
        assert_eq!((t.packet, t.payload_at), (Packet::CodedFrames, 13));
        // A command frame (type 5, not Metadata) names no codec.
        assert_eq!(
            parse_video_tag(b"\xd0\x01"),
            Err(CodecError::CommandFrame(1))
        );
        // ModEx chains are bounded.
        let chain: Vec<u8> = std::iter::once(0x97)
            .chain([0u8, 0, 0x07].repeat(20))
            .collect();
        assert!(matches!(
            parse_video_tag(&chain),
            Err(CodecError::Truncated { .. })
        ));
    }

    #[test]
    fn truncated_and_unknown_headers_are_errors() {
        assert!(matches!(
            parse_video_tag(&[]),
            Err(CodecError::Truncated { .. })
        ));
        assert!(matches!(
            parse_video_tag(b"\x90hv"),
            Err(CodecError::Truncated {
                need: 5,
                have: 3,
                ..
            })
        ));
        assert!(matches!(
            parse_video_tag(b"\x91hvc1\x00"),
            Err(CodecError::Truncated { .. })
        ));
        assert!(matches!(
            parse_video_tag(&[0x17, 1, 0]),
            Err(CodecError::Truncated { .. })
        ));
        let err = parse_video_tag(b"\x90mp4v").unwrap_err();
        assert_eq!(err, CodecError::UnknownFourCc("mp4v".into()));
        assert!(err.to_string().contains("\"mp4v\""));
    }
}
