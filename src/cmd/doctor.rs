//! `pushprobe doctor`: Tencent's five-step push failure checklist run against
//! one URL (CNAME, network, txTime, txSecret, a short real push), each step
//! pass / warn / fail / skip with a one-line fix.

mod dns;
mod steps;

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;

use crate::cli::{PushOptions, now_unix};
use crate::cmd::push;
use crate::publish::conn::{self, Dial, DialError};
use crate::publish::dial::DialOptions;
pub use steps::{Status, Step, TENCENT_SUFFIXES};

/// `push`'s options with doctor's defaults: a 3 s push and a 5 s timeout.
#[derive(Debug, Args)]
#[command(
    mut_arg("timeout", |a| a.default_value("5s"))
)]
pub struct DoctorArgs {
    /// Push URL: rtmp[s]://HOST[:PORT]/APP/STREAM?txSecret=..&txTime=..
    pub url: String,
    /// Print one JSON object on stdout instead of text.
    #[arg(long)]
    pub json: bool,
    /// A CNAME target suffix that counts as the push target (repeatable; replaces the Tencent ones).
    #[arg(long, value_name = "SUFFIX", default_values = TENCENT_SUFFIXES)]
    pub expect_cname: Vec<String>,
    /// Run the network and push steps against every address (resolved, or
    /// from --resolve), one line each; fails when any edge fails, naming it.
    #[arg(long)]
    pub each_address: bool,
    #[command(flatten)]
    pub push: PushOptions,
}

const NO_HOST: &str = "cannot reach a host that does not resolve";
const NO_PORT: &str = "the port does not answer (step 2)";

pub async fn run(args: &DoctorArgs) -> anyhow::Result<ExitCode> {
    let p = push::prepare(&args.url, &args.push, Duration::from_secs(3))
        .context("cannot start the doctor")?;
    let show = args.push.show_secrets;
    let cancel = push::cancel_on_signal();
    let mut out = std::io::stdout();
    if !args.json {
        eprintln!("doctor {}", push::shown_url(&p.url, show));
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
        insecure: args.push.insecure,
        timeout: args.push.timeout,
    };
    // DNS and TCP waits are bounded by the timeout; Ctrl-C ends them early too.
    let (dns, tcp) = tokio::select! {
        _ = cancel.cancelled() => bail!("interrupted"),
        facts = probe(&dial, &p.config.dial) => facts,
    };
    let s1 = steps::cname_step(&p.url.host, &dns, &args.expect_cname);
    if args.each_address && dns.addrs.is_ok() {
        emit(&mut out, s1)?;
        let failed = each_address(&p, &tcp, show, &cancel, &mut |s| emit(&mut out, s)).await?;
        return finish(&mut out, args.json, &report, &failed);
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
    let s5 = match s5_skip {
        Some(why) => Step::skipped(5, why),
        None => {
            let (_, verdict) = push::run_one(&p, &cancel).await;
            steps::push_step(&verdict, show)
        }
    };
    emit(&mut out, s5)?;
    finish(&mut out, args.json, &report, &[])
}

/// Prints the verdict (naming the failed edges of `--each-address`) and
/// picks the exit code.
fn finish(
    out: &mut dyn Write,
    json: bool,
    report: &[Step],
    failed_edges: &[SocketAddr],
) -> anyhow::Result<ExitCode> {
    let mut verdict = steps::overall(report).to_string();
    if !failed_edges.is_empty() {
        let list: Vec<String> = failed_edges.iter().map(|a| a.to_string()).collect();
        verdict = format!("{verdict}: failed at {}", list.join(", "));
    }
    if json {
        writeln!(out, "{}", report_json(report, &verdict)?)?;
    } else {
        writeln!(out, "verdict  {verdict}")?;
    }
    Ok(if steps::any_failed(report) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `--each-address`: step 2 for each address, steps 3 and 4, then step 5
/// pushed to each address that answered (forced to it as `--connect-to`
/// would), every line naming its address. Returns the addresses that failed.
async fn each_address(
    p: &push::Prepared,
    tcp: &[Probe],
    show: bool,
    cancel: &tokio_util::sync::CancellationToken,
    emit: &mut dyn FnMut(Step) -> std::io::Result<()>,
) -> anyhow::Result<Vec<SocketAddr>> {
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
        let mut one = push::Prepared {
            url: p.url.clone(),
            keys: p.keys.clone(),
            plan: p.plan.clone(),
            config: p.config.clone(),
            fixture_name: p.fixture_name.clone(),
        };
        one.config.dial = std::sync::Arc::new(p.config.dial.only(*addr));
        let (_, verdict) = push::run_one(&one, cancel).await;
        let mut s = steps::push_step(&verdict, show);
        s.detail = format!("{addr}: {}", s.detail);
        if s.status == Status::Fail && !failed.contains(addr) {
            failed.push(*addr);
        }
        emit(s)?;
    }
    Ok(failed)
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
/// bounded by the timeout.
async fn probe(dial: &Dial, opts: &DialOptions) -> (steps::DnsFacts, Vec<Probe>) {
    let dns = dns::gather(dial, opts).await;
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
        let r = task.await.unwrap_or_else(|e| {
            Err(DialError::Connect {
                addr,
                source: std::io::Error::other(e.to_string()),
            })
        });
        probes.push((addr, r));
    }
    (dns, probes)
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

/// The `--json` object: `{"steps": [...], "verdict": "..."}`, fields in that order.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    pub steps: &'a [Step],
    pub verdict: &'a str,
}

pub fn report_json(steps: &[Step], verdict: &str) -> serde_json::Result<String> {
    serde_json::to_string(&Report { steps, verdict })
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
        assert_eq!(a.push.duration, None, "doctor pushes for 3 s unless told");
        assert_eq!(a.push.timeout, Duration::from_secs(5));
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
        assert_eq!(a.push.timeout, Duration::from_secs(2));
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
        let json = report_json(&report, steps::overall(&report)).unwrap();
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
