//! `pushprobe url`: build a signed push URL, play URLs (`--play`), or explain
//! a push or play URL (`--check`).

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::cli::UrlArgs;
use crate::clock::{human, now_unix, rfc3339};
use crate::secret::Secret;
use crate::sign::{self, Expiry, Keys, PlayFormat, PlayUrl, PushUrl, Scheme, SecretCheck, UrlSpec};

pub fn run(args: &UrlArgs) -> anyhow::Result<ExitCode> {
    let keys = args.keys.keys()?;
    let play_key = args.play_key.key()?;
    if let Some(url) = &args.check {
        let (text, ok) = explain_any(url, &keys, play_key.as_ref(), now_unix(), args.show_secrets)?;
        std::io::stdout().lock().write_all(text.as_bytes())?;
        return Ok(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    let expiry = match (args.expires_at, args.expires_in) {
        (Some(at), _) => at,
        (None, Some(d)) => now_unix() + d.as_secs(),
        (None, None) => now_unix() + 24 * 3600,
    };
    if args.play {
        let (Some(domain), Some(stream)) = (&args.play_domain, &args.stream) else {
            bail!("--play-domain and --stream are required to build play URLs");
        };
        if play_key.is_none() {
            eprintln!(
                "pushprobe url: no play key (PUSHPROBE_PLAY_KEY or --play-key-file): play URLs are unsigned, refused (403) where playback authentication is on"
            );
        }
        let urls = sign::play_urls(domain, &args.app, stream, play_key.as_ref(), expiry)
            .context("cannot build the play URLs")?;
        let mut out = std::io::stdout().lock();
        for url in urls {
            writeln!(out, "{url}")?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let Some(key) = keys.primary else {
        bail!("no push key: set PUSHPROBE_KEY or give --key-file PATH");
    };
    let (Some(domain), Some(stream)) = (&args.domain, &args.stream) else {
        bail!("--domain and --stream are required to build a URL");
    };
    let scheme = if args.srt { Scheme::Srt } else { args.scheme };
    let port = match scheme {
        Scheme::Srt => args.port.or(Some(args.srt_port)),
        _ => args.port,
    };
    let spec = UrlSpec {
        scheme,
        domain: domain.clone(),
        port,
        app: args.app.clone(),
        stream: stream.clone(),
    };
    let url = sign::sign_url(&spec, &key, expiry).context("cannot build the URL")?;
    writeln!(std::io::stdout().lock(), "{url}")?;
    Ok(ExitCode::SUCCESS)
}

/// Explains a push URL (see [`explain_any`]).
pub fn explain(
    input: &str,
    keys: &Keys,
    now: u64,
    show_secrets: bool,
) -> anyhow::Result<(String, bool)> {
    explain_any(input, keys, None, now, show_secrets)
}

/// Explains a push URL or a play URL (`http[s]://../STREAM.flv|.m3u8`, or
/// an rtmp URL checked against the play key too). Returns the text and
/// whether it is valid now (and signed right when a key was given).
/// Malformed URLs are errors.
pub fn explain_any(
    input: &str,
    keys: &Keys,
    play_key: Option<&Secret>,
    now: u64,
    show_secrets: bool,
) -> anyhow::Result<(String, bool)> {
    let play = PlayUrl::parse(input)?;
    if play.format != PlayFormat::Rtmp {
        return Ok(explain_play(&play, play_key, now, show_secrets));
    }
    let url = PushUrl::parse(input)?;
    let mut out = String::new();
    let mut ok = true;
    let shown = if show_secrets {
        url.to_string()
    } else {
        url.redacted()
    };
    let _ = writeln!(out, "url       {shown}");
    let _ = writeln!(out, "domain    {}", url.host);
    let default = if url.port.is_none() { " (default)" } else { "" };
    let _ = writeln!(out, "port      {}{default}", url.port());
    let _ = writeln!(out, "app       {}", url.app);
    let _ = writeln!(out, "stream    {}", url.stream);
    if url.scheme == Scheme::Srt {
        explain_srt(&url, &mut out, show_secrets);
    }
    match (url.tx_time(), url.expiry()?) {
        (Some(raw), Some(exp)) => {
            let when = rfc3339(exp);
            let line = match sign::expiry_status(exp, now) {
                Expiry::Expired(ago) => {
                    ok = false;
                    format!(
                        "EXPIRED {} ago: sign a new URL (pushprobe url --expires-in 24h)",
                        human(ago)
                    )
                }
                Expiry::Short(left) => format!(
                    "valid for {}; WARNING: under the 12 h Tencent advises, a dropped push cannot reconnect once it expires",
                    human(left)
                ),
                Expiry::Valid(left) => format!("valid for {}", human(left)),
            };
            let _ = writeln!(out, "txTime    {raw} = {when}, {line}");
        }
        _ => {
            ok = false;
            let _ = writeln!(
                out,
                "txTime    missing: a domain with push authentication refuses this URL"
            );
        }
    }
    let secret_line = match sign::check_secret(&url, keys) {
        SecretCheck::Primary => "matches the primary key (PUSHPROBE_KEY)".to_string(),
        SecretCheck::Backup => "matches the backup key (PUSHPROBE_BACKUP_KEY)".to_string(),
        SecretCheck::Mismatch => {
            ok = false;
            "DOES NOT MATCH the key(s) given: re-sign with pushprobe url".to_string()
        }
        SecretCheck::NoTxSecret => {
            ok = false;
            "missing: a domain with push authentication refuses this URL".to_string()
        }
        SecretCheck::NoTxTime => "not checked: no txTime to sign over".to_string(),
        SecretCheck::NoKey => {
            "not checked: set PUSHPROBE_KEY (and PUSHPROBE_BACKUP_KEY) to verify".to_string()
        }
    };
    let _ = writeln!(out, "txSecret  {secret_line}");
    if let Some(k) = play_key {
        let line = match sign::check_secret(&url, &play_keys(k)) {
            SecretCheck::Primary => {
                // Signed for play: the push-key verdict does not apply.
                ok = url.expiry()?.is_some_and(|e| e > now);
                "matches the play key (PUSHPROBE_PLAY_KEY): an RTMP play URL"
            }
            SecretCheck::NoTxSecret | SecretCheck::NoTxTime => "not signed for play",
            _ => "does not match the play key",
        };
        let _ = writeln!(out, "play key  {line}");
    }
    let _ = writeln!(out, "verdict   {}", if ok { "ok" } else { "NOT OK" });
    Ok((out, ok))
}

fn play_keys(k: &Secret) -> Keys {
    Keys {
        primary: Some(k.clone()),
        backup: None,
    }
}

/// Explains an HTTP-FLV or HLS play URL: parts, expiry, and the signature
/// against the play key. Unsigned is fine without a play key (playback
/// authentication off); with one, it is what a 403 would be.
fn explain_play(
    url: &PlayUrl,
    play_key: Option<&Secret>,
    now: u64,
    show_secrets: bool,
) -> (String, bool) {
    let mut out = String::new();
    let mut ok = true;
    let shown = if show_secrets {
        url.to_string()
    } else {
        url.redacted()
    };
    let kind = match url.format {
        PlayFormat::Flv => "HTTP-FLV",
        PlayFormat::Hls => "HLS",
        PlayFormat::Rtmp => "RTMP",
    };
    let _ = writeln!(out, "url       {shown}");
    let _ = writeln!(out, "kind      play URL ({kind})");
    let _ = writeln!(out, "domain    {}", url.host);
    let default = if url.port.is_none() { " (default)" } else { "" };
    let _ = writeln!(out, "port      {}{default}", url.port());
    let _ = writeln!(out, "app       {}", url.app);
    let _ = writeln!(out, "stream    {}", url.stream);
    let signed = url.as_signed();
    let auth_on = play_key.is_some();
    match (signed.tx_time(), signed.expiry()) {
        (Some(_), Err(e)) => {
            ok = false;
            let _ = writeln!(out, "txTime    {e}");
        }
        (Some(raw), Ok(Some(exp))) => {
            let line = match sign::expiry_status(exp, now) {
                Expiry::Expired(ago) => {
                    ok = false;
                    format!(
                        "EXPIRED {} ago: playback authentication answers 403",
                        human(ago)
                    )
                }
                Expiry::Short(left) | Expiry::Valid(left) => format!("valid for {}", human(left)),
            };
            let _ = writeln!(out, "txTime    {raw} = {}, {line}", rfc3339(exp));
        }
        _ => {
            ok &= !auth_on;
            let _ = writeln!(
                out,
                "txTime    missing: fine without playback authentication; with it, 403"
            );
        }
    }
    let check = match play_key {
        Some(k) => sign::check_secret(&signed, &play_keys(k)),
        None => sign::check_secret(&signed, &Keys::default()),
    };
    let line = match check {
        SecretCheck::Primary | SecretCheck::Backup => "matches the play key (PUSHPROBE_PLAY_KEY)",
        SecretCheck::Mismatch => {
            ok = false;
            "DOES NOT MATCH the play key: re-sign with pushprobe url --play"
        }
        SecretCheck::NoTxSecret | SecretCheck::NoTxTime => {
            ok &= !auth_on;
            "missing: unsigned play URL (403 where playback authentication is on)"
        }
        SecretCheck::NoKey => "not checked: set PUSHPROBE_PLAY_KEY (or --play-key-file) to verify",
    };
    let _ = writeln!(out, "txSecret  {line}");
    let _ = writeln!(out, "verdict   {}", if ok { "ok" } else { "NOT OK" });
    (out, ok)
}

/// The SRT lines of `url --check`: the streamid as sent and its `h=`.
fn explain_srt(url: &PushUrl, out: &mut String, show_secrets: bool) {
    let sid = url.stream_id();
    let sid = if show_secrets {
        sid
    } else {
        sign::redact_query_in(&sid)
    };
    let _ = writeln!(out, "transport SRT (MPEG-TS over UDP), streamid {sid}");
    let h = match url.param("h") {
        Some(h) if h.eq_ignore_ascii_case(&url.host) => format!("{h} (the URL's host)"),
        Some(h) => format!("{h} (dialing {}: h= names the push domain)", url.host),
        None => "missing: Tencent finds the push domain by h=; add h=DOMAIN".to_string(),
    };
    let _ = writeln!(out, "h         {h}");
    let _ = writeln!(out, "r         {}/{}", url.app, url.stream);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    const VECTOR: &str = "rtmp://livepush.example.com/live/test?txSecret=f85a2ab363fe4deaffef9754d79da6fe&txTime=5C271099";

    fn keys(k: &str) -> Keys {
        Keys {
            primary: Some(Secret::new(k.into())),
            backup: None,
        }
    }

    #[test]
    fn explains_expired_and_signed() {
        let (text, ok) = explain(
            VECTOR,
            &keys("e12c46f2612d5106e2034781ab261ca3"),
            1546064025 + 7200,
            false,
        )
        .unwrap();
        assert!(!ok);
        assert!(text.contains("2018-12-29T06:13:45Z"), "{text}");
        assert!(text.contains("EXPIRED 2 h 0 min ago"), "{text}");
        assert!(text.contains("matches the primary key"), "{text}");
        assert!(text.contains("txSecret=***"), "{text}");
        assert!(!text.contains("f85a2ab3"), "secret shown: {text}");
    }

    #[test]
    fn explains_short_lived_and_mis_signed() {
        let (text, ok) = explain(
            VECTOR,
            &keys("e12c46f2612d5106e2034781ab261ca3"),
            1546064025 - 3600,
            false,
        )
        .unwrap();
        assert!(ok, "valid for an hour: {text}");
        assert!(text.contains("WARNING: under the 12 h"), "{text}");
        let (text, ok) = explain(VECTOR, &keys("wrong"), 1546064025 - 86_400, false).unwrap();
        assert!(!ok);
        assert!(text.contains("DOES NOT MATCH"), "{text}");
        let (text, ok) = explain(VECTOR, &Keys::default(), 1546064025 - 86_400, true).unwrap();
        assert!(ok);
        assert!(text.contains("not checked"), "{text}");
        assert!(text.contains("f85a2ab363fe4deaffef9754d79da6fe"), "{text}");
    }

    #[test]
    fn explains_play_urls() {
        let key = Secret::new("e12c46f2612d5106e2034781ab261ca3".into());
        let flv = "http://liveplay.example.com/live/test.flv?txSecret=f85a2ab363fe4deaffef9754d79da6fe&txTime=5C271099";
        let (text, ok) =
            explain_any(flv, &Keys::default(), Some(&key), 1546064025 - 60, false).unwrap();
        assert!(ok, "{text}");
        assert!(text.contains("play URL (HTTP-FLV)"), "{text}");
        assert!(text.contains("port      80 (default)"), "{text}");
        assert!(text.contains("stream    test\n"), "{text}");
        assert!(text.contains("matches the play key"), "{text}");
        assert!(!text.contains("f85a2ab3"), "secret shown: {text}");
        let wrong = Secret::new("other".into());
        let (text, ok) =
            explain_any(flv, &Keys::default(), Some(&wrong), 1546064025 - 60, false).unwrap();
        assert!(!ok && text.contains("DOES NOT MATCH"), "{text}");
        let (text, ok) =
            explain_any(flv, &Keys::default(), Some(&key), 1546064025 + 60, false).unwrap();
        assert!(!ok && text.contains("EXPIRED"), "{text}");
        let hls = "https://liveplay.example.com:8443/live/test.m3u8";
        let (text, ok) = explain_any(hls, &Keys::default(), None, 0, false).unwrap();
        assert!(ok, "unsigned without a play key: {text}");
        assert!(text.contains("play URL (HLS)") && text.contains("port      8443\n"));
        let (_, ok) = explain_any(hls, &Keys::default(), Some(&key), 0, false).unwrap();
        assert!(!ok, "unsigned with a play key");
        // An rtmp URL signed with the play key: a play URL.
        let rtmp = VECTOR.replace("livepush", "liveplay");
        let (text, ok) =
            explain_any(&rtmp, &keys("push-key"), Some(&key), 1546064025 - 60, false).unwrap();
        assert!(ok, "{text}");
        assert!(text.contains("matches the play key"), "{text}");
        assert!(explain_any("http://h/live/test.mp4", &Keys::default(), None, 0, false).is_err());
    }

    #[test]
    fn malformed_is_error() {
        assert!(explain("http://x/live/s", &Keys::default(), 0, false).is_err());
        assert!(
            explain(
                "rtmp://x/live/s?txTime=zz&txSecret=a",
                &Keys::default(),
                0,
                false
            )
            .is_err()
        );
    }

    #[test]
    fn explains_an_srt_url_with_its_streamid() {
        let url = "srt://livepush.example.com:9000?streamid=#!::h=livepush.example.com,r=live/test,txSecret=f85a2ab363fe4deaffef9754d79da6fe,txTime=5C271099";
        let (text, ok) = explain(
            url,
            &keys("e12c46f2612d5106e2034781ab261ca3"),
            1546064025 - 13 * 3600,
            false,
        )
        .unwrap();
        assert!(ok, "{text}");
        assert!(text.contains("port      9000"), "{text}");
        assert!(text.contains("stream    test"), "{text}");
        assert!(
            text.contains(
                "streamid #!::h=livepush.example.com,r=live/test,txSecret=***,txTime=5C271099"
            ),
            "{text}"
        );
        assert!(
            text.contains("h         livepush.example.com (the URL's host)"),
            "{text}"
        );
        assert!(text.contains("matches the primary key"), "{text}");
        assert!(!text.contains("f85a2ab3"), "secret shown: {text}");
        let (text, ok) = explain(url, &keys("wrong"), 1546064025 + 1, false).unwrap();
        assert!(!ok);
        assert!(text.contains("EXPIRED"), "{text}");
        assert!(text.contains("DOES NOT MATCH"), "{text}");
    }
}
