//! `pushprobe push`: one publisher, its phase timings and the classified
//! outcome.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::cli::PushArgs;
use crate::probe::PreparedPush;
use crate::probe::report::{self, PushReport};
use crate::signal::Stop;

pub async fn run(args: &PushArgs) -> anyhow::Result<ExitCode> {
    let settings = args.push.settings(Duration::from_secs(30))?;
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
    let pushed = p.run(&stop.token).await;
    let mut stdout = std::io::stdout().lock();
    if args.json {
        let json = PushReport::new(&p, &pushed, args.push.show_secrets);
        writeln!(stdout, "{}", serde_json::to_string(&json)?)?;
    } else {
        report::write_text(&mut stdout, &pushed)?;
    }
    Ok(ExitCode::from(pushed.exit_code(stop.signal())))
}
