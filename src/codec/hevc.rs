//! HEVC display size: the first SPS of an HEVCDecoderConfigurationRecord
//! (ISO/IEC 14496-15 8.3.3), read as ITU-T H.265 7.3.2.2 up to the
//! conformance window. Pure, bounded, `None` on anything malformed.

use super::bits::{BitReader, unescape};

/// Bytes of the record before `numOfArrays`.
const RECORD_HEADER_LEN: usize = 22;
/// NAL unit type of a sequence parameter set.
const NAL_SPS: u8 = 33;
/// Largest width or height we believe.
const MAX_DIMENSION: u64 = 1 << 16;

/// Display width and height from an HEVCDecoderConfigurationRecord.
pub fn record_dimensions(record: &[u8]) -> Option<(u32, u32)> {
    sps_dimensions(&unescape(first_sps(record)?))
}

/// The first SPS NAL unit (2-byte header included) in the record's arrays.
fn first_sps(record: &[u8]) -> Option<&[u8]> {
    if *record.first()? != 1 {
        return None; // configurationVersion
    }
    let arrays = *record.get(RECORD_HEADER_LEN)?;
    let mut pos = RECORD_HEADER_LEN + 1;
    for _ in 0..arrays {
        let nal_type = record.get(pos)? & 0x3f;
        let count = u16::from_be_bytes([*record.get(pos + 1)?, *record.get(pos + 2)?]);
        pos += 3;
        for _ in 0..count {
            let len = usize::from(u16::from_be_bytes([
                *record.get(pos)?,
                *record.get(pos + 1)?,
            ]));
            let nal = record.get(pos + 2..pos + 2 + len)?;
            if nal_type == NAL_SPS && (nal.first()? >> 1) & 0x3f == NAL_SPS {
                return Some(nal);
            }
            pos += 2 + len;
        }
    }
    None
}

/// profile_tier_level(1, max_sub_layers_minus1), H.265 7.3.3.
fn skip_profile_tier_level(r: &mut BitReader, max_sub_layers_minus1: u32) -> Option<()> {
    // General profile space .. general_level_idc: 2+1+5+32+4+43+1+8 bits.
    r.skip(96)?;
    let mut profile_present = [false; 8];
    let mut level_present = [false; 8];
    let n = max_sub_layers_minus1 as usize;
    for i in 0..n {
        profile_present[i] = r.flag()?;
        level_present[i] = r.flag()?;
    }
    if n > 0 {
        r.skip(2 * (8 - n))?; // reserved_zero_2bits
    }
    for i in 0..n {
        if profile_present[i] {
            r.skip(88)?;
        }
        if level_present[i] {
            r.skip(8)?;
        }
    }
    Some(())
}

/// Display size from an SPS RBSP (2-byte NAL header first).
fn sps_dimensions(rbsp: &[u8]) -> Option<(u32, u32)> {
    let mut r = BitReader::new(rbsp.get(2..)?);
    r.bits(4)?; // sps_video_parameter_set_id
    let max_sub_layers_minus1 = r.bits(3)?;
    if max_sub_layers_minus1 > 6 {
        return None;
    }
    r.flag()?; // sps_temporal_id_nesting_flag
    skip_profile_tier_level(&mut r, max_sub_layers_minus1)?;
    if r.ue()? > 15 {
        return None; // sps_seq_parameter_set_id
    }
    let chroma_format_idc = r.ue()?;
    if chroma_format_idc > 3 {
        return None;
    }
    let separate_colour_plane = chroma_format_idc == 3 && r.flag()?;
    let width = r.ue()?;
    let height = r.ue()?;
    let (mut left, mut right, mut top, mut bottom) = (0, 0, 0, 0);
    if r.flag()? {
        (left, right, top, bottom) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
    }
    let chroma = if separate_colour_plane {
        0
    } else {
        chroma_format_idc
    };
    // SubWidthC, SubHeightC (H.265 table 6-1).
    let (sub_w, sub_h) = match chroma {
        1 => (2, 2),
        2 => (2, 1),
        _ => (1, 1),
    };
    let w = width.checked_sub(sub_w * left.checked_add(right)?)?;
    let h = height.checked_sub(sub_h * top.checked_add(bottom)?)?;
    if w == 0 || h == 0 || w > MAX_DIMENSION || h > MAX_DIMENSION {
        return None;
    }
    Some((w as u32, h as u32))
}
