//! `pushprobe load`: many concurrent publishers from one process, with phase
//! histograms, callback arrival, live progress and reports (also on Ctrl-C).

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio_util::sync::CancellationToken;

use crate::callback::{ReceiverConfig, ReceiverState};
use crate::classify::Outcome;
use crate::cli::{LoadArgs, Progress};
use crate::clock::now_unix;
use crate::junit;
use crate::load::aggregate::{RunMeta, Summary};
use crate::load::metrics::{CallbackSource, LoadMetrics, MetricsServer, Recorder};
use crate::load::runner::{self, Live, LoadConfig};
use crate::load::targets::{self, Shard, Template};
use crate::load::viewer_run::{self, ViewerOnlyConfig};
use crate::load::viewer_summary::Viewers;
use crate::load::viewers::{PlaySigner, PlayTemplate, ViewerLive, ViewerSettings};
use crate::media::MediaPlan;
use crate::play::Protocol;
use crate::report;
use crate::sign::UrlSpec;
use crate::signal::Stop;

fn shard_of(args: &LoadArgs) -> anyhow::Result<Shard> {
    if let Some(s) = &args.shard {
        return Ok(Shard::parse(s)?);
    }
    if let Some(n) = args.shards {
        let i = std::env::var("JOB_COMPLETION_INDEX")
            .context("--shards needs JOB_COMPLETION_INDEX (set by a Kubernetes Indexed Job) or use --shard I/N")?;
        return Ok(Shard::parse(&format!("{}/{n}", i.trim()))?);
    }
    Ok(Shard::WHOLE)
}

/// File descriptors a run needs beyond one per publisher: the runtime, the
/// callback receiver and its connections, the report files.
const SPARE_FILES: u64 = 64;

/// Raises the open-files soft limit to the hard one; errors when `publishers` do not fit.
fn ensure_open_files(publishers: u64) -> anyhow::Result<u64> {
    let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024);
    check_open_files(publishers, limit)?;
    Ok(limit)
}

/// Whether `publishers` (one socket each) fit under an open-files `limit`.
fn check_open_files(publishers: u64, limit: u64) -> anyhow::Result<()> {
    let need = publishers.saturating_add(SPARE_FILES);
    if need > limit {
        bail!(
            "{publishers} publishers need about {need} open files, but the open-files limit \
             (RLIMIT_NOFILE, `ulimit -n`) is {limit} even after raising it to the hard limit: \
             raise the hard limit (`ulimit -Hn` as root, or the container runtime's nofile limit), \
             or split the run with --shard I/N across processes (--shards N across more pods)"
        );
    }
    Ok(())
}

/// The viewers' play template and settings' shape, when `--viewers` is asked.
fn play_template(args: &LoadArgs) -> anyhow::Result<Option<PlayTemplate>> {
    let asked = args.play_template.is_some() || args.play_domain.is_some();
    if args.viewers == 0 {
        if asked || args.play_protocol.is_some() {
            bail!(
                "--play-template, --play-domain and --play-protocol need --viewers K (viewers per stream)"
            );
        }
        return Ok(None);
    }
    let protocol = args.play_protocol.map(|p| p.protocol());
    let t = match (&args.play_template, &args.play_domain) {
        (Some(t), _) => PlayTemplate::Url(t.clone()),
        (None, Some(d)) => PlayTemplate::Domain {
            domain: d.clone(),
            app: args.app.clone(),
            protocol: protocol.unwrap_or(Protocol::Rtmp),
        },
        (None, None) => bail!(
            "--viewers needs the streams' play URLs: --play-template (with {{i}} or {{stream}}) or --play-domain"
        ),
    };
    t.check(protocol)?;
    Ok(Some(t))
}

/// The viewers' settings and the report part they fold into.
fn viewer_settings(
    args: &LoadArgs,
    template: PlayTemplate,
    mode: &str,
    planned: u64,
) -> anyhow::Result<(Arc<ViewerSettings>, Viewers)> {
    let signer = args
        .play_key
        .key()?
        .map(|k| PlaySigner::new(k, now_unix() + args.expires_in.as_secs()));
    let mut target = template.describe();
    if signer.is_some() {
        target.push_str(" (signed with the play key)");
    }
    let part = Viewers::new(u64::from(args.viewers), mode, target, planned);
    let settings = ViewerSettings {
        per_stream: args.viewers,
        template,
        signer,
        timeout: args.conn.timeout,
        stall: Duration::from_secs(1),
        insecure: args.conn.insecure,
        dial: Arc::new(args.conn.dial.options()?),
        duration: args.duration,
        latency: Arc::default(),
        live: Arc::default(),
    };
    Ok((Arc::new(settings), part))
}

pub async fn run(args: &LoadArgs) -> anyhow::Result<ExitCode> {
    let viewer_template = play_template(args)?;
    if args.domain.is_none() && args.url_template.is_none() {
        let Some(t) = viewer_template else {
            bail!(
                "give --domain (signed) or --url-template, or --viewers K with --play-template/--play-domain to watch streams someone else pushes"
            );
        };
        return run_viewers_only(args, t).await;
    }
    let keys = args.keys.keys()?;
    let template = match (&args.url_template, &args.domain) {
        (Some(t), _) => Template::Url(t.clone()),
        (None, Some(domain)) => {
            let Some(key) = keys.primary.clone() else {
                bail!(
                    "signing load URLs needs a push key: set PUSHPROBE_KEY (or --key-file), or give --url-template"
                );
            };
            Template::Signed {
                spec: UrlSpec {
                    scheme: args.scheme,
                    domain: domain.clone(),
                    port: args.port,
                    app: args.app.clone(),
                    stream: args.stream_template.clone(),
                },
                key,
                expiry_unix: now_unix() + args.expires_in.as_secs(),
            }
        }
        (None, None) => bail!("give --domain (signed) or --url-template"),
    };
    template.check()?;
    if !(args.rate >= 0.0 && args.rate.is_finite()) {
        bail!("--rate must be a number of publishers per second, 0 or more");
    }
    let shard = shard_of(args)?;
    let (a, b) = shard.slice(args.publishers);
    let (da, db) = shard.slice(args.duplicates);
    let rate = args.rate / shard.count as f64;
    let dup_delay = (args.duration / 2).min(Duration::from_secs(2));
    let slots = targets::schedule(
        args.start_index + a,
        args.start_index + b,
        rate,
        db - da,
        dup_delay,
    );
    let mut urls = slots
        .iter()
        .map(|s| template.url(s.index))
        .collect::<Result<Vec<_>, _>>()?;
    for u in &mut urls {
        if let Some(domain) = args.conn.dial.tx_host(u) {
            u.query.push(("txHost".into(), domain));
        }
    }
    let (fixture, fixture_name) =
        crate::probe::load_fixture(args.conn.fixture.as_deref(), args.conn.legacy_codec_id)?;
    // Viewers measure latency from the stamps: publishers stamp when asked.
    let plan = MediaPlan::build(
        &fixture,
        args.conn.chunk_size,
        args.conn.stamp || viewer_template.is_some(),
    );
    let srt = match urls.first() {
        Some(u) => crate::probe::srt_media(u, &fixture, args.conn.srt_latency)?,
        None => None,
    };
    drop(fixture);
    let primaries = slots.iter().filter(|s| !s.duplicate).count() as u64;
    let viewers_planned = primaries * u64::from(args.viewers);
    ensure_open_files(slots.len() as u64 + viewers_planned)?;

    let stop = Stop::on_signals();
    let cancel = stop.token.clone();
    let mut callbacks = None;
    let mut receiver_task = None;
    if let Some(addr) = args.callback_listen {
        let Some(key) = args.callback_key.key()? else {
            bail!(
                "--callback-listen needs the callback key: set PUSHPROBE_CALLBACK_KEY or give --callback-key-file"
            );
        };
        let (state, events) = ReceiverState::new(ReceiverConfig::new(key));
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen for callbacks on {addr}"))?;
        eprintln!("callbacks: listening on http://{}", listener.local_addr()?);
        let stop = CancellationToken::new();
        let s = stop.clone();
        let st = state.clone();
        receiver_task = Some((
            tokio::spawn(async move {
                crate::callback::serve(listener, st, async move { s.cancelled().await }).await
            }),
            stop,
        ));
        callbacks = Some((state, events));
    }
    let viewers = match viewer_template {
        Some(t) => {
            eprintln!(
                "viewers: {} per stream ({viewers_planned} in all) playing {}",
                args.viewers,
                t.describe()
            );
            Some(viewer_settings(
                args,
                t,
                "with_publishers",
                viewers_planned,
            )?)
        }
        None => None,
    };
    let viewer_live = viewers.as_ref().map(|(s, _)| s.live.clone());
    eprintln!(
        "load: {} publishers ({} duplicates) of {} to {}, shard {}/{}, {:.0}/s, {} each",
        slots.len(),
        db - da,
        fixture_name,
        template.describe(),
        shard.index,
        shard.count,
        rate,
        humantime::format_duration(args.duration)
    );
    let started_unix = now_unix();
    let mut live = Live::default();
    let recorder = Arc::new(Recorder::default());
    if args.metrics_listen.is_some() {
        live.watch = Some(recorder.clone());
    }
    let live = Arc::new(live);
    let metrics = match args.metrics_listen {
        Some(addr) => {
            let read = callbacks.as_ref().map(|(state, _)| {
                let state: ReceiverState = state.clone();
                Box::new(move || received_callbacks(&state.counters())) as CallbackSource
            });
            let m = Arc::new(LoadMetrics::new(
                live.clone(),
                recorder,
                slots.len() as u64,
                read,
            ));
            let server = MetricsServer::start(addr, &m, (shard.index, shard.count)).await?;
            eprintln!("metrics: serving http://{}/metrics", server.local_addr());
            Some((m, server))
        }
        None => None,
    };
    let progress = tokio::spawn(progress(
        live.clone(),
        viewer_live,
        args.progress,
        slots.len() as u64,
    ));
    let planned = slots.len() as u64;
    let planned_primary = slots.iter().filter(|s| !s.duplicate).count() as u64;
    let cfg = LoadConfig {
        slots,
        urls,
        keys,
        plan,
        duration: args.duration,
        timeout: args.conn.timeout,
        chunk_size: args.conn.chunk_size,
        insecure: args.conn.insecure,
        dial: Arc::new(args.conn.dial.options()?),
        tick: args.tick,
        refusal_window: args.conn.refusal_window,
        callbacks,
        callback_grace: args.callback_grace,
        workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
        reconnect: args.reconnect,
        expires_in: args.expires_in,
        srt,
        viewers,
    };
    let out = runner::run(cfg, live.clone(), cancel).await;
    progress.abort();
    if let Some((task, stop)) = receiver_task {
        stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(6), task).await;
    }
    let meta = RunMeta {
        started_unix,
        duration_s: out.elapsed.as_secs_f64(),
        target: template.describe(),
        shard: (shard.count > 1).then_some(shard),
        publishers_planned: planned,
        interrupted_by_user: out.interrupted_by_user,
    };
    let summary = out.aggregator.summary(meta);
    if let Some((m, _)) = &metrics {
        m.finish(&summary);
    }
    write_reports(args, &summary, started_unix, planned_primary)?;
    if let Some((_, server)) = metrics {
        if !stop.token.is_cancelled() && !args.metrics_linger.is_zero() {
            eprintln!(
                "metrics: final values stay up for {} (--metrics-linger; Ctrl-C ends it)",
                humantime::format_duration(args.metrics_linger)
            );
        }
        server.linger(args.metrics_linger, &stop.token).await;
    }
    Ok(if passed(&summary, planned_primary) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The report on stdout and in every file asked for.
fn write_reports(
    args: &LoadArgs,
    summary: &Summary,
    started_unix: u64,
    planned_primary: u64,
) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    if args.json {
        report::json(summary, &mut stdout)?;
    } else {
        report::text(summary, &mut stdout)?;
    }
    if let Some(p) = &args.json_out {
        let mut f =
            std::fs::File::create(p).with_context(|| format!("cannot write {}", p.display()))?;
        report::json(summary, &mut f)?;
    }
    if let Some(d) = &args.hgrm {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
        report::write_hgrm(summary, d)?;
    }
    if let Some(p) = &args.plot {
        report::write_svg(summary, p)?;
    }
    if let Some(p) = &args.junit {
        let mut suite = junit::Suite::new("load", started_unix);
        suite.cases = junit::load_cases(summary, planned_primary);
        suite.write_file(p)?;
    }
    Ok(())
}

/// Viewers of streams someone else pushes: no publishers, no stamps
/// expected; `--publishers` streams named by `--stream-template`.
async fn run_viewers_only(args: &LoadArgs, template: PlayTemplate) -> anyhow::Result<ExitCode> {
    if !(args.rate >= 0.0 && args.rate.is_finite()) {
        bail!("--rate must be a number of viewers per second, 0 or more");
    }
    let shard = shard_of(args)?;
    let (a, b) = shard.slice(args.publishers);
    let streams: Vec<(u64, String)> = (args.start_index + a..args.start_index + b)
        .map(|i| (i, args.stream_template.replace("{i}", &i.to_string())))
        .collect();
    let planned = streams.len() as u64 * u64::from(args.viewers);
    ensure_open_files(planned)?;
    let describe = template.describe();
    let (settings, part) = viewer_settings(args, template, "viewer_only", planned)?;
    eprintln!(
        "load: viewers only, {} per stream of {} streams ({planned} in all) playing {describe}, shard {}/{}, {:.0}/s, {} each",
        args.viewers,
        streams.len(),
        shard.index,
        shard.count,
        args.rate / shard.count as f64,
        humantime::format_duration(args.duration)
    );
    let stop = Stop::on_signals();
    let started_unix = now_unix();
    let live = Arc::new(Live::default());
    let progress = tokio::spawn(progress(
        live,
        Some(settings.live.clone()),
        args.progress,
        0,
    ));
    let cfg = ViewerOnlyConfig {
        streams,
        rate: args.rate / shard.count as f64,
        settings,
        part,
        workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let out = viewer_run::run(cfg, stop.token.clone()).await;
    progress.abort();
    let meta = RunMeta {
        started_unix,
        duration_s: out.elapsed.as_secs_f64(),
        target: describe,
        shard: (shard.count > 1).then_some(shard),
        publishers_planned: 0,
        interrupted_by_user: out.interrupted_by_user,
    };
    let summary = out.aggregator.summary(meta);
    write_reports(args, &summary, started_unix, 0)?;
    Ok(if passed(&summary, 0) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// What the receiver has counted so far, as the report's callback counts
/// (missing and unmatched are known only once the run ends).
fn received_callbacks(c: &crate::callback::Counters) -> crate::load::aggregate::CallbackCounts {
    crate::load::aggregate::CallbackCounts {
        push: c.accepted_push,
        interrupt: c.accepted_interrupt,
        missing: 0,
        duplicate: c.duplicates,
        forged: c.forged + c.stale,
        unmatched: 0,
    }
}

/// Exit 0: every planned publisher (duplicates aside) ran, was accepted and
/// held real time (max lag under 1 s), no deliberate duplicate was accepted,
/// and every planned viewer started and none failed.
pub fn passed(s: &Summary, planned_primary: u64) -> bool {
    let accepted = s.outcomes.get(&Outcome::Accepted).copied().unwrap_or(0);
    s.publishers == planned_primary
        && accepted == s.publishers
        && s.max_lag_ms < 1000.0
        && s.expected_refusals.accepted == 0
        && s.viewers.as_ref().is_none_or(Viewers::passed)
}

async fn progress(live: Arc<Live>, viewers: Option<Arc<ViewerLive>>, mode: Progress, total: u64) {
    let mode = match mode {
        Progress::Auto if std::io::stderr().is_terminal() => Progress::Bar,
        Progress::Auto => Progress::Plain,
        m => m,
    };
    if mode == Progress::None {
        return;
    }
    let line = |l: &Live| {
        let p = l.publish_percentiles().map_or(String::new(), |(p50, p99)| {
            format!(" publish p50 {p50:.1} ms p99 {p99:.1} ms")
        });
        format!(
            "scheduled {}/{total} connecting {} publishing {} refused {} failed {} interrupted {} reconnects {} callbacks {}{p}",
            l.scheduled.load(Relaxed),
            l.connecting.load(Relaxed),
            l.publishing.load(Relaxed),
            l.refused.load(Relaxed),
            l.failed.load(Relaxed),
            l.interrupted.load(Relaxed),
            l.reconnects.load(Relaxed),
            l.callbacks.load(Relaxed),
        )
    };
    let mut last_bytes = 0u64;
    let period = if mode == Progress::Bar { 1 } else { 5 };
    let bar = (mode == Progress::Bar).then(|| {
        let b = indicatif::ProgressBar::new(total);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let mut tick = tokio::time::interval(Duration::from_secs(period));
    tick.tick().await;
    loop {
        tick.tick().await;
        let bytes = live.bytes.load(Relaxed);
        let mbps = (bytes - last_bytes) as f64 * 8.0 / period as f64 / 1e6;
        last_bytes = bytes;
        // Viewer-only runs have no publishers to show.
        let mut msg = if total == 0 && viewers.is_some() {
            String::new()
        } else {
            format!("{} {mbps:.1} Mbit/s ", line(&live))
        };
        if let Some(v) = &viewers {
            msg.push_str(&format!(
                "viewers started {} playing {} failed {}, live frames over 1 s late {}, worst {:.0} ms",
                v.started.load(Relaxed),
                v.playing.load(Relaxed),
                v.failed.load(Relaxed),
                v.late_frames.load(Relaxed),
                v.worst_us.load(Relaxed) as f64 / 1000.0,
            ));
        }
        match &bar {
            Some(b) => {
                b.set_position(live.scheduled.load(Relaxed));
                b.set_message(msg);
            }
            None => eprintln!("{msg}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::aggregate::Aggregator;
    use crate::load::record::PublisherRecord;
    use crate::publish::Phase;

    fn record(index: u64, outcome: Outcome, duplicate: bool) -> PublisherRecord {
        PublisherRecord {
            index,
            stream: format!("load-{index}"),
            expected_refusal: duplicate,
            outcome,
            start_delay: Duration::ZERO,
            marks: vec![(Phase::Publish, Duration::from_millis(50))],
            bytes_sent: 1000,
            max_lag: Duration::from_millis(5),
            streamed: Duration::from_secs(4),
            reconnects: 0,
            addrs: Default::default(),
            srt: None,
        }
    }

    fn summary(records: &[PublisherRecord]) -> Summary {
        let mut a = Aggregator::new();
        for r in records {
            a.add(r);
        }
        a.summary(RunMeta {
            started_unix: 0,
            duration_s: 5.0,
            target: String::new(),
            shard: None,
            publishers_planned: 2,
            interrupted_by_user: false,
        })
    }

    #[test]
    fn passes_when_all_accepted_and_every_duplicate_refused() {
        let ok = [
            record(0, Outcome::Accepted, false),
            record(1, Outcome::Accepted, false),
            record(0, Outcome::AlreadyInUse, true),
        ];
        assert!(passed(&summary(&ok), 2));
        assert!(!passed(&summary(&ok[..1]), 2), "a publisher missing");
        let refused = [ok[0].clone(), record(1, Outcome::ExpiredUrl, false)];
        assert!(!passed(&summary(&refused), 2));
        let mut slow = ok.clone();
        slow[1].max_lag = Duration::from_millis(1500);
        assert!(!passed(&summary(&slow), 2), "fell behind real time");
        // Regression (issue 5): a duplicate the ingest accepted passed.
        let dup_accepted = [
            ok[0].clone(),
            ok[1].clone(),
            record(0, Outcome::Accepted, true),
        ];
        assert!(!passed(&summary(&dup_accepted), 2));
    }

    #[test]
    fn open_files_error_names_the_limit_and_the_fix() {
        check_open_files(1000, 1064).unwrap();
        let e = format!("{:#}", check_open_files(1000, 256).unwrap_err());
        assert!(
            e.starts_with("1000 publishers need about 1064 open files"),
            "{e}"
        );
        assert!(
            e.contains("open-files limit (RLIMIT_NOFILE, `ulimit -n`) is 256"),
            "{e}"
        );
        assert!(e.contains("--shard I/N") && e.contains("more pods"), "{e}");
    }
}
