//! HLS play: poll the playlist, fetch each new segment once, demux its
//! MPEG-TS (`ts::demux`) and feed the access units to the [`Player`] fold.
//! Joins at the newest segment (the lowest latency a player can have);
//! a segment arrives whole, so the stall threshold is widened by the target
//! duration (frames come in bursts of one segment).

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::http::{self, protocol};
use super::m3u8::{self, Playlist};
use super::{Failure, Phase, PlayConfig, PlayUrl, Player, Stop, play_until};
use crate::clock::now_unix_us;
use crate::ts::demux::Demuxer;

/// Largest playlist and segment read (a 10 s 4K segment is ~25 MB).
const PLAYLIST_MAX: usize = 1 << 20;
const SEGMENT_MAX: usize = 64 << 20;
/// Master playlists followed before a media playlist, at most.
const MAX_HOPS: u32 = 2;
/// Playlist polling: half the target duration, within these bounds.
const POLL_MIN: Duration = Duration::from_millis(100);
const POLL_MAX: Duration = Duration::from_secs(2);

/// Runs an HLS play of `cfg.url` into `player`.
pub async fn run(
    cfg: &PlayConfig,
    player: &mut Player<'_>,
    cancel: &CancellationToken,
) -> Result<Stop, Failure> {
    tokio::select! {
        biased;
        _ = cancel.cancelled() => Ok(Stop::Cancelled),
        r = hls(cfg, player) => r,
    }
}

/// `uri` (as the playlist at `base` names it) as a URL to GET.
fn at(base: &PlayUrl, uri: &str) -> Result<PlayUrl, Failure> {
    let resolved = m3u8::resolve(&base.path, uri);
    if resolved.contains("://") {
        return PlayUrl::parse(&resolved).map_err(|e| protocol(Phase::Http, e));
    }
    Ok(PlayUrl {
        path: resolved,
        ..base.clone()
    })
}

async fn fetch(
    cfg: &PlayConfig,
    url: &PlayUrl,
    player: &mut Player<'_>,
    max: usize,
) -> Result<Vec<u8>, Failure> {
    let mut resp = http::get(cfg, url, player).await?;
    http::read_all(&mut resp.body, cfg, max, Phase::Http).await
}

async fn hls(cfg: &PlayConfig, player: &mut Player<'_>) -> Result<Stop, Failure> {
    let mut playlist = cfg.url.clone();
    let mut next: Option<u64> = None;
    let mut demux = Demuxer::new();
    let mut widened = false;
    let mut hops = 0;
    let mut last_new = Instant::now();
    loop {
        let phase = if player.first_frame().is_some() {
            Phase::Playing
        } else {
            Phase::FirstFrame
        };
        let text = fetch(cfg, &playlist, player, PLAYLIST_MAX).await?;
        let parsed =
            m3u8::parse(&String::from_utf8_lossy(&text)).map_err(|e| protocol(phase, e))?;
        let (target, segments, ended) = match parsed {
            Playlist::Master { variant } if hops < MAX_HOPS => {
                hops += 1;
                playlist = at(&playlist, &variant)?;
                continue;
            }
            Playlist::Master { .. } => {
                return Err(protocol(phase, "master playlists nested too deep"));
            }
            Playlist::Media {
                target_duration_s,
                segments,
                ended,
            } => (target_duration_s, segments, ended),
        };
        let target = Duration::from_secs_f64(target.clamp(0.0, 60.0));
        if !widened {
            player.widen_stall(target);
            widened = true;
        }
        if next.is_none() {
            next = segments.last().map(|s| s.seq);
        }
        for seg in &segments {
            if next.is_some_and(|n| seg.seq < n) {
                continue;
            }
            let bytes = fetch(cfg, &at(&playlist, &seg.uri)?, player, SEGMENT_MAX).await?;
            let now = Instant::now();
            let unix = now_unix_us();
            let mut units = demux.push(&bytes);
            units.extend(demux.flush());
            for au in &units {
                player.access_unit(au, now, unix);
            }
            next = Some(seg.seq + 1);
            last_new = now;
            if play_until(cfg, player).is_some_and(|end| Instant::now() >= end) {
                return Ok(Stop::Done);
            }
        }
        if ended
            && segments
                .last()
                .is_none_or(|s| next.is_some_and(|n| s.seq < n))
        {
            return Err(Failure::Ended { status: None });
        }
        if last_new.elapsed() > cfg.timeout {
            return Err(Failure::Timeout { phase });
        }
        let mut wake = Instant::now() + (target / 2).clamp(POLL_MIN, POLL_MAX);
        if let Some(end) = play_until(cfg, player) {
            if Instant::now() >= end {
                return Ok(Stop::Done);
            }
            wake = wake.min(end);
        }
        tokio::time::sleep_until(wake).await;
    }
}
