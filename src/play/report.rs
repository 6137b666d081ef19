//! What one play-back looks like to people (text) and machines (JSON, the
//! `play` object of `schemas/commands.json`): renderers over a
//! [`PlayResult`], pure.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use serde::Serialize;

use super::measure::Counts;
use super::{LatencyMethod, Phase, PlayResult, Protocol};
use crate::clock::millis;
use crate::load::hist::Percentiles;
use crate::rtmp::message::StatusReply;
use crate::sign;

/// The JSON object `play` prints (and `push --play` / `smoke --play` nest).
#[derive(Debug, Serialize)]
pub struct PlayReport {
    /// The URL played, secrets in the query as `***`.
    pub url: String,
    pub protocol: Protocol,
    /// Playback started (a video frame arrived) and kept up.
    pub ok: bool,
    pub started: bool,
    /// Each completed phase, ms from the start of the play.
    pub phases_ms: BTreeMap<&'static str, f64>,
    pub failure: Option<FailureReport>,
    pub statuses: Vec<StatusReply>,
    pub http_status: Option<u16>,
    pub stopped_by_user: bool,
    /// From the first frame to the end, seconds.
    pub played_seconds: f64,
    #[serde(flatten)]
    pub counts: Counts,
    pub latency_method: LatencyMethod,
    /// Push-to-play latency per frame, ms (`null` without a method).
    pub latency_ms: Option<Percentiles>,
}

/// A failure: its kind and phase as values, and the words to show.
#[derive(Debug, Serialize)]
pub struct FailureReport {
    pub kind: &'static str,
    pub phase: Phase,
    pub message: String,
}

impl PlayReport {
    pub fn new(r: &PlayResult, url: &str, max_latency: Option<Duration>) -> PlayReport {
        PlayReport {
            url: url.to_string(),
            protocol: r.protocol,
            ok: r.kept_up(max_latency),
            started: r.started(),
            phases_ms: r
                .marks
                .iter()
                .map(|(p, d)| (p.name(), millis(*d)))
                .collect(),
            failure: r.failure.as_ref().map(|f| FailureReport {
                kind: kind(f),
                phase: f.phase(),
                message: sign::redact_query_in(&f.to_string()),
            }),
            statuses: r.statuses.clone(),
            http_status: r.http_status,
            stopped_by_user: r.cancelled,
            played_seconds: r.played.as_secs_f64(),
            counts: r.counts,
            latency_method: r.latency_method,
            latency_ms: r.latency,
        }
    }
}

fn kind(f: &super::Failure) -> &'static str {
    use super::Failure::*;
    match f {
        Dial { .. } => "dial",
        Timeout { .. } => "timeout",
        Closed { .. } => "closed",
        Rejected { .. } => "rejected",
        Http { .. } => "http",
        Protocol { .. } => "protocol",
        Ended { .. } => "ended",
        Unsupported { .. } => "unsupported",
    }
}

/// The verdict line push and smoke add: `playable: first frame after X ms,
/// latency p50 Y ms`, or why not.
pub fn verdict_line(r: &PlayResult) -> String {
    match (r.at(Phase::FirstFrame), &r.failure) {
        (Some(t), _) => {
            let mut s = format!("playable: first frame after {:.0} ms", millis(t));
            match &r.latency {
                Some(p) => {
                    s += &format!(
                        ", latency p50 {:.1} ms ({})",
                        p.p50,
                        r.latency_method.name()
                    )
                }
                None => s += ", latency not measured (no stamps, no send log)",
            }
            if let Some(f) = &r.failure {
                s += &format!("; then {}", sign::redact_query_in(&f.to_string()));
            } else if r.counts.stalls > 0 {
                s += &format!("; {} stall(s)", r.counts.stalls);
            }
            s
        }
        (None, Some(f)) => format!("not playable: {}", sign::redact_query_in(&f.to_string())),
        (None, None) => "not playable: no video frame arrived".to_string(),
    }
}

pub fn write_text(out: &mut impl Write, r: &PlayResult) -> std::io::Result<()> {
    let phases: Vec<String> = r
        .marks
        .iter()
        .map(|(p, d)| format!("{} {:.1} ms", p.name(), millis(*d)))
        .collect();
    if !phases.is_empty() {
        writeln!(out, "phases    {}", phases.join(", "))?;
    }
    for s in &r.statuses {
        writeln!(
            out,
            "server    {} {} {:?}",
            s.level,
            s.code,
            sign::redact_query_in(&s.description)
        )?;
    }
    if let Some(status) = r.http_status {
        writeln!(out, "http      {status}")?;
    }
    let c = &r.counts;
    if r.started() {
        writeln!(
            out,
            "received  {} video frames ({} keyframes), {} audio frames, {} KB in {:.1} s",
            c.video_frames,
            c.keyframes,
            c.audio_frames,
            c.media_bytes / 1024,
            r.played.as_secs_f64()
        )?;
        writeln!(
            out,
            "smooth    {} stall(s) (longest gap {} ms), {} timestamp discontinuities",
            c.stalls, c.longest_gap_ms, c.discontinuities
        )?;
        if c.stamped > 0 {
            writeln!(
                out,
                "frames    {} stamped: {} lost, {} duplicated, {} reordered",
                c.stamped, c.lost, c.duplicated, c.reordered
            )?;
        }
        if c.catchup > 0 {
            writeln!(
                out,
                "catch-up  {} frame(s) pushed before the play was asked (the server's cache), the oldest {} ms old: not in the latency",
                c.catchup, c.catchup_oldest_ms
            )?;
        }
        match &r.latency {
            Some(p) => writeln!(
                out,
                "latency   p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} frames (method: {})",
                p.p50,
                p.p90,
                p.p99,
                p.max,
                p.count,
                r.latency_method.name()
            )?,
            None if r.latency_method != LatencyMethod::None => writeln!(
                out,
                "latency   no live frame measured (method: {}): every stamped frame was catch-up",
                r.latency_method.name()
            )?,
            None => writeln!(
                out,
                "latency   not measured (method: none: no stamps in the stream, no send log)"
            )?,
        }
    }
    writeln!(out, "verdict   {}", verdict_line(r))
}
