//! An incremental FLV tag reader for a body that arrives in pieces (HTTP-FLV):
//! bytes in, whole tags out; pure. Partial input waits for more; a wrong
//! signature or an absurd tag size is an error naming the offset.

use bytes::{Buf, BytesMut};

const FILE_HEADER_LEN: usize = 9;
const TAG_HEADER_LEN: usize = 11;
const PREVIOUS_TAG_SIZE_LEN: usize = 4;

/// The largest tag body accepted (a keyframe of a 4K stream fits easily;
/// the 24-bit field allows 16 MiB).
pub const MAX_TAG: usize = 8 << 20;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FlvTagError {
    #[error("the body is not FLV: it starts with {0:?}, not \"FLV\"")]
    NotFlv(String),
    #[error("FLV tag at byte {offset} claims {len} bytes, over the {max}-byte limit")]
    TooLarge { offset: u64, len: usize, max: usize },
    #[error("FLV tag at byte {offset} has type {type_id}, not audio (8), video (9) or script (18)")]
    BadType { offset: u64, type_id: u8 },
}

pub use crate::flv::FlvTag;

/// Reads tags out of an FLV byte stream fed in any pieces.
#[derive(Debug, Default)]
pub struct TagReader {
    buf: BytesMut,
    header_done: bool,
    /// Bytes consumed so far (for error offsets).
    offset: u64,
}

impl TagReader {
    pub fn new() -> TagReader {
        TagReader::default()
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Gives back a drained buffer (call after taking every whole tag):
    /// a waiting reader then holds nothing.
    pub fn release_idle(&mut self) {
        if self.buf.is_empty() {
            self.buf = BytesMut::new();
        }
    }

    /// The next whole tag, `Ok(None)` when more bytes are needed.
    pub fn next_tag(&mut self) -> Result<Option<FlvTag>, FlvTagError> {
        if !self.header_done {
            let need = FILE_HEADER_LEN + PREVIOUS_TAG_SIZE_LEN;
            let have = self.buf.len().min(3);
            if self.buf[..have] != b"FLV"[..have] {
                let shown = String::from_utf8_lossy(&self.buf[..self.buf.len().min(16)]);
                return Err(FlvTagError::NotFlv(shown.into_owned()));
            }
            if self.buf.len() < need {
                return Ok(None);
            }
            // The header states its own length (9 in every FLV version).
            let header_len =
                u32::from_be_bytes([self.buf[5], self.buf[6], self.buf[7], self.buf[8]]) as usize;
            let skip = header_len.max(FILE_HEADER_LEN) + PREVIOUS_TAG_SIZE_LEN;
            if self.buf.len() < skip {
                return Ok(None);
            }
            self.buf.advance(skip);
            self.offset += skip as u64;
            self.header_done = true;
        }
        if self.buf.len() < TAG_HEADER_LEN {
            return Ok(None);
        }
        let h = &self.buf[..TAG_HEADER_LEN];
        let type_id = h[0] & 0x1f;
        if !matches!(type_id, 8 | 9 | 18) {
            return Err(FlvTagError::BadType {
                offset: self.offset,
                type_id: h[0],
            });
        }
        let len = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        if len > MAX_TAG {
            return Err(FlvTagError::TooLarge {
                offset: self.offset,
                len,
                max: MAX_TAG,
            });
        }
        let timestamp_ms = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        let whole = TAG_HEADER_LEN + len + PREVIOUS_TAG_SIZE_LEN;
        if self.buf.len() < whole {
            self.buf.reserve(whole - self.buf.len());
            return Ok(None);
        }
        self.buf.advance(TAG_HEADER_LEN);
        let body = self.buf.split_to(len).freeze();
        self.buf.advance(PREVIOUS_TAG_SIZE_LEN);
        self.offset += whole as u64;
        Ok(Some(FlvTag {
            type_id,
            timestamp_ms,
            body,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(type_id: u8, ts: u32, body: &[u8]) -> Vec<u8> {
        let len = body.len() as u32;
        let t = ts.to_be_bytes();
        let mut v = vec![type_id];
        v.extend_from_slice(&len.to_be_bytes()[1..]);
        v.extend_from_slice(&[t[1], t[2], t[3], t[0], 0, 0, 0]);
        v.extend_from_slice(body);
        v.extend_from_slice(&(len + 11).to_be_bytes());
        v
    }

    const HEADER: [u8; 13] = [b'F', b'L', b'V', 1, 5, 0, 0, 0, 9, 0, 0, 0, 0];

    #[test]
    fn tags_come_out_whatever_the_split() {
        let mut wire = HEADER.to_vec();
        wire.extend(tag(9, 0x0123_4567, &[0x17, 1, 2, 3]));
        wire.extend(tag(8, 40, &[0xaf, 1]));
        for split in 1..wire.len() {
            let mut r = TagReader::new();
            let mut got = Vec::new();
            for piece in wire.chunks(split) {
                r.feed(piece);
                while let Some(t) = r.next_tag().unwrap() {
                    got.push(t);
                }
            }
            assert_eq!(got.len(), 2, "split {split}");
            assert_eq!(got[0].type_id, 9);
            assert_eq!(got[0].timestamp_ms, 0x0123_4567, "extended timestamp byte");
            assert_eq!(&got[0].body[..], [0x17, 1, 2, 3]);
            assert_eq!((got[1].type_id, got[1].timestamp_ms), (8, 40));
        }
    }

    #[test]
    fn garbage_is_an_error_naming_what_came() {
        let mut r = TagReader::new();
        r.feed(b"<html>");
        let e = r.next_tag().unwrap_err();
        assert_eq!(e, FlvTagError::NotFlv("<html>".into()));
        // Two bytes that could still be "FLV": wait.
        let mut r = TagReader::new();
        r.feed(b"FL");
        assert_eq!(r.next_tag(), Ok(None));
        let mut r = TagReader::new();
        r.feed(&HEADER);
        r.feed(&[0x55; 11]);
        assert!(matches!(
            r.next_tag(),
            Err(FlvTagError::BadType { offset: 13, .. })
        ));
        let mut r = TagReader::new();
        r.feed(&HEADER);
        r.feed(&[9, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0]);
        assert!(matches!(r.next_tag(), Err(FlvTagError::TooLarge { .. })));
    }
}
