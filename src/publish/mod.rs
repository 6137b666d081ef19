//! One publisher: DNS -> TCP -> (TLS) -> handshake -> connect -> createStream
//! -> publish -> media paced in real time -> unpublish. Records a monotonic
//! timestamp at each phase and returns a plain [`PublishResult`] record.

pub mod conn;
pub mod dial;

use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::clock;
use crate::media::{Cursor, MediaPlan};
use crate::rtmp::amf0::Value;
use crate::rtmp::chunk::{self, MEDIA_HEADER_MAX};
use crate::rtmp::drive::{self, HandshakeIoError};
use crate::rtmp::handshake::Role;
use crate::rtmp::message::{
    self, COMMAND_AMF0, COMMAND_AMF3, Command, FourCcReply, StatusReply, VIDEO,
};
use crate::sign::PushUrl;
use crate::stamp;
use conn::{Conn, Dial, DialError, RecvError, Transport};
use dial::{AddrError, Attempt, DialOptions};

/// The phases of a push, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Dns,
    Tcp,
    Tls,
    Handshake,
    Connect,
    CreateStream,
    Publish,
    Streaming,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Dns => "dns",
            Phase::Tcp => "tcp",
            Phase::Tls => "tls",
            Phase::Handshake => "handshake",
            Phase::Connect => "connect",
            Phase::CreateStream => "create_stream",
            Phase::Publish => "publish",
            Phase::Streaming => "streaming",
        }
    }
    /// The phase that follows this one once it completed (`tls` when the
    /// push runs over rtmps).
    pub fn next(self, tls: bool) -> Phase {
        match self {
            Phase::Dns => Phase::Tcp,
            Phase::Tcp if tls => Phase::Tls,
            Phase::Tcp | Phase::Tls => Phase::Handshake,
            Phase::Handshake => Phase::Connect,
            Phase::Connect => Phase::CreateStream,
            Phase::CreateStream => Phase::Publish,
            Phase::Publish | Phase::Streaming => Phase::Streaming,
        }
    }
    /// The phases whose latency we measure, in order.
    pub const TIMED: [Phase; 7] = [
        Phase::Dns,
        Phase::Tcp,
        Phase::Tls,
        Phase::Handshake,
        Phase::Connect,
        Phase::CreateStream,
        Phase::Publish,
    ];
}

/// What went wrong, as seen on the wire. Values, rendered at the edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Failure {
    /// The host name did not resolve.
    Dns {
        detail: String,
    },
    /// The port answered with a reset: nothing listens there.
    TcpRefused,
    /// No answer to the TCP connect: usually a firewall dropping packets.
    TcpTimeout,
    /// Another connect error (unreachable network, ...).
    TcpError {
        detail: String,
    },
    /// Every address failed, not all the same way: each with its error.
    TcpMixed {
        attempts: Vec<AddrError>,
    },
    Tls {
        detail: String,
    },
    /// The server stopped answering during this phase.
    Timeout {
        phase: Phase,
    },
    /// The server closed the connection during this phase; `after_publish_ms`
    /// is how long after our publish command it closed, when it was sent.
    Closed {
        phase: Phase,
        after_publish_ms: Option<u64>,
    },
    /// The connection was reset (a TCP RST from the server or the path).
    Reset {
        phase: Phase,
        after_publish_ms: Option<u64>,
    },
    /// The server answered Publish.Start, then ended the push (closed, reset
    /// or an error status) within the refusal window: servers that send
    /// Publish.Start before their auth hook or busy check refuse this way.
    RefusedAfterStart {
        after_start_ms: u64,
        cause: Box<Failure>,
    },
    /// The server answered with an error status (`_error` or onStatus error).
    Rejected {
        phase: Phase,
        status: StatusReply,
    },
    /// The server sent bytes we could not parse.
    Protocol {
        phase: Phase,
        detail: String,
    },
    /// A local I/O error while writing.
    Io {
        phase: Phase,
        detail: String,
    },
}

impl Failure {
    pub fn phase(&self) -> Phase {
        match self {
            Failure::Dns { .. } => Phase::Dns,
            Failure::TcpRefused
            | Failure::TcpTimeout
            | Failure::TcpError { .. }
            | Failure::TcpMixed { .. } => Phase::Tcp,
            Failure::Tls { .. } => Phase::Tls,
            Failure::RefusedAfterStart { .. } => Phase::Publish,
            Failure::Timeout { phase }
            | Failure::Closed { phase, .. }
            | Failure::Reset { phase, .. }
            | Failure::Rejected { phase, .. }
            | Failure::Protocol { phase, .. }
            | Failure::Io { phase, .. } => *phase,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Dns { detail } => write!(f, "DNS lookup failed: {detail}"),
            Failure::TcpRefused => f.write_str("TCP connection refused"),
            Failure::TcpTimeout => f.write_str("TCP connect timed out"),
            Failure::TcpError { detail } => write!(f, "TCP connect failed: {detail}"),
            Failure::TcpMixed { attempts } => {
                f.write_str("TCP connect failed on every address: ")?;
                for (i, a) in attempts.iter().enumerate() {
                    let sep = if i == 0 { "" } else { "; " };
                    write!(f, "{sep}{} {}", a.addr, a.error)?;
                }
                Ok(())
            }
            Failure::Tls { detail } => write!(f, "TLS handshake failed: {detail}"),
            // While streaming we only write: a timeout there is a write that
            // could not go out.
            Failure::Timeout {
                phase: Phase::Streaming,
            } => f.write_str("server stopped answering during streaming: server stopped reading (a write timed out)"),
            Failure::Timeout { phase } => {
                write!(f, "server stopped answering during {}", phase.name())
            }
            Failure::Reset {
                phase,
                after_publish_ms: Some(ms),
            } => write!(
                f,
                "connection reset {ms} ms after publish (phase {})",
                phase.name()
            ),
            Failure::Reset { phase, .. } => {
                write!(f, "connection reset during {}", phase.name())
            }
            Failure::RefusedAfterStart {
                after_start_ms,
                cause,
            } => {
                let what = match cause.as_ref() {
                    Failure::Reset { .. } => "the connection was reset".to_string(),
                    Failure::Rejected { status, .. } => format!(
                        "it answered {} {} {:?}",
                        status.level, status.code, status.description
                    ),
                    _ => "it closed the connection".to_string(),
                };
                write!(
                    f,
                    "server answered Publish.Start, then {what} {after_start_ms} ms later: a refusal after start"
                )
            }
            Failure::Closed {
                phase,
                after_publish_ms: Some(ms),
            } => write!(
                f,
                "server closed the connection {ms} ms after publish (phase {})",
                phase.name()
            ),
            Failure::Closed { phase, .. } => {
                write!(f, "server closed the connection during {}", phase.name())
            }
            Failure::Rejected { phase, status } => write!(
                f,
                "server refused at {}: {} {} {:?}",
                phase.name(),
                status.level,
                status.code,
                status.description
            ),
            Failure::Protocol { phase, detail } => {
                write!(
                    f,
                    "server sent malformed data during {}: {detail}",
                    phase.name()
                )
            }
            Failure::Io { phase, detail } => {
                write!(f, "I/O error during {}: {detail}", phase.name())
            }
        }
    }
}

/// How the push ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "end", rename_all = "snake_case")]
pub enum Ending {
    /// Streamed for the whole duration.
    Completed,
    /// Stopped by the user (the cancel token) while `phase` was in progress:
    /// before Publish.Start the server's answer is unknown; in `Streaming`
    /// the push was accepted and stopped early.
    Cancelled { phase: Phase },
    /// Accepted (Publish.Start), then ended early by the server or network.
    Interrupted { failure: Failure },
    /// Never got to Publish.Start.
    Failed { failure: Failure },
}

/// Offsets from the publisher's start at which each phase completed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PhaseMarks {
    /// Completion time of each timed phase, from the start.
    pub done: Vec<(Phase, Duration)>,
}

impl PhaseMarks {
    pub(crate) fn mark(&mut self, phase: Phase, start: Instant) {
        self.done.push((phase, start.elapsed()));
    }
    /// Offset from start at which `phase` completed.
    pub fn at(&self, phase: Phase) -> Option<Duration> {
        self.done.iter().find(|(p, _)| *p == phase).map(|(_, d)| *d)
    }
    /// Duration of each phase on its own (from the end of the previous one).
    pub fn durations(&self) -> Vec<(Phase, Duration)> {
        let mut prev = Duration::ZERO;
        self.done
            .iter()
            .map(|(p, d)| {
                let own = d.saturating_sub(prev);
                prev = *d;
                (*p, own)
            })
            .collect()
    }
}

/// The plain record one publisher produces.
#[derive(Debug, Clone)]
pub struct PublishResult {
    pub ending: Ending,
    pub marks: PhaseMarks,
    /// Every status the server sent (`_result` of connect, onStatus, `_error`).
    pub statuses: Vec<StatusReply>,
    pub bytes_sent: u64,
    /// Media time sent, in ms.
    pub media_ms: u64,
    /// How long we streamed after Publish.Start.
    pub streamed: Duration,
    /// Largest delay of a media message behind its real-time due time.
    pub max_lag: Duration,
    /// When our publish command went out, from the start.
    pub publish_sent: Option<Duration>,
    /// Bytes written after Publish.Start (media and its preamble).
    pub stream_bytes: u64,
    /// How long the push was asked to stream (`None`: until cancelled).
    pub planned: Option<Duration>,
    /// The address the connection went to.
    pub remote_addr: Option<SocketAddr>,
    /// Every TCP connection attempt (Happy Eyeballs), in start order.
    pub attempts: Vec<Attempt>,
    /// The flags that forced the addresses (`--resolve ...`), if any.
    pub forced: Option<String>,
    /// SRT pushes: SRT's own numbers at the end (RTT, retransmissions,
    /// drops). Boxed, as is the FourCC evidence: every publisher of a load
    /// run holds its result, and few need these.
    pub srt: Option<Box<crate::srt::caller::SrtStats>>,
    /// What the connect `_result` said about Enhanced RTMP (`None` before it).
    pub server_fourcc: Option<Box<FourCcReply>>,
    /// The Enhanced RTMP FourCC advertised in connect and pushed, if any.
    pub pushed_fourcc: Option<&'static str>,
}

impl PublishResult {
    /// The server answered Publish.Start (a refusal after start included:
    /// see [`PublishResult::refused_after_start`]).
    pub fn accepted(&self) -> bool {
        self.marks.at(Phase::Publish).is_some()
    }
    /// Publish.Start came, then the server ended the push within the refusal window.
    pub fn refused_after_start(&self) -> bool {
        matches!(self.failure(), Some(Failure::RefusedAfterStart { .. }))
    }
    /// The user stopped the push before its end.
    pub fn cancelled(&self) -> Option<Phase> {
        match self.ending {
            Ending::Cancelled { phase } => Some(phase),
            _ => None,
        }
    }
    /// Throughput of the stream after Publish.Start, in bit/s.
    pub fn uplink_bps(&self) -> Option<u64> {
        let secs = self.streamed.as_secs_f64();
        (self.accepted() && secs > 0.0).then(|| (self.stream_bytes as f64 * 8.0 / secs) as u64)
    }
    /// The most telling status: the last error one; else, for an accepted
    /// push, the last one. A refusal without an error status has none.
    pub fn server_status(&self) -> Option<&StatusReply> {
        let error = self.statuses.iter().rev().find(|s| s.is_error());
        match (error, self.accepted() && !self.refused_after_start()) {
            (Some(s), _) => Some(s),
            (None, true) => self.statuses.last(),
            (None, false) => None,
        }
    }
    pub fn failure(&self) -> Option<&Failure> {
        match &self.ending {
            Ending::Completed | Ending::Cancelled { .. } => None,
            Ending::Interrupted { failure } | Ending::Failed { failure } => Some(failure),
        }
    }
}

/// How to run one publisher.
#[derive(Debug, Clone)]
pub struct PublishConfig {
    pub url: PushUrl,
    /// Per-phase timeout; also bounds each media write.
    pub timeout: Duration,
    /// How long to stream after Publish.Start; `None` until cancelled.
    pub duration: Option<Duration>,
    pub chunk_size: u32,
    pub insecure: bool,
    /// Index into the plan's tags to start at (see `MediaPlan::start_index`).
    pub start_index: usize,
    /// Timer granularity of the media loop: messages due within one tick go
    /// out in one vectored write.
    pub tick: Duration,
    /// A push the server ends (close, reset, error status) this soon after
    /// Publish.Start was refused, not accepted and interrupted.
    pub refusal_window: Duration,
    /// Resolver and address families to dial (shared: publishers of a load
    /// run hold one).
    pub dial: Arc<DialOptions>,
    /// The publisher id written into per-frame stamps when the plan has
    /// stamp slots (`MediaPlan::with_stamps`); a load run numbers them.
    pub publisher_id: u32,
    /// Set for `srt://` URLs: the push goes over SRT as MPEG-TS (`srt::publish`).
    pub srt: Option<crate::srt::publish::SrtMedia>,
}

const PUBLISH_START: &str = "NetStream.Publish.Start";

/// Default of [`PublishConfig::refusal_window`] (`--refusal-window`).
pub const REFUSAL_WINDOW: Duration = Duration::from_secs(2);

impl PublishConfig {
    pub fn new(url: PushUrl) -> PublishConfig {
        PublishConfig {
            url,
            timeout: Duration::from_secs(10),
            duration: Some(Duration::from_secs(30)),
            chunk_size: 4096,
            insecure: false,
            start_index: 0,
            tick: Duration::from_millis(20),
            refusal_window: REFUSAL_WINDOW,
            dial: Arc::default(),
            publisher_id: 0,
            srt: None,
        }
    }
}

/// Hook for callers that watch a publisher's progress (load runner).
pub trait Observer: Send + Sync {
    /// A phase completed at `at`.
    fn phase(&mut self, _phase: Phase, _at: Instant) {}
    /// Media bytes were written.
    fn sent(&mut self, _bytes: u64) {}
    /// A video frame went out: its RTMP timestamp, the publisher's frame
    /// sequence (the stamp's, when stamped) and the wall-clock send time in
    /// unix microseconds. A player matches these when stamps are stripped.
    fn frame_sent(&mut self, _timestamp_ms: u64, _sequence: u64, _sent_unix_us: u64) {}
}

impl Observer for () {}

/// The socket send buffer for media at `bitrate_bps`: about one second of it
/// (two once the kernel doubles it, enough for any path with a round trip
/// under two seconds), at least 64 KiB for keyframe bursts, at most 4 MiB.
pub fn send_buffer_for(bitrate_bps: u64) -> u32 {
    (bitrate_bps / 8).clamp(64 << 10, 4 << 20) as u32
}

struct Run<'a> {
    cfg: &'a PublishConfig,
    send_buffer: u32,
    start: Instant,
    marks: PhaseMarks,
    statuses: Vec<StatusReply>,
    publish_sent: Option<Duration>,
    remote_addr: Option<SocketAddr>,
    attempts: Vec<Attempt>,
    forced: Option<String>,
    video_fourcc: Option<&'static str>,
    server_fourcc: Option<FourCcReply>,
    observer: &'a mut dyn Observer,
}

/// Runs one publisher to its end. Never panics on server input; every wait
/// is bounded by `cfg.timeout`; `cancel` ends streaming cleanly.
pub async fn publish(
    cfg: &PublishConfig,
    plan: &Arc<MediaPlan>,
    cancel: &CancellationToken,
    observer: &mut dyn Observer,
) -> PublishResult {
    if let Some(srt) = &cfg.srt {
        // Boxed: the RTMP future (held by every load publisher) stays small.
        return Box::pin(crate::srt::publish::publish(
            cfg, srt, plan, cancel, observer,
        ))
        .await;
    }
    let mut run = Run {
        cfg,
        send_buffer: send_buffer_for(plan.bitrate_bps),
        start: Instant::now(),
        marks: PhaseMarks::default(),
        statuses: Vec::new(),
        publish_sent: None,
        remote_addr: None,
        attempts: Vec::new(),
        forced: None,
        video_fourcc: plan.enhanced_fourcc(),
        server_fourcc: None,
        observer,
    };
    let mut bytes_sent = 0;
    let mut stream = StreamStats::default();
    // Setup and teardown futures are large (timeouts, handshake) and short
    // lived: boxed, they do not inflate every streaming task.
    let ending = match Box::pin(run.setup(cancel)).await {
        Err(failure) => Ending::Failed { failure },
        Ok(None) => Ending::Cancelled {
            phase: run.in_progress(),
        },
        Ok(Some((mut conn, stream_id))) => {
            let before = conn.bytes_sent;
            let ending = run
                .stream(&mut conn, stream_id, plan, cancel, &mut stream)
                .await;
            if matches!(ending, Ending::Completed | Ending::Cancelled { .. }) {
                Box::pin(run.unpublish(&mut conn, stream_id)).await;
            }
            bytes_sent = conn.bytes_sent;
            stream.bytes = bytes_sent.saturating_sub(before);
            ending
        }
    };
    PublishResult {
        ending,
        marks: run.marks,
        statuses: run.statuses,
        bytes_sent,
        media_ms: stream.media_ms,
        streamed: stream.streamed,
        max_lag: stream.max_lag,
        publish_sent: run.publish_sent,
        stream_bytes: stream.bytes,
        planned: cfg.duration,
        remote_addr: run.remote_addr,
        attempts: run.attempts,
        forced: run.forced,
        srt: None,
        server_fourcc: run.server_fourcc.map(Box::new),
        pushed_fourcc: run.video_fourcc,
    }
}

#[derive(Default)]
struct StreamStats {
    media_ms: u64,
    streamed: Duration,
    max_lag: Duration,
    bytes: u64,
    /// Video frames sent: the next frame's stamp sequence.
    video_frames: u64,
}

impl Run<'_> {
    fn mark(&mut self, phase: Phase) {
        self.marks.mark(phase, self.start);
        self.observer.phase(phase, Instant::now());
    }

    /// The phase in progress: the one after the last completed.
    fn in_progress(&self) -> Phase {
        let tls = self.cfg.url.scheme == crate::sign::Scheme::Rtmps;
        self.marks
            .done
            .last()
            .map_or(Phase::Dns, |(p, _)| p.next(tls))
    }

    fn after_publish_ms(&self) -> Option<u64> {
        self.publish_sent
            .map(|t| self.start.elapsed().saturating_sub(t).as_millis() as u64)
    }

    fn closed(&self, phase: Phase) -> Failure {
        Failure::Closed {
            phase,
            after_publish_ms: self.after_publish_ms(),
        }
    }

    /// A closed connection: `Reset` for a TCP reset, `Closed` for an orderly
    /// close (or a write to a socket the peer closed).
    fn ended(&self, phase: Phase, e: &std::io::Error) -> Failure {
        if e.kind() == std::io::ErrorKind::ConnectionReset {
            Failure::Reset {
                phase,
                after_publish_ms: self.after_publish_ms(),
            }
        } else {
            self.closed(phase)
        }
    }

    fn read_failure(&self, phase: Phase, e: RecvError) -> Failure {
        match e {
            RecvError::Closed => self.closed(phase),
            RecvError::Io(e) => self.io_failure(phase, e),
            RecvError::Protocol(e) => Failure::Protocol {
                phase,
                detail: e.to_string(),
            },
        }
    }

    fn io_failure(&self, phase: Phase, e: std::io::Error) -> Failure {
        if is_reset(&e) {
            self.ended(phase, &e)
        } else {
            Failure::Io {
                phase,
                detail: e.to_string(),
            }
        }
    }

    /// Dial, handshake, connect, createStream, publish. `Ok(None)` when cancelled.
    async fn setup(&mut self, cancel: &CancellationToken) -> Result<Option<(Conn, u32)>, Failure> {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => Ok(None),
            r = self.setup_inner() => r.map(Some),
        }
    }

    async fn setup_inner(&mut self) -> Result<(Conn, u32), Failure> {
        let url = &self.cfg.url;
        let dial = Dial {
            host: url.host.clone(),
            port: url.port(),
            tls: url.scheme == crate::sign::Scheme::Rtmps,
            insecure: self.cfg.insecure,
            timeout: self.cfg.timeout,
        };
        let resolved =
            dial::resolve_forced(&dial.host, dial.port, &self.cfg.dial, self.cfg.timeout)
                .await
                .map_err(dial_failure)?;
        self.forced = resolved.forced;
        self.mark(Phase::Dns);
        let (tcp, addr) = dial::connect(
            &resolved.addrs,
            self.cfg.timeout,
            Some(self.send_buffer),
            &mut self.attempts,
        )
        .await?;
        self.remote_addr = Some(addr);
        self.mark(Phase::Tcp);
        let io = if dial.tls {
            let t = conn::start_tls(tcp, &dial).await.map_err(dial_failure)?;
            self.mark(Phase::Tls);
            t
        } else {
            Transport::Tcp(tcp)
        };
        let mut conn = self.handshake(io).await?;
        self.mark(Phase::Handshake);
        self.connect(&mut conn).await?;
        self.mark(Phase::Connect);
        let stream_id = self.create_stream(&mut conn).await?;
        self.mark(Phase::CreateStream);
        self.publish(&mut conn, stream_id).await?;
        self.mark(Phase::Publish);
        Ok((conn, stream_id))
    }

    async fn handshake(&mut self, mut io: Transport) -> Result<Conn, Failure> {
        let phase = Phase::Handshake;
        let done = tokio::time::timeout(self.cfg.timeout, drive::handshake(&mut io, Role::Client))
            .await
            .map_err(|_| Failure::Timeout { phase })?;
        match done {
            Ok(h) => Ok(Conn::new(io, &h)),
            Err(HandshakeIoError::Closed) => Err(self.closed(phase)),
            Err(HandshakeIoError::Io(e)) => Err(self.io_failure(phase, e)),
            Err(e @ HandshakeIoError::Protocol(_)) => Err(Failure::Protocol {
                phase,
                detail: e.to_string(),
            }),
        }
    }

    /// Waits (bounded by the phase timeout) for the reply to `transaction_id`,
    /// or, when `want_status` is set, for an onStatus with that code.
    async fn await_reply(
        &mut self,
        conn: &mut Conn,
        phase: Phase,
        transaction_id: f64,
        want_status: Option<&str>,
    ) -> Result<Command, Failure> {
        let deadline = Instant::now() + self.cfg.timeout;
        loop {
            let m = match tokio::time::timeout_at(deadline, conn.read_message()).await {
                Err(_) => return Err(Failure::Timeout { phase }),
                Ok(Err(e)) => return Err(self.read_failure(phase, e)),
                Ok(Ok(m)) => m,
            };
            if m.type_id != COMMAND_AMF0 && m.type_id != COMMAND_AMF3 {
                continue;
            }
            let cmd = Command::parse(m.type_id, &m.payload).map_err(|e| Failure::Protocol {
                phase,
                detail: e.to_string(),
            })?;
            let status = cmd.status();
            if let Some(s) = &status {
                self.statuses.push(s.clone());
            }
            match cmd.name.as_str() {
                "_error" if cmd.transaction_id == transaction_id || want_status.is_some() => {
                    return Err(Failure::Rejected {
                        phase,
                        status: status.unwrap_or_else(|| StatusReply {
                            code: "_error".into(),
                            level: "error".into(),
                            description: String::new(),
                        }),
                    });
                }
                "_result" if want_status.is_none() && cmd.transaction_id == transaction_id => {
                    return Ok(cmd);
                }
                // Some servers send Publish.Start only in onFCPublish.
                "onStatus" | "onFCPublish" => {
                    let Some(s) = status else { continue };
                    if want_status == Some(s.code.as_str()) {
                        return Ok(cmd);
                    }
                    if s.is_error() {
                        return Err(Failure::Rejected { phase, status: s });
                    }
                }
                _ => {}
            }
        }
    }

    async fn connect(&mut self, conn: &mut Conn) -> Result<(), Failure> {
        let url = &self.cfg.url;
        let object = message::connect_object(&url.app, &url.tc_url(), self.video_fourcc);
        let cmd = Command::new("connect", 1.0, object, vec![]);
        conn.send_command(0, &cmd)
            .await
            .map_err(|e| self.io_failure(Phase::Connect, e))?;
        let reply = self.await_reply(conn, Phase::Connect, 1.0, None).await?;
        self.server_fourcc = Some(FourCcReply::from_result(&reply));
        // Raise our chunk size for media.
        let cs = self.cfg.chunk_size.clamp(128, 0xFF_FFFF);
        conn.set_chunk_size(cs)
            .await
            .map_err(|e| self.io_failure(Phase::Connect, e))?;
        Ok(())
    }

    async fn create_stream(&mut self, conn: &mut Conn) -> Result<u32, Failure> {
        let phase = Phase::CreateStream;
        let name = Value::String(self.cfg.url.stream.clone());
        for (tid, cmd) in [(2.0, "releaseStream"), (3.0, "FCPublish")] {
            conn.send_command(0, &Command::new(cmd, tid, Value::Null, vec![name.clone()]))
                .await
                .map_err(|e| self.io_failure(phase, e))?;
        }
        conn.send_command(0, &Command::new("createStream", 4.0, Value::Null, vec![]))
            .await
            .map_err(|e| self.io_failure(phase, e))?;
        let reply = self.await_reply(conn, phase, 4.0, None).await?;
        let id = reply
            .args
            .iter()
            .find_map(Value::as_number)
            .filter(|n| *n >= 0.0 && *n < u32::MAX as f64)
            .ok_or_else(|| Failure::Protocol {
                phase,
                detail: "createStream result has no stream id".into(),
            })?;
        Ok(id as u32)
    }

    async fn publish(&mut self, conn: &mut Conn, stream_id: u32) -> Result<(), Failure> {
        let phase = Phase::Publish;
        let cmd = Command::new(
            "publish",
            5.0,
            Value::Null,
            vec![
                Value::String(self.cfg.url.publish_name()),
                Value::str("live"),
            ],
        );
        conn.send_command(stream_id, &cmd)
            .await
            .map_err(|e| self.io_failure(phase, e))?;
        self.publish_sent = Some(self.start.elapsed());
        // Some servers send Publish.Start only in onFCPublish, in answer to
        // FCPublish: then the publish command needs no other answer (an
        // error that follows falls in the refusal window).
        if self.statuses.iter().any(|s| s.code == PUBLISH_START) {
            return Ok(());
        }
        self.await_reply(conn, phase, 5.0, Some(PUBLISH_START))
            .await?;
        Ok(())
    }

    async fn stream(
        &mut self,
        conn: &mut Conn,
        stream_id: u32,
        plan: &MediaPlan,
        cancel: &CancellationToken,
        stats: &mut StreamStats,
    ) -> Ending {
        let phase = Phase::Streaming;
        let began = Instant::now();
        // Preamble: metadata and sequence headers at timestamp 0.
        let mut out = bytes::BytesMut::new();
        for t in &plan.preamble {
            let mut hdr = [0u8; MEDIA_HEADER_MAX];
            let n = chunk::media_header(&mut hdr, true, t.csid, 0, t.len, t.type_id, stream_id);
            out.extend_from_slice(&hdr[..n]);
            out.extend_from_slice(&t.body);
        }
        match tokio::time::timeout(self.cfg.timeout, conn.write_all(&out)).await {
            Err(_) => return self.end_stream(stats, began, Failure::Timeout { phase }),
            Ok(Err(e)) => {
                let f = self.io_failure(phase, e);
                return self.end_stream(stats, began, f);
            }
            Ok(Ok(())) => {}
        }
        drop(out);
        let mut cursor = Cursor::new(plan, self.cfg.start_index);
        let end = self.cfg.duration.map(|d| began + d);
        loop {
            let now = Instant::now();
            if end.is_some_and(|e| now >= e) {
                break;
            }
            // Everything due by the end of this tick goes out in one write.
            let horizon = now.saturating_duration_since(began) + self.cfg.tick;
            let (written, more) = match self.send_due(
                conn,
                &mut cursor,
                plan,
                stream_id,
                began,
                now,
                horizon,
                stats,
            ) {
                Ok(x) => x,
                Err(e) => {
                    let f = self.io_failure(phase, e);
                    return self.end_stream(stats, began, f);
                }
            };
            if conn.has_backlog() {
                match tokio::time::timeout(self.cfg.timeout, conn.flush_backlog()).await {
                    Err(_) => return self.end_stream(stats, began, Failure::Timeout { phase }),
                    Ok(Err(e)) => {
                        let f = self.io_failure(phase, e);
                        return self.end_stream(stats, began, f);
                    }
                    Ok(Ok(())) => {}
                }
            }
            if written > 0 {
                self.observer.sent(written);
            }
            if more {
                continue; // more is due right now
            }
            // Wake on the shared tick grid, at or before the next message's
            // due time, so timers of many publishers fire together.
            let next = began + Duration::from_millis(cursor.next_due_ms(plan));
            let next = grid_floor(next, self.cfg.tick).max(now);
            let wake = match end {
                Some(e) if e < next => e,
                _ => next,
            };
            tokio::select! {
                biased;
                _ = cancel.cancelled() => {
                    stats.streamed = began.elapsed();
                    return Ending::Cancelled { phase };
                }
                r = conn.fill() => {
                    let r = match r {
                        Ok(()) => conn.drain_buffered().await,
                        Err(e) => Err(e),
                    };
                    match r {
                        Err(e) => {
                            let f = self.read_failure(phase, e);
                            return self.end_stream(stats, began, f);
                        }
                        Ok(Some(m)) => {
                            if let Some(f) = self.on_server_message(&m) {
                                return self.end_stream(stats, began, f);
                            }
                        }
                        Ok(None) => {}
                    }
                }
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
        stats.streamed = began.elapsed();
        Ending::Completed
    }

    /// Writes the messages due by `horizon` (stream time) in one vectored
    /// write without awaiting. Returns bytes written or queued, and whether
    /// more is due at once (the batch was full).
    #[allow(clippy::too_many_arguments)]
    fn send_due(
        &mut self,
        conn: &mut Conn,
        cursor: &mut Cursor,
        plan: &MediaPlan,
        stream_id: u32,
        began: Instant,
        now: Instant,
        horizon: Duration,
        stats: &mut StreamStats,
    ) -> std::io::Result<(u64, bool)> {
        const BATCH: usize = 32;
        let mut hdrs = [[0u8; MEDIA_HEADER_MAX]; BATCH];
        let mut lens = [0usize; BATCH];
        let mut tags = [None; BATCH];
        let mut dues = [0u64; BATCH];
        let mut n = 0;
        while n < BATCH && Duration::from_millis(cursor.next_due_ms(plan)) <= horizon {
            let (hl, tag, due) = cursor.next(plan, stream_id, &mut hdrs[n]);
            lens[n] = hl;
            tags[n] = Some(tag);
            dues[n] = due;
            let due_at = began + Duration::from_millis(due);
            stats.max_lag = stats.max_lag.max(now.saturating_duration_since(due_at));
            stats.media_ms = due;
            n += 1;
        }
        if n == 0 {
            return Ok((0, false));
        }
        // Video frames: stamp (when the plan has slots) and tell the observer.
        let mut stamps = [[0u8; stamp::NAL_LEN]; BATCH];
        let mut sent_unix_us = None;
        for i in 0..n {
            let Some(t) = tags[i].filter(|t| t.type_id == VIDEO) else {
                continue;
            };
            let at = *sent_unix_us.get_or_insert_with(clock::now_unix_us);
            let sequence = stats.video_frames;
            stats.video_frames += 1;
            if t.stamp_slot.is_some() {
                let s = stamp::Stamp {
                    publisher: self.cfg.publisher_id,
                    sequence,
                    sent_unix_us: at,
                };
                stamp::write_nal(&s, &mut stamps[i]);
            }
            self.observer.frame_sent(dues[i], sequence, at);
        }
        let mut slices = [IoSlice::new(&[]); 4 * BATCH];
        let mut k = 0;
        let mut written = 0;
        for i in 0..n {
            let Some(t) = tags[i] else { continue };
            slices[k] = IoSlice::new(&hdrs[i][..lens[i]]);
            k += 1;
            match t.stamp_slot {
                Some(at) => {
                    let at = at as usize;
                    slices[k] = IoSlice::new(&t.body[..at]);
                    slices[k + 1] = IoSlice::new(&stamps[i]);
                    slices[k + 2] = IoSlice::new(&t.body[at + stamp::NAL_LEN..]);
                    k += 3;
                }
                None => {
                    slices[k] = IoSlice::new(&t.body);
                    k += 1;
                }
            }
            written += lens[i] + t.body.len();
        }
        conn.write_batch_now(&slices[..k])?;
        Ok((written as u64, n == BATCH))
    }

    /// The server or the network ended the stream. Within the refusal
    /// window after Publish.Start a close, reset or error status is a refusal.
    fn end_stream(&mut self, stats: &mut StreamStats, began: Instant, failure: Failure) -> Ending {
        stats.streamed = began.elapsed();
        let after_start = self
            .marks
            .at(Phase::Publish)
            .map_or(stats.streamed, |at| self.start.elapsed().saturating_sub(at));
        let refusal = matches!(
            failure,
            Failure::Closed { .. } | Failure::Reset { .. } | Failure::Rejected { .. }
        );
        if refusal && after_start < self.cfg.refusal_window {
            return Ending::Failed {
                failure: Failure::RefusedAfterStart {
                    after_start_ms: after_start.as_millis() as u64,
                    cause: Box::new(failure),
                },
            };
        }
        interrupted(failure)
    }

    /// A command from the server while streaming: an error status ends the push.
    fn on_server_message(&mut self, m: &chunk::Message) -> Option<Failure> {
        if m.type_id != COMMAND_AMF0 && m.type_id != COMMAND_AMF3 {
            return None;
        }
        let cmd = Command::parse(m.type_id, &m.payload).ok()?;
        let status = cmd.status()?;
        self.statuses.push(status.clone());
        status.is_error().then_some(Failure::Rejected {
            phase: Phase::Streaming,
            status,
        })
    }

    async fn unpublish(&mut self, conn: &mut Conn, stream_id: u32) {
        let name = Value::String(self.cfg.url.stream.clone());
        let fut = async {
            conn.send_command(
                0,
                &Command::new("FCUnpublish", 6.0, Value::Null, vec![name]),
            )
            .await?;
            conn.send_command(
                stream_id,
                &Command::new(
                    "deleteStream",
                    7.0,
                    Value::Null,
                    vec![Value::Number(stream_id as f64)],
                ),
            )
            .await?;
            use tokio::io::AsyncWriteExt;
            conn.io.shutdown().await
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), fut).await;
    }
}

/// The latest instant on the process-wide tick grid at or before `t`.
fn grid_floor(t: Instant, tick: Duration) -> Instant {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let epoch = Instant::from_std(*EPOCH.get_or_init(std::time::Instant::now));
    let tick_ns = tick.as_nanos().max(1);
    let since = t.saturating_duration_since(epoch).as_nanos();
    epoch + Duration::from_nanos(((since / tick_ns) * tick_ns) as u64)
}

fn interrupted(failure: Failure) -> Ending {
    Ending::Interrupted { failure }
}

fn is_reset(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
    )
}

pub(crate) fn dial_failure(e: DialError) -> Failure {
    match e {
        DialError::Dns { detail, .. } => Failure::Dns { detail },
        DialError::DnsTimeout(_) => Failure::Dns {
            detail: "timed out".into(),
        },
        DialError::Refused(_) => Failure::TcpRefused,
        DialError::ConnectTimeout(_) => Failure::TcpTimeout,
        DialError::Connect { source, .. } => Failure::TcpError {
            detail: source.to_string(),
        },
        DialError::Tls { detail, .. } => Failure::Tls { detail },
    }
}
