//! `pushprobe smoke [URL]`: push the fixture, classify, print the verdict.
//! Without a URL it runs against an embedded ingest on loopback.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::cli::SmokeArgs;
use crate::junit;
use crate::probe::report::{self, PushReport};
use crate::probe::{PreparedPush, Target, codecs};
use crate::signal::Stop;

pub async fn run(args: &SmokeArgs) -> anyhow::Result<ExitCode> {
    let opts = &args.push;
    let target = Target::pick(args.url.as_deref(), opts.keys.keys()?, "smoke").await?;
    if !args.codecs.is_empty() {
        return codec_matrix(args, target).await;
    }
    let p = PreparedPush::prepare(
        &target.url,
        target.keys.clone(),
        &opts.settings(Duration::from_secs(10))?,
    )
    .context("cannot start the smoke test")?;
    if let Some(e) = &target.embedded
        && !args.json
    {
        eprintln!(
            "no URL given: pushing to an embedded ingest on {}",
            e.ingest.rtmp_addr
        );
    }
    let stop = Stop::on_signals();
    let (started_unix, began) = (crate::clock::now_unix(), std::time::Instant::now());
    let pushed = p.run(&stop.token).await;
    if let Some(path) = &args.junit {
        let mut suite = junit::Suite::new("smoke", started_unix);
        suite.push(junit::push_case(
            "push",
            &pushed.verdict,
            false,
            began.elapsed(),
        ));
        suite.write_file(path)?;
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        let json = PushReport::new(&p, &pushed, opts.show_secrets);
        writeln!(out, "{}", serde_json::to_string(&json)?)?;
    } else {
        report::write_text(&mut out, &pushed)?;
    }
    target.shutdown().await;
    Ok(ExitCode::from(pushed.exit_code(stop.signal())))
}

/// `smoke --codecs`: the codec x framing matrix; exit 0 when every codec was
/// accepted in at least one framing.
async fn codec_matrix(args: &SmokeArgs, target: Target) -> anyhow::Result<ExitCode> {
    let settings = args.push.settings(Duration::from_secs(3))?;
    let stop = Stop::on_signals();
    let rows = codecs::run(
        &target.url,
        &target.keys,
        &settings,
        &args.codecs,
        &stop.token,
    )
    .await
    .context("cannot start the codec smoke test")?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", codecs::json(&rows, &args.codecs))?;
    } else {
        codecs::write_text(&mut out, &rows)?;
    }
    target.shutdown().await;
    if let Some(s) = stop.signal() {
        return Ok(ExitCode::from(s.exit_code()));
    }
    Ok(ExitCode::from(u8::from(!codecs::passed(
        &rows,
        &args.codecs,
    ))))
}
