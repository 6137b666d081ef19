//! `pushprobe push`: one publisher, its phase timings and the classified
//! outcome. Also the single-push building block smoke, doctor and dup share.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use crate::classify::{self, LocalFacts, Outcome, Verdict};
use crate::cli::{PushArgs, PushOptions, now_unix};
use crate::flv::{self, Fixture};
use crate::media::MediaPlan;
use crate::publish::{self, PublishConfig, PublishResult};
use crate::sign::{self, Keys, PushUrl};

/// A push ready to run: URL, plan and config validated before any connection.
pub struct Prepared {
    pub url: PushUrl,
    pub keys: Keys,
    pub plan: Arc<MediaPlan>,
    pub config: PublishConfig,
    pub fixture_name: String,
}

/// Loads the fixture (or the embedded one).
pub fn load_fixture(path: Option<&std::path::Path>) -> anyhow::Result<(Fixture, String)> {
    match path {
        Some(p) => Ok((flv::load(p)?, p.display().to_string())),
        None => Ok((flv::default_fixture(), "embedded sd-360p.flv".to_string())),
    }
}

/// Validates everything local: URL, keys, fixture. `duration` applies when
/// the options do not set one.
pub fn prepare(url: &str, opts: &PushOptions, duration: Duration) -> anyhow::Result<Prepared> {
    let url = PushUrl::parse(url)?;
    url.expiry()?;
    let keys = opts.keys.keys()?;
    let (fixture, fixture_name) = load_fixture(opts.fixture.as_deref())?;
    let plan = MediaPlan::new(&fixture, opts.chunk_size);
    let mut config = PublishConfig::new(url.clone());
    config.timeout = opts.timeout;
    config.duration = Some(opts.duration.unwrap_or(duration));
    config.chunk_size = opts.chunk_size;
    config.insecure = opts.insecure;
    config.dial = Arc::new(opts.dial.options()?);
    if let Some(domain) = opts.dial.tx_host(&url) {
        config.url.query.push(("txHost".into(), domain));
    }
    Ok(Prepared {
        url,
        keys,
        plan,
        config,
        fixture_name,
    })
}

/// Local facts about a URL for the classifier.
pub fn local_facts(url: &PushUrl, keys: &Keys, now: u64, our_other_publisher: bool) -> LocalFacts {
    LocalFacts {
        expiry: url
            .expiry()
            .ok()
            .flatten()
            .map(|e| sign::expiry_status(e, now)),
        has_tx_time: url.tx_time().is_some(),
        has_tx_secret: url.tx_secret().is_some(),
        secret: sign::check_secret(url, keys),
        our_other_publisher,
    }
}

/// Runs one push and classifies it.
pub async fn run_one(p: &Prepared, cancel: &CancellationToken) -> (PublishResult, Verdict) {
    let result = publish::publish(&p.config, &p.plan, cancel, &mut ()).await;
    let facts = local_facts(&p.url, &p.keys, now_unix(), false);
    let verdict = classify::classify(&result, &facts);
    (result, verdict)
}

/// A token cancelled on Ctrl-C or SIGTERM.
pub fn cancel_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        crate::cmd::shutdown_signal().await;
        t.cancel();
    });
    token
}

pub async fn run(args: &PushArgs) -> anyhow::Result<ExitCode> {
    let p =
        prepare(&args.url, &args.push, Duration::from_secs(30)).context("cannot start the push")?;
    let cancel = cancel_on_signal();
    if !args.json {
        eprintln!(
            "pushing {} to {} for {}",
            p.fixture_name,
            shown_url(&p.url, args.push.show_secrets),
            humantime::format_duration(p.config.duration.unwrap_or_default())
        );
    }
    let (result, verdict) = run_one(&p, &cancel).await;
    let mut stdout = std::io::stdout().lock();
    if args.json {
        let v = result_json(&p, &result, &verdict, args.push.show_secrets);
        writeln!(stdout, "{v}")?;
    } else {
        write_text(&mut stdout, &result, &verdict)?;
    }
    Ok(exit_for(verdict.outcome))
}

pub fn exit_for(outcome: Outcome) -> ExitCode {
    if outcome == Outcome::Accepted {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

pub fn shown_url(url: &PushUrl, show_secrets: bool) -> String {
    if show_secrets {
        url.to_string()
    } else {
        url.redacted()
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// Per-phase own durations in ms.
pub fn phases_json(r: &PublishResult) -> Value {
    let mut m = Map::new();
    for (phase, d) in r.marks.durations() {
        m.insert(phase.name().to_string(), json!(ms(d)));
    }
    Value::Object(m)
}

pub fn result_json(p: &Prepared, r: &PublishResult, v: &Verdict, show_secrets: bool) -> Value {
    let redact = |s: &str| {
        if show_secrets {
            s.to_string()
        } else {
            sign::redact_query_in(s)
        }
    };
    let status = r
        .server_status()
        .map(|s| json!({"code": s.code, "level": s.level, "description": redact(&s.description)}));
    json!({
        "url": shown_url(&p.url, show_secrets),
        "outcome": v.outcome,
        "evidence": v.evidence.iter().map(|e| redact(e)).collect::<Vec<_>>(),
        "certain": v.certain,
        "step": v.step,
        "fix": v.fix,
        "phase": v.phase,
        "phases_ms": phases_json(r),
        "remote_addr": r.remote_addr,
        "forced_by": r.forced,
        "attempts": publish::dial::attempts_json(&r.attempts),
        "time_to_publish_ms": r.marks.at(publish::Phase::Publish).map(ms),
        "server_status": status,
        "bytes_sent": r.bytes_sent,
        "media_seconds": r.media_ms as f64 / 1000.0,
        "streamed_seconds": (r.streamed.as_secs_f64() * 1000.0).round() / 1000.0,
        "max_lag_ms": ms(r.max_lag),
        "fixture": {
            "name": p.fixture_name,
            "width": p.plan.width,
            "height": p.plan.height,
            "bitrate_bps": p.plan.bitrate_bps,
        },
    })
}

pub fn write_text(out: &mut impl Write, r: &PublishResult, v: &Verdict) -> std::io::Result<()> {
    let phases: Vec<String> = r
        .marks
        .durations()
        .iter()
        .map(|(ph, d)| format!("{} {:.1} ms", ph.name(), ms(*d)))
        .collect();
    if !phases.is_empty() {
        writeln!(out, "phases    {}", phases.join(", "))?;
    }
    publish::dial::write_remote(out, r.remote_addr, r.forced.as_deref())?;
    if r.attempts.len() > 1 || r.remote_addr.is_none() {
        publish::dial::write_attempts(out, &r.attempts)?;
    }
    if let Some(t) = r.marks.at(publish::Phase::Publish) {
        writeln!(
            out,
            "publish   NetStream.Publish.Start after {:.1} ms",
            ms(t)
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
            ms(r.max_lag)
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
