//! Callback sender for the local ingest: Tencent-style push / interruption
//! notifications, POSTed as JSON with retries by one background task, queued
//! without blocking from media paths.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, StatusCode, Uri, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::Serialize;
use serde_json::Map;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::{JoinHandle, JoinSet};

use crate::callback::{CallbackEvent, EVENT_INTERRUPT, EVENT_PUSH};
use crate::errcode::Errcode;
use crate::secret::Secret;
use crate::sign;

/// Notifications waiting to be sent; more are dropped (and counted).
pub const QUEUE: usize = 65_536;
/// Deliveries in flight at once.
pub const MAX_IN_FLIGHT: usize = 256;
/// Tencent's notifications expire 10 minutes after sending: `t = now + 600`.
pub const VALIDITY_SECS: u64 = 600;
/// The `set_id` sent: 1-6 means a push from the Chinese mainland.
pub const SET_ID: i64 = 1;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NotifyError {
    #[error("callback URL {0:?} is not a URL: expected http://HOST[:PORT]/PATH")]
    Url(String),
    #[error("callback URL {0:?} must start with http:// (the sender does not speak https)")]
    Scheme(String),
    #[error("callback URL {0:?} has no host: expected http://HOST[:PORT]/PATH")]
    NoHost(String),
    #[error("the callback sender must be started inside a tokio runtime")]
    NoRuntime,
}

/// Where and how to send callbacks.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// `http://HOST[:PORT]/PATH`; https is refused.
    pub url: String,
    /// The callback key. `None` signs with the empty key (`sign = MD5(t)`), which
    /// is what a receiver with no key configured checks against.
    pub key: Option<Secret>,
    /// Further attempts after a non-200 answer or a timeout.
    pub retries: u32,
    pub retry_interval: Duration,
    /// Limit for one attempt, from connect to the end of the answer.
    pub timeout: Duration,
    pub appid: u64,
    /// The push domain (`app` in the body).
    pub domain: String,
    /// The ingest's IP (`node` in the body).
    pub node: String,
    /// Queue length ([`QUEUE`]).
    pub queue: usize,
    /// Deliveries in flight at once ([`MAX_IN_FLIGHT`]).
    pub max_in_flight: usize,
}

impl NotifyConfig {
    /// Defaults: no key, 3 retries 1 s apart, 2 s per attempt.
    pub fn new(url: impl Into<String>) -> NotifyConfig {
        NotifyConfig {
            url: url.into(),
            key: None,
            retries: 3,
            retry_interval: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            appid: 0,
            domain: String::new(),
            node: String::new(),
            queue: QUEUE,
            max_in_flight: MAX_IN_FLIGHT,
        }
    }

    /// Checks the URL: http only, with a host.
    pub fn uri(&self) -> Result<Uri, NotifyError> {
        let uri: Uri = self
            .url
            .trim()
            .parse()
            .map_err(|_| NotifyError::Url(self.url.clone()))?;
        match uri.scheme() {
            Some(s) if *s == hyper::http::uri::Scheme::HTTP => {}
            Some(_) => return Err(NotifyError::Scheme(self.url.clone())),
            None if uri.host().is_some() => return Err(NotifyError::Scheme(self.url.clone())),
            None => return Err(NotifyError::Url(self.url.clone())),
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(NotifyError::NoHost(self.url.clone()));
        }
        Ok(uri)
    }
}

/// What the ingest knows of one push.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PushInfo {
    /// App path (`live`): `appname` in the body.
    pub app_path: String,
    pub stream_id: String,
    /// Shared by the push's two events: see [`sequence_for`].
    pub sequence: String,
    pub user_ip: String,
    /// The push URL's query string, txSecret included.
    pub stream_param: String,
    pub width: u32,
    pub height: u32,
    /// Video codec (`hevc`), empty when no video tag named one yet; sent as
    /// an extra `codec` field (Tencent's callbacks have none).
    pub codec: String,
}

impl fmt::Debug for PushInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushInfo")
            .field("app_path", &self.app_path)
            .field("stream_id", &self.stream_id)
            .field("sequence", &self.sequence)
            .field("user_ip", &self.user_ip)
            .field("stream_param", &sign::redact_query_in(&self.stream_param))
            .field("width", &self.width)
            .field("height", &self.height)
            .field("codec", &self.codec)
            .finish()
    }
}

/// A sequence for a push, unique per (connection id, start second): decimal,
/// like Tencent's, and within i64 (start seconds mod 2^32, shifted past 31 bits
/// of connection id).
pub fn sequence_for(conn_id: u64, start_unix: u64) -> String {
    (((start_unix & 0xFFFF_FFFF) << 31) | (conn_id & 0x7FFF_FFFF)).to_string()
}

/// Counts since start. `queued` = `sent` + `failed` + still pending.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct NotifyStats {
    pub queued: u64,
    /// Delivered (answered 200).
    pub sent: u64,
    /// Attempts after the first.
    pub retried: u64,
    /// Given up after every attempt failed.
    pub failed: u64,
    /// Not queued because the queue was full.
    pub dropped: u64,
}

#[derive(Default)]
struct Stats {
    queued: AtomicU64,
    sent: AtomicU64,
    retried: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
}

impl Stats {
    fn snapshot(&self) -> NotifyStats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        NotifyStats {
            queued: get(&self.queued),
            sent: get(&self.sent),
            retried: get(&self.retried),
            failed: get(&self.failed),
            dropped: get(&self.dropped),
        }
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

enum Kind {
    Started,
    Ended {
        errcode: Errcode,
        errmsg: String,
        duration_ms: u64,
    },
}

struct Job {
    info: PushInfo,
    kind: Kind,
    now_unix: u64,
}

/// Sends callbacks from a background task. Dropping it stops the task once the
/// queue is drained; [`Notifier::finish`] also waits for the deliveries.
///
/// Deliveries run concurrently, so a receiver may see a short push's end before
/// its start; both carry the same sequence.
pub struct Notifier {
    tx: mpsc::Sender<Job>,
    stats: Arc<Stats>,
    task: JoinHandle<()>,
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

impl Notifier {
    /// Validates the URL and spawns the sending task on the current runtime.
    pub fn start(cfg: NotifyConfig) -> Result<Notifier, NotifyError> {
        let uri = cfg.uri()?;
        let rt = tokio::runtime::Handle::try_current().map_err(|_| NotifyError::NoRuntime)?;
        let (tx, rx) = mpsc::channel(cfg.queue.max(1));
        let stats = Arc::new(Stats::default());
        let task = rt.spawn(run(cfg, uri, rx, stats.clone()));
        Ok(Notifier { tx, stats, task })
    }

    /// Queues a push-started event (`event_type` 1). Never blocks.
    pub fn push_started(&self, info: &PushInfo, now_unix: u64) {
        self.enqueue(Job {
            info: info.clone(),
            kind: Kind::Started,
            now_unix,
        });
    }

    /// Queues a push-interrupted event (`event_type` 0). Never blocks.
    pub fn push_ended(
        &self,
        info: &PushInfo,
        errcode: Errcode,
        errmsg: &str,
        duration_ms: u64,
        now_unix: u64,
    ) {
        self.enqueue(Job {
            info: info.clone(),
            kind: Kind::Ended {
                errcode,
                errmsg: errmsg.to_string(),
                duration_ms,
            },
            now_unix,
        });
    }

    fn enqueue(&self, job: Job) {
        match self.tx.try_send(job) {
            Ok(()) => bump(&self.stats.queued),
            Err(_) => bump(&self.stats.dropped),
        }
    }

    pub fn stats(&self) -> NotifyStats {
        self.stats.snapshot()
    }

    /// Stops taking events and waits until every queued one is delivered or
    /// given up.
    pub async fn finish(self) -> NotifyStats {
        let Notifier { tx, stats, task } = self;
        drop(tx);
        let _ = task.await;
        stats.snapshot()
    }
}

async fn run(cfg: NotifyConfig, uri: Uri, mut rx: mpsc::Receiver<Job>, stats: Arc<Stats>) {
    let max = cfg.max_in_flight.clamp(1, Semaphore::MAX_PERMITS);
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(max)
        .build_http();
    let cfg = Arc::new(cfg);
    let slots = Arc::new(Semaphore::new(max));
    let mut deliveries = JoinSet::new();
    while let Some(job) = rx.recv().await {
        while deliveries.try_join_next().is_some() {}
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        let event = build_event(&cfg, &job);
        let what = format!(
            "event_type {} for stream {} seq {}",
            event.event_type.unwrap_or(-1),
            event.stream_id,
            event.sequence
        );
        let body = match serde_json::to_vec(&event) {
            Ok(b) => Bytes::from(b),
            Err(e) => {
                tracing::warn!("callback {what}: cannot encode: {e}");
                bump(&stats.failed);
                continue;
            }
        };
        let (client, uri, cfg, stats) = (client.clone(), uri.clone(), cfg.clone(), stats.clone());
        deliveries.spawn(async move {
            let _permit = permit;
            deliver(&client, &uri, body, &cfg, &stats, &what).await;
        });
    }
    while deliveries.join_next().await.is_some() {}
}

/// The body Tencent would send for this job: `t = now + 600`, `sign = MD5(key + t)`.
fn build_event(cfg: &NotifyConfig, job: &Job) -> CallbackEvent {
    let info = &job.info;
    let t = job.now_unix.saturating_add(VALIDITY_SECS);
    let sign = match &cfg.key {
        Some(key) => sign::callback_sign(key, t),
        None => sign::callback_sign(&Secret::new(String::new()), t),
    };
    let (event_type, errcode, errmsg, push_duration) = match &job.kind {
        Kind::Started => (EVENT_PUSH, Errcode::OK, "ok".to_string(), None),
        Kind::Ended {
            errcode,
            errmsg,
            duration_ms,
        } => (
            EVENT_INTERRUPT,
            *errcode,
            errmsg.clone(),
            Some(*duration_ms),
        ),
    };
    CallbackEvent {
        appid: cfg.appid,
        app: cfg.domain.clone(),
        appname: info.app_path.clone(),
        stream_id: info.stream_id.clone(),
        channel_id: info.stream_id.clone(),
        event_time: i64::try_from(job.now_unix).unwrap_or(i64::MAX),
        event_type: Some(event_type),
        sequence: info.sequence.clone(),
        node: cfg.node.clone(),
        user_ip: info.user_ip.clone(),
        stream_param: info.stream_param.clone(),
        push_duration,
        errcode: errcode.0,
        errmsg,
        set_id: SET_ID,
        width: i64::from(info.width),
        height: i64::from(info.height),
        idc_id: Some(0),
        t,
        t_text: String::new(),
        sign,
        extra: codec_extra(&info.codec),
    }
}

/// The extra `codec` field of a push's callbacks, when the codec is known.
fn codec_extra(codec: &str) -> Map<String, serde_json::Value> {
    let mut extra = Map::new();
    if !codec.is_empty() {
        extra.insert("codec".into(), codec.into());
    }
    extra
}

/// Up to `1 + retries` attempts, `retry_interval` apart; only HTTP 200 counts.
async fn deliver(
    client: &HttpClient,
    uri: &Uri,
    body: Bytes,
    cfg: &NotifyConfig,
    stats: &Stats,
    what: &str,
) {
    let attempts = cfg.retries.saturating_add(1);
    let mut last = String::new();
    for attempt in 1..=attempts {
        if attempt > 1 {
            tokio::time::sleep(cfg.retry_interval).await;
            bump(&stats.retried);
        }
        match attempt_once(client, uri, body.clone(), cfg.timeout).await {
            Ok(()) => {
                bump(&stats.sent);
                return;
            }
            Err(why) => {
                tracing::debug!("callback {what}: attempt {attempt}/{attempts}: {why}");
                last = why;
            }
        }
    }
    bump(&stats.failed);
    tracing::warn!("callback {what} to {uri}: gave up after {attempts} attempts: {last}");
}

async fn attempt_once(
    client: &HttpClient,
    uri: &Uri,
    body: Bytes,
    timeout: Duration,
) -> Result<(), String> {
    let req = Request::post(uri.clone())
        .header(header::CONTENT_TYPE, "application/json")
        .header(
            header::USER_AGENT,
            concat!("pushprobe/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::new(body))
        .map_err(|e| e.to_string())?;
    let exchange = async {
        let resp = client.request(req).await.map_err(|e| chain(&e))?;
        let status = resp.status();
        // Read the answer (bounded) so the connection can be reused.
        let _ = Limited::new(resp.into_body(), 64 * 1024).collect().await;
        if status == StatusCode::OK {
            Ok(())
        } else {
            Err(format!("answered HTTP {status}"))
        }
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("no answer within {timeout:?}"))?
}

/// An error with its causes: `a: b: c`.
fn chain(e: &dyn StdError) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::callback::samples::{KEY, NOW, key};
    use crate::callback::{self, ReceiverConfig, ReceiverState};
    use std::sync::atomic::AtomicUsize;

    fn info(seq: &str) -> PushInfo {
        PushInfo {
            app_path: "live".into(),
            stream_id: "load-1".into(),
            sequence: seq.into(),
            user_ip: "10.0.0.7".into(),
            stream_param: "txSecret=abc&txTime=65A0B0C0".into(),
            width: 640,
            height: 360,
            codec: "hevc".into(),
        }
    }

    fn fast(url: String) -> NotifyConfig {
        NotifyConfig {
            retry_interval: Duration::from_millis(10),
            timeout: Duration::from_millis(500),
            ..NotifyConfig::new(url)
        }
    }

    #[test]
    fn url_must_be_http_with_a_host() {
        let uri = |u: &str| NotifyConfig::new(u).uri();
        assert!(uri("http://127.0.0.1:8080/cb").is_ok());
        assert!(uri("HTTP://example.com").is_ok());
        assert!(matches!(
            uri("https://example.com/cb"),
            Err(NotifyError::Scheme(_))
        ));
        assert!(matches!(
            uri("ftp://example.com/cb"),
            Err(NotifyError::Scheme(_))
        ));
        assert!(matches!(uri("example.com:80"), Err(NotifyError::Scheme(_))));
        assert!(matches!(uri("not a url"), Err(NotifyError::Url(_))));
        assert!(matches!(uri("/just/a/path"), Err(NotifyError::Url(_))));
        assert!(matches!(uri(""), Err(NotifyError::Url(_))));
        let err = uri("https://x/cb").unwrap_err().to_string();
        assert!(err.contains("http://"), "{err}");
    }

    #[test]
    fn start_outside_a_runtime_is_an_error() {
        let err = Notifier::start(NotifyConfig::new("http://127.0.0.1:1/")).err();
        assert_eq!(err, Some(NotifyError::NoRuntime));
    }

    #[test]
    fn sequences_are_decimal_unique_and_fit_i64() {
        let mut seen = std::collections::HashSet::new();
        for start in [0, 1_703_731_478, 1_703_731_479, u64::from(u32::MAX)] {
            for conn in [0, 1, 2, 1_000_000, 0x7FFF_FFFF] {
                let s = sequence_for(conn, start);
                assert!(s.parse::<i64>().is_ok(), "{s}");
                assert!(seen.insert(s));
            }
        }
    }

    #[test]
    fn body_has_every_tencent_field() {
        let cfg = NotifyConfig {
            key: Some(key()),
            appid: 12345678,
            domain: "push.example.com".into(),
            node: "127.0.0.1".into(),
            ..NotifyConfig::new("http://h/")
        };
        let job = Job {
            info: info("77"),
            kind: Kind::Ended {
                errcode: Errcode(1),
                errmsg: "The push client actively stopped the push".into(),
                duration_ms: 12_300,
            },
            now_unix: NOW,
        };
        let v = serde_json::to_value(build_event(&cfg, &job)).unwrap();
        for field in [
            "appid",
            "app",
            "appname",
            "stream_id",
            "channel_id",
            "event_time",
            "event_type",
            "sequence",
            "node",
            "user_ip",
            "stream_param",
            "push_duration",
            "errcode",
            "errmsg",
            "set_id",
            "width",
            "height",
            "idc_id",
            "t",
            "sign",
        ] {
            assert!(v.get(field).is_some(), "missing {field}");
        }
        assert_eq!(v["app"], "push.example.com");
        assert_eq!(v["channel_id"], "load-1");
        assert_eq!(v["push_duration"], "12300");
        assert_eq!(v["sequence"], "77");
        assert_eq!(v["event_type"], 0);
        assert_eq!(v["set_id"], 1);
        assert_eq!(v["t"], NOW + 600);
        assert_eq!(v["sign"], sign::callback_sign(&key(), NOW + 600));

        // No key: signed with the empty key, MD5(t).
        let unkeyed = NotifyConfig { key: None, ..cfg };
        let started = Job {
            kind: Kind::Started,
            ..job
        };
        let ev = build_event(&unkeyed, &started);
        assert_eq!(
            ev.sign,
            sign::callback_sign(&Secret::new(String::new()), NOW + 600)
        );
        assert_eq!(
            (ev.event_type, ev.errcode, ev.push_duration),
            (Some(1), 0, None)
        );
    }

    /// The sender against the real receiver: both events arrive, verified.
    #[tokio::test]
    async fn notifier_to_receiver() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (state, mut rx) = ReceiverState::new(ReceiverConfig {
            clock: Arc::new(|| NOW),
            path: Some("/cb".into()),
            ..ReceiverConfig::new(key())
        });
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(callback::serve(listener, state.clone(), async {
            let _ = stop_rx.await;
        }));

        let notifier = Notifier::start(NotifyConfig {
            key: Some(Secret::new(KEY.into())),
            appid: 12345678,
            domain: "push.example.com".into(),
            node: "127.0.0.1".into(),
            ..fast(format!("http://{addr}/cb"))
        })
        .unwrap();
        let seq = sequence_for(1, NOW);
        let push = info(&seq);
        let wait = Duration::from_secs(5);

        notifier.push_started(&push, NOW);
        let started = tokio::time::timeout(wait, rx.recv())
            .await
            .unwrap()
            .unwrap();
        notifier.push_ended(&push, Errcode(1), "stopped", 12_300, NOW + 12);
        let ended = tokio::time::timeout(wait, rx.recv())
            .await
            .unwrap()
            .unwrap();

        for r in [&started, &ended] {
            assert!(!r.duplicate);
            assert_eq!(callback::verify(&r.event, &key(), NOW), Ok(()));
            assert_eq!(r.event.sequence, seq);
            assert_eq!(r.event.app, "push.example.com");
            assert_eq!(r.event.appname, "live");
            assert_eq!(r.event.stream_param, push.stream_param);
        }
        assert_eq!(started.event.event_type, Some(1));
        assert_eq!(started.event.push_duration, None);
        assert_eq!((started.event.width, started.event.height), (640, 360));
        assert_eq!(
            started.event.extra["codec"], "hevc",
            "issue 14: codec in callbacks"
        );
        assert_eq!(ended.event.event_type, Some(0));
        assert_eq!(ended.event.push_duration, Some(12_300));
        assert_eq!(ended.event.errcode, 1);
        assert_eq!(ended.event.t, NOW + 12 + 600);

        let stats = notifier.finish().await;
        assert_eq!(
            stats,
            NotifyStats {
                queued: 2,
                sent: 2,
                ..NotifyStats::default()
            }
        );
        let c = state.counters();
        assert_eq!((c.accepted_push, c.accepted_interrupt), (1, 1));
        stop_tx.send(()).unwrap();
        server.await.unwrap().unwrap();
    }

    /// A receiver that answers 500 to the first `failures` requests, then 200.
    async fn flaky(failures: usize) -> (String, Arc<AtomicUsize>) {
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let app = axum::Router::new().fallback(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < failures {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, hits)
    }

    #[tokio::test]
    async fn retries_until_200() {
        let (url, hits) = flaky(2).await;
        let notifier = Notifier::start(fast(url)).unwrap();
        notifier.push_started(&info("1"), NOW);
        let stats = notifier.finish().await;
        assert_eq!(hits.load(Ordering::SeqCst), 3);
        assert_eq!(
            stats,
            NotifyStats {
                queued: 1,
                sent: 1,
                retried: 2,
                ..NotifyStats::default()
            }
        );
    }

    #[tokio::test]
    async fn gives_up_after_retries_and_on_silence() {
        let (url, hits) = flaky(usize::MAX).await;
        let notifier = Notifier::start(NotifyConfig {
            retries: 1,
            ..fast(url)
        })
        .unwrap();
        notifier.push_started(&info("1"), NOW);
        let stats = notifier.finish().await;
        assert_eq!(hits.load(Ordering::SeqCst), 2);
        assert_eq!((stats.sent, stats.retried, stats.failed), (0, 1, 1));

        // A receiver that accepts and never answers: each attempt times out.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", silent.local_addr().unwrap());
        let held = tokio::spawn(async move {
            let mut conns = Vec::new();
            while let Ok((s, _)) = silent.accept().await {
                conns.push(s);
            }
        });
        let notifier = Notifier::start(NotifyConfig {
            retries: 1,
            timeout: Duration::from_millis(100),
            ..fast(url)
        })
        .unwrap();
        notifier.push_started(&info("2"), NOW);
        let stats = notifier.finish().await;
        assert_eq!((stats.sent, stats.retried, stats.failed), (0, 1, 1));
        held.abort();
    }

    #[tokio::test]
    async fn full_queue_drops_without_blocking() {
        // On the current-thread test runtime the sending task cannot run until
        // this test yields, so the one-slot queue fills.
        let notifier = Notifier::start(NotifyConfig {
            queue: 1,
            retries: 0,
            timeout: Duration::from_millis(50),
            ..NotifyConfig::new("http://127.0.0.1:1/")
        })
        .unwrap();
        for seq in ["1", "2", "3"] {
            notifier.push_started(&info(seq), NOW);
        }
        let stats = notifier.stats();
        assert_eq!((stats.queued, stats.dropped), (1, 2));
    }
}
