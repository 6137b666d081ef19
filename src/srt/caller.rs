//! SRT caller: dial an SRT listener with a streamid and send TS payloads.
//!
//! Drives the sans-I/O [`Sender`] over one connected UDP socket, inside the
//! publisher's own task: no task and no timer of its own. [`Caller::wait`]
//! waits for the socket or the publisher's deadline and takes every control
//! packet that has come; [`Caller::send`] writes a data packet at once. It
//! hands back plain values: a connected [`Caller`] with its induction and
//! conclusion times, a [`CallError`] (timeout, or the listener's
//! [`Rejection`] with its libsrt code), and [`SrtStats`] snapshots.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::sender::{self, Ended, Sender, State, Update};

/// libsrt's default latency; Tencent suggests more on long paths.
pub const DEFAULT_LATENCY: Duration = Duration::from_millis(120);

/// Bytes of a data packet on the wire besides its TS payload: SRT, UDP and
/// IPv4 headers (libsrt counts the same for its bandwidth figure).
const PACKET_OVERHEAD: u64 = 16 + 8 + 20;
/// The TS payload of one data packet: 7 TS packets.
const PAYLOAD: u64 = 1316;
/// A datagram larger than the MTU is not SRT.
const RECV_BUF: usize = 1500;
/// Datagrams taken from the socket per drain.
const DRAIN_MAX: usize = 64;

/// How to call.
#[derive(Debug, Clone, Copy)]
pub struct CallerConfig {
    /// SRT latency (TSBPD) asked for; the peers settle on the larger.
    pub latency: Duration,
    /// Bound of the handshake.
    pub timeout: Duration,
    /// A peer silent this long ends the connection.
    pub idle_timeout: Duration,
}

impl Default for CallerConfig {
    fn default() -> CallerConfig {
        CallerConfig {
            latency: DEFAULT_LATENCY,
            timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(5),
        }
    }
}

/// Why a listener refused the call, in libsrt's numbering: core reasons
/// 1-17 (SRT_REJ_*), access control 1000 + an HTTP-like status
/// (SRT_REJX_*: 1401 unauthorized, 1403 forbidden, 1409 conflict ...),
/// application codes from 2000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rejection {
    pub code: i32,
}

impl Rejection {
    /// The wire's handshake type for a rejection is 1000 + libsrt's code.
    pub fn from_wire(wire: i32) -> Rejection {
        Rejection { code: wire - 1000 }
    }

    /// An access-control rejection (SRT_REJX_*, 1000-1999).
    pub fn is_access_control(self) -> bool {
        (1000..2000).contains(&self.code)
    }

    /// libsrt's name for the code.
    pub fn name(self) -> &'static str {
        match self.code {
            1 => "system error",
            2 => "peer rejected",
            3 => "resources",
            4 => "rogue handshake",
            5 => "backlog full",
            6 => "internal error",
            7 => "socket closing",
            8 => "version too old",
            9 => "rendezvous cookie collision",
            10 => "wrong passphrase",
            11 => "encryption required",
            12 => "message API mismatch",
            13 => "congestion controller mismatch",
            14 => "packet filter mismatch",
            15 => "group mismatch",
            16 => "timeout",
            17 => "crypto mode mismatch",
            1000 => "fallback",
            1001 => "key not supported",
            1002 => "file path",
            1003 => "host not found",
            1400 => "bad request",
            1401 => "unauthorized",
            1402 => "overload",
            1403 => "forbidden",
            1404 => "not found",
            1405 => "bad mode",
            1406 => "unacceptable",
            1409 => "conflict",
            1415 => "media type not supported",
            1423 => "locked",
            1424 => "failed dependency",
            1500 => "internal server error",
            1501 => "unimplemented",
            1502 => "gateway error",
            1503 => "service down",
            1505 => "version not supported",
            1507 => "no room",
            c if c >= 2000 => "application reason",
            _ => "unknown reason",
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.name())
    }
}

/// Why a call did not connect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("no SRT handshake answer within {0:?}")]
    Timeout(Duration),
    #[error("SRT listener rejected the call: {0}")]
    Rejected(Rejection),
    #[error("SRT call failed: {0}")]
    Io(String),
}

/// SRT's own numbers for a connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct SrtStats {
    /// Latency both peers settled on, ms.
    pub latency_ms: f64,
    /// The handshake's induction exchange (our induction to the listener's
    /// answer with its cookie), ms.
    pub induction_ms: f64,
    /// Its conclusion exchange (our conclusion with the streamid to the
    /// listener's answer, accepted or rejected), ms.
    pub conclusion_ms: f64,
    /// Round-trip time, ms: the listener's smoothed RTT from its last full
    /// ACK (measured with our ACKACKs); half the handshake before one came.
    pub rtt_ms: f64,
    /// Send rate over the push, SRT headers and retransmissions included, kbit/s.
    pub send_kbps: f64,
    /// Data packets sent, retransmissions included.
    pub packets_sent: u64,
    pub packets_retransmitted: u64,
    /// Packets the sender dropped as too late to be played (TLPKTDROP).
    pub packets_dropped: u64,
    /// Packets the sender learnt were lost (NAKs).
    pub packets_lost: u64,
    /// ACKs received (full and light).
    pub acks: u64,
    pub bytes_sent: u64,
    /// The link capacity the listener estimated, Mbit/s (0 when unknown).
    pub bandwidth_mbps: u64,
}

/// A connected caller.
pub struct Caller {
    socket: UdpSocket,
    conn: Sender,
    /// The data packet being written.
    buf: Vec<u8>,
    rx: Box<[u8]>,
    closed: bool,
    /// The induction and conclusion exchanges, ms.
    induction_ms: f64,
    conclusion_ms: f64,
}

/// A random 32-bit value for socket ids and initial sequence numbers
/// (std's per-process random hash keys, a counter apart).
fn random_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(N.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::UNIX_EPOCH
            .elapsed()
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish() as u32
}

fn io_error(e: std::io::Error) -> CallError {
    CallError::Io(e.to_string())
}

/// Writes one datagram, awaiting room only when the socket has none.
async fn send_datagram(socket: &UdpSocket, d: &[u8]) -> std::io::Result<()> {
    loop {
        match socket.try_send(d) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => socket.writable().await?,
            Err(e) => return Err(e),
        }
    }
}

/// Calls `addr` with `stream_id`: returns when the handshake completes
/// (accepted), is rejected, or `cfg.timeout` passes.
pub async fn call(
    addr: SocketAddr,
    stream_id: &str,
    cfg: &CallerConfig,
) -> Result<Caller, CallError> {
    let local: SocketAddr = if addr.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await.map_err(io_error)?;
    socket.connect(addr).await.map_err(io_error)?;
    let started = Instant::now();
    let conn = Sender::new(
        sender::Config {
            socket_id: random_u32() & 0x3FFF_FFFF | 1,
            isn: random_u32(),
            latency: cfg.latency,
            idle_timeout: cfg.idle_timeout,
            stream_id: stream_id.to_owned(),
            peer_ip: addr.ip(),
        },
        started.into_std(),
    );
    let mut caller = Caller {
        socket,
        conn,
        buf: Vec::with_capacity(RECV_BUF),
        rx: vec![0; RECV_BUF].into_boxed_slice(),
        closed: false,
        induction_ms: 0.0,
        conclusion_ms: 0.0,
    };
    let deadline = started + cfg.timeout;
    loop {
        caller.conn.tick(Instant::now().into_std());
        // Nothing listening (ICMP refused) is no answer: keep trying.
        let _ = caller.flush().await;
        match caller.conn.state() {
            State::Connected => {
                let induced = caller.conn.induced_at().map_or(started, Instant::from_std);
                caller.induction_ms = ms(induced.saturating_duration_since(started));
                caller.conclusion_ms = ms(induced.elapsed());
                return Ok(caller);
            }
            State::Ended(Ended::Rejected(code)) => {
                return Err(CallError::Rejected(Rejection { code }));
            }
            State::Ended(Ended::NotHsv5(v)) => {
                return Err(CallError::Io(format!(
                    "the listener answered with handshake version {v}, not SRT's 5"
                )));
            }
            State::Ended(e) => return Err(CallError::Io(format!("{e:?}"))),
            State::Induction | State::Conclusion { .. } => {}
        }
        if Instant::now() >= deadline {
            return Err(CallError::Timeout(cfg.timeout));
        }
        let wake = caller
            .conn
            .next_timer()
            .map_or(deadline, |t| Instant::from_std(t).min(deadline));
        tokio::select! {
            r = caller.socket.readable() => {
                r.map_err(io_error)?;
                caller.drain();
            }
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
}

/// What happened while waiting to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The send deadline came.
    Due,
    /// The first acknowledgement came (see [`Caller::stats`]).
    Stats,
    /// The connection ended (the peer closed it, or went silent past the
    /// idle timeout).
    Closed,
}

/// Milliseconds to 0.1 ms.
fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

impl Caller {
    /// The connection's numbers now.
    pub fn stats(&self) -> SrtStats {
        let c = self.conn.counters();
        SrtStats {
            latency_ms: self.conn.latency().as_secs_f64() * 1000.0,
            induction_ms: self.induction_ms,
            conclusion_ms: self.conclusion_ms,
            rtt_ms: f64::from(c.rtt_us / 100) / 10.0,
            send_kbps: 0.0,
            packets_sent: c.packets_sent,
            packets_retransmitted: c.packets_retransmitted,
            packets_dropped: c.packets_dropped,
            packets_lost: c.packets_lost,
            acks: c.acks,
            bytes_sent: c.bytes_sent,
            bandwidth_mbps: u64::from(c.capacity_pps) * (PAYLOAD + PACKET_OVERHEAD) * 8 / 1_000_000,
        }
    }

    /// Takes the datagrams that have come, without waiting, at most
    /// [`DRAIN_MAX`] at a time (a flooding peer does not hold the task:
    /// the rest is taken when the socket is polled again); the most
    /// telling update is returned.
    fn drain(&mut self) -> Option<Update> {
        let mut seen = None;
        for _ in 0..DRAIN_MAX {
            let n = match self.socket.try_recv(&mut self.rx) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return seen,
                // An ICMP error for an earlier datagram: the next recv goes on.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    if self.conn.state() == State::Connected {
                        self.closed = true;
                        return Some(Update::Ended(Ended::Shutdown));
                    }
                    continue;
                }
                Err(e) => {
                    tracing::debug!("SRT recv: {e}");
                    return seen;
                }
            };
            let now = std::time::Instant::now();
            match self.conn.handle(&self.rx[..n], now) {
                Ok(Some(u)) => {
                    if matches!(u, Update::Ended(_)) {
                        self.closed = true;
                    }
                    if !matches!(seen, Some(Update::Ended(_))) {
                        seen = Some(u);
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::debug!("SRT packet ignored: {e}"),
            }
        }
        seen
    }

    /// Sends what the connection queued (ACKACKs, retransmissions, ...).
    async fn flush(&mut self) -> std::io::Result<()> {
        while let Some(d) = self.conn.poll_transmit() {
            send_datagram(&self.socket, &d).await?;
        }
        Ok(())
    }

    /// Waits until `deadline`, the first acknowledgement or the end of the
    /// connection, taking every control packet that comes meanwhile.
    pub async fn wait(&mut self, deadline: Instant) -> Event {
        let sleep = tokio::time::sleep_until(deadline);
        tokio::pin!(sleep);
        loop {
            // What has come is taken first: its ACKs free the send buffer
            // before the too-late check, however late this task runs.
            if let Some(e) = self.take_ready().await {
                return e;
            }
            if let Some(Update::Ended(_)) = self.conn.tick(std::time::Instant::now()) {
                self.closed = true;
            }
            if !self.closed && self.flush().await.is_err() {
                self.closed = true;
            }
            if self.closed {
                return Event::Closed;
            }
            tokio::select! {
                biased;
                r = self.socket.readable() => {
                    if r.is_err() {
                        self.closed = true;
                    }
                }
                _ = &mut sleep => {
                    return self.take_ready().await.unwrap_or(Event::Due);
                }
            }
        }
    }

    /// Takes what has come if the reactor saw the socket readable (no
    /// system call when it did not), and sends what that asks for.
    async fn take_ready(&mut self) -> Option<Event> {
        use futures::FutureExt;
        if self.closed {
            return Some(Event::Closed);
        }
        // An error here shows in the drain's receive as well.
        let _ready = self.socket.readable().now_or_never()?;
        let update = self.drain();
        if self.flush().await.is_err() {
            self.closed = true;
        }
        if self.closed {
            return Some(Event::Closed);
        }
        (update == Some(Update::FirstAck)).then_some(Event::Stats)
    }

    /// Sends one payload at once, stamped with its source time (the
    /// listener plays it out one latency after).
    pub async fn send(&mut self, src_time: Instant, payload: Bytes) -> Result<(), CallError> {
        if self.closed {
            return Err(CallError::Io("the SRT connection ended".into()));
        }
        let now = std::time::Instant::now();
        self.conn
            .send(src_time.into_std(), payload, now, &mut self.buf);
        if self.buf.is_empty() {
            self.closed = true;
            return Err(CallError::Io("the SRT connection ended".into()));
        }
        send_datagram(&self.socket, &self.buf).await.map_err(|e| {
            self.closed = true;
            io_error(e)
        })
    }

    /// Closes the connection (a shutdown to the peer), bounded by `within`.
    pub async fn close(mut self, within: Duration) {
        self.conn.close(std::time::Instant::now());
        let _ = tokio::time::timeout(within, self.flush()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_codes_map_to_libsrt_numbers() {
        let r = Rejection::from_wire(2401);
        assert_eq!(r.code, 1401);
        assert!(r.is_access_control());
        assert_eq!(r.to_string(), "1401 unauthorized");
        assert_eq!(Rejection::from_wire(2409).name(), "conflict");
        assert_eq!(Rejection::from_wire(2403).name(), "forbidden");
        let core = Rejection::from_wire(1002);
        assert_eq!((core.code, core.name()), (2, "peer rejected"));
        assert!(!core.is_access_control());
        assert_eq!(Rejection::from_wire(3005).name(), "application reason");
    }

    /// A call to a UDP port nothing answers on times out within its bound.
    #[tokio::test]
    async fn silent_port_times_out() {
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let cfg = CallerConfig {
            timeout: Duration::from_millis(600),
            ..CallerConfig::default()
        };
        let e = call(silent.local_addr().unwrap(), "#!::r=live/s", &cfg)
            .await
            .err()
            .expect("no answer");
        assert_eq!(e, CallError::Timeout(Duration::from_millis(600)));
    }
}
