//! Per-frame latency stamps: an H.264 SEI user_data_unregistered NAL carrying a publisher id, a frame sequence and the send time; pure.
//!
//! # Wire form
//! One SEI NAL (nal_unit_type 6) holding one `user_data_unregistered`
//! message (payload type 5):
//!
//! ```text
//! 06 05 SIZE  UUID(16)  publisher u32  sequence u64  sent_unix_us u64  pad  80
//! ```
//!
//! Fields are big-endian. Emulation prevention is applied to the message
//! (`00 00 0x` with x <= 3 becomes `00 00 03 0x`), and `pad` (0xFF bytes,
//! which never need escaping) shrinks by the number of escape bytes so that
//! the NAL is always [`NAL_LEN`] bytes long. A fixed size lets the media fast
//! path reserve the slot once per fixture and write only these bytes per
//! connection. `SIZE` counts the unescaped payload (UUID + fields + pad), as
//! H.264 7.3.2.3.1 says; decoders skip a UUID they do not know.

/// pushprobe's UUID for its stamps (no two zero bytes in a row, so it never
/// needs escaping).
pub const UUID: [u8; 16] = [
    0x70, 0x75, 0x73, 0x68, 0x70, 0x72, 0x6f, 0x62, 0x65, 0x2d, 0x53, 0x45, 0x49, 0x2d, 0x76, 0x31,
]; // "pushprobe-SEI-v1"

const FIELDS: usize = 4 + 8 + 8;
/// The most escape bytes the fields can need: one per two bytes.
const MAX_ESCAPES: usize = FIELDS / 2;
const NAL_SEI: u8 = 6;
const PAYLOAD_USER_DATA_UNREGISTERED: u8 = 5;

/// Length of a stamp NAL (without the AVCC length prefix).
pub const NAL_LEN: usize = 3 + UUID.len() + FIELDS + MAX_ESCAPES + 1;

/// What one stamp says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Which publisher sent the frame (a load run numbers them).
    pub publisher: u32,
    /// The publisher's video frame counter, from 0.
    pub sequence: u64,
    /// Wall-clock send time, unix microseconds.
    pub sent_unix_us: u64,
}

/// The stamp NAL for `stamp`, [`NAL_LEN`] bytes, written into `out`.
pub fn write_nal(stamp: &Stamp, out: &mut [u8; NAL_LEN]) {
    let mut fields = [0u8; FIELDS];
    fields[..4].copy_from_slice(&stamp.publisher.to_be_bytes());
    fields[4..12].copy_from_slice(&stamp.sequence.to_be_bytes());
    fields[12..].copy_from_slice(&stamp.sent_unix_us.to_be_bytes());
    // The bytes before the fields end in UUID[15] (not zero), so escaping
    // starts with no zeros pending.
    let mut escaped = [0u8; FIELDS + MAX_ESCAPES];
    let mut n = 0;
    let mut zeros = 0;
    for &b in &fields {
        if zeros >= 2 && b <= 3 {
            escaped[n] = 3;
            n += 1;
            zeros = 0;
        }
        escaped[n] = b;
        n += 1;
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
    let escapes = n - FIELDS;
    let pad = MAX_ESCAPES - escapes;
    out[0] = NAL_SEI;
    out[1] = PAYLOAD_USER_DATA_UNREGISTERED;
    out[2] = (UUID.len() + FIELDS + pad) as u8;
    out[3..19].copy_from_slice(&UUID);
    out[19..19 + n].copy_from_slice(&escaped[..n]);
    // After the fields: pad bytes 0xFF. If the fields end in two zeros, the
    // next byte (0xFF) is above 3: no escape needed there either.
    for b in &mut out[19 + n..NAL_LEN - 1] {
        *b = 0xFF;
    }
    out[NAL_LEN - 1] = 0x80; // rbsp_trailing_bits
}

/// The stamp NAL as a new vector (tests and tools; the fast path uses
/// [`write_nal`] into a reused buffer).
pub fn nal(stamp: &Stamp) -> Vec<u8> {
    let mut out = [0u8; NAL_LEN];
    write_nal(stamp, &mut out);
    out.to_vec()
}

/// The stamp in one NAL (header byte included), if it is one of ours.
/// Walks every SEI message in the NAL, so a stamp after another message
/// (a relay may add its own) is found too. Reads the RBSP as it goes
/// (emulation prevention removed on the fly): no copy of the NAL, which a
/// player does for every video frame.
pub fn parse_nal(nal: &[u8]) -> Option<Stamp> {
    if nal.first().map(|b| b & 0x1f) != Some(NAL_SEI) {
        return None;
    }
    let mut rbsp = Rbsp {
        data: &nal[1..],
        pos: 0,
        zeros: 0,
    };
    // sei_message(): ff-coded type and size, then the payload.
    loop {
        let ty = ff_coded(&mut rbsp)?;
        let size = ff_coded(&mut rbsp)?;
        let mut skip = size;
        if ty == PAYLOAD_USER_DATA_UNREGISTERED as usize && size >= UUID.len() + FIELDS {
            let mut head = [0u8; UUID.len() + FIELDS];
            for b in &mut head {
                *b = rbsp.next()?;
            }
            if head[..16] == UUID {
                let f = &head[16..];
                return Some(Stamp {
                    publisher: u32::from_be_bytes(f[..4].try_into().ok()?),
                    sequence: u64::from_be_bytes(f[4..12].try_into().ok()?),
                    sent_unix_us: u64::from_be_bytes(f[12..20].try_into().ok()?),
                });
            }
            skip -= head.len();
        }
        for _ in 0..skip {
            rbsp.next()?;
        }
        // rbsp_trailing_bits: no more messages.
        if rbsp.peek()? == 0x80 {
            return None;
        }
    }
}

/// A NAL's payload bytes with emulation prevention (`00 00 03`) removed,
/// as they are read.
struct Rbsp<'a> {
    data: &'a [u8],
    pos: usize,
    /// Zero bytes just read (up to 2).
    zeros: u8,
}

impl Rbsp<'_> {
    /// The next byte without taking it (an escape byte ahead is skipped).
    fn peek(&self) -> Option<u8> {
        let b = *self.data.get(self.pos)?;
        if self.zeros >= 2 && b == 3 {
            return self.data.get(self.pos + 1).copied();
        }
        Some(b)
    }
}

impl Iterator for Rbsp<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        loop {
            let b = *self.data.get(self.pos)?;
            self.pos += 1;
            if self.zeros >= 2 && b == 3 {
                self.zeros = 0;
                continue;
            }
            self.zeros = if b == 0 { (self.zeros + 1).min(2) } else { 0 };
            return Some(b);
        }
    }
}

/// One ff-coded SEI value (a run of 0xFF bytes, each adding 255, then the rest).
fn ff_coded(rbsp: &mut Rbsp<'_>) -> Option<usize> {
    let mut v = 0usize;
    loop {
        let b = rbsp.next()?;
        v += b as usize;
        if b != 0xFF {
            return Some(v);
        }
    }
}

/// The stamp in an AVCC sample (NALUs each behind a big-endian length of
/// `length_size` bytes, 1 to 4; FLV's AVC NALU packets are this after their
/// 5-byte header). Stops at the first malformed length.
pub fn find_in_avcc(sample: &[u8], length_size: usize) -> Option<Stamp> {
    if !(1..=4).contains(&length_size) {
        return None;
    }
    let mut p = sample;
    while p.len() > length_size {
        let len = p[..length_size]
            .iter()
            .fold(0usize, |a, &b| (a << 8) | b as usize);
        let nal = p.get(length_size..length_size + len)?;
        if let Some(s) = parse_nal(nal) {
            return Some(s);
        }
        p = &p[length_size + len..];
    }
    None
}

/// The stamp in Annex B bytes (start codes `00 00 01` / `00 00 00 01`), as an
/// MPEG-TS PES carries H.264.
pub fn find_in_annexb(data: &[u8]) -> Option<Stamp> {
    crate::ts::demux::annexb_nals(data).find_map(parse_nal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::bits::unescape;

    fn samples() -> Vec<Stamp> {
        let mut v = vec![
            Stamp {
                publisher: 0,
                sequence: 0,
                sent_unix_us: 0,
            },
            Stamp {
                publisher: 1,
                sequence: 2,
                sent_unix_us: 1_764_467_000_123_456,
            },
            Stamp {
                publisher: u32::MAX,
                sequence: u64::MAX,
                sent_unix_us: u64::MAX,
            },
            Stamp {
                publisher: 0x0000_0300,
                sequence: 0x0000_0001_0000_0002,
                sent_unix_us: 0x0003_0000_0000_0100,
            },
        ];
        // A cheap deterministic spread with many zero bytes.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mask = x.rotate_left(17) & x.rotate_left(31);
            v.push(Stamp {
                publisher: (x as u32) & (mask as u32),
                sequence: x & mask.rotate_left(3),
                sent_unix_us: (x >> 5) & mask,
            });
        }
        v
    }

    #[test]
    fn every_stamp_has_the_same_length_and_round_trips() {
        for s in samples() {
            let n = nal(&s);
            assert_eq!(n.len(), NAL_LEN);
            assert_eq!(parse_nal(&n), Some(s), "{s:?}");
        }
    }

    #[test]
    fn no_start_code_emulation_in_the_nal() {
        // The escaped NAL never holds 00 00 00, 00 00 01 or 00 00 02
        // (H.264 7.4.1), which is what emulation prevention guarantees.
        for s in samples() {
            let n = nal(&s);
            for w in n.windows(3) {
                assert!(!(w[0] == 0 && w[1] == 0 && w[2] <= 2), "{s:?}: {n:02x?}");
            }
        }
    }

    #[test]
    fn escapes_are_applied_where_needed() {
        let s = Stamp {
            publisher: 1,
            sequence: 1,
            sent_unix_us: 1,
        };
        let n = nal(&s);
        // publisher 00 00 00 01 -> 00 00 03 00 01
        assert_eq!(&n[19..24], &[0, 0, 3, 0, 1]);
        // size byte counts the unescaped payload: pad shrank by the escapes.
        let escapes = n.len() - unescape(&n).len();
        assert!(escapes >= 3, "{escapes}");
        assert_eq!(n[2] as usize, 16 + 20 + MAX_ESCAPES - escapes);
    }

    #[test]
    fn found_in_avcc_and_annexb_among_other_nals() {
        let s = Stamp {
            publisher: 7,
            sequence: 42,
            sent_unix_us: 1_700_000_000_000_000,
        };
        let idr = [0x65u8, 0x88, 0x84, 0x00, 0x00, 0x03, 0x01];
        for size in [1usize, 2, 4] {
            let mut avcc = Vec::new();
            for unit in [&[0x09u8, 0xf0][..], &nal(&s), &idr] {
                let len = (unit.len() as u32).to_be_bytes();
                avcc.extend_from_slice(&len[4 - size..]);
                avcc.extend_from_slice(unit);
            }
            assert_eq!(find_in_avcc(&avcc, size), Some(s), "length size {size}");
        }
        let mut annexb = vec![0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1];
        annexb.extend_from_slice(&nal(&s));
        annexb.extend_from_slice(&[0, 0, 1]);
        annexb.extend_from_slice(&idr);
        assert_eq!(find_in_annexb(&annexb), Some(s));
    }

    #[test]
    fn foreign_and_broken_input_is_none_not_a_panic() {
        // Another SEI message (payload type 1, pic timing) and a foreign UUID.
        let mut other = vec![0x06, 0x01, 0x02, 0xaa, 0xbb, 0x05, 0x14];
        other.extend_from_slice(&[0x11; 20]);
        other.push(0x80);
        assert_eq!(parse_nal(&other), None);
        let s = Stamp {
            publisher: 3,
            sequence: 4,
            sent_unix_us: 5,
        };
        let good = nal(&s);
        for cut in 0..good.len() {
            let _ = parse_nal(&good[..cut]);
            let _ = find_in_avcc(&good[..cut], 4);
            let _ = find_in_annexb(&good[..cut]);
        }
        assert_eq!(find_in_avcc(&[0xff, 0xff, 0xff, 0xff, 1], 4), None);
        assert_eq!(find_in_avcc(&good, 0), None);
        // A stamp after another SEI message in the same NAL is found.
        let mut two = vec![0x06, 0x01, 0x02, 0xaa, 0xbb];
        two.extend_from_slice(&good[1..]);
        assert_eq!(parse_nal(&two), Some(s));
        // ... and after another user_data_unregistered (x264 writes one),
        // whose payload holds an escaped 00 00 03.
        let mut x264 = vec![0x06, 0x05, 40];
        x264.extend_from_slice(&[0x22; 30]);
        x264.extend_from_slice(&[0, 0, 3, 1]);
        x264.extend_from_slice(&[0x22; 7]);
        x264.extend_from_slice(&good[1..]);
        assert_eq!(parse_nal(&x264), Some(s));
    }
}
