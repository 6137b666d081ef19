//! Enhanced RTMP video bodies rewritten to the legacy FLV codec id framing of
//! Chinese CDNs (12 HEVC, 13 AV1): frame type and codec id, AVCPacketType,
//! SI24 composition time, then the same record, NALUs or OBUs. Done once per
//! fixture when the media plan is built, never per message.

use super::{CodecError, Framing, Packet, parse_video_tag};

/// The body to send for `body` under legacy framing: `Ok(None)` for tags with
/// no legacy equivalent (Enhanced RTMP Metadata), the body unchanged when it
/// is already legacy.
pub fn to_legacy(body: &[u8]) -> Result<Option<Vec<u8>>, CodecError> {
    let tag = parse_video_tag(body)?;
    if tag.framing == Framing::Legacy {
        return Ok(Some(body.to_vec()));
    }
    if tag.multitrack {
        return Err(CodecError::MultitrackLegacy);
    }
    let id = tag
        .codec
        .legacy_id()
        .ok_or(CodecError::NoLegacyId(tag.codec))?;
    let packet_type = match tag.packet {
        Packet::SequenceStart => 0,
        Packet::CodedFrames => 1,
        Packet::SequenceEnd => 2,
        Packet::Metadata | Packet::Other(_) => return Ok(None),
    };
    let payload = &body[tag.payload_at..];
    let mut out = Vec::with_capacity(5 + payload.len());
    out.push((tag.frame_type << 4) | id);
    out.push(packet_type);
    out.extend_from_slice(&tag.composition_ms.to_be_bytes()[1..]);
    out.extend_from_slice(payload);
    Ok(Some(out))
}
