//! What one push looks like to people (text) and machines (JSON, described
//! by `schemas/commands.json`): renderers over a ran [`PreparedPush`], pure.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;

use serde::Serialize;

use super::{PreparedPush, Pushed};
use crate::classify::Outcome;
use crate::clock::millis;
use crate::publish::Phase;
use crate::publish::dial::{self, Attempt, AttemptResult};
use crate::rtmp::message::{FourCcReply, StatusReply};
use crate::sign;

/// The JSON object `push`, `smoke` (and each push of `dup`) print.
#[derive(Debug, Serialize)]
pub struct PushReport {
    /// The URL pushed to, txSecret as `***` unless secrets are shown.
    pub url: String,
    pub outcome: Outcome,
    pub evidence: Vec<String>,
    pub certain: bool,
    pub step: Option<u8>,
    pub fix: &'static str,
    pub phase: Option<Phase>,
    /// Each phase's own duration, ms.
    pub phases_ms: BTreeMap<&'static str, f64>,
    /// The address the connection went to.
    pub remote_addr: Option<SocketAddr>,
    /// The flags that forced the addresses (`--resolve ...`), if any.
    pub forced_by: Option<String>,
    /// Every TCP connection attempt, in start order (Happy Eyeballs).
    pub attempts: Vec<AttemptReport>,
    /// From the start to NetStream.Publish.Start, ms.
    pub time_to_publish_ms: Option<f64>,
    pub server_status: Option<StatusReply>,
    pub bytes_sent: u64,
    pub media_seconds: f64,
    pub streamed_seconds: f64,
    /// How far the push fell behind real time, ms.
    pub max_lag_ms: f64,
    /// Throughput achieved after Publish.Start, kbit/s; `null` when it
    /// never streamed.
    pub uplink_kbps: Option<f64>,
    /// The fixture's bitrate, kbit/s: what the uplink must carry.
    pub needed_kbps: f64,
    /// The user stopped the push (Ctrl-C, SIGTERM) before its end.
    pub stopped_by_user: bool,
    pub fixture: FixtureInfo,
    /// SRT pushes: SRT's own numbers at the end (absent for RTMP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub srt: Option<crate::srt::caller::SrtStats>,
    /// What the server's connect `_result` said about Enhanced RTMP
    /// (`fourCcList`, `videoFourCcInfoMap`, `capsEx`); `null` before connect.
    pub server_fourcc: Option<FourCcReply>,
}

/// One TCP connection attempt: address, how it ended, when it started and
/// how long it took (ms from the first attempt's start).
#[derive(Debug, Serialize)]
pub struct AttemptReport {
    pub addr: SocketAddr,
    /// connected, refused, timeout, error, cancelled (another address won).
    pub result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub start_ms: f64,
    pub ms: f64,
}

impl AttemptReport {
    fn new(a: &Attempt) -> AttemptReport {
        AttemptReport {
            addr: a.addr,
            result: a.result.name(),
            error: match &a.result {
                AttemptResult::Error(e) => Some(e.clone()),
                _ => None,
            },
            start_ms: millis(a.started),
            ms: millis(a.took),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct FixtureInfo {
    pub name: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub bitrate_bps: u64,
    /// Video codec pushed: h264, hevc, av1, vp9 (`null`: no video).
    pub codec: Option<&'static str>,
    /// How the video names its codec: `enhanced` (FourCC) or `legacy-id`.
    pub framing: Option<&'static str>,
}

impl PushReport {
    pub fn new(p: &PreparedPush, pushed: &Pushed, show_secrets: bool) -> PushReport {
        let (r, v) = (&pushed.result, &pushed.verdict);
        let redact = |s: &str| {
            if show_secrets {
                s.to_string()
            } else {
                sign::redact_query_in(s)
            }
        };
        PushReport {
            url: p.shown_url(show_secrets),
            outcome: v.outcome,
            evidence: v.evidence.iter().map(|e| redact(e)).collect(),
            certain: v.certain,
            step: v.step,
            fix: v.fix,
            phase: v.phase,
            phases_ms: r
                .marks
                .durations()
                .into_iter()
                .map(|(phase, d)| (phase.name(), millis(d)))
                .collect(),
            remote_addr: r.remote_addr,
            forced_by: r.forced.clone(),
            attempts: r.attempts.iter().map(AttemptReport::new).collect(),
            time_to_publish_ms: r.marks.at(Phase::Publish).map(millis),
            server_status: r.server_status().map(|s| StatusReply {
                description: redact(&s.description),
                ..s.clone()
            }),
            bytes_sent: r.bytes_sent,
            media_seconds: r.media_ms as f64 / 1000.0,
            streamed_seconds: (r.streamed.as_secs_f64() * 1000.0).round() / 1000.0,
            max_lag_ms: millis(r.max_lag),
            uplink_kbps: pushed.uplink.map(|u| u.uplink_kbps),
            needed_kbps: (p.plan.bitrate_bps as f64 / 100.0).round() / 10.0,
            stopped_by_user: pushed.stopped_by_user(),
            fixture: FixtureInfo {
                name: p.fixture_name.clone(),
                width: p.plan.width,
                height: p.plan.height,
                bitrate_bps: p.plan.bitrate_bps,
                codec: p.plan.video_codec.map(|c| c.as_str()),
                framing: p.plan.video_framing.map(|f| f.as_str()),
            },
            srt: r.srt.as_deref().copied(),
            server_fourcc: r.server_fourcc.as_deref().cloned(),
        }
    }
}

/// What the connect `_result` said about the FourCC pushed, in one line.
pub fn describe_fourcc_reply(fourcc: &str, reply: &FourCcReply) -> String {
    let said = match reply.takes(fourcc) {
        None => "said nothing about Enhanced RTMP".to_string(),
        Some(true) => format!("lists {fourcc}"),
        Some(false) => format!("does not list {fourcc}"),
    };
    let list = reply
        .fourcc_list
        .as_ref()
        .map(|l| format!(" (fourCcList [{}])", l.join(", ")))
        .unwrap_or_default();
    format!("pushed {fourcc}; the server's connect _result {said}{list}")
}

/// The text `push` and `smoke` print: phases, status, streaming, verdict.
pub fn write_text(out: &mut impl Write, pushed: &Pushed) -> std::io::Result<()> {
    let (r, v) = (&pushed.result, &pushed.verdict);
    let phases: Vec<String> = r
        .marks
        .durations()
        .iter()
        .map(|(ph, d)| format!("{} {:.1} ms", ph.name(), millis(*d)))
        .collect();
    if !phases.is_empty() {
        writeln!(out, "phases    {}", phases.join(", "))?;
    }
    dial::write_remote(out, r.remote_addr, r.forced.as_deref())?;
    if r.attempts.len() > 1 || r.remote_addr.is_none() {
        dial::write_attempts(out, &r.attempts)?;
    }
    if let (Some(fourcc), Some(reply)) = (r.pushed_fourcc, &r.server_fourcc) {
        writeln!(out, "enhanced  {}", describe_fourcc_reply(fourcc, reply))?;
    }
    match (r.marks.at(Phase::Publish), &r.srt) {
        (Some(t), None) => writeln!(
            out,
            "publish   NetStream.Publish.Start after {:.1} ms",
            millis(t)
        )?,
        (Some(t), Some(_)) => writeln!(
            out,
            "publish   first SRT packet acknowledged after {:.1} ms",
            millis(t)
        )?,
        (None, _) => {}
    }
    if let Some(s) = &r.srt {
        writeln!(
            out,
            "srt       latency {:.0} ms, rtt {:.1} ms, {} packets sent, {} retransmitted, {} dropped, {} reported lost",
            s.latency_ms,
            s.rtt_ms,
            s.packets_sent,
            s.packets_retransmitted,
            s.packets_dropped,
            s.packets_lost
        )?;
    }
    match r.server_status() {
        Some(s) => writeln!(
            out,
            "server    {} {} {:?}",
            s.level,
            s.code,
            sign::redact_query_in(&s.description)
        )?,
        None if !r.accepted() && r.publish_sent.is_some() => {
            writeln!(out, "server    sent no status before closing")?
        }
        None => {}
    }
    if r.accepted() {
        writeln!(
            out,
            "streamed  {:.1} s ({:.1} s of media, {} KB sent, max lag {:.0} ms)",
            r.streamed.as_secs_f64(),
            r.media_ms as f64 / 1000.0,
            r.bytes_sent / 1024,
            millis(r.max_lag)
        )?;
    }
    if let Some(u) = &pushed.uplink {
        writeln!(
            out,
            "uplink    {:.0} kbit/s achieved, {:.0} kbit/s needed{}",
            u.uplink_kbps,
            u.needed_kbps,
            if u.too_slow { ": too slow" } else { "" }
        )?;
    }
    let certainty = if v.certain { "" } else { " (not certain)" };
    writeln!(out, "outcome   {}{certainty}", v.outcome.name())?;
    for e in &v.evidence {
        writeln!(out, "evidence  {}", sign::redact_query_in(e))?;
    }
    if v.outcome != Outcome::Accepted {
        if let Some(step) = v.step {
            writeln!(
                out,
                "checklist step {step} of Tencent's push troubleshooting list"
            )?;
        }
        writeln!(out, "fix       {}", v.fix)?;
    }
    Ok(())
}
