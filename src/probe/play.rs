//! Push, then play the same stream back while pushing (`push --play`,
//! `smoke --play`, `doctor` step 6, `demo`): the player starts once the
//! server accepted the push, stops when the push ends, and gets the
//! publisher's send log for latency when the relay strips the stamps.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::report::PushReport;
use super::{PreparedPush, Pushed};
use crate::classify::Outcome;
use crate::play::report::PlayReport;
use crate::play::url::PlayUrlError;
use crate::play::{self, Failure, PlayConfig, PlayResult, PlayUrl, SendLog};
use crate::publish::{Observer, Phase};

/// Send times kept: about 2 minutes of 30 fps video, enough for any relay
/// delay a player would still call live.
const LOG_FRAMES: usize = 4096;

/// The publisher's video send times by media timestamp (ms), newest last.
#[derive(Default)]
pub struct SendRecord {
    frames: Mutex<VecDeque<(u64, u64)>>,
}

impl SendRecord {
    fn push(&self, timestamp_ms: u64, sent_unix_us: u64) {
        let mut f = self.frames.lock().unwrap_or_else(|e| e.into_inner());
        if f.len() == LOG_FRAMES {
            f.pop_front();
        }
        f.push_back((timestamp_ms, sent_unix_us));
    }
}

impl SendLog for SendRecord {
    /// The send time of the frame with this RTMP timestamp (32 bits, as on
    /// the wire): an exact match only, newest first.
    fn sent_unix_us(&self, timestamp_ms: u32) -> Option<u64> {
        let f = self.frames.lock().unwrap_or_else(|e| e.into_inner());
        f.iter()
            .rev()
            .find(|(ts, _)| *ts as u32 == timestamp_ms)
            .map(|(_, us)| *us)
    }
}

/// Watches the publisher: records video send times, says when the server
/// accepted the push, and passes everything on to the caller's observer.
struct Recorder<'a> {
    log: Arc<SendRecord>,
    published: CancellationToken,
    inner: &'a mut dyn Observer,
}

impl Observer for Recorder<'_> {
    fn phase(&mut self, phase: Phase, at: tokio::time::Instant) {
        if phase == Phase::Publish {
            self.published.cancel();
        }
        self.inner.phase(phase, at);
    }
    fn sent(&mut self, bytes: u64) {
        self.inner.sent(bytes);
    }
    fn frame_sent(&mut self, timestamp_ms: u64, sequence: u64, sent_unix_us: u64) {
        self.log.push(timestamp_ms, sent_unix_us);
        self.inner.frame_sent(timestamp_ms, sequence, sent_unix_us);
    }
}

/// A push and its play-back.
pub struct PushedAndPlayed {
    pub pushed: Pushed,
    /// `None` when the push was never accepted (nothing to play).
    pub played: Option<PlayResult>,
}

impl PushedAndPlayed {
    /// The push's exit code, and 1 when it was accepted but did not play
    /// back or did not keep up.
    pub fn exit_code(&self, signal: Option<crate::signal::Signal>) -> u8 {
        exit_code(self.pushed.exit_code(signal), self.played.as_ref())
    }
}

/// A push's exit code once played back: 1 instead of 0 when the play-back
/// did not start or did not keep up.
pub fn exit_code(push_code: u8, played: Option<&PlayResult>) -> u8 {
    match push_code {
        0 if !played.is_some_and(|p| p.kept_up(None)) => 1,
        code => code,
    }
}

/// The player for `push --play URL` (and smoke, doctor): the push's
/// timeout, TLS and dialing options.
pub fn play_config(url: &str, s: &super::PushSettings) -> Result<PlayConfig, PlayUrlError> {
    let mut cfg = PlayConfig::new(PlayUrl::parse_playable(url)?);
    cfg.timeout = s.timeout;
    cfg.insecure = s.insecure;
    cfg.dial = Arc::new(s.dial.clone());
    Ok(cfg)
}

/// Runs `push` and, once it is accepted, a player of `play` until the push
/// ends. The stream is the one pushed, so the send log is attached; the push
/// should be stamped (`PushSettings::stamp`).
pub async fn push_and_play(
    push: &PreparedPush,
    play: PlayConfig,
    cancel: &CancellationToken,
) -> PushedAndPlayed {
    let (pushed, mut played) = push_and_play_all(push, vec![play], cancel, &mut ()).await;
    PushedAndPlayed {
        pushed,
        played: played.pop().flatten(),
    }
}

/// [`push_and_play`] with several players at once (the demo plays RTMP and
/// HTTP-FLV) and the caller's observer of the push. One result per player,
/// in order; `None` when the push was never accepted.
pub async fn push_and_play_all(
    push: &PreparedPush,
    plays: Vec<PlayConfig>,
    cancel: &CancellationToken,
    observer: &mut dyn Observer,
) -> (Pushed, Vec<Option<PlayResult>>) {
    let log = Arc::new(SendRecord::default());
    let published = CancellationToken::new();
    let mut recorder = Recorder {
        log: log.clone(),
        published: published.clone(),
        inner: observer,
    };
    let stop_play = cancel.child_token();
    let pushing = async {
        let r = push.run_observed(cancel, &mut recorder, false).await;
        stop_play.cancel();
        r
    };
    let players = plays.into_iter().map(|mut play| {
        play.send_log = Some(log.clone());
        play.duration = None;
        let (published, stop_play) = (&published, &stop_play);
        async move {
            tokio::select! {
                _ = published.cancelled() => {}
                _ = stop_play.cancelled() => return None,
            }
            Some(play::play_one(&play, stop_play).await)
        }
    });
    let (mut pushed, mut played) = tokio::join!(pushing, join_all(players.collect()));
    // What came back settles a codec verdict the connect _result left open.
    let (video, audio) = played.iter().flatten().fold((0, 0), |(v, a), p| {
        (v.max(p.counts.video_frames), a.max(p.counts.audio_frames))
    });
    if played
        .iter()
        .flatten()
        .any(|p| p.started() || p.counts.audio_frames > 0)
    {
        pushed.verdict = pushed.verdict.clone().judge_played(
            &pushed.result,
            push.plan.pushed_video(),
            video,
            audio,
        );
    }
    for p in played.iter_mut().flatten() {
        // The publisher ending its own stream is the end of the play, not a
        // failure of it.
        if pushed.verdict.outcome == Outcome::Accepted
            && matches!(p.failure, Some(Failure::Ended { .. }))
        {
            p.failure = None;
        }
        // Stopped because the push ended: only the user's stop is a stop.
        p.cancelled &= cancel.is_cancelled();
    }
    (pushed, played)
}

/// Runs every future to its end, concurrently on this task; outputs in order.
async fn join_all<F: Future>(futs: Vec<F>) -> Vec<F::Output> {
    let mut futs: Vec<Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, o) in futs.iter_mut().zip(out.iter_mut()) {
            if o.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *o = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

/// The push JSON with its `play` object (`schemas/commands.json`).
#[derive(Serialize)]
pub struct PushPlayReport {
    #[serde(flatten)]
    pub push: PushReport,
    pub play: Option<PlayReport>,
}

impl PushPlayReport {
    pub fn new(push: PushReport, played: Option<&PlayResult>, url: &str) -> Self {
        PushPlayReport {
            push,
            play: played.map(|r| PlayReport::new(r, url, None)),
        }
    }
}

/// The play-back section of push's and smoke's text output.
pub fn write_text(
    out: &mut impl std::io::Write,
    played: Option<&PlayResult>,
    shown_url: &str,
) -> std::io::Result<()> {
    match played {
        Some(r) => {
            writeln!(out, "play back {shown_url}")?;
            play::report::write_text(out, r)
        }
        None => writeln!(out, "verdict   {}", verdict_line(None)),
    }
}

/// The line push and smoke add to their verdict.
pub fn verdict_line(played: Option<&PlayResult>) -> String {
    match played {
        Some(r) => play::report::verdict_line(r),
        None => "not playable: the push was not accepted, nothing to play".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_log_matches_exact_timestamps_newest_first_and_forgets_old_ones() {
        let r = SendRecord::default();
        r.push(0, 100);
        r.push(40, 140);
        assert_eq!(r.sent_unix_us(40), Some(140));
        assert_eq!(r.sent_unix_us(41), None);
        for i in 0..LOG_FRAMES as u64 {
            r.push(1000 + i, 5000 + i);
        }
        assert_eq!(r.sent_unix_us(0), None, "forgotten");
        assert_eq!(r.sent_unix_us(1000 + 7), Some(5007));
        // RTMP timestamps wrap at 2^32 ms.
        r.push((1 << 32) + 5, 9);
        assert_eq!(r.sent_unix_us(5), Some(9));
    }
}
