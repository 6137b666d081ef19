//! What a player needs from an FLV/RTMP video body, pure: is it a frame or a
//! sequence header, a keyframe, and the latency stamp it carries (H.264 AVCC,
//! NAL length size taken from the last AVC sequence header).

use crate::stamp::{self, Stamp};

const CODEC_AVC: u8 = 7;
/// Enhanced RTMP: the top bit of the first byte says an extended header.
const EX_HEADER: u8 = 0x80;
/// Frame type 5: a video info/command frame, not a picture.
const FRAME_TYPE_COMMAND: u8 = 5;

/// One video body, classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Video {
    /// A decoder configuration (or end of sequence, or a command frame): no
    /// picture.
    Config,
    /// A coded picture.
    Frame {
        keyframe: bool,
        stamp: Option<Stamp>,
    },
}

/// Tracks the AVC NAL length size across sequence headers.
#[derive(Debug, Clone, Copy)]
pub struct VideoReader {
    length_size: usize,
}

impl Default for VideoReader {
    fn default() -> Self {
        VideoReader { length_size: 4 }
    }
}

impl VideoReader {
    /// Classifies one video body; `None` for an empty body.
    pub fn read(&mut self, body: &[u8]) -> Option<Video> {
        let first = *body.first()?;
        if first & EX_HEADER != 0 {
            // Enhanced RTMP (HEVC, AV1, VP9): packet type 0 is the sequence
            // start, 2 the sequence end, 4 and up metadata/multitrack.
            let frame_type = (first >> 4) & 0x07;
            let packet_type = first & 0x0f;
            if frame_type == FRAME_TYPE_COMMAND || !matches!(packet_type, 1 | 3) {
                return Some(Video::Config);
            }
            return Some(Video::Frame {
                keyframe: frame_type == 1,
                stamp: None,
            });
        }
        let frame_type = first >> 4;
        if frame_type == FRAME_TYPE_COMMAND {
            return Some(Video::Config);
        }
        let keyframe = frame_type == 1;
        if first & 0x0f != CODEC_AVC {
            return Some(Video::Frame {
                keyframe,
                stamp: None,
            });
        }
        match body.get(1) {
            Some(0) => {
                // AVCDecoderConfigurationRecord: lengthSizeMinusOne in byte 4.
                if let Some(b) = body.get(5 + 4) {
                    self.length_size = usize::from(b & 0x03) + 1;
                }
                Some(Video::Config)
            }
            Some(1) => Some(Video::Frame {
                keyframe,
                stamp: body.get(5..).and_then(|n| stamp_in(n, self.length_size)),
            }),
            _ => Some(Video::Config),
        }
    }
}

/// The stamp in AVCC NAL units, if one is there.
fn stamp_in(nalus: &[u8], length_size: usize) -> Option<Stamp> {
    stamp::find_in_avcc(nalus, length_size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_headers_frames_and_keyframes() {
        let mut r = VideoReader::default();
        // AVC sequence header with lengthSizeMinusOne = 1 (2-byte lengths).
        let seq = [0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xfd, 0xe1];
        assert_eq!(r.read(&seq), Some(Video::Config));
        assert_eq!(r.length_size, 2);
        assert_eq!(
            r.read(&[0x17, 1, 0, 0, 0, 0, 1, 0x65]),
            Some(Video::Frame {
                keyframe: true,
                stamp: None
            })
        );
        assert_eq!(
            r.read(&[0x27, 1, 0, 0, 0, 0, 1, 0x41]),
            Some(Video::Frame {
                keyframe: false,
                stamp: None
            })
        );
        assert_eq!(r.read(&[0x17, 2, 0, 0, 0]), Some(Video::Config));
        assert_eq!(r.read(&[0x57, 0]), Some(Video::Config));
        assert_eq!(r.read(&[]), None);
        // Enhanced RTMP HEVC: sequence start, then a coded keyframe.
        assert_eq!(r.read(b"\x90hvc1"), Some(Video::Config));
        assert_eq!(
            r.read(b"\x91hvc1\0\0\0"),
            Some(Video::Frame {
                keyframe: true,
                stamp: None
            })
        );
    }

    #[test]
    fn finds_the_stamp_before_the_slice_with_the_stream_length_size() {
        let st = Stamp {
            publisher: 3,
            sequence: 0x0100_0000_0003,
            sent_unix_us: 1_700_000_000_123_456,
        };
        let nal = stamp::nal(&st);
        for length_size in [4usize, 2] {
            let mut r = VideoReader::default();
            let seq = [
                0x17,
                0,
                0,
                0,
                0,
                1,
                0x64,
                0,
                0x1f,
                0xfc | (length_size as u8 - 1),
            ];
            assert_eq!(r.read(&seq), Some(Video::Config));
            let mut body = vec![0x27, 1, 0, 0, 0];
            for n in [&nal[..], &[0x41, 0x9a, 0x01][..]] {
                body.extend_from_slice(&(n.len() as u32).to_be_bytes()[4 - length_size..]);
                body.extend_from_slice(n);
            }
            assert_eq!(
                r.read(&body),
                Some(Video::Frame {
                    keyframe: false,
                    stamp: Some(st)
                }),
                "length size {length_size}"
            );
        }
    }
}
