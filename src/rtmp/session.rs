//! The RTMP session core shared by the publisher and the ingest, sans I/O:
//! bytes read from the socket go in, whole messages come out with protocol
//! control already applied, and everything to send back (acknowledgements,
//! ping responses, commands, control) collects in one outbound buffer that
//! the socket owner writes (`publish::conn`, `ingest::conn`).
//!
//! One policy for both roles:
//! - **SetChunkSize** must be 1 to 2^31-1. The RFC says its top bit must be
//!   0; a value with the top bit set is a protocol error (as ffmpeg treats
//!   it), not masked: masking would decode the rest of the stream at a size
//!   the peer may not mean. 0 is an error too.
//! - **Acknowledgement window**: none until the peer sends WindowAckSize;
//!   then one Ack each time that many bytes arrived since the last one.
//!   Bytes are counted from the end of the handshake (as ffmpeg and
//!   nginx-rtmp count them). A window of 0 is ignored (the previous window
//!   stays): acking every read would be an ack storm.
//! - **Message size**: a message header claiming more than `max_message`
//!   bytes is refused at the header; partial messages held across chunk
//!   streams may total at most twice that.
//! - **Ping**: every PingRequest is answered with a PingResponse carrying
//!   the same timestamp. Other control (Abort, Ack, SetPeerBandwidth, stream
//!   events) is parsed and passed up, with nothing to answer.

use bytes::BytesMut;

use super::chunk::{self, ChunkDecoder, ChunkError, Message};
use super::message::{
    self, COMMAND_AMF0, CSID_COMMAND, CSID_CONTROL, Command, Control, MessageError, UserControl,
};

/// Sizes of one session's buffers and the largest inbound message.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A message header claiming more bytes than this is a protocol error.
    pub max_message: u32,
    /// Capacity the inbound buffer starts with (and returns to once empty
    /// after it grew past four times `read_grow`). 0: the buffer is given
    /// back whenever it is drained, for callers that read into a scratch
    /// buffer of their own and hand it over with [`Session::received_bytes`]
    /// (10,000 players then hold no read buffer while they wait).
    pub read_start: usize,
    /// The inbound buffer grows by this much when less than a quarter of
    /// it is free before a read.
    pub read_grow: usize,
}

/// A protocol error: the connection cannot go on.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SessionError {
    #[error(transparent)]
    Chunk(#[from] ChunkError),
    #[error(transparent)]
    Message(#[from] MessageError),
    #[error("{held} bytes of unfinished messages held, over {limit}")]
    Unfinished { held: usize, limit: usize },
}

/// What one decoded message was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// Protocol control or a user control event, already applied and
    /// answered (see the module's policy); passed up for callers that
    /// watch it (the ingest flags large chunk sizes).
    Control(Control),
    /// Anything else: commands, media, data, shared objects.
    Message(Message),
}

/// The protocol state of one connection after the handshake.
#[derive(Debug)]
pub struct Session {
    inbound: BytesMut,
    decoder: ChunkDecoder,
    limits: Limits,
    /// Bytes received since the handshake ended.
    received: u64,
    /// `received` when the last Ack was queued.
    acked: u64,
    /// The peer's acknowledgement window; `None` until it sends one.
    ack_window: Option<u32>,
    outbound: BytesMut,
    /// Our outbound chunk size.
    chunk_size: u32,
}

impl Session {
    /// A session whose first inbound bytes are `leftover`, what followed the
    /// handshake in the last read.
    pub fn new(limits: Limits, leftover: &[u8]) -> Session {
        let mut inbound = BytesMut::with_capacity(leftover.len().max(limits.read_start));
        inbound.extend_from_slice(leftover);
        Session {
            inbound,
            decoder: ChunkDecoder::new(limits.max_message),
            limits,
            received: leftover.len() as u64,
            acked: 0,
            ack_window: None,
            outbound: BytesMut::new(),
            chunk_size: chunk::DEFAULT_CHUNK_SIZE,
        }
    }

    /// The buffer to read the socket into, with free space; report what was
    /// read with [`Session::received`].
    pub fn read_buf(&mut self) -> &mut BytesMut {
        let grow = self.limits.read_grow;
        let held = self.inbound.len();
        if self.inbound.capacity() - held < grow / 4 {
            // Room for `grow` bytes in all: a drained buffer is reused in
            // place instead of doubling.
            self.inbound
                .reserve(grow.saturating_sub(held).max(grow / 4));
        }
        &mut self.inbound
    }

    /// Counts `n` bytes just read into [`Session::read_buf`]; queues an Ack
    /// once the peer's window is filled.
    pub fn received(&mut self, n: usize) {
        self.received += n as u64;
        if let Some(window) = self.ack_window
            && self.received - self.acked >= u64::from(window)
        {
            self.acked = self.received;
            // The sequence number wraps at 2^32, as the RFC has it.
            self.send_control(&Control::Ack(self.received as u32));
        }
    }

    /// Takes bytes read elsewhere (a scratch buffer): as if read into
    /// [`Session::read_buf`] and counted with [`Session::received`].
    pub fn received_bytes(&mut self, bytes: &[u8]) {
        self.inbound.extend_from_slice(bytes);
        self.received(bytes.len());
    }

    /// Decodes the next whole message buffered, applying control messages.
    /// `Ok(None)`: no whole message is buffered (read more).
    pub fn poll_message(&mut self) -> Result<Option<Inbound>, SessionError> {
        let Some(m) = self.decoder.decode(&mut self.inbound)? else {
            return self.idle();
        };
        match message::parse_control(m.type_id, &m.payload)? {
            Some(c) => {
                self.apply(&c)?;
                Ok(Some(Inbound::Control(c)))
            }
            None => Ok(Some(Inbound::Message(m))),
        }
    }

    /// Nothing whole is buffered: checks what partial messages hold and
    /// gives back a grown, empty inbound buffer.
    fn idle(&mut self) -> Result<Option<Inbound>, SessionError> {
        let held = self.decoder.buffered();
        let limit = 2 * self.limits.max_message as usize;
        if held > limit {
            return Err(SessionError::Unfinished { held, limit });
        }
        if self.limits.read_start == 0 {
            // Hold nothing between reads but a partial chunk header.
            if self.inbound.is_empty() {
                self.inbound = BytesMut::new();
            } else if self.inbound.capacity() > 64 {
                self.inbound = BytesMut::from(&self.inbound[..]);
            }
        } else if self.inbound.is_empty() && self.inbound.capacity() > 4 * self.limits.read_grow {
            self.inbound = BytesMut::with_capacity(self.limits.read_start);
        }
        Ok(None)
    }

    fn apply(&mut self, c: &Control) -> Result<(), SessionError> {
        match *c {
            Control::SetChunkSize(n) => self.decoder.set_chunk_size(n)?,
            Control::WindowAckSize(0) => {
                tracing::debug!("peer set a window acknowledgement size of 0: ignored");
            }
            Control::WindowAckSize(n) => self.ack_window = Some(n),
            Control::User(UserControl::PingRequest(t)) => {
                self.send_control(&Control::User(UserControl::PingResponse(t)));
            }
            _ => {}
        }
        Ok(())
    }

    /// The chunk size the peer sends with.
    pub fn peer_chunk_size(&self) -> u32 {
        self.decoder.chunk_size()
    }

    /// Bytes received since the handshake.
    pub fn bytes_received(&self) -> u64 {
        self.received
    }

    /// Queues an AMF0 command on the command chunk stream.
    pub fn send_command(&mut self, stream_id: u32, cmd: &Command) {
        chunk::write_message(
            &mut self.outbound,
            self.chunk_size,
            CSID_COMMAND,
            0,
            COMMAND_AMF0,
            stream_id,
            &cmd.encode(),
        );
    }

    /// Queues any message (a data message such as `|RtmpSampleAccess`) on
    /// chunk stream `csid`, fmt 0 with an absolute timestamp.
    pub fn send_message(
        &mut self,
        csid: u32,
        timestamp: u32,
        type_id: u8,
        stream_id: u32,
        payload: &[u8],
    ) {
        chunk::write_message(
            &mut self.outbound,
            self.chunk_size,
            csid,
            timestamp,
            type_id,
            stream_id,
            payload,
        );
    }

    /// Queues a control message on the control chunk stream. A
    /// SetChunkSize goes through [`Session::set_chunk_size`] instead.
    pub fn send_control(&mut self, c: &Control) {
        let (type_id, payload) = message::encode_control(c);
        chunk::write_message(
            &mut self.outbound,
            self.chunk_size,
            CSID_CONTROL,
            0,
            type_id,
            0,
            &payload,
        );
    }

    /// Announces our chunk size and uses it from the next message on.
    /// `size` is clamped to 1..=2^31-1, the range [`Session`] accepts.
    pub fn set_chunk_size(&mut self, size: u32) {
        let size = size.clamp(1, chunk::MAX_CHUNK_SIZE);
        self.send_control(&Control::SetChunkSize(size));
        self.chunk_size = size;
    }

    /// Our outbound chunk size.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// What is queued to send.
    pub fn outbound(&self) -> &[u8] {
        &self.outbound
    }

    /// Forgets the queued bytes once the socket took them, and gives the
    /// buffer back: control traffic is rare once media flows, and keeping its
    /// peak (the connect exchange) for a connection's life cost ~0.8 KB per
    /// publisher at 10,000 (benches/compare.sh).
    pub fn sent(&mut self) {
        self.outbound = BytesMut::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtmp::amf0::Value;
    use crate::rtmp::handshake::Role;

    const LIMITS: Limits = Limits {
        max_message: 1024,
        read_start: 64,
        read_grow: 128,
    };

    /// Feeds `bytes` as one read and collects what comes out.
    fn feed(s: &mut Session, bytes: &[u8]) -> Result<Vec<Inbound>, SessionError> {
        s.read_buf().extend_from_slice(bytes);
        s.received(bytes.len());
        let mut got = Vec::new();
        while let Some(i) = s.poll_message()? {
            got.push(i);
        }
        Ok(got)
    }

    /// Each role's session, made the way its socket owner makes it. The
    /// core has no role: both go through the same code.
    fn sessions() -> [(Role, Session); 2] {
        [
            (Role::Client, Session::new(LIMITS, &[])),
            (Role::Server, Session::new(LIMITS, &[])),
        ]
    }

    // Byte literals: basic header fmt 0 csid 2, timestamp 0, length, type,
    // stream id 0 (little endian), then the payload.
    const SET_CHUNK_SIZE_TOP_BIT: [u8; 16] = [
        0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0x80, 0, 0x10, 0, //
    ];
    const SET_CHUNK_SIZE_4096: [u8; 16] = [0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 0, 0x10, 0];
    const SET_CHUNK_SIZE_0: [u8; 16] = [0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 0, 0, 0];
    const WINDOW_ACK_100: [u8; 16] = [0x02, 0, 0, 0, 0, 0, 4, 5, 0, 0, 0, 0, 0, 0, 0, 100];
    const WINDOW_ACK_0: [u8; 16] = [0x02, 0, 0, 0, 0, 0, 4, 5, 0, 0, 0, 0, 0, 0, 0, 0];
    const PING_REQUEST_7: [u8; 18] = [
        0x02, 0, 0, 0, 0, 0, 6, 4, 0, 0, 0, 0, 0, 6, 0, 0, 0, 7, //
    ];
    const PING_RESPONSE_7: [u8; 18] = [
        0x02, 0, 0, 0, 0, 0, 6, 4, 0, 0, 0, 0, 0, 7, 0, 0, 0, 7, //
    ];

    #[test]
    fn chunk_size_with_top_bit_is_a_protocol_error_on_both_sides() {
        for (role, mut s) in sessions() {
            assert_eq!(
                feed(&mut s, &SET_CHUNK_SIZE_TOP_BIT),
                Err(SessionError::Chunk(ChunkError::BadChunkSize(0x8000_1000))),
                "{role:?}"
            );
        }
        for (role, mut s) in sessions() {
            let err = feed(&mut s, &SET_CHUNK_SIZE_0).unwrap_err();
            assert!(err.to_string().contains("chunk size 0"), "{role:?}: {err}");
        }
    }

    #[test]
    fn chunk_size_is_applied_and_passed_up() {
        for (role, mut s) in sessions() {
            let got = feed(&mut s, &SET_CHUNK_SIZE_4096).unwrap();
            assert_eq!(
                got,
                [Inbound::Control(Control::SetChunkSize(4096))],
                "{role:?}"
            );
            assert_eq!(s.peer_chunk_size(), 4096, "{role:?}");
            assert!(s.outbound().is_empty(), "{role:?}");
        }
    }

    #[test]
    fn ping_is_answered_with_the_same_timestamp() {
        for (role, mut s) in sessions() {
            feed(&mut s, &PING_REQUEST_7).unwrap();
            assert_eq!(s.outbound(), PING_RESPONSE_7, "{role:?}");
            s.sent();
            assert!(s.outbound().is_empty());
        }
    }

    #[test]
    fn acks_once_per_window_counting_from_the_handshake() {
        // Ack of 118 bytes: 16 of WindowAckSize(100) then 102 of padding.
        const ACK_118: [u8; 16] = [0x02, 0, 0, 0, 0, 0, 4, 3, 0, 0, 0, 0, 0, 0, 0, 118];
        for (role, mut s) in sessions() {
            // No window announced: no ack however much arrives.
            s.received(10_000);
            assert!(s.outbound().is_empty(), "{role:?}");
            let mut s = Session::new(LIMITS, &[]);
            feed(&mut s, &WINDOW_ACK_100).unwrap();
            assert!(s.outbound().is_empty(), "{role:?}: 16 bytes of 100");
            s.received(83);
            assert!(s.outbound().is_empty(), "{role:?}: 99 bytes of 100");
            s.received(19);
            assert_eq!(s.outbound(), ACK_118, "{role:?}");
            s.sent();
            s.received(99);
            assert!(s.outbound().is_empty(), "{role:?}: 99 since the last ack");
        }
    }

    #[test]
    fn window_of_zero_is_ignored_no_ack_storm() {
        for (role, mut s) in sessions() {
            feed(&mut s, &WINDOW_ACK_0).unwrap();
            for _ in 0..100 {
                s.received(1);
            }
            assert!(s.outbound().is_empty(), "{role:?}: acked with no window");
            // After a real window, 0 keeps it. The read that carried the 0
            // fills the window of 100 (148 bytes so far): one ack.
            feed(&mut s, &WINDOW_ACK_100).unwrap();
            feed(&mut s, &WINDOW_ACK_0).unwrap();
            assert_eq!(s.outbound().len(), 16, "{role:?}: one ack");
            s.sent();
            s.received(99);
            assert!(s.outbound().is_empty(), "{role:?}: 99 of 100");
            s.received(1);
            assert_eq!(s.outbound().len(), 16, "{role:?}: window still 100");
        }
    }

    #[test]
    fn header_over_max_message_is_refused() {
        // fmt 0 csid 3, length 0x000401 = 1025 > 1024, type 20.
        let head = [0x03, 0, 0, 0, 0, 0x04, 0x01, 20, 0, 0, 0, 0];
        for (role, mut s) in sessions() {
            assert_eq!(
                feed(&mut s, &head),
                Err(SessionError::Chunk(ChunkError::TooLarge {
                    len: 1025,
                    max: 1024
                })),
                "{role:?}"
            );
        }
    }

    #[test]
    fn a_scratch_reading_session_holds_nothing_between_reads() {
        // The player's way: read_start 0, bytes handed over from a scratch
        // buffer. Two media messages, split inside the second's header.
        let scratch = Limits {
            read_start: 0,
            ..LIMITS
        };
        let mut wire = BytesMut::new();
        chunk::write_message(&mut wire, 128, 6, 40, message::VIDEO, 1, &[0x17; 100]);
        chunk::write_message(&mut wire, 128, 6, 80, message::VIDEO, 1, &[0x27; 100]);
        let mut s = Session::new(scratch, &[]);
        let cut = 112 + 5;
        s.received_bytes(&wire[..cut]);
        let first = s.poll_message().unwrap();
        assert!(matches!(first, Some(Inbound::Message(ref m)) if m.timestamp == 40));
        assert_eq!(s.poll_message().unwrap(), None);
        assert_eq!(s.inbound.len(), 5, "the partial header, kept");
        assert!(
            s.inbound.capacity() <= 64,
            "copied out of the read's buffer"
        );
        s.received_bytes(&wire[cut..]);
        let second = s.poll_message().unwrap();
        assert!(matches!(second, Some(Inbound::Message(ref m)) if m.timestamp == 80));
        assert_eq!(s.poll_message().unwrap(), None);
        assert_eq!(s.inbound.capacity(), 0, "nothing held while waiting");
        assert_eq!(s.bytes_received(), wire.len() as u64);
    }

    #[test]
    fn unfinished_messages_are_capped() {
        // Three chunk streams each start a 1024-byte message with 128 bytes:
        // 3072 bytes held for them, over twice the 1024-byte limit.
        let mut wire = Vec::new();
        for csid in 3..6u8 {
            wire.extend_from_slice(&[csid, 0, 0, 0, 0, 0x04, 0x00, 9, 1, 0, 0, 0]);
            wire.extend_from_slice(&[0u8; 128]);
        }
        for (role, mut s) in sessions() {
            let err = feed(&mut s, &wire).unwrap_err();
            assert!(
                matches!(err, SessionError::Unfinished { limit: 2048, .. }),
                "{role:?}: {err}"
            );
        }
    }

    #[test]
    fn commands_and_media_pass_up_split_at_any_byte() {
        let mut wire = BytesMut::new();
        let cmd = Command::new(
            "connect",
            1.0,
            Value::obj(&[("app", Value::str("live"))]),
            vec![],
        );
        chunk::write_message(&mut wire, 128, 3, 0, COMMAND_AMF0, 0, &cmd.encode());
        chunk::write_message(&mut wire, 128, 6, 40, message::VIDEO, 1, &[0x17; 300]);
        for (role, _) in sessions() {
            let mut s = Session::new(LIMITS, &wire[..5]);
            let mut got = Vec::new();
            for b in &wire[5..] {
                got.extend(feed(&mut s, std::slice::from_ref(b)).unwrap());
            }
            let [Inbound::Message(c), Inbound::Message(v)] = &got[..] else {
                panic!("{role:?}: {got:?}");
            };
            assert_eq!(Command::parse(c.type_id, &c.payload).unwrap(), cmd);
            assert_eq!(
                (v.type_id, v.timestamp, v.payload.len()),
                (message::VIDEO, 40, 300)
            );
            assert_eq!(s.bytes_received(), wire.len() as u64);
        }
    }

    #[test]
    fn outbound_uses_our_chunk_size_once_announced() {
        let cmd = Command::new(
            "publish",
            5.0,
            Value::Null,
            vec![Value::str(&"x".repeat(200))],
        );
        for (role, mut s) in sessions() {
            s.set_chunk_size(4096);
            assert_eq!(s.outbound(), SET_CHUNK_SIZE_4096, "{role:?}");
            s.sent();
            s.send_command(1, &cmd);
            // One fmt 0 header (12 bytes) and the whole body: no fmt 3 split.
            assert_eq!(s.outbound().len(), 12 + cmd.encode().len(), "{role:?}");
            assert_eq!(s.outbound()[0], 0x03, "{role:?}: csid 3, fmt 0");
            s.sent();
            s.set_chunk_size(0);
            assert_eq!(s.chunk_size(), 1, "{role:?}: clamped");
        }
    }

    #[test]
    fn a_server_session_and_a_client_session_talk() {
        let mut server = Session::new(LIMITS, &[]);
        let mut client = Session::new(LIMITS, &[]);
        server.send_control(&Control::WindowAckSize(100));
        server.set_chunk_size(200);
        server.send_control(&Control::User(UserControl::PingRequest(9)));
        let controls = server.outbound().len();
        assert_eq!(controls, 16 + 16 + 18);
        let reply = Command::new(
            "_result",
            1.0,
            Value::Null,
            vec![Value::str(&"y".repeat(150))],
        );
        server.send_command(0, &reply);
        let wire = server.outbound().to_vec();
        server.sent();
        // Two reads: the controls, then the command (one chunk at 200).
        let mut got = feed(&mut client, &wire[..controls]).unwrap();
        got.extend(feed(&mut client, &wire[controls..]).unwrap());
        assert_eq!(client.peer_chunk_size(), 200);
        let Some(Inbound::Message(m)) = got.last() else {
            panic!("{got:?}");
        };
        assert_eq!(Command::parse(m.type_id, &m.payload).unwrap(), reply);
        // The client answered the ping, then acked the window the second
        // read filled; the server reads both.
        let back = feed(&mut server, client.outbound()).unwrap();
        assert_eq!(
            back,
            [
                Inbound::Control(Control::User(UserControl::PingResponse(9))),
                Inbound::Control(Control::Ack(wire.len() as u32)),
            ]
        );
    }
}
