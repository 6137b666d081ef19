//! `pushprobe demo`: the whole job offline on loopback. An embedded ingest
//! and callback receiver, a signed push with its phases, the ingest's view and
//! both callbacks with their arrival latency, the push played back from the
//! ingest over RTMP and HTTP-FLV (first frame, stamped latency); then an
//! expired URL and a duplicate push, each refused and named.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::callback::{self, EVENT_INTERRUPT, EVENT_PUSH, Received, ReceiverConfig, ReceiverState};
use crate::classify::Outcome;
use crate::cli::DemoArgs;
use crate::clock::now_unix;
use crate::errcode::SubErrcode;
use crate::ingest::IngestConfig;
use crate::notify::{Notifier, NotifyConfig};
use crate::probe::dup::{self, DupFinding};
use crate::probe::embedded::random_hex;
use crate::probe::play;
use crate::probe::report::write_text;
use crate::probe::{Embedded, PreparedPush, PushSettings};
use crate::publish::{Observer, Phase};
use crate::secret::Secret;
use crate::signal::Stop;

struct PublishAt(Option<Instant>);

impl Observer for PublishAt {
    fn phase(&mut self, phase: Phase, at: Instant) {
        if phase == Phase::Publish {
            self.0 = Some(at);
        }
    }
}

/// Waits for the next non-duplicate callback of `event_type`, up to `within`.
async fn next_event(
    rx: &mut mpsc::UnboundedReceiver<Received>,
    event_type: i64,
    within: Duration,
) -> Option<Received> {
    let end = Instant::now() + within;
    loop {
        let r = tokio::time::timeout_at(end, rx.recv()).await.ok()??;
        if !r.duplicate && r.event.event_type == Some(event_type) {
            return Some(r);
        }
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e4).round() / 10.0
}

pub async fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    // Watch for signals first: a Ctrl-C at any point stops the demo cleanly.
    let interrupt = Stop::on_signals();
    let mut out = std::io::stdout().lock();
    let mut ok = true;
    let mut check = |out: &mut dyn Write, good: bool, what: &str| -> std::io::Result<()> {
        ok &= good;
        writeln!(out, "  [{}] {what}", if good { "ok" } else { "FAILED" })
    };

    // Callback receiver and ingest, both on loopback.
    let cb_key = Secret::new(random_hex(16));
    let (receiver, mut events) = ReceiverState::new(ReceiverConfig::new(cb_key.clone()));
    let cb_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let cb_addr = cb_listener.local_addr()?;
    let stop = CancellationToken::new();
    let stop_rx = stop.clone();
    let receiver_task = tokio::spawn(callback::serve(cb_listener, receiver.clone(), async move {
        stop_rx.cancelled().await
    }));
    let mut ncfg = NotifyConfig::new(format!("http://{cb_addr}/callback"));
    ncfg.key = Some(cb_key);
    ncfg.retry_interval = Duration::from_millis(200);
    ncfg.domain = "demo.localhost".into();
    ncfg.node = "127.0.0.1".into();
    let notifier = Notifier::start(ncfg).context("cannot start the callback sender")?;
    let embedded = Embedded::start(IngestConfig {
        domain: "demo.localhost".into(),
        notifier: Some(notifier),
        ..IngestConfig::default()
    })
    .await?;
    writeln!(
        out,
        "pushprobe demo: embedded ingest rtmp://{} (records on http://{}), callback receiver http://{cb_addr}",
        embedded.ingest.rtmp_addr, embedded.ingest.http_addr
    )?;

    // 1. A signed push.
    let url = embedded.url("demo", now_unix() + 24 * 3600)?;
    let settings = PushSettings {
        duration: args.duration,
        // Stamped: the push is played back below.
        stamp: true,
        ..PushSettings::default()
    };
    let p = PreparedPush::prepare(&url, embedded.keys(), &settings)?;
    // Played back from the ingest while it streams, over RTMP and HTTP-FLV.
    let players = [
        format!("rtmp://{}/live/demo", embedded.ingest.rtmp_addr),
        format!("http://{}/live/demo.flv", embedded.ingest.http_addr),
    ]
    .iter()
    .map(|u| play::play_config(u, &settings))
    .collect::<Result<Vec<_>, _>>()?;
    writeln!(
        out,
        "\n1. push {} for {:?}",
        p.url.redacted(),
        args.duration
    )?;
    let cancel = interrupt.token.clone();
    let mut seen = PublishAt(None);
    let registry = embedded.ingest.state().clone();
    let view = async {
        tokio::time::sleep((args.duration / 2).min(Duration::from_secs(2))).await;
        registry.registry().streams()
    };
    let ((pushed, played), streams) = tokio::join!(
        play::push_and_play_all(&p, players, &cancel, &mut seen),
        view
    );
    let closed = Instant::now();
    let verdict = &pushed.verdict;
    write_text(&mut out, &pushed)?;
    if let Some(s) = interrupt.signal() {
        // Stopped by the user: the rest of the demo would only report that.
        writeln!(out, "\ndemo stopped by the user ({})", s.name())?;
        let _ = embedded.ingest.shutdown().await;
        stop.cancel();
        return Ok(ExitCode::from(s.exit_code()));
    }
    check(
        &mut out,
        verdict.outcome == Outcome::Accepted,
        "the signed push was accepted and streamed",
    )?;
    for (how, r) in ["RTMP", "HTTP-FLV"].iter().zip(&played) {
        writeln!(
            out,
            "  play back over {how}: {}",
            play::verdict_line(r.as_ref())
        )?;
        check(
            &mut out,
            r.as_ref().is_some_and(|r| {
                r.kept_up(None) && r.latency_method == crate::play::LatencyMethod::Sei
            }),
            &format!("the ingest played the push back over {how}, stamped latency measured"),
        )?;
    }
    match streams.iter().find(|s| s.stream == "demo") {
        Some(s) => {
            writeln!(
                out,
                "  ingest sees: stream {} from {}, {}x{}, {} kbit/s, {} KB",
                s.stream,
                s.client,
                s.width,
                s.height,
                s.bitrate_bps / 1000,
                s.bytes / 1024
            )?;
            check(
                &mut out,
                (s.width, s.height) == (640, 360),
                "the ingest parsed 640x360 from the SPS",
            )?;
        }
        None => check(
            &mut out,
            false,
            "the ingest listed the stream while it was live",
        )?,
    }

    // 2. The two callbacks.
    writeln!(out, "\n2. push callbacks")?;
    let push_cb = next_event(&mut events, EVENT_PUSH, Duration::from_secs(5)).await;
    let end_cb = next_event(&mut events, EVENT_INTERRUPT, Duration::from_secs(5)).await;
    if let (Some(cb), Some(at)) = (&push_cb, seen.0) {
        writeln!(
            out,
            "  event_type 1 (push started) seq {} {}x{}, arrived {:.1} ms after Publish.Start",
            cb.event.sequence,
            cb.event.width,
            cb.event.height,
            ms(cb.arrived.saturating_duration_since(at.into_std()))
        )?;
    }
    if let Some(cb) = &end_cb {
        writeln!(
            out,
            "  event_type 0 (push ended) seq {} errcode {} ({}), push_duration {} ms, arrived {:.1} ms after our close",
            cb.event.sequence,
            cb.event.errcode,
            cb.event.errmsg,
            cb.event.push_duration.unwrap_or(0),
            ms(cb.arrived.saturating_duration_since(closed.into_std()))
        )?;
    }
    let same_seq =
        matches!((&push_cb, &end_cb), (Some(a), Some(b)) if a.event.sequence == b.event.sequence);
    check(
        &mut out,
        push_cb.is_some() && end_cb.is_some(),
        "both callbacks arrived with a valid sign",
    )?;
    check(&mut out, same_seq, "both carry the same sequence")?;

    // 3. An expired URL.
    writeln!(out, "\n3. an expired URL")?;
    let expired = embedded.url("demo-expired", now_unix() - 3600)?;
    let pe = PreparedPush::prepare(&expired, embedded.keys(), &settings)?
        .with_duration(Duration::from_secs(2));
    let expired_push = pe.run(&cancel).await;
    let v = &expired_push.verdict;
    write_text(&mut out, &expired_push)?;
    let rec = embedded
        .ingest
        .state()
        .registry()
        .records()
        .into_iter()
        .find(|r| r.stream == "demo-expired");
    if let Some(rec) = &rec {
        writeln!(
            out,
            "  ingest record: errcode {} sub {} {:?}",
            rec.errcode, rec.sub_errcode, rec.errmsg
        )?;
    }
    check(
        &mut out,
        v.outcome == Outcome::ExpiredUrl,
        "the expired URL was refused and named expired_url",
    )?;
    check(
        &mut out,
        rec.is_some_and(|r| r.sub_errcode == SubErrcode::TX_TIME_EXPIRED),
        "the ingest recorded errcode 18 / 501",
    )?;

    // 4. A duplicate push.
    writeln!(out, "\n4. a second push to a URL in use")?;
    let dup_url = embedded.url("demo-dup", now_unix() + 24 * 3600)?;
    let a = PreparedPush::prepare(&dup_url, embedded.keys(), &settings)?
        .with_duration(Duration::from_secs(4));
    let b = a.with_duration(Duration::from_secs(2));
    let pair = dup::run_pair(&a, &b, &cancel).await;
    if let Some(second) = &pair.second {
        let vb = &second.verdict;
        writeln!(
            out,
            "  second: {} ({})",
            vb.outcome.name(),
            vb.evidence.join("; ")
        )?;
    }
    writeln!(
        out,
        "  first:  {} ({})",
        pair.first.verdict.outcome.name(),
        pair.first.verdict.evidence.join("; ")
    )?;
    check(
        &mut out,
        pair.finding == DupFinding::Refused,
        pair.finding.describe(),
    )?;

    let _ = embedded.ingest.shutdown().await;
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(6), receiver_task).await;
    writeln!(out, "\ndemo {}", if ok { "passed" } else { "FAILED" })?;
    if let Some(s) = interrupt.signal() {
        return Ok(ExitCode::from(s.exit_code()));
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
