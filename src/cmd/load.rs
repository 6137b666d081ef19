//! `pushprobe load`: many concurrent publishers from one process, with phase
//! histograms, callback arrival, live progress and reports (also on Ctrl-C).

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio_util::sync::CancellationToken;

use crate::callback::{ReceiverConfig, ReceiverState};
use crate::classify::Outcome;
use crate::cli::{KeyArgs, now_unix, parse_duration};
use crate::load::aggregate::{RunMeta, Summary};
use crate::load::runner::{self, Live, LoadConfig};
use crate::load::targets::{self, Shard, Template};
use crate::media::MediaPlan;
use crate::report;
use crate::secret;
use crate::sign::{Scheme, UrlSpec};

#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// Push domain to sign URLs for (with --stream-template and PUSHPROBE_KEY).
    #[arg(
        long,
        conflicts_with = "url_template",
        required_unless_present = "url_template"
    )]
    pub domain: Option<String>,
    #[arg(long)]
    pub port: Option<u16>,
    #[arg(long, default_value = "live")]
    pub app: String,
    #[arg(long, value_enum, default_value = "rtmp")]
    pub scheme: Scheme,
    /// Stream name template; {i} is the publisher index.
    #[arg(long, default_value = "load-{i}")]
    pub stream_template: String,
    /// A full URL template with {i}, used as given (pre-signed or unsigned targets).
    #[arg(long)]
    pub url_template: Option<String>,
    /// Expiry of signed URLs, from now.
    #[arg(long, value_parser = parse_duration, default_value = "24h")]
    pub expires_in: Duration,
    /// Number of publishers (stream indices), before sharding.
    #[arg(long, default_value_t = 10)]
    pub publishers: u64,
    /// First stream index.
    #[arg(long, default_value_t = 0)]
    pub start_index: u64,
    /// New publishers per second across all shards (open model); 0 starts all at once.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// How long each publisher streams after it is accepted.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub duration: Duration,
    /// Extra publishers pushing to streams already in use; expected to be refused.
    #[arg(long, default_value_t = 0)]
    pub duplicates: u64,
    /// FLV file to push; default the embedded 640x360 fixture.
    #[arg(long)]
    pub fixture: Option<PathBuf>,
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub timeout: Duration,
    /// Reconnect a publisher whose push was cut or whose ingest was unreachable,
    /// with jittered exponential backoff (0.5 s doubling to 10 s, ±30%), until
    /// its duration is used up. An expired URL is re-signed first when the push
    /// key is at hand; without it the publisher stops, named expired_url.
    #[arg(long)]
    pub reconnect: bool,
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(128..=65536))]
    pub chunk_size: u32,
    /// Media timer granularity: messages due within one tick share one write
    /// (sent up to one tick early; never late by design).
    #[arg(long, value_parser = parse_duration, default_value = "200ms")]
    pub tick: Duration,
    #[arg(long)]
    pub insecure: bool,
    /// Run the callback receiver here (key from PUSHPROBE_CALLBACK_KEY) and match events to publishers.
    #[arg(long)]
    pub callback_listen: Option<SocketAddr>,
    /// How long to wait for callbacks after the last publisher ends.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub callback_grace: Duration,
    /// Write the JSON report here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write HdrHistogram percentile distributions (.hgrm) into this directory.
    #[arg(long)]
    pub hgrm: Option<PathBuf>,
    /// Write an SVG plot of latency percentiles and the timeline.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Run the I-th of N slices of the stream range (0-based), e.g. 2/8.
    #[arg(long, conflicts_with = "shards")]
    pub shard: Option<String>,
    /// Number of shards, the index taken from JOB_COMPLETION_INDEX (Kubernetes Indexed Job).
    #[arg(long)]
    pub shards: Option<u32>,
    /// Progress: auto (bar on a terminal, a line every 5 s otherwise), bar, plain, none.
    #[arg(long, default_value = "auto")]
    pub progress: String,
    #[command(flatten)]
    pub keys: KeyArgs,
}

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

pub async fn run(args: &LoadArgs) -> anyhow::Result<ExitCode> {
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
    let urls = slots
        .iter()
        .map(|s| template.url(s.index))
        .collect::<Result<Vec<_>, _>>()?;
    let (fixture, fixture_name) = super::push::load_fixture(args.fixture.as_deref())?;
    let plan = MediaPlan::new(&fixture, args.chunk_size);
    drop(fixture);
    ensure_open_files(slots.len() as u64)?;

    let cancel = super::push::cancel_on_signal();
    let mut callbacks = None;
    let mut receiver_task = None;
    if let Some(addr) = args.callback_listen {
        let Some(key) = secret::from_env("PUSHPROBE_CALLBACK_KEY")? else {
            bail!("--callback-listen needs the callback key in PUSHPROBE_CALLBACK_KEY");
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
    let live = Arc::new(Live::default());
    let progress = tokio::spawn(progress(
        live.clone(),
        args.progress.clone(),
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
        timeout: args.timeout,
        chunk_size: args.chunk_size,
        insecure: args.insecure,
        tick: args.tick,
        callbacks,
        callback_grace: args.callback_grace,
        workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
        reconnect: args.reconnect,
        expires_in: args.expires_in,
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
    let mut stdout = std::io::stdout().lock();
    report::text(&summary, &mut stdout)?;
    if let Some(p) = &args.json {
        let mut f =
            std::fs::File::create(p).with_context(|| format!("cannot write {}", p.display()))?;
        report::json(&summary, &mut f)?;
    }
    if let Some(d) = &args.hgrm {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
        report::write_hgrm(&summary, d)?;
    }
    if let Some(p) = &args.plot {
        report::write_svg(&summary, p)?;
    }
    Ok(if passed(&summary, planned_primary) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Exit 0: every planned publisher (duplicates aside) ran, was accepted and
/// held real time (max lag under 1 s), and no deliberate duplicate was accepted.
pub fn passed(s: &Summary, planned_primary: u64) -> bool {
    let accepted = s.outcomes.get(&Outcome::Accepted).copied().unwrap_or(0);
    s.publishers == planned_primary
        && accepted == s.publishers
        && s.max_lag_ms < 1000.0
        && s.expected_refusals.accepted == 0
}

async fn progress(live: Arc<Live>, mode: String, total: u64) {
    let tty = std::io::stderr().is_terminal();
    let mode = match mode.as_str() {
        "auto" if tty => "bar",
        "auto" => "plain",
        m => m,
    };
    if mode == "none" {
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
    let period = if mode == "bar" { 1 } else { 5 };
    let bar = (mode == "bar").then(|| {
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
        let msg = format!("{} {mbps:.1} Mbit/s", line(&live));
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
