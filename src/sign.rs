//! Push URLs: build, parse, sign and verify (`txSecret = MD5(key + stream + txTime)`),
//! plus the callback signature (`sign = MD5(key + t)`). Pure: time is passed in.

use std::fmt;

use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

use crate::secret::Secret;

/// Where Tencent's assigned push CNAME targets end (newest first; seeds 000/001 step 1).
pub const TENCENT_PUSH_SUFFIXES: [&str; 3] =
    [".tlivepush.com", ".tlivecdn.com", ".livepush.myqcloud.com"];

/// Longest URL we accept; a longer one is almost certainly a paste error.
pub const MAX_URL_LEN: usize = 4096;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    #[error("URL must start with rtmp://, rtmps:// or srt:// (got {0:?})")]
    Scheme(String),
    #[error("URL has no host: expected rtmp://DOMAIN/APP/STREAM")]
    NoHost,
    #[error("URL port {0:?} is not a number from 1 to 65535")]
    Port(String),
    #[error("URL has no app: expected rtmp://DOMAIN/APP/STREAM (APP is usually `live`)")]
    NoApp,
    #[error("URL has no stream name: expected rtmp://DOMAIN/APP/STREAM")]
    NoStream,
    #[error("URL app {0:?} has spaces or control characters: expected rtmp://DOMAIN/APP/STREAM")]
    App(String),
    #[error(
        "stream name {0:?} has characters an ingest will not accept: use ASCII letters, digits, `_`, `-` or `.`"
    )]
    StreamName(String),
    #[error("URL is {0} bytes long, over the {MAX_URL_LEN}-byte limit: check what was pasted")]
    TooLong(usize),
    #[error("URL host {0:?} is not a valid host name or IP address")]
    Host(String),
    #[error("txTime {0:?} is not hexadecimal Unix seconds (e.g. 5C271099)")]
    TxTime(String),
    #[error("URL query part {0:?} is malformed: expected name=value pairs joined by &")]
    Query(String),
    #[error(
        "play URL file {0:?} is neither STREAM.flv nor STREAM.m3u8: expected http://DOMAIN/APP/STREAM.flv"
    )]
    PlayFile(String),
    #[error(
        "SRT URL has a path (/{0}): SRT carries APP/STREAM in the streamid, not a path: expected srt://DOMAIN:9000?streamid=#!::h=DOMAIN,r=APP/STREAM,txSecret=..,txTime=.."
    )]
    SrtPath(String),
    #[error(
        "SRT URL has no streamid: expected srt://DOMAIN:9000?streamid=#!::h=DOMAIN,r=APP/STREAM,txSecret=..,txTime=.."
    )]
    NoStreamId,
    #[error(
        "SRT streamid {0:?} is not in the #!::key=value,... form: expected #!::h=DOMAIN,r=APP/STREAM,txSecret=..,txTime=.."
    )]
    StreamId(String),
    #[error("SRT streamid has no r=APP/STREAM resource: expected #!::h=DOMAIN,r=APP/STREAM,..")]
    NoResource,
    #[error(
        "SRT URL option {0:?} is not supported: pushprobe takes the latency from --srt-latency and nothing else from the query"
    )]
    SrtOption(String),
}

/// `rtmp`, `rtmps` or `srt` (MPEG-TS over SRT, Tencent's streamid form).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    Rtmp,
    Rtmps,
    Srt,
}

/// Tencent's SRT push port.
pub const SRT_PORT: u16 = 9000;

impl Scheme {
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Rtmp => 1935,
            Scheme::Rtmps => 443,
            Scheme::Srt => SRT_PORT,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Rtmp => "rtmp",
            Scheme::Rtmps => "rtmps",
            Scheme::Srt => "srt",
        }
    }
}

/// A parsed push URL: `SCHEME://HOST[:PORT]/APP/STREAM[?QUERY]`, or for SRT
/// `srt://HOST:PORT?streamid=#!::h=..,r=APP/STREAM,..` with the streamid's
/// pairs other than `r` in `query` (see [`crate::sign`]'s SRT section).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushUrl {
    pub scheme: Scheme,
    pub host: String,
    pub port: Option<u16>,
    pub app: String,
    pub stream: String,
    /// Query pairs in the order given (values as written, not decoded).
    pub query: Vec<(String, String)>,
}

impl PushUrl {
    pub fn parse(input: &str) -> Result<PushUrl, UrlError> {
        let input = input.trim();
        if input.len() > MAX_URL_LEN {
            return Err(UrlError::TooLong(input.len()));
        }
        if let Some(rest) = strip_prefix_ci(input, "srt://") {
            return parse_srt(rest);
        }
        let (scheme, rest) = if let Some(rest) = strip_prefix_ci(input, "rtmp://") {
            (Scheme::Rtmp, rest)
        } else if let Some(rest) = strip_prefix_ci(input, "rtmps://") {
            (Scheme::Rtmps, rest)
        } else {
            let shown: String = input.chars().take(16).collect();
            return Err(UrlError::Scheme(shown));
        };
        let (before_query, query) = match rest.split_once('?') {
            Some((a, q)) => (a, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = before_query.split_once('/').unwrap_or((before_query, ""));
        let (host, port) = split_host_port(authority)?;
        let path = path.trim_end_matches('/');
        let (app, stream) = match path.rsplit_once('/') {
            Some((app, stream)) => (app, stream),
            None if path.is_empty() => return Err(UrlError::NoApp),
            None => return Err(UrlError::NoStream),
        };
        if app.is_empty() {
            return Err(UrlError::NoApp);
        }
        if app.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(UrlError::App(app.chars().take(64).collect()));
        }
        if stream.is_empty() {
            return Err(UrlError::NoStream);
        }
        check_stream_name(stream)?;
        let query = match query {
            Some(q) => parse_query(q)?,
            None => Vec::new(),
        };
        Ok(PushUrl {
            scheme,
            host,
            port,
            app: app.to_string(),
            stream: stream.to_string(),
            query,
        })
    }

    /// The port to dial: the explicit one, else the scheme's default.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(self.scheme.default_port())
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn tx_time(&self) -> Option<&str> {
        self.param("txTime")
    }

    pub fn tx_secret(&self) -> Option<&str> {
        self.param("txSecret")
    }

    /// The expiry in Unix seconds, if the URL carries a txTime.
    pub fn expiry(&self) -> Result<Option<u64>, UrlError> {
        self.tx_time().map(parse_tx_time).transpose()
    }

    /// The query string as sent (`a=b&c=d`), empty when there is none.
    pub fn query_string(&self) -> String {
        let mut out = String::new();
        for (i, (k, v)) in self.query.iter().enumerate() {
            if i > 0 {
                out.push('&');
            }
            out.push_str(k);
            if !v.is_empty() {
                out.push('=');
                out.push_str(v);
            }
        }
        out
    }

    fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match self.port {
            Some(p) => format!("{host}:{p}"),
            None => host,
        }
    }

    fn with_query(&self, base: String) -> String {
        if self.query.is_empty() {
            base
        } else {
            format!("{base}?{}", self.query_string())
        }
    }

    /// tcUrl for the RTMP `connect` command: `rtmp://host[:port]/app?query`.
    pub fn tc_url(&self) -> String {
        let base = format!(
            "{}://{}/{}",
            self.scheme.as_str(),
            self.authority(),
            self.app
        );
        self.with_query(base)
    }

    /// The name given to `publish`: `stream?query`.
    pub fn publish_name(&self) -> String {
        self.with_query(self.stream.clone())
    }

    /// The URL with txSecret replaced by `***`, for logs and reports.
    pub fn redacted(&self) -> String {
        redact_query_in(&self.to_string())
    }
}

impl fmt::Display for PushUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.scheme == Scheme::Srt {
            return write!(
                f,
                "srt://{}?streamid={}",
                self.authority(),
                self.stream_id()
            );
        }
        let base = format!(
            "{}://{}/{}/{}",
            self.scheme.as_str(),
            self.authority(),
            self.app,
            self.stream
        );
        f.write_str(&self.with_query(base))
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    if s.len() >= prefix.len()
        && s.is_char_boundary(prefix.len())
        && s[..prefix.len()].eq_ignore_ascii_case(prefix)
    {
        Some(&s[prefix.len()..])
    } else {
        None
    }
}

fn split_host_port(authority: &str) -> Result<(String, Option<u16>), UrlError> {
    if authority.is_empty() {
        return Err(UrlError::NoHost);
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| UrlError::Host(authority.to_string()))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| UrlError::Host(authority.to_string()))?,
            ),
        };
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(UrlError::Host(host.to_string()));
        }
        (host, port)
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(UrlError::NoHost);
    }
    let valid_host = host.contains(':')
        || host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    if !valid_host {
        return Err(UrlError::Host(host.to_string()));
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(UrlError::Port(p.to_string())),
        },
    };
    Ok((host.to_string(), port))
}

/// Stream names: ASCII letters, digits, `_`, `-`, `.`, `~`, `%` (as Tencent accepts).
pub fn check_stream_name(stream: &str) -> Result<(), UrlError> {
    let ok = !stream.is_empty()
        && stream.len() <= 256
        && stream
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'~' | b'%'));
    if ok {
        Ok(())
    } else {
        Err(UrlError::StreamName(stream.chars().take(64).collect()))
    }
}

/// Parses `a=b&c=d` into pairs in order (values as written, not decoded).
pub fn parse_query(q: &str) -> Result<Vec<(String, String)>, UrlError> {
    let mut out = Vec::new();
    for part in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        if k.is_empty() || part.chars().any(|c| c.is_whitespace() || c.is_control()) {
            // The part may be a txSecret: never echo its value.
            let shown: String = part.chars().take(64).collect();
            return Err(UrlError::Query(redact_query_in(&shown)));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

/// Parses a txTime (hex Unix seconds, either case).
pub fn parse_tx_time(s: &str) -> Result<u64, UrlError> {
    if s.is_empty() || s.len() > 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(UrlError::TxTime(s.chars().take(32).collect()));
    }
    u64::from_str_radix(s, 16).map_err(|_| UrlError::TxTime(s.to_string()))
}

/// txTime for an expiry: uppercase hex, as Tencent's samples write it.
pub fn tx_time_hex(expiry_unix: u64) -> String {
    format!("{expiry_unix:X}")
}

fn md5_hex(parts: &[&[u8]]) -> String {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    hex::encode(h.finalize())
}

/// `txSecret = lowercase hex MD5(key + stream + txTime)`; txTime exactly as sent.
///
/// Tencent's published example:
/// ```
/// use pushprobe::{secret::Secret, sign::tx_secret};
/// let key = Secret::new("e12c46f2612d5106e2034781ab261ca3".into());
/// assert_eq!(tx_secret(&key, "test", "5C271099"), "f85a2ab363fe4deaffef9754d79da6fe");
/// ```
pub fn tx_secret(key: &Secret, stream: &str, tx_time: &str) -> String {
    md5_hex(&[
        key.expose().as_bytes(),
        stream.as_bytes(),
        tx_time.as_bytes(),
    ])
}

/// What to build a signed URL from.
#[derive(Debug, Clone)]
pub struct UrlSpec {
    pub scheme: Scheme,
    pub domain: String,
    pub port: Option<u16>,
    pub app: String,
    pub stream: String,
}

/// Builds `SCHEME://DOMAIN[:PORT]/APP/STREAM?txSecret=..&txTime=..`.
pub fn sign_url(spec: &UrlSpec, key: &Secret, expiry_unix: u64) -> Result<PushUrl, UrlError> {
    check_stream_name(&spec.stream)?;
    let (host, port_in_domain) = split_host_port(&spec.domain)?;
    if spec.app.is_empty() {
        return Err(UrlError::NoApp);
    }
    let tx_time = tx_time_hex(expiry_unix);
    let secret = tx_secret(key, &spec.stream, &tx_time);
    let mut query = vec![
        ("txSecret".to_string(), secret),
        ("txTime".to_string(), tx_time),
    ];
    let mut port = spec.port.or(port_in_domain);
    if spec.scheme == Scheme::Srt {
        check_srt_app(&spec.app)?;
        // Tencent's form names the port and the domain (h=) explicitly.
        port = Some(port.unwrap_or(SRT_PORT));
        query.insert(0, ("h".to_string(), host.clone()));
    }
    Ok(PushUrl {
        scheme: spec.scheme,
        host,
        port,
        app: spec.app.clone(),
        stream: spec.stream.clone(),
        query,
    })
}

/// The same URL signed again with a new expiry: txTime and txSecret replaced
/// in place (appended when missing), every other query parameter kept.
pub fn resign(url: &PushUrl, key: &Secret, expiry_unix: u64) -> PushUrl {
    let tx_time = tx_time_hex(expiry_unix);
    let secret = tx_secret(key, &url.stream, &tx_time);
    let mut out = url.clone();
    for (name, value) in [("txSecret", secret), ("txTime", tx_time)] {
        match out
            .query
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
        {
            Some(pair) => pair.1 = value,
            None => out.query.push((name.to_string(), value)),
        }
    }
    out
}

/// Primary and optional backup push key; either one signs.
#[derive(Debug, Clone, Default)]
pub struct Keys {
    pub primary: Option<Secret>,
    pub backup: Option<Secret>,
}

impl Keys {
    pub fn is_empty(&self) -> bool {
        self.primary.is_none() && self.backup.is_none()
    }
}

/// How a URL's txSecret compares with the keys at hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretCheck {
    /// Signed with the primary key.
    Primary,
    /// Signed with the backup key.
    Backup,
    /// txSecret matches neither key.
    Mismatch,
    /// The URL has no txTime.
    NoTxTime,
    /// The URL has no txSecret.
    NoTxSecret,
    /// No key was supplied, so the signature cannot be checked.
    NoKey,
}

/// Checks txSecret against the keys (constant-time comparison).
pub fn check_secret(url: &PushUrl, keys: &Keys) -> SecretCheck {
    let Some(tx_time) = url.tx_time() else {
        return SecretCheck::NoTxTime;
    };
    let Some(given) = url.tx_secret() else {
        return SecretCheck::NoTxSecret;
    };
    if keys.is_empty() {
        return SecretCheck::NoKey;
    }
    let given = given.to_ascii_lowercase();
    let matches = |key: &Option<Secret>| {
        key.as_ref().is_some_and(|k| {
            let want = tx_secret(k, &url.stream, tx_time);
            bool::from(want.as_bytes().ct_eq(given.as_bytes()))
        })
    };
    if matches(&keys.primary) {
        SecretCheck::Primary
    } else if matches(&keys.backup) {
        SecretCheck::Backup
    } else {
        SecretCheck::Mismatch
    }
}

/// Where an expiry stands relative to `now` (Unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Expired this many seconds ago.
    Expired(u64),
    /// Valid for this many more seconds, fewer than the 12 hours Tencent advises.
    Short(u64),
    /// Valid for this many more seconds.
    Valid(u64),
}

/// Tencent's advice: keep a push URL valid for at least 12 hours.
pub const SHORT_EXPIRY_SECS: u64 = 12 * 3600;

pub fn expiry_status(expiry_unix: u64, now_unix: u64) -> Expiry {
    if expiry_unix <= now_unix {
        Expiry::Expired(now_unix - expiry_unix)
    } else {
        let left = expiry_unix - now_unix;
        if left < SHORT_EXPIRY_SECS {
            Expiry::Short(left)
        } else {
            Expiry::Valid(left)
        }
    }
}

/// How a play URL delivers the stream (Tencent CSS play domains).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PlayFormat {
    /// `rtmp://PLAY/APP/STREAM`
    Rtmp,
    /// `http://PLAY/APP/STREAM.flv`
    Flv,
    /// `http://PLAY/APP/STREAM.m3u8`
    Hls,
}

impl PlayFormat {
    pub const ALL: [PlayFormat; 3] = [PlayFormat::Rtmp, PlayFormat::Flv, PlayFormat::Hls];

    pub fn as_str(self) -> &'static str {
        match self {
            PlayFormat::Rtmp => "rtmp",
            PlayFormat::Flv => "flv",
            PlayFormat::Hls => "hls",
        }
    }
}

/// A parsed play URL: `rtmp://HOST[:PORT]/APP/STREAM[?Q]`,
/// `http[s]://HOST[:PORT]/APP/STREAM.flv[?Q]` or `.../STREAM.m3u8[?Q]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayUrl {
    pub format: PlayFormat,
    /// `http` or `https` for FLV and HLS; `rtmp` or `rtmps` for RTMP.
    pub scheme: &'static str,
    pub host: String,
    pub port: Option<u16>,
    pub app: String,
    /// The bare stream name (no `.flv` / `.m3u8`).
    pub stream: String,
    pub query: Vec<(String, String)>,
}

impl PlayUrl {
    /// Parses a play URL; an rtmp URL parses as a push URL does.
    pub fn parse(input: &str) -> Result<PlayUrl, UrlError> {
        let input = input.trim();
        let http = strip_prefix_ci(input, "http://")
            .map(|r| ("http", r))
            .or_else(|| strip_prefix_ci(input, "https://").map(|r| ("https", r)));
        let Some((scheme, rest)) = http else {
            let u = PushUrl::parse(input)?;
            return Ok(PlayUrl {
                format: PlayFormat::Rtmp,
                scheme: u.scheme.as_str(),
                host: u.host,
                port: u.port,
                app: u.app,
                stream: u.stream,
                query: u.query,
            });
        };
        if input.len() > MAX_URL_LEN {
            return Err(UrlError::TooLong(input.len()));
        }
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, parse_query(q)?),
            None => (rest, Vec::new()),
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (host, port) = split_host_port(authority)?;
        let (app, file) = path.rsplit_once('/').ok_or(UrlError::NoApp)?;
        if app.is_empty() {
            return Err(UrlError::NoApp);
        }
        let (stream, format) = if let Some(s) = file.strip_suffix(".flv") {
            (s, PlayFormat::Flv)
        } else if let Some(s) = file.strip_suffix(".m3u8") {
            (s, PlayFormat::Hls)
        } else {
            return Err(UrlError::PlayFile(file.chars().take(64).collect()));
        };
        check_stream_name(stream)?;
        Ok(PlayUrl {
            format,
            scheme,
            host,
            port,
            app: app.to_string(),
            stream: stream.to_string(),
            query,
        })
    }

    /// The port to dial: the explicit one, else the scheme's default.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.scheme {
            "https" => 443,
            "http" => 80,
            "rtmps" => 443,
            _ => 1935,
        })
    }

    /// The same URL as a [`PushUrl`]-shaped value (host, app, stream,
    /// query), for the txTime and txSecret checks push URLs share.
    pub fn as_signed(&self) -> PushUrl {
        PushUrl {
            scheme: Scheme::Rtmp,
            host: self.host.clone(),
            port: self.port,
            app: self.app.clone(),
            stream: self.stream.clone(),
            query: self.query.clone(),
        }
    }

    /// The URL with txSecret replaced by `***`.
    pub fn redacted(&self) -> String {
        redact_query_in(&self.to_string())
    }
}

impl fmt::Display for PlayUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let u = self.as_signed();
        let suffix = match self.format {
            PlayFormat::Rtmp => "",
            PlayFormat::Flv => ".flv",
            PlayFormat::Hls => ".m3u8",
        };
        write!(
            f,
            "{}://{}/{}/{}{suffix}",
            self.scheme,
            u.authority(),
            self.app,
            self.stream
        )?;
        if !self.query.is_empty() {
            write!(f, "?{}", u.query_string())?;
        }
        Ok(())
    }
}

/// The three play URLs of a stream on a play domain (RTMP, HTTP-FLV, HLS),
/// signed like push URLs (`txSecret = MD5(play key + stream + txTime)`)
/// when a play key is given, else unsigned.
pub fn play_urls(
    domain: &str,
    app: &str,
    stream: &str,
    key: Option<&Secret>,
    expiry_unix: u64,
) -> Result<Vec<PlayUrl>, UrlError> {
    check_stream_name(stream)?;
    let (host, port) = split_host_port(domain)?;
    if app.is_empty() {
        return Err(UrlError::NoApp);
    }
    if app.contains(|c: char| c.is_whitespace() || c.is_control() || c == '?') {
        return Err(UrlError::App(app.to_string()));
    }
    let query = match key {
        Some(k) => {
            let tx_time = tx_time_hex(expiry_unix);
            vec![
                ("txSecret".to_string(), tx_secret(k, stream, &tx_time)),
                ("txTime".to_string(), tx_time),
            ]
        }
        None => Vec::new(),
    };
    Ok(PlayFormat::ALL
        .into_iter()
        .map(|format| PlayUrl {
            format,
            scheme: if format == PlayFormat::Rtmp {
                "rtmp"
            } else {
                "http"
            },
            host: host.clone(),
            port,
            app: app.to_string(),
            stream: stream.to_string(),
            query: query.clone(),
        })
        .collect())
}

/// Callback signature: lowercase hex MD5(callback key + t), t in decimal.
pub fn callback_sign(key: &Secret, t: u64) -> String {
    md5_hex(&[key.expose().as_bytes(), t.to_string().as_bytes()])
}

/// Checks a callback's sign against MD5(key + t) in constant time; `t` as received.
pub fn verify_callback_sign(key: &Secret, t: &str, sign: &str) -> bool {
    let want = md5_hex(&[key.expose().as_bytes(), t.as_bytes()]);
    bool::from(want.as_bytes().ct_eq(sign.to_ascii_lowercase().as_bytes()))
}

/// Replaces the value of every `txSecret=` in a URL or query string with `***`.
/// Linear in the length: the ingest redacts publish queries a client chose.
pub fn redact_query_in(s: &str) -> String {
    const NAME: &str = "txsecret=";
    // ASCII lowercasing keeps every byte where it was: offsets carry over.
    let lower = s.to_ascii_lowercase();
    let mut out = String::with_capacity(s.len());
    let mut pos = 0;
    while let Some(i) = lower[pos..].find(NAME) {
        let start = pos + i + NAME.len();
        out.push_str(&s[pos..start]);
        out.push_str("***");
        pos = s[start..]
            .find(['&', ',', ' ', '"', '\''])
            .map_or(s.len(), |j| start + j);
    }
    out.push_str(&s[pos..]);
    out
}

// --- SRT (Tencent doc 267/40102) ---------------------------------------
//
// `srt://DOMAIN:9000?streamid=#!::h=DOMAIN,r=APP/STREAM,txSecret=..,txTime=..`:
// the `#` belongs to the streamid (not a URL fragment), the keys come in any
// order. A parsed SRT URL keeps `r` as app and stream and every other
// streamid pair (`h` included) in `query`, so signing, expiry and the secret
// check read it exactly like an RTMP URL.

/// Longest streamid libsrt accepts (SRTO_STREAMID).
pub const MAX_STREAM_ID: usize = 512;

/// The prefix of the SRT access-control streamid syntax.
const STREAM_ID_PREFIX: &str = "#!::";

impl PushUrl {
    /// The SRT streamid this URL carries: `#!::h=..,r=APP/STREAM,...`
    /// (`h` first, then `r`, then the other pairs in order).
    pub fn stream_id(&self) -> String {
        let mut out = String::from(STREAM_ID_PREFIX);
        let resource = format!("r={}/{}", self.app, self.stream);
        let mut parts: Vec<String> = Vec::with_capacity(self.query.len() + 1);
        let mut placed = false;
        for (k, v) in &self.query {
            parts.push(format!("{k}={v}"));
            if k == "h" && !placed {
                parts.push(resource.clone());
                placed = true;
            }
        }
        if !placed {
            parts.insert(0, resource);
        }
        out.push_str(&parts.join(","));
        out
    }
}

fn parse_srt(rest: &str) -> Result<PushUrl, UrlError> {
    let (authority, query) = match rest.split_once('?') {
        Some((a, q)) => (a, q),
        None => (rest, ""),
    };
    let authority = authority.trim_end_matches('/');
    if let Some((_, path)) = authority.split_once('/') {
        return Err(UrlError::SrtPath(path.chars().take(64).collect()));
    }
    let (host, port) = split_host_port(authority)?;
    let mut stream_id = None;
    for part in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        if k.eq_ignore_ascii_case("streamid") {
            stream_id = Some(percent_decode(v));
        } else {
            return Err(UrlError::SrtOption(k.chars().take(32).collect()));
        }
    }
    let stream_id = stream_id.ok_or(UrlError::NoStreamId)?;
    let (app, stream, pairs) = parse_stream_id(&stream_id)?;
    Ok(PushUrl {
        scheme: Scheme::Srt,
        host,
        port,
        app,
        stream,
        query: pairs,
    })
}

/// A streamid's app, stream and other pairs (in order).
pub type StreamIdParts = (String, String, Vec<(String, String)>);

/// Splits a Tencent streamid into app, stream and the other pairs in order.
pub fn parse_stream_id(sid: &str) -> Result<StreamIdParts, UrlError> {
    let shown = || redact_query_in(&sid.chars().take(96).collect::<String>());
    if sid.len() > MAX_STREAM_ID {
        return Err(UrlError::TooLong(sid.len()));
    }
    let body = sid
        .strip_prefix(STREAM_ID_PREFIX)
        .ok_or_else(|| UrlError::StreamId(shown()))?;
    let mut resource = None;
    let mut pairs = Vec::new();
    for part in body.split(',').filter(|p| !p.is_empty()) {
        let Some((k, v)) = part.split_once('=') else {
            return Err(UrlError::StreamId(shown()));
        };
        if k.is_empty() || part.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(UrlError::StreamId(shown()));
        }
        if k == "r" {
            resource = Some(v);
        } else {
            pairs.push((k.to_string(), v.to_string()));
        }
    }
    let resource = resource.ok_or(UrlError::NoResource)?;
    let (app, stream) = match resource.trim_start_matches('/').rsplit_once('/') {
        Some((a, s)) if !a.is_empty() => (a, s),
        _ if resource.is_empty() => return Err(UrlError::NoResource),
        _ => return Err(UrlError::NoApp),
    };
    check_srt_app(app)?;
    if stream.is_empty() {
        return Err(UrlError::NoStream);
    }
    check_stream_name(stream)?;
    Ok((app.to_string(), stream.to_string(), pairs))
}

/// An app name inside a streamid: no `,` (the pair separator), spaces or
/// control characters.
fn check_srt_app(app: &str) -> Result<(), UrlError> {
    if app.is_empty() {
        return Err(UrlError::NoApp);
    }
    if app
        .chars()
        .any(|c| c == ',' || c == '=' || c.is_whitespace() || c.is_control())
    {
        return Err(UrlError::App(app.chars().take(64).collect()));
    }
    Ok(())
}

/// `%XX` decoding (encoders often write the streamid's `#` as `%23`);
/// malformed escapes stay as written.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod srt_tests {
    use super::*;

    const SRT: &str = "srt://livepush.example.com:9000?streamid=#!::h=livepush.example.com,r=live/test,txSecret=f85a2ab363fe4deaffef9754d79da6fe,txTime=5C271099";

    #[test]
    fn srt_url_parses_and_round_trips() {
        let u = PushUrl::parse(SRT).unwrap();
        assert_eq!(u.scheme, Scheme::Srt);
        assert_eq!(u.host, "livepush.example.com");
        assert_eq!(u.port(), 9000);
        assert_eq!((u.app.as_str(), u.stream.as_str()), ("live", "test"));
        assert_eq!(u.tx_time(), Some("5C271099"));
        assert_eq!(u.expiry().unwrap(), Some(1546064025));
        assert_eq!(u.param("h"), Some("livepush.example.com"));
        assert_eq!(u.to_string(), SRT);
        assert_eq!(
            u.redacted(),
            "srt://livepush.example.com:9000?streamid=#!::h=livepush.example.com,r=live/test,txSecret=***,txTime=5C271099"
        );
    }

    #[test]
    fn srt_keys_in_any_order_and_percent_encoded_hash() {
        let u = PushUrl::parse(
            "SRT://127.0.0.1:9001?streamid=%23!::txTime=5C271099,r=live/cam-1,txSecret=abc,h=d.example.com",
        )
        .unwrap();
        assert_eq!(u.port(), 9001);
        assert_eq!(u.stream, "cam-1");
        assert_eq!(u.tx_secret(), Some("abc"));
        assert_eq!(
            u.stream_id(),
            "#!::txTime=5C271099,txSecret=abc,h=d.example.com,r=live/cam-1"
        );
        // Default port when none is written.
        let u = PushUrl::parse("srt://d.example.com?streamid=#!::r=live/s").unwrap();
        assert_eq!(u.port(), 9000);
        assert_eq!(u.stream_id(), "#!::r=live/s");
    }

    #[test]
    fn srt_signing_matches_the_rtmp_signature() {
        let k = Secret::new("e12c46f2612d5106e2034781ab261ca3".into());
        let spec = UrlSpec {
            scheme: Scheme::Srt,
            domain: "livepush.example.com".into(),
            port: None,
            app: "live".into(),
            stream: "test".into(),
        };
        let url = sign_url(&spec, &k, 1546064025).unwrap();
        assert_eq!(url.to_string(), SRT);
        let keys = Keys {
            primary: Some(k.clone()),
            backup: None,
        };
        assert_eq!(check_secret(&url, &keys), SecretCheck::Primary);
        let again = resign(&url, &k, 1546064025 + 1);
        assert_eq!(again.param("h"), Some("livepush.example.com"));
        assert_eq!(check_secret(&again, &keys), SecretCheck::Primary);
        let spec = UrlSpec {
            port: Some(9100),
            ..spec
        };
        assert!(
            sign_url(&spec, &k, 1)
                .unwrap()
                .to_string()
                .starts_with("srt://livepush.example.com:9100?streamid=#!::h=")
        );
    }

    #[test]
    fn srt_errors_name_the_problem_and_hide_the_secret() {
        let e = |s: &str| PushUrl::parse(s).unwrap_err();
        assert_eq!(e("srt://h:9000"), UrlError::NoStreamId);
        assert_eq!(
            e("srt://h:9000?streamid=#!::h=h,txTime=1"),
            UrlError::NoResource
        );
        assert_eq!(e("srt://h:9000?streamid=#!::r=stream"), UrlError::NoApp);
        assert_eq!(e("srt://h:9000?streamid=#!::r=live/"), UrlError::NoStream);
        assert_eq!(
            e("srt://h:9000?streamid=#!::r=live/s&latency=500"),
            UrlError::SrtOption("latency".into())
        );
        assert_eq!(e("srt://:9000?streamid=#!::r=live/s"), UrlError::NoHost);
        let err = e("srt://h:9000?streamid=live/s?txSecret=topsecret");
        assert!(matches!(err, UrlError::StreamId(_)), "{err:?}");
        assert!(!err.to_string().contains("topsecret"), "{err}");
        let err = e("srt://h:9000?streamid=#!::r=live/s,txSecret=topsecret,broken");
        assert!(!err.to_string().contains("topsecret"), "{err}");
        let long = format!("srt://h:9000?streamid=#!::r=live/s,x={}", "a".repeat(600));
        assert!(matches!(e(&long), UrlError::TooLong(_)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn play_urls_signed_with_the_play_key_and_parsed_back() {
        let k = key("e12c46f2612d5106e2034781ab261ca3");
        let urls = play_urls(
            "liveplay.example.com",
            "live",
            "test",
            Some(&k),
            0x5C27_1099,
        )
        .unwrap();
        let q = "?txSecret=f85a2ab363fe4deaffef9754d79da6fe&txTime=5C271099";
        let shown: Vec<String> = urls.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                format!("rtmp://liveplay.example.com/live/test{q}"),
                format!("http://liveplay.example.com/live/test.flv{q}"),
                format!("http://liveplay.example.com/live/test.m3u8{q}"),
            ]
        );
        for (u, s) in urls.iter().zip(&shown) {
            assert_eq!(&PlayUrl::parse(s).unwrap(), u);
            assert!(!u.redacted().contains("f85a2ab3"));
        }
        let unsigned = play_urls("p.example.com:8080", "app", "s", None, 1).unwrap();
        assert_eq!(
            unsigned[1].to_string(),
            "http://p.example.com:8080/app/s.flv"
        );
        assert!(play_urls("p", "live", "a b", None, 1).is_err());
        assert!(play_urls("p", "", "s", None, 1).is_err());
        assert_eq!(
            PlayUrl::parse("http://p/live/s.mp4"),
            Err(UrlError::PlayFile("s.mp4".into()))
        );
        assert_eq!(PlayUrl::parse("http://p/s.flv"), Err(UrlError::NoApp));
        assert_eq!(PlayUrl::parse("https://p/live/s.m3u8").unwrap().port(), 443);
    }

    fn key(s: &str) -> Secret {
        Secret::new(s.to_string())
    }

    #[test]
    fn tencent_published_vector() {
        let k = key("e12c46f2612d5106e2034781ab261ca3");
        assert_eq!(tx_time_hex(1546064025), "5C271099");
        assert_eq!(
            tx_secret(&k, "test", "5C271099"),
            "f85a2ab363fe4deaffef9754d79da6fe"
        );
        let spec = UrlSpec {
            scheme: Scheme::Rtmp,
            domain: "livepush.example.com".into(),
            port: None,
            app: "live".into(),
            stream: "test".into(),
        };
        let url = sign_url(&spec, &k, 1546064025).unwrap();
        assert_eq!(
            url.to_string(),
            "rtmp://livepush.example.com/live/test?txSecret=f85a2ab363fe4deaffef9754d79da6fe&txTime=5C271099"
        );
    }

    #[test]
    fn parse_round_trip_and_parts() {
        let s = "rtmp://push.example.com:1936/live/cam1?txSecret=abc&txTime=5C271099&x=1";
        let u = PushUrl::parse(s).unwrap();
        assert_eq!(u.host, "push.example.com");
        assert_eq!(u.port(), 1936);
        assert_eq!(u.app, "live");
        assert_eq!(u.stream, "cam1");
        assert_eq!(u.tx_time(), Some("5C271099"));
        assert_eq!(u.expiry().unwrap(), Some(1546064025));
        assert_eq!(u.to_string(), s);
        assert_eq!(
            u.tc_url(),
            "rtmp://push.example.com:1936/live?txSecret=abc&txTime=5C271099&x=1"
        );
        assert_eq!(u.publish_name(), "cam1?txSecret=abc&txTime=5C271099&x=1");
        assert_eq!(
            u.redacted(),
            "rtmp://push.example.com:1936/live/cam1?txSecret=***&txTime=5C271099&x=1"
        );
    }

    #[test]
    fn resign_replaces_expiry_and_secret_and_keeps_the_rest() {
        let k = key("e12c46f2612d5106e2034781ab261ca3");
        let old =
            PushUrl::parse("rtmp://h/live/test?txHost=d.example&txSecret=00&txTime=1").unwrap();
        let u = resign(&old, &k, 1546064025);
        assert_eq!(
            u.query_string(),
            "txHost=d.example&txSecret=f85a2ab363fe4deaffef9754d79da6fe&txTime=5C271099"
        );
        assert_eq!(
            check_secret(
                &u,
                &Keys {
                    primary: Some(k.clone()),
                    backup: None
                }
            ),
            SecretCheck::Primary
        );
        let bare = resign(
            &PushUrl::parse("rtmp://h/live/test").unwrap(),
            &k,
            1546064025,
        );
        assert_eq!(
            bare.to_string(),
            "rtmp://h/live/test?txSecret=f85a2ab363fe4deaffef9754d79da6fe&txTime=5C271099"
        );
    }

    #[test]
    fn parse_ipv6_and_defaults() {
        let u = PushUrl::parse("rtmps://[::1]:4443/app/s").unwrap();
        assert_eq!(u.host, "::1");
        assert_eq!(u.port(), 4443);
        assert_eq!(u.to_string(), "rtmps://[::1]:4443/app/s");
        let u = PushUrl::parse("RTMP://h/live/s").unwrap();
        assert_eq!(u.port(), 1935);
        let u = PushUrl::parse("rtmps://h/live/s").unwrap();
        assert_eq!(u.port(), 443);
    }

    #[test]
    fn malformed_urls_name_the_problem() {
        let cases: &[(&str, UrlError)] = &[
            (
                "http://h/live/s",
                UrlError::Scheme("http://h/live/s".into()),
            ),
            ("rtmp:///live/s", UrlError::NoHost),
            ("rtmp://h", UrlError::NoApp),
            ("rtmp://h/live", UrlError::NoStream),
            ("rtmp://h/live/", UrlError::NoStream),
            ("rtmp://h/li ve/s", UrlError::App("li ve".into())),
            ("rtmp://h:99999/live/s", UrlError::Port("99999".into())),
            ("rtmp://h:0/live/s", UrlError::Port("0".into())),
            (
                "rtmp://h/live/caméra",
                UrlError::StreamName("caméra".into()),
            ),
            ("rtmp://h o/live/s", UrlError::Host("h o".into())),
        ];
        for (input, want) in cases {
            assert_eq!(&PushUrl::parse(input).unwrap_err(), want, "{input}");
        }
        let huge = format!("rtmp://h/live/s?x={}", "a".repeat(5000));
        assert!(matches!(PushUrl::parse(&huge), Err(UrlError::TooLong(_))));
        let u = PushUrl::parse("rtmp://h/live/s?txTime=zz").unwrap();
        assert_eq!(u.expiry().unwrap_err(), UrlError::TxTime("zz".into()));
    }

    #[test]
    fn secret_check_primary_backup_mismatch() {
        let primary = key("k1");
        let backup = key("k2");
        let spec = UrlSpec {
            scheme: Scheme::Rtmp,
            domain: "d".into(),
            port: None,
            app: "live".into(),
            stream: "s".into(),
        };
        let keys = Keys {
            primary: Some(primary.clone()),
            backup: Some(backup.clone()),
        };
        let by_primary = sign_url(&spec, &primary, 100).unwrap();
        let by_backup = sign_url(&spec, &backup, 100).unwrap();
        let by_other = sign_url(&spec, &key("other"), 100).unwrap();
        assert_eq!(check_secret(&by_primary, &keys), SecretCheck::Primary);
        assert_eq!(check_secret(&by_backup, &keys), SecretCheck::Backup);
        assert_eq!(check_secret(&by_other, &keys), SecretCheck::Mismatch);
        assert_eq!(
            check_secret(&by_primary, &Keys::default()),
            SecretCheck::NoKey
        );
        let unsigned = PushUrl::parse("rtmp://d/live/s").unwrap();
        assert_eq!(check_secret(&unsigned, &keys), SecretCheck::NoTxTime);
        let no_secret = PushUrl::parse("rtmp://d/live/s?txTime=64").unwrap();
        assert_eq!(check_secret(&no_secret, &keys), SecretCheck::NoTxSecret);
        // Lowercase txTime is signed as sent.
        let lower = PushUrl::parse(&format!(
            "rtmp://d/live/s?txSecret={}&txTime=5c271099",
            tx_secret(&primary, "s", "5c271099")
        ))
        .unwrap();
        assert_eq!(check_secret(&lower, &keys), SecretCheck::Primary);
    }

    #[test]
    fn expiry_status_bands() {
        assert_eq!(expiry_status(100, 200), Expiry::Expired(100));
        assert_eq!(expiry_status(200, 200), Expiry::Expired(0));
        assert_eq!(expiry_status(300, 200), Expiry::Short(100));
        assert_eq!(
            expiry_status(200 + SHORT_EXPIRY_SECS, 200),
            Expiry::Valid(SHORT_EXPIRY_SECS)
        );
    }

    #[test]
    fn callback_sign_round_trip() {
        let k = key("cbkey");
        let s = callback_sign(&k, 1700000000);
        assert_eq!(s, md5_hex(&[b"cbkey1700000000"]));
        assert!(verify_callback_sign(&k, "1700000000", &s));
        assert!(verify_callback_sign(&k, "1700000000", &s.to_uppercase()));
        assert!(!verify_callback_sign(&k, "1700000001", &s));
        assert!(!verify_callback_sign(&k, "1700000000", "short"));
    }

    #[test]
    fn redaction_covers_every_secret() {
        assert_eq!(
            redact_query_in("a?txSecret=abc&txTime=1 and TXSECRET=def"),
            "a?txSecret=***&txTime=1 and TXSECRET=***"
        );
        assert_eq!(redact_query_in("nothing here"), "nothing here");
    }

    /// Found while writing the `url` and `callback` targets (the fuzzers'
    /// inputs were too small to time out): redaction lowercased the rest of
    /// the text once per `txSecret=`, quadratic in the length. The ingest's
    /// `GET /streams` redacts each publish query, which a client chooses up to
    /// the 4 MiB frame limit: 128 KiB took 2 s, 4 MiB would take many minutes.
    #[test]
    fn fuzz_regression_quadratic_redaction() {
        let input = "txSecret=&".repeat(100_000);
        let started = std::time::Instant::now();
        let out = redact_query_in(&input);
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert_eq!(out, "txSecret=***&".repeat(100_000));
        assert_eq!(redact_query_in("x txsecret="), "x txsecret=***");
        assert_eq!(redact_query_in("é txSecret=ü'z"), "é txSecret=***'z");
    }
}
