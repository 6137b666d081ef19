//! `pushprobe dup [URL]`: verifies that a second push to a URL already in use
//! is refused while the first keeps streaming, with no interruption and no lag.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use crate::classify::Verdict;
use crate::cli::DupArgs;
use crate::junit;
use crate::probe::dup::{DupFinding, run_pair};
use crate::probe::report::PushReport;
use crate::probe::{PreparedPush, Target};
use crate::sign;
use crate::signal::Stop;

/// The JSON object `dup --json` prints.
#[derive(Serialize)]
struct DupReport {
    verdict: &'static str,
    finding: DupFinding,
    detail: &'static str,
    first: PushReport,
    second: Option<PushReport>,
}

pub async fn run(args: &DupArgs) -> anyhow::Result<ExitCode> {
    let target = Target::pick(args.url.as_deref(), args.push.keys.keys()?, "dup").await?;
    let a = PreparedPush::prepare(
        &target.url,
        target.keys.clone(),
        &args.push.settings(args.hold)?,
    )
    .context("cannot start the dup test")?
    .with_duration(args.hold);
    let b = a.with_duration((args.hold / 3).clamp(Duration::from_secs(1), Duration::from_secs(3)));
    let stop = Stop::on_signals();
    let (started_unix, began) = (crate::clock::now_unix(), std::time::Instant::now());
    let report = run_pair(&a, &b, &stop.token).await;
    if let Some(path) = &args.junit {
        let mut suite = junit::Suite::new("dup", started_unix);
        suite.push(junit::dup_case(&report, began.elapsed()));
        suite.write_file(path)?;
    }
    let mut out = std::io::stdout().lock();
    let show = args.push.show_secrets;
    if args.json {
        let json = DupReport {
            verdict: if report.finding.passed() {
                "pass"
            } else {
                "fail"
            },
            finding: report.finding,
            detail: report.finding.describe(),
            first: PushReport::new(&a, &report.first, show),
            second: report.second.as_ref().map(|s| PushReport::new(&b, s, show)),
        };
        writeln!(out, "{}", serde_json::to_string(&json)?)?;
    } else {
        // Evidence quotes the server, which may echo the stream's query.
        let evidence = |v: &Verdict| {
            let e = v.evidence.join("; ");
            if show { e } else { sign::redact_query_in(&e) }
        };
        let first = &report.first.verdict;
        writeln!(
            out,
            "first     {} ({})",
            first.outcome.name(),
            evidence(first)
        )?;
        if let Some(s) = &report.second {
            let v = &s.verdict;
            writeln!(out, "second    {} ({})", v.outcome.name(), evidence(v))?;
        }
        let verdict = if report.finding.passed() {
            "PASS"
        } else {
            "FAIL"
        };
        writeln!(out, "verdict   {verdict}: {}", report.finding.describe())?;
    }
    target.shutdown().await;
    Ok(match stop.signal() {
        Some(s) if report.finding == DupFinding::Cancelled => ExitCode::from(s.exit_code()),
        _ if report.finding.passed() => ExitCode::SUCCESS,
        _ => ExitCode::from(1),
    })
}
