//! Viewers of a load run (`load --viewers K`): each published stream's play
//! URL, one small task per viewer on the publishers' runtimes, the shared
//! latency histogram they feed, and the plain record each one leaves.
//!
//! A viewer is the play engine (`play::play`) as is: its counts are a few
//! dozen bytes, its latency samples go straight into one histogram shared by
//! every viewer of the process, so a viewer costs its socket, its read
//! buffer and its task.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::hist::Hist;
use crate::play::measure::{Counts, LatencySink};
use crate::play::{self, Failure, LatencyMethod, Phase, PlayConfig, PlayUrl, Protocol};

/// Why viewer options cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ViewerError {
    #[error("--play-template {template:?} gives a bad play URL: {reason}")]
    BadTemplate { template: String, reason: String },
    #[error(
        "--play-template {template:?} plays over {found}, but --play-protocol says {wanted}: drop one or make them agree"
    )]
    ProtocolMismatch {
        template: String,
        found: &'static str,
        wanted: &'static str,
    },
    #[error("--play-domain {0:?} is not a host or host:port")]
    BadDomain(String),
}

/// How a published stream maps to its play URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlayTemplate {
    /// A URL with `{i}` (the stream index) and/or `{stream}` (its name).
    Url(String),
    /// `rtmp://DOMAIN/APP/STREAM`, `http://DOMAIN/APP/STREAM.flv` or
    /// `http://DOMAIN/APP/STREAM.m3u8`, by protocol.
    Domain {
        domain: String,
        app: String,
        protocol: Protocol,
    },
}

impl PlayTemplate {
    /// Checks the template on a sample stream; `protocol` is what
    /// `--play-protocol` asked for, if given.
    pub fn check(&self, protocol: Option<Protocol>) -> Result<(), ViewerError> {
        match self {
            PlayTemplate::Url(t) => {
                let u = self.url(0, "stream")?;
                if let Some(p) = protocol
                    && p != u.protocol
                {
                    return Err(ViewerError::ProtocolMismatch {
                        template: t.clone(),
                        found: u.protocol.name(),
                        wanted: p.name(),
                    });
                }
                Ok(())
            }
            PlayTemplate::Domain { domain, .. } => {
                let bad = domain.is_empty()
                    || domain.contains(['/', '?', '#', '@', ' '])
                    || domain.contains("://");
                if bad {
                    return Err(ViewerError::BadDomain(domain.clone()));
                }
                self.url(0, "stream").map(|_| ())
            }
        }
    }

    /// The play URL of stream `index`, named `stream`.
    pub fn url(&self, index: u64, stream: &str) -> Result<PlayUrl, ViewerError> {
        self.signed_url(index, stream, None)
    }

    /// [`PlayTemplate::url`], signed with the play key when `signer` is
    /// given and the URL carries no txSecret of its own.
    pub fn signed_url(
        &self,
        index: u64,
        stream: &str,
        signer: Option<&PlaySigner>,
    ) -> Result<PlayUrl, ViewerError> {
        let (mut text, template) = match self {
            PlayTemplate::Url(t) => (
                t.replace("{i}", &index.to_string())
                    .replace("{stream}", stream),
                t,
            ),
            PlayTemplate::Domain {
                domain,
                app,
                protocol,
            } => {
                let text = match protocol {
                    Protocol::Rtmp => format!("rtmp://{domain}/{app}/{stream}"),
                    Protocol::HttpFlv => format!("http://{domain}/{app}/{stream}.flv"),
                    Protocol::Hls => format!("http://{domain}/{app}/{stream}.m3u8"),
                };
                (text, domain)
            }
        };
        if let Some(signer) = signer
            && !text.contains("txSecret=")
        {
            let sep = if text.contains('?') { '&' } else { '?' };
            let secret = crate::sign::tx_secret(&signer.key, stream, &signer.tx_time);
            text = format!("{text}{sep}txSecret={secret}&txTime={}", signer.tx_time);
        }
        PlayUrl::parse(&text).map_err(|e| ViewerError::BadTemplate {
            template: template.clone(),
            reason: e.to_string(),
        })
    }

    /// The template as shown in reports (secrets redacted).
    pub fn describe(&self) -> String {
        match self {
            PlayTemplate::Url(t) => crate::sign::redact_query_in(t),
            PlayTemplate::Domain {
                domain,
                app,
                protocol,
            } => format!("{} {domain}/{app}", protocol.name()),
        }
    }
}

/// One histogram of push-to-play latency shared by every viewer.
#[derive(Debug, Default)]
pub struct SharedLatency(Mutex<Hist>);

impl SharedLatency {
    pub fn take(&self) -> Hist {
        self.0
            .lock()
            .map(|mut h| std::mem::take(&mut *h))
            .unwrap_or_default()
    }
}

/// The real-time bound: a viewer is behind when a frame pushed after it
/// joined reaches it more than this later.
pub const REAL_TIME: Duration = Duration::from_secs(1);

/// One viewer's sink: its own largest latency, the samples into the shared
/// histogram (a few at a time: one lock per [`SINK_BATCH`] frames, not per
/// frame, across 10,000 viewers on every thread), the live counters.
struct ViewerSink<'a> {
    shared: &'a SharedLatency,
    live: &'a ViewerLive,
    max: Option<Duration>,
    pending: [u64; SINK_BATCH],
    len: usize,
    playing: bool,
}

const SINK_BATCH: usize = 16;

impl<'a> ViewerSink<'a> {
    fn new(shared: &'a SharedLatency, live: &'a ViewerLive) -> ViewerSink<'a> {
        ViewerSink {
            shared,
            live,
            max: None,
            pending: [0; SINK_BATCH],
            len: 0,
            playing: false,
        }
    }

    fn flush(&mut self) {
        if self.len == 0 {
            return;
        }
        if let Ok(mut h) = self.shared.0.lock() {
            for &us in &self.pending[..self.len] {
                h.record(Duration::from_micros(us));
            }
        }
        self.len = 0;
    }
}

impl LatencySink for ViewerSink<'_> {
    fn record(&mut self, latency: Duration) {
        if self.max.is_none_or(|m| latency > m) {
            self.max = Some(latency);
            // A new worst for this viewer (rare once it plays): the run's.
            let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
            self.live.worst_us.fetch_max(us, Relaxed);
        }
        if latency > REAL_TIME {
            self.live.late_frames.fetch_add(1, Relaxed);
        }
        self.pending[self.len] = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.len += 1;
        if self.len == SINK_BATCH {
            self.flush();
        }
    }

    fn first_frame(&mut self) {
        self.playing = true;
        self.live.playing.fetch_add(1, Relaxed);
    }
}

impl Drop for ViewerSink<'_> {
    fn drop(&mut self) {
        self.flush();
        if self.playing {
            self.live.playing.fetch_sub(1, Relaxed);
        }
    }
}

/// Signs viewers' play URLs the Tencent way: txSecret = MD5(play key +
/// stream name + txTime), one expiry for the run.
#[derive(Clone)]
pub struct PlaySigner {
    pub key: crate::secret::Secret,
    pub tx_time: String,
}

impl PlaySigner {
    pub fn new(key: crate::secret::Secret, expiry_unix: u64) -> PlaySigner {
        PlaySigner {
            key,
            tx_time: crate::sign::tx_time_hex(expiry_unix),
        }
    }
}

/// What every viewer of the run uses alike.
pub struct ViewerSettings {
    /// Viewers per stream.
    pub per_stream: u32,
    pub template: PlayTemplate,
    /// The play key's signer, when one is given (PUSHPROBE_PLAY_KEY).
    pub signer: Option<PlaySigner>,
    pub timeout: Duration,
    pub stall: Duration,
    pub insecure: bool,
    pub dial: Arc<crate::publish::dial::DialOptions>,
    /// How long a viewer plays: with publishers, until this long after its
    /// publisher's Publish.Start less [`END_MARGIN`]; alone, after its first
    /// frame.
    pub duration: Duration,
    pub latency: Arc<SharedLatency>,
    /// Viewers started, playing (first frame seen) and failed so far.
    pub live: Arc<ViewerLive>,
}

impl ViewerSettings {
    /// Stream `index`'s play URL, signed when a play key was given.
    pub fn url(&self, index: u64, stream: &str) -> Result<PlayUrl, ViewerError> {
        self.template
            .signed_url(index, stream, self.signer.as_ref())
    }
}

/// Live viewer counters for progress.
#[derive(Debug, Default)]
pub struct ViewerLive {
    pub started: std::sync::atomic::AtomicU64,
    /// Viewers between their first video frame and their end, now.
    pub playing: std::sync::atomic::AtomicU64,
    pub failed: std::sync::atomic::AtomicU64,
    /// Live frames that reached their viewer over [`REAL_TIME`] late.
    pub late_frames: std::sync::atomic::AtomicU64,
    /// The worst live frame so far, microseconds.
    pub worst_us: std::sync::atomic::AtomicU64,
}

/// A viewer of a publisher stops this long before the publisher does, so it
/// ends on its own rather than on the server's end of stream.
pub fn end_margin(duration: Duration) -> Duration {
    (duration / 4).min(Duration::from_millis(500))
}

/// What one viewer measured.
#[derive(Debug, Clone)]
pub struct ViewerRecord {
    /// The stream's index and this viewer's number on it.
    pub stream_index: u64,
    pub viewer: u32,
    /// Actual start minus scheduled start (the publisher's Publish.Start,
    /// or the viewer's slot in viewer-only mode).
    pub start_delay: Duration,
    /// First video frame from the viewer's actual start.
    pub first_frame: Option<Duration>,
    pub failure: Option<String>,
    pub cancelled: bool,
    pub counts: Counts,
    pub latency_method: LatencyMethod,
    /// The worst live-frame latency (`None`: no live frame was measured).
    pub max_latency: Option<Duration>,
    pub played: Duration,
}

impl ViewerRecord {
    pub fn started(&self) -> bool {
        self.first_frame.is_some()
    }
    /// Measured: not stopped by the user before its first frame (such a
    /// viewer's outcome is unknown; it is left out, as a publisher would be).
    pub fn measured(&self) -> bool {
        !self.cancelled || self.started()
    }
    /// Started, no failure, no stall, and never behind real time.
    pub fn kept_up(&self) -> bool {
        self.started()
            && self.failure.is_none()
            && self.counts.stalls == 0
            && self.max_latency.is_none_or(|m| m <= REAL_TIME)
    }
}

/// The failure's reason as a report key: few distinct values, no secrets.
pub fn reason(f: &Failure) -> String {
    match f {
        Failure::Dial { phase, .. } => format!("dial_{}", phase.name()),
        Failure::Timeout { phase } => format!("timeout_{}", phase.name()),
        Failure::Closed { phase } => format!("closed_{}", phase.name()),
        Failure::Rejected { status, .. } => format!("rejected {}", status.code),
        Failure::Http { status, .. } => format!("http_{status}"),
        Failure::Protocol { phase, .. } => format!("protocol_{}", phase.name()),
        Failure::Ended { .. } => "ended".to_owned(),
        Failure::Unsupported { .. } => "unsupported".to_owned(),
    }
}

/// One viewer: plays `url` from now until `end` (with publishers) or for
/// the run's duration after its first frame (viewer-only), or until
/// `cancel`. `scheduled`: when it was due.
pub async fn view(
    settings: Arc<ViewerSettings>,
    url: PlayUrl,
    stream_index: u64,
    viewer: u32,
    scheduled: Instant,
    end: Option<Instant>,
    cancel: CancellationToken,
) -> ViewerRecord {
    let start = Instant::now();
    settings.live.started.fetch_add(1, Relaxed);
    let mut cfg = PlayConfig::new(url);
    cfg.timeout = settings.timeout;
    cfg.stall = settings.stall;
    cfg.insecure = settings.insecure;
    cfg.dial = settings.dial.clone();
    cfg.duration = match end {
        Some(_) => None,
        None => Some(settings.duration),
    };
    let mut sink = ViewerSink::new(&settings.latency, &settings.live);
    let stop = cancel.child_token();
    let timer = async {
        match end {
            Some(end) => tokio::time::sleep_until(end).await,
            None => std::future::pending().await,
        }
        stop.cancel();
        std::future::pending::<()>().await;
    };
    let result = tokio::select! {
        r = play::play(&cfg, &stop, &mut sink) => r,
        _ = timer => unreachable!("the timer never ends"),
    };
    let first_frame = result.at(Phase::FirstFrame);
    let failure = match (&result.failure, first_frame) {
        (Some(f), _) => Some(reason(f)),
        // Stopped before any frame: by us at the end of its time, or by
        // the user (left out of the counts by the caller).
        (None, None) if !cancel.is_cancelled() => Some("no_first_frame".to_owned()),
        (None, _) => None,
    };
    if failure.is_some() {
        settings.live.failed.fetch_add(1, Relaxed);
    }
    let record = ViewerRecord {
        stream_index,
        viewer,
        start_delay: start.saturating_duration_since(scheduled),
        first_frame,
        failure,
        cancelled: cancel.is_cancelled(),
        counts: result.counts,
        latency_method: result.latency_method,
        max_latency: sink.max,
        played: result.played,
    };
    drop(sink);
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn play_urls_are_signed_with_the_play_key_unless_they_carry_a_secret() {
        let signer = PlaySigner::new(crate::secret::Secret::new("playkey".into()), 0x6F00_0000);
        // MD5("playkey" + "s1" + "6F000000"), by Python's hashlib.
        let want = "txSecret=96c7c75957a6c9c1cbf8d8afb7cb4c7c&txTime=6F000000";
        let t = PlayTemplate::Domain {
            domain: "play.example.com".into(),
            app: "live".into(),
            protocol: Protocol::HttpFlv,
        };
        let u = t.signed_url(1, "s1", Some(&signer)).unwrap();
        assert_eq!(u.path, format!("/live/s1.flv?{want}"));
        let t = PlayTemplate::Url("rtmp://h/live/{stream}?a=1".into());
        let u = t.signed_url(1, "s1", Some(&signer)).unwrap();
        assert_eq!(u.rtmp.unwrap().query_string(), format!("a=1&{want}"));
        // A pre-signed template is used as given.
        let t = PlayTemplate::Url("http://h/live/{stream}.flv?txSecret=x&txTime=1".into());
        let u = t.signed_url(1, "s1", Some(&signer)).unwrap();
        assert_eq!(u.path, "/live/s1.flv?txSecret=x&txTime=1");
    }

    #[test]
    fn play_urls_from_a_template_or_a_domain() {
        let t = PlayTemplate::Url("rtmp://127.0.0.1:1935/live/load-{i}".into());
        assert_eq!(t.check(Some(Protocol::Rtmp)), Ok(()));
        let u = t.url(7, "x").unwrap();
        assert_eq!(u.rtmp.unwrap().stream, "load-7");
        let t = PlayTemplate::Url("http://h:8080/live/{stream}.flv?a=1".into());
        assert_eq!(t.url(1, "s-1").unwrap().path, "/live/s-1.flv?a=1");
        assert!(matches!(
            t.check(Some(Protocol::Rtmp)),
            Err(ViewerError::ProtocolMismatch { .. })
        ));
        assert!(matches!(
            PlayTemplate::Url("ftp://h/{i}".into()).check(None),
            Err(ViewerError::BadTemplate { .. })
        ));
        for (protocol, want) in [
            (Protocol::Rtmp, "rtmp://play.example.com/live/s"),
            (Protocol::HttpFlv, "http://play.example.com:80/live/s.flv"),
            (Protocol::Hls, "http://play.example.com:80/live/s.m3u8"),
        ] {
            let t = PlayTemplate::Domain {
                domain: "play.example.com".into(),
                app: "live".into(),
                protocol,
            };
            t.check(None).unwrap();
            assert_eq!(t.url(0, "s").unwrap().redacted(), want);
        }
        let bad = PlayTemplate::Domain {
            domain: "http://x".into(),
            app: "live".into(),
            protocol: Protocol::Rtmp,
        };
        assert_eq!(
            bad.check(None),
            Err(ViewerError::BadDomain("http://x".into()))
        );
    }

    /// Every viewer of a load run carries its task's future: 10,000 of them
    /// must fit in 16 KB each all told, kernel socket buffers aside.
    #[test]
    fn viewer_future_stays_small() {
        let settings = Arc::new(ViewerSettings {
            per_stream: 1,
            template: PlayTemplate::Url("rtmp://127.0.0.1:9/live/{i}".into()),
            signer: None,
            timeout: Duration::from_secs(1),
            stall: Duration::from_secs(1),
            insecure: false,
            dial: Arc::default(),
            duration: Duration::from_secs(1),
            latency: Arc::default(),
            live: Arc::default(),
        });
        let url = settings.template.url(0, "s").unwrap();
        let f = view(
            settings,
            url,
            0,
            0,
            Instant::now(),
            None,
            CancellationToken::new(),
        );
        let size = std::mem::size_of_val(&f);
        // 1064 bytes when written; the transport's future is boxed apart
        // (measured whole by benches/compare.sh).
        assert!(size <= 1536, "viewer future grew to {size} bytes");
    }

    #[test]
    fn the_end_margin_is_short_and_never_the_whole_run() {
        assert_eq!(
            end_margin(Duration::from_secs(30)),
            Duration::from_millis(500)
        );
        assert_eq!(
            end_margin(Duration::from_secs(1)),
            Duration::from_millis(250)
        );
    }
}
