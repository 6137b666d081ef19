//! An HTTP/1.1 response body's framing, undone as bytes arrive: chunked
//! transfer coding, a Content-Length, or everything to the close; pure.

/// How the body is delimited (from the response head).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Chunked,
    Length(u64),
    /// Until the server closes the connection.
    Close,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BodyError {
    #[error("bad chunked body: {0}")]
    Chunked(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Hex digits of a chunk size (`digits` read so far).
    Size {
        size: u64,
        digits: u8,
    },
    /// A chunk extension, up to the line's end.
    Extension {
        size: u64,
    },
    /// The line feed after a size line's carriage return.
    SizeLf {
        size: u64,
    },
    Data(u64),
    /// The CRLF after a chunk's data: `cr` once its CR was seen.
    DataEnd {
        cr: bool,
    },
    /// After the last chunk (trailers are not read) or the whole length.
    Done,
    /// Content-Length or close-delimited bytes left (`u64::MAX`: to the close).
    Plain(u64),
}

/// Undoes a body's framing as bytes arrive, in any pieces.
#[derive(Debug)]
pub struct BodyDecoder {
    state: State,
}

impl BodyDecoder {
    pub fn new(framing: Framing) -> BodyDecoder {
        let state = match framing {
            Framing::Chunked => State::Size { size: 0, digits: 0 },
            Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Plain(n),
            Framing::Close => State::Plain(u64::MAX),
        };
        BodyDecoder { state }
    }

    /// Whether the body is whole (the last chunk, or the whole length).
    pub fn done(&self) -> bool {
        self.state == State::Done
    }

    /// Whether the connection closing now cuts the body short.
    pub fn cut_by_close(&self) -> bool {
        !matches!(self.state, State::Done | State::Plain(u64::MAX))
    }

    /// Feeds `input`; the body's bytes go to `out` in order. Bytes after
    /// the body's end are ignored.
    pub fn decode(
        &mut self,
        mut input: &[u8],
        mut out: impl FnMut(&[u8]),
    ) -> Result<(), BodyError> {
        while !input.is_empty() {
            match self.state {
                State::Done => return Ok(()),
                State::Plain(left) => {
                    let take = input.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    out(&input[..take]);
                    input = &input[take..];
                    if left != u64::MAX {
                        let left = left - take as u64;
                        self.state = if left == 0 {
                            State::Done
                        } else {
                            State::Plain(left)
                        };
                    }
                }
                State::Data(left) => {
                    let take = input.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    out(&input[..take]);
                    input = &input[take..];
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        State::DataEnd { cr: false }
                    } else {
                        State::Data(left)
                    };
                }
                _ => {
                    self.state = self.step(input[0])?;
                    input = &input[1..];
                }
            }
        }
        Ok(())
    }

    /// One byte of the framing itself (size lines and data ends).
    fn step(&self, b: u8) -> Result<State, BodyError> {
        let end_of_size = |size: u64| {
            if size == 0 {
                State::Done
            } else {
                State::Data(size)
            }
        };
        Ok(match self.state {
            State::Size { size, digits } => match b {
                b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                    if digits >= 15 {
                        return Err(BodyError::Chunked("chunk size over 15 hex digits"));
                    }
                    let v = (b as char).to_digit(16).unwrap_or(0);
                    State::Size {
                        size: size << 4 | u64::from(v),
                        digits: digits + 1,
                    }
                }
                _ if digits == 0 => return Err(BodyError::Chunked("chunk size is not hex")),
                b';' | b' ' | b'\t' => State::Extension { size },
                b'\r' => State::SizeLf { size },
                b'\n' => end_of_size(size),
                _ => return Err(BodyError::Chunked("chunk size is not hex")),
            },
            State::Extension { size } => match b {
                b'\r' => State::SizeLf { size },
                b'\n' => end_of_size(size),
                _ => State::Extension { size },
            },
            State::SizeLf { size } => match b {
                b'\n' => end_of_size(size),
                _ => return Err(BodyError::Chunked("CR without LF after a chunk size")),
            },
            State::DataEnd { cr: false } if b == b'\r' => State::DataEnd { cr: true },
            State::DataEnd { .. } if b == b'\n' => State::Size { size: 0, digits: 0 },
            State::DataEnd { .. } => {
                return Err(BodyError::Chunked("chunk data longer than its size"));
            }
            s => s,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_split(framing: Framing, wire: &[u8], split: usize) -> (Vec<u8>, bool) {
        let mut d = BodyDecoder::new(framing);
        let mut got = Vec::new();
        for piece in wire.chunks(split.max(1)) {
            d.decode(piece, |b| got.extend_from_slice(b)).unwrap();
        }
        (got, d.done())
    }

    #[test]
    fn chunked_bodies_decode_whatever_the_split() {
        let wire = b"5\r\nhello\r\n1A;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n";
        for split in 1..wire.len() {
            let (got, done) = decode_split(Framing::Chunked, wire, split);
            assert_eq!(got, b"helloabcdefghijklmnopqrstuvwxyz", "split {split}");
            assert!(done, "split {split}");
        }
        // Bare LF line ends are taken too; bytes after the end are ignored.
        let (got, done) = decode_split(Framing::Chunked, b"3\nabc\n0\n\nHTTP/1.1", 64);
        assert_eq!((got.as_slice(), done), (&b"abc"[..], true));
    }

    #[test]
    fn sized_and_close_delimited_bodies() {
        let (got, done) = decode_split(Framing::Length(4), b"FLV\x01extra", 2);
        assert_eq!((got.as_slice(), done), (&b"FLV\x01"[..], true));
        let mut d = BodyDecoder::new(Framing::Close);
        let mut got = Vec::new();
        d.decode(b"abc", |b| got.extend_from_slice(b)).unwrap();
        assert!(!d.done() && !d.cut_by_close());
        assert!(BodyDecoder::new(Framing::Length(0)).done());
        let mut d = BodyDecoder::new(Framing::Length(9));
        d.decode(b"abc", |_| {}).unwrap();
        assert!(d.cut_by_close());
    }

    #[test]
    fn bad_chunked_framing_is_an_error_not_a_panic() {
        for wire in [
            &b"zz\r\n"[..],
            b"\r\n",
            b"3\rx",
            b"3\r\nabcX",
            b"ffffffffffffffff\r\n",
        ] {
            let mut d = BodyDecoder::new(Framing::Chunked);
            assert!(d.decode(wire, |_| {}).is_err(), "{wire:?}");
        }
    }
}
