//! `pushprobe push`: one publisher, its phase timings and the classified
//! outcome; with `--play URL`, the stream played back while pushing.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::cli::PushArgs;
use crate::probe::PreparedPush;
use crate::probe::play::{self, PushPlayReport};
use crate::probe::report::{self, PushReport};
use crate::signal::Stop;

pub async fn run(args: &PushArgs) -> anyhow::Result<ExitCode> {
    let mut settings = args.push.settings(Duration::from_secs(30))?;
    // Stamping is on whenever something plays the stream back.
    settings.stamp |= args.play.is_some();
    let player = match &args.play {
        Some(u) => Some(play::play_config(u, &settings).context("cannot play back")?),
        None => None,
    };
    let p = PreparedPush::prepare(&args.url, args.push.keys.keys()?, &settings)
        .context("cannot start the push")?;
    let stop = Stop::on_signals();
    if !args.json {
        eprintln!(
            "pushing {} to {} for {}",
            p.fixture_name,
            p.shown_url(args.push.show_secrets),
            humantime::format_duration(settings.duration)
        );
    }
    let Some(player) = player else {
        let pushed = p.run(&stop.token).await;
        let mut stdout = std::io::stdout().lock();
        if args.json {
            let json = PushReport::new(&p, &pushed, args.push.show_secrets);
            writeln!(stdout, "{}", serde_json::to_string(&json)?)?;
        } else {
            report::write_text(&mut stdout, &pushed)?;
        }
        return Ok(ExitCode::from(pushed.exit_code(stop.signal())));
    };
    let shown_play = player.url.redacted();
    let done = play::push_and_play(&p, player, &stop.token).await;
    let mut stdout = std::io::stdout().lock();
    if args.json {
        let push = PushReport::new(&p, &done.pushed, args.push.show_secrets);
        let json = PushPlayReport::new(push, done.played.as_ref(), &shown_play);
        writeln!(stdout, "{}", serde_json::to_string(&json)?)?;
    } else {
        report::write_text(&mut stdout, &done.pushed)?;
        play::write_text(&mut stdout, done.played.as_ref(), &shown_play)?;
    }
    Ok(ExitCode::from(done.exit_code(stop.signal())))
}
