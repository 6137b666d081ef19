//! `pushprobe serve`: the local Tencent-compatible ingest as a process: keys
//! from the environment, listeners, callbacks, until Ctrl-C.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::cli::ServeArgs;
use crate::ingest::{self, IngestConfig};
use crate::notify::{Notifier, NotifyConfig};
use crate::sign::Keys;
use crate::srt::listen::{ListenConfig, Listener};

/// The validated configuration; keys come from the environment.
fn config(args: &ServeArgs, keys: Keys) -> anyhow::Result<IngestConfig> {
    anyhow::ensure!(
        args.max_frame_bytes >= 1024,
        "--max-frame-bytes {} is too small to carry even a connect command: use at least 1024",
        args.max_frame_bytes
    );
    anyhow::ensure!(args.play_queue >= 1, "--play-queue must be at least 1 tag");
    anyhow::ensure!(
        !args.idle_timeout.is_zero(),
        "--idle-timeout must be above zero"
    );
    anyhow::ensure!(
        !args.app.is_empty() && !args.app.contains(['?', '/']),
        "--app {:?} must be a plain app name such as `live`",
        args.app
    );
    Ok(IngestConfig {
        app: args.app.clone(),
        domain: args.domain.clone(),
        keys,
        disabled: args.disable.clone(),
        duplicate: args.duplicate,
        reject_with_status: args.reject_with_status,
        auth_delta: args.auth_delta,
        max_frame_bytes: args.max_frame_bytes,
        idle_timeout: args.idle_timeout,
        handshake_timeout: IngestConfig::default().handshake_timeout,
        notifier: None,
        play_keys: Keys::default(),
        play_queue: args.play_queue,
        codecs: args.codecs.clone(),
    })
}

/// The callback sender's configuration, when --callback-url is given; the
/// key comes from --callback-key-file or PUSHPROBE_CALLBACK_KEY.
fn notify_config(args: &ServeArgs) -> anyhow::Result<Option<NotifyConfig>> {
    let Some(url) = &args.callback_url else {
        return Ok(None);
    };
    let key = args.callback_key.key()?;
    if key.is_none() {
        tracing::warn!(
            "no callback key (PUSHPROBE_CALLBACK_KEY or --callback-key-file): callbacks are signed with an empty key"
        );
    }
    let cfg = NotifyConfig {
        key,
        retries: args.callback_retries,
        retry_interval: args.callback_retry_interval,
        domain: args.domain.clone(),
        node: args.listen.ip().to_string(),
        ..NotifyConfig::new(url.clone())
    };
    cfg.uri()?;
    Ok(Some(cfg))
}

/// Runs `pushprobe serve` until Ctrl-C. Keys come from PUSHPROBE_KEY and
/// PUSHPROBE_BACKUP_KEY; without either, signatures are not checked.
pub async fn run(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let keys = args.keys.keys()?;
    let mut config = config(args, keys)?;
    config.play_keys.primary = args.play_key.key()?;
    if let Some(cfg) = notify_config(args)? {
        eprintln!("pushprobe serve: callbacks to {}", cfg.url);
        config.notifier = Some(Notifier::start(cfg)?);
    }
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen for RTMP on {}", args.listen))?;
    let http = match args.http {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen for HTTP on {addr}"))?,
        ),
        None => None,
    };
    eprintln!(
        "pushprobe serve: RTMP on rtmp://{}/{}/STREAM",
        listener.local_addr()?,
        config.app
    );
    if let Some(h) = &http {
        eprintln!(
            "pushprobe serve: HTTP on http://{0}/streams, http://{0}/records, http://{0}/health",
            h.local_addr()?
        );
        eprintln!(
            "pushprobe serve: play HTTP-FLV at http://{}/{}/STREAM.flv (RTMP play on the RTMP port)",
            h.local_addr()?,
            config.app
        );
    }
    if config.play_keys.primary.is_some() {
        eprintln!(
            "pushprobe serve: play authentication on: play URLs need a txSecret signed with the play key"
        );
    }
    let srt = match args.srt_listen {
        Some(addr) => {
            let cfg = ListenConfig {
                latency: args.srt_latency,
                // Past the ingest's own idle timeout, so a silent caller
                // ends as idle (errcode 8), not as a close.
                peer_idle_timeout: config.idle_timeout + Duration::from_secs(5),
            };
            let l = Listener::bind(addr, cfg)
                .await
                .with_context(|| format!("cannot listen for SRT on {addr}"))?;
            eprintln!(
                "pushprobe serve: SRT on srt://{} (streamid #!::r={}/STREAM,txSecret=..,txTime=..)",
                l.local_addr(),
                config.app
            );
            Some(l)
        }
        None => None,
    };
    match (&config.keys.primary, &config.keys.backup) {
        (None, None) => eprintln!(
            "pushprobe serve: no PUSHPROBE_KEY or PUSHPROBE_BACKUP_KEY set: txSecret is not checked"
        ),
        (p, b) => eprintln!(
            "pushprobe serve: checking txSecret against the {}",
            match (p.is_some(), b.is_some()) {
                (true, true) => "primary and backup keys",
                (true, false) => "primary key",
                _ => "backup key",
            }
        ),
    }
    let stop = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!("cannot wait for Ctrl-C ({e}); running until killed");
            std::future::pending::<()>().await;
        }
    };
    match srt {
        Some(srt) => ingest::run_with_srt(listener, http, srt, config, stop).await?,
        None => ingest::run(listener, http, config, stop).await?,
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::ingest::DuplicateMode;

    #[derive(clap::Parser)]
    struct ServeCli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn serve_args(args: &[&str]) -> Result<ServeArgs, clap::Error> {
        use clap::Parser;
        ServeCli::try_parse_from(std::iter::once("serve").chain(args.iter().copied()))
            .map(|c| c.serve)
    }

    #[test]
    fn serve_args_defaults_and_validation() {
        let a = serve_args(&[]).unwrap();
        assert_eq!(a.listen, "127.0.0.1:1935".parse().unwrap());
        assert_eq!((a.app.as_str(), a.domain.as_str()), ("live", "localhost"));
        assert_eq!(a.http, None);
        assert_eq!(a.duplicate, DuplicateMode::Reject);
        let c = config(&a, Keys::default()).unwrap();
        assert_eq!(c.max_frame_bytes, 4 << 20);
        assert_eq!(c.idle_timeout, Duration::from_secs(20));
        assert_eq!(c.auth_delta, Duration::ZERO);
        assert!(notify_config(&a).unwrap().is_none());

        let a = serve_args(&[
            "--listen=0.0.0.0:1936",
            "--http=127.0.0.1:8080",
            "--disable=a",
            "--disable=b",
            "--duplicate=replace",
            "--reject-with-status",
            "--auth-delta=5m",
            "--idle-timeout=1s",
            "--callback-url=http://127.0.0.1:9/cb",
            "--callback-retries=1",
            "--callback-retry-interval=250ms",
        ])
        .unwrap();
        let c = config(&a, Keys::default()).unwrap();
        assert_eq!(c.disabled, vec!["a", "b"]);
        assert_eq!(c.duplicate, DuplicateMode::Replace);
        assert!(c.reject_with_status);
        assert_eq!(c.auth_delta, Duration::from_secs(300));
        assert_eq!(c.idle_timeout, Duration::from_secs(1));
        let n = notify_config(&a).unwrap().unwrap();
        assert_eq!(
            (n.retries, n.retry_interval),
            (1, Duration::from_millis(250))
        );
        assert_eq!(
            (n.domain.as_str(), n.node.as_str()),
            ("localhost", "0.0.0.0")
        );
        assert!(n.key.is_none());

        assert!(serve_args(&["--duplicate=maybe"]).is_err());
        assert!(serve_args(&["--auth-delta=soon"]).is_err());
        let bad = |args: &[&str]| config(&serve_args(args).unwrap(), Keys::default());
        assert!(bad(&["--max-frame-bytes=10"]).is_err());
        assert!(bad(&["--idle-timeout=0s"]).is_err());
        assert!(bad(&["--app=live/x"]).is_err());
        assert!(bad(&["--play-queue=0"]).is_err());
        assert_eq!(c.play_queue, crate::ingest::playout::DEFAULT_QUEUE_TAGS);
        let https = serve_args(&["--callback-url=https://h/cb"]).unwrap();
        assert!(notify_config(&https).is_err());
    }
}
