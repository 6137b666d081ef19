//! RTMP chunk stream: a sans-I/O decoder (interleaved chunk streams, bounded
//! state, partial input is `Ok(None)`) and writers for whole messages and for
//! pre-chunked media bodies shared between connections.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// RTMP's initial chunk size in both directions.
pub const DEFAULT_CHUNK_SIZE: u32 = 128;
/// Largest chunk size we accept from a peer (the spec allows 2^31-1; nothing
/// sane goes near it, and it bounds nothing we allocate since messages are capped).
pub const MAX_CHUNK_SIZE: u32 = 0x7FFF_FFFF;
/// Chunk streams one peer may keep open at once.
pub const MAX_CHUNK_STREAMS: usize = 64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChunkError {
    #[error("peer set chunk size {0}: must be 1 to 2^31-1")]
    BadChunkSize(u32),
    #[error("chunk on stream {csid} continues a message that was never started (fmt {fmt})")]
    NoPriorHeader { csid: u32, fmt: u8 },
    #[error("message of {len} bytes exceeds the {max}-byte limit")]
    TooLarge { len: u32, max: u32 },
    #[error("peer opened more than {MAX_CHUNK_STREAMS} chunk streams")]
    TooManyStreams,
}

/// One whole RTMP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub csid: u32,
    pub timestamp: u32,
    pub type_id: u8,
    pub stream_id: u32,
    pub payload: Bytes,
}

#[derive(Debug, Default)]
struct StreamState {
    csid: u32,
    timestamp: u32,
    delta: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
    extended: bool,
    /// Bytes of the current message received so far.
    partial: BytesMut,
    started: bool,
}

/// Decodes inbound chunks into messages. Call [`ChunkDecoder::set_chunk_size`]
/// when a SetChunkSize message arrives.
#[derive(Debug)]
pub struct ChunkDecoder {
    chunk_size: u32,
    max_message: u32,
    streams: Vec<StreamState>,
    /// A chunk whose header is consumed and whose data has not all come:
    /// the index of its stream and the bytes still to come (0: none open).
    /// Data is taken as it arrives, so the caller's buffer never has to hold
    /// a whole chunk (a player's read buffer stays small whatever the peer's
    /// chunk size).
    open: (u32, u32),
}

impl ChunkDecoder {
    /// `max_message` caps the length a message header may claim.
    pub fn new(max_message: u32) -> ChunkDecoder {
        ChunkDecoder {
            chunk_size: DEFAULT_CHUNK_SIZE,
            max_message,
            streams: Vec::new(),
            open: (0, 0),
        }
    }

    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ChunkError> {
        if size == 0 || size > MAX_CHUNK_SIZE {
            return Err(ChunkError::BadChunkSize(size));
        }
        self.chunk_size = size;
        Ok(())
    }

    /// Bytes held in partial messages (for memory accounting).
    pub fn buffered(&self) -> usize {
        self.streams.iter().map(|s| s.partial.capacity()).sum()
    }

    /// Consumes chunks from `buf` until one completes a message. Returns
    /// `Ok(None)` when `buf` runs out first: an incomplete chunk header is
    /// left in `buf`, the data of a chunk whose header is complete is taken
    /// into its message as it comes.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, ChunkError> {
        loop {
            let (idx, remaining) = (self.open.0 as usize, self.open.1 as usize);
            if remaining > 0 {
                let n = remaining.min(buf.len());
                if n == 0 {
                    return Ok(None);
                }
                let st = &mut self.streams[idx];
                st.partial.extend_from_slice(&buf[..n]);
                buf.advance(n);
                self.open.1 -= n as u32;
                if remaining > n {
                    return Ok(None);
                }
                if st.partial.len() == st.length as usize {
                    let payload = std::mem::take(&mut st.partial).freeze();
                    return Ok(Some(st.message(payload)));
                }
                continue;
            }
            match self.decode_chunk(buf)? {
                Step::Incomplete => return Ok(None),
                Step::Message(m) => return Ok(Some(m)),
                Step::Partial => continue,
            }
        }
    }

    fn state_index(&mut self, csid: u32, fmt: u8) -> Result<usize, ChunkError> {
        if let Some(i) = self.streams.iter().position(|s| s.csid == csid) {
            return Ok(i);
        }
        // A fmt 1 header carries the length and type: a chunk stream may
        // begin with one (pyrtmp's server does; ffmpeg and nginx accept it),
        // with message stream id 0 and timestamp 0 before its delta. fmt 2
        // and 3 carry no length, so they cannot begin a chunk stream.
        if fmt > 1 {
            return Err(ChunkError::NoPriorHeader { csid, fmt });
        }
        if self.streams.len() >= MAX_CHUNK_STREAMS {
            return Err(ChunkError::TooManyStreams);
        }
        self.streams.push(StreamState {
            csid,
            ..StreamState::default()
        });
        Ok(self.streams.len() - 1)
    }

    fn decode_chunk(&mut self, buf: &mut BytesMut) -> Result<Step, ChunkError> {
        let b = &buf[..];
        let Some(&first) = b.first() else {
            return Ok(Step::Incomplete);
        };
        let fmt = first >> 6;
        let (csid, mut pos) = match first & 0x3f {
            0 => match b.get(1) {
                Some(&x) => (64 + x as u32, 2),
                None => return Ok(Step::Incomplete),
            },
            1 => match (b.get(1), b.get(2)) {
                (Some(&x), Some(&y)) => (64 + x as u32 + 256 * y as u32, 3),
                _ => return Ok(Step::Incomplete),
            },
            n => (n as u32, 1),
        };
        let header_len = [11, 7, 3, 0][fmt as usize];
        if b.len() < pos + header_len {
            return Ok(Step::Incomplete);
        }
        let h = &b[pos..pos + header_len];
        pos += header_len;
        let idx = self.state_index(csid, fmt)?;
        let st = &self.streams[idx];
        // A fmt 3 chunk in the middle of a message continues it; otherwise it
        // starts a new message with the previous header.
        let continuing = fmt == 3 && st.started && !st.partial.is_empty();
        let mut ts_field = 0u32;
        let (mut length, mut type_id, mut stream_id) = (st.length, st.type_id, st.stream_id);
        if fmt <= 2 {
            ts_field = u24(&h[0..3]);
        }
        if fmt <= 1 {
            length = u24(&h[3..6]);
            type_id = h[6];
        }
        if fmt == 0 {
            stream_id = u32::from_le_bytes([h[7], h[8], h[9], h[10]]);
        }
        if fmt == 3 && !st.started {
            return Err(ChunkError::NoPriorHeader { csid, fmt });
        }
        let extended = if fmt == 3 {
            st.extended
        } else {
            ts_field == 0xFF_FFFF
        };
        if extended {
            if b.len() < pos + 4 {
                return Ok(Step::Incomplete);
            }
            ts_field = u32::from_be_bytes([b[pos], b[pos + 1], b[pos + 2], b[pos + 3]]);
            pos += 4;
        }
        if length > self.max_message {
            return Err(ChunkError::TooLarge {
                len: length,
                max: self.max_message,
            });
        }
        let already = if continuing { st.partial.len() } else { 0 };
        let want = (length as usize - already).min(self.chunk_size as usize);
        // The header is whole: commit it (the data is taken as it comes).
        let chunk_header = pos;
        let st = &mut self.streams[idx];
        if !continuing {
            match fmt {
                0 => {
                    st.timestamp = ts_field;
                    st.delta = 0;
                }
                1 | 2 => {
                    st.delta = ts_field;
                    st.timestamp = st.timestamp.wrapping_add(ts_field);
                }
                _ => st.timestamp = st.timestamp.wrapping_add(st.delta),
            }
            st.length = length;
            st.type_id = type_id;
            st.stream_id = stream_id;
            st.extended = extended;
            st.started = true;
            st.partial.clear();
        }
        buf.advance(chunk_header);
        if length == 0 {
            return Ok(Step::Message(st.message(Bytes::new())));
        }
        if already == 0 && want == length as usize && buf.len() >= want {
            // A whole single-chunk message: no copy.
            return Ok(Step::Message(st.message(buf.split_to(want).freeze())));
        }
        if st.partial.is_empty() {
            st.partial.reserve(length as usize);
        }
        if buf.len() < want {
            // The rest of this chunk's data is still to come.
            st.partial.extend_from_slice(buf);
            // Chunk sizes are at most MAX_CHUNK_SIZE, streams MAX_CHUNK_STREAMS.
            self.open = (idx as u32, (want - buf.len()) as u32);
            buf.clear();
            return Ok(Step::Partial);
        }
        let data = buf.split_to(want);
        st.partial.extend_from_slice(&data);
        if st.partial.len() == length as usize {
            let payload = std::mem::take(&mut st.partial).freeze();
            return Ok(Step::Message(st.message(payload)));
        }
        Ok(Step::Partial)
    }
}

enum Step {
    Incomplete,
    Partial,
    Message(Message),
}

impl StreamState {
    fn message(&self, payload: Bytes) -> Message {
        Message {
            csid: self.csid,
            timestamp: self.timestamp,
            type_id: self.type_id,
            stream_id: self.stream_id,
            payload,
        }
    }
}

fn u24(b: &[u8]) -> u32 {
    (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32
}

fn put_u24(out: &mut BytesMut, v: u32) {
    out.put_u8((v >> 16) as u8);
    out.put_u8((v >> 8) as u8);
    out.put_u8(v as u8);
}

fn put_basic_header(out: &mut BytesMut, fmt: u8, csid: u32) {
    match csid {
        2..=63 => out.put_u8(fmt << 6 | csid as u8),
        64..=319 => {
            out.put_u8(fmt << 6);
            out.put_u8((csid - 64) as u8);
        }
        _ => {
            out.put_u8(fmt << 6 | 1);
            out.put_u16_le((csid - 64) as u16);
        }
    }
}

/// Writes a whole message as a fmt 0 chunk followed by fmt 3 continuation
/// chunks. `chunk_size` must be at least 1.
pub fn write_message(
    out: &mut BytesMut,
    chunk_size: u32,
    csid: u32,
    timestamp: u32,
    type_id: u8,
    stream_id: u32,
    payload: &[u8],
) {
    let chunk_size = chunk_size.max(1) as usize;
    let extended = timestamp >= 0xFF_FFFF;
    put_basic_header(out, 0, csid);
    put_u24(out, if extended { 0xFF_FFFF } else { timestamp });
    put_u24(out, payload.len() as u32);
    out.put_u8(type_id);
    out.put_u32_le(stream_id);
    if extended {
        out.put_u32(timestamp);
    }
    for (i, piece) in payload.chunks(chunk_size).enumerate() {
        if i > 0 {
            put_basic_header(out, 3, csid);
            if extended {
                out.put_u32(timestamp);
            }
        }
        out.put_slice(piece);
    }
}

/// A message body cut into chunks once, with the fmt 3 continuation headers
/// already in place, to be sent after a per-connection message header.
/// `csid` must be below 64 (one-byte basic header).
pub fn prechunk(payload: &[u8], chunk_size: u32, csid: u8) -> Bytes {
    let chunk_size = chunk_size.max(1) as usize;
    let pieces = payload.len().div_ceil(chunk_size).max(1);
    let mut out = BytesMut::with_capacity(payload.len() + pieces);
    for (i, piece) in payload.chunks(chunk_size).enumerate() {
        if i > 0 {
            out.put_u8(0xC0 | (csid & 0x3f));
        }
        out.put_slice(piece);
    }
    out.freeze()
}

/// Size of the largest media message header [`media_header`] writes.
pub const MEDIA_HEADER_MAX: usize = 12;

/// The header in front of a pre-chunked body: fmt 0 (absolute timestamp and
/// stream id) when `first` on this chunk stream, else fmt 1 with the
/// timestamp delta. Returns the bytes used of `out`. Deltas and first
/// timestamps must be below 2^24-1 (no extended timestamp): callers use fmt 1
/// deltas so the absolute timestamp may grow without bound.
pub fn media_header(
    out: &mut [u8; MEDIA_HEADER_MAX],
    first: bool,
    csid: u8,
    timestamp_or_delta: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
) -> usize {
    let t = timestamp_or_delta.min(0xFF_FFFE);
    let fmt: u8 = if first { 0 } else { 1 };
    out[0] = fmt << 6 | (csid & 0x3f);
    out[1..4].copy_from_slice(&t.to_be_bytes()[1..]);
    out[4..7].copy_from_slice(&length.to_be_bytes()[1..]);
    out[7] = type_id;
    if first {
        out[8..12].copy_from_slice(&stream_id.to_le_bytes());
        12
    } else {
        8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(dec: &mut ChunkDecoder, bytes: &[u8]) -> Vec<Message> {
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(m) = dec.decode(&mut buf).unwrap() {
            out.push(m);
        }
        assert!(buf.is_empty(), "left {} bytes", buf.len());
        out
    }

    #[test]
    fn single_chunk_message_known_bytes() {
        // fmt 0, csid 2, ts 0, len 4, type 1 (SetChunkSize), stream 0, payload 4096.
        let bytes = [2, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 0, 0x10, 0];
        let mut dec = ChunkDecoder::new(1 << 20);
        let msgs = decode_all(&mut dec, &bytes);
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].type_id, 1);
        assert_eq!(&msgs[0].payload[..], &[0, 0, 0x10, 0]);
    }

    #[test]
    fn write_then_decode_multi_chunk_and_extended_timestamp() {
        let payload: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let mut out = BytesMut::new();
        write_message(&mut out, 128, 6, 0x0100_0000, 9, 1, &payload);
        write_message(&mut out, 128, 300, 5, 8, 1, &payload[..10]);
        let mut dec = ChunkDecoder::new(1 << 20);
        let msgs = decode_all(&mut dec, &out);
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[0].timestamp, 0x0100_0000);
        assert_eq!(msgs[0].csid, 6);
        assert_eq!(&msgs[0].payload[..], &payload[..]);
        assert_eq!(msgs[1].csid, 300);
        assert_eq!(msgs[1].timestamp, 5);
    }

    #[test]
    fn byte_at_a_time_is_incomplete_until_whole() {
        let mut out = BytesMut::new();
        write_message(&mut out, 100, 3, 7, 20, 0, &[1u8; 250]);
        let mut dec = ChunkDecoder::new(1 << 20);
        dec.set_chunk_size(100).unwrap();
        let mut buf = BytesMut::new();
        let mut got = None;
        for (i, b) in out.iter().enumerate() {
            buf.put_u8(*b);
            if let Some(m) = dec.decode(&mut buf).unwrap() {
                assert_eq!(i, out.len() - 1);
                got = Some(m);
            }
        }
        assert_eq!(got.unwrap().payload.len(), 250);
    }

    /// However the bytes are split across reads, the same messages come out,
    /// and the caller's buffer never holds more than a chunk header: chunk
    /// data is taken as it arrives.
    #[test]
    fn any_split_gives_the_same_messages_and_keeps_the_buffer_small() {
        let mut out = BytesMut::new();
        write_message(
            &mut out,
            4096,
            6,
            40,
            9,
            1,
            &(0..9000u32).map(|i| i as u8).collect::<Vec<_>>(),
        );
        write_message(&mut out, 4096, 4, 41, 8, 1, &[3u8; 300]);
        write_message(&mut out, 4096, 6, 80, 9, 1, &[9u8; 4096]);
        write_message(&mut out, 4096, 6, 0x0100_0000, 9, 1, &[5u8; 5000]);
        let mut whole = ChunkDecoder::new(1 << 20);
        whole.set_chunk_size(4096).unwrap();
        let want: Vec<(u32, u32, Bytes)> = decode_all(&mut whole, &out)
            .into_iter()
            .map(|m| (m.csid, m.timestamp, m.payload))
            .collect();
        assert_eq!(want.len(), 4);
        for step in [1, 2, 7, 100, 1000, 1500, 4095, 4097] {
            let mut dec = ChunkDecoder::new(1 << 20);
            dec.set_chunk_size(4096).unwrap();
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for piece in out.chunks(step) {
                buf.extend_from_slice(piece);
                while let Some(m) = dec.decode(&mut buf).unwrap() {
                    got.push((m.csid, m.timestamp, m.payload));
                }
                // At most a chunk header (18 bytes) is left between reads.
                assert!(buf.len() <= 18, "step {step}: {} bytes left", buf.len());
            }
            assert_eq!(got, want, "split every {step} bytes");
        }
    }

    #[test]
    fn interleaved_chunk_streams() {
        // Two 200-byte messages on csid 4 and 6, chunk size 100, interleaved.
        let mut a = BytesMut::new();
        write_message(&mut a, 100, 4, 0, 8, 1, &[0xAA; 200]);
        let mut v = BytesMut::new();
        write_message(&mut v, 100, 6, 0, 9, 1, &[0xBB; 200]);
        // a = [12 hdr + 100][1 hdr + 100]; same for v.
        let mut mixed = BytesMut::new();
        mixed.extend_from_slice(&a[..112]);
        mixed.extend_from_slice(&v[..112]);
        mixed.extend_from_slice(&a[112..]);
        mixed.extend_from_slice(&v[112..]);
        let mut dec = ChunkDecoder::new(1 << 20);
        dec.set_chunk_size(100).unwrap();
        let msgs = decode_all(&mut dec, &mixed);
        assert_eq!(msgs.len(), 2);
        assert!(msgs[0].payload.iter().all(|&b| b == 0xAA));
        assert!(msgs[1].payload.iter().all(|&b| b == 0xBB));
    }

    #[test]
    fn prechunked_media_decodes_with_fmt1_deltas() {
        let payload = vec![7u8; 9000];
        let body = prechunk(&payload, 4096, 6);
        let mut out = BytesMut::new();
        let mut hdr = [0u8; MEDIA_HEADER_MAX];
        for (i, delta) in [100u32, 33, 34].iter().enumerate() {
            let n = media_header(&mut hdr, i == 0, 6, *delta, 9000, 9, 1);
            out.extend_from_slice(&hdr[..n]);
            out.extend_from_slice(&body);
        }
        let mut dec = ChunkDecoder::new(1 << 20);
        dec.set_chunk_size(4096).unwrap();
        let msgs = decode_all(&mut dec, &out);
        let ts: Vec<u32> = msgs.iter().map(|m| m.timestamp).collect();
        assert_eq!(ts, vec![100, 133, 167]);
        assert!(
            msgs.iter()
                .all(|m| m.payload.len() == 9000 && m.stream_id == 1)
        );
    }

    #[test]
    fn hostile_headers_are_errors() {
        let mut dec = ChunkDecoder::new(1000);
        assert_eq!(dec.set_chunk_size(0), Err(ChunkError::BadChunkSize(0)));
        assert_eq!(
            dec.set_chunk_size(0x8000_0000),
            Err(ChunkError::BadChunkSize(0x8000_0000))
        );
        let mut buf = BytesMut::from(&[0xC3u8, 1, 2][..]);
        assert_eq!(
            dec.decode(&mut buf),
            Err(ChunkError::NoPriorHeader { csid: 3, fmt: 3 })
        );
        let mut big = BytesMut::new();
        write_message(&mut big, 128, 3, 0, 9, 1, &[0u8; 2000]);
        assert_eq!(
            dec.decode(&mut big),
            Err(ChunkError::TooLarge {
                len: 2000,
                max: 1000
            })
        );
        let mut many = BytesMut::new();
        for csid in 2..70 {
            write_message(&mut many, 128, csid, 0, 9, 1, &[]);
        }
        let mut dec = ChunkDecoder::new(1000);
        let err = loop {
            match dec.decode(&mut many) {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("expected an error"),
                Err(e) => break e,
            }
        };
        assert_eq!(err, ChunkError::TooManyStreams);
    }

    #[test]
    fn a_chunk_stream_may_begin_with_fmt_1() {
        // fmt 1, csid 3, ts delta 5, length 3, type 20 (AMF0 command), body.
        let mut buf = BytesMut::from(&[0x43u8, 0, 0, 5, 0, 0, 3, 20, 1, 2, 3][..]);
        let mut dec = ChunkDecoder::new(1000);
        let m = dec.decode(&mut buf).unwrap().unwrap();
        assert_eq!((m.type_id, m.stream_id, m.timestamp), (20, 0, 5));
        assert_eq!(&m.payload[..], &[1, 2, 3]);
        // fmt 2 carries no length: it cannot begin one.
        let mut buf = BytesMut::from(&[0x84u8, 0, 0, 5][..]);
        assert_eq!(
            dec.decode(&mut buf),
            Err(ChunkError::NoPriorHeader { csid: 4, fmt: 2 })
        );
    }
}
