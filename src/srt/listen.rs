//! SRT listener: accept SRT callers, hand their streamid to a decision, and
//! deliver the TS payloads of accepted ones.
//!
//! The only code that calls `srt-tokio`'s listener. Everything leaves it as
//! plain values ([`Caller`] payloads as `Bytes`, [`RxStats`]), every wait has
//! a timeout, and a refusal carries an access-control reject code (1400
//! bad request, 1401 unauthorized, 1403 forbidden, 1404 not found, 1405 bad
//! mode, 1409 conflict, 1500+ server errors), which libsrt callers report.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use srt_tokio::access::RejectReason;
use srt_tokio::options::{ListenerOptions, SocketOptions};
use srt_tokio::{ConnectionRequest, SrtIncoming, SrtListener, SrtSocket};

/// What libsrt adds to a reject reason in the handshake's request type.
const WIRE_OFFSET: i32 = 1000;

/// Access-control reject codes (SRT's streamid conventions, `SRT_REJX_*`).
pub mod code {
    pub const BAD_REQUEST: i32 = 1400;
    pub const UNAUTHORIZED: i32 = 1401;
    pub const FORBIDDEN: i32 = 1403;
    pub const NOT_FOUND: i32 = 1404;
    pub const BAD_MODE: i32 = 1405;
    pub const CONFLICT: i32 = 1409;
    pub const INTERNAL: i32 = 1500;
}

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("binding the SRT listener on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the SRT handshake with {peer} did not finish within {within:?}")]
    HandshakeTimeout { peer: SocketAddr, within: Duration },
    #[error("the SRT handshake with {peer} failed: {source}")]
    Handshake {
        peer: SocketAddr,
        source: std::io::Error,
    },
    #[error("no SRT data from {peer} for {within:?}")]
    Idle { peer: SocketAddr, within: Duration },
    #[error("SRT connection with {peer} failed: {source}")]
    Receive {
        peer: SocketAddr,
        source: std::io::Error,
    },
}

/// Listener settings.
#[derive(Debug, Clone, Copy)]
pub struct ListenConfig {
    /// Receive latency (TSBPD); the larger of ours and the caller's applies.
    pub latency: Duration,
    /// A connection silent this long is closed by the SRT layer itself.
    pub peer_idle_timeout: Duration,
}

impl Default for ListenConfig {
    fn default() -> Self {
        // libsrt's default latency; Tencent lists 500 ms - 1 s for its ingest.
        ListenConfig {
            latency: Duration::from_millis(120),
            peer_idle_timeout: Duration::from_secs(5),
        }
    }
}

/// A bound SRT listener.
pub struct Listener {
    local: SocketAddr,
    listener: SrtListener,
    incoming: SrtIncoming,
}

impl Listener {
    /// Binds UDP `addr` (port 0 picks one; see [`Listener::local_addr`]).
    pub async fn bind(addr: SocketAddr, cfg: ListenConfig) -> Result<Listener, ListenError> {
        let bind_err = |source| ListenError::Bind { addr, source };
        let udp = tokio::net::UdpSocket::bind(addr).await.map_err(bind_err)?;
        let local = udp.local_addr().map_err(bind_err)?;
        let mut socket = SocketOptions::default();
        socket.sender.peer_latency = cfg.latency;
        socket.receiver.latency = cfg.latency;
        socket.session.peer_idle_timeout = cfg.peer_idle_timeout;
        let options = ListenerOptions::with(local, socket)
            .map_err(|e| bind_err(std::io::Error::other(e.to_string())))?;
        let (listener, incoming) = SrtListener::bind_with_socket(options, udp)
            .await
            .map_err(bind_err)?;
        Ok(Listener {
            local,
            listener,
            incoming,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The next caller asking to connect; `None` once the listener is closed.
    pub async fn next(&mut self) -> Option<Pending> {
        self.incoming
            .incoming()
            .next()
            .await
            .map(|request| Pending { request })
    }

    /// Stops listening (connections already accepted go on).
    pub async fn close(mut self, within: Duration) {
        let _ = tokio::time::timeout(within, self.listener.close()).await;
    }
}

/// A caller waiting for a decision.
pub struct Pending {
    request: ConnectionRequest,
}

impl Pending {
    pub fn peer(&self) -> SocketAddr {
        self.request.remote()
    }

    /// The streamid the caller sent (`None` without one).
    pub fn stream_id(&self) -> Option<&str> {
        self.request.stream_id().map(|s| s.as_str())
    }

    /// Accepts; the handshake's end is awaited at most `within`.
    pub async fn accept(self, within: Duration) -> Result<Caller, ListenError> {
        let peer = self.peer();
        match tokio::time::timeout(within, self.request.accept(None)).await {
            Ok(Ok(socket)) => Ok(Caller { peer, socket }),
            Ok(Err(source)) => Err(ListenError::Handshake { peer, source }),
            Err(_) => Err(ListenError::HandshakeTimeout { peer, within }),
        }
    }

    /// Refuses with an access-control `code` (see [`code`]).
    pub async fn reject(self, code: i32, within: Duration) {
        // srt-protocol's reasons are the handshake's request-type values,
        // 1000 (URQ_FAILURE_TYPES) above the reason libsrt reports: an
        // access-control 1403 goes on the wire as 2403.
        let wire = code.saturating_add(WIRE_OFFSET);
        let reason = RejectReason::try_from(wire).unwrap_or(RejectReason::User(wire));
        let _ = tokio::time::timeout(within, self.request.reject(reason)).await;
    }
}

/// Receive-side counters of one connection, as the SRT layer reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RxStats {
    /// Payload bytes received (unique, retransmissions not counted twice).
    pub bytes: u64,
    /// Data packets received, retransmissions included.
    pub packets: u64,
    pub lost: u64,
    pub retransmitted: u64,
    /// Packets dropped for arriving too late to play.
    pub dropped: u64,
    pub rtt_ms: u64,
}

/// An accepted caller.
pub struct Caller {
    peer: SocketAddr,
    socket: SrtSocket,
}

impl Caller {
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The next payload (usually 7 TS packets); `Ok(None)` once the caller
    /// closed, an error after `idle` without data.
    pub async fn recv(&mut self, idle: Duration) -> Result<Option<Bytes>, ListenError> {
        let peer = self.peer;
        match tokio::time::timeout(idle, self.socket.next()).await {
            Err(_) => Err(ListenError::Idle { peer, within: idle }),
            Ok(None) => Ok(None),
            Ok(Some(Ok((_, data)))) => Ok(Some(data)),
            Ok(Some(Err(source))) => Err(ListenError::Receive { peer, source }),
        }
    }

    /// The latest counters reported so far (never waits).
    pub fn stats(&mut self) -> Option<RxStats> {
        let updates = self.socket.statistics();
        let mut latest = None;
        while let Some(Some(s)) = updates.next().now_or_never() {
            latest = Some(s);
        }
        latest.map(|s| RxStats {
            bytes: s.rx_unique_bytes,
            packets: s.rx_data,
            lost: s.rx_loss_data,
            retransmitted: s.rx_retransmit_data,
            dropped: s.rx_dropped_data,
            rtt_ms: s.rx_average_rtt.as_millis() as u64,
        })
    }

    /// Closes the connection, waiting at most `within` for the goodbye.
    pub async fn close(mut self, within: Duration) {
        let _ = tokio::time::timeout(within, self.socket.close_and_finish()).await;
    }
}
