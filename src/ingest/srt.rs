//! SRT pushes into the local ingest: streamid parsing (Tencent's
//! `#!::h=DOMAIN,r=APP/STREAM,txSecret=..,txTime=..` and the generic
//! `#!::r=..,m=publish`), the same admission rules and registry as RTMP,
//! access-control reject codes, and one task per accepted caller that
//! demuxes the TS for the picture size, counts bytes and bitrate, records how
//! the push ended and sends the same callbacks as an RTMP push.
//!
//! Refusals map to SRT access-control codes (the record keeps the Tencent
//! sub-code):
//! - 304 app not served -> 1404 not found
//! - 305 stream disabled -> 1403 forbidden
//! - 500 no/bad txTime, 502 no txSecret -> 1401 unauthorized (no credentials)
//! - 501 txTime expired, 503 txSecret mismatch -> 1403 forbidden (credentials refused)
//! - 601 stream already pushed (over RTMP or SRT) -> 1409 conflict
//! - a streamid that names no APP/STREAM -> 1400 bad request (sub-code 0)
//! - `m=request` (a player, not a publisher) -> 1405 bad mode (sub-code 0)

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, watch};

use super::playout::MediaTag;
use super::registry::{Claim, Flags, Publisher, Record, RecordOf, Transport};
use super::rules::{self, Policy, Publish, Refusal};
use super::{IngestState, sleep_until};
use crate::avc::sps_dimensions;
use crate::clock::unix_secs;
use crate::errcode::{Errcode, SubErrcode};
use crate::notify::{self, PushInfo};
use crate::sign::redact_query_in;
use crate::srt::listen::{Caller, ListenError, Listener, Pending, code};
use crate::ts::demux::{Demuxer, Kind, STREAM_TYPE_HEVC, annexb_nals};

#[path = "srt_flv.rs"]
pub mod flv;

/// SRT connection ids start here, apart from RTMP's (which count from 1),
/// and within the 31 bits a callback sequence keeps of an id.
const SRT_ID_BASE: u64 = 1 << 30;
/// How long an answer to a caller (accept's handshake end, a reject) may take.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a closing connection may take to say goodbye.
const LINGER: Duration = Duration::from_secs(1);
/// How long `serve` waits, after shutdown, for sessions to write their records.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// The bitrate shown is measured over windows of at least this length.
const BITRATE_WINDOW: Duration = Duration::from_secs(1);
/// Without an SPS, push_started goes out this long after the accept.
const STARTED_WITHOUT_SPS: Duration = Duration::from_secs(1);

/// Why a streamid was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamIdError {
    #[error("no streamid (SRT pushes name APP/STREAM in it)")]
    Missing,
    #[error("the streamid has no r=APP/STREAM")]
    NoResource,
    #[error("the streamid's resource {0:?} is not APP/STREAM")]
    BadResource(String),
    #[error("the streamid asks for mode {0:?}; this ingest takes publishers (m=publish)")]
    Mode(String),
    #[error("the streamid's {0:?} entry is not key=value")]
    Entry(String),
}

impl StreamIdError {
    /// The access-control code the caller is refused with.
    pub fn reject_code(&self) -> i32 {
        match self {
            StreamIdError::Mode(_) => code::BAD_MODE,
            _ => code::BAD_REQUEST,
        }
    }
}

/// A publish request read from a streamid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrtPublish {
    /// `h=`: the push domain, when given.
    pub host: Option<String>,
    pub app: String,
    pub stream: String,
    /// Every other entry (txSecret, txTime, ...) as a URL query, in order.
    pub query: String,
}

/// Parses a streamid: `#!::` followed by comma-separated `key=value` entries
/// in any order (`r=APP/STREAM` required, `h=` the domain, `m=` absent or
/// `publish`, every other key kept for the query), or a bare
/// `APP/STREAM?query`.
pub fn parse_stream_id(sid: &str) -> Result<SrtPublish, StreamIdError> {
    if sid.is_empty() {
        return Err(StreamIdError::Missing);
    }
    let Some(entries) = sid.strip_prefix("#!::") else {
        let (resource, query) = rules::split_query(sid);
        let (app, stream) = resource_parts(resource)?;
        return Ok(SrtPublish {
            host: None,
            app,
            stream,
            query: query.unwrap_or("").to_string(),
        });
    };
    let (mut host, mut resource, mut query) = (None, None, Vec::new());
    for entry in entries.split(',').filter(|e| !e.is_empty()) {
        let Some((k, v)) = entry.split_once('=') else {
            return Err(StreamIdError::Entry(redact_query_in(entry)));
        };
        match k {
            "h" => host = Some(v.to_string()),
            "r" => resource = Some(v),
            "m" if v == "publish" => {}
            "m" => return Err(StreamIdError::Mode(v.to_string())),
            // An `&` would smuggle a second parameter into the query.
            _ if v.contains('&') => return Err(StreamIdError::Entry(redact_query_in(entry))),
            _ => query.push(entry),
        }
    }
    let resource = resource.ok_or(StreamIdError::NoResource)?;
    // A query inside r= (`r=live/s?txTime=..`) counts too.
    let (resource, inner) = rules::split_query(resource);
    let (app, stream) = resource_parts(resource)?;
    let mut all: Vec<&str> = inner.into_iter().filter(|q| !q.is_empty()).collect();
    all.extend(query);
    Ok(SrtPublish {
        host,
        app,
        stream,
        query: all.join("&"),
    })
}

fn resource_parts(resource: &str) -> Result<(String, String), StreamIdError> {
    match resource.trim_start_matches('/').split_once('/') {
        Some((app, stream)) if !app.is_empty() && !stream.is_empty() && !stream.contains('/') => {
            Ok((app.to_string(), stream.to_string()))
        }
        _ => Err(StreamIdError::BadResource(redact_query_in(resource))),
    }
}

/// The access-control code for an admission refusal (see the module doc).
pub fn reject_code(sub: SubErrcode) -> i32 {
    match sub {
        SubErrcode::APP_DISABLED => code::NOT_FOUND,
        SubErrcode::NO_TX_TIME | SubErrcode::NO_TX_SECRET => code::UNAUTHORIZED,
        SubErrcode::STREAM_IN_USE => code::CONFLICT,
        _ => code::FORBIDDEN,
    }
}

/// A refused SRT push: the code the caller gets and what is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrtRefusal {
    pub code: i32,
    pub refusal: Refusal,
    /// What the record names (empty when the streamid named nothing).
    pub app: String,
    pub stream: String,
}

/// Reads the streamid and applies the RTMP rules to it; pure.
pub fn admit(
    stream_id: Option<&str>,
    policy: &Policy<'_>,
    now_unix: u64,
) -> Result<SrtPublish, SrtRefusal> {
    let publish = parse_stream_id(stream_id.unwrap_or("")).map_err(|e| SrtRefusal {
        code: e.reject_code(),
        refusal: Refusal::new(SubErrcode::NONE, e.to_string()),
        app: String::new(),
        stream: String::new(),
    })?;
    let req = Publish {
        app: &publish.app,
        stream: &publish.stream,
        query: &publish.query,
    };
    rules::check(&req, policy, now_unix).map_err(|refusal| SrtRefusal {
        code: reject_code(refusal.sub_errcode),
        refusal,
        app: publish.app.clone(),
        stream: publish.stream.clone(),
    })?;
    Ok(publish)
}

/// What the ingest learns from a push's TS: the picture size from the first
/// H.264 SPS, and whether it carries HEVC (whose size it does not read).
#[derive(Debug, Default)]
pub struct MediaProbe {
    demux: Demuxer,
    dimensions: Option<(u32, u32)>,
    flv: flv::TsToFlv,
}

impl MediaProbe {
    /// Feeds TS bytes; returns the picture size the first time it is known.
    pub fn feed(&mut self, ts: &[u8]) -> Option<(u32, u32)> {
        self.feed_tags(ts, |_| {})
    }

    /// [`MediaProbe::feed`], also handing each access unit, as FLV tags, to
    /// `tag` (the play-out fan-out: SRT pushes play over RTMP and HTTP-FLV).
    pub fn feed_tags(&mut self, ts: &[u8], mut tag: impl FnMut(flv::FlvTag)) -> Option<(u32, u32)> {
        let units = self.demux.push(ts);
        for t in units.iter().flat_map(|u| self.flv.convert(u)) {
            tag(t);
        }
        if self.dimensions.is_some() {
            return None;
        }
        let found = units
            .iter()
            .filter(|u| u.kind == Kind::Video)
            .flat_map(|u| annexb_nals(&u.data))
            .filter(|n| n.first().is_some_and(|b| b & 0x1f == 7))
            .find_map(sps_nal_dimensions)?;
        self.dimensions = Some(found);
        Some(found)
    }

    pub fn demuxer(&self) -> &Demuxer {
        &self.demux
    }

    /// True when the PMT announces HEVC (listed, size not read).
    pub fn has_hevc(&self) -> bool {
        self.demux
            .streams()
            .iter()
            .any(|s| s.stream_type == STREAM_TYPE_HEVC)
    }
}

/// Width and height from an SPS NAL unit, through the FLV sequence header
/// form `avc::sps_dimensions` reads.
fn sps_nal_dimensions(sps: &[u8]) -> Option<(u32, u32)> {
    avc_sequence_header(sps, &[]).and_then(|tag| sps_dimensions(&tag))
}

/// An FLV AVC sequence header tag body (keyframe, AVC, packet type 0,
/// AVCDecoderConfigurationRecord) for one SPS and one PPS (none if empty).
pub fn avc_sequence_header(sps: &[u8], pps: &[u8]) -> Option<Vec<u8>> {
    if sps.len() < 4 || sps.len() > 0xffff || pps.len() > 0xffff {
        return None;
    }
    let mut b = vec![0x17, 0, 0, 0, 0, 1, sps[1], sps[2], sps[3], 0xff, 0xe1];
    b.extend_from_slice(&(sps.len() as u16).to_be_bytes());
    b.extend_from_slice(sps);
    if pps.is_empty() {
        b.push(0);
    } else {
        b.push(1);
        b.extend_from_slice(&(pps.len() as u16).to_be_bytes());
        b.extend_from_slice(pps);
    }
    Some(b)
}

/// How an SRT push ends.
#[derive(Debug)]
enum End {
    Clean,
    Idle(Duration),
    Network(String),
    Replaced,
    Shutdown,
}

impl End {
    fn errcode(&self) -> Errcode {
        match self {
            End::Clean => Errcode::CLIENT_STOPPED,
            End::Idle(_) => Errcode::NO_DATA,
            End::Network(_) => Errcode::NETWORK,
            End::Replaced | End::Shutdown => Errcode::ENDED_BY_COMMAND,
        }
    }

    fn errmsg(&self) -> String {
        match self {
            End::Clean => "the push client closed the SRT connection".to_string(),
            End::Idle(d) => format!("no data for {}", humantime::format_duration(*d)),
            End::Network(e) => e.clone(),
            End::Replaced => "another push took the stream".to_string(),
            End::Shutdown => "the ingest is shutting down".to_string(),
        }
    }
}

/// Takes SRT pushes on `listener` into `state`'s registry until `stop`
/// turns true; then ends live SRT pushes (errcode 10) and returns once
/// their records are written (or after a few seconds).
pub async fn serve(mut listener: Listener, state: Arc<IngestState>, stop: watch::Receiver<bool>) {
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let mut next_id = SRT_ID_BASE;
    let mut stopping = stop.clone();
    loop {
        let pending = tokio::select! {
            _ = stopping.wait_for(|s| *s) => break,
            p = listener.next() => match p {
                Some(p) => p,
                None => break,
            },
        };
        next_id += 1;
        let (caller_claim, _) = match decide(&state, &pending, next_id) {
            Ok(admitted) => admitted,
            Err(code) => {
                tokio::spawn(pending.reject(code, ANSWER_TIMEOUT));
                continue;
            }
        };
        let (state, stop, done) = (state.clone(), stop.clone(), done_tx.clone());
        tokio::spawn(async move {
            let publisher = caller_claim.publisher.clone();
            match pending.accept(ANSWER_TIMEOUT).await {
                Ok(caller) => {
                    let s = Session::new(caller, caller_claim, state);
                    s.run(stop).await;
                }
                Err(e) => {
                    tracing::info!("SRT accept failed: {e}");
                    state.registry.release(&publisher.stream, publisher.id);
                }
            }
            drop(done);
        });
    }
    listener.close(LINGER).await;
    drop(done_tx);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, done_rx.recv()).await;
}

/// Admits and claims, or records the refusal and returns the code to
/// refuse the caller with.
fn decide(
    state: &Arc<IngestState>,
    pending: &Pending,
    id: u64,
) -> Result<(Claim, SrtPublish), i32> {
    let cfg = &state.config;
    let policy = Policy {
        app: &cfg.app,
        disabled: &cfg.disabled,
        keys: &cfg.keys,
        auth_delta: cfg.auth_delta,
    };
    let now = SystemTime::now();
    let peer = pending.peer();
    let claimed = admit(pending.stream_id(), &policy, unix_secs(now)).and_then(|p| {
        let mut publisher =
            Publisher::new(id, &p.stream, &p.app, peer, &p.query, now, Flags::default());
        publisher.transport = Transport::Srt;
        match state.registry.claim(publisher, cfg.duplicate) {
            Ok(claim) => Ok((claim, p)),
            Err(refusal) => Err(SrtRefusal {
                code: reject_code(refusal.sub_errcode),
                refusal,
                app: p.app,
                stream: p.stream,
            }),
        }
    });
    match claimed {
        Ok(c) => {
            tracing::info!(client = %peer, stream = %c.1.stream, "SRT publish accepted");
            Ok(c)
        }
        Err(r) => {
            tracing::info!(
                client = %peer,
                stream = %r.stream,
                sub_errcode = r.refusal.sub_errcode.0,
                srt_reject = r.code,
                "SRT publish refused: {}",
                r.refusal.errmsg
            );
            let of = RecordOf {
                stream: &r.stream,
                app: &r.app,
                client: peer,
                flags: Flags::default(),
                video: None,
            };
            state.registry.record(Record::refusal(of, now, &r.refusal));
            Err(r.code)
        }
    }
}

/// One accepted SRT push.
struct Session {
    caller: Caller,
    claim: Claim,
    state: Arc<IngestState>,
    probe: MediaProbe,
    sequence: String,
    started_due: Option<tokio::time::Instant>,
    window_start: Instant,
    window_bytes_at_start: u64,
}

impl Session {
    fn new(caller: Caller, claim: Claim, state: Arc<IngestState>) -> Self {
        let id = claim.publisher.id;
        let started_due = state
            .config
            .notifier
            .is_some()
            .then(|| tokio::time::Instant::now() + STARTED_WITHOUT_SPS);
        Session {
            caller,
            sequence: notify::sequence_for(id, unix_secs(SystemTime::now())),
            claim,
            state,
            probe: MediaProbe::default(),
            started_due,
            window_start: Instant::now(),
            window_bytes_at_start: 0,
        }
    }

    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let end = self.receive(&mut stop).await;
        self.finish(&end);
        self.caller.close(LINGER).await;
    }

    async fn receive(&mut self, stop: &mut watch::Receiver<bool>) -> End {
        let idle = self.state.config.idle_timeout;
        loop {
            let got = tokio::select! {
                _ = stop.wait_for(|s| *s) => return End::Shutdown,
                _ = &mut self.claim.evicted => return End::Replaced,
                _ = sleep_until(self.started_due) => {
                    self.send_started();
                    continue;
                }
                r = self.caller.recv(idle) => r,
            };
            let data = match got {
                Ok(Some(d)) => d,
                Ok(None) => return End::Clean,
                Err(ListenError::Idle { within, .. }) => return End::Idle(within),
                Err(e) => return End::Network(e.to_string()),
            };
            let publisher = self.claim.publisher.clone();
            publisher.add_bytes(data.len() as u64);
            let fanout = &self.claim.fanout;
            let size = self.probe.feed_tags(&data, |t| {
                fanout.push(MediaTag::new(t.type_id, t.timestamp_ms, t.body));
            });
            if let Some((w, h)) = size {
                publisher.set_dimensions(w, h);
                // MPEG-TS stream type 0x1B: H.264 (no FLV framing; shown as the plain codec id form).
                publisher.set_video(
                    crate::codec::VideoCodec::H264,
                    crate::codec::Framing::Legacy,
                );
                self.send_started();
            }
            let elapsed = self.window_start.elapsed();
            if elapsed >= BITRATE_WINDOW {
                let bytes = publisher.bytes();
                let bits = (bytes - self.window_bytes_at_start) as f64 * 8.0;
                publisher.set_bitrate((bits / elapsed.as_secs_f64()) as u64);
                self.window_start = Instant::now();
                self.window_bytes_at_start = bytes;
            }
        }
    }

    fn push_info(&self) -> PushInfo {
        let p = &self.claim.publisher;
        let (width, height) = p.dimensions();
        PushInfo {
            app_path: p.app.clone(),
            stream_id: p.stream.clone(),
            sequence: self.sequence.clone(),
            user_ip: p.client.ip().to_string(),
            stream_param: p.query.clone(),
            width,
            height,
            codec: p
                .video()
                .map_or(String::new(), |(c, _)| c.as_str().to_string()),
        }
    }

    /// Sends push_started once per push (no-op without a notifier).
    fn send_started(&mut self) {
        if self.started_due.take().is_none() {
            return;
        }
        if let Some(n) = &self.state.config.notifier {
            n.push_started(&self.push_info(), unix_secs(SystemTime::now()));
        }
    }

    /// Releases the stream, records the end and sends push_ended.
    fn finish(&mut self, end: &End) {
        self.send_started();
        let p = self.claim.publisher.clone();
        self.state.registry.release(&p.stream, p.id);
        let duration_ms = p.started.elapsed().as_millis() as u64;
        let (errcode, errmsg) = (end.errcode(), end.errmsg());
        let now = SystemTime::now();
        let of = RecordOf {
            stream: &p.stream,
            app: &p.app,
            client: p.client,
            flags: Flags::default(),
            video: p.video(),
        };
        self.state.registry.record(Record::new(
            of,
            now,
            errcode,
            SubErrcode::NONE,
            &errmsg,
            duration_ms,
        ));
        let demux = self.probe.demuxer().stats();
        let rx = self.caller.stats().unwrap_or_default();
        tracing::info!(
            client = %p.client,
            stream = %p.stream,
            errcode = errcode.0,
            duration_ms,
            ts_errors = demux.errors(),
            srt_lost = rx.lost,
            srt_dropped = rx.dropped,
            hevc = self.probe.has_hevc(),
            "SRT push ended: {errmsg}"
        );
        if let Some(n) = &self.state.config.notifier {
            n.push_ended(
                &self.push_info(),
                errcode,
                &errmsg,
                duration_ms,
                unix_secs(now),
            );
        }
    }
}

#[cfg(test)]
#[path = "srt_tests.rs"]
mod tests;
