//! The arguments of each subcommand, as clap parses them. Commands in
//! `cmd/` turn them into library configurations.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{
    CallbackKeyArgs, ConnectionOptions, KeyArgs, Progress, PushOptions, parse_duration, parse_time,
};
use crate::ingest::DuplicateMode;
use crate::sign::{Scheme, TENCENT_PUSH_SUFFIXES};

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// How long the demo push streams.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub duration: Duration,
}

#[derive(Debug, clap::Args)]
#[command(mut_arg("duration", |a| a.default_value("10s")))]
pub struct SmokeArgs {
    /// Push URL; without one, an embedded ingest on loopback is the target.
    pub url: Option<String>,
    #[command(flatten)]
    pub push: PushOptions,
    /// Print one JSON object: outcome, evidence, step, fix, phases_ms, server_status, ...
    #[arg(long)]
    pub json: bool,
    /// Write a JUnit XML report (one test case per check) to this file, for CI.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Play the stream back from this URL while pushing (stamps the push):
    /// first frame and push-to-play latency join the verdict.
    #[arg(long, value_name = "URL")]
    pub play: Option<String>,
    /// Push each of these codecs (h264, hevc, av1, vp9; comma-separated)
    /// briefly with the built-in fixtures, in Enhanced RTMP and legacy codec
    /// id framing, and print the matrix codec x framing -> accepted / refused
    /// / cut. Each push streams 3 s unless --duration says otherwise.
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = parse_codec, conflicts_with_all = ["fixture", "legacy_codec_id"])]
    pub codecs: Vec<crate::codec::VideoCodec>,
}

fn parse_codec(s: &str) -> Result<crate::codec::VideoCodec, String> {
    crate::codec::VideoCodec::from_name(s).map_err(|e| e.to_string())
}

/// `push`'s options with doctor's defaults: a 3 s push and a 5 s timeout.
#[derive(Debug, Args)]
#[command(
    mut_arg("timeout", |a| a.default_value("5s")),
    mut_arg("duration", |a| a.default_value("3s"))
)]
pub struct DoctorArgs {
    /// Push URL: rtmp[s]://HOST[:PORT]/APP/STREAM?txSecret=..&txTime=..
    pub url: String,
    /// Print one JSON object on stdout instead of text.
    #[arg(long)]
    pub json: bool,
    /// Write a JUnit XML report (one test case per check) to this file, for CI.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// A CNAME target suffix that counts as the push target (repeatable; replaces the Tencent ones).
    #[arg(long, value_name = "SUFFIX", default_values = TENCENT_PUSH_SUFFIXES)]
    pub expect_cname: Vec<String>,
    /// Run the network and push steps against every address (resolved, or
    /// from --resolve), one line each; fails when any edge fails, naming it.
    #[arg(long)]
    pub each_address: bool,
    #[command(flatten)]
    pub push: PushOptions,
    /// Step 6, play back: play the pushed stream from this URL while pushing.
    #[arg(long, value_name = "URL", conflicts_with_all = ["play_domain", "each_address"])]
    pub play: Option<String>,
    /// Step 6, play back: play rtmp://DOMAIN/APP/STREAM (the push URL's app and stream).
    #[arg(long, value_name = "DOMAIN", conflicts_with = "each_address")]
    pub play_domain: Option<String>,
    /// Step 7, codecs: push each of these codecs (h264, hevc, av1, vp9;
    /// comma-separated) briefly with the built-in fixtures in each framing
    /// (Enhanced RTMP, legacy codec id), as `smoke --codecs` does.
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = parse_codec, conflicts_with = "each_address")]
    pub codecs: Vec<crate::codec::VideoCodec>,
}

/// The first push streams for `--hold`; the second for a third of it (1-3 s).
#[derive(Debug, clap::Args)]
#[command(mut_arg("duration", |a| a.hide(true)))]
pub struct DupArgs {
    /// Push URL; without one, an embedded ingest on loopback is the target.
    pub url: Option<String>,
    /// How long the first publisher must keep streaming.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub hold: Duration,
    #[command(flatten)]
    pub push: PushOptions,
    /// Print one JSON object on stdout instead of text: verdict, finding, first, second.
    #[arg(long)]
    pub json: bool,
    /// Write a JUnit XML report (one test case per check) to this file, for CI.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// Push domain to sign URLs for (with --stream-template and PUSHPROBE_KEY).
    #[arg(
        long,
        conflicts_with = "url_template",
        required_unless_present_any = ["url_template", "play_template", "play_domain"]
    )]
    pub domain: Option<String>,
    /// Port of the signed URLs [default: 1935 for rtmp, 443 for rtmps].
    #[arg(long)]
    pub port: Option<u16>,
    /// App (path) of the signed URLs.
    #[arg(long, default_value = "live")]
    pub app: String,
    /// Scheme of the signed URLs.
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
    #[command(flatten)]
    pub conn: ConnectionOptions,
    /// Reconnect a publisher whose push was cut or whose ingest was unreachable,
    /// with jittered exponential backoff (0.5 s doubling to 10 s, ±30%), until
    /// its duration is used up. An expired URL is re-signed first when the push
    /// key is at hand; without it the publisher stops, named expired_url.
    #[arg(long)]
    pub reconnect: bool,
    /// Media timer granularity: messages due within one tick share one write
    /// (sent up to one tick early; never late by design).
    #[arg(long, value_parser = parse_duration, default_value = "200ms")]
    pub tick: Duration,
    /// Run the callback receiver here (key from --callback-key-file or PUSHPROBE_CALLBACK_KEY) and match events to publishers.
    #[arg(long, value_name = "ADDR")]
    pub callback_listen: Option<SocketAddr>,
    #[command(flatten)]
    pub callback_key: CallbackKeyArgs,
    /// How long to wait for callbacks after the last publisher ends.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub callback_grace: Duration,
    /// Print the JSON report (schema.json) on stdout instead of the text report.
    #[arg(long)]
    pub json: bool,
    /// Write the JSON report (schema.json) to this file.
    #[arg(long, value_name = "FILE")]
    pub json_out: Option<PathBuf>,
    /// Write HdrHistogram percentile distributions (.hgrm) into this directory.
    #[arg(long, value_name = "DIR")]
    pub hgrm: Option<PathBuf>,
    /// Write an SVG plot of latency percentiles and the timeline to this file.
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// Write a JUnit XML report (one test case per check) to this file, for CI.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR/metrics while the run lasts
    /// (e.g. 0.0.0.0:9464 in a pod; port 0 picks a free one, printed on stderr).
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// How long /metrics stays up after the run, so the last scrape sees the
    /// final values (at least one scrape interval); Ctrl-C ends it early.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub metrics_linger: Duration,
    /// Run the I-th of N slices of the stream range (0-based), e.g. 2/8.
    #[arg(long, conflicts_with = "shards")]
    pub shard: Option<String>,
    /// Number of shards, the index taken from JOB_COMPLETION_INDEX (Kubernetes Indexed Job).
    #[arg(long)]
    pub shards: Option<u32>,
    /// Progress on stderr.
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: Progress,
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Viewers per stream: each plays its stream back (first byte, first
    /// frame, stalls, lost frames, push-to-play latency from the stamps our
    /// publishers then put in every frame). Without --domain/--url-template:
    /// viewers only, of streams someone else pushes (--publishers streams
    /// named by --stream-template, viewers started at --rate).
    #[arg(long, default_value_t = 0, value_name = "K")]
    pub viewers: u32,
    /// Play URL of each stream: {i} is the stream index, {stream} its name
    /// (e.g. rtmp://127.0.0.1/live/{stream} or http://host/live/{stream}.flv).
    #[arg(long, value_name = "TEMPLATE", conflicts_with = "play_domain")]
    pub play_template: Option<String>,
    /// Play domain (HOST or HOST:PORT): viewers play rtmp://DOMAIN/APP/STREAM,
    /// http://DOMAIN/APP/STREAM.flv or .m3u8, by --play-protocol.
    #[arg(long, value_name = "DOMAIN")]
    pub play_domain: Option<String>,
    /// What viewers play over [default: rtmp, or the --play-template's scheme].
    #[arg(long, value_enum)]
    pub play_protocol: Option<PlayProtocol>,
    /// Viewers' play URLs are signed with the play key (txSecret =
    /// MD5(play key + stream + txTime), expiring after --expires-in) when
    /// one is given, unless the template carries its own txSecret.
    #[command(flatten)]
    pub play_key: PlayKeyArgs,
}

/// `--play-protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlayProtocol {
    Rtmp,
    Flv,
    Hls,
}

impl PlayProtocol {
    pub fn protocol(self) -> crate::play::Protocol {
        match self {
            PlayProtocol::Rtmp => crate::play::Protocol::Rtmp,
            PlayProtocol::Flv => crate::play::Protocol::HttpFlv,
            PlayProtocol::Hls => crate::play::Protocol::Hls,
        }
    }
}

/// `pushprobe serve`: a local Tencent-compatible RTMP ingest.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// RTMP listen address.
    #[arg(long, default_value = "127.0.0.1:1935")]
    pub listen: SocketAddr,
    /// HTTP listen address for GET /streams, /records and /health (none by default).
    #[arg(long, value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// Also take SRT pushes (MPEG-TS over SRT, UDP) on this address, e.g.
    /// 0.0.0.0:9000; the streamid carries APP/STREAM and the signature
    /// (`#!::h=DOMAIN,r=APP/STREAM,txSecret=..,txTime=..`).
    #[arg(long, value_name = "ADDR")]
    pub srt_listen: Option<SocketAddr>,
    /// SRT receive latency (libsrt's default 120 ms; Tencent lists 500 ms-1 s).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "120ms")]
    pub srt_latency: Duration,
    /// The app (path) served; publishes to another app are refused (18/304).
    #[arg(long, default_value = "live")]
    pub app: String,
    /// The push domain, as reported in callbacks.
    #[arg(long, value_name = "NAME", default_value = "localhost")]
    pub domain: String,
    /// Refuse pushes to this stream name (18/305); repeatable.
    #[arg(long = "disable", value_name = "NAME")]
    pub disable: Vec<String>,
    /// A second push to a live stream: refuse it (18/601) or replace the first.
    #[arg(long, value_enum, default_value_t = DuplicateMode::Reject)]
    pub duplicate: DuplicateMode,
    /// Send an error onStatus (BadName / Denied) before closing a refused
    /// publish; Tencent just closes.
    #[arg(long)]
    pub reject_with_status: bool,
    /// Grace after txTime during which a URL is still accepted (e.g. 5m).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "0s")]
    pub auth_delta: Duration,
    /// Largest RTMP message accepted; a larger one ends the push (errcode 7).
    #[arg(long, value_name = "BYTES", default_value_t = 4 << 20)]
    pub max_frame_bytes: u32,
    /// No data for this long ends the push (errcode 8).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "20s")]
    pub idle_timeout: Duration,
    /// Send push / interruption callbacks (Tencent's JSON) to this URL.
    #[arg(long, value_name = "URL")]
    pub callback_url: Option<String>,
    #[command(flatten)]
    pub callback_key: CallbackKeyArgs,
    /// Push keys checked against txSecret; without any, signatures are not checked.
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Retries of a callback the receiver does not answer with 200 (Tencent: up to 12).
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub callback_retries: u32,
    /// Pause between callback retries (Tencent: 1 minute).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "1s")]
    pub callback_retry_interval: Duration,
    /// Play authentication: with a play key, RTMP play and HTTP-FLV URLs
    /// need a valid txSecret (403 / NetStream.Play.Failed otherwise).
    #[command(flatten)]
    pub play_key: PlayKeyArgs,
    /// Live tags a viewer may have queued before it is dropped as too slow
    /// (512 is about 7 s of 30 fps video with AAC audio).
    #[arg(long, value_name = "TAGS", default_value_t = crate::ingest::playout::DEFAULT_QUEUE_TAGS)]
    pub play_queue: usize,
    /// Video codecs taken, comma-separated: h264, hevc, av1, vp9, each in any
    /// framing or as CODEC:enhanced / CODEC:legacy-id (e.g. h264,hevc:legacy-id
    /// for a domain without Enhanced RTMP). A push of another codec is closed
    /// at its first video tag (errcode 6 in the interruption record). Default: all.
    #[arg(long, value_name = "LIST", value_parser = parse_codecs, default_value = "h264,hevc,av1,vp9,vp8,vvc")]
    pub codecs: crate::codec::CodecSet,
}

fn parse_codecs(s: &str) -> Result<crate::codec::CodecSet, String> {
    crate::codec::CodecSet::parse(s).map_err(|e| e.to_string())
}

/// Where the play key comes from: PUSHPROBE_PLAY_KEY, or a file.
#[derive(Debug, Args, Clone, Default)]
pub struct PlayKeyArgs {
    /// Read the play key (txSecret = MD5(play key + stream + txTime)) from the
    /// first line of this file (else PUSHPROBE_PLAY_KEY).
    #[arg(long, value_name = "PATH")]
    pub play_key_file: Option<PathBuf>,
}

impl PlayKeyArgs {
    /// The play key from the file, else the environment; `None` when neither has one.
    pub fn key(&self) -> Result<Option<crate::secret::Secret>, crate::secret::SecretError> {
        match &self.play_key_file {
            Some(p) => crate::secret::from_file(p).map(Some),
            None => crate::secret::from_env("PUSHPROBE_PLAY_KEY"),
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct CallbacksArgs {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Only accept POSTs to this path (default: any path).
    #[arg(long)]
    pub path: Option<String>,
    #[command(flatten)]
    pub callback_key: CallbackKeyArgs,
}

/// Merge JSON reports of `pushprobe load` (one per shard) into one.
#[derive(Debug, Clone, clap::Args)]
pub struct MergeArgs {
    /// Reports written by `pushprobe load --json`.
    #[arg(required = true, num_args = 1.., value_name = "REPORT.json")]
    pub files: Vec<PathBuf>,
    /// Print the merged JSON report on stdout instead of the text report.
    #[arg(long)]
    pub json: bool,
    /// Write the merged JSON report to this file.
    #[arg(long, value_name = "FILE")]
    pub json_out: Option<PathBuf>,
    /// Write one HdrHistogram percentile distribution (.hgrm) per histogram into this directory.
    #[arg(long, value_name = "DIR")]
    pub hgrm: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct UrlArgs {
    /// Explain this URL instead of building one: parts, expiry, signature.
    #[arg(long, value_name = "URL", conflicts_with_all = ["domain", "stream"])]
    pub check: Option<String>,
    /// Push domain (e.g. livepush.example.com).
    #[arg(long, required_unless_present_any = ["check", "play"])]
    pub domain: Option<String>,
    /// Stream name.
    #[arg(long, required_unless_present = "check")]
    pub stream: Option<String>,
    /// App name (path).
    #[arg(long, default_value = "live")]
    pub app: String,
    /// Port; omitted from the URL when not given.
    #[arg(long)]
    pub port: Option<u16>,
    /// Scheme of the URL: rtmp, rtmps (RTMP over TLS), or srt (same as --srt).
    #[arg(long, value_enum, default_value = "rtmp")]
    pub scheme: Scheme,
    /// Build Tencent's SRT push URL (srt://DOMAIN:9000?streamid=#!::h=..,r=APP/STREAM,..),
    /// signed with the same key and expiry.
    #[arg(long, conflicts_with = "scheme")]
    pub srt: bool,
    /// UDP port of the SRT URL (with --srt or --scheme srt).
    #[arg(long, default_value_t = crate::sign::SRT_PORT)]
    pub srt_port: u16,
    /// Expiry as a duration from now (e.g. 24h, 90m).
    #[arg(long, value_parser = parse_duration, conflicts_with = "expires_at")]
    pub expires_in: Option<Duration>,
    /// Expiry as Unix seconds or RFC 3339 (2026-11-23T00:00:00Z).
    #[arg(long, value_parser = parse_time)]
    pub expires_at: Option<u64>,
    /// Print txSecret in --check output instead of ***.
    #[arg(long)]
    pub show_secrets: bool,
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Build play URLs (RTMP, HTTP-FLV, HLS) for --play-domain instead of a
    /// push URL; signed with the play key when one is given, else unsigned.
    #[arg(long, requires = "play_domain", conflicts_with = "check")]
    pub play: bool,
    /// Play domain (e.g. liveplay.example.com), for --play.
    #[arg(long, value_name = "DOMAIN")]
    pub play_domain: Option<String>,
    #[command(flatten)]
    pub play_key: PlayKeyArgs,
}

#[derive(Debug, Args)]
#[command(mut_arg("duration", |a| a.default_value("30s")))]
pub struct PushArgs {
    /// Push URL: rtmp[s]://HOST[:PORT]/APP/STREAM?txSecret=..&txTime=..
    pub url: String,
    #[command(flatten)]
    pub push: PushOptions,
    /// Print one JSON object on stdout instead of text.
    #[arg(long)]
    pub json: bool,
    /// Play the stream back from this URL while pushing (stamps the push):
    /// first frame and push-to-play latency join the verdict.
    #[arg(long, value_name = "URL")]
    pub play: Option<String>,
}

/// `pushprobe play URL`: one player and its measurements.
#[derive(Debug, clap::Args)]
pub struct PlayArgs {
    /// Play URL: rtmp[s]://HOST[:PORT]/APP/STREAM, http[s]://HOST/PATH.flv (HTTP-FLV) or .../NAME.m3u8 (HLS).
    pub url: String,
    /// How long to receive after the first video frame.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10s")]
    pub duration: Duration,
    /// Bound on each wait: DNS, TCP, each command or response, the first frame, and any silence.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10s")]
    pub timeout: Duration,
    /// No frame for longer than this is a stall; any stall fails the check.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "1s")]
    pub stall: Duration,
    /// Fail when the p99 push-to-play latency is over this (when latency is measured).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub max_latency: Option<Duration>,
    /// Accept any TLS certificate for rtmps:// and https://.
    #[arg(long)]
    pub insecure: bool,
    /// Print one JSON object on stdout instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub dial: super::DialArgs,
}
