//! The caller's side of one live SRT connection as a state machine without
//! I/O: the HSv5 handshake (induction, then conclusion with the SRT
//! extension and the streamid), then sequence and message numbers,
//! timestamps relative to the connection start, a send buffer kept for
//! retransmission on NAK and freed by ACKs, ACKACK for every full ACK, RTT
//! from the ACKs, too-late packet drop (TLPKTDROP), keepalive and the peer
//! idle timeout. Time is passed in; what it wants sent is queued as
//! datagrams for the driver to take with [`Sender::poll_transmit`].

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::packet::{
    self, Ack, Control, ControlPacket, DataHeader, EXT_CONFIG, EXT_HSREQ, Handshake, HandshakeKind,
    MSGNO_MASK, OPT_HAICRYPT, OPT_NAKREPORT, OPT_REXMITFLG, OPT_TLPKTDROP, OPT_TSBPDRCV,
    OPT_TSBPDSND, Packet, SEQ_MASK, SRT_MAGIC, SrtExt,
};

/// How often an unanswered handshake is sent again (libsrt: 250 ms).
pub const HANDSHAKE_RESEND: Duration = Duration::from_millis(250);
/// A keepalive goes out when nothing was sent for this long.
pub const KEEPALIVE: Duration = Duration::from_secs(1);
/// libsrt's floor of the sender's drop threshold (SRT_TLPKTDROP_MINTHRESHOLD_MS).
const DROP_FLOOR: Duration = Duration::from_secs(1);
/// libsrt adds two ACK periods to it.
const DROP_SLACK: Duration = Duration::from_millis(20);
/// The SRT version announced: 1.5.0 (a live sender without groups or
/// packet filters: nothing newer is needed).
const SRT_VERSION: u32 = 0x01_05_00;
const MTU: u32 = 1500;
const FLOW_WINDOW: u32 = 8192;

/// How to call.
#[derive(Debug, Clone)]
pub struct Config {
    /// Our socket id (random, non-zero).
    pub socket_id: u32,
    /// The first data sequence number (random, 31 bits).
    pub isn: u32,
    /// The latency asked for.
    pub latency: Duration,
    /// A peer silent this long ends the connection.
    pub idle_timeout: Duration,
    pub stream_id: String,
    /// The listener's address, for the handshake's peer address field.
    pub peer_ip: IpAddr,
}

/// Why the connection is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The listener refused, with libsrt's code (the wire's type - 1000).
    Rejected(i32),
    /// The listener's induction answer is not HSv5.
    NotHsv5(u32),
    /// The peer sent a shutdown.
    Shutdown,
    /// Nothing came from the peer for the idle timeout.
    Idle,
    /// We closed it.
    Closed,
}

/// Where the connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Induction,
    Conclusion { cookie: u32 },
    Connected,
    Ended(Ended),
}

/// What an input changed, for the driver to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    /// The induction was answered: the conclusion is queued.
    Induced,
    /// The conclusion was answered: data may flow.
    Connected,
    /// The first ACK came.
    FirstAck,
    /// The connection ended.
    Ended(Ended),
}

/// Counters of the connection, SRT's own numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Data packets sent, retransmissions included.
    pub packets_sent: u64,
    pub packets_retransmitted: u64,
    /// Packets dropped from the send buffer as too late (TLPKTDROP).
    pub packets_dropped: u64,
    /// Packets the peer reported lost (NAKs), each counted once however
    /// often the periodic NAK reports repeat it.
    pub packets_lost: u64,
    /// ACKs received, full and light.
    pub acks: u64,
    /// Bytes of data packets sent, SRT headers and retransmissions included.
    pub bytes_sent: u64,
    /// The RTT of the last full ACK, µs (0 before one).
    pub rtt_us: u32,
    pub rtt_var_us: u32,
    /// The link capacity of the last full ACK, packets/s.
    pub capacity_pps: u32,
}

struct Sent {
    src_time: Instant,
    /// When it was last sent again.
    resent: Option<Instant>,
    timestamp: u32,
    msgno: u32,
    payload: Bytes,
}

/// One caller connection.
pub struct Sender {
    cfg: Config,
    start: Instant,
    state: State,
    /// The listener's socket id for this connection (from the conclusion answer).
    peer: u32,
    /// The latency both settled on.
    latency: Duration,
    handshake_sent: Option<Instant>,
    induced_at: Option<Instant>,
    /// Sequence number of `buffer[0]`.
    front_seq: u32,
    next_seq: u32,
    next_msgno: u32,
    buffer: VecDeque<Sent>,
    last_sent: Instant,
    last_heard: Instant,
    /// Losses up to (not including) this sequence number were counted.
    lost_below: u32,
    /// When the last drop request went out.
    drop_asked: Option<Instant>,
    counters: Counters,
    out: VecDeque<Vec<u8>>,
}

/// `a - b` on the 31-bit sequence circle.
fn seq_diff(a: u32, b: u32) -> i32 {
    ((a.wrapping_sub(b) << 1) as i32) >> 1
}

fn seq_add(a: u32, n: u32) -> u32 {
    a.wrapping_add(n) & SEQ_MASK
}

impl Sender {
    /// A connection starting now: the induction is the first thing to send.
    pub fn new(cfg: Config, now: Instant) -> Sender {
        let isn = cfg.isn & SEQ_MASK;
        Sender {
            latency: cfg.latency,
            cfg,
            start: now,
            state: State::Induction,
            peer: 0,
            handshake_sent: None,
            induced_at: None,
            front_seq: isn,
            next_seq: isn,
            next_msgno: 1,
            buffer: VecDeque::new(),
            last_sent: now,
            last_heard: now,
            lost_below: isn,
            drop_asked: None,
            counters: Counters::default(),
            out: VecDeque::new(),
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// The latency both peers settled on (the larger of the two asked).
    pub fn latency(&self) -> Duration {
        self.latency
    }

    /// When the induction was answered.
    pub fn induced_at(&self) -> Option<Instant> {
        self.induced_at
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Packets held for retransmission.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// The next datagram to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    /// When the handshake must be sent (again): at once when it never was.
    pub fn handshake_due(&self) -> Option<Instant> {
        match self.state {
            State::Induction | State::Conclusion { .. } => Some(
                self.handshake_sent
                    .map_or(self.start, |at| at + HANDSHAKE_RESEND),
            ),
            _ => None,
        }
    }

    fn timestamp(&self, at: Instant) -> u32 {
        at.saturating_duration_since(self.start).as_micros() as u32
    }

    fn control(&mut self, now: Instant, dest: u32, control: Control) {
        let p = ControlPacket {
            timestamp: self.timestamp(now),
            dest,
            control,
        };
        self.out.push_back(p.encode());
        self.last_sent = now;
    }

    fn handshake(&self, kind: HandshakeKind, cookie: u32) -> Handshake {
        let conclusion = kind == HandshakeKind::Conclusion;
        let lat = self.cfg.latency.as_millis().min(u128::from(u16::MAX)) as u16;
        Handshake {
            // The induction is HSv4-shaped (version 4, datagram socket
            // type); the listener answers with 5 and its magic.
            version: if conclusion { 5 } else { 4 },
            encryption: 0,
            extension: if conclusion {
                EXT_HSREQ | EXT_CONFIG
            } else {
                2
            },
            isn: self.front_seq,
            mtu: MTU,
            flow_window: FLOW_WINDOW,
            kind,
            socket_id: self.cfg.socket_id,
            cookie,
            peer_ip: Handshake::peer_ip_field(self.cfg.peer_ip),
            srt: conclusion.then_some(SrtExt {
                response: false,
                version: SRT_VERSION,
                flags: OPT_TSBPDSND
                    | OPT_TSBPDRCV
                    | OPT_HAICRYPT
                    | OPT_TLPKTDROP
                    | OPT_NAKREPORT
                    | OPT_REXMITFLG,
                rcv_latency_ms: lat,
                snd_latency_ms: lat,
            }),
            stream_id: conclusion.then(|| self.cfg.stream_id.clone()),
        }
    }

    /// Queues the handshake of the current state if it is due.
    pub fn poll_handshake(&mut self, now: Instant) {
        if self.handshake_due().is_none_or(|due| now < due) {
            return;
        }
        let (kind, cookie) = match self.state {
            State::Induction => (HandshakeKind::Induction, 0),
            State::Conclusion { cookie } => (HandshakeKind::Conclusion, cookie),
            _ => return,
        };
        let hs = self.handshake(kind, cookie);
        self.control(now, 0, Control::Handshake(hs));
        self.handshake_sent = Some(now);
    }

    /// Takes one datagram from the peer. Undecodable bytes are an error
    /// and change nothing.
    pub fn handle(
        &mut self,
        datagram: &[u8],
        now: Instant,
    ) -> Result<Option<Update>, packet::PacketError> {
        let Packet::Control(p) = packet::decode(datagram)? else {
            // A listener sends no data to a publisher.
            self.last_heard = now;
            return Ok(None);
        };
        if matches!(self.state, State::Ended(_)) {
            return Ok(None);
        }
        if p.dest != self.cfg.socket_id && p.dest != 0 {
            return Ok(None);
        }
        self.last_heard = now;
        Ok(match p.control {
            Control::Handshake(hs) => self.on_handshake(hs, now),
            Control::Ack(ack) => self.on_ack(ack, now),
            Control::Nak(losses) => {
                self.on_nak(&losses, now);
                None
            }
            Control::Shutdown => self.end(Ended::Shutdown),
            _ => None,
        })
    }

    fn end(&mut self, why: Ended) -> Option<Update> {
        self.state = State::Ended(why);
        self.buffer.clear();
        Some(Update::Ended(why))
    }

    fn on_handshake(&mut self, hs: Handshake, now: Instant) -> Option<Update> {
        if let HandshakeKind::Rejection(wire) = hs.kind {
            if matches!(self.state, State::Induction | State::Conclusion { .. }) {
                return self.end(Ended::Rejected(wire - 1000));
            }
            return None;
        }
        match (self.state, hs.kind) {
            (State::Induction, HandshakeKind::Induction) => {
                if hs.version != 5 || hs.extension != SRT_MAGIC {
                    return self.end(Ended::NotHsv5(hs.version));
                }
                self.state = State::Conclusion { cookie: hs.cookie };
                self.induced_at = Some(now);
                self.handshake_sent = None;
                self.poll_handshake(now);
                Some(Update::Induced)
            }
            (State::Conclusion { .. }, HandshakeKind::Conclusion) => {
                self.peer = hs.socket_id;
                if let Some(x) = hs.srt {
                    let theirs = Duration::from_millis(u64::from(x.rcv_latency_ms));
                    self.latency = self.latency.max(theirs);
                }
                self.state = State::Connected;
                Some(Update::Connected)
            }
            // Repeats of answers already taken.
            _ => None,
        }
    }

    fn on_ack(&mut self, ack: Ack, now: Instant) -> Option<Update> {
        if self.state != State::Connected {
            return None;
        }
        self.counters.acks += 1;
        if let Some(s) = ack.stats {
            self.counters.rtt_us = s.rtt_us;
            self.counters.rtt_var_us = s.rtt_var_us;
            self.counters.capacity_pps = s.capacity_pps;
            if ack.number != 0 {
                self.control(now, self.peer, Control::AckAck(ack.number));
            }
        }
        // Everything before next_seq arrived: free it.
        let acked = seq_diff(ack.next_seq, self.front_seq);
        let sent = seq_diff(self.next_seq, self.front_seq);
        if acked > 0 && acked <= sent {
            self.buffer.drain(..acked as usize);
            self.front_seq = ack.next_seq;
        }
        (self.counters.acks == 1).then_some(Update::FirstAck)
    }

    /// Retransmits every lost packet still held; the ones no longer held
    /// (dropped as too late) are answered with a drop request.
    fn on_nak(&mut self, losses: &[(u32, u32)], now: Instant) {
        if self.state != State::Connected {
            return;
        }
        // Drop requests go once per RTO: the receiver takes what they name
        // off its loss list, so a repeat only replaces a lost one.
        let rto = self.rto();
        let may_ask = self
            .drop_asked
            .is_none_or(|at| now.saturating_duration_since(at) >= rto);
        let mut asked = false;
        let sent = seq_diff(self.next_seq, self.front_seq);
        for &(first, last) in losses {
            let n = seq_diff(last, first);
            if n < 0 {
                continue;
            }
            // Count what lies past the losses already counted.
            let new = seq_diff(last, self.lost_below) + 1;
            if new > 0 {
                self.counters.packets_lost += new.min(n + 1) as u64;
                self.lost_below = seq_add(last, 1);
            }
            let from = seq_diff(first, self.front_seq);
            let to = seq_diff(last, self.front_seq).min(sent - 1);
            if from < 0 && may_ask {
                let gone_last = if to < 0 {
                    last
                } else {
                    seq_add(self.front_seq, SEQ_MASK)
                };
                asked = true;
                self.control(
                    now,
                    self.peer,
                    Control::DropRequest {
                        msgno: 0,
                        first,
                        last: gone_last,
                    },
                );
            }
            for i in from.max(0)..=to {
                self.retransmit(i as usize, now);
            }
        }
        if asked {
            self.drop_asked = Some(now);
        }
    }

    /// Sends a held packet again, unless it was within one RTO: the
    /// periodic NAK reports repeat a loss until the retransmission arrived.
    fn retransmit(&mut self, index: usize, now: Instant) {
        let rto = self.rto();
        let Some(s) = self.buffer.get_mut(index) else {
            return;
        };
        if s.resent
            .is_some_and(|at| now.saturating_duration_since(at) < rto)
        {
            return;
        }
        s.resent = Some(now);
        let header = DataHeader {
            seq: seq_add(self.front_seq, index as u32),
            msgno: s.msgno,
            retransmitted: true,
            timestamp: s.timestamp,
            dest: self.peer,
        };
        let mut d = Vec::with_capacity(packet::HEADER_LEN + s.payload.len());
        header.encode(&mut d);
        d.extend_from_slice(&s.payload);
        self.counters.packets_retransmitted += 1;
        self.counters.packets_sent += 1;
        self.counters.bytes_sent += d.len() as u64;
        self.out.push_back(d);
        self.last_sent = now;
    }

    /// How long a retransmission gets to arrive before a NAK for the same
    /// packet is answered again: RTT + 4 RTT variance, at least 20 ms (two
    /// ACK periods); 100 ms before an ACK reported an RTT (libsrt's initial).
    fn rto(&self) -> Duration {
        let c = self.counters;
        let us = if c.rtt_us == 0 {
            100_000
        } else {
            u64::from(c.rtt_us) + 4 * u64::from(c.rtt_var_us)
        };
        Duration::from_micros(us).max(Duration::from_millis(20))
    }

    /// Encodes `payload` (its source time `src_time`) as the next data
    /// packet into `into` (cleared first) and keeps it for retransmission.
    /// Nothing is written unless connected.
    pub fn send(&mut self, src_time: Instant, payload: Bytes, now: Instant, into: &mut Vec<u8>) {
        into.clear();
        if self.state != State::Connected {
            return;
        }
        self.drop_too_late(now);
        let timestamp = self.timestamp(src_time);
        let header = DataHeader {
            seq: self.next_seq,
            msgno: self.next_msgno,
            retransmitted: false,
            timestamp,
            dest: self.peer,
        };
        header.encode(into);
        into.extend_from_slice(&payload);
        self.buffer.push_back(Sent {
            src_time,
            resent: None,
            timestamp,
            msgno: self.next_msgno,
            payload,
        });
        self.next_seq = seq_add(self.next_seq, 1);
        self.next_msgno = (self.next_msgno % MSGNO_MASK) + 1;
        self.counters.packets_sent += 1;
        self.counters.bytes_sent += into.len() as u64;
        self.last_sent = now;
    }

    /// The send buffer keeps a packet as long as libsrt's sender does: the
    /// latency, at least 1 s, and two ACK periods.
    fn drop_too_late(&mut self, now: Instant) {
        let keep = self.latency.max(DROP_FLOOR) + DROP_SLACK;
        while let Some(s) = self.buffer.front() {
            if now.saturating_duration_since(s.src_time) <= keep {
                break;
            }
            self.buffer.pop_front();
            self.front_seq = seq_add(self.front_seq, 1);
            self.counters.packets_dropped += 1;
        }
    }

    /// Timers, checked whenever the driver wakes: the peer idle timeout,
    /// the keepalive, the handshake resend, too-late drop.
    pub fn tick(&mut self, now: Instant) -> Option<Update> {
        match self.state {
            State::Ended(_) => None,
            State::Induction | State::Conclusion { .. } => {
                self.poll_handshake(now);
                None
            }
            State::Connected => {
                if now.saturating_duration_since(self.last_heard) >= self.cfg.idle_timeout {
                    return self.end(Ended::Idle);
                }
                if now.saturating_duration_since(self.last_sent) >= KEEPALIVE {
                    self.control(now, self.peer, Control::KeepAlive);
                }
                self.drop_too_late(now);
                None
            }
        }
    }

    /// When [`Sender::tick`] next has something to do.
    pub fn next_timer(&self) -> Option<Instant> {
        match self.state {
            State::Ended(_) => None,
            State::Induction | State::Conclusion { .. } => self.handshake_due(),
            State::Connected => {
                Some((self.last_heard + self.cfg.idle_timeout).min(self.last_sent + KEEPALIVE))
            }
        }
    }

    /// Ends the connection: a shutdown goes to a connected peer.
    pub fn close(&mut self, now: Instant) {
        if self.state == State::Connected {
            self.control(now, self.peer, Control::Shutdown);
        }
        self.end(Ended::Closed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: u32 = 0x1111;
    const PEER: u32 = 0x2222;
    const ISN: u32 = SEQ_MASK - 2; // wraps after three packets

    fn cfg() -> Config {
        Config {
            socket_id: ME,
            isn: ISN,
            latency: Duration::from_millis(120),
            idle_timeout: Duration::from_secs(5),
            stream_id: "#!::r=live/s".into(),
            peer_ip: "127.0.0.1".parse().unwrap(),
        }
    }

    fn decoded(d: &[u8]) -> Packet<'_> {
        packet::decode(d).unwrap()
    }

    fn control(d: &[u8]) -> ControlPacket {
        match decoded(d) {
            Packet::Control(c) => c,
            p => panic!("not control: {p:?}"),
        }
    }

    fn hs_of(d: &[u8]) -> Handshake {
        match control(d).control {
            Control::Handshake(h) => h,
            c => panic!("not a handshake: {c:?}"),
        }
    }

    fn from_peer(control: Control) -> Vec<u8> {
        ControlPacket {
            timestamp: 0,
            dest: ME,
            control,
        }
        .encode()
    }

    fn listener_answer(kind: HandshakeKind, rcv_latency_ms: u16) -> Vec<u8> {
        let conclusion = kind == HandshakeKind::Conclusion;
        from_peer(Control::Handshake(Handshake {
            version: 5,
            encryption: 0,
            extension: if conclusion { EXT_HSREQ } else { SRT_MAGIC },
            isn: ISN,
            mtu: 1500,
            flow_window: 8192,
            kind,
            socket_id: PEER,
            cookie: 0xC00C,
            peer_ip: [0; 16],
            srt: conclusion.then_some(SrtExt {
                response: true,
                version: 0x01_05_00,
                flags: 0x3F,
                rcv_latency_ms,
                snd_latency_ms: 120,
            }),
            stream_id: None,
        }))
    }

    /// A connection through both exchanges, its handshakes taken out.
    fn connected(t0: Instant) -> Sender {
        let mut s = Sender::new(cfg(), t0);
        s.poll_handshake(t0);
        s.poll_transmit().unwrap();
        let t1 = t0 + Duration::from_millis(1);
        s.handle(&listener_answer(HandshakeKind::Induction, 0), t1)
            .unwrap();
        s.poll_transmit().unwrap();
        let up = s.handle(&listener_answer(HandshakeKind::Conclusion, 200), t1);
        assert_eq!(up, Ok(Some(Update::Connected)));
        s
    }

    fn send_n(s: &mut Sender, t: Instant, n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| {
                let mut d = Vec::new();
                s.send(t, Bytes::from(vec![i as u8; 188]), t, &mut d);
                d
            })
            .collect()
    }

    #[test]
    fn handshake_is_induction_then_conclusion_with_hsreq_and_streamid() {
        let t0 = Instant::now();
        let mut s = Sender::new(cfg(), t0);
        s.poll_handshake(t0);
        let ind = s.poll_transmit().unwrap();
        assert_eq!(control(&ind).dest, 0);
        let h = hs_of(&ind);
        assert_eq!(
            (h.version, h.extension, h.kind),
            (4, 2, HandshakeKind::Induction)
        );
        assert_eq!((h.socket_id, h.isn, h.cookie), (ME, ISN, 0));
        // Unanswered: sent again after 250 ms, not before.
        s.poll_handshake(t0 + Duration::from_millis(249));
        assert!(s.poll_transmit().is_none());
        s.tick(t0 + HANDSHAKE_RESEND);
        assert_eq!(
            hs_of(&s.poll_transmit().unwrap()).kind,
            HandshakeKind::Induction
        );

        let t1 = t0 + Duration::from_millis(300);
        let up = s.handle(&listener_answer(HandshakeKind::Induction, 0), t1);
        assert_eq!(up, Ok(Some(Update::Induced)));
        assert_eq!(s.induced_at(), Some(t1));
        let con = s.poll_transmit().unwrap();
        let c = control(&con);
        assert_eq!((c.dest, c.timestamp), (0, 300_000));
        let h = hs_of(&con);
        assert_eq!(h.version, 5);
        assert_eq!(h.extension, EXT_HSREQ | EXT_CONFIG);
        assert_eq!((h.kind, h.cookie), (HandshakeKind::Conclusion, 0xC00C));
        assert_eq!(h.stream_id.as_deref(), Some("#!::r=live/s"));
        let x = h.srt.unwrap();
        assert!(!x.response);
        assert_eq!((x.rcv_latency_ms, x.snd_latency_ms), (120, 120));
        assert_eq!(x.flags & OPT_TSBPDSND, OPT_TSBPDSND);

        // The listener asks for more latency: the larger one holds.
        let up = s.handle(&listener_answer(HandshakeKind::Conclusion, 200), t1);
        assert_eq!(up, Ok(Some(Update::Connected)));
        assert_eq!(s.state(), State::Connected);
        assert_eq!(s.latency(), Duration::from_millis(200));
        // A repeated answer changes nothing.
        let again = s.handle(&listener_answer(HandshakeKind::Conclusion, 200), t1);
        assert_eq!(again, Ok(None));
    }

    #[test]
    fn rejection_maps_to_the_libsrt_code() {
        for (state_at, wire, code) in [(0, 2401, 1401), (1, 2409, 1409), (1, 1005, 5)] {
            let t0 = Instant::now();
            let mut s = Sender::new(cfg(), t0);
            s.poll_handshake(t0);
            if state_at == 1 {
                s.handle(&listener_answer(HandshakeKind::Induction, 0), t0)
                    .unwrap();
            }
            let mut rej = hs_of(&listener_answer(HandshakeKind::Induction, 0));
            rej.kind = HandshakeKind::Rejection(wire);
            let up = s.handle(&from_peer(Control::Handshake(rej)), t0).unwrap();
            assert_eq!(up, Some(Update::Ended(Ended::Rejected(code))));
            assert_eq!(s.state(), State::Ended(Ended::Rejected(code)));
        }
    }

    #[test]
    fn data_packets_number_and_stamp_from_the_start() {
        let t0 = Instant::now();
        let mut s = connected(t0);
        let t = t0 + Duration::from_millis(40);
        let sent = send_n(&mut s, t, 4);
        let seqs: Vec<u32> = sent
            .iter()
            .map(|d| match decoded(d) {
                Packet::Data(h, p) => {
                    assert_eq!(
                        (h.timestamp, h.dest, h.retransmitted),
                        (40_000, PEER, false)
                    );
                    assert_eq!(p.len(), 188);
                    h.seq
                }
                p => panic!("{p:?}"),
            })
            .collect();
        assert_eq!(seqs, [ISN, ISN + 1, SEQ_MASK, 0]);
        let c = s.counters();
        assert_eq!((c.packets_sent, c.bytes_sent), (4, 4 * 204));
    }

    #[test]
    fn nak_range_retransmits_exactly_those_packets() {
        let t0 = Instant::now();
        let mut s = connected(t0);
        send_n(&mut s, t0, 6);
        // ISN+1 ..= 0 (across the wrap) and the single 2 (seq of the 6th).
        let nak = from_peer(Control::Nak(vec![(ISN + 1, 0), (2, 2)]));
        s.handle(&nak, t0).unwrap();
        let mut again = Vec::new();
        while let Some(d) = s.poll_transmit() {
            match decoded(&d) {
                Packet::Data(h, p) => {
                    assert!(h.retransmitted);
                    again.push((h.seq, p[0]));
                }
                p => panic!("only data expected: {p:?}"),
            }
        }
        assert_eq!(again, [(ISN + 1, 1), (SEQ_MASK, 2), (0, 3), (2, 5)]);
        let c = s.counters();
        assert_eq!(
            (c.packets_retransmitted, c.packets_lost, c.packets_sent),
            (4, 4, 10)
        );
        // A periodic report repeating the losses within the RTO (100 ms
        // before an RTT is known) sends nothing and counts no new loss.
        s.handle(&nak, t0 + Duration::from_millis(99)).unwrap();
        assert!(s.poll_transmit().is_none());
        assert_eq!(s.counters().packets_lost, 4);
        // After it, the packets go again; still no new loss.
        s.handle(&nak, t0 + Duration::from_millis(100)).unwrap();
        assert_eq!(std::iter::from_fn(|| s.poll_transmit()).count(), 4);
        assert_eq!(s.counters().packets_lost, 4);
    }

    #[test]
    fn ack_frees_the_buffer_and_full_acks_get_an_ackack_and_rtt() {
        let t0 = Instant::now();
        let mut s = connected(t0);
        send_n(&mut s, t0, 5);
        assert_eq!(s.buffered(), 5);
        let light = Ack {
            number: 0,
            next_seq: SEQ_MASK,
            stats: None,
        };
        let up = s.handle(&from_peer(Control::Ack(light)), t0).unwrap();
        assert_eq!(up, Some(Update::FirstAck));
        assert_eq!(s.buffered(), 3);
        assert!(s.poll_transmit().is_none(), "no ACKACK for a light ACK");
        let full = Ack {
            number: 7,
            next_seq: 1,
            stats: Some(packet::AckStats {
                rtt_us: 2500,
                capacity_pps: 1000,
                ..Default::default()
            }),
        };
        assert_eq!(s.handle(&from_peer(Control::Ack(full)), t0).unwrap(), None);
        assert_eq!(s.buffered(), 1);
        let c = control(&s.poll_transmit().unwrap());
        assert_eq!((c.dest, c.control), (PEER, Control::AckAck(7)));
        assert_eq!((s.counters().rtt_us, s.counters().acks), (2500, 2));
        // An ACK beyond what was sent is ignored, not a panic.
        let bogus = Ack {
            number: 0,
            next_seq: 1000,
            stats: None,
        };
        s.handle(&from_peer(Control::Ack(bogus)), t0).unwrap();
        assert_eq!(s.buffered(), 1);
    }

    #[test]
    fn too_late_packets_are_dropped_and_a_nak_for_them_gets_a_drop_request() {
        let t0 = Instant::now();
        let mut s = connected(t0);
        send_n(&mut s, t0, 2);
        // Held for max(latency, 1 s) + 20 ms, then dropped.
        s.tick(t0 + Duration::from_millis(1020));
        assert_eq!(s.buffered(), 2);
        let late = t0 + Duration::from_millis(1021);
        s.tick(late);
        assert_eq!(s.buffered(), 0);
        assert_eq!(s.counters().packets_dropped, 2);
        while let Some(d) = s.poll_transmit() {
            assert_eq!(control(&d).control, Control::KeepAlive);
        }
        s.handle(&from_peer(Control::Nak(vec![(ISN, ISN + 1)])), late)
            .unwrap();
        let c = control(&s.poll_transmit().unwrap());
        assert_eq!(
            c.control,
            Control::DropRequest {
                msgno: 0,
                first: ISN,
                last: ISN + 1
            }
        );
        assert!(s.poll_transmit().is_none());
        // The next periodic report within the RTO gets no second request.
        s.handle(&from_peer(Control::Nak(vec![(ISN, ISN + 1)])), late)
            .unwrap();
        assert!(s.poll_transmit().is_none());
    }

    #[test]
    fn keepalive_after_a_quiet_second_and_idle_peer_ends_it() {
        let t0 = Instant::now();
        let mut s = connected(t0);
        let t1 = t0 + Duration::from_millis(1);
        assert_eq!(s.next_timer(), Some(t1 + KEEPALIVE));
        s.tick(t1 + Duration::from_millis(999));
        assert!(s.poll_transmit().is_none());
        s.tick(t1 + KEEPALIVE);
        let c = control(&s.poll_transmit().unwrap());
        assert_eq!(c.control, Control::KeepAlive);
        // Heard from 1 ms in; silent for the idle timeout (5 s) is the end.
        assert_eq!(s.tick(t1 + Duration::from_millis(4999)), None);
        assert_eq!(
            s.tick(t1 + Duration::from_secs(5)),
            Some(Update::Ended(Ended::Idle))
        );
        let mut d = Vec::new();
        s.send(t1, Bytes::from_static(b"x"), t1, &mut d);
        assert!(d.is_empty(), "nothing is sent once ended");
    }

    #[test]
    fn shutdown_from_the_peer_and_close_by_us() {
        let t0 = Instant::now();
        let mut s = connected(t0);
        let up = s.handle(&from_peer(Control::Shutdown), t0).unwrap();
        assert_eq!(up, Some(Update::Ended(Ended::Shutdown)));
        let mut s = connected(t0);
        s.close(t0);
        assert_eq!(
            control(&s.poll_transmit().unwrap()).control,
            Control::Shutdown
        );
        assert_eq!(s.state(), State::Ended(Ended::Closed));
    }

    #[test]
    fn an_induction_answer_without_hsv5_ends_the_call() {
        let t0 = Instant::now();
        let mut s = Sender::new(cfg(), t0);
        s.poll_handshake(t0);
        let mut h = hs_of(&listener_answer(HandshakeKind::Induction, 0));
        h.version = 4;
        h.extension = 2;
        let up = s.handle(&from_peer(Control::Handshake(h)), t0).unwrap();
        assert_eq!(up, Some(Update::Ended(Ended::NotHsv5(4))));
    }
}
