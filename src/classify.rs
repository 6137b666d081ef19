//! Why a push failed, in the terms of Tencent's troubleshooting checklist.
//! Pure: (wire evidence from a `PublishResult`, local facts) -> `Verdict`.

use serde::Serialize;

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
    TlsFailed,
    HandshakeFailed,
    ConnectRejected,
    /// The server sent RTMP we cannot accept (bad chunk size, short command...).
    ProtocolError,
    Timeout,
    Interrupted,
}

impl Outcome {
    pub const ALL: [Outcome; 16] = [
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
        Outcome::TlsFailed,
        Outcome::HandshakeFailed,
        Outcome::ConnectRejected,
        Outcome::ProtocolError,
        Outcome::Timeout,
        Outcome::Interrupted,
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
            Outcome::TlsFailed => "tls_failed",
            Outcome::HandshakeFailed => "handshake_failed",
            Outcome::ConnectRejected => "connect_rejected",
            Outcome::ProtocolError => "protocol_error",
            Outcome::Timeout => "timeout",
            Outcome::Interrupted => "interrupted",
        }
    }

    /// The step of Tencent's push checklist (seeds 000/001) this outcome points at.
    pub fn step(self) -> Option<u8> {
        match self {
            Outcome::Accepted | Outcome::Interrupted => None,
            Outcome::DnsFailure => Some(1),
            Outcome::ConnectionRefused
            | Outcome::ConnectTimeout
            | Outcome::TlsFailed
            | Outcome::HandshakeFailed
            | Outcome::Timeout => Some(2),
            Outcome::ExpiredUrl => Some(3),
            Outcome::UnsignedUrl | Outcome::BadSecret => Some(4),
            Outcome::AlreadyInUse | Outcome::StreamDisabled => Some(5),
            Outcome::Refused | Outcome::ConnectRejected | Outcome::ProtocolError => None,
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
    pub secret: SecretCheck,
    /// Another of our publishers held the same stream at the time.
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

fn human_secs(s: u64) -> String {
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{} h", s / 3600),
        _ => format!("{} days", s / 86_400),
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
    let failure = match &r.ending {
        Ending::Completed => {
            evidence.push(format!(
                "server answered NetStream.Publish.Start; streamed {:.1} s",
                r.streamed.as_secs_f64()
            ));
            return verdict(Outcome::Accepted, evidence, None, true);
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
    match failure {
        Failure::Dns { .. } => return wire(Outcome::DnsFailure, evidence),
        Failure::TcpRefused | Failure::TcpError { .. } => {
            return wire(Outcome::ConnectionRefused, evidence);
        }
        Failure::TcpTimeout => return wire(Outcome::ConnectTimeout, evidence),
        Failure::Tls { .. } => return wire(Outcome::TlsFailed, evidence),
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
    // Refused at createStream or publish: first what the server said...
    if let Failure::Rejected { status, .. } = failure
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
    if let Some(Expiry::Expired(ago)) = facts.expiry {
        evidence.push(format!("txTime expired {} ago", human_secs(ago)));
        return decided(Outcome::ExpiredUrl, evidence);
    }
    if !facts.has_tx_time || !facts.has_tx_secret {
        let missing = match (facts.has_tx_secret, facts.has_tx_time) {
            (false, false) => "txSecret and txTime",
            (false, true) => "txSecret",
            _ => "txTime",
        };
        evidence.push(format!("the URL has no {missing}"));
        return decided(Outcome::UnsignedUrl, evidence);
    }
    if facts.secret == SecretCheck::Mismatch {
        evidence.push("txSecret matches neither PUSHPROBE_KEY nor PUSHPROBE_BACKUP_KEY".into());
        return decided(Outcome::BadSecret, evidence);
    }
    if facts.our_other_publisher {
        evidence.push("another of our publishers was streaming to this stream".into());
        return decided(Outcome::AlreadyInUse, evidence);
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
        let signed = LocalFacts {
            secret: SecretCheck::Primary,
            ..good_facts()
        };
        let cases: Vec<(PublishResult, LocalFacts, Outcome, bool)> = vec![
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
                mis_signed,
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
    fn names_are_snake_case_json() {
        for o in Outcome::ALL {
            assert_eq!(
                serde_json::to_string(&o).unwrap(),
                format!("\"{}\"", o.name())
            );
        }
    }
}
