//! HTTP-FLV play, the one place a player touches an HTTP-FLV socket: a GET
//! over HTTP/1.1 (hyper), the status checked (an error status is the
//! failure, with the server's words), then the body's FLV tags into the
//! [`Player`] fold.

use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::flv_tags::TagReader;
use super::http::{self, protocol};
use super::{Failure, Phase, PlayConfig, Player, Stop, next_deadline, play_until};
use crate::clock::now_unix_us;

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

async fn get(cfg: &PlayConfig, player: &mut Player<'_>) -> Result<Stop, Failure> {
    let mut resp = http::get(cfg, &cfg.url, player).await?;
    receive(&mut resp.body, player, cfg).await
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
        let frame = match tokio::time::timeout_at(next_deadline(cfg, player, last_rx), body.frame())
            .await
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
        // Every tag of one body frame arrived with it: one time for all.
        last_rx = Instant::now();
        let rx_unix = now_unix_us();
        tags.feed(&data);
        while let Some(tag) = tags.next_tag().map_err(|e| protocol(phase, e))? {
            player.media(tag.type_id, tag.timestamp_ms, &tag.body, last_rx, rx_unix);
        }
    }
}
