//! Publish admission rules of a Tencent-style ingest (served app, disabled
//! streams, txTime and txSecret), as a pure function of the request, the
//! policy and the time passed in.

use std::time::Duration;

use crate::errcode::SubErrcode;
use crate::sign::{self, Keys, PushUrl, Scheme, SecretCheck};

/// Why a publish was refused: the errcode-18 sub-code and a message naming the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub sub_errcode: SubErrcode,
    pub errmsg: String,
}

impl Refusal {
    pub fn new(sub_errcode: SubErrcode, errmsg: impl Into<String>) -> Refusal {
        Refusal {
            sub_errcode,
            errmsg: errmsg.into(),
        }
    }

    /// The onStatus code and description an ingest that answers a refusal
    /// sends: `BadName` "Already publishing" for a stream in use (as
    /// nginx-rtmp does), `Denied` naming the rule for everything else.
    pub fn status(&self) -> (&'static str, &str) {
        if self.sub_errcode == SubErrcode::STREAM_IN_USE {
            ("NetStream.Publish.BadName", "Already publishing")
        } else {
            ("NetStream.Publish.Denied", &self.errmsg)
        }
    }
}

/// What the ingest admits.
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    /// The app (path) served, e.g. `live`.
    pub app: &'a str,
    /// Stream names refused with 305.
    pub disabled: &'a [String],
    /// Push keys; empty means signatures are not checked (500-503 skipped).
    pub keys: &'a Keys,
    /// Grace after txTime during which a URL is still accepted.
    pub auth_delta: Duration,
}

/// One publish request: the app from `connect`, the stream name and the
/// query string carrying txSecret and txTime.
#[derive(Debug, Clone, Copy)]
pub struct Publish<'a> {
    pub app: &'a str,
    pub stream: &'a str,
    pub query: &'a str,
}

/// Splits `name?query` into the bare name and the query (if any).
pub fn split_query(s: &str) -> (&str, Option<&str>) {
    match s.split_once('?') {
        Some((name, q)) => (name, Some(q)),
        None => (s, None),
    }
}

/// The query to authenticate with: the publish name's, else tcUrl's, else the
/// connect app's (some clients put it there); empty when none has one.
pub fn pick_query<'a>(publish_name: &'a str, tc_url: &'a str, app: &'a str) -> &'a str {
    [publish_name, tc_url, app]
        .into_iter()
        .filter_map(|s| split_query(s).1)
        .find(|q| !q.is_empty())
        .unwrap_or("")
}

/// The app as the ingest compares it: without a query and surrounding slashes.
pub fn bare_app(app: &str) -> &str {
    split_query(app).0.trim_matches('/')
}

/// Applies the rules in Tencent's order: app, disabled stream, then (only
/// when keys are configured) txTime, expiry, txSecret, signature.
pub fn check(req: &Publish<'_>, policy: &Policy<'_>, now_unix: u64) -> Result<(), Refusal> {
    let app = bare_app(req.app);
    if app != policy.app {
        return Err(Refusal::new(
            SubErrcode::APP_DISABLED,
            format!("app {app:?} is not served (serving {:?})", policy.app),
        ));
    }
    if policy.disabled.iter().any(|d| d == req.stream) {
        return Err(Refusal::new(
            SubErrcode::STREAM_BANNED,
            "stream is disabled",
        ));
    }
    if policy.keys.is_empty() {
        return Ok(());
    }
    // A malformed query carries nothing we can trust: treat it as absent.
    let query = sign::parse_query(req.query).unwrap_or_default();
    let url = PushUrl {
        scheme: Scheme::Rtmp,
        host: "ingest".to_string(),
        port: None,
        app: app.to_string(),
        stream: req.stream.to_string(),
        query,
    };
    let Some(tx_time) = url.tx_time() else {
        return Err(Refusal::new(SubErrcode::NO_TX_TIME, "no txTime"));
    };
    let Ok(expiry) = sign::parse_tx_time(tx_time) else {
        return Err(Refusal::new(
            SubErrcode::NO_TX_TIME,
            "txTime is not hexadecimal Unix seconds",
        ));
    };
    // Expired at the txTime second itself, as `sign::expiry_status` says.
    if expiry.saturating_add(policy.auth_delta.as_secs()) <= now_unix {
        return Err(Refusal::new(
            SubErrcode::TX_TIME_EXPIRED,
            format!("txTime expired {} s ago", now_unix - expiry),
        ));
    }
    match sign::check_secret(&url, policy.keys) {
        SecretCheck::Primary | SecretCheck::Backup | SecretCheck::NoKey => Ok(()),
        SecretCheck::NoTxSecret => Err(Refusal::new(SubErrcode::NO_TX_SECRET, "no txSecret")),
        SecretCheck::NoTxTime => Err(Refusal::new(SubErrcode::NO_TX_TIME, "no txTime")),
        SecretCheck::Mismatch => Err(Refusal::new(
            SubErrcode::SIGNATURE_MISMATCH,
            "txSecret matches neither key",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn signed(key: &str, stream: &str, tx_time: &str) -> String {
        let secret = sign::tx_secret(&Secret::new(key.into()), stream, tx_time);
        format!("txSecret={secret}&txTime={tx_time}")
    }

    #[test]
    fn rules_table() {
        let now = 0x6000_0000u64;
        let future = format!("{:X}", now + 3600);
        let past = format!("{:X}", now - 100);
        let just_past = format!("{:x}", now - 5);
        let keys = Keys {
            primary: Some(Secret::new("k1".into())),
            backup: Some(Secret::new("k2".into())),
        };
        let no_keys = Keys::default();
        let disabled = vec!["banned".to_string()];
        let ok_primary = signed("k1", "s", &future);
        let ok_backup = signed("k2", "s", &future);
        let ok_lower = signed("k1", "s", &just_past);
        let expired = signed("k1", "s", &past);
        let wrong_key = signed("other", "s", &future);
        let wrong_stream = signed("k1", "t", &future);
        let no_secret = format!("txTime={future}");
        let no_time = "txSecret=abc".to_string();
        let bad_time = "txSecret=abc&txTime=zz".to_string();
        let expired_bad_sig = format!("txSecret=00&txTime={past}");
        // (app, stream, query, keys, grace s, want)
        type Case<'a> = (&'a str, &'a str, &'a str, &'a Keys, u64, Option<u32>);
        let cases: &[Case] = &[
            ("live", "s", &ok_primary, &keys, 0, None),
            ("live", "s", &ok_backup, &keys, 0, None),
            ("/live/", "s", &ok_primary, &keys, 0, None),
            ("live?txTime=1", "s", &ok_primary, &keys, 0, None),
            ("live", "s", &ok_lower, &keys, 10, None),
            ("live", "s", &ok_lower, &keys, 0, Some(501)),
            ("live", "s", &expired, &keys, 0, Some(501)),
            ("live", "s", &expired, &keys, 100, Some(501)),
            ("live", "s", &expired, &keys, 101, None),
            ("live", "s", &expired_bad_sig, &keys, 0, Some(501)),
            ("live", "s", "", &keys, 0, Some(500)),
            ("live", "s", &no_time, &keys, 0, Some(500)),
            ("live", "s", &bad_time, &keys, 0, Some(500)),
            ("live", "s", "txTime=&&=", &keys, 0, Some(500)),
            ("live", "s", &no_secret, &keys, 0, Some(502)),
            ("live", "s", &wrong_key, &keys, 0, Some(503)),
            ("live", "s", &wrong_stream, &keys, 0, Some(503)),
            // No keys: 500-503 are not checked at all.
            ("live", "s", "", &no_keys, 0, None),
            ("live", "s", &expired, &no_keys, 0, None),
            ("live", "s", &wrong_key, &no_keys, 0, None),
            // App first, then disabled, then auth.
            ("other", "banned", "", &keys, 0, Some(304)),
            ("", "s", &ok_primary, &keys, 0, Some(304)),
            ("Live", "s", &ok_primary, &keys, 0, Some(304)),
            ("live", "banned", "", &keys, 0, Some(305)),
            ("live", "banned", "", &no_keys, 0, Some(305)),
        ];
        for (app, stream, query, keys, grace, want) in cases {
            let policy = Policy {
                app: "live",
                disabled: &disabled,
                keys,
                auth_delta: Duration::from_secs(*grace),
            };
            let req = Publish { app, stream, query };
            let got = check(&req, &policy, now).err().map(|r| r.sub_errcode.0);
            assert_eq!(got, *want, "app={app:?} stream={stream:?} query={query:?}");
        }
    }

    #[test]
    fn refusal_messages_and_status() {
        let r = Refusal::new(SubErrcode::TX_TIME_EXPIRED, "txTime expired 5 s ago");
        assert_eq!(
            r.status(),
            ("NetStream.Publish.Denied", "txTime expired 5 s ago")
        );
        let r = Refusal::new(SubErrcode::STREAM_IN_USE, "stream is already being pushed");
        assert_eq!(
            r.status(),
            ("NetStream.Publish.BadName", "Already publishing")
        );
    }

    #[test]
    fn query_sources_in_order() {
        assert_eq!(split_query("s?a=1"), ("s", Some("a=1")));
        assert_eq!(split_query("s"), ("s", None));
        assert_eq!(pick_query("s?a=1", "rtmp://h/live?b=2", "live"), "a=1");
        assert_eq!(pick_query("s", "rtmp://h/live?b=2", "live?c=3"), "b=2");
        assert_eq!(pick_query("s?", "rtmp://h/live", "live?c=3"), "c=3");
        assert_eq!(pick_query("s", "", "live"), "");
        assert_eq!(bare_app("live?x=1"), "live");
    }
}
