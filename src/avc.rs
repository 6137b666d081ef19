//! H.264 sequence header reading: the display size from the first SPS of an FLV
//! AVC sequence header tag. Pure, bounded, and `None` on anything malformed.

use crate::codec::bits::{BitReader, unescape};

/// FLV video tag header bytes before the AVCDecoderConfigurationRecord:
/// frame type/codec id, AVC packet type, 24-bit composition time.
const FLV_AVC_HEADER_LEN: usize = 5;

/// Largest width or height we believe (the H.264 level limits are far lower).
const MAX_DIMENSION: u64 = 1 << 16;

/// Display width and height from an FLV AVC sequence header tag body
/// (`0x17 0x00 ctime[3]` + AVCDecoderConfigurationRecord). `None` when the body
/// is not an AVC sequence header or its first SPS is malformed.
pub fn sps_dimensions(avc_sequence_header_tag_body: &[u8]) -> Option<(u32, u32)> {
    let body = avc_sequence_header_tag_body;
    let (&codec, &packet_type) = (body.first()?, body.get(1)?);
    if codec & 0x0f != 7 || packet_type != 0 {
        return None;
    }
    let sps = first_sps(body.get(FLV_AVC_HEADER_LEN..)?)?;
    parse_sps_dimensions(&unescape(sps))
}

/// The first SPS NAL unit (header byte included) of an AVCDecoderConfigurationRecord.
fn first_sps(record: &[u8]) -> Option<&[u8]> {
    // configurationVersion, profile, compatibility, level, lengthSizeMinusOne,
    // numOfSequenceParameterSets (low 5 bits), then u16 length + SPS.
    if *record.first()? != 1 || record.get(5)? & 0x1f == 0 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([*record.get(6)?, *record.get(7)?]));
    let sps = record.get(8..8 + len)?;
    // forbidden_zero_bit clear and nal_unit_type 7.
    (sps.first()? & 0x9f == 7).then_some(sps)
}

/// Profiles whose SPS carries chroma_format_idc, bit depths and scaling lists.
fn has_chroma_info(profile_idc: u32) -> bool {
    matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    )
}

fn skip_scaling_list(r: &mut BitReader, size: usize) -> Option<()> {
    let mut last_scale: i64 = 8;
    let mut next_scale: i64 = 8;
    for _ in 0..size {
        if next_scale != 0 {
            let delta = r.se()?;
            if !(-128..=127).contains(&delta) {
                return None;
            }
            next_scale = (last_scale + delta + 256) % 256;
        }
        if next_scale != 0 {
            last_scale = next_scale;
        }
    }
    Some(())
}

/// Display size from an SPS RBSP (NAL header byte first), ITU-T H.264 7.3.2.1.1.
fn parse_sps_dimensions(rbsp: &[u8]) -> Option<(u32, u32)> {
    let mut r = BitReader::new(rbsp.get(1..)?);
    let profile_idc = r.bits(8)?;
    r.bits(16)?; // constraint flags, reserved bits, level_idc
    if r.ue()? > 31 {
        return None; // seq_parameter_set_id
    }
    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = false;
    if has_chroma_info(profile_idc) {
        chroma_format_idc = r.ue()?;
        if chroma_format_idc > 3 {
            return None;
        }
        if chroma_format_idc == 3 {
            separate_colour_plane = r.flag()?;
        }
        if r.ue()? > 6 || r.ue()? > 6 {
            return None; // bit_depth_luma_minus8, bit_depth_chroma_minus8
        }
        r.flag()?; // qpprime_y_zero_transform_bypass_flag
        if r.flag()? {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.flag()? {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    if r.ue()? > 12 {
        return None; // log2_max_frame_num_minus4
    }
    match r.ue()? {
        0 => {
            if r.ue()? > 12 {
                return None; // log2_max_pic_order_cnt_lsb_minus4
            }
        }
        1 => {
            r.flag()?; // delta_pic_order_always_zero_flag
            r.se()?; // offset_for_non_ref_pic
            r.se()?; // offset_for_top_to_bottom_field
            let cycle = r.ue()?;
            if cycle > 255 {
                return None;
            }
            for _ in 0..cycle {
                r.se()?; // offset_for_ref_frame
            }
        }
        2 => {}
        _ => return None,
    }
    r.ue()?; // max_num_ref_frames
    r.flag()?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = r.ue()? + 1;
    let height_map_units = r.ue()? + 1;
    let frame_mbs_only = r.flag()?;
    if !frame_mbs_only {
        r.flag()?; // mb_adaptive_frame_field_flag
    }
    r.flag()?; // direct_8x8_inference_flag
    let (mut left, mut right, mut top, mut bottom) = (0, 0, 0, 0);
    if r.flag()? {
        (left, right, top, bottom) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
    }

    let field_factor = if frame_mbs_only { 1 } else { 2 };
    let chroma_array_type = if separate_colour_plane {
        0
    } else {
        chroma_format_idc
    };
    let (crop_x, crop_y) = match chroma_array_type {
        0 => (1, field_factor),
        1 => (2, 2 * field_factor),
        2 => (2, field_factor),
        _ => (1, field_factor),
    };
    let coded_width = width_mbs.checked_mul(16)?;
    let coded_height = height_map_units.checked_mul(16 * field_factor)?;
    if coded_width > MAX_DIMENSION || coded_height > MAX_DIMENSION {
        return None;
    }
    let width = coded_width.checked_sub(left.checked_add(right)?.checked_mul(crop_x)?)?;
    let height = coded_height.checked_sub(top.checked_add(bottom)?.checked_mul(crop_y)?)?;
    if width == 0 || height == 0 {
        return None;
    }
    Some((u32::try_from(width).ok()?, u32::try_from(height).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flv;
    use std::path::Path;

    /// Wraps an SPS NAL unit (header byte included, still escaped) in an FLV
    /// AVC sequence header tag body with one SPS and one dummy PPS.
    fn tag_body(sps: &[u8]) -> Vec<u8> {
        let mut out = vec![0x17, 0, 0, 0, 0, 1];
        out.extend_from_slice(sps.get(1..4).unwrap_or(&[0x64, 0, 0x1e]));
        out.push(0xff);
        out.push(0xe1);
        out.extend_from_slice(&(sps.len() as u16).to_be_bytes());
        out.extend_from_slice(sps);
        out.extend_from_slice(&[1, 0, 4, 0x68, 0xeb, 0xe3, 0xcb]);
        out
    }

    fn dims_of_hex(hex_sps: &str) -> Option<(u32, u32)> {
        sps_dimensions(&tag_body(&hex::decode(hex_sps).unwrap()))
    }

    fn fixture_header(name: &str) -> Vec<u8> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(name);
        let fixture = flv::load(&path).unwrap();
        fixture.video_sequence_header.unwrap().data.to_vec()
    }

    #[test]
    fn committed_fixtures() {
        assert_eq!(
            sps_dimensions(&fixture_header("sd-360p.flv")),
            Some((640, 360))
        );
        assert_eq!(
            sps_dimensions(&fixture_header("hd-720p.flv")),
            Some((1280, 720))
        );
        assert_eq!(
            sps_dimensions(&fixture_header("low-240p.flv")),
            Some((426, 240))
        );
    }

    /// SPS NAL units written by libx264 (ffmpeg 5.1, `-f h264`), checked with ffprobe.
    #[test]
    fn x264_profiles() {
        let cases = [
            // Constrained Baseline 176x144 (no chroma info, no cropping).
            ("6742c00bd902c4ec0440000003004000000c83c50a92", (176, 144)),
            // High, interlaced 1920x1080: field pairs, crop unit 4 rows.
            (
                "67640028acd94078044fde0220000003002000000643e2c5b2c0",
                (1920, 1080),
            ),
            // High 4:4:4 Predictive 10-bit 1366x766: crop unit 1.
            (
                "67f4002090d9b280ac0c3c5de022000003000200000300641e30632c",
                (1366, 766),
            ),
            // High 4:2:2 350x202: crop unit 2 across, 1 down.
            (
                "677a000dbcd94161bea7c044000003000400000300c83c50a658",
                (350, 202),
            ),
            // High, monochrome 200x150 (chroma_format_idc 0).
            (
                "6764000cf3650d15e262f016c80000030008000003019078a14cb0",
                (200, 150),
            ),
        ];
        for (hex_sps, dims) in cases {
            assert_eq!(dims_of_hex(hex_sps), Some(dims), "{hex_sps}");
        }
    }

    /// Writes bits MSB first, with exp-Golomb codes, to build SPSes by hand.
    #[derive(Default)]
    struct BitWriter {
        bytes: Vec<u8>,
        bits: usize,
    }

    impl BitWriter {
        fn bit(&mut self, b: u32) -> &mut Self {
            if self.bits.is_multiple_of(8) {
                self.bytes.push(0);
            }
            if b != 0 {
                *self.bytes.last_mut().unwrap() |= 0x80 >> (self.bits % 8);
            }
            self.bits += 1;
            self
        }
        fn bits(&mut self, n: u32, v: u32) -> &mut Self {
            for i in (0..n).rev() {
                self.bit((v >> i) & 1);
            }
            self
        }
        fn ue(&mut self, v: u32) -> &mut Self {
            let v = v + 1;
            let len = 32 - v.leading_zeros();
            self.bits(len - 1, 0).bits(len, v)
        }
        fn se(&mut self, v: i32) -> &mut Self {
            let k = if v > 0 { 2 * v - 1 } else { -2 * v };
            self.ue(k as u32)
        }
        /// NAL header + RBSP trailing bits, with emulation prevention added.
        fn nal(&mut self) -> Vec<u8> {
            self.bit(1);
            let mut out = vec![0x67];
            let mut zeros = 0;
            for &b in &self.bytes {
                if zeros >= 2 && b <= 3 {
                    out.push(3);
                    zeros = 0;
                }
                zeros = if b == 0 { zeros + 1 } else { 0 };
                out.push(b);
            }
            out
        }
    }

    #[test]
    fn scaling_lists_and_poc_type_1() {
        let mut w = BitWriter::default();
        w.bits(8, 100).bits(8, 0).bits(8, 40).ue(0); // High, level 4.0, sps id 0
        w.ue(1).ue(0).ue(0).bit(0); // 4:2:0, 8-bit, no bypass
        w.bit(1); // seq_scaling_matrix_present_flag
        // List 0 (4x4): 16 explicit deltas.
        w.bit(1);
        for j in 0..16 {
            w.se(if j % 2 == 0 { 5 } else { -3 });
        }
        // List 1: absent. List 2: "use default" (first delta makes nextScale 0).
        w.bit(0).bit(1).se(-8);
        for _ in 3..6 {
            w.bit(0);
        }
        // List 6 (8x8): 64 deltas with big jumps (wrap around 256).
        w.bit(1);
        for j in 0..64 {
            w.se(if j % 2 == 0 { 127 } else { -100 });
        }
        w.bit(0); // list 7
        w.ue(0); // log2_max_frame_num_minus4
        w.ue(1).bit(0).se(-2).se(3).ue(3).se(1).se(-1).se(7); // poc type 1
        w.ue(4).bit(0); // max_num_ref_frames, gaps
        w.ue(119).ue(67).bit(1).bit(1); // 1920x1088 progressive, direct_8x8
        w.bit(1).ue(0).ue(0).ue(0).ue(4); // crop 8 rows (unit 2)
        let sps = w.nal();
        assert_eq!(sps_dimensions(&tag_body(&sps)), Some((1920, 1080)));
        // The same with poc type 2 and an 4:4:4 separate-colour-plane stream.
        let mut w = BitWriter::default();
        w.bits(8, 244).bits(8, 0).bits(8, 40).ue(0);
        w.ue(3).bit(1).ue(2).ue(2).bit(0).bit(0); // 4:4:4, separate planes, 10-bit
        w.ue(0).ue(2).ue(1).bit(0); // poc type 2
        w.ue(39).ue(22).bit(1).bit(1); // 640x368
        w.bit(1).ue(1).ue(1).ue(0).ue(8); // crop 2 columns, 8 rows (unit 1)
        assert_eq!(sps_dimensions(&tag_body(&w.nal())), Some((638, 360)));
    }

    #[test]
    fn emulation_prevention_is_removed() {
        assert_eq!(
            unescape(&[0, 0, 3, 1, 0, 0, 3, 0, 3]),
            vec![0, 0, 1, 0, 0, 0, 3]
        );
        assert_eq!(unescape(&[0, 0, 0, 3, 3]), vec![0, 0, 0, 3]);
    }

    #[test]
    fn malformed_records_are_none() {
        let good = fixture_header("sd-360p.flv");
        assert!(sps_dimensions(&good).is_some());
        let with = |i: usize, v: u8| {
            let mut b = good.clone();
            b[i] = v;
            b
        };
        assert_eq!(sps_dimensions(&[]), None);
        assert_eq!(sps_dimensions(&[0x17, 0]), None);
        assert_eq!(sps_dimensions(&with(0, 0x12)), None, "not AVC");
        assert_eq!(sps_dimensions(&with(1, 1)), None, "not a sequence header");
        assert_eq!(sps_dimensions(&with(5, 0)), None, "configurationVersion 0");
        assert_eq!(sps_dimensions(&with(10, 0xe0)), None, "no SPS");
        assert_eq!(
            sps_dimensions(&with(12, 0xff)),
            None,
            "SPS length past the end"
        );
        assert_eq!(sps_dimensions(&with(13, 0x68)), None, "a PPS, not an SPS");
        assert_eq!(sps_dimensions(&good[..20]), None, "truncated SPS");
        // All-zero exp-Golomb run: more than 32 leading zeros.
        let mut zeros = vec![0x67, 0x64, 0, 0x1e];
        zeros.extend_from_slice(&[0; 16]);
        assert_eq!(sps_dimensions(&tag_body(&zeros)), None);
        // Cropping more than the picture.
        let mut w = BitWriter::default();
        w.bits(8, 66)
            .bits(8, 0)
            .bits(8, 30)
            .ue(0)
            .ue(0)
            .ue(2)
            .ue(1)
            .bit(0);
        w.ue(0).ue(0).bit(1).bit(1).bit(1).ue(0).ue(0).ue(4).ue(4); // 16x16, crop 16 rows
        assert_eq!(sps_dimensions(&tag_body(&w.nal())), None);
        // One row less cropped is a valid 16x2 picture.
        let mut w = BitWriter::default();
        w.bits(8, 66)
            .bits(8, 0)
            .bits(8, 30)
            .ue(0)
            .ue(0)
            .ue(2)
            .ue(1)
            .bit(0);
        w.ue(0).ue(0).bit(1).bit(1).bit(1).ue(0).ue(0).ue(3).ue(4);
        assert_eq!(sps_dimensions(&tag_body(&w.nal())), Some((16, 2)));
    }

    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn never_panics_on_prefixes_mutations_or_noise() {
        let good = fixture_header("hd-720p.flv");
        for n in 0..=good.len() {
            let _ = sps_dimensions(&good[..n]);
        }
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..10_000 {
            // Random bytes behind a valid prefix, so the SPS parser is reached.
            let len = (rng.next() % 64) as usize;
            let mut noise: Vec<u8> = vec![0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1e, 0xff, 0xe1];
            noise.extend_from_slice(&(len as u16 + 1).to_be_bytes());
            noise.push(0x67);
            noise.extend((0..len).map(|_| rng.next() as u8));
            let _ = sps_dimensions(&noise);
            // Pure noise.
            let pure: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let _ = sps_dimensions(&pure);
            // The real record with a few bytes changed.
            let mut mutated = good.clone();
            for _ in 0..1 + rng.next() % 4 {
                let i = (rng.next() as usize) % mutated.len();
                mutated[i] = rng.next() as u8;
            }
            let _ = sps_dimensions(&mutated);
        }
    }
}
