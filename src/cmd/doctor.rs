//! `pushprobe doctor`: Tencent's five-step push failure checklist run against
//! one URL (CNAME, network, txTime, txSecret, a short real push), each step
//! pass / warn / fail / skip with a one-line fix.

mod dns;
mod steps;

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::classify::Outcome;
use crate::cli::DoctorArgs;
use crate::clock::now_unix;
use crate::probe::PreparedPush;
use crate::publish::Phase;
use crate::publish::conn::{self, Dial, DialError};
use crate::signal::Stop;
pub use steps::{Status, Step, TENCENT_SUFFIXES};

const NO_HOST: &str = "cannot reach a host that does not resolve";
const NO_PORT: &str = "the port does not answer (step 2)";

pub async fn run(args: &DoctorArgs) -> anyhow::Result<ExitCode> {
    let settings = args.push.settings(Duration::from_secs(3));
    let p = PreparedPush::prepare(&args.url, args.push.keys.keys()?, &settings)
        .context("cannot start the doctor")?;
    let show = args.push.show_secrets;
    let stop = Stop::on_signals();
    let cancel = stop.token.clone();
    let mut out = std::io::stdout();
    if !args.json {
        eprintln!("doctor {}", p.shown_url(show));
    }
    let mut report: Vec<Step> = Vec::with_capacity(5);
    let mut emit = |out: &mut dyn Write, s: Step| -> std::io::Result<()> {
        if !args.json {
            write_step(out, &s)?;
            out.flush()?;
        }
        report.push(s);
        Ok(())
    };

    let dial = Dial {
        host: p.url.host.clone(),
        port: p.url.port(),
        tls: false,
        insecure: args.push.conn.insecure,
        timeout: args.push.conn.timeout,
    };
    // DNS and TCP waits are bounded by the timeout; Ctrl-C ends them early
    // too, naming the phase it stopped.
    let (dns, tcp) = match probe(&dial, &cancel).await {
        Ok(facts) => facts,
        Err(phase) => {
            let why = "stopped by the user";
            for step in 1..=5 {
                emit(&mut out, Step::skipped(step, why))?;
            }
            return finish(&mut out, args.json, &report, Some(phase), &stop);
        }
    };
    let s1 = steps::cname_step(&p.url.host, &dns, &args.expect_cname);
    let s2 = match (&dns.addr, &tcp) {
        (Ok(addr), Some(tcp)) => steps::network_step(*addr, tcp, dial.timeout),
        _ => Step::skipped(2, NO_HOST),
    };
    let s5_skip = match (&dns.addr, s2.status) {
        (Err(_), _) => Some(NO_HOST),
        (_, Status::Fail) => Some(NO_PORT),
        _ => None,
    };
    emit(&mut out, s1)?;
    emit(&mut out, s2)?;
    emit(&mut out, steps::txtime_step(&p.url, now_unix()))?;
    emit(&mut out, steps::secret_step(&p.url, &p.keys))?;
    let (s5, stopped) = match s5_skip {
        Some(why) => (Step::skipped(5, why), None),
        None => {
            let pushed = p.run(&cancel).await;
            (
                steps::push_step(&pushed.verdict, show),
                pushed.result.cancelled(),
            )
        }
    };
    emit(&mut out, s5)?;
    finish(&mut out, args.json, &report, stopped, &stop)
}

/// Prints the verdict (or the JSON report) and gives the exit code: 130 or
/// 143 when the user stopped the run (`stopped`: the phase it was in), else
/// 1 when a step failed.
fn finish(
    out: &mut dyn Write,
    json: bool,
    report: &[Step],
    stopped: Option<Phase>,
    stop: &Stop,
) -> anyhow::Result<ExitCode> {
    if json {
        writeln!(out, "{}", report_json(report, stopped)?)?;
    } else if let Some(phase) = stopped {
        writeln!(
            out,
            "verdict  cancelled: stopped by the user during {}",
            phase.name()
        )?;
    } else {
        writeln!(out, "verdict  {}", steps::overall(report))?;
    }
    Ok(match (stopped, stop.signal()) {
        (Some(_), Some(s)) => ExitCode::from(s.exit_code()),
        _ if steps::any_failed(report) => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    })
}

/// Steps 1 and 2's I/O: DNS facts, then (when the host resolved) a TCP
/// connect to the address the push would dial, timed. `Err(phase)` when
/// cancelled during that phase.
async fn probe(
    dial: &Dial,
    cancel: &CancellationToken,
) -> Result<(steps::DnsFacts, Option<Result<Duration, DialError>>), Phase> {
    let dns = tokio::select! {
        _ = cancel.cancelled() => return Err(Phase::Dns),
        dns = dns::gather(dial) => dns,
    };
    let tcp = match dns.addr {
        Ok(addr) => {
            let started = Instant::now();
            let r = tokio::select! {
                _ = cancel.cancelled() => return Err(Phase::Tcp),
                r = conn::connect_tcp(addr, dial.timeout, None) => r,
            };
            Some(r.map(|_stream| started.elapsed()))
        }
        Err(_) => None,
    };
    Ok((dns, tcp))
}

/// One report line (`1 cname    pass  ...`), and a `fix:` line under a warn or fail.
pub fn write_step(out: &mut dyn Write, s: &Step) -> std::io::Result<()> {
    writeln!(
        out,
        "{} {:<8} {:<4}  {}",
        s.step,
        s.name,
        s.status.name(),
        s.detail
    )?;
    if let (Status::Warn | Status::Fail, Some(fix)) = (s.status, &s.fix) {
        writeln!(out, "{:17}fix: {fix}", "")?;
    }
    Ok(())
}

/// The `--json` object: `{"steps": [...], "verdict": "..."}`, fields in
/// that order; a run the user stopped adds `"outcome": "cancelled"` and the
/// `phase` it was in, and its verdict is `cancelled`.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    pub steps: &'a [Step],
    pub verdict: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
}

pub fn report_json(steps: &[Step], stopped: Option<Phase>) -> serde_json::Result<String> {
    serde_json::to_string(&Report {
        steps,
        verdict: match stopped {
            Some(_) => "cancelled",
            None => steps::overall(steps),
        },
        outcome: stopped.map(|_| Outcome::Cancelled),
        phase: stopped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn parse(args: &[&str]) -> DoctorArgs {
        let cli = Cli::try_parse_from([&["pushprobe", "doctor"], args].concat()).unwrap();
        match cli.command {
            Command::Doctor(a) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn doctor_defaults_to_a_short_push() {
        let a = parse(&["rtmp://h/live/s"]);
        assert_eq!(
            a.push.duration,
            Some(Duration::from_secs(3)),
            "doctor pushes for 3 s unless told"
        );
        assert_eq!(a.push.conn.timeout, Duration::from_secs(5));
        assert_eq!(a.expect_cname, TENCENT_SUFFIXES);
        assert!(!a.json);
        let a = parse(&[
            "rtmp://h/live/s",
            "--duration",
            "10s",
            "--timeout",
            "2s",
            "--expect-cname",
            ".a.com",
            "--expect-cname",
            "b.net",
            "--json",
        ]);
        assert_eq!(a.push.duration, Some(Duration::from_secs(10)));
        assert_eq!(a.push.conn.timeout, Duration::from_secs(2));
        assert_eq!(a.expect_cname, [".a.com", "b.net"]);
        assert!(a.json);
    }

    #[test]
    fn text_lines_and_json_shape() {
        let report = vec![
            Step {
                step: 1,
                name: "cname",
                status: Status::Pass,
                detail: "livepush.example.com -> x.tlivepush.com (203.0.113.7)".into(),
                fix: None,
            },
            Step {
                step: 2,
                name: "network",
                status: Status::Fail,
                detail: "connection refused".into(),
                fix: Some("check the port".into()),
            },
        ];
        let mut text = Vec::new();
        for s in &report {
            write_step(&mut text, s).unwrap();
        }
        assert_eq!(
            String::from_utf8(text).unwrap(),
            "1 cname    pass  livepush.example.com -> x.tlivepush.com (203.0.113.7)\n\
             2 network  fail  connection refused\n\
             \x20                fix: check the port\n"
        );
        let json = report_json(&report, None).unwrap();
        assert!(
            json.starts_with(r#"{"steps":[{"step":1,"name":"cname","status":"pass","detail":"#),
            "{json}"
        );
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["verdict"], "network");
        assert_eq!(v["steps"][0]["status"], "pass");
        assert_eq!(v["steps"][0]["fix"], serde_json::Value::Null);
        assert_eq!(v["steps"][1]["fix"], "check the port");
    }
}
