//! `pushprobe smoke [URL]`: push the fixture, classify, print the verdict.
//! Without a URL it runs against an embedded ingest on loopback.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::cli::SmokeArgs;
use crate::junit;
use crate::probe::play::{self, PushPlayReport};
use crate::probe::report::{self, PushReport};
use crate::probe::{PreparedPush, Target, codecs};
use crate::signal::Stop;

pub async fn run(args: &SmokeArgs) -> anyhow::Result<ExitCode> {
    let opts = &args.push;
    let mut settings = opts.settings(Duration::from_secs(10))?;
    // Stamping is on whenever something plays the stream back.
    settings.stamp |= args.play.is_some();
    let player = match &args.play {
        Some(u) => Some(play::play_config(u, &settings).context("cannot play back")?),
        None => None,
    };
    let target = Target::pick(args.url.as_deref(), opts.keys.keys()?, "smoke").await?;
    if !args.codecs.is_empty() {
        return codec_matrix(args, target).await;
    }
    let p = PreparedPush::prepare(&target.url, target.keys.clone(), &settings)
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
    let (pushed, played) = match player {
        Some(player) => {
            let shown = player.url.redacted();
            let done = play::push_and_play(&p, player, &stop.token).await;
            (done.pushed, Some((done.played, shown)))
        }
        None => (p.run(&stop.token).await, None),
    };
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
    let json = PushReport::new(&p, &pushed, opts.show_secrets);
    match (args.json, &played) {
        (true, None) => writeln!(out, "{}", serde_json::to_string(&json)?)?,
        (true, Some((r, shown))) => {
            let json = PushPlayReport::new(json, r.as_ref(), shown);
            writeln!(out, "{}", serde_json::to_string(&json)?)?;
        }
        (false, _) => {
            report::write_text(&mut out, &pushed)?;
            if let Some((r, shown)) = &played {
                play::write_text(&mut out, r.as_ref(), shown)?;
            }
        }
    }
    target.shutdown().await;
    let code = pushed.exit_code(stop.signal());
    Ok(ExitCode::from(match &played {
        Some((r, _)) => play::exit_code(code, r.as_ref()),
        None => code,
    }))
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
