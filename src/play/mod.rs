//! Play-back: one player engine (RTMP play, HTTP-FLV, HLS) returning a plain
//! result record with phases, frame counts, stalls and per-frame latency.
//!
//! In the shape of the publisher: [`play`] takes a configuration, a cancel
//! token and a latency sink, and returns a [`PlayResult`]. The transports
//! (`rtmp`, `flv_http`) own their sockets and read the clocks; everything
//! they receive goes through one [`Player`] fold (pure, time passed in).

pub mod chunked;
pub mod flv_http;
pub mod flv_tags;
pub mod hls;
mod http;
pub mod m3u8;
pub mod measure;
mod net;
pub mod report;
pub mod rtmp;
pub mod url;
pub mod video;

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::load::hist::{Hist, Percentiles};
use crate::publish::dial::DialOptions;
use crate::rtmp::message::StatusReply;
use measure::{Counts, Frame, LatencySink, Meter, Sent, Track};
pub use url::{PlayUrl, Protocol};
use video::{Video, VideoReader};

/// The phases of a play-back, in order; each transport has some of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Dns,
    Tcp,
    Tls,
    /// RTMP handshake.
    Handshake,
    /// RTMP connect answered.
    Connect,
    /// RTMP createStream answered.
    CreateStream,
    /// RTMP NetStream.Play.Start received.
    Play,
    /// HTTP response headers received.
    Http,
    /// The first media byte (audio or video message).
    FirstByte,
    FirstFrame,
    FirstKeyframe,
    /// Receiving media for `--duration`.
    Playing,
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
            Phase::Play => "play",
            Phase::Http => "http",
            Phase::FirstByte => "first_byte",
            Phase::FirstFrame => "first_frame",
            Phase::FirstKeyframe => "first_keyframe",
            Phase::Playing => "playing",
        }
    }
}

/// How per-frame latency was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LatencyMethod {
    /// From the SEI stamps in the video (`stamp`).
    Sei,
    /// No stamps: FLV timestamps matched against our own publisher's send
    /// log (a relay that keeps timestamps).
    Timestamp,
    /// Neither: no latency.
    None,
}

impl LatencyMethod {
    pub fn name(self) -> &'static str {
        match self {
            LatencyMethod::Sei => "sei",
            LatencyMethod::Timestamp => "timestamp",
            LatencyMethod::None => "none",
        }
    }
}

/// Why the play-back failed, as seen on the wire. Values, rendered at the edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Failure {
    /// DNS, TCP or TLS failed (the dialer's words).
    Dial { phase: Phase, detail: String },
    /// Nothing came within the timeout in this phase.
    Timeout { phase: Phase },
    /// The server closed the connection in this phase.
    Closed { phase: Phase },
    /// The server refused with a status (NetStream.Play.StreamNotFound, ...).
    Rejected { phase: Phase, status: StatusReply },
    /// The HTTP server answered with an error status.
    Http {
        status: u16,
        reason: String,
        body: String,
    },
    /// The server sent what we cannot parse (RTMP, HTTP or FLV).
    Protocol { phase: Phase, detail: String },
    /// The server ended the stream before `--duration` was over
    /// (NetStream.Play.Stop, UnpublishNotify, StreamEOF, end of body).
    Ended { status: Option<StatusReply> },
    /// A transport this build cannot play yet.
    Unsupported { what: String },
}

impl Failure {
    pub fn phase(&self) -> Phase {
        match self {
            Failure::Dial { phase, .. }
            | Failure::Timeout { phase }
            | Failure::Closed { phase }
            | Failure::Rejected { phase, .. }
            | Failure::Protocol { phase, .. } => *phase,
            Failure::Http { .. } => Phase::Http,
            Failure::Ended { .. } => Phase::Playing,
            Failure::Unsupported { .. } => Phase::Dns,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Dial { detail, .. } => f.write_str(detail),
            Failure::Timeout { phase } => write!(f, "no answer in {} (timed out)", phase.name()),
            Failure::Closed { phase } => {
                write!(f, "server closed the connection in {}", phase.name())
            }
            Failure::Rejected { status, .. } => write!(
                f,
                "server refused: {} {} {:?}",
                status.level, status.code, status.description
            ),
            Failure::Http {
                status,
                reason,
                body,
            } => {
                write!(f, "HTTP {status} {reason}")?;
                if !body.is_empty() {
                    write!(f, ": {body:?}")?;
                }
                Ok(())
            }
            Failure::Protocol { phase, detail } => {
                write!(f, "server broke the protocol in {}: {detail}", phase.name())
            }
            Failure::Ended { status: Some(s) } => {
                write!(f, "server ended the stream: {} {:?}", s.code, s.description)
            }
            Failure::Ended { status: None } => f.write_str("server ended the stream"),
            Failure::Unsupported { what } => write!(f, "{what}: not built yet"),
        }
    }
}

/// When frames left our own publisher, by media timestamp: the fallback for
/// latency when the stream carries no stamps (push --play, smoke --play).
pub trait SendLog: Send + Sync {
    /// Unix µs at which the frame with this media timestamp was sent.
    fn sent_unix_us(&self, timestamp_ms: u32) -> Option<u64>;
}

/// What to play and how.
#[derive(Clone)]
pub struct PlayConfig {
    pub url: PlayUrl,
    /// How long to receive after the first frame; `None`: until cancelled.
    pub duration: Option<Duration>,
    /// Bound on each wait (DNS, TCP, each command, first byte, first frame).
    pub timeout: Duration,
    /// No frame for longer than this is a stall.
    pub stall: Duration,
    pub insecure: bool,
    pub dial: Arc<DialOptions>,
    pub send_log: Option<Arc<dyn SendLog>>,
}

impl PlayConfig {
    pub fn new(url: PlayUrl) -> PlayConfig {
        PlayConfig {
            url,
            duration: Some(Duration::from_secs(10)),
            timeout: Duration::from_secs(10),
            stall: Duration::from_secs(1),
            insecure: false,
            dial: Arc::default(),
            send_log: None,
        }
    }
}

/// One play-back's record.
#[derive(Debug, Clone, Serialize)]
pub struct PlayResult {
    pub protocol: Protocol,
    /// Completed phases, time since the start of the play.
    #[serde(skip)]
    pub marks: Vec<(Phase, Duration)>,
    /// Every status the server sent (RTMP).
    pub statuses: Vec<StatusReply>,
    /// The HTTP status (HTTP-FLV, HLS).
    pub http_status: Option<u16>,
    pub failure: Option<Failure>,
    pub cancelled: bool,
    pub counts: Counts,
    /// From the first frame to the end.
    #[serde(skip)]
    pub played: Duration,
    pub latency_method: LatencyMethod,
    /// Filled by [`play_one`] from its own histogram.
    pub latency: Option<Percentiles>,
}

impl PlayResult {
    pub fn at(&self, phase: Phase) -> Option<Duration> {
        self.marks
            .iter()
            .find(|(p, _)| *p == phase)
            .map(|(_, d)| *d)
    }

    /// Playback started: a video frame arrived.
    pub fn started(&self) -> bool {
        self.at(Phase::FirstFrame).is_some()
    }

    /// Started, ran to its end (or was stopped) without failing, and no
    /// stall; `max_latency` bounds the p99 when latency was measured.
    pub fn kept_up(&self, max_latency: Option<Duration>) -> bool {
        let latency_ok = match (max_latency, &self.latency) {
            (Some(max), Some(p)) => p.p99 <= max.as_secs_f64() * 1000.0,
            _ => true,
        };
        self.started() && self.failure.is_none() && self.counts.stalls == 0 && latency_ok
    }
}

/// A frame as any transport delivers it, classified.
struct Unit {
    track: Track,
    timestamp_ms: u32,
    keyframe: bool,
    stamp: Option<crate::stamp::Stamp>,
    bytes: usize,
}

/// The fold every transport feeds: phases, the meter, the video reader, the
/// latency method. Time is passed in.
pub struct Player<'a> {
    start: Instant,
    marks: Vec<(Phase, Duration)>,
    meter: Meter,
    video: VideoReader,
    sink: &'a mut dyn LatencySink,
    send_log: Option<Arc<dyn SendLog>>,
    method: LatencyMethod,
    first_frame: Option<Instant>,
    pub statuses: Vec<StatusReply>,
    pub http_status: Option<u16>,
}

impl<'a> Player<'a> {
    pub fn new(cfg: &PlayConfig, start: Instant, sink: &'a mut dyn LatencySink) -> Player<'a> {
        Player {
            start,
            marks: Vec::new(),
            meter: Meter::new(cfg.stall),
            video: VideoReader::default(),
            sink,
            send_log: cfg.send_log.clone(),
            method: LatencyMethod::None,
            first_frame: None,
            statuses: Vec::new(),
            http_status: None,
        }
    }

    pub fn mark(&mut self, phase: Phase, now: Instant) {
        if self.marks.iter().all(|(p, _)| *p != phase) {
            self.marks.push((phase, now - self.start));
        }
    }

    pub fn has(&self, phase: Phase) -> bool {
        self.marks.iter().any(|(p, _)| *p == phase)
    }

    /// The player asked for the stream (RTMP play sent, the first HTTP
    /// request written) at `unix_us`: frames pushed before are the join
    /// catch-up (see [`measure::Counts::catchup`]).
    pub fn asked(&mut self, unix_us: u64) {
        self.meter.asked(unix_us);
    }

    /// When the first video frame arrived.
    pub fn first_frame(&self) -> Option<Instant> {
        self.first_frame
    }

    /// One media message (RTMP type or FLV tag type 8/9), received at
    /// `now` (monotonic) and `now_unix_us` (wall clock).
    pub fn media(
        &mut self,
        type_id: u8,
        timestamp_ms: u32,
        body: &[u8],
        now: Instant,
        now_unix_us: u64,
    ) {
        if body.is_empty() {
            return;
        }
        let (track, keyframe, stamp) = match type_id {
            8 => (Track::Audio, false, None),
            9 => match self.video.read(body) {
                Some(Video::Frame { keyframe, stamp }) => (Track::Video, keyframe, stamp),
                _ => {
                    self.mark(Phase::FirstByte, now);
                    return;
                }
            },
            _ => return,
        };
        let unit = Unit {
            track,
            timestamp_ms,
            keyframe,
            stamp,
            bytes: body.len(),
        };
        self.unit(&unit, now, now_unix_us);
    }

    /// One access unit out of MPEG-TS (HLS): video as Annex B.
    pub fn access_unit(&mut self, au: &crate::ts::demux::AccessUnit, now: Instant, unix_us: u64) {
        let (track, stamp) = match au.kind {
            crate::ts::demux::Kind::Video => (Track::Video, crate::stamp::find_in_annexb(&au.data)),
            crate::ts::demux::Kind::Audio => (Track::Audio, None),
        };
        let unit = Unit {
            track,
            // 90 kHz to ms, wrapping at 32 bits as FLV timestamps do.
            timestamp_ms: (au.dts_90k / 90) as u32,
            keyframe: track == Track::Video && au.keyframe,
            stamp,
            bytes: au.data.len(),
        };
        self.unit(&unit, now, unix_us);
    }

    /// A transport that delivers in bursts (HLS segments) widens the stall
    /// threshold by the burst period.
    pub fn widen_stall(&mut self, by: Duration) {
        self.meter.widen_stall(by);
    }

    fn unit(&mut self, u: &Unit, now: Instant, now_unix_us: u64) {
        self.mark(Phase::FirstByte, now);
        if u.track == Track::Video {
            self.mark(Phase::FirstFrame, now);
            if self.first_frame.is_none() {
                self.first_frame = Some(now);
                self.sink.first_frame();
            }
            if u.keyframe {
                self.mark(Phase::FirstKeyframe, now);
            }
        }
        let sent = match u.stamp {
            Some(s) => {
                self.method = LatencyMethod::Sei;
                Some(Sent {
                    unix_us: s.sent_unix_us,
                    stamp: Some((s.publisher, s.sequence)),
                })
            }
            None if u.track == Track::Video && self.method != LatencyMethod::Sei => self
                .send_log
                .as_ref()
                .and_then(|l| l.sent_unix_us(u.timestamp_ms))
                .map(|unix_us| {
                    self.method = LatencyMethod::Timestamp;
                    Sent {
                        unix_us,
                        stamp: None,
                    }
                }),
            None => None,
        };
        let frame = Frame {
            track: u.track,
            timestamp_ms: u.timestamp_ms,
            keyframe: u.keyframe,
            bytes: u.bytes,
            at: now - self.start,
            at_unix_us: now_unix_us,
            sent,
        };
        self.meter.frame(&frame, self.sink);
    }

    /// The record, ending the fold at `now`.
    pub fn finish(
        mut self,
        protocol: Protocol,
        failure: Option<Failure>,
        cancelled: bool,
        now: Instant,
    ) -> PlayResult {
        let counts = if self.first_frame.is_some() {
            self.meter.finish(now - self.start)
        } else {
            *self.meter.counts()
        };
        PlayResult {
            protocol,
            marks: self.marks,
            statuses: self.statuses,
            http_status: self.http_status,
            failure,
            cancelled,
            counts,
            played: self.first_frame.map_or(Duration::ZERO, |t| now - t),
            latency_method: self.method,
            latency: None,
        }
    }
}

/// Plays `cfg.url` to its end: phases, then `cfg.duration` of media after
/// the first frame (or until `cancel`). Every wait is bounded by
/// `cfg.timeout`; never panics on server input. Latency samples go to `sink`.
pub async fn play(
    cfg: &PlayConfig,
    cancel: &CancellationToken,
    sink: &mut dyn LatencySink,
) -> PlayResult {
    let start = Instant::now();
    let mut player = Player::new(cfg, start, sink);
    let protocol = cfg.url.protocol;
    let ended = match protocol {
        Protocol::Rtmp => Box::pin(rtmp::run(cfg, &mut player, cancel)).await,
        Protocol::HttpFlv => Box::pin(flv_http::run(cfg, &mut player, cancel)).await,
        Protocol::Hls => Box::pin(hls::run(cfg, &mut player, cancel)).await,
    };
    let (failure, cancelled) = match ended {
        Ok(Stop::Done) => (None, false),
        Ok(Stop::Cancelled) => (None, true),
        Err(f) => (Some(f), false),
    };
    player.finish(protocol, failure, cancelled, Instant::now())
}

/// [`play`] with its own latency histogram, summarised into the result.
pub async fn play_one(cfg: &PlayConfig, cancel: &CancellationToken) -> PlayResult {
    let mut hist = Hist::new();
    let mut r = play(cfg, cancel, &mut hist).await;
    if !hist.is_empty() {
        r.latency = Some(hist.percentiles());
    }
    r
}

/// How a transport's receive loop ended without failing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// `duration` of media received after the first frame.
    Done,
    Cancelled,
}

/// When the receive loop ends: `duration` after the first frame.
pub(crate) fn play_until(cfg: &PlayConfig, player: &Player<'_>) -> Option<Instant> {
    match (player.first_frame(), cfg.duration) {
        (Some(t), Some(d)) => Some(t + d),
        _ => None,
    }
}

/// What the next wait is bounded by: the phase timeout until the first
/// frame, then the end of the play (a stall is measured, not a failure,
/// unless nothing comes for the whole timeout).
pub(crate) fn next_deadline(cfg: &PlayConfig, player: &Player<'_>, last_rx: Instant) -> Instant {
    let silence = last_rx + cfg.timeout;
    match play_until(cfg, player) {
        Some(end) => end.min(silence),
        None => silence,
    }
}
