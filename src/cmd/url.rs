//! `pushprobe url`: build a signed push URL, or explain one (`--check`).

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::cli::UrlArgs;
use crate::clock::{human, now_unix, rfc3339};
use crate::sign::{self, Expiry, Keys, PushUrl, Scheme, SecretCheck, UrlSpec};

pub fn run(args: &UrlArgs) -> anyhow::Result<ExitCode> {
    let keys = args.keys.keys()?;
    if let Some(url) = &args.check {
        let (text, ok) = explain(url, &keys, now_unix(), args.show_secrets)?;
        std::io::stdout().lock().write_all(text.as_bytes())?;
        return Ok(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    let Some(key) = keys.primary else {
        bail!("no push key: set PUSHPROBE_KEY or give --key-file PATH");
    };
    let (Some(domain), Some(stream)) = (&args.domain, &args.stream) else {
        bail!("--domain and --stream are required to build a URL");
    };
    let expiry = match (args.expires_at, args.expires_in) {
        (Some(at), _) => at,
        (None, Some(d)) => now_unix() + d.as_secs(),
        (None, None) => now_unix() + 24 * 3600,
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

/// Explains a URL. Returns the text and whether it is valid now (and signed
/// right when a key was given). Malformed URLs are errors.
pub fn explain(
    input: &str,
    keys: &Keys,
    now: u64,
    show_secrets: bool,
) -> anyhow::Result<(String, bool)> {
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
    let _ = writeln!(out, "verdict   {}", if ok { "ok" } else { "NOT OK" });
    Ok((out, ok))
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
