//! AV1 display size: the sequence header OBU in an AV1CodecConfigurationRecord
//! (AV1-ISOBMFF 2.3.3) or in a temporal unit, read as AV1 spec 5.5 up to
//! max_frame_width/height. Pure, bounded, `None` on anything malformed.

use super::bits::BitReader;

/// Bytes of the record before its configOBUs.
const RECORD_HEADER_LEN: usize = 4;
/// OBU type of a sequence header.
const OBU_SEQUENCE_HEADER: u8 = 1;

/// Display width and height from an AV1CodecConfigurationRecord.
pub fn record_dimensions(record: &[u8]) -> Option<(u32, u32)> {
    // marker (1) and version (7) = 0x81.
    if *record.first()? != 0x81 {
        return None;
    }
    obus_dimensions(record.get(RECORD_HEADER_LEN..)?)
}

/// Display size from the first sequence header OBU in a run of OBUs.
pub fn obus_dimensions(mut obus: &[u8]) -> Option<(u32, u32)> {
    while !obus.is_empty() {
        let header = *obus.first()?;
        if header & 0x80 != 0 {
            return None; // forbidden bit
        }
        let obu_type = (header >> 3) & 0x0f;
        let has_extension = header & 0x04 != 0;
        let has_size = header & 0x02 != 0;
        let mut pos = 1 + usize::from(has_extension);
        let size = if has_size {
            let (size, n) = leb128(obus.get(pos..)?)?;
            pos += n;
            usize::try_from(size).ok()?
        } else {
            obus.len().checked_sub(pos)?
        };
        let payload = obus.get(pos..pos.checked_add(size)?)?;
        if obu_type == OBU_SEQUENCE_HEADER {
            return sequence_header_dimensions(payload);
        }
        obus = &obus[pos + size..];
    }
    None
}

/// leb128() (AV1 spec 4.10.5): value and bytes read; at most 8 bytes.
fn leb128(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &b) in bytes.iter().take(8).enumerate() {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// uvlc() (AV1 spec 4.10.3).
fn uvlc(r: &mut BitReader) -> Option<u64> {
    let mut zeros = 0;
    while r.bit()? == 0 {
        zeros += 1;
        if zeros >= 32 {
            return None;
        }
    }
    Some((1u64 << zeros) - 1 + u64::from(r.bits(zeros)?))
}

/// sequence_header_obu() (AV1 spec 5.5.1) up to max_frame_height_minus_1.
fn sequence_header_dimensions(payload: &[u8]) -> Option<(u32, u32)> {
    let mut r = BitReader::new(payload);
    r.bits(3)?; // seq_profile
    r.flag()?; // still_picture
    let reduced_still_picture_header = r.flag()?;
    if reduced_still_picture_header {
        r.bits(5)?; // seq_level_idx[0]
    } else {
        let timing_info_present = r.flag()?;
        let mut decoder_model_info_present = false;
        let mut buffer_delay_length = 0;
        if timing_info_present {
            r.skip(64)?; // num_units_in_display_tick, time_scale
            if r.flag()? {
                uvlc(&mut r)?; // num_ticks_per_picture_minus_1
            }
            decoder_model_info_present = r.flag()?;
            if decoder_model_info_present {
                buffer_delay_length = r.bits(5)? + 1;
                r.skip(32 + 5 + 5)?;
            }
        }
        let initial_display_delay_present = r.flag()?;
        let operating_points = r.bits(5)? + 1;
        for _ in 0..operating_points {
            r.bits(12)?; // operating_point_idc
            let seq_level_idx = r.bits(5)?;
            if seq_level_idx > 7 {
                r.flag()?; // seq_tier
            }
            if decoder_model_info_present && r.flag()? {
                // decoder_buffer_delay, encoder_buffer_delay, low_delay_mode_flag
                r.skip(2 * buffer_delay_length as usize + 1)?;
            }
            if initial_display_delay_present && r.flag()? {
                r.bits(4)?;
            }
        }
    }
    let width_bits = r.bits(4)? + 1;
    let height_bits = r.bits(4)? + 1;
    let width = r.bits(width_bits)? + 1;
    let height = r.bits(height_bits)? + 1;
    Some((width, height))
}
