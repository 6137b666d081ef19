//! Why a push failed, in the terms of Tencent's troubleshooting checklist.
//! Pure: (wire evidence from a `PublishResult`, local facts) -> `Verdict`.

use serde::Serialize;

use crate::codec::{Framing, VideoCodec};
use crate::publish::{Ending, Failure, Phase, PublishResult};
use crate::rtmp::message::StatusReply;
use crate::sign::{Expiry, SecretCheck};

/// Every outcome a push can have. snake_case in JSON.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Accepted,
    ExpiredUrl,
    UnsignedUrl,
    BadSecret,
    AlreadyInUse,
    StreamDisabled,
    Refused,
    DnsFailure,
    ConnectionRefused,
    ConnectTimeout,
    /// Every address of the host failed, not all the same way.
    ConnectFailed,
    TlsFailed,
    HandshakeFailed,
    ConnectRejected,
    /// The server sent RTMP we cannot accept (bad chunk size, short command...).
    ProtocolError,
    Timeout,
    Interrupted,
    /// Stopped by the user before Publish.Start: the server's answer is unknown.
    Cancelled,
    /// Accepted, but the path could not carry the fixture's bitrate: the
    /// push fell more than [`LAG_LIMIT`] behind real time.
    TooSlow,
    /// The server does not take the video codec (or its framing): refused,
    /// accepted and cut, or accepted while its connect `_result` did not list
    /// the FourCC pushed.
    CodecUnsupported,
}

/// How far behind real time a push may fall before its uplink is too slow
/// (the same limit `load` judges by).
pub const LAG_LIMIT: std::time::Duration = std::time::Duration::from_secs(1);

impl Outcome {
    pub const ALL: [Outcome; 20] = [
        Outcome::Accepted,
        Outcome::ExpiredUrl,
        Outcome::UnsignedUrl,
        Outcome::BadSecret,
        Outcome::AlreadyInUse,
        Outcome::StreamDisabled,
        Outcome::Refused,
        Outcome::DnsFailure,
        Outcome::ConnectionRefused,
        Outcome::ConnectTimeout,
        Outcome::ConnectFailed,
        Outcome::TlsFailed,
        Outcome::HandshakeFailed,
        Outcome::ConnectRejected,
        Outcome::ProtocolError,
        Outcome::Timeout,
        Outcome::Interrupted,
        Outcome::Cancelled,
        Outcome::TooSlow,
        Outcome::CodecUnsupported,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::ExpiredUrl => "expired_url",
            Outcome::UnsignedUrl => "unsigned_url",
            Outcome::BadSecret => "bad_secret",
            Outcome::AlreadyInUse => "already_in_use",
            Outcome::StreamDisabled => "stream_disabled",
            Outcome::Refused => "refused",
            Outcome::DnsFailure => "dns_failure",
            Outcome::ConnectionRefused => "connection_refused",
            Outcome::ConnectTimeout => "connect_timeout",
            Outcome::ConnectFailed => "connect_failed",
            Outcome::TlsFailed => "tls_failed",
            Outcome::HandshakeFailed => "handshake_failed",
            Outcome::ConnectRejected => "connect_rejected",
            Outcome::ProtocolError => "protocol_error",
            Outcome::Timeout => "timeout",
            Outcome::Interrupted => "interrupted",
            Outcome::Cancelled => "cancelled",
            Outcome::TooSlow => "too_slow",
            Outcome::CodecUnsupported => "codec_unsupported",
        }
    }

    /// The step of Tencent's push checklist (seeds 000/001) this outcome points at.
    pub fn step(self) -> Option<u8> {
        match self {
            Outcome::Accepted | Outcome::Interrupted | Outcome::Cancelled | Outcome::TooSlow => {
                None
            }
            Outcome::DnsFailure => Some(1),
            Outcome::ConnectionRefused
            | Outcome::ConnectTimeout
            | Outcome::ConnectFailed
            | Outcome::TlsFailed
            | Outcome::HandshakeFailed
            | Outcome::Timeout => Some(2),
            Outcome::ExpiredUrl => Some(3),
            Outcome::UnsignedUrl | Outcome::BadSecret => Some(4),
            Outcome::AlreadyInUse | Outcome::StreamDisabled => Some(5),
            Outcome::Refused
            | Outcome::ConnectRejected
            | Outcome::ProtocolError
            | Outcome::CodecUnsupported => None,
        }
    }

    pub fn fix(self) -> &'static str {
        match self {
            Outcome::Accepted => "nothing to fix",
            Outcome::ExpiredUrl => {
                "sign a new URL with a later txTime (Tencent advises 12-24 h, longer than a session): pushprobe url --expires-in 24h"
            }
            Outcome::UnsignedUrl => {
                "the domain needs signed URLs: add txSecret and txTime (pushprobe url --domain D --stream S)"
            }
            Outcome::BadSecret => {
                "txSecret must be MD5(key + stream + txTime) with the domain's primary or backup push key: re-sign with pushprobe url"
            }
            Outcome::AlreadyInUse => {
                "another publisher holds this stream: stop it or push to another stream name"
            }
            Outcome::StreamDisabled => {
                "the stream or app is disabled on the ingest: re-enable it in the console"
            }
            Outcome::Refused => {
                "the server refused without saying why: run pushprobe doctor URL with PUSHPROBE_KEY set to check txTime and txSecret"
            }
            Outcome::DnsFailure => {
                "check the push domain's spelling and that it has a CNAME to its Tencent push target (.tlivepush.com)"
            }
            Outcome::ConnectionRefused => {
                "nothing listens on that port: check the host and port (RTMP is 1935, rtmps 443)"
            }
            Outcome::ConnectTimeout => {
                "no answer on the port: a firewall probably blocks outbound 1935; open it or try rtmps on 443"
            }
            Outcome::ConnectFailed => {
                "no address of the host could be reached, each for its own reason (see the evidence): check the network path and the ingest's port on each, or pick one with -4/-6"
            }
            Outcome::TlsFailed => {
                "TLS failed: check the host name matches the certificate, or use --insecure for a self-signed test ingest"
            }
            Outcome::HandshakeFailed => {
                "the server does not speak RTMP on this port: check the port and scheme"
            }
            Outcome::ConnectRejected => {
                "the server refused the RTMP connect: check the app name and the domain (tcUrl)"
            }
            Outcome::ProtocolError => {
                "the server broke the RTMP protocol (see the evidence): check that the URL points at an RTMP ingest, and report the server's behaviour to whoever runs it"
            }
            Outcome::Timeout => {
                "the server stopped answering: check its health and the network path"
            }
            Outcome::Interrupted => {
                "the push was accepted and then cut: see the server status and the ingest's interruption records"
            }
            Outcome::Cancelled => {
                "stopped before the server answered Publish.Start: run it again and let it finish"
            }
            Outcome::TooSlow => {
                "the uplink cannot carry this bitrate: push a lower-bitrate fixture, or use a faster network path"
            }
            Outcome::CodecUnsupported => {
                "this ingest does not take the codec in this framing: try --legacy-codec-id (HEVC as FLV codec id 12, AV1 as 13), or push H.264; enable HEVC/AV1 for the domain if its console offers it"
            }
        }
    }
}

/// What we know locally about the URL and our own publishers.
#[derive(Debug, Clone)]
pub struct LocalFacts {
    /// txTime vs the clock; `None` when the URL has no (valid) txTime.
    pub expiry: Option<Expiry>,
    pub has_tx_time: bool,
    pub has_tx_secret: bool,
    /// Names of the URL's other query parameters (not txSecret, txTime or
    /// txHost): a `token=` or `sign=` may be another auth scheme's signature.
    pub other_params: Vec<String>,
    pub secret: SecretCheck,
    /// Another of our publishers was streaming on this very URL (same
    /// query) at the time: the server accepted that URL's signature and
    /// expiry, so they cannot be why this push was refused.
    pub our_other_publisher: bool,
}

/// The classified result with the evidence that decided it.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub outcome: Outcome,
    /// Each piece of evidence used, wire first, then local facts.
    pub evidence: Vec<String>,
    pub step: Option<u8>,
    pub fix: &'static str,
    /// The phase where the push stopped, if it did not complete.
    pub phase: Option<Phase>,
    /// False when the wire could not tell and no local fact decided.
    pub certain: bool,
}

fn secs(d: std::time::Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Whether the path carried the fixture's bitrate: throughput achieved
/// after Publish.Start against the bitrate needed, and the lag reached.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Uplink {
    pub uplink_kbps: f64,
    pub needed_kbps: f64,
    pub max_lag_ms: f64,
    /// The push fell more than [`LAG_LIMIT`] behind real time.
    pub too_slow: bool,
}

/// The uplink of an accepted push that streamed, for a fixture of `needed_bps`.
pub fn uplink(r: &PublishResult, needed_bps: u64) -> Option<Uplink> {
    let achieved = r.uplink_bps()?;
    let kbps = |bps: u64| (bps as f64 / 100.0).round() / 10.0;
    Some(Uplink {
        uplink_kbps: kbps(achieved),
        needed_kbps: kbps(needed_bps),
        max_lag_ms: (r.max_lag.as_secs_f64() * 1e4).round() / 10.0,
        too_slow: r.max_lag > LAG_LIMIT,
    })
}

impl Verdict {
    /// An accepted push whose uplink was too slow becomes `too_slow`, with
    /// the figures as evidence; any other verdict is kept as it is.
    pub fn judge_uplink(mut self, u: &Uplink) -> Verdict {
        if self.outcome == Outcome::Accepted && u.too_slow {
            self.outcome = Outcome::TooSlow;
            self.step = Outcome::TooSlow.step();
            self.fix = Outcome::TooSlow.fix();
            self.phase = Some(Phase::Streaming);
            self.evidence.push(format!(
                "uplink too slow: {:.0} kbit/s achieved, {:.0} needed, fell {:.1} s behind",
                u.uplink_kbps,
                u.needed_kbps,
                u.max_lag_ms / 1000.0
            ));
        }
        self
    }
}

impl Verdict {
    /// Play-back settles what the connect `_result` could not: a push of
    /// `video` (not H.264) judged `codec_unsupported` only because the server
    /// was silent about its FourCC, and then played back with `video_frames`
    /// and `audio_frames` arriving. Video arriving means the server relays the
    /// codec (accepted); audio alone means it dropped the video (certain).
    pub fn judge_played(
        mut self,
        r: &PublishResult,
        video: Option<PushedVideo>,
        video_frames: u64,
        audio_frames: u64,
    ) -> Verdict {
        let Some(v) = video.filter(|v| v.codec != VideoCodec::H264) else {
            return self;
        };
        if self.outcome != Outcome::CodecUnsupported || self.certain {
            return self;
        }
        if video_frames > 0 && matches!(r.ending, Ending::Completed) {
            self.evidence.push(format!(
                "played back: {video_frames} {} frames arrived, so the server relays {} ({} framing)",
                v.codec, v.codec, v.framing
            ));
            self.outcome = Outcome::Accepted;
            self.fix = Outcome::Accepted.fix();
            self.certain = true;
        } else if video_frames == 0 && audio_frames > 0 {
            self.evidence.push(format!(
                "played back: {audio_frames} audio frames and no video: the server dropped the {} video",
                v.codec
            ));
            self.certain = true;
        }
        self
    }
}

/// The video a push carried, for [`Verdict::judge_codec`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushedVideo {
    pub codec: VideoCodec,
    pub framing: Framing,
}

impl Verdict {
    /// A push of a codec other than H.264 that the server did not take is
    /// `codec_unsupported`, not a generic refusal or cut: refused without a
    /// decided reason, accepted and then cut, or accepted while the connect
    /// `_result` listed FourCCs without ours (certain) or said nothing about
    /// Enhanced RTMP (not certain: nginx-rtmp accepts such a push and drops
    /// its video, node-media-server 4 is silent too and relays it). Other
    /// verdicts are kept.
    pub fn judge_codec(mut self, r: &PublishResult, video: Option<PushedVideo>) -> Verdict {
        let Some(v) = video.filter(|v| v.codec != VideoCodec::H264) else {
            return self;
        };
        let fourcc = v.codec.fourcc_str();
        let pushed = format!("{} ({} framing)", v.codec, v.framing);
        let listed = match (v.framing, &r.server_fourcc) {
            (Framing::Enhanced, Some(reply)) => reply.takes(fourcc),
            _ => None,
        };
        let list = r
            .server_fourcc
            .as_ref()
            .and_then(|f| f.fourcc_list.as_ref())
            .map(|l| l.join(", "))
            .unwrap_or_default();
        // A refusal the server's own words explain stays what they say.
        let worded = match r.failure() {
            Some(Failure::RefusedAfterStart { cause, .. }) => match cause.as_ref() {
                Failure::Rejected { status, .. } => wire_reason(status),
                _ => None,
            },
            Some(Failure::Rejected { status, .. }) => wire_reason(status),
            _ => None,
        };
        let cut_after_start =
            matches!(r.ending, Ending::Interrupted { .. }) || r.refused_after_start();
        let (evidence, certain) = match (self.outcome, listed) {
            (_, Some(true)) => {
                self.evidence
                    .push(format!("the server's connect _result lists {fourcc}"));
                return self;
            }
            (Outcome::CodecUnsupported, _) => (format!("pushed {pushed}"), self.certain),
            _ if worded.is_some() => return self,
            (Outcome::Accepted | Outcome::TooSlow, Some(false)) => (
                format!(
                    "the server's connect _result lists [{list}] without {fourcc}: it does not take {pushed}"
                ),
                true,
            ),
            (Outcome::Accepted | Outcome::TooSlow, None) if v.framing == Framing::Enhanced => (
                format!(
                    "accepted, but the server's connect _result said nothing about {fourcc} (no fourCcList or videoFourCcInfoMap): a server without Enhanced RTMP (nginx-rtmp) accepts {pushed} and drops the video, so players get audio only; play the stream back to confirm"
                ),
                false,
            ),
            _ if cut_after_start => {
                let unlisted = if listed == Some(false) {
                    format!("; its connect _result lists [{list}] without {fourcc}")
                } else {
                    String::new()
                };
                (
                    format!(
                        "accepted, then cut while pushing {pushed}: ingests that do not take a codec close the push at its first video tag{unlisted}"
                    ),
                    listed == Some(false),
                )
            }
            (Outcome::Refused, Some(false)) => (
                format!("refused; the server's connect _result lists [{list}] without {fourcc}"),
                true,
            ),
            _ => return self,
        };
        self.evidence.push(evidence);
        self.outcome = Outcome::CodecUnsupported;
        self.step = None;
        self.fix = Outcome::CodecUnsupported.fix();
        self.certain = certain;
        self
    }
}

/// The words of a status text without the query strings it may echo (the
/// publish name `s?txSecret=..&txTime=..` would read as "secret").
fn words_of(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_query = false;
    for c in text.chars() {
        if c == '?' {
            in_query = true;
        } else if c.is_whitespace() || matches!(c, '"' | '\'' | ',' | ')') {
            in_query = false;
        }
        if !in_query {
            out.push(c);
        }
    }
    out
}

/// Reads a refusal's status text for a reason. Servers word these freely.
fn wire_reason(s: &StatusReply) -> Option<Outcome> {
    let text = words_of(&format!("{} {}", s.code, s.description)).to_ascii_lowercase();
    let has = |w: &[&str]| w.iter().any(|x| text.contains(x));
    if has(&[
        "already publishing",
        "badname",
        "busy",
        "in use",
        "already exists",
    ]) {
        Some(Outcome::AlreadyInUse)
    } else if has(&[
        "no txtime",
        "no txsecret",
        "missing tx",
        "unsigned",
        "not signed",
    ]) {
        Some(Outcome::UnsignedUrl)
    } else if has(&["expired"]) {
        Some(Outcome::ExpiredUrl)
    } else if has(&["secret", "signature", "sign mismatch", "auth"]) {
        Some(Outcome::BadSecret)
    } else if has(&["codec", "fourcc"]) {
        Some(Outcome::CodecUnsupported)
    } else if has(&["disabled", "banned", "forbidden", "not allowed"]) {
        Some(Outcome::StreamDisabled)
    } else {
        None
    }
}

pub fn classify(r: &PublishResult, facts: &LocalFacts) -> Verdict {
    let mut evidence = Vec::new();
    let verdict =
        |outcome: Outcome, evidence: Vec<String>, phase: Option<Phase>, certain: bool| Verdict {
            outcome,
            step: outcome.step(),
            fix: outcome.fix(),
            evidence,
            phase,
            certain,
        };
    let answered = if r.srt.is_some() {
        "SRT listener accepted the streamid and acknowledged our packets"
    } else {
        "server answered NetStream.Publish.Start"
    };
    let failure = match &r.ending {
        Ending::Completed => {
            evidence.push(format!(
                "{answered}; streamed {:.1} s",
                r.streamed.as_secs_f64()
            ));
            return verdict(Outcome::Accepted, evidence, None, true);
        }
        Ending::Cancelled {
            phase: Phase::Streaming,
        } => {
            let of = r
                .planned
                .map(|d| format!(" of {}", secs(d)))
                .unwrap_or_default();
            evidence.push(format!(
                "{answered}; streamed {}{of}, stopped by the user",
                secs(r.streamed)
            ));
            return verdict(Outcome::Accepted, evidence, None, true);
        }
        Ending::Cancelled { phase } => {
            evidence.push(format!(
                "stopped by the user during {} (before NetStream.Publish.Start): the server's answer is unknown",
                phase.name()
            ));
            return verdict(Outcome::Cancelled, evidence, Some(*phase), true);
        }
        Ending::Interrupted { failure } => {
            evidence.push(format!(
                "accepted, then after {:.1} s: {failure}",
                r.streamed.as_secs_f64()
            ));
            return verdict(Outcome::Interrupted, evidence, Some(Phase::Streaming), true);
        }
        Ending::Failed { failure } => failure,
    };
    let phase = Some(failure.phase());
    evidence.push(failure.to_string());
    let wire = |o: Outcome, ev: Vec<String>| verdict(o, ev, phase, true);
    if failure.phase() == Phase::Tcp && r.attempts.len() > 1 {
        evidence.extend(
            r.attempts
                .iter()
                .map(|a| format!("{}: {}", a.addr, a.result)),
        );
    }
    match failure {
        Failure::Dns { .. } => return wire(Outcome::DnsFailure, evidence),
        Failure::TcpRefused | Failure::TcpError { .. } => {
            return wire(Outcome::ConnectionRefused, evidence);
        }
        Failure::TcpTimeout => return wire(Outcome::ConnectTimeout, evidence),
        Failure::TcpMixed { .. } => return wire(Outcome::ConnectFailed, evidence),
        Failure::Tls { .. } => return wire(Outcome::TlsFailed, evidence),
        Failure::Timeout {
            phase: Phase::Handshake,
        } if r.srt.is_some() => {
            if let Some(a) = r.remote_addr {
                evidence.push(format!(
                    "no SRT answer from {a}: nothing listens on UDP port {}, or a firewall drops UDP",
                    a.port()
                ));
            }
            return wire(Outcome::Timeout, evidence);
        }
        Failure::Timeout { .. } => return wire(Outcome::Timeout, evidence),
        _ => {}
    }
    match (failure.phase(), failure) {
        (Phase::Handshake, _) => return wire(Outcome::HandshakeFailed, evidence),
        // Malformed server data is no refusal: never blame the URL for it.
        (_, Failure::Protocol { .. }) => return wire(Outcome::ProtocolError, evidence),
        (Phase::Connect, _) => return wire(Outcome::ConnectRejected, evidence),
        _ => {}
    }
    // Refused at createStream or publish (or just after Publish.Start):
    // first what the server said...
    let said = match failure {
        Failure::RefusedAfterStart { cause, .. } => cause.as_ref(),
        f => f,
    };
    if let Failure::Rejected { status, .. } = said
        && let Some(code) = srt_reject_code(status)
    {
        return srt_refusal(code, facts, evidence, phase);
    }
    if let Failure::Rejected { status, .. } = said
        && let Some(o) = wire_reason(status)
    {
        evidence.push(format!(
            "the server's words name the reason: {:?}",
            status.description
        ));
        return wire(o, evidence);
    }
    // ...then local facts, in the checklist's order.
    refusal_from_facts(facts, evidence, phase)
}

/// The libsrt code of an SRT listener's rejection (see
/// `srt::publish::rejection_failure`), `None` for RTMP statuses.
fn srt_reject_code(s: &StatusReply) -> Option<i32> {
    s.code.strip_prefix("SRT_REJ ")?.parse().ok()
}

/// An SRT access-control rejection: 1409 (conflict) says the stream is
/// busy; other codes (1401 unauthorized, 1403 forbidden, ...) are weighed
/// with the same local facts as an RTMP refusal.
fn srt_refusal(
    code: i32,
    facts: &LocalFacts,
    mut evidence: Vec<String>,
    phase: Option<Phase>,
) -> Verdict {
    if code == 1409 {
        evidence
            .push("SRT code 1409 (conflict) means the stream is held by another publisher".into());
        if facts.our_other_publisher {
            evidence.push("another of our publishers was streaming on this very URL".into());
        }
        return Verdict {
            outcome: Outcome::AlreadyInUse,
            step: Outcome::AlreadyInUse.step(),
            fix: Outcome::AlreadyInUse.fix(),
            evidence,
            phase,
            certain: true,
        };
    }
    refusal_from_facts(facts, evidence, phase)
}

fn refusal_from_facts(
    facts: &LocalFacts,
    mut evidence: Vec<String>,
    phase: Option<Phase>,
) -> Verdict {
    let decided = |o: Outcome, evidence: Vec<String>| Verdict {
        outcome: o,
        step: o.step(),
        fix: o.fix(),
        evidence,
        phase,
        certain: true,
    };
    // Our own publisher streams on this very URL: the server accepted its
    // signature and expiry, so only the stream being busy is left.
    if facts.our_other_publisher {
        evidence.push(
            "another of our publishers was streaming on this very URL, so its signature and expiry were accepted".into(),
        );
        return decided(Outcome::AlreadyInUse, evidence);
    }
    if let Some(Expiry::Expired(ago)) = facts.expiry {
        evidence.push(format!(
            "txTime expired {} ago",
            crate::clock::human_rounded(ago)
        ));
        return decided(Outcome::ExpiredUrl, evidence);
    }
    if !facts.has_tx_time || !facts.has_tx_secret {
        let missing = match (facts.has_tx_secret, facts.has_tx_time) {
            (false, false) => "txSecret and txTime",
            (false, true) => "txSecret",
            _ => "txTime",
        };
        evidence.push(format!("the URL has no {missing}"));
        if !facts.has_tx_time && !facts.has_tx_secret && !facts.other_params.is_empty() {
            // Signed for another scheme (`token=`, `sign=`): whether that
            // signature or something else was refused, nothing here says.
            evidence.push(format!(
                "but it carries other query parameters ({}), perhaps another auth scheme's signature: the wire cannot tell why it was refused",
                facts.other_params.join(", ")
            ));
            return Verdict {
                outcome: Outcome::Refused,
                step: None,
                fix: Outcome::Refused.fix(),
                evidence,
                phase,
                certain: false,
            };
        }
        return decided(Outcome::UnsignedUrl, evidence);
    }
    if facts.secret == SecretCheck::Mismatch {
        evidence.push("txSecret matches neither PUSHPROBE_KEY nor PUSHPROBE_BACKUP_KEY".into());
        return decided(Outcome::BadSecret, evidence);
    }
    match facts.secret {
        SecretCheck::Primary | SecretCheck::Backup => {
            evidence.push("txTime is valid and txSecret is signed right".into());
            evidence.push(
                "so the stream is probably in use by another client or disabled; the wire cannot tell which".into(),
            );
        }
        _ => evidence.push(
            "the wire cannot tell an expired URL, a wrong txSecret, a stream in use or a disabled stream apart; set PUSHPROBE_KEY to check the signature".into(),
        ),
    }
    Verdict {
        outcome: Outcome::Refused,
        step: None,
        fix: Outcome::Refused.fix(),
        evidence,
        phase,
        certain: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::PhaseMarks;
    use std::time::Duration;

    fn result(ending: Ending) -> PublishResult {
        PublishResult {
            ending,
            marks: PhaseMarks::default(),
            statuses: vec![],
            bytes_sent: 0,
            media_ms: 0,
            streamed: Duration::from_secs(3),
            max_lag: Duration::ZERO,
            publish_sent: None,
            stream_bytes: 0,
            planned: Some(Duration::from_secs(30)),
            remote_addr: None,
            attempts: vec![],
            forced: None,
            srt: None,
            server_fourcc: None,
            pushed_fourcc: None,
        }
    }

    fn after_start(ms: u64, cause: Failure) -> PublishResult {
        failed(Failure::RefusedAfterStart {
            after_start_ms: ms,
            cause: Box::new(cause),
        })
    }

    fn closed_streaming() -> Failure {
        Failure::Closed {
            phase: Phase::Streaming,
            after_publish_ms: Some(4),
        }
    }

    fn failed(f: Failure) -> PublishResult {
        result(Ending::Failed { failure: f })
    }

    fn closed_after_publish() -> Failure {
        Failure::Closed {
            phase: Phase::Publish,
            after_publish_ms: Some(3),
        }
    }

    fn rejected(code: &str, desc: &str) -> Failure {
        Failure::Rejected {
            phase: Phase::Publish,
            status: StatusReply {
                code: code.into(),
                level: "error".into(),
                description: desc.into(),
            },
        }
    }

    fn good_facts() -> LocalFacts {
        LocalFacts {
            expiry: Some(Expiry::Valid(86_400)),
            has_tx_time: true,
            has_tx_secret: true,
            other_params: vec![],
            secret: SecretCheck::NoKey,
            our_other_publisher: false,
        }
    }

    #[test]
    fn table() {
        let expired = LocalFacts {
            expiry: Some(Expiry::Expired(7200)),
            ..good_facts()
        };
        let unsigned = LocalFacts {
            expiry: None,
            has_tx_time: false,
            has_tx_secret: false,
            secret: SecretCheck::NoTxTime,
            ..good_facts()
        };
        let mis_signed = LocalFacts {
            secret: SecretCheck::Mismatch,
            ..good_facts()
        };
        let ours = LocalFacts {
            our_other_publisher: true,
            ..good_facts()
        };
        let mis_signed = &mis_signed;
        let signed = LocalFacts {
            secret: SecretCheck::Primary,
            ..good_facts()
        };
        // issue 10: a duplicate refused by an unsigned ingest; our first push
        // on the very same URL was accepted, so the URL is not the reason.
        let ours_unsigned = LocalFacts {
            expiry: None,
            has_tx_time: false,
            has_tx_secret: false,
            other_params: vec![],
            secret: SecretCheck::NoTxTime,
            our_other_publisher: true,
        };
        let ours_mis_signed_expired = LocalFacts {
            expiry: Some(Expiry::Expired(60)),
            secret: SecretCheck::Mismatch,
            our_other_publisher: true,
            ..good_facts()
        };
        // Issue 11 (interop): a URL signed for another scheme (`token=`),
        // refused silently: nothing decides why.
        let foreign_token = LocalFacts {
            other_params: vec!["token".into()],
            ..unsigned.clone()
        };
        let cases: Vec<(PublishResult, LocalFacts, Outcome, bool)> = vec![
            (
                failed(closed_after_publish()),
                foreign_token.clone(),
                Outcome::Refused,
                false,
            ),
            (
                failed(closed_after_publish()),
                unsigned.clone(),
                Outcome::UnsignedUrl,
                true,
            ),
            // issue 10 part 1: cancelled is never accepted before Publish.Start.
            (
                result(Ending::Cancelled {
                    phase: Phase::Handshake,
                }),
                good_facts(),
                Outcome::Cancelled,
                true,
            ),
            (
                result(Ending::Cancelled { phase: Phase::Tcp }),
                expired.clone(),
                Outcome::Cancelled,
                true,
            ),
            (
                result(Ending::Cancelled {
                    phase: Phase::Publish,
                }),
                good_facts(),
                Outcome::Cancelled,
                true,
            ),
            (
                result(Ending::Cancelled {
                    phase: Phase::Streaming,
                }),
                good_facts(),
                Outcome::Accepted,
                true,
            ),
            // issue 10 part 3: Publish.Start then a close is a refusal,
            // classified like any other.
            (
                after_start(1, closed_streaming()),
                good_facts(),
                Outcome::Refused,
                false,
            ),
            (
                after_start(3, closed_streaming()),
                expired.clone(),
                Outcome::ExpiredUrl,
                true,
            ),
            (
                after_start(
                    50,
                    Failure::Reset {
                        phase: Phase::Streaming,
                        after_publish_ms: Some(52),
                    },
                ),
                mis_signed.clone(),
                Outcome::BadSecret,
                true,
            ),
            (
                after_start(
                    5,
                    Failure::Rejected {
                        phase: Phase::Streaming,
                        status: StatusReply {
                            code: "NetStream.Publish.BadName".into(),
                            level: "error".into(),
                            description: "Already publishing".into(),
                        },
                    },
                ),
                expired.clone(),
                Outcome::AlreadyInUse,
                true,
            ),
            (
                after_start(1, closed_streaming()),
                ours_unsigned.clone(),
                Outcome::AlreadyInUse,
                true,
            ),
            (
                failed(closed_after_publish()),
                ours_unsigned,
                Outcome::AlreadyInUse,
                true,
            ),
            (
                failed(closed_after_publish()),
                ours_mis_signed_expired,
                Outcome::AlreadyInUse,
                true,
            ),
            (
                // the server's words still come first
                after_start(
                    5,
                    Failure::Rejected {
                        phase: Phase::Streaming,
                        status: StatusReply {
                            code: "NetStream.Publish.Denied".into(),
                            level: "error".into(),
                            description: "stream disabled".into(),
                        },
                    },
                ),
                ours.clone(),
                Outcome::StreamDisabled,
                true,
            ),
            (
                result(Ending::Completed),
                good_facts(),
                Outcome::Accepted,
                true,
            ),
            (
                result(Ending::Interrupted {
                    failure: Failure::Closed {
                        phase: Phase::Streaming,
                        after_publish_ms: Some(3000),
                    },
                }),
                good_facts(),
                Outcome::Interrupted,
                true,
            ),
            (
                failed(Failure::Dns {
                    detail: "NXDOMAIN".into(),
                }),
                good_facts(),
                Outcome::DnsFailure,
                true,
            ),
            (
                failed(Failure::TcpRefused),
                good_facts(),
                Outcome::ConnectionRefused,
                true,
            ),
            (
                failed(Failure::TcpTimeout),
                good_facts(),
                Outcome::ConnectTimeout,
                true,
            ),
            (
                failed(Failure::TcpMixed {
                    attempts: vec![
                        crate::publish::dial::AddrError {
                            addr: "[::1]:1935".parse().unwrap(),
                            error: "refused".into(),
                        },
                        crate::publish::dial::AddrError {
                            addr: "127.0.0.1:1935".parse().unwrap(),
                            error: "timed out".into(),
                        },
                    ],
                }),
                good_facts(),
                Outcome::ConnectFailed,
                true,
            ),
            (
                failed(Failure::Tls {
                    detail: "bad cert".into(),
                }),
                good_facts(),
                Outcome::TlsFailed,
                true,
            ),
            (
                failed(Failure::Timeout {
                    phase: Phase::Publish,
                }),
                expired.clone(),
                Outcome::Timeout,
                true,
            ),
            (
                failed(Failure::Protocol {
                    phase: Phase::Handshake,
                    detail: "bad version".into(),
                }),
                good_facts(),
                Outcome::HandshakeFailed,
                true,
            ),
            (
                failed(Failure::Closed {
                    phase: Phase::Connect,
                    after_publish_ms: None,
                }),
                good_facts(),
                Outcome::ConnectRejected,
                true,
            ),
            (
                failed(Failure::Protocol {
                    phase: Phase::Connect,
                    detail: "peer set chunk size 0".into(),
                }),
                good_facts(),
                Outcome::ProtocolError,
                true,
            ),
            (
                // issue 7: a malformed createStream result with an unsigned URL
                // was blamed on the URL.
                failed(Failure::Protocol {
                    phase: Phase::CreateStream,
                    detail: "createStream result has no stream id".into(),
                }),
                expired.clone(),
                Outcome::ProtocolError,
                true,
            ),
            (
                failed(closed_after_publish()),
                expired.clone(),
                Outcome::ExpiredUrl,
                true,
            ),
            (
                failed(closed_after_publish()),
                unsigned,
                Outcome::UnsignedUrl,
                true,
            ),
            (
                failed(closed_after_publish()),
                mis_signed.clone(),
                Outcome::BadSecret,
                true,
            ),
            (
                failed(closed_after_publish()),
                ours,
                Outcome::AlreadyInUse,
                true,
            ),
            (
                failed(closed_after_publish()),
                good_facts(),
                Outcome::Refused,
                false,
            ),
            (
                failed(closed_after_publish()),
                signed,
                Outcome::Refused,
                false,
            ),
            (
                failed(rejected("NetStream.Publish.BadName", "Already publishing")),
                expired.clone(),
                Outcome::AlreadyInUse,
                true,
            ),
            (
                failed(rejected("NetStream.Publish.Denied", "txTime expired")),
                good_facts(),
                Outcome::ExpiredUrl,
                true,
            ),
            (
                failed(rejected("NetStream.Publish.Denied", "no txTime")),
                expired.clone(),
                Outcome::UnsignedUrl,
                true,
            ),
            (
                failed(rejected("NetStream.Publish.Denied", "stream disabled")),
                good_facts(),
                Outcome::StreamDisabled,
                true,
            ),
            (
                failed(rejected("NetStream.Publish.Denied", "no")),
                expired.clone(),
                Outcome::ExpiredUrl,
                true,
            ),
            (
                // issue 7: a server echoing the publish name; "txSecret" in
                // the query is no word of the server's.
                failed(rejected(
                    "NetStream.Publish.Denied",
                    "publish s?txSecret=00ff&txTime=FFFFFFFF denied",
                )),
                good_facts(),
                Outcome::Refused,
                false,
            ),
            (
                failed(rejected(
                    "NetStream.Publish.Denied",
                    "publish 's?txSecret=00&txTime=1' denied: stream disabled",
                )),
                expired,
                Outcome::StreamDisabled,
                true,
            ),
        ];
        for (i, (r, facts, want, certain)) in cases.into_iter().enumerate() {
            let v = classify(&r, &facts);
            assert_eq!(v.outcome, want, "case {i}: {:?}", v.evidence);
            assert_eq!(v.certain, certain, "case {i}");
            assert!(!v.evidence.is_empty(), "case {i} has evidence");
            assert_eq!(v.step, want.step());
        }
    }

    #[test]
    fn evidence_names_timing_and_local_fact() {
        let facts = LocalFacts {
            expiry: Some(Expiry::Expired(7200)),
            ..good_facts()
        };
        let v = classify(&failed(closed_after_publish()), &facts);
        assert_eq!(
            v.evidence,
            vec![
                "server closed the connection 3 ms after publish (phase publish)".to_string(),
                "txTime expired 2 h ago".to_string()
            ]
        );
        assert_eq!(v.step, Some(3));
    }

    #[test]
    fn evidence_of_a_cancel_names_the_phase_or_the_time_streamed() {
        let v = classify(
            &result(Ending::Cancelled {
                phase: Phase::Handshake,
            }),
            &good_facts(),
        );
        assert_eq!(v.phase, Some(Phase::Handshake));
        assert!(v.evidence[0].contains("stopped by the user during handshake"));
        assert!(
            !v.evidence[0].contains("Publish.Start;"),
            "{:?}",
            v.evidence
        );
        let v = classify(
            &result(Ending::Cancelled {
                phase: Phase::Streaming,
            }),
            &good_facts(),
        );
        assert_eq!(
            v.evidence,
            vec![
                "server answered NetStream.Publish.Start; streamed 3.0 s of 30.0 s, stopped by the user"
                    .to_string()
            ]
        );
    }

    #[test]
    fn evidence_of_a_refusal_after_start() {
        let v = classify(&after_start(3, closed_streaming()), &good_facts());
        assert_eq!(v.phase, Some(Phase::Publish));
        assert_eq!(
            v.evidence[0],
            "server answered Publish.Start, then it closed the connection 3 ms later: a refusal after start"
        );
    }

    #[test]
    fn uplink_below_the_bitrate_is_too_slow() {
        let mut r = result(Ending::Completed);
        r.marks
            .done
            .push((Phase::Publish, Duration::from_millis(5)));
        r.streamed = Duration::from_secs(4);
        r.stream_bytes = 150_000; // 300 kbit/s
        r.max_lag = Duration::from_millis(2400);
        let u = uplink(&r, 517_000).unwrap();
        assert_eq!(u.uplink_kbps, 300.0);
        assert_eq!(u.needed_kbps, 517.0);
        assert_eq!(u.max_lag_ms, 2400.0);
        assert!(u.too_slow);
        let v = classify(&r, &good_facts()).judge_uplink(&u);
        assert_eq!(v.outcome, Outcome::TooSlow);
        assert_eq!(
            v.evidence.last().unwrap(),
            "uplink too slow: 300 kbit/s achieved, 517 needed, fell 2.4 s behind"
        );
        // A second of lag or less keeps it accepted; a refusal stays one.
        r.max_lag = Duration::from_millis(900);
        let u = uplink(&r, 517_000).unwrap();
        assert!(!u.too_slow);
        assert_eq!(
            classify(&r, &good_facts()).judge_uplink(&u).outcome,
            Outcome::Accepted
        );
        let refused = failed(closed_after_publish());
        assert!(uplink(&refused, 517_000).is_none());
        let lagging = Uplink {
            too_slow: true,
            ..u
        };
        assert_eq!(
            classify(&refused, &good_facts())
                .judge_uplink(&lagging)
                .outcome,
            Outcome::Refused
        );
    }

    #[test]
    fn names_are_snake_case_json() {
        for o in Outcome::ALL {
            assert_eq!(
                serde_json::to_string(&o).unwrap(),
                format!("\"{}\"", o.name())
            );
        }
    }

    /// Issue 17: an SRT listener's access-control code feeds the same local
    /// facts as an RTMP refusal.
    #[test]
    fn srt_rejections_weigh_the_local_facts() {
        let srt = |wire: i32| {
            let mut r = failed(crate::srt::publish::rejection_failure(
                crate::srt::caller::Rejection::from_wire(wire),
            ));
            r.srt = Some(Default::default());
            r
        };
        let expired = LocalFacts {
            expiry: Some(Expiry::Expired(60)),
            ..good_facts()
        };
        assert_eq!(classify(&srt(2401), &expired).outcome, Outcome::ExpiredUrl);
        let mismatch = LocalFacts {
            secret: SecretCheck::Mismatch,
            ..good_facts()
        };
        let v = classify(&srt(2401), &mismatch);
        assert_eq!(v.outcome, Outcome::BadSecret);
        assert_eq!(v.step, Some(4));
        assert!(
            v.evidence[0].contains("1401 unauthorized"),
            "{:?}",
            v.evidence
        );
        let v = classify(&srt(2409), &good_facts());
        assert_eq!((v.outcome, v.certain), (Outcome::AlreadyInUse, true));
        let ours = LocalFacts {
            our_other_publisher: true,
            ..good_facts()
        };
        assert_eq!(classify(&srt(2403), &ours).outcome, Outcome::AlreadyInUse);
        let v = classify(&srt(2403), &good_facts());
        assert_eq!((v.outcome, v.certain), (Outcome::Refused, false));
        // A core rejection fails the handshake.
        assert_eq!(
            classify(&srt(1008), &good_facts()).outcome,
            Outcome::HandshakeFailed
        );
        // No answer at all names UDP.
        let mut r = failed(Failure::Timeout {
            phase: Phase::Handshake,
        });
        r.srt = Some(Default::default());
        r.remote_addr = Some("127.0.0.1:9000".parse().unwrap());
        let v = classify(&r, &good_facts());
        assert_eq!(v.outcome, Outcome::Timeout);
        assert!(
            v.evidence.iter().any(|e| e.contains("UDP port 9000")),
            "{:?}",
            v.evidence
        );
    }

    /// Issue 14: play-back settles a codec verdict the connect _result left open.
    #[test]
    fn played_back_video_settles_a_silent_result() {
        let hevc = Some(PushedVideo {
            codec: VideoCodec::Hevc,
            framing: Framing::Enhanced,
        });
        let mut r = result(Ending::Completed);
        r.server_fourcc = Some(Box::default());
        let open = classify(&r, &good_facts()).judge_codec(&r, hevc);
        assert_eq!(
            (open.outcome, open.certain),
            (Outcome::CodecUnsupported, false)
        );
        // Video came back (node-media-server): accepted, certain.
        let v = open.clone().judge_played(&r, hevc, 120, 200);
        assert_eq!((v.outcome, v.certain), (Outcome::Accepted, true));
        assert!(
            v.evidence
                .iter()
                .any(|e| e.contains("120 hevc frames arrived")),
            "{v:?}"
        );
        // Audio only (nginx-rtmp): codec_unsupported, now certain.
        let v = open.clone().judge_played(&r, hevc, 0, 200);
        assert_eq!((v.outcome, v.certain), (Outcome::CodecUnsupported, true));
        assert!(v.evidence.iter().any(|e| e.contains("no video")), "{v:?}");
        // Nothing came back: still open.
        let v = open.judge_played(&r, hevc, 0, 0);
        assert_eq!((v.outcome, v.certain), (Outcome::CodecUnsupported, false));
    }

    /// Issue 14: a codec the server does not take is named as such.
    #[test]
    fn codec_unsupported_verdicts() {
        use crate::rtmp::message::FourCcReply;
        let hevc = Some(PushedVideo {
            codec: VideoCodec::Hevc,
            framing: Framing::Enhanced,
        });
        let legacy_hevc = Some(PushedVideo {
            codec: VideoCodec::Hevc,
            framing: Framing::Legacy,
        });
        let h264 = Some(PushedVideo {
            codec: VideoCodec::H264,
            framing: Framing::Legacy,
        });
        let judge = |r: &PublishResult, v| classify(r, &good_facts()).judge_codec(r, v);
        let with = |mut r: PublishResult, reply: FourCcReply| {
            r.server_fourcc = Some(Box::new(reply));
            r
        };
        let silent = FourCcReply::default();
        let lists = |l: &[&str]| FourCcReply {
            fourcc_list: Some(l.iter().map(|s| s.to_string()).collect()),
            ..FourCcReply::default()
        };
        // Accepted, _result silent: codec_unsupported, not certain, says why.
        let v = judge(&with(result(Ending::Completed), silent.clone()), hevc);
        assert_eq!((v.outcome, v.certain), (Outcome::CodecUnsupported, false));
        assert!(
            v.evidence
                .iter()
                .any(|e| e.contains("said nothing about hvc1")),
            "{v:?}"
        );
        assert!(v.fix.contains("--legacy-codec-id") && v.fix.contains("H.264"));
        // Accepted, _result lists others: certain.
        let v = judge(&with(result(Ending::Completed), lists(&["av01"])), hevc);
        assert_eq!((v.outcome, v.certain), (Outcome::CodecUnsupported, true));
        assert!(
            v.evidence.iter().any(|e| e.contains("[av01] without hvc1")),
            "{v:?}"
        );
        // Accepted and listed (or "*"): accepted, with the evidence.
        for reply in [lists(&["hvc1"]), lists(&["*"])] {
            let v = judge(&with(result(Ending::Completed), reply), hevc);
            assert_eq!(v.outcome, Outcome::Accepted, "{v:?}");
            assert!(v.evidence.iter().any(|e| e.contains("lists hvc1")));
        }
        // Accepted and cut, in either framing.
        let cut = result(Ending::Interrupted {
            failure: closed_streaming(),
        });
        for video in [hevc, legacy_hevc] {
            let v = judge(&with(cut.clone(), silent.clone()), video);
            assert_eq!(v.outcome, Outcome::CodecUnsupported, "{v:?}");
            assert!(
                v.evidence
                    .iter()
                    .any(|e| e.contains("cut while pushing hevc"))
            );
        }
        // Refused right after Publish.Start, reason unknown: the codec.
        let refused = with(after_start(4, closed_streaming()), silent.clone());
        assert_eq!(judge(&refused, hevc).outcome, Outcome::CodecUnsupported);
        // The server's words say codec: certain from the wire.
        let said = after_start(
            4,
            rejected(
                "NetStream.Publish.Rejected",
                "video codec hevc not accepted",
            ),
        );
        let v = judge(&said, legacy_hevc);
        assert_eq!((v.outcome, v.certain), (Outcome::CodecUnsupported, true));
        // A decided refusal stays what it is; H.264 and no video are untouched.
        let expired = judge(
            &failed(rejected("NetStream.Publish.Rejected", "txTime expired")),
            hevc,
        );
        assert_eq!(expired.outcome, Outcome::ExpiredUrl);
        let legacy_accepted = judge(
            &with(result(Ending::Completed), silent.clone()),
            legacy_hevc,
        );
        assert_eq!(legacy_accepted.outcome, Outcome::Accepted);
        for video in [h264, None] {
            assert_eq!(
                judge(&with(cut.clone(), silent.clone()), video).outcome,
                Outcome::Interrupted
            );
        }
    }
}
