//! One HTTP GET for the players (HTTP-FLV, HLS playlists and segments):
//! dial (`net`), HTTP/1.1 over hyper, an error status turned into the
//! failure with the server's words; the body left to the caller.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

use super::{Failure, Phase, PlayConfig, PlayUrl, Player, net};

/// How much of an error response's body is kept (the server's words).
pub const ERROR_BODY_MAX: usize = 256;
/// hyper's read buffer, per connection.
const READ_BUF: usize = 16 << 10;

pub fn protocol(phase: Phase, e: impl std::fmt::Display) -> Failure {
    Failure::Protocol {
        phase,
        detail: e.to_string(),
    }
}

/// A response with a success status; the connection lives as long as it.
pub struct Response {
    pub body: Incoming,
    _driver: AbortOnDrop,
}

/// GETs `url` (its host, port and path) with a fresh connection; phases are
/// marked the first time only. A non-2xx status is [`Failure::Http`].
pub async fn get(
    cfg: &PlayConfig,
    url: &PlayUrl,
    player: &mut Player<'_>,
) -> Result<Response, Failure> {
    let io = net::dial(cfg, url, player).await?;
    let phase = Phase::Http;
    // A fixed 16 KiB read buffer: hyper's adaptive one grows towards 400 KB
    // on a stream that fills every read (a load run's HTTP-FLV viewers
    // under load held 175 KB each).
    let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
        .read_buf_exact_size(Some(READ_BUF))
        .handshake(TokioIo::new(io))
        .await
        .map_err(|e| protocol(phase, e))?;
    let driver = AbortOnDrop(tokio::spawn(connection).abort_handle());
    let req = hyper::Request::get(url.path.as_str())
        .header(hyper::header::HOST, host_header(url))
        .header(hyper::header::USER_AGENT, "pushprobe")
        .header(hyper::header::ACCEPT, "*/*")
        .body(Empty::<Bytes>::new())
        .map_err(|e| protocol(phase, e))?;
    player.asked(crate::clock::now_unix_us());
    let resp = match tokio::time::timeout(cfg.timeout, sender.send_request(req)).await {
        Err(_) => return Err(Failure::Timeout { phase }),
        Ok(Err(e)) if e.is_incomplete_message() || e.is_canceled() => {
            return Err(Failure::Closed { phase });
        }
        Ok(Err(e)) => return Err(protocol(phase, e)),
        Ok(Ok(r)) => r,
    };
    let status = resp.status();
    player.http_status = Some(status.as_u16());
    player.mark(phase, Instant::now());
    let mut body = resp.into_body();
    if !status.is_success() {
        let words = read_all(&mut body, cfg, ERROR_BODY_MAX, phase)
            .await
            .unwrap_or_default();
        let words = String::from_utf8_lossy(&words).trim().to_string();
        return Err(Failure::Http {
            status: status.as_u16(),
            reason: status.canonical_reason().unwrap_or("").to_string(),
            body: words,
        });
    }
    Ok(Response {
        body,
        _driver: driver,
    })
}

/// The Host header for `url`: the port only when it is not the scheme's,
/// an IPv6 address in brackets.
pub fn host_header(url: &PlayUrl) -> String {
    let default_port = if url.tls { 443 } else { 80 };
    match (url.host.contains(':'), url.port == default_port) {
        (true, true) => format!("[{}]", url.host),
        (true, false) => format!("[{}]:{}", url.host, url.port),
        (false, true) => url.host.clone(),
        (false, false) => format!("{}:{}", url.host, url.port),
    }
}

/// The body, up to `max` bytes (more is cut), within the timeout.
pub async fn read_all(
    body: &mut Incoming,
    cfg: &PlayConfig,
    max: usize,
    phase: Phase,
) -> Result<Vec<u8>, Failure> {
    let deadline = Instant::now() + cfg.timeout;
    let mut got = Vec::new();
    while got.len() < max {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(Failure::Timeout { phase }),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(protocol(phase, e)),
            Ok(Some(Ok(f))) => {
                if let Ok(d) = f.into_data() {
                    got.extend_from_slice(&d);
                }
            }
        }
    }
    got.truncate(max);
    Ok(got)
}

/// Stops the connection task with the response.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
