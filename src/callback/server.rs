//! The receiver's accept loop: hyper HTTP/1 per connection with a header read
//! timeout, a cap on connections, graceful shutdown, and a lingering close so
//! an early answer reaches a client still sending its body.

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use tokio::sync::watch;

use super::http::router;
use super::state::{ReceiverState, Reject};

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
    use super::super::samples::*;
    use super::super::state::test_config as config;
    use super::*;
    use axum::body::Bytes;
    use axum::http::{StatusCode, header};
    use http_body_util::BodyExt;

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
