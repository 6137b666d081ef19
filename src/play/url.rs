//! Play URLs: `rtmp[s]://HOST[:PORT]/APP/STREAM[?..]` (RTMP play),
//! `http[s]://HOST[:PORT]/PATH.flv[?..]` (HTTP-FLV) and `....m3u8` (HLS); pure.

use serde::Serialize;

use crate::sign::{self, PushUrl};

/// How a URL is played.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    Rtmp,
    HttpFlv,
    Hls,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Rtmp => "rtmp",
            Protocol::HttpFlv => "http_flv",
            Protocol::Hls => "hls",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlayUrlError {
    #[error("play URL must start with rtmp://, rtmps://, http:// or https://, not {0:?}")]
    Scheme(String),
    #[error("play URL has no host")]
    NoHost,
    #[error("play URL port {0:?} is not a number from 1 to 65535")]
    Port(String),
    #[error(transparent)]
    Rtmp(#[from] sign::UrlError),
}

/// A parsed play URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayUrl {
    pub protocol: Protocol,
    /// TLS (rtmps or https).
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// HTTP: the path and query to GET (`/live/x.flv?a=b`).
    pub path: String,
    /// RTMP: app, stream and query, as a push URL has them.
    pub rtmp: Option<PushUrl>,
}

impl PlayUrl {
    pub fn parse(input: &str) -> Result<PlayUrl, PlayUrlError> {
        let input = input.trim();
        let lower = input.to_ascii_lowercase();
        if lower.starts_with("rtmp://") || lower.starts_with("rtmps://") {
            let u = PushUrl::parse(input)?;
            return Ok(PlayUrl {
                protocol: Protocol::Rtmp,
                tls: u.scheme == sign::Scheme::Rtmps,
                host: u.host.clone(),
                port: u.port(),
                path: String::new(),
                rtmp: Some(u),
            });
        }
        let (tls, rest) = if lower.starts_with("http://") {
            (false, &input[7..])
        } else if lower.starts_with("https://") {
            (true, &input[8..])
        } else {
            return Err(PlayUrlError::Scheme(input.chars().take(16).collect()));
        };
        let cut = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(cut);
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !p.contains(']') => {
                let port = p
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| PlayUrlError::Port(p.to_string()))?;
                (h, port)
            }
            _ => (authority, if tls { 443 } else { 80 }),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(PlayUrlError::NoHost);
        }
        let path = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        };
        let file = path.split('?').next().unwrap_or_default();
        let protocol = if file.to_ascii_lowercase().ends_with(".m3u8") {
            Protocol::Hls
        } else {
            Protocol::HttpFlv
        };
        Ok(PlayUrl {
            protocol,
            tls,
            host: host.to_string(),
            port,
            path,
            rtmp: None,
        })
    }

    /// Parses a URL this build can play: every one it parses, now that HLS
    /// has its MPEG-TS demuxer (`ts::demux`).
    pub fn parse_playable(input: &str) -> Result<PlayUrl, PlayUrlError> {
        PlayUrl::parse(input)
    }

    /// The URL with secrets in the query (txSecret, sign, ...) hidden.
    pub fn redacted(&self) -> String {
        match &self.rtmp {
            Some(u) => u.redacted(),
            None => {
                let scheme = if self.tls { "https" } else { "http" };
                let host = if self.host.contains(':') {
                    format!("[{}]", self.host)
                } else {
                    self.host.clone()
                };
                sign::redact_query_in(&format!("{scheme}://{host}:{}{}", self.port, self.path))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_by_scheme_and_path() {
        let u = PlayUrl::parse("rtmp://127.0.0.1:1940/live/s1?txSecret=x").unwrap();
        assert_eq!((u.protocol, u.port, u.tls), (Protocol::Rtmp, 1940, false));
        assert_eq!(u.rtmp.unwrap().stream, "s1");
        let u = PlayUrl::parse("http://play.example.com/live/s1.flv?txSecret=abc").unwrap();
        assert_eq!(u.protocol, Protocol::HttpFlv);
        assert_eq!((u.host.as_str(), u.port), ("play.example.com", 80));
        assert_eq!(u.path, "/live/s1.flv?txSecret=abc");
        assert!(!u.redacted().contains("abc"), "{}", u.redacted());
        let u = PlayUrl::parse("HTTPS://[::1]:8443/hls/s1.m3u8").unwrap();
        assert_eq!((u.protocol, u.tls), (Protocol::Hls, true));
        assert_eq!((u.host.as_str(), u.port), ("::1", 8443));
        let u = PlayUrl::parse("http://h:8080").unwrap();
        assert_eq!(u.path, "/");
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        assert!(matches!(
            PlayUrl::parse("srt://h:1"),
            Err(PlayUrlError::Scheme(_))
        ));
        assert_eq!(
            PlayUrl::parse("http://h:0/x.flv"),
            Err(PlayUrlError::Port("0".into()))
        );
        assert_eq!(
            PlayUrl::parse("http://:80/x.flv"),
            Err(PlayUrlError::NoHost)
        );
        assert!(matches!(
            PlayUrl::parse("rtmp://h/live"),
            Err(PlayUrlError::Rtmp(_))
        ));
    }
}
