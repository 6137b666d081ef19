//! `pushprobe doctor`: Tencent's five-step push failure checklist run against
//! one URL (CNAME, network, txTime, txSecret, a short real push), each step
//! pass / warn / fail / skip with a one-line fix.

mod dns;
mod steps;

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;

use crate::cli::DoctorArgs;
use crate::clock::now_unix;
use crate::junit;
use crate::probe::PreparedPush;
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
    let started_unix = now_unix();
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
    // DNS and TCP waits are bounded by the timeout; Ctrl-C ends them early too.
    let (dns, tcp) = tokio::select! {
        _ = cancel.cancelled() => bail!("interrupted"),
        facts = probe(&dial) => facts,
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
    let s5 = match s5_skip {
        Some(why) => Step::skipped(5, why),
        None => {
            let pushed = p.run(&cancel).await;
            steps::push_step(&pushed.verdict, show)
        }
    };
    emit(&mut out, s5)?;

    if let Some(path) = &args.junit {
        let mut suite = junit::Suite::new("doctor", started_unix);
        suite.cases = report.iter().map(junit_case).collect();
        suite.write_file(path)?;
    }
    if args.json {
        writeln!(out, "{}", report_json(&report)?)?;
    } else {
        writeln!(out, "verdict  {}", steps::overall(&report))?;
    }
    Ok(if steps::any_failed(&report) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Steps 1 and 2's I/O: DNS facts, then (when the host resolved) a TCP
/// connect to the address the push would dial, timed.
async fn probe(dial: &Dial) -> (steps::DnsFacts, Option<Result<Duration, DialError>>) {
    let dns = dns::gather(dial).await;
    let tcp = match dns.addr {
        Ok(addr) => {
            let started = Instant::now();
            let r = conn::connect_tcp(addr, dial.timeout, None).await;
            Some(r.map(|_stream| started.elapsed()))
        }
        Err(_) => None,
    };
    (dns, tcp)
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

/// The `--json` object: `{"steps": [...], "verdict": "..."}`, fields in that order.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    pub steps: &'a [Step],
    pub verdict: &'static str,
}

pub fn report_json(steps: &[Step]) -> serde_json::Result<String> {
    serde_json::to_string(&Report {
        steps,
        verdict: steps::overall(steps),
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
        assert_eq!(a.push.duration, None, "doctor pushes for 3 s unless told");
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
        let json = report_json(&report).unwrap();
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
