//! SRT packets on the wire (draft-sharabayko-srt, section 3): the data
//! packet a caller sends and the control packets of the caller's side of a
//! live connection, encoded and decoded without I/O.
//!
//! Every packet starts with a 16-byte header: a flag bit (0 data, 1
//! control), then for data the sequence number, for control the type and
//! subtype; a second word (data: position, order, key, retransmitted flags
//! and message number; control: type-specific information); a timestamp in
//! microseconds since the sender's connection start; the destination
//! socket id.

use std::net::IpAddr;

/// Bytes of the SRT header of every packet.
pub const HEADER_LEN: usize = 16;
/// The HSv5 magic a listener puts in an induction answer's extension field.
pub const SRT_MAGIC: u16 = 0x4A17;
/// Handshake extension flags of a conclusion request (HS_EXT_*).
pub const EXT_HSREQ: u16 = 0x1;
pub const EXT_CONFIG: u16 = 0x4;
/// SRT handshake extension flags (SRT_OPT_*) a live sender announces.
pub const OPT_TSBPDSND: u32 = 0x1;
pub const OPT_TSBPDRCV: u32 = 0x2;
pub const OPT_HAICRYPT: u32 = 0x4;
pub const OPT_TLPKTDROP: u32 = 0x8;
pub const OPT_NAKREPORT: u32 = 0x10;
pub const OPT_REXMITFLG: u32 = 0x20;

/// The largest sequence number (31 bits) and message number (26 bits).
pub const SEQ_MASK: u32 = 0x7FFF_FFFF;
pub const MSGNO_MASK: u32 = 0x03FF_FFFF;

// Control types (the 15 bits after the flag).
const T_HANDSHAKE: u16 = 0x0;
const T_KEEPALIVE: u16 = 0x1;
const T_ACK: u16 = 0x2;
const T_NAK: u16 = 0x3;
const T_SHUTDOWN: u16 = 0x5;
const T_ACKACK: u16 = 0x6;
const T_DROPREQ: u16 = 0x7;

// Handshake extension types.
const HSREQ: u16 = 1;
const HSRSP: u16 = 2;
const SID: u16 = 5;

/// Why bytes are not an SRT packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("SRT {what} needs {need} bytes, got {got}")]
    Short {
        what: &'static str,
        need: usize,
        got: usize,
    },
    #[error("SRT handshake extension {ext} runs past the packet")]
    BadExtension { ext: u16 },
    #[error("SRT streamid is not UTF-8")]
    StreamIdNotUtf8,
}

/// A data packet's header (the payload follows it). Only single-packet
/// messages are sent: a live TS payload is one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataHeader {
    pub seq: u32,
    pub msgno: u32,
    /// Set on a retransmission (the peers agreed on REXMITFLG).
    pub retransmitted: bool,
    pub timestamp: u32,
    pub dest: u32,
}

impl DataHeader {
    /// Appends the header (position "solo", no key, not in order) to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.seq & SEQ_MASK).to_be_bytes());
        let rexmit = if self.retransmitted { 1 << 26 } else { 0 };
        let word = (0b11 << 30) | rexmit | (self.msgno & MSGNO_MASK);
        out.extend_from_slice(&word.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.dest.to_be_bytes());
    }

    fn decode(b: &[u8]) -> DataHeader {
        let w1 = word(b, 4);
        DataHeader {
            seq: word(b, 0) & SEQ_MASK,
            msgno: w1 & MSGNO_MASK,
            retransmitted: w1 & (1 << 26) != 0,
            timestamp: word(b, 8),
            dest: word(b, 12),
        }
    }
}

/// The kind of a handshake, as its 32-bit type field: the induction and
/// conclusion exchanges, and a listener's refusal (1000 + libsrt's code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeKind {
    Induction,
    Conclusion,
    /// Rendezvous and unknown kinds, as on the wire.
    Other(i32),
    /// The wire's 1000 + reason (so 2401 is libsrt's 1401).
    Rejection(i32),
}

impl HandshakeKind {
    fn wire(self) -> i32 {
        match self {
            HandshakeKind::Induction => 1,
            HandshakeKind::Conclusion => -1,
            HandshakeKind::Other(w) | HandshakeKind::Rejection(w) => w,
        }
    }

    fn of(w: i32) -> HandshakeKind {
        match w {
            1 => HandshakeKind::Induction,
            -1 => HandshakeKind::Conclusion,
            w if w >= 1000 => HandshakeKind::Rejection(w),
            w => HandshakeKind::Other(w),
        }
    }
}

/// The SRT handshake extension (HSREQ from the caller, HSRSP from the
/// listener): version, SRT_OPT_* flags and the TSBPD latencies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SrtExt {
    pub response: bool,
    /// major << 16 | minor << 8 | patch.
    pub version: u32,
    pub flags: u32,
    /// The latency the sender of this extension receives at, ms (upper 16 bits).
    pub rcv_latency_ms: u16,
    /// The latency it asks its peer to receive at, ms (lower 16 bits).
    pub snd_latency_ms: u16,
}

/// A handshake's control information (HSv4 induction, HSv5 conclusion).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    pub version: u32,
    pub encryption: u16,
    /// HSv4: socket type (2, datagram); HSv5 induction answer: the magic;
    /// HSv5 conclusion: the HS_EXT_* flags.
    pub extension: u16,
    pub isn: u32,
    pub mtu: u32,
    pub flow_window: u32,
    pub kind: HandshakeKind,
    pub socket_id: u32,
    pub cookie: u32,
    /// The peer's address as the sender sees it (IPv4: one little-endian
    /// word then zeros, as libsrt writes it).
    pub peer_ip: [u8; 16],
    pub srt: Option<SrtExt>,
    pub stream_id: Option<String>,
}

impl Handshake {
    /// The peer address field for `ip`.
    pub fn peer_ip_field(ip: IpAddr) -> [u8; 16] {
        match ip {
            IpAddr::V4(v4) => {
                let mut f = [0u8; 16];
                let mut o = v4.octets();
                o.reverse();
                f[..4].copy_from_slice(&o);
                f
            }
            IpAddr::V6(v6) => v6.octets(),
        }
    }
}

/// An acknowledgement. A light ACK (every 64 packets) carries only the
/// next expected sequence number and no ACK number; a full one (every
/// 10 ms) is numbered, carries the receiver's statistics, and is answered
/// with an ACKACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    /// The ACK number (0 on light and small ACKs).
    pub number: u32,
    /// Every packet before this sequence number was received.
    pub next_seq: u32,
    pub stats: Option<AckStats>,
}

/// What a full ACK reports (rates 0 when a small ACK leaves them out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AckStats {
    pub rtt_us: u32,
    pub rtt_var_us: u32,
    pub buffer_available: u32,
    pub packets_per_s: u32,
    /// Estimated link capacity, packets per second.
    pub capacity_pps: u32,
    pub receive_bytes_per_s: u32,
}

/// A control packet's information.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    Handshake(Handshake),
    KeepAlive,
    Ack(Ack),
    /// Lost sequence numbers as inclusive ranges (a single loss is a range
    /// of one).
    Nak(Vec<(u32, u32)>),
    Shutdown,
    AckAck(u32),
    /// The sender no longer has these packets: stop asking for them.
    DropRequest {
        msgno: u32,
        first: u32,
        last: u32,
    },
    /// Congestion warning, peer error, user-defined: not needed by a caller.
    Other(u16),
}

/// A control packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlPacket {
    pub timestamp: u32,
    pub dest: u32,
    pub control: Control,
}

/// A decoded datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    Data(DataHeader, &'a [u8]),
    Control(ControlPacket),
}

fn word(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn short(what: &'static str, need: usize, got: usize) -> PacketError {
    PacketError::Short { what, need, got }
}

/// Decodes one datagram.
pub fn decode(b: &[u8]) -> Result<Packet<'_>, PacketError> {
    if b.len() < HEADER_LEN {
        return Err(short("header", HEADER_LEN, b.len()));
    }
    if b[0] & 0x80 == 0 {
        return Ok(Packet::Data(DataHeader::decode(b), &b[HEADER_LEN..]));
    }
    let kind = u16::from_be_bytes([b[0], b[1]]) & 0x7FFF;
    let info = word(b, 4);
    let cif = &b[HEADER_LEN..];
    let control = match kind {
        T_HANDSHAKE => Control::Handshake(decode_handshake(cif)?),
        T_KEEPALIVE => Control::KeepAlive,
        T_ACK => Control::Ack(decode_ack(info, cif)?),
        T_NAK => Control::Nak(decode_losses(cif)),
        T_SHUTDOWN => Control::Shutdown,
        T_ACKACK => Control::AckAck(info),
        T_DROPREQ => {
            if cif.len() < 8 {
                return Err(short("drop request", HEADER_LEN + 8, b.len()));
            }
            Control::DropRequest {
                msgno: info,
                first: word(cif, 0) & SEQ_MASK,
                last: word(cif, 4) & SEQ_MASK,
            }
        }
        other => Control::Other(other),
    };
    Ok(Packet::Control(ControlPacket {
        timestamp: word(b, 8),
        dest: word(b, 12),
        control,
    }))
}

fn decode_ack(number: u32, cif: &[u8]) -> Result<Ack, PacketError> {
    if cif.len() < 4 {
        return Err(short("ACK", HEADER_LEN + 4, HEADER_LEN + cif.len()));
    }
    let next_seq = word(cif, 0) & SEQ_MASK;
    if cif.len() < 16 {
        return Ok(Ack {
            number: 0,
            next_seq,
            stats: None,
        });
    }
    let opt = |i: usize| {
        if cif.len() >= 4 * i + 4 {
            word(cif, 4 * i)
        } else {
            0
        }
    };
    Ok(Ack {
        number,
        next_seq,
        stats: Some(AckStats {
            rtt_us: word(cif, 4),
            rtt_var_us: word(cif, 8),
            buffer_available: word(cif, 12),
            packets_per_s: opt(4),
            capacity_pps: opt(5),
            receive_bytes_per_s: opt(6),
        }),
    })
}

/// A loss list: a word with the top bit set opens a range closed by the
/// next word; a word without it is a single loss.
fn decode_losses(cif: &[u8]) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    let mut words = cif.chunks_exact(4).map(|c| word(c, 0));
    while let Some(w) = words.next() {
        if w & 0x8000_0000 != 0 {
            let first = w & SEQ_MASK;
            match words.next() {
                Some(last) => out.push((first, last & SEQ_MASK)),
                None => out.push((first, first)),
            }
        } else {
            out.push((w, w));
        }
    }
    out
}

fn decode_handshake(cif: &[u8]) -> Result<Handshake, PacketError> {
    const FIXED: usize = 48;
    if cif.len() < FIXED {
        return Err(short(
            "handshake",
            HEADER_LEN + FIXED,
            HEADER_LEN + cif.len(),
        ));
    }
    let mut peer_ip = [0u8; 16];
    peer_ip.copy_from_slice(&cif[32..48]);
    let mut hs = Handshake {
        version: word(cif, 0),
        encryption: u16::from_be_bytes([cif[4], cif[5]]),
        extension: u16::from_be_bytes([cif[6], cif[7]]),
        isn: word(cif, 8) & SEQ_MASK,
        mtu: word(cif, 12),
        flow_window: word(cif, 16),
        kind: HandshakeKind::of(word(cif, 20) as i32),
        socket_id: word(cif, 24),
        cookie: word(cif, 28),
        peer_ip,
        srt: None,
        stream_id: None,
    };
    let mut rest = &cif[FIXED..];
    while rest.len() >= 4 {
        let ext = u16::from_be_bytes([rest[0], rest[1]]);
        let len = 4 * usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        let body = rest
            .get(4..4 + len)
            .ok_or(PacketError::BadExtension { ext })?;
        match ext {
            HSREQ | HSRSP if len >= 12 => {
                let lat = word(body, 8);
                hs.srt = Some(SrtExt {
                    response: ext == HSRSP,
                    version: word(body, 0),
                    flags: word(body, 4),
                    rcv_latency_ms: (lat >> 16) as u16,
                    snd_latency_ms: lat as u16,
                });
            }
            SID => hs.stream_id = Some(decode_stream_id(body)?),
            _ => {}
        }
        rest = &rest[4 + len..];
    }
    Ok(hs)
}

/// libsrt writes the streamid as 32-bit words in little-endian order,
/// zero-padded: "abcdef" is `d c b a 0 0 f e`.
fn decode_stream_id(body: &[u8]) -> Result<String, PacketError> {
    let mut s: Vec<u8> = body
        .chunks_exact(4)
        .flat_map(|c| [c[3], c[2], c[1], c[0]])
        .collect();
    while s.last() == Some(&0) {
        s.pop();
    }
    String::from_utf8(s).map_err(|_| PacketError::StreamIdNotUtf8)
}

fn encode_stream_id(sid: &str, out: &mut Vec<u8>) {
    for c in sid.as_bytes().chunks(4) {
        let mut w = [0u8; 4];
        w[..c.len()].copy_from_slice(c);
        w.reverse();
        out.extend_from_slice(&w);
    }
}

impl ControlPacket {
    /// The encoded datagram.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        let (kind, info) = match &self.control {
            Control::Handshake(_) => (T_HANDSHAKE, 0),
            Control::KeepAlive => (T_KEEPALIVE, 0),
            Control::Ack(a) => (T_ACK, a.number),
            Control::Nak(_) => (T_NAK, 0),
            Control::Shutdown => (T_SHUTDOWN, 0),
            Control::AckAck(n) => (T_ACKACK, *n),
            Control::DropRequest { msgno, .. } => (T_DROPREQ, *msgno),
            Control::Other(k) => (*k, 0),
        };
        out.extend_from_slice(&(0x8000 | kind).to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&info.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.dest.to_be_bytes());
        match &self.control {
            Control::Handshake(hs) => encode_handshake(hs, &mut out),
            Control::Ack(a) => {
                out.extend_from_slice(&a.next_seq.to_be_bytes());
                if let Some(s) = a.stats {
                    for w in [
                        s.rtt_us,
                        s.rtt_var_us,
                        s.buffer_available,
                        s.packets_per_s,
                        s.capacity_pps,
                        s.receive_bytes_per_s,
                    ] {
                        out.extend_from_slice(&w.to_be_bytes());
                    }
                }
            }
            Control::Nak(ranges) => {
                for &(first, last) in ranges {
                    if first == last {
                        out.extend_from_slice(&(first & SEQ_MASK).to_be_bytes());
                    } else {
                        out.extend_from_slice(&(0x8000_0000 | first).to_be_bytes());
                        out.extend_from_slice(&(last & SEQ_MASK).to_be_bytes());
                    }
                }
            }
            Control::DropRequest { first, last, .. } => {
                out.extend_from_slice(&first.to_be_bytes());
                out.extend_from_slice(&last.to_be_bytes());
            }
            // libsrt sends one unused word with these.
            Control::KeepAlive | Control::Shutdown | Control::AckAck(_) | Control::Other(_) => {
                out.extend_from_slice(&[0; 4])
            }
        }
        out
    }
}

fn encode_handshake(hs: &Handshake, out: &mut Vec<u8>) {
    out.extend_from_slice(&hs.version.to_be_bytes());
    out.extend_from_slice(&hs.encryption.to_be_bytes());
    out.extend_from_slice(&hs.extension.to_be_bytes());
    for w in [
        hs.isn,
        hs.mtu,
        hs.flow_window,
        hs.kind.wire() as u32,
        hs.socket_id,
        hs.cookie,
    ] {
        out.extend_from_slice(&w.to_be_bytes());
    }
    out.extend_from_slice(&hs.peer_ip);
    if let Some(x) = hs.srt {
        let ext = if x.response { HSRSP } else { HSREQ };
        out.extend_from_slice(&ext.to_be_bytes());
        out.extend_from_slice(&3u16.to_be_bytes());
        let lat = (u32::from(x.rcv_latency_ms) << 16) | u32::from(x.snd_latency_ms);
        for w in [x.version, x.flags, lat] {
            out.extend_from_slice(&w.to_be_bytes());
        }
    }
    if let Some(sid) = &hs.stream_id {
        out.extend_from_slice(&SID.to_be_bytes());
        out.extend_from_slice(&(sid.len().div_ceil(4) as u16).to_be_bytes());
        encode_stream_id(sid, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conclusion() -> Handshake {
        Handshake {
            version: 5,
            encryption: 0,
            extension: EXT_HSREQ | EXT_CONFIG,
            isn: 0x1234_5678,
            mtu: 1500,
            flow_window: 8192,
            kind: HandshakeKind::Conclusion,
            socket_id: 0x0BAD_CAFE,
            cookie: 0xDEAD_BEEF,
            peer_ip: Handshake::peer_ip_field("127.0.0.1".parse().unwrap()),
            srt: Some(SrtExt {
                response: false,
                version: 0x01_05_00,
                flags: 0x3F,
                rcv_latency_ms: 120,
                snd_latency_ms: 120,
            }),
            stream_id: Some("#!::r=live/abcdef".into()),
        }
    }

    fn round_trip(c: Control) {
        let p = ControlPacket {
            timestamp: 123_456,
            dest: 77,
            control: c,
        };
        let b = p.encode();
        assert_eq!(decode(&b).unwrap(), Packet::Control(p));
    }

    #[test]
    fn conclusion_bytes_are_the_drafts_layout() {
        let p = ControlPacket {
            timestamp: 0x0102_0304,
            dest: 0,
            control: Control::Handshake(conclusion()),
        };
        let b = p.encode();
        // Header: control flag, type 0, timestamp, destination 0.
        assert_eq!(
            &b[..16],
            &[0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 0, 0, 0, 0]
        );
        // Version 5, encryption 0, HSREQ | CONFIG, then type -1 at CIF word 5.
        assert_eq!(&b[16..24], &[0, 0, 0, 5, 0, 0, 0, 5]);
        assert_eq!(&b[36..40], &[0xFF; 4]);
        // 127.0.0.1 as libsrt writes it: one little-endian word.
        assert_eq!(&b[48..52], &[1, 0, 0, 127]);
        // HSREQ: type 1, 3 words, version, flags, latencies.
        assert_eq!(&b[64..68], &[0, 1, 0, 3]);
        assert_eq!(&b[76..80], &[0, 120, 0, 120]);
        // SID: type 5, 5 words, each word's bytes reversed, zero padded.
        assert_eq!(&b[80..84], &[0, 5, 0, 5]);
        assert_eq!(&b[84..92], b"::!#il=r");
        assert_eq!(&b[100..104], &[0, 0, 0, b'f']);
        assert_eq!(b.len(), 104);
        assert_eq!(decode(&b).unwrap(), Packet::Control(p));
    }

    #[test]
    fn stream_ids_of_every_length_round_trip() {
        for sid in ["", "a", "ab", "abc", "abcd", "#!::r=live/s,m=publish"] {
            let mut hs = conclusion();
            hs.stream_id = Some(sid.into());
            round_trip(Control::Handshake(hs));
        }
    }

    #[test]
    fn rejection_is_the_handshake_type_1000_plus_code() {
        let mut hs = conclusion();
        hs.kind = HandshakeKind::Rejection(2401);
        hs.srt = None;
        hs.stream_id = None;
        let b = ControlPacket {
            timestamp: 0,
            dest: 9,
            control: Control::Handshake(hs.clone()),
        }
        .encode();
        assert_eq!(&b[36..40], &2401u32.to_be_bytes());
        round_trip(Control::Handshake(hs));
    }

    #[test]
    fn control_packets_round_trip() {
        round_trip(Control::KeepAlive);
        round_trip(Control::Shutdown);
        round_trip(Control::AckAck(42));
        round_trip(Control::DropRequest {
            msgno: 0,
            first: 10,
            last: 20,
        });
        round_trip(Control::Nak(vec![(5, 5), (7, 12), (SEQ_MASK, SEQ_MASK)]));
        round_trip(Control::Ack(Ack {
            number: 3,
            next_seq: 1000,
            stats: Some(AckStats {
                rtt_us: 100_000,
                rtt_var_us: 50_000,
                buffer_available: 8000,
                packets_per_s: 30,
                capacity_pps: 50_000,
                receive_bytes_per_s: 40_000,
            }),
        }));
        round_trip(Control::Ack(Ack {
            number: 0,
            next_seq: 1000,
            stats: None,
        }));
    }

    #[test]
    fn data_header_round_trips_with_flags() {
        let h = DataHeader {
            seq: SEQ_MASK,
            msgno: 5,
            retransmitted: true,
            timestamp: 9,
            dest: 3,
        };
        let mut b = Vec::new();
        h.encode(&mut b);
        b.extend_from_slice(b"ts");
        assert_eq!(b[0] & 0x80, 0);
        // Solo position (11), not in order, no key, retransmitted.
        assert_eq!(b[4], 0b1100_0100);
        assert_eq!(decode(&b).unwrap(), Packet::Data(h, b"ts".as_slice()));
    }

    #[test]
    fn short_and_broken_input_is_an_error_not_a_panic() {
        assert!(matches!(decode(&[0x80; 8]), Err(PacketError::Short { .. })));
        let mut hs = ControlPacket {
            timestamp: 0,
            dest: 0,
            control: Control::Handshake(conclusion()),
        }
        .encode();
        assert!(decode(&hs[..40]).is_err());
        hs[82] = 0x40; // the SID extension claims 16 KB
        assert_eq!(decode(&hs), Err(PacketError::BadExtension { ext: SID }));
        let ack = [0x80, 2, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(decode(&ack).is_err());
    }
}
