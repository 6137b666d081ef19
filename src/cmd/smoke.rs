//! `pushprobe smoke [URL]`: push the fixture, classify, print the verdict.
//! Without a URL it runs against an embedded ingest on loopback.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use super::push::{self, Prepared};
use crate::cli::{PushOptions, now_unix};
use crate::ingest::{self, IngestConfig, IngestHandle};
use crate::secret::Secret;
use crate::sign::{self, Keys, Scheme, UrlSpec};

#[derive(Debug, clap::Args)]
pub struct SmokeArgs {
    /// Push URL; without one, an embedded ingest on loopback is the target.
    pub url: Option<String>,
    #[command(flatten)]
    pub push: PushOptions,
    /// Print one JSON object: outcome, evidence, step, fix, phases_ms, server_status, ...
    #[arg(long)]
    pub json: bool,
}

/// An embedded ingest that checks signatures, and a URL signed for it.
pub struct Embedded {
    pub ingest: IngestHandle,
    pub key: Secret,
}

impl Embedded {
    pub async fn start(config: IngestConfig) -> anyhow::Result<Embedded> {
        let key = Secret::new(random_hex(16));
        let config = IngestConfig {
            keys: Keys {
                primary: Some(key.clone()),
                backup: None,
            },
            ..config
        };
        let ingest = ingest::spawn(config)
            .await
            .context("cannot start the embedded ingest on loopback")?;
        Ok(Embedded { ingest, key })
    }

    /// A URL for `stream` on the embedded ingest, expiring at `expiry_unix`.
    pub fn url(&self, stream: &str, expiry_unix: u64) -> anyhow::Result<String> {
        let spec = UrlSpec {
            scheme: Scheme::Rtmp,
            domain: self.ingest.rtmp_addr.ip().to_string(),
            port: Some(self.ingest.rtmp_addr.port()),
            app: "live".into(),
            stream: stream.into(),
        };
        Ok(sign::sign_url(&spec, &self.key, expiry_unix)?.to_string())
    }

    pub fn keys(&self) -> Keys {
        Keys {
            primary: Some(self.key.clone()),
            backup: None,
        }
    }
}

/// Hex of `n` bytes from the OS's randomness via std's hasher seeds (no extra crate).
pub fn random_hex(n: usize) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::new();
    while out.len() < n * 2 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out.truncate(n * 2);
    out
}

pub async fn run(args: &SmokeArgs) -> anyhow::Result<ExitCode> {
    let opts = &args.push;
    let embedded = match &args.url {
        Some(_) => None,
        None => Some(Embedded::start(IngestConfig::default()).await?),
    };
    let url = match (&args.url, &embedded) {
        (Some(u), _) => u.clone(),
        (None, Some(e)) => e.url("smoke", now_unix() + 24 * 3600)?,
        (None, None) => unreachable!("an embedded ingest exists when no URL is given"),
    };
    let mut p: Prepared = push::prepare(&url, opts, Duration::from_secs(10))
        .context("cannot start the smoke test")?;
    if let Some(e) = &embedded {
        p.keys = e.keys();
        if !args.json {
            eprintln!(
                "no URL given: pushing to an embedded ingest on {}",
                e.ingest.rtmp_addr
            );
        }
    }
    let cancel = push::cancel_on_signal();
    let (result, verdict) = push::run_one(&p, &cancel).await;
    let mut out = std::io::stdout().lock();
    if args.json {
        use std::io::Write;
        writeln!(
            out,
            "{}",
            push::result_json(&p, &result, &verdict, opts.show_secrets)
        )?;
    } else {
        push::write_text(&mut out, &result, &verdict)?;
    }
    if let Some(e) = embedded {
        let _ = e.ingest.shutdown().await;
    }
    Ok(push::exit_for(verdict.outcome))
}
