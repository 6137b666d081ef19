//! SRT caller: dial an SRT listener with a streamid and send TS payloads.
//!
//! The only code that drives `srt-tokio` as a caller. It hands back plain
//! values: a connected [`Caller`] with its handshake time, a [`CallError`]
//! (timeout, or the listener's [`Rejection`] with its libsrt code), and
//! [`SrtStats`] snapshots. srt-tokio does not expose the induction and
//! conclusion exchanges apart: the handshake is timed as one phase.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde::Serialize;
use srt_protocol::protocol::pending_connection::ConnectionReject;
use srt_tokio::access::RejectReason;
use srt_tokio::{SocketStatistics, SrtSocket};
use tokio::time::Instant;

/// libsrt's default latency; Tencent suggests more on long paths.
pub const DEFAULT_LATENCY: Duration = Duration::from_millis(120);

/// How often srt-tokio reports statistics (its minimum): the first
/// acknowledgement is seen within this.
pub const STATS_INTERVAL: Duration = Duration::from_millis(200);

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

fn rejection_of(r: &RejectReason) -> Rejection {
    Rejection::from_wire(i32::from(*r))
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

/// SRT's own numbers for a connection, from the last statistics report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct SrtStats {
    /// Latency both peers settled on, ms.
    pub latency_ms: f64,
    /// Round-trip time, ms, estimated as half the handshake (its induction
    /// and conclusion exchanges): srt-tokio 0.4.4 leaves SRT's own RTT
    /// statistic at zero.
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
    /// Estimated link bandwidth, Mbit/s (0 when unknown).
    pub bandwidth_mbps: u64,
}

/// A connected caller.
pub struct Caller {
    socket: SrtSocket,
    reports: std::pin::Pin<Box<dyn futures::Stream<Item = SocketStatistics> + Send>>,
    stats: SrtStats,
    closed: bool,
}

/// Calls `addr` with `stream_id`: returns when the handshake completes
/// (accepted), is rejected, or `cfg.timeout` passes.
pub async fn call(
    addr: SocketAddr,
    stream_id: &str,
    cfg: &CallerConfig,
) -> Result<Caller, CallError> {
    let builder = SrtSocket::builder().latency(cfg.latency).set(|o| {
        o.connect.timeout = cfg.timeout;
        o.session.peer_idle_timeout = cfg.idle_timeout;
        o.session.statistics_interval = STATS_INTERVAL;
    });
    // srt-tokio bounds the handshake itself; the outer bound is a backstop.
    let called = tokio::time::timeout(
        cfg.timeout + Duration::from_secs(1),
        builder.call(addr, Some(stream_id)),
    )
    .await;
    let socket = match called {
        Err(_) => return Err(CallError::Timeout(cfg.timeout)),
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(call_error(&e, cfg.timeout)),
    };
    let mut socket = socket;
    let latency = socket.settings().send_tsbpd_latency;
    let reports = Box::pin(socket.statistics().clone());
    Ok(Caller {
        socket,
        reports,
        stats: SrtStats {
            latency_ms: latency.as_secs_f64() * 1000.0,
            ..SrtStats::default()
        },
        closed: false,
    })
}

fn call_error(e: &std::io::Error, timeout: Duration) -> CallError {
    if let Some(ConnectionReject::Rejected(r) | ConnectionReject::Rejecting(r)) = e
        .get_ref()
        .and_then(|i| i.downcast_ref::<ConnectionReject>())
    {
        return CallError::Rejected(rejection_of(r));
    }
    match e.kind() {
        std::io::ErrorKind::TimedOut => CallError::Timeout(timeout),
        _ => CallError::Io(e.to_string()),
    }
}

/// What happened while waiting to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The send deadline came.
    Due,
    /// A statistics report came (see [`Caller::stats`]).
    Stats,
    /// The connection ended (the peer closed it, or went silent past the
    /// idle timeout).
    Closed,
}

impl Caller {
    /// The latest statistics.
    pub fn stats(&self) -> SrtStats {
        self.stats
    }

    /// Waits until `deadline`, a statistics report or the end of the connection.
    pub async fn wait(&mut self, deadline: Instant) -> Event {
        if self.closed {
            return Event::Closed;
        }
        tokio::select! {
            biased;
            s = self.reports.next() => match s {
                Some(s) => {
                    self.stats = SrtStats {
                        latency_ms: self.stats.latency_ms,
                        rtt_ms: self.stats.rtt_ms,
                        send_kbps: self.stats.send_kbps,
                        packets_sent: s.tx_data,
                        packets_retransmitted: s.tx_retransmit_data,
                        packets_dropped: s.tx_dropped_data,
                        packets_lost: s.tx_loss_data,
                        acks: s.rx_ack + s.rx_light_ack,
                        bytes_sent: s.tx_bytes,
                        bandwidth_mbps: s.tx_bandwidth,
                    };
                    Event::Stats
                }
                None => {
                    self.closed = true;
                    Event::Closed
                }
            },
            // Data from the listener means nothing to a publisher; its end
            // means the connection ended.
            d = self.socket.next() => match d {
                Some(Ok(_)) => Event::Stats,
                _ => {
                    self.closed = true;
                    Event::Closed
                }
            },
            _ = tokio::time::sleep_until(deadline) => Event::Due,
        }
    }

    /// Queues one payload with its source time (the listener plays it out
    /// one latency after). Waits while srt-tokio's queue is full.
    pub async fn send(&mut self, src_time: Instant, payload: Bytes) -> Result<(), CallError> {
        self.socket
            .send((src_time.into_std(), payload))
            .await
            .map_err(|e| {
                self.closed = true;
                CallError::Io(e.to_string())
            })
    }

    /// Closes the connection (a shutdown to the peer), bounded by `within`.
    pub async fn close(mut self, within: Duration) {
        let _ = tokio::time::timeout(within, self.socket.close()).await;
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

    #[test]
    fn srt_tokio_reasons_carry_their_wire_code() {
        use srt_tokio::access::ServerRejectReason;
        let r = rejection_of(&RejectReason::Server(ServerRejectReason::Unauthorized));
        assert_eq!(r.code, 1401);
        let r = rejection_of(&RejectReason::Server(ServerRejectReason::Conflict));
        assert_eq!(r.code, 1409);
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
