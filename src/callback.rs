//! Push callback receiver: takes Tencent-style push / interruption callbacks,
//! checks `sign = MD5(key + t)` and that `t` has not passed, spots retries, counts,
//! and publishes every verified event on a channel. `router(state)` is the HTTP app;
//! `serve(listener, state, shutdown)` runs it with header and body timeouts.

mod event;

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Serialize;
use serde_json::json;
use tokio::sync::{mpsc, watch};

#[cfg(test)]
pub(crate) use event::samples;
pub use event::{CallbackEvent, EVENT_INTERRUPT, EVENT_PUSH, human_line, redacted_json, verify};

use crate::secret::Secret;

/// Largest callback body accepted; Tencent's are well under 2 KiB.
pub const MAX_BODY: usize = 64 * 1024;
/// How many (sequence, event_type) pairs the duplicate detector remembers.
pub const SEEN_CAP: usize = 1_000_000;

/// Why a callback was refused. `status()` gives the HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    #[error("sign does not match MD5(key + t): wrong callback key, or a forged notification")]
    Forged,
    #[error("t {t} is in the past (now {now}): the notification expired or is a replay")]
    Stale { t: u64, now: u64 },
    #[error("{0}")]
    Malformed(String),
    #[error("body is over the {MAX_BODY}-byte limit")]
    TooLarge,
    #[error("request not received in time")]
    Timeout,
}

impl Reject {
    pub fn status(&self) -> StatusCode {
        match self {
            Reject::Forged | Reject::Stale { .. } => StatusCode::FORBIDDEN,
            Reject::Malformed(_) => StatusCode::BAD_REQUEST,
            Reject::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Reject::Timeout => StatusCode::REQUEST_TIMEOUT,
        }
    }
}

/// A verified event as published to the consumer.
#[derive(Debug, Clone)]
pub struct Received {
    pub event: CallbackEvent,
    /// When the request reached the handler.
    pub arrived: Instant,
    /// True when this (sequence, event_type) was seen before: a retry.
    pub duplicate: bool,
}

/// Unix seconds now; injected so tests can fix time.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The real clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    })
}

/// How to build a [`ReceiverState`].
#[derive(Clone)]
pub struct ReceiverConfig {
    /// The callback key (Tencent: Feature Configuration > Live Stream Callback).
    pub key: Secret,
    /// Accept POSTs only at this path (others are 404); `None` accepts any path.
    pub path: Option<String>,
    pub clock: Clock,
    /// Cap of the duplicate detector's memory ([`SEEN_CAP`]).
    pub seen_cap: usize,
    /// Time allowed to receive a request body once its headers are in.
    pub body_timeout: Duration,
}

impl ReceiverConfig {
    pub fn new(key: Secret) -> ReceiverConfig {
        ReceiverConfig {
            key,
            path: None,
            clock: system_clock(),
            seen_cap: SEEN_CAP,
            body_timeout: Duration::from_secs(10),
        }
    }
}

/// A snapshot of the receiver's counts. `accepted_*` count first sightings of
/// verified events; retries of those count in `duplicates` only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    pub accepted_push: u64,
    pub accepted_interrupt: u64,
    /// Verified events whose event_type is neither 0 nor 1.
    pub accepted_other: u64,
    pub duplicates: u64,
    pub forged: u64,
    pub stale: u64,
    /// Bodies that are not a callback, and requests that are not HTTP.
    pub malformed: u64,
    pub oversized: u64,
    /// Requests whose headers or body did not arrive in time (slow or stalled
    /// clients). Idle keep-alive connections closing are not counted.
    pub timed_out: u64,
    /// Events not remembered for duplicate detection because the memory was full.
    pub seen_overflow: u64,
}

#[derive(Default)]
struct AtomicCounters {
    accepted_push: AtomicU64,
    accepted_interrupt: AtomicU64,
    accepted_other: AtomicU64,
    duplicates: AtomicU64,
    forged: AtomicU64,
    stale: AtomicU64,
    malformed: AtomicU64,
    oversized: AtomicU64,
    timed_out: AtomicU64,
    seen_overflow: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

struct Inner {
    key: Secret,
    path: Option<String>,
    clock: Clock,
    seen_cap: usize,
    body_timeout: Duration,
    /// Hashes of (sequence, event_type): 8 bytes per push instead of the strings.
    /// Keyed randomly per process, so a collision (about 3e-8 at a million
    /// entries) cannot be aimed at.
    seen: Mutex<HashSet<u64>>,
    hasher: RandomState,
    counts: AtomicCounters,
    tx: mpsc::UnboundedSender<Received>,
}

/// Shared receiver state: key, clock, counters, duplicate memory and the channel
/// verified events go to. Cheap to clone.
#[derive(Clone)]
pub struct ReceiverState {
    inner: Arc<Inner>,
}

impl ReceiverState {
    /// The state and the receiving end of its event channel. Events are dropped
    /// silently if the receiver is dropped.
    pub fn new(cfg: ReceiverConfig) -> (ReceiverState, mpsc::UnboundedReceiver<Received>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let path = cfg.path.map(|p| {
            if p.starts_with('/') {
                p
            } else {
                format!("/{p}")
            }
        });
        let inner = Inner {
            key: cfg.key,
            path,
            clock: cfg.clock,
            seen_cap: cfg.seen_cap,
            body_timeout: cfg.body_timeout,
            seen: Mutex::new(HashSet::new()),
            hasher: RandomState::new(),
            counts: AtomicCounters::default(),
            tx,
        };
        (
            ReceiverState {
                inner: Arc::new(inner),
            },
            rx,
        )
    }

    pub fn counters(&self) -> Counters {
        let c = &self.inner.counts;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Counters {
            accepted_push: get(&c.accepted_push),
            accepted_interrupt: get(&c.accepted_interrupt),
            accepted_other: get(&c.accepted_other),
            duplicates: get(&c.duplicates),
            forged: get(&c.forged),
            stale: get(&c.stale),
            malformed: get(&c.malformed),
            oversized: get(&c.oversized),
            timed_out: get(&c.timed_out),
            seen_overflow: get(&c.seen_overflow),
        }
    }

    /// Parses, verifies, de-duplicates, counts and publishes one callback body.
    /// `Ok(duplicate)` when verified.
    pub fn accept(&self, body: &[u8], arrived: Instant) -> Result<bool, Reject> {
        let checked = CallbackEvent::from_json(body)
            .and_then(|ev| verify(&ev, &self.inner.key, (self.inner.clock)()).map(|()| ev));
        let event = match checked {
            Ok(ev) => ev,
            Err(r) => {
                self.note_reject(&r);
                return Err(r);
            }
        };
        let duplicate = self.seen_before(&event);
        let c = &self.inner.counts;
        bump(match (duplicate, event.event_type) {
            (true, _) => &c.duplicates,
            (false, Some(EVENT_PUSH)) => &c.accepted_push,
            (false, Some(EVENT_INTERRUPT)) => &c.accepted_interrupt,
            (false, _) => &c.accepted_other,
        });
        let _ = self.inner.tx.send(Received {
            event,
            arrived,
            duplicate,
        });
        Ok(duplicate)
    }

    fn note_reject(&self, r: &Reject) {
        let c = &self.inner.counts;
        bump(match r {
            Reject::Forged => &c.forged,
            Reject::Stale { .. } => &c.stale,
            Reject::Malformed(_) => &c.malformed,
            Reject::TooLarge => &c.oversized,
            Reject::Timeout => &c.timed_out,
        });
    }

    /// Remembers (sequence, event_type); true if it was already there. Events
    /// without a sequence are never duplicates. When the memory is full, new
    /// pairs are counted in `seen_overflow` and not remembered.
    fn seen_before(&self, ev: &CallbackEvent) -> bool {
        if ev.sequence.is_empty() {
            return false;
        }
        let h = self
            .inner
            .hasher
            .hash_one((ev.sequence.as_str(), ev.event_type));
        let mut seen = self
            .inner
            .seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if seen.contains(&h) {
            return true;
        }
        if seen.len() >= self.inner.seen_cap {
            bump(&self.inner.counts.seen_overflow);
        } else {
            seen.insert(h);
        }
        false
    }
}

/// The receiver app: POST on any path (or only the configured one).
pub fn router(state: ReceiverState) -> Router {
    Router::new().fallback(handle).with_state(state)
}

fn error_reply(status: StatusCode, msg: &str) -> Response {
    let body = json!({ "code": status.as_u16(), "error": msg });
    (status, Json(body)).into_response()
}

async fn handle(State(state): State<ReceiverState>, req: Request) -> Response {
    let arrived = Instant::now();
    if let Some(path) = &state.inner.path
        && req.uri().path() != path
    {
        return error_reply(StatusCode::NOT_FOUND, "no callback receiver at this path");
    }
    if req.method() != Method::POST {
        let mut resp = error_reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "callbacks are sent with POST",
        );
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return resp;
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let body = if declared.is_some_and(|n| n > MAX_BODY as u64) {
        Err(Reject::TooLarge)
    } else {
        read_body(req.into_body(), state.inner.body_timeout).await
    };
    let result = match body {
        Ok(bytes) => state.accept(&bytes, arrived),
        Err(r) => {
            state.note_reject(&r);
            Err(r)
        }
    };
    match result {
        Ok(_) => (StatusCode::OK, Json(json!({ "code": 0 }))).into_response(),
        Err(r) => error_reply(r.status(), &r.to_string()),
    }
}

async fn read_body(body: Body, limit: Duration) -> Result<Bytes, Reject> {
    match tokio::time::timeout(limit, Limited::new(body, MAX_BODY).collect()).await {
        Err(_) => Err(Reject::Timeout),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<LengthLimitError>() => Err(Reject::TooLarge),
        Ok(Err(e)) => Err(Reject::Malformed(format!("could not read the body: {e}"))),
    }
}

/// After an early answer (a 413 before the body was read, a 404 or 405 to a
/// request that still has a body on the wire), the longest the server keeps
/// reading and discarding what the client still sends before it closes. Closing
/// with unread bytes makes the kernel send a reset, which destroys the answer
/// on its way to a client that writes its whole body before reading (Python's
/// urllib). nginx's `lingering_time` serves the same purpose.
pub const LINGER_TIME: Duration = Duration::from_secs(2);
/// The most bytes discarded while lingering; a client still sending after this
/// gets the reset it asked for.
pub const LINGER_BYTES: u64 = 16 * 1024 * 1024;

/// Connection-level limits for [`serve_with`] and [`serve_router`].
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// A connection that does not deliver a request's headers within this time
    /// (including an idle keep-alive connection) is closed.
    pub header_read_timeout: Duration,
    /// Connections served at once; further ones wait in the listen backlog.
    /// A lingering connection still holds its place.
    pub max_connections: usize,
    /// After shutdown, how long open connections may take to finish.
    pub shutdown_grace: Duration,
    /// How long a closing connection reads and discards ([`LINGER_TIME`]).
    pub linger_time: Duration,
    /// How many bytes a closing connection discards at most ([`LINGER_BYTES`]).
    pub linger_bytes: u64,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            shutdown_grace: Duration::from_secs(5),
            linger_time: LINGER_TIME,
            linger_bytes: LINGER_BYTES,
        }
    }
}

/// Serves the receiver on `listener` until `shutdown` completes, with default
/// [`ServeOptions`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ReceiverState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, state, ServeOptions::default(), shutdown).await
}

/// Serves the receiver with [`serve_router`], counting slow clients in
/// `timed_out` and bytes that are not HTTP in `malformed`.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    state: ReceiverState,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state.clone());
    let on_error = move |e: &hyper::Error, unanswered: bool| {
        // A header timeout with the peer's bytes unanswered is a slow
        // client; after our answer it is an idle keep-alive connection.
        if e.is_timeout() && unanswered {
            state.note_reject(&Reject::Timeout);
        } else if e.is_parse() || e.is_parse_too_large() {
            state.note_reject(&Reject::Malformed("not HTTP/1.1".into()));
        }
    };
    serve_router(listener, app, opts, shutdown, on_error).await
}

/// Serves an HTTP/1 app: an accept loop handing each connection to hyper with
/// a header read timeout (`axum::serve` cannot set one), at most
/// `max_connections` at a time, and a lingering close (see [`LINGER_TIME`])
/// when a connection ends, so an early answer reaches a client still sending.
/// `on_error(error, unanswered)` sees each connection error; `unanswered` is
/// true when the peer's last bytes got no answer. On shutdown, stops
/// accepting, lets open connections finish for `shutdown_grace`, then drops
/// them.
pub async fn serve_router(
    listener: tokio::net::TcpListener,
    app: Router,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_error: impl Fn(&hyper::Error, bool) + Clone + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    let addr = listener.local_addr()?;
    tracing::debug!("HTTP server listening on {addr}");
    let slots = Arc::new(tokio::sync::Semaphore::new(
        opts.max_connections
            .clamp(1, tokio::sync::Semaphore::MAX_PERMITS),
    ));
    let (closing_tx, closing_rx) = watch::channel(());
    let mut conns = tokio::task::JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        while conns.try_join_next().is_some() {}
        let permit = tokio::select! {
            () = &mut shutdown => break,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!("HTTP server on {addr}: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let (stream, unanswered) = Tracked::new(stream);
        // Boxing the future makes the connection Unpin, which
        // `poll_without_shutdown` needs to hand the socket back for lingering.
        let tower = TowerToHyperService::new(app.clone());
        let svc = hyper::service::service_fn(move |req| {
            Box::pin(hyper::service::Service::call(&tower, req))
        });
        let on_error = on_error.clone();
        let mut closing = closing_rx.clone();
        let opts = opts.clone();
        conns.spawn(async move {
            let _permit = permit;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(opts.header_read_timeout);
            let mut conn = builder.serve_connection(TokioIo::new(stream), svc);
            let result = tokio::select! {
                r = std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)) => r,
                _ = closing.changed() => {
                    std::pin::Pin::new(&mut conn).graceful_shutdown();
                    std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)).await
                }
            };
            if let Err(e) = &result {
                tracing::debug!("HTTP connection from {peer}: {e}");
                on_error(e, unanswered.load(Ordering::Relaxed));
                if e.is_timeout() {
                    // The peer went quiet: nothing of ours is in flight that
                    // its unread bytes could destroy.
                    return;
                }
            }
            let socket = conn.into_parts().io.into_inner();
            linger(socket, opts.linger_time, opts.linger_bytes).await;
        });
    }
    drop(listener);
    let _ = closing_tx.send(());
    let drained = tokio::time::timeout(opts.shutdown_grace, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::debug!(
            "HTTP server on {addr}: dropping {} connections after the shutdown grace",
            conns.len()
        );
        conns.abort_all();
    }
    Ok(())
}

/// A lingering close: shuts down our write side (the client reads our answer,
/// then end of stream), then reads and discards until the client closes, for
/// at most `time` and `bytes`, so the socket is not closed with unread data.
async fn linger<S>(mut socket: S, time: Duration, bytes: u64)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if socket.shutdown().await.is_err() {
        return;
    }
    let (mut rest, mut sink) = ((&mut socket).take(bytes), tokio::io::sink());
    let _ = tokio::time::timeout(time, tokio::io::copy(&mut rest, &mut sink)).await;
}

/// A connection's socket that remembers whether the peer is waiting for an
/// answer: set when bytes arrive (and at the start), cleared when we write.
struct Tracked {
    inner: tokio::net::TcpStream,
    unanswered: Arc<AtomicBool>,
}

impl Tracked {
    fn new(inner: tokio::net::TcpStream) -> (Tracked, Arc<AtomicBool>) {
        let unanswered = Arc::new(AtomicBool::new(true));
        let t = Tracked {
            inner,
            unanswered: unanswered.clone(),
        };
        (t, unanswered)
    }
}

impl tokio::io::AsyncRead for Tracked {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.unanswered.store(true, Ordering::Relaxed);
        }
        r
    }
}

impl tokio::io::AsyncWrite for Tracked {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, std::task::Poll::Ready(Ok(n)) if n > 0) {
            self.unanswered.store(false, Ordering::Relaxed);
        }
        r
    }
    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, std::task::Poll::Ready(Ok(n)) if n > 0) {
            self.unanswered.store(false, Ordering::Relaxed);
        }
        r
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::samples::*;
    use super::*;
    use crate::sign;
    use serde_json::{Value, json};
    use std::convert::Infallible;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tower::ServiceExt;

    fn config() -> ReceiverConfig {
        ReceiverConfig {
            clock: Arc::new(|| NOW),
            ..ReceiverConfig::new(key())
        }
    }

    async fn send(app: &Router, method: Method, path: &str, body: Body) -> (StatusCode, String) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body)
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    async fn post(app: &Router, body: impl Into<Body>) -> (StatusCode, String) {
        send(app, Method::POST, "/callback", body.into()).await
    }

    #[tokio::test]
    async fn push_and_interrupt_are_accepted_counted_and_published() {
        let (state, mut rx) = ReceiverState::new(config());
        let app = router(state.clone());
        assert_eq!(
            post(&app, push_event("2210464508206756938")).await,
            (StatusCode::OK, r#"{"code":0}"#.to_string())
        );
        assert_eq!(
            post(&app, interrupt_event("2210464508206756938")).await,
            (StatusCode::OK, r#"{"code":0}"#.to_string())
        );
        let c = state.counters();
        assert_eq!((c.accepted_push, c.accepted_interrupt), (1, 1));
        assert_eq!(
            c,
            Counters {
                accepted_push: 1,
                accepted_interrupt: 1,
                ..Counters::default()
            }
        );

        let started = rx.try_recv().unwrap();
        assert!(!started.duplicate);
        let ev = &started.event;
        assert_eq!(ev.event_type, Some(EVENT_PUSH));
        assert_eq!(ev.appid, 12345678);
        assert_eq!(ev.app, "test.domain.com");
        assert_eq!((ev.width, ev.height), (720, 1280));
        assert_eq!(ev.idc_id, Some(34));
        assert_eq!(ev.push_duration, None);
        let ended = rx.try_recv().unwrap();
        assert_eq!(ended.event.event_type, Some(EVENT_INTERRUPT));
        assert_eq!(ended.event.sequence, ev.sequence);
        assert_eq!(ended.event.push_duration, Some(128_581));
        assert_eq!(ended.event.errcode, 1);
        assert!(ended.arrived >= started.arrived);
        assert!(rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn forged_and_stale_are_403_and_not_published() {
        let (state, mut rx) = ReceiverState::new(config());
        let app = router(state.clone());
        let mut forged: Value = serde_json::from_str(&push_event("1")).unwrap();
        forged["sign"] = json!(sign::callback_sign(&Secret::new("other".into()), NOW + 600));
        let (status, body) = post(&app, forged.to_string()).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(
            body.starts_with(r#"{"code":403,"error":"sign does not match"#),
            "{body}"
        );

        let stale = signed(json!({"event_type": 1, "sequence": "2"}), NOW - 1);
        let (status, body) = post(&app, stale).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(body.contains("in the past"), "{body}");

        let c = state.counters();
        assert_eq!((c.forged, c.stale, c.accepted_push), (1, 1, 0));
        assert!(rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn malformed_bodies_are_400() {
        let (state, mut rx) = ReceiverState::new(config());
        let app = router(state.clone());
        let cases = [
            "{not json".to_string(),
            "[1,2,3]".to_string(),
            "\"a string\"".to_string(),
            String::new(),
            r#"{"t": 1703732078}"#.to_string(),
            r#"{"sign": "abc"}"#.to_string(),
            r#"{"t": -5, "sign": "abc"}"#.to_string(),
            r#"{"t": 17037320.5, "sign": "abc"}"#.to_string(),
            signed(json!({"width": {"a": 1}}), NOW + 600),
            signed(json!({"appid": -1}), NOW + 600),
        ];
        for case in &cases {
            let (status, body) = post(&app, case.clone()).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{case}");
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["code"], 400, "{case}");
            assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{case}");
        }
        assert_eq!(state.counters().malformed, cases.len() as u64);
        assert!(rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn oversized_body_is_413() {
        let (state, _rx) = ReceiverState::new(config());
        let app = router(state.clone());
        let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(100 * 1024));
        let req = Request::builder()
            .method(Method::POST)
            .uri("/")
            .header(header::CONTENT_LENGTH, big.len())
            .body(Body::from(big.clone()))
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert!(body.starts_with(br#"{"code":413"#));
        // The same without a Content-Length: the limit is enforced while reading.
        let req = Request::builder()
            .method(Method::POST)
            .uri("/")
            .body(Body::new(OneFrame(Some(Bytes::from(big)))))
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(state.counters().oversized, 2);
    }

    /// A body of one frame with no size hint, like a chunked upload.
    struct OneFrame(Option<Bytes>);

    impl hyper::body::Body for OneFrame {
        type Data = Bytes;
        type Error = Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
            Poll::Ready(self.0.take().map(|b| Ok(hyper::body::Frame::data(b))))
        }
    }

    #[tokio::test]
    async fn stalled_body_times_out() {
        struct Stalled;
        impl hyper::body::Body for Stalled {
            type Data = Bytes;
            type Error = Infallible;
            fn poll_frame(
                self: Pin<&mut Self>,
                _: &mut Context<'_>,
            ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
                Poll::Pending
            }
        }
        let (state, _rx) = ReceiverState::new(ReceiverConfig {
            body_timeout: Duration::from_millis(50),
            ..config()
        });
        let app = router(state.clone());
        let (status, _) = post(&app, Body::new(Stalled)).await;
        assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
        assert_eq!(state.counters().timed_out, 1);
    }

    #[tokio::test]
    async fn duplicates_are_200_counted_and_flagged() {
        let (state, mut rx) = ReceiverState::new(config());
        let app = router(state.clone());
        for _ in 0..2 {
            assert_eq!(post(&app, push_event("77")).await.0, StatusCode::OK);
        }
        // Same sequence, other event type: not a duplicate.
        assert_eq!(post(&app, interrupt_event("77")).await.0, StatusCode::OK);
        let c = state.counters();
        assert_eq!(
            (c.accepted_push, c.accepted_interrupt, c.duplicates),
            (1, 1, 1)
        );
        let flags: Vec<bool> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|r| r.duplicate)
            .collect();
        assert_eq!(flags, [false, true, false]);
    }

    #[tokio::test]
    async fn full_duplicate_memory_counts_overflow() {
        let (state, _rx) = ReceiverState::new(ReceiverConfig {
            seen_cap: 1,
            ..config()
        });
        assert_eq!(
            state.accept(push_event("1").as_bytes(), Instant::now()),
            Ok(false)
        );
        assert_eq!(
            state.accept(push_event("1").as_bytes(), Instant::now()),
            Ok(true)
        );
        assert_eq!(
            state.accept(push_event("2").as_bytes(), Instant::now()),
            Ok(false)
        );
        assert_eq!(
            state.accept(push_event("2").as_bytes(), Instant::now()),
            Ok(false)
        );
        let c = state.counters();
        assert_eq!((c.accepted_push, c.duplicates, c.seen_overflow), (3, 1, 2));
    }

    #[tokio::test]
    async fn path_restriction_and_methods() {
        let (state, _rx) = ReceiverState::new(ReceiverConfig {
            path: Some("cb".into()),
            ..config()
        });
        let app = router(state.clone());
        let body = || Body::from(push_event("9"));
        assert_eq!(
            send(&app, Method::POST, "/cb", body()).await.0,
            StatusCode::OK
        );
        assert_eq!(
            send(&app, Method::POST, "/cb?x=1", body()).await.0,
            StatusCode::OK
        );
        let (status, text) = send(&app, Method::POST, "/other", body()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(text.starts_with(r#"{"code":404"#));
        assert_eq!(
            send(&app, Method::GET, "/cb", Body::empty()).await.0,
            StatusCode::METHOD_NOT_ALLOWED
        );

        let (any, _rx) = ReceiverState::new(config());
        let app = router(any);
        assert_eq!(
            send(&app, Method::POST, "/anything/at/all", body()).await.0,
            StatusCode::OK
        );
        let req = Request::builder()
            .method(Method::PUT)
            .uri("/")
            .body(Body::empty())
            .unwrap();
        let resp = app.oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(resp.headers()[header::ALLOW], "POST");
    }

    #[tokio::test]
    async fn numbers_as_strings_and_strings_as_numbers() {
        let (state, mut rx) = ReceiverState::new(config());
        let app = router(state.clone());
        let t = (NOW + 600).to_string();
        let body = json!({
            "appid": "12345678", "event_type": "0", "event_time": "1703731606",
            "sequence": 2210464508206756938u64, "width": "720", "height": 1280.0,
            "errcode": "18", "set_id": " 7 ", "idc_id": "", "push_duration": 1500,
            "node": 3, "user_ip": null, "future_field": [1, "two"],
            "t": t, "sign": sign::callback_sign(&key(), NOW + 600).to_uppercase()
        });
        assert_eq!(post(&app, body.to_string()).await.0, StatusCode::OK);
        let ev = rx.try_recv().unwrap().event;
        assert_eq!(ev.appid, 12345678);
        assert_eq!(ev.event_type, Some(EVENT_INTERRUPT));
        assert_eq!(ev.event_time, 1703731606);
        assert_eq!(ev.sequence, "2210464508206756938");
        assert_eq!((ev.width, ev.height), (720, 1280));
        assert_eq!((ev.errcode, ev.set_id, ev.idc_id), (18, 7, None));
        assert_eq!(ev.push_duration, Some(1500));
        assert_eq!(ev.node, "3");
        assert_eq!(ev.user_ip, "");
        assert_eq!(ev.t, NOW + 600);
        assert_eq!(ev.t_text, t);
        assert_eq!(ev.extra["future_field"], json!([1, "two"]));
    }

    /// The one real-socket test: hyper client -> serve -> 200; a client that
    /// trickles headers is cut off; shutdown makes serve return.
    #[tokio::test]
    async fn serves_on_a_real_socket_and_shuts_down() {
        use http_body_util::Full;
        use hyper_util::client::legacy::Client;
        use hyper_util::rt::TokioExecutor;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (state, mut rx) = ReceiverState::new(config());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let opts = ServeOptions {
            header_read_timeout: Duration::from_millis(300),
            ..ServeOptions::default()
        };
        let server = tokio::spawn(serve_with(listener, state.clone(), opts, async {
            let _ = stop_rx.await;
        }));

        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let req = hyper::Request::post(format!("http://{addr}/cb"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(push_event("real"))))
            .unwrap();
        let resp = client.request(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], br#"{"code":0}"#);
        assert_eq!(rx.recv().await.unwrap().event.sequence, "real");

        let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"POST /cb HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let mut rest = Vec::new();
        let closed =
            tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut rest)).await;
        assert!(closed.is_ok(), "a client trickling headers was not dropped");

        stop_tx.send(()).unwrap();
        let done = tokio::time::timeout(Duration::from_secs(10), server).await;
        assert!(
            matches!(done, Ok(Ok(Ok(())))),
            "serve did not return: {done:?}"
        );
    }
}
