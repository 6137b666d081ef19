//! Command-line interface: the clap derive structs, the option groups shared
//! by several commands, and value parsers. Imports no command: `cmd/` reads
//! these and turns them into library configurations.

mod args;

pub use args::*;

use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use clap::{Args, Parser, Subcommand};

use crate::secret::{self, Secret};
use crate::sign::Keys;

/// RTMP test push client and load generator for Tencent Cloud CSS style push domains.
#[derive(Debug, Parser)]
#[command(name = "pushprobe", version, about, long_about = None)]
pub struct Cli {
    /// Log level for diagnostics on stderr (error, warn, info, debug, trace).
    #[arg(long, global = true, default_value = "warn", env = "PUSHPROBE_LOG")]
    pub log: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The whole job offline: embedded ingest, signed push, callbacks, refusals.
    Demo(DemoArgs),
    /// Build a signed push URL, or explain one with --check.
    Url(UrlArgs),
    /// Push the fixture to one URL and report phase timings and the outcome.
    Push(PushArgs),
    /// Push, classify and print the verdict; without a URL, against an embedded ingest.
    Smoke(SmokeArgs),
    /// Run Tencent's push checklist on a URL: CNAME, network, txTime, txSecret, a short push.
    Doctor(DoctorArgs),
    /// Check that a second push to a URL in use is refused while the first keeps streaming.
    Dup(DupArgs),
    /// Many concurrent publishers: phase histograms, callbacks, reports, shards.
    Load(Box<LoadArgs>),
    /// Work with load reports.
    #[command(subcommand)]
    Report(ReportCommand),
    /// Run a local Tencent-compatible RTMP ingest (auth rules, records, callbacks).
    Serve(ServeArgs),
    /// Receive and verify Tencent push callbacks (sign = MD5(key + t)).
    Callbacks(CallbacksArgs),
    /// Play a stream (RTMP, HTTP-FLV, HLS): phases, frames, stalls, push-to-play latency.
    Play(PlayArgs),
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Merge shard reports exactly (histograms added, counts summed).
    Merge(MergeArgs),
}

/// Where push keys come from: PUSHPROBE_KEY / PUSHPROBE_BACKUP_KEY, or files.
#[derive(Debug, Args, Clone, Default)]
pub struct KeyArgs {
    /// Read the primary push key from the first line of this file (else PUSHPROBE_KEY).
    #[arg(long, value_name = "PATH")]
    pub key_file: Option<PathBuf>,
    /// The primary push key on the command line. Visible to other users in argv: prefer PUSHPROBE_KEY.
    #[arg(long, value_name = "KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// Read the backup push key from this file (else PUSHPROBE_BACKUP_KEY).
    #[arg(long, value_name = "PATH")]
    pub backup_key_file: Option<PathBuf>,
}

impl KeyArgs {
    /// Resolves the keys: flag file, flag, then environment.
    pub fn keys(&self) -> Result<Keys, secret::SecretError> {
        let primary = match (&self.key_file, &self.key) {
            (Some(p), _) => Some(secret::from_file(p)?),
            (None, Some(k)) => Some(secret::from_flag(k)?),
            (None, None) => secret::from_env("PUSHPROBE_KEY")?,
        };
        let backup = match &self.backup_key_file {
            Some(p) => Some(secret::from_file(p)?),
            None => secret::from_env("PUSHPROBE_BACKUP_KEY")?,
        };
        Ok(Keys { primary, backup })
    }

    pub fn primary(&self) -> Result<Option<Secret>, secret::SecretError> {
        Ok(self.keys()?.primary)
    }
}

/// How to connect and what to send: the options every command that pushes
/// shares (push, smoke, doctor, dup, load).
#[derive(Debug, Args, Clone)]
pub struct ConnectionOptions {
    /// FLV file to push (H.264, or HEVC/AV1/VP9 in Enhanced RTMP or legacy
    /// codec id framing; AAC audio); default: the embedded 640x360 fixture.
    #[arg(long, value_name = "FILE")]
    pub fixture: Option<PathBuf>,
    /// Send HEVC as FLV codec id 12 and AV1 as 13 (the Chinese CDN framing)
    /// instead of Enhanced RTMP FourCCs; no fourCcList in connect.
    #[arg(long)]
    pub legacy_codec_id: bool,
    /// Timeout for each phase (DNS, TCP, handshake, connect, createStream, publish) and each write.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10s")]
    pub timeout: Duration,
    /// Outbound RTMP chunk size in bytes (Tencent flags sizes over 8192).
    #[arg(long, value_name = "BYTES", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(128..=65536))]
    pub chunk_size: u32,
    /// Accept any TLS certificate for rtmps:// (self-signed test ingests).
    #[arg(long)]
    pub insecure: bool,
    /// A push the server closes (or answers with an error) this soon after
    /// NetStream.Publish.Start was refused, not accepted and interrupted; 0s
    /// counts every such close as an interruption (ingest restart tests).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "2s")]
    pub refusal_window: Duration,
    /// Stamp every H.264 frame with an SEI carrying publisher id, frame
    /// sequence and send time, so a player can measure per-frame latency
    /// (on whenever the command also plays the stream back).
    #[arg(long)]
    pub stamp: bool,
    #[command(flatten)]
    pub dial: DialArgs,
    /// SRT latency asked for on srt:// pushes (the peers settle on the larger;
    /// Tencent suggests 500 ms-1 s on long or lossy paths).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "120ms")]
    pub srt_latency: Duration,
}

/// Options shared by the commands that run single pushes (push, smoke,
/// doctor, dup). Each command sets its own `--duration` default.
#[derive(Debug, Args, Clone)]
pub struct PushOptions {
    #[command(flatten)]
    pub conn: ConnectionOptions,
    /// How long to stream after the server accepts.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Show txSecret and keys in output instead of ***.
    #[arg(long)]
    pub show_secrets: bool,
    #[command(flatten)]
    pub keys: KeyArgs,
}

/// How to reach the host: address families (and, below, forced addresses).
#[derive(Debug, Args, Clone, Default)]
pub struct DialArgs {
    /// Dial IPv4 addresses only (as curl -4).
    #[arg(short = '4', long, conflicts_with = "ipv6")]
    pub ipv4: bool,
    /// Dial IPv6 addresses only (as curl -6).
    #[arg(short = '6', long)]
    pub ipv6: bool,
    /// Connect to ADDR (one or more, comma-separated) for HOST:PORT, as curl;
    /// tcUrl, TLS name and signature keep the URL's host. Repeatable.
    #[arg(long, value_name = "HOST:PORT:ADDR")]
    pub resolve: Vec<String>,
    /// Connect to ADDR:PORT2 instead of HOST:PORT, as curl (empty parts match
    /// any / keep the original). Repeatable.
    #[arg(long, value_name = "HOST:PORT:ADDR:PORT2")]
    pub connect_to: Vec<String>,
    /// Add txHost=DOMAIN to the query (`--tx-host` alone: the URL's host), for
    /// ingests that read the domain there when pushed to by IP.
    #[arg(
        long,
        value_name = "DOMAIN",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = ""
    )]
    pub tx_host: Option<String>,
}

impl DialArgs {
    /// The dialing options these flags ask for.
    pub fn options(
        &self,
    ) -> Result<crate::publish::dial::DialOptions, crate::publish::dial::ForceError> {
        crate::publish::dial::DialOptions::forced(
            crate::publish::dial::Family::from_flags(self.ipv4, self.ipv6),
            &self.resolve,
            &self.connect_to,
        )
    }

    /// The txHost value to add to `url`'s query, if asked for.
    pub fn tx_host(&self, url: &crate::sign::PushUrl) -> Option<String> {
        crate::probe::tx_host(self.tx_host.as_deref(), url)
    }
}

impl PushOptions {
    /// The library's push settings, streaming for `default_duration` unless
    /// `--duration` says otherwise.
    pub fn settings(
        &self,
        default_duration: Duration,
    ) -> Result<crate::probe::PushSettings, crate::publish::dial::ForceError> {
        Ok(crate::probe::PushSettings {
            fixture: self.conn.fixture.clone(),
            duration: self.duration.unwrap_or(default_duration),
            timeout: self.conn.timeout,
            chunk_size: self.conn.chunk_size,
            insecure: self.conn.insecure,
            refusal_window: self.conn.refusal_window,
            dial: self.conn.dial.options()?,
            tx_host: self.conn.dial.tx_host.clone(),
            stamp: self.conn.stamp,
            srt_latency: self.conn.srt_latency,
            legacy_codec_id: self.conn.legacy_codec_id,
        })
    }
}

/// Where the callback key comes from: PUSHPROBE_CALLBACK_KEY, or a file.
#[derive(Debug, Args, Clone, Default)]
pub struct CallbackKeyArgs {
    /// Read the callback key (sign = MD5(key + t)) from the first line of this file (else PUSHPROBE_CALLBACK_KEY).
    #[arg(long, value_name = "PATH")]
    pub callback_key_file: Option<PathBuf>,
}

impl CallbackKeyArgs {
    /// The callback key from the file, else the environment; `None` when neither has one.
    pub fn key(&self) -> Result<Option<Secret>, secret::SecretError> {
        match &self.callback_key_file {
            Some(p) => secret::from_file(p).map(Some),
            None => secret::from_env("PUSHPROBE_CALLBACK_KEY"),
        }
    }
}

/// How `load` shows progress on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Progress {
    /// A bar on a terminal, a plain line every 5 s otherwise.
    Auto,
    /// A live bar.
    Bar,
    /// A plain line every 5 s.
    Plain,
    /// Nothing until the report.
    None,
}

/// Parses a duration like `30s`, `10m`, `24h`, `1500ms`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(format!(
            "{s} has no unit: add a unit, like {s}s, {s}m or {s}h"
        ));
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("{e}: expected a duration like 30s, 10m or 24h"))
}

/// Parses Unix seconds or an RFC 3339 time into Unix seconds.
pub fn parse_time(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if let Ok(n) = s.parse::<u64>() {
        return Ok(n);
    }
    humantime::parse_rfc3339_weak(s)
        .map_err(|e| format!("{e}: expected Unix seconds or RFC 3339 like 2026-11-23T00:00:00Z"))
        .and_then(|t| {
            t.duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .map_err(|_| "time is before 1970".to_string())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn value_parsers() {
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("soon").unwrap_err().contains("30s"));
        assert!(
            parse_duration("24")
                .unwrap_err()
                .contains("add a unit, like 24s")
        );
        assert_eq!(parse_time("1546064025"), Ok(1546064025));
        assert_eq!(parse_time("2018-12-29T06:13:45Z"), Ok(1546064025));
        assert!(parse_time("yesterday").is_err());
    }
}
