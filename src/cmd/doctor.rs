//! `pushprobe doctor`: Tencent's five-step push failure checklist run against
//! one URL (CNAME, network, txTime, txSecret, a short real push), each step
//! pass / warn / fail / skip with a one-line fix; with `--each-address`, the
//! network and push steps against every address of the host. Step 6, play
//! back, runs when `--play URL` or `--play-domain` is given (not with
//! `--each-address`).

mod dns;
mod steps;

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::classify::Outcome;
use crate::cli::DoctorArgs;
use crate::clock::now_unix;
use crate::junit;
use crate::probe::PreparedPush;
use crate::probe::play;
use crate::publish::Phase;
use crate::publish::conn::{self, Dial, DialError};
use crate::publish::dial::DialOptions;
use crate::signal::Stop;
pub use steps::{Status, Step, TENCENT_SUFFIXES};

const NO_HOST: &str = "cannot reach a host that does not resolve";
const NO_PORT: &str = "the port does not answer (step 2)";

pub async fn run(args: &DoctorArgs) -> anyhow::Result<ExitCode> {
    let mut settings = args.push.settings(Duration::from_secs(3))?;
    let play_url = match (&args.play, &args.play_domain) {
        (Some(u), _) => Some(u.clone()),
        (None, Some(domain)) => {
            let u = crate::sign::PushUrl::parse(&args.url).context("cannot start the doctor")?;
            Some(format!("rtmp://{domain}/{}/{}", u.app, u.stream))
        }
        (None, None) => None,
    };
    // Stamping is on whenever something plays the stream back.
    settings.stamp |= play_url.is_some();
    let player = match &play_url {
        Some(u) => Some(play::play_config(u, &settings).context("cannot play back (step 6)")?),
        None => None,
    };
    let p = PreparedPush::prepare(&args.url, args.push.keys.keys()?, &settings)
        .context("cannot start the doctor")?;
    let show = args.push.show_secrets;
    let stop = Stop::on_signals();
    let cancel = stop.token.clone();
    let junit_to = args.junit.as_deref().map(|path| (path, now_unix()));
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
    let (dns, tcp) = match probe(&dial, &p.config.dial, &cancel).await {
        Ok(facts) => facts,
        Err(phase) => {
            let why = "stopped by the user";
            for step in 1..=5 {
                emit(&mut out, Step::skipped(step, why))?;
            }
            return finish(
                &mut out,
                args.json,
                &report,
                Some(phase),
                &stop,
                &[],
                junit_to,
            );
        }
    };
    let s1 = steps::cname_step(&p.url.host, &dns, &args.expect_cname);
    if args.each_address && dns.addrs.is_ok() {
        emit(&mut out, s1)?;
        let (failed, stopped) =
            each_address(&p, &tcp, show, &cancel, &mut |s| emit(&mut out, s)).await?;
        return finish(
            &mut out, args.json, &report, stopped, &stop, &failed, junit_to,
        );
    }
    let s2 = match &dns.addrs {
        Ok(_) => steps::network_step(&tcp, dial.timeout),
        _ => Step::skipped(2, NO_HOST),
    };
    let s5_skip = match (&dns.addrs, s2.status) {
        (Err(_), _) => Some(NO_HOST),
        (_, Status::Fail) => Some(NO_PORT),
        _ => None,
    };
    emit(&mut out, s1)?;
    emit(&mut out, s2)?;
    emit(&mut out, steps::txtime_step(&p.url, now_unix()))?;
    emit(&mut out, steps::secret_step(&p.url, &p.keys))?;
    let (s5, s6, stopped) = match (s5_skip, player) {
        (Some(why), player) => (
            Step::skipped(5, why),
            player.map(|_| Step::skipped(6, why)),
            None,
        ),
        (None, None) => {
            let pushed = p.run(&cancel).await;
            (
                steps::push_step(&pushed.verdict, show),
                None,
                pushed.result.cancelled(),
            )
        }
        (None, Some(player)) => {
            let done = play::push_and_play(&p, player, &cancel).await;
            (
                steps::push_step(&done.pushed.verdict, show),
                Some(steps::play_step(done.played.as_ref())),
                done.pushed.result.cancelled(),
            )
        }
    };
    emit(&mut out, s5)?;
    if let Some(s6) = s6 {
        emit(&mut out, s6)?;
    }
    if !args.codecs.is_empty() && stopped.is_none() && !cancel.is_cancelled() {
        let s7 = match s5_skip {
            Some(why) => Step::skipped(7, why),
            None => {
                let rows =
                    crate::probe::codecs::run(&args.url, &p.keys, &settings, &args.codecs, &cancel)
                        .await
                        .context("cannot run step 7, codecs")?;
                steps::codecs_step(&rows, &args.codecs)
            }
        };
        emit(&mut out, s7)?;
    }
    finish(&mut out, args.json, &report, stopped, &stop, &[], junit_to)
}

/// Prints the verdict (or the JSON report) and gives the exit code: 130 or
/// 143 when the user stopped the run (`stopped`: the phase it was in), else
/// 1 when a step failed; the verdict names the failed edges of
/// `--each-address`. With `--junit`, also writes the steps there (`junit_to`:
/// the file and the run's start).
fn finish(
    out: &mut dyn Write,
    json: bool,
    report: &[Step],
    stopped: Option<Phase>,
    stop: &Stop,
    failed_edges: &[SocketAddr],
    junit_to: Option<(&std::path::Path, u64)>,
) -> anyhow::Result<ExitCode> {
    if let Some((path, started_unix)) = junit_to {
        let mut suite = junit::Suite::new("doctor", started_unix);
        suite.cases = report.iter().map(junit_case).collect();
        suite.write_file(path)?;
    }
    if json {
        writeln!(out, "{}", report_json(report, stopped, failed_edges)?)?;
    } else if let Some(phase) = stopped {
        writeln!(
            out,
            "verdict  cancelled: stopped by the user during {}",
            phase.name()
        )?;
    } else {
        writeln!(out, "verdict  {}", verdict(report, failed_edges))?;
    }
    Ok(match (stopped, stop.signal()) {
        (Some(_), Some(s)) => ExitCode::from(s.exit_code()),
        _ if steps::any_failed(report) => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    })
}

/// The overall verdict, naming the failed edges.
fn verdict(report: &[Step], failed_edges: &[SocketAddr]) -> String {
    let overall = steps::overall(report);
    if failed_edges.is_empty() {
        return overall.to_string();
    }
    let list: Vec<String> = failed_edges.iter().map(|a| a.to_string()).collect();
    format!("{overall}: failed at {}", list.join(", "))
}

/// `--each-address`: step 2 for each address, steps 3 and 4, then step 5
/// pushed to each address that answered (forced to it as `--connect-to`
/// would), every line naming its address. Returns the addresses that failed,
/// and the phase a push was in when the user stopped it.
async fn each_address(
    p: &PreparedPush,
    tcp: &[Probe],
    show: bool,
    cancel: &CancellationToken,
    emit: &mut dyn FnMut(Step) -> std::io::Result<()>,
) -> anyhow::Result<(Vec<SocketAddr>, Option<Phase>)> {
    let timeout = p.config.timeout;
    let mut failed = Vec::new();
    for (addr, r) in tcp {
        let s = steps::network_step(std::slice::from_ref(&(*addr, clone_probe(r))), timeout);
        if s.status == Status::Fail {
            failed.push(*addr);
        }
        emit(s)?;
    }
    emit(steps::txtime_step(&p.url, now_unix()))?;
    emit(steps::secret_step(&p.url, &p.keys))?;
    for (addr, r) in tcp {
        if r.is_err() {
            emit(Step::skipped(
                5,
                &format!("{addr} does not answer (step 2)"),
            ))?;
            continue;
        }
        let mut one = p.clone();
        one.config.dial = std::sync::Arc::new(p.config.dial.only(*addr));
        let pushed = one.run(cancel).await;
        let mut s = steps::push_step(&pushed.verdict, show);
        s.detail = format!("{addr}: {}", s.detail);
        if s.status == Status::Fail && !failed.contains(addr) {
            failed.push(*addr);
        }
        emit(s)?;
        if let Some(phase) = pushed.result.cancelled() {
            return Ok((failed, Some(phase)));
        }
    }
    Ok((failed, None))
}

/// A probe result again (`DialError` holds an `io::Error`, not `Clone`).
fn clone_probe(r: &Result<Duration, DialError>) -> Result<Duration, DialError> {
    match r {
        Ok(d) => Ok(*d),
        Err(DialError::Refused(a)) => Err(DialError::Refused(*a)),
        Err(DialError::ConnectTimeout(a)) => Err(DialError::ConnectTimeout(*a)),
        Err(e) => Err(DialError::Connect {
            addr: match e {
                DialError::Connect { addr, .. } => *addr,
                _ => SocketAddr::from(([0, 0, 0, 0], 0)),
            },
            source: std::io::Error::other(e.to_string()),
        }),
    }
}

/// One address and how its TCP connect went (time to connect, or why not).
type Probe = (SocketAddr, Result<Duration, DialError>);

/// Steps 1 and 2's I/O: DNS facts, then (when the host resolved) a TCP
/// connect to each address the push may dial, all at once, each timed and
/// bounded by the timeout. `Err(phase)` when cancelled during that phase.
async fn probe(
    dial: &Dial,
    opts: &DialOptions,
    cancel: &CancellationToken,
) -> Result<(steps::DnsFacts, Vec<Probe>), Phase> {
    let dns = tokio::select! {
        _ = cancel.cancelled() => return Err(Phase::Dns),
        dns = dns::gather(dial, opts) => dns,
    };
    let addrs = dns.addrs.clone().unwrap_or_default();
    let tasks: Vec<_> = addrs
        .iter()
        .map(|&addr| {
            let timeout = dial.timeout;
            tokio::spawn(async move {
                let started = Instant::now();
                let r = conn::connect_tcp(addr, timeout, None).await;
                r.map(|_stream| started.elapsed())
            })
        })
        .collect();
    let mut probes = Vec::with_capacity(tasks.len());
    for (addr, task) in addrs.into_iter().zip(tasks) {
        let r = tokio::select! {
            _ = cancel.cancelled() => return Err(Phase::Tcp),
            r = task => r,
        };
        let r = r.unwrap_or_else(|e| {
            Err(DialError::Connect {
                addr,
                source: std::io::Error::other(e.to_string()),
            })
        });
        probes.push((addr, r));
    }
    Ok((dns, probes))
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

/// A step as a JUnit test case: warn passes (with its detail), skip is
/// `<skipped/>`, fail carries the detail and the fix.
fn junit_case(s: &Step) -> junit::Case {
    let detail = crate::sign::redact_query_in(&s.detail);
    let fix = s.fix.as_deref().map(crate::sign::redact_query_in);
    let result = match s.status {
        Status::Pass | Status::Warn => junit::Result::Passed,
        Status::Skip => junit::Result::Skipped {
            message: detail.clone(),
        },
        Status::Fail => junit::Result::Failed {
            message: detail.clone(),
            detail: match &fix {
                Some(f) => format!("{detail}\nfix: {f}"),
                None => detail.clone(),
            },
        },
    };
    let mut output = format!("{}: {detail}", s.status.name());
    if let (Status::Warn, Some(f)) = (s.status, &fix) {
        output.push_str(&format!("\nfix: {f}"));
    }
    junit::Case::new(format!("{} {}", s.step, s.name), result, output)
}

/// The `--json` object: `{"steps": [...], "verdict": "..."}`, fields in
/// that order; a run the user stopped adds `"outcome": "cancelled"` and the
/// `phase` it was in, and its verdict is `cancelled`.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    pub steps: &'a [Step],
    pub verdict: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
}

pub fn report_json(
    steps: &[Step],
    stopped: Option<Phase>,
    failed_edges: &[SocketAddr],
) -> serde_json::Result<String> {
    serde_json::to_string(&Report {
        steps,
        verdict: match stopped {
            Some(_) => "cancelled".to_string(),
            None => verdict(steps, failed_edges),
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
        let json = report_json(&report, None, &[]).unwrap();
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
