//! HTTP-FLV play, the one place a player touches an HTTP-FLV socket: a GET
//! over HTTP/1.1 (hyper), the status checked (an error status is the
//! failure, with the server's words), then the body's FLV tags into the
//! [`Player`] fold.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::flv_tags::TagReader;
use super::{Failure, Phase, PlayConfig, Player, Stop, net, next_deadline, play_until};
use crate::clock::now_unix_us;

/// How much of an error response's body is kept (the server's words).
const ERROR_BODY_MAX: usize = 256;

/// Runs an HTTP-FLV play of `cfg.url` into `player`.
pub async fn run(
    cfg: &PlayConfig,
    player: &mut Player<'_>,
    cancel: &CancellationToken,
) -> Result<Stop, Failure> {
    tokio::select! {
        biased;
        _ = cancel.cancelled() => Ok(Stop::Cancelled),
        r = get(cfg, player) => r,
    }
}

fn protocol(phase: Phase, e: impl std::fmt::Display) -> Failure {
    Failure::Protocol {
        phase,
        detail: e.to_string(),
    }
}

async fn get(cfg: &PlayConfig, player: &mut Player<'_>) -> Result<Stop, Failure> {
    let io = net::dial(cfg, player).await?;
    let phase = Phase::Http;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| protocol(phase, e))?;
    // The connection task ends when the request and body are dropped.
    let driver = tokio::spawn(connection);
    let _abort = AbortOnDrop(driver.abort_handle());
    let u = &cfg.url;
    let default_port = if u.tls { 443 } else { 80 };
    let host = match (u.host.contains(':'), u.port == default_port) {
        (true, true) => format!("[{}]", u.host),
        (true, false) => format!("[{}]:{}", u.host, u.port),
        (false, true) => u.host.clone(),
        (false, false) => format!("{}:{}", u.host, u.port),
    };
    let req = hyper::Request::get(u.path.as_str())
        .header(hyper::header::HOST, host)
        .header(hyper::header::USER_AGENT, "pushprobe")
        .header(hyper::header::ACCEPT, "*/*")
        .body(Empty::<Bytes>::new())
        .map_err(|e| protocol(phase, e))?;
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
        let words = error_body(&mut body, cfg).await;
        return Err(Failure::Http {
            status: status.as_u16(),
            reason: status.canonical_reason().unwrap_or("").to_string(),
            body: words,
        });
    }
    receive(&mut body, player, cfg).await
}

/// Up to [`ERROR_BODY_MAX`] bytes of an error body, as text, within the timeout.
async fn error_body(body: &mut Incoming, cfg: &PlayConfig) -> String {
    let deadline = Instant::now() + cfg.timeout;
    let mut got = Vec::new();
    while got.len() < ERROR_BODY_MAX {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(f))) => {
                if let Ok(d) = f.into_data() {
                    got.extend_from_slice(&d);
                }
            }
            _ => break,
        }
    }
    got.truncate(ERROR_BODY_MAX);
    String::from_utf8_lossy(&got).trim().to_string()
}

async fn receive(
    body: &mut Incoming,
    player: &mut Player<'_>,
    cfg: &PlayConfig,
) -> Result<Stop, Failure> {
    let mut tags = TagReader::new();
    let mut last_rx = Instant::now();
    loop {
        let phase = if player.first_frame().is_some() {
            Phase::Playing
        } else {
            Phase::FirstFrame
        };
        let now = Instant::now();
        if play_until(cfg, player).is_some_and(|end| now >= end) {
            return Ok(Stop::Done);
        }
        let frame =
            match tokio::time::timeout_at(next_deadline(cfg, player, last_rx), body.frame()).await
            {
                Err(_) if play_until(cfg, player).is_some_and(|end| Instant::now() >= end) => {
                    return Ok(Stop::Done);
                }
                Err(_) => return Err(Failure::Timeout { phase }),
                Ok(None) => return Err(Failure::Ended { status: None }),
                Ok(Some(Err(e))) => return Err(protocol(phase, e)),
                Ok(Some(Ok(f))) => f,
            };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        last_rx = Instant::now();
        tags.feed(&data);
        while let Some(tag) = tags.next_tag().map_err(|e| protocol(phase, e))? {
            player.media(
                tag.type_id,
                tag.timestamp_ms,
                &tag.body,
                last_rx,
                now_unix_us(),
            );
        }
    }
}

/// Stops the connection task with the play.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
