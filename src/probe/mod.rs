//! One classified push, the library behind `push`, `smoke`, `doctor`, `dup`,
//! `demo` and `load`: validate everything local, run the publisher, weigh the
//! local facts, give the verdict. Commands parse arguments, call this and
//! render; nothing here reads arguments or prints.

pub mod codecs;
pub mod dup;
pub mod embedded;
pub mod play;
pub mod report;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::classify::{self, LocalFacts, Outcome, Uplink, Verdict};
use crate::flv::{self, Fixture, FlvError};
use crate::media::MediaPlan;
use crate::publish::dial::DialOptions;
use crate::publish::{self, Observer, PublishConfig, PublishResult};
use crate::sign::{self, Keys, PushUrl, UrlError};
use crate::signal::Signal;
use crate::srt::publish::SrtMedia;

pub use embedded::{Embedded, Target};

/// Why a push cannot start: something local, found before any connection.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error(transparent)]
    Url(#[from] UrlError),
    #[error(transparent)]
    Fixture(#[from] FlvError),
    #[error("cannot carry the fixture over SRT: {0}")]
    Ts(#[from] crate::ts::mux::MuxError),
}

/// How to push, whatever the command: the fixture and the connection options.
#[derive(Debug, Clone)]
pub struct PushSettings {
    /// FLV file to push; `None` is the embedded 640x360 fixture.
    pub fixture: Option<PathBuf>,
    /// How long to stream after Publish.Start.
    pub duration: Duration,
    /// Bound of each phase and of each write.
    pub timeout: Duration,
    pub chunk_size: u32,
    /// Accept any TLS certificate.
    pub insecure: bool,
    /// A push the server ends this soon after Publish.Start was refused.
    pub refusal_window: Duration,
    /// Resolver, address families and forced addresses.
    pub dial: DialOptions,
    /// Add `txHost=` to the query: `Some("")` the URL's host, `Some(d)` d.
    pub tx_host: Option<String>,
    /// Stamp H.264 frames for per-frame latency (`stamp`).
    pub stamp: bool,
    /// SRT latency asked for on `srt://` pushes.
    pub srt_latency: Duration,
    /// Push Enhanced RTMP video as legacy FLV codec id 12/13 (`--legacy-codec-id`).
    pub legacy_codec_id: bool,
}

impl Default for PushSettings {
    fn default() -> PushSettings {
        PushSettings {
            fixture: None,
            duration: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            chunk_size: 4096,
            insecure: false,
            refusal_window: publish::REFUSAL_WINDOW,
            dial: DialOptions::default(),
            tx_host: None,
            stamp: false,
            srt_latency: crate::srt::caller::DEFAULT_LATENCY,
            legacy_codec_id: false,
        }
    }
}

/// A push ready to run: URL, keys, media plan and config, validated.
#[derive(Clone)]
pub struct PreparedPush {
    pub url: PushUrl,
    /// The keys local facts are checked against (the user's, or the embedded ingest's).
    pub keys: Keys,
    pub plan: Arc<MediaPlan>,
    pub config: PublishConfig,
    /// How the fixture is named in output: its path, or "embedded sd-360p.flv".
    pub fixture_name: String,
}

/// A push that ran: the wire record, its verdict and, when it streamed,
/// whether the uplink carried the fixture's bitrate.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub result: PublishResult,
    pub verdict: Verdict,
    pub uplink: Option<Uplink>,
}

impl Pushed {
    /// The user stopped the push before its end (`cancelled`, or accepted
    /// and stopped early).
    pub fn stopped_by_user(&self) -> bool {
        self.result.cancelled().is_some()
    }

    /// The process exit code for this push: 128 + the signal when the user
    /// stopped it before its end (130 SIGINT, 143 SIGTERM); else 0 when
    /// accepted, 1 otherwise (refused, failed, interrupted, too slow).
    pub fn exit_code(&self, signal: Option<Signal>) -> u8 {
        match signal {
            Some(s) if self.stopped_by_user() => s.exit_code(),
            _ if self.verdict.outcome == Outcome::Accepted => 0,
            _ => 1,
        }
    }
}

/// Loads the fixture at `path`, or the embedded one; with its display name.
/// With `legacy_codec_id` its Enhanced RTMP video is rewritten once to FLV
/// codec id 12/13 (see [`Fixture::with_legacy_codec_id`]).
pub fn load_fixture(
    path: Option<&Path>,
    legacy_codec_id: bool,
) -> Result<(Fixture, String), FlvError> {
    let (fixture, name) = match path {
        Some(p) => (flv::load(p)?, p.display().to_string()),
        None => (flv::default_fixture(), "embedded sd-360p.flv".to_string()),
    };
    if legacy_codec_id {
        return Ok((fixture.with_legacy_codec_id()?, name));
    }
    Ok((fixture, name))
}

impl PreparedPush {
    /// Validates the URL (its txTime too) and the fixture; no connection yet.
    pub fn prepare(
        url: &str,
        keys: Keys,
        settings: &PushSettings,
    ) -> Result<PreparedPush, PrepareError> {
        // The URL is checked before the fixture is read, as it always was.
        PushUrl::parse(url)?.expiry()?;
        let (fixture, fixture_name) =
            load_fixture(settings.fixture.as_deref(), settings.legacy_codec_id)?;
        PreparedPush::prepare_fixture(url, keys, settings, &fixture, fixture_name)
    }

    /// [`PreparedPush::prepare`] with a fixture already loaded (and framed)
    /// instead of `settings.fixture`.
    pub fn prepare_fixture(
        url: &str,
        keys: Keys,
        settings: &PushSettings,
        fixture: &Fixture,
        fixture_name: String,
    ) -> Result<PreparedPush, PrepareError> {
        let url = PushUrl::parse(url)?;
        url.expiry()?;
        let plan = MediaPlan::build(fixture, settings.chunk_size, settings.stamp);
        let mut config = PublishConfig::new(url.clone());
        config.srt = srt_media(&url, fixture, settings.srt_latency)?;
        config.timeout = settings.timeout;
        config.duration = Some(settings.duration);
        config.chunk_size = settings.chunk_size;
        config.insecure = settings.insecure;
        config.refusal_window = settings.refusal_window;
        config.dial = Arc::new(settings.dial.clone());
        // txHost travels to the server; local facts read the URL as given.
        if let Some(domain) = tx_host(settings.tx_host.as_deref(), &url) {
            config.url.query.push(("txHost".into(), domain));
        }
        Ok(PreparedPush {
            url,
            keys,
            plan,
            config,
            fixture_name,
        })
    }

    /// The same push streaming for `duration` instead.
    pub fn with_duration(&self, duration: Duration) -> PreparedPush {
        let mut p = self.clone();
        p.config.duration = Some(duration);
        p
    }

    /// What we know locally about this URL at `now`.
    pub fn facts(&self, now: u64, our_other_publisher: bool) -> LocalFacts {
        local_facts(&self.url, &self.keys, now, our_other_publisher)
    }

    /// Runs the push to its end and classifies it, with `now` read at the end.
    pub async fn run(&self, cancel: &CancellationToken) -> Pushed {
        self.run_observed(cancel, &mut (), false).await
    }

    /// [`PreparedPush::run`] with an observer of its phases; `our_other_publisher`
    /// says another of our publishers held the stream meanwhile.
    pub async fn run_observed(
        &self,
        cancel: &CancellationToken,
        observer: &mut dyn Observer,
        our_other_publisher: bool,
    ) -> Pushed {
        let result = publish::publish(&self.config, &self.plan, cancel, observer).await;
        let facts = self.facts(crate::clock::now_unix(), our_other_publisher);
        let mut verdict = classify::classify(&result, &facts);
        // Is the uplink enough for this bitrate? A push that fell too far
        // behind says so (load judges lag in its own report).
        let uplink = classify::uplink(&result, self.plan.bitrate_bps);
        if let Some(u) = &uplink {
            verdict = verdict.judge_uplink(u);
        }
        verdict = verdict.judge_codec(&result, self.plan.pushed_video());
        Pushed {
            result,
            verdict,
            uplink,
        }
    }

    /// The URL as output shows it: txSecret as `***` unless `show_secrets`.
    pub fn shown_url(&self, show_secrets: bool) -> String {
        shown_url(&self.url, show_secrets)
    }
}

/// For an `srt://` URL, the fixture muxed as TS (once, shared by every
/// publisher) and the latency; `None` for RTMP.
pub fn srt_media(
    url: &PushUrl,
    fixture: &Fixture,
    latency: Duration,
) -> Result<Option<SrtMedia>, crate::ts::mux::MuxError> {
    if url.scheme != sign::Scheme::Srt {
        return Ok(None);
    }
    Ok(Some(SrtMedia {
        ts: Arc::new(crate::ts::mux::TsLoop::new(fixture)?),
        latency,
    }))
}

/// Local facts about a URL for the classifier.
pub fn local_facts(url: &PushUrl, keys: &Keys, now: u64, our_other_publisher: bool) -> LocalFacts {
    LocalFacts {
        expiry: url
            .expiry()
            .ok()
            .flatten()
            .map(|e| sign::expiry_status(e, now)),
        has_tx_time: url.tx_time().is_some(),
        has_tx_secret: url.tx_secret().is_some(),
        other_params: url
            .query
            .iter()
            .map(|(k, _)| k.clone())
            .filter(|k| !["txSecret", "txTime", "txHost"].contains(&k.as_str()))
            // An SRT streamid's domain and mode are no signature.
            .filter(|k| url.scheme != sign::Scheme::Srt || !["h", "m"].contains(&k.as_str()))
            .collect(),
        secret: sign::check_secret(url, keys),
        our_other_publisher,
    }
}

/// The `txHost` value `--tx-host` asks for: `Some("")` is the URL's own
/// host, `Some(domain)` that domain, `None` no txHost.
pub fn tx_host(flag: Option<&str>, url: &PushUrl) -> Option<String> {
    match flag? {
        "" => Some(url.host.clone()),
        domain => Some(domain.to_string()),
    }
}

/// A URL as output shows it: txSecret as `***` unless `show_secrets`.
pub fn shown_url(url: &PushUrl, show_secrets: bool) -> String {
    if show_secrets {
        url.to_string()
    } else {
        url.redacted()
    }
}
