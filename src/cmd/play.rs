//! `pushprobe play URL`: one player, its phases, frames, stalls and
//! push-to-play latency; exit 0 when playback started and kept up.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use crate::cli::PlayArgs;
use crate::play::report::{self, PlayReport};
use crate::play::{self, PlayConfig, PlayUrl};
use crate::signal::Stop;

pub async fn run(args: &PlayArgs) -> anyhow::Result<ExitCode> {
    let url = PlayUrl::parse_playable(&args.url).context("cannot play this URL")?;
    let mut cfg = PlayConfig::new(url);
    cfg.duration = Some(args.duration);
    cfg.timeout = args.timeout;
    cfg.stall = args.stall;
    cfg.insecure = args.insecure;
    cfg.dial = Arc::new(args.dial.options()?);
    let shown = cfg.url.redacted();
    if !args.json {
        eprintln!(
            "playing {shown} for {}",
            humantime::format_duration(args.duration)
        );
    }
    let stop = Stop::on_signals();
    let r = play::play_one(&cfg, &stop.token).await;
    let mut out = std::io::stdout().lock();
    if args.json {
        let json = PlayReport::new(&r, &shown, args.max_latency);
        writeln!(out, "{}", serde_json::to_string(&json)?)?;
    } else {
        report::write_text(&mut out, &r)?;
    }
    Ok(ExitCode::from(if r.kept_up(args.max_latency) {
        0
    } else {
        1
    }))
}
