//! HTTP-FLV play, the one place a player touches an HTTP-FLV socket: a
//! plain HTTP/1.1 GET, the response head parsed (httparse), an error status
//! turned into the failure with the server's words, then the body (chunked,
//! sized or to the close: `chunked`) read into the thread's scratch buffer
//! and its FLV tags into the [`Player`] fold.
//!
//! Not hyper (HLS keeps it): a load run holds 10,000 of these, and hyper's
//! connection task per viewer, its body channel and its read buffer cost
//! 55 CPU s and 39 KB per viewer where RTMP play cost 30 s and 7 KB.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{Instant, timeout_at};
use tokio_util::sync::CancellationToken;

use super::chunked::{BodyDecoder, Framing};
use super::flv_tags::TagReader;
use super::http::{ERROR_BODY_MAX, host_header, protocol};
use super::{Failure, Phase, PlayConfig, Player, Stop, net, next_deadline, play_until};
use crate::clock::now_unix_us;
use crate::publish::conn::Transport;

/// A response head longer than this is refused.
const HEAD_MAX: usize = 16 << 10;

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

/// What the response head said.
struct Head {
    status: u16,
    reason: String,
    framing: Framing,
}

async fn get(cfg: &PlayConfig, player: &mut Player<'_>) -> Result<Stop, Failure> {
    let url = &cfg.url;
    // Boxed: the dial's state lives only while it runs.
    let mut io = Box::pin(net::dial(cfg, url, player)).await?;
    let phase = Phase::Http;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: pushprobe\r\nAccept: */*\r\n\r\n",
        url.path,
        host_header(url)
    );
    let deadline = Instant::now() + cfg.timeout;
    player.asked(now_unix_us());
    match timeout_at(deadline, io.write_all(request.as_bytes())).await {
        Err(_) => return Err(Failure::Timeout { phase }),
        Ok(Err(_)) => return Err(Failure::Closed { phase }),
        Ok(Ok(())) => {}
    }
    let (head, rest) = Box::pin(read_head(&mut io, deadline)).await?;
    player.http_status = Some(head.status);
    player.mark(phase, Instant::now());
    let mut body = BodyDecoder::new(head.framing);
    if !(200..300).contains(&head.status) {
        let words = error_words(&mut io, &mut body, &rest, deadline).await;
        return Err(Failure::Http {
            status: head.status,
            reason: head.reason,
            body: words,
        });
    }
    receive(&mut io, &mut body, &rest, player, cfg).await
}

/// Reads and parses the response head; the bytes after it are the body's.
async fn read_head(io: &mut Transport, deadline: Instant) -> Result<(Head, Vec<u8>), Failure> {
    let phase = Phase::Http;
    let mut buf = Vec::with_capacity(1024);
    loop {
        if buf.len() >= HEAD_MAX {
            return Err(protocol(
                phase,
                format!("the response head is over {HEAD_MAX} bytes"),
            ));
        }
        match timeout_at(deadline, io.read_buf(&mut buf)).await {
            Err(_) => return Err(Failure::Timeout { phase }),
            Ok(Err(_) | Ok(0)) => return Err(Failure::Closed { phase }),
            Ok(Ok(_)) => {}
        }
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        let len = match resp.parse(&buf) {
            Ok(httparse::Status::Partial) => continue,
            Ok(httparse::Status::Complete(len)) => len,
            Err(e) => return Err(protocol(phase, format!("bad HTTP response: {e}"))),
        };
        let header = |name: &str| {
            resp.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
        };
        let framing = if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            Framing::Chunked
        } else if let Some(v) = header("content-length") {
            let n = v
                .parse()
                .map_err(|_| protocol(phase, format!("Content-Length {v:?} is not a number")))?;
            Framing::Length(n)
        } else {
            Framing::Close
        };
        let head = Head {
            status: resp.code.unwrap_or(0),
            reason: resp.reason.unwrap_or("").to_string(),
            framing,
        };
        return Ok((head, buf.split_off(len)));
    }
}

/// The start of an error response's body (the server's words), best effort
/// within the deadline.
async fn error_words(
    io: &mut Transport,
    body: &mut BodyDecoder,
    rest: &[u8],
    deadline: Instant,
) -> String {
    let mut words = Vec::new();
    let mut ok = body.decode(rest, |b| words.extend_from_slice(b)).is_ok();
    let mut buf = [0u8; 512];
    while ok && !body.done() && words.len() < ERROR_BODY_MAX {
        match timeout_at(deadline, io.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                ok = body
                    .decode(&buf[..n], |b| words.extend_from_slice(b))
                    .is_ok();
            }
            _ => break,
        }
    }
    words.truncate(ERROR_BODY_MAX);
    String::from_utf8_lossy(&words).trim().to_string()
}

async fn receive(
    io: &mut Transport,
    body: &mut BodyDecoder,
    rest: &[u8],
    player: &mut Player<'_>,
    cfg: &PlayConfig,
) -> Result<Stop, Failure> {
    let mut tags = TagReader::new();
    let mut last_rx = Instant::now();
    body.decode(rest, |b| tags.feed(b))
        .map_err(|e| protocol(Phase::FirstFrame, e))?;
    // A lazy read deadline, as the RTMP player's: moved only when it comes
    // earlier, re-armed when it fires early; not a timer per read.
    let timer = tokio::time::sleep_until(next_deadline(cfg, player, last_rx));
    tokio::pin!(timer);
    loop {
        let phase = if player.first_frame().is_some() {
            Phase::Playing
        } else {
            Phase::FirstFrame
        };
        // Every tag of one read arrived with it: one time for all.
        let rx_unix = now_unix_us();
        while let Some(tag) = tags.next_tag().map_err(|e| protocol(phase, e))? {
            player.media(tag.type_id, tag.timestamp_ms, &tag.body, last_rx, rx_unix);
        }
        tags.release_idle();
        if body.done() {
            return Err(Failure::Ended { status: None });
        }
        if play_until(cfg, player).is_some_and(|end| last_rx >= end) {
            return Ok(Stop::Done);
        }
        let deadline = next_deadline(cfg, player, last_rx);
        if deadline < timer.deadline() {
            timer.as_mut().reset(deadline);
        }
        let read = std::future::poll_fn(|cx| {
            net::poll_read_scratch(io, cx, |bytes| body.decode(bytes, |b| tags.feed(b)))
        });
        let got = tokio::select! {
            biased;
            r = read => r,
            () = &mut timer => {
                let now = Instant::now();
                if now < deadline {
                    timer.as_mut().reset(deadline);
                    continue;
                }
                if play_until(cfg, player).is_some_and(|end| now >= end) {
                    return Ok(Stop::Done);
                }
                return Err(Failure::Timeout { phase });
            }
        };
        match got {
            Ok(Some(Ok(()))) => last_rx = Instant::now(),
            Ok(Some(Err(e))) => return Err(protocol(phase, e)),
            // The server closed: the end of a body that runs to the close,
            // a cut otherwise.
            Ok(None) if !body.cut_by_close() => return Err(Failure::Ended { status: None }),
            Ok(None) | Err(_) => return Err(Failure::Closed { phase }),
        }
    }
}
