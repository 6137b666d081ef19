//! The local Tencent-compatible RTMP ingest (`pushprobe serve`): admission
//! rules, a live-stream registry, refusal and interruption records, an HTTP
//! view of both, and push callbacks.
//!
//! - `srt`: SRT pushes (streamid -> the same rules and registry), one task per caller.
//! - `rules`: the publish admission rules (app, disabled, txTime, txSecret); pure.
//! - `registry`: live streams (reject or replace a duplicate) and the records ring.
//! - `conn`: one task per RTMP connection (publish or play).
//! - `playout`: per-stream fan-out to viewers (GOP cache, slow-viewer drop).
//! - `http`: `GET /streams`, `/records`, `/health`, and HTTP-FLV play.

pub mod conn;
pub mod http;
pub mod playout;
pub mod registry;
pub mod rules;
pub mod srt;
#[cfg(test)]
mod tests;

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

pub use playout::{Fanout, MediaTag, Viewer, ViewerEnd, ViewerKind};
pub use registry::{DuplicateMode, Record, Registry, StreamView};
pub use rules::Refusal;

use crate::notify::Notifier;
use crate::sign::Keys;

/// How long `run` waits, after shutdown, for connections to write their records.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after an accept error that is not about one connection (EMFILE...).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Send buffer of every accepted socket (set on the listeners, which Linux
/// passes on to accepted sockets; the kernel doubles it). Without a cap,
/// autotuning grows a viewer's buffer to 4 MB, a minute of a 500 kbit/s
/// stream held in the kernel before a viewer that stopped reading fills its
/// queue and is dropped. 128 KiB still carries 20 Mbit/s at 100 ms RTT.
pub const SEND_BUFFER: usize = 128 << 10;

/// What the ingest serves and how strictly.
pub struct IngestConfig {
    /// The app (path) served; other apps are refused with 304.
    pub app: String,
    /// The push domain (reported in callbacks).
    pub domain: String,
    /// Push keys; empty means signatures are not checked.
    pub keys: Keys,
    /// Stream names refused with 305.
    pub disabled: Vec<String>,
    pub duplicate: DuplicateMode,
    /// Send an error onStatus before closing a refused publish (Tencent just closes).
    pub reject_with_status: bool,
    /// Grace after txTime during which a URL is still accepted.
    pub auth_delta: Duration,
    /// Largest RTMP message accepted; a larger one ends the push (errcode 7).
    pub max_frame_bytes: u32,
    /// No data for this long ends the push (errcode 8).
    pub idle_timeout: Duration,
    pub handshake_timeout: Duration,
    /// Sends the push / interruption callbacks (never awaited on the media path).
    pub notifier: Option<Notifier>,
    /// Play keys; when any is set, a play URL must carry a valid txSecret
    /// (MD5(play key + stream + txTime)) and an unexpired txTime.
    pub play_keys: Keys,
    /// Live tags a viewer may queue before it is dropped as too slow.
    pub play_queue: usize,
    /// Video codecs taken (`--codecs`); a push of another ends at its first
    /// video tag (errcode 6, as an ingest that cannot parse the content).
    pub codecs: crate::codec::CodecSet,
}

impl Default for IngestConfig {
    fn default() -> IngestConfig {
        IngestConfig {
            app: "live".to_string(),
            domain: "localhost".to_string(),
            keys: Keys::default(),
            disabled: Vec::new(),
            duplicate: DuplicateMode::Reject,
            reject_with_status: false,
            auth_delta: Duration::ZERO,
            max_frame_bytes: 4 << 20,
            idle_timeout: Duration::from_secs(20),
            handshake_timeout: Duration::from_secs(10),
            notifier: None,
            play_keys: Keys::default(),
            play_queue: playout::DEFAULT_QUEUE_TAGS,
            codecs: crate::codec::CodecSet::default(),
        }
    }
}

impl fmt::Debug for IngestConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IngestConfig")
            .field("app", &self.app)
            .field("domain", &self.domain)
            .field("keys", &self.keys)
            .field("disabled", &self.disabled)
            .field("duplicate", &self.duplicate)
            .field("reject_with_status", &self.reject_with_status)
            .field("auth_delta", &self.auth_delta)
            .field("max_frame_bytes", &self.max_frame_bytes)
            .field("idle_timeout", &self.idle_timeout)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("notifier", &self.notifier.is_some())
            .field("play_keys", &self.play_keys)
            .field("play_queue", &self.play_queue)
            .finish()
    }
}

/// What every connection task and the HTTP view share.
pub struct IngestState {
    pub(crate) config: IngestConfig,
    registry: Registry,
}

impl IngestState {
    pub fn new(config: IngestConfig) -> IngestState {
        IngestState {
            registry: Registry::default().with_play_queue(config.play_queue),
            config,
        }
    }
    pub fn config(&self) -> &IngestConfig {
        &self.config
    }
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Admits a viewer of `stream` in `app` (RTMP play or HTTP-FLV): in
    /// another app nothing is found; with play keys set the query must
    /// carry an unexpired txTime and a txSecret signed with a play key (the
    /// push rules, with the play keys). A stream that is not live is not
    /// waited for: Tencent's CDN answers 404 too.
    pub fn play(
        &self,
        app: &str,
        stream: &str,
        query: &str,
        kind: ViewerKind,
        now_unix: u64,
    ) -> Result<Viewer, PlayDenied> {
        let cfg = &self.config;
        // Another app serves nothing: not found, as for a stream not live.
        if rules::bare_app(app) != cfg.app {
            return Err(PlayDenied::NotFound);
        }
        let policy = rules::Policy {
            app: &cfg.app,
            disabled: &[],
            keys: &cfg.play_keys,
            auth_delta: cfg.auth_delta,
        };
        let req = rules::Publish { app, stream, query };
        rules::check(&req, &policy, now_unix).map_err(PlayDenied::Refused)?;
        self.registry
            .fanout(stream)
            .and_then(|f| f.subscribe(kind))
            .ok_or(PlayDenied::NotFound)
    }
}

/// Why a play request gets no stream.
#[derive(Debug)]
pub enum PlayDenied {
    /// Play authentication failed (HTTP 403, NetStream.Play.Failed).
    Refused(Refusal),
    /// Nobody publishes the stream, or the app is not served (HTTP 404,
    /// NetStream.Play.StreamNotFound).
    NotFound,
}

/// Serves RTMP on `listener` (and the HTTP view on `http`) until `shutdown`
/// resolves; then ends every live push (errcode 10) and returns once their
/// records are written (or after a few seconds).
pub async fn run(
    listener: TcpListener,
    http: Option<TcpListener>,
    config: IngestConfig,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    run_state(listener, http, Arc::new(IngestState::new(config)), shutdown).await
}

async fn run_state(
    listener: TcpListener,
    http: Option<TcpListener>,
    state: Arc<IngestState>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    for l in std::iter::once(&listener).chain(http.as_ref()) {
        if let Err(e) = socket2::SockRef::from(l).set_send_buffer_size(SEND_BUFFER) {
            tracing::warn!("cannot cap the send buffer of viewers: {e}");
        }
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    // Each connection task holds a sender; recv() returns None once all ended.
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let http_task = http.map(|l| {
        let mut stop = stop_rx.clone();
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        tokio::spawn(http::serve(l, state.clone(), stopped))
    });
    tokio::pin!(shutdown);
    let mut next_id: u64 = 1;
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let _ = socket.set_nodelay(true);
                    let (id, state, stop, done) = (next_id, state.clone(), stop_rx.clone(), done_tx.clone());
                    next_id += 1;
                    tokio::spawn(async move {
                        conn::handle(socket, peer, id, state, stop).await;
                        drop(done);
                    });
                }
                Err(e) if is_per_connection(&e) => {
                    tracing::debug!("accept: {e}");
                }
                Err(e) => {
                    // EMFILE and friends: the listener is fine, we are out of
                    // something. Back off instead of spinning.
                    tracing::warn!("accept failed: {e}; retrying in {ACCEPT_BACKOFF:?}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(done_tx);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, done_rx.recv()).await;
    if let Some(n) = &state.config.notifier {
        wait_for_callbacks(n).await;
    }
    if let Some(t) = http_task {
        match tokio::time::timeout(DRAIN_TIMEOUT, t).await {
            Ok(Ok(r)) => r?,
            Ok(Err(join)) => tracing::warn!("HTTP server task failed: {join}"),
            Err(_) => tracing::warn!("HTTP server did not stop in time"),
        }
    }
    Ok(())
}

/// Gives queued callbacks (the push_ended of pushes just stopped) a few
/// seconds to go out; retries beyond that are given up.
async fn wait_for_callbacks(n: &Notifier) {
    let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
    loop {
        let s = n.stats();
        let pending = s.queued.saturating_sub(s.sent + s.failed);
        if pending == 0 {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!("{pending} callbacks not delivered at shutdown");
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// An ingest running in a task on 127.0.0.1 ports (for tests and demos).
pub struct IngestHandle {
    pub rtmp_addr: SocketAddr,
    pub http_addr: SocketAddr,
    state: Arc<IngestState>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<io::Result<()>>,
}

impl IngestHandle {
    /// Streams and records, read directly.
    pub fn state(&self) -> &Arc<IngestState> {
        &self.state
    }

    /// Stops the ingest and waits until live pushes have been recorded.
    pub async fn shutdown(mut self) -> io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.task).await {
            Ok(r) => r,
            Err(e) => Err(io::Error::other(e)),
        }
    }
}

/// Starts an ingest on 127.0.0.1:0 (RTMP and HTTP) in a task. Dropping the
/// handle stops it too.
pub async fn spawn(config: IngestConfig) -> io::Result<IngestHandle> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let http = TcpListener::bind("127.0.0.1:0").await?;
    let (rtmp_addr, http_addr) = (listener.local_addr()?, http.local_addr()?);
    let state = Arc::new(IngestState::new(config));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(run_state(listener, Some(http), state.clone(), async move {
        // A dropped handle counts as a shutdown.
        let _ = stopped.await;
    }));
    Ok(IngestHandle {
        rtmp_addr,
        http_addr,
        state,
        stop: Some(stop),
        task,
    })
}

/// As [`run`], and SRT pushes taken on `srt` into the same registry (an
/// RTMP and an SRT push to one stream are duplicates).
pub async fn run_with_srt(
    listener: TcpListener,
    http: Option<TcpListener>,
    srt: crate::srt::listen::Listener,
    config: IngestConfig,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let state = Arc::new(IngestState::new(config));
    let (stop_tx, stop_rx) = watch::channel(false);
    let srt_task = tokio::spawn(srt::serve(srt, state.clone(), stop_rx));
    let shutdown = async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    };
    let result = run_state(listener, http, state.clone(), shutdown).await;
    if tokio::time::timeout(DRAIN_TIMEOUT, srt_task).await.is_err() {
        tracing::warn!("SRT pushes did not end in time");
    }
    if let Some(n) = &state.config.notifier {
        wait_for_callbacks(n).await;
    }
    result
}

/// Sleeps until `due`, or forever without one (a `select!` arm that is off).
pub(crate) async fn sleep_until(due: Option<tokio::time::Instant>) {
    match due {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
