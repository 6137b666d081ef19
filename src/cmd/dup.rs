//! `pushprobe dup [URL]`: verifies that a second push to a URL already in use
//! is refused while the first keeps streaming, with no interruption and no lag.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::push::{self, Prepared};
use super::smoke::Embedded;
use crate::classify::{self, Verdict};
use crate::cli::{PushOptions, now_unix, parse_duration};
use crate::ingest::IngestConfig;
use crate::publish::{self, Observer, Phase, PublishResult};
use crate::sign;

#[derive(Debug, clap::Args)]
pub struct DupArgs {
    /// Push URL; without one, an embedded ingest on loopback is the target.
    pub url: Option<String>,
    /// How long the first publisher must keep streaming.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub hold: Duration,
    #[command(flatten)]
    pub push: PushOptions,
    #[arg(long)]
    pub json: bool,
}

/// What a dup run found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DupFinding {
    /// B was refused and A streamed through the hold: pass.
    Refused,
    /// A never got to Publish.Start.
    FirstNeverStarted,
    /// B was accepted while A kept streaming.
    AcceptedAlongside,
    /// B was accepted and A was cut off.
    Replaced,
    /// B was refused but A was interrupted anyway.
    FirstInterrupted,
    /// B was refused, A completed, but A fell behind real time by a second or more.
    FirstLagged,
}

impl DupFinding {
    pub fn passed(self) -> bool {
        self == DupFinding::Refused
    }
    pub fn describe(self) -> &'static str {
        match self {
            DupFinding::Refused => {
                "the second push was refused and the first kept streaming: duplicates are rejected"
            }
            DupFinding::FirstNeverStarted => {
                "the first push never got going, so nothing was tested"
            }
            DupFinding::AcceptedAlongside => {
                "the second push was ACCEPTED while the first kept streaming: two publishers on one URL"
            }
            DupFinding::Replaced => "the second push REPLACED the first (the first was cut off)",
            DupFinding::FirstInterrupted => {
                "the second push was refused, but the first was interrupted anyway"
            }
            DupFinding::FirstLagged => {
                "the second push was refused, but the first fell behind real time by 1 s or more"
            }
        }
    }
}

/// Pure: what happened, from the two results.
pub fn judge(a: &PublishResult, b: &PublishResult) -> DupFinding {
    let a_completed = a.accepted() && a.failure().is_none();
    match (a.accepted(), b.accepted(), a_completed) {
        (false, _, _) => DupFinding::FirstNeverStarted,
        (true, true, true) => DupFinding::AcceptedAlongside,
        (true, true, false) => DupFinding::Replaced,
        (true, false, false) => DupFinding::FirstInterrupted,
        (true, false, true) if a.max_lag >= Duration::from_secs(1) => DupFinding::FirstLagged,
        (true, false, true) => DupFinding::Refused,
    }
}

struct Started(Option<oneshot::Sender<()>>);

impl Observer for Started {
    fn phase(&mut self, phase: Phase, _at: Instant) {
        if phase == Phase::Publish
            && let Some(tx) = self.0.take()
        {
            let _ = tx.send(());
        }
    }
}

pub async fn run(args: &DupArgs) -> anyhow::Result<ExitCode> {
    let embedded = match &args.url {
        Some(_) => None,
        None => Some(Embedded::start(IngestConfig::default()).await?),
    };
    let url = match (&args.url, &embedded) {
        (Some(u), _) => u.clone(),
        (None, Some(e)) => e.url("dup", now_unix() + 24 * 3600)?,
        (None, None) => unreachable!("an embedded ingest exists when no URL is given"),
    };
    let mut a = push::prepare(&url, &args.push, args.hold).context("cannot start the dup test")?;
    if let Some(e) = &embedded {
        a.keys = e.keys();
    }
    a.config.duration = Some(args.hold);
    let mut b = Prepared {
        url: a.url.clone(),
        keys: a.keys.clone(),
        plan: a.plan.clone(),
        config: a.config.clone(),
        fixture_name: a.fixture_name.clone(),
    };
    b.config.duration = Some((args.hold / 3).clamp(Duration::from_secs(1), Duration::from_secs(3)));
    let cancel = push::cancel_on_signal();
    let report = run_pair(&a, &b, &cancel).await;
    let mut out = std::io::stdout().lock();
    let show = args.push.show_secrets;
    if args.json {
        let one = |p: &Prepared, r: &PublishResult, v: &Verdict| push::result_json(p, r, v, show);
        let v = json!({
            "verdict": if report.finding.passed() { "pass" } else { "fail" },
            "finding": report.finding,
            "detail": report.finding.describe(),
            "first": one(&a, &report.a, &report.va),
            "second": report.b.as_ref().map(|(r, v)| one(&b, r, v)),
        });
        writeln!(out, "{v}")?;
    } else {
        // Evidence quotes the server, which may echo the stream's query.
        let evidence = |v: &Verdict| {
            let e = v.evidence.join("; ");
            if show { e } else { sign::redact_query_in(&e) }
        };
        writeln!(
            out,
            "first     {} ({})",
            report.va.outcome.name(),
            evidence(&report.va)
        )?;
        if let Some((_, v)) = &report.b {
            writeln!(out, "second    {} ({})", v.outcome.name(), evidence(v))?;
        }
        let verdict = if report.finding.passed() {
            "PASS"
        } else {
            "FAIL"
        };
        writeln!(out, "verdict   {verdict}: {}", report.finding.describe())?;
    }
    if let Some(e) = embedded {
        let _ = e.ingest.shutdown().await;
    }
    Ok(if report.finding.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub struct PairReport {
    pub finding: DupFinding,
    pub a: PublishResult,
    pub va: Verdict,
    pub b: Option<(PublishResult, Verdict)>,
}

/// Runs A; once A streams (plus a second), runs B to the same URL; waits for A.
pub async fn run_pair(a: &Prepared, b: &Prepared, cancel: &CancellationToken) -> PairReport {
    let (tx, rx) = oneshot::channel();
    let first = async {
        let mut obs = Started(Some(tx));
        publish::publish(&a.config, &a.plan, cancel, &mut obs).await
    };
    let second = async {
        // Err: A ended before Publish.Start.
        rx.await.ok()?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let r = publish::publish(&b.config, &b.plan, cancel, &mut ()).await;
        let facts = push::local_facts(&b.url, &b.keys, now_unix(), true);
        let v = classify::classify(&r, &facts);
        Some((r, v))
    };
    let (a_result, second) = tokio::join!(first, second);
    let va = classify::classify(
        &a_result,
        &push::local_facts(&a.url, &a.keys, now_unix(), false),
    );
    let finding = match &second {
        Some((b_result, _)) => judge(&a_result, b_result),
        None => DupFinding::FirstNeverStarted,
    };
    PairReport {
        finding,
        a: a_result,
        va,
        b: second,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::{Ending, Failure, PhaseMarks};

    fn r(accepted: bool, ending: Ending, lag_ms: u64) -> PublishResult {
        let mut marks = PhaseMarks::default();
        if accepted {
            marks.done.push((Phase::Publish, Duration::from_millis(5)));
        }
        PublishResult {
            ending,
            marks,
            statuses: vec![],
            bytes_sent: 0,
            media_ms: 0,
            streamed: Duration::from_secs(10),
            max_lag: Duration::from_millis(lag_ms),
            publish_sent: None,
            remote_addr: None,
            attempts: vec![],
            forced: None,
        }
    }

    fn cut() -> Ending {
        Ending::Interrupted {
            failure: Failure::Closed {
                phase: Phase::Streaming,
                after_publish_ms: None,
            },
        }
    }

    fn refused() -> Ending {
        Ending::Failed {
            failure: Failure::Closed {
                phase: Phase::Publish,
                after_publish_ms: Some(1),
            },
        }
    }

    #[test]
    fn judge_table() {
        let ok = r(true, Ending::Completed, 5);
        assert_eq!(judge(&ok, &r(false, refused(), 0)), DupFinding::Refused);
        assert_eq!(
            judge(&ok, &r(true, Ending::Completed, 0)),
            DupFinding::AcceptedAlongside
        );
        assert_eq!(
            judge(&r(true, cut(), 0), &r(true, Ending::Completed, 0)),
            DupFinding::Replaced
        );
        assert_eq!(
            judge(&r(true, cut(), 0), &r(false, refused(), 0)),
            DupFinding::FirstInterrupted
        );
        assert_eq!(
            judge(&r(false, refused(), 0), &r(false, refused(), 0)),
            DupFinding::FirstNeverStarted
        );
        assert_eq!(
            judge(&r(true, Ending::Completed, 1500), &r(false, refused(), 0)),
            DupFinding::FirstLagged
        );
    }
}
