//! `--reconnect`: which endings a publisher retries, the jittered exponential
//! backoff between attempts, and what to do with an expired URL first (re-sign
//! it with the key at hand, else stop and say so). Pure: time and randomness
//! are passed in.

use std::time::Duration;

use crate::classify::Outcome;
use crate::sign::{self, Keys, PushUrl, SecretCheck};

/// First pause before reconnecting.
pub const BACKOFF_START: Duration = Duration::from_millis(500);
/// Longest pause between attempts.
pub const BACKOFF_CAP: Duration = Duration::from_secs(10);
/// Each pause is the nominal one times a factor in `1 ± JITTER`.
pub const JITTER: f64 = 0.3;

/// The pause before retry number `attempt` (0 for the first retry after a
/// success or the start): 500 ms doubling up to 10 s, scaled by
/// `1 + JITTER * jitter` with `jitter` in [-1, 1].
pub fn backoff(attempt: u32, jitter: f64) -> Duration {
    let nominal = BACKOFF_START
        .saturating_mul(1u32 << attempt.min(16))
        .min(BACKOFF_CAP);
    nominal.mul_f64(1.0 + JITTER * jitter.clamp(-1.0, 1.0))
}

/// Endings worth another attempt: the push was cut, or the ingest could not
/// be reached or stopped answering (it may be restarting). Refusals for a
/// reason (bad secret, stream in use or disabled) are final; an expired URL
/// is retried only once re-signed (see [`before_retry`]).
pub fn retryable(outcome: Outcome) -> bool {
    matches!(
        outcome,
        Outcome::Interrupted
            | Outcome::ConnectionRefused
            | Outcome::ConnectTimeout
            | Outcome::Timeout
            | Outcome::ExpiredUrl
    )
}

/// What to reconnect with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// The URL is still valid: use it again.
    Same,
    /// txTime had passed: signed again with the key that signed it, valid
    /// until `now + expires_in` (Tencent's advice, seed step 3).
    Resigned(PushUrl),
    /// txTime has passed and no key at hand signs this URL: stop.
    Expired,
}

/// Before a retry at `now` (Unix seconds): an expired URL (or one the server
/// refused as expired) is re-signed when one of `keys` signed it.
pub fn before_retry(
    url: &PushUrl,
    refused_as_expired: bool,
    keys: &Keys,
    now: u64,
    expires_in: Duration,
) -> Next {
    let expired = matches!(url.expiry(), Ok(Some(t)) if t <= now);
    if !expired && !refused_as_expired {
        return Next::Same;
    }
    let key = match sign::check_secret(url, keys) {
        SecretCheck::Primary => keys.primary.as_ref(),
        SecretCheck::Backup => keys.backup.as_ref(),
        _ => None,
    };
    match key {
        Some(k) => Next::Resigned(sign::resign(
            url,
            k,
            now.saturating_add(expires_in.as_secs().max(1)),
        )),
        None => Next::Expired,
    }
}

/// A small per-publisher random source for the jitter (splitmix64).
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    pub fn new(seed: u64) -> Jitter {
        Jitter(seed)
    }

    /// A value in [-1, 1].
    pub fn sample(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    #[test]
    fn backoff_doubles_from_500ms_to_a_10s_cap_with_30_percent_jitter() {
        let nominal: Vec<u64> = (0..8).map(|a| backoff(a, 0.0).as_millis() as u64).collect();
        assert_eq!(
            nominal,
            [500, 1000, 2000, 4000, 8000, 10_000, 10_000, 10_000]
        );
        assert_eq!(backoff(0, -1.0), Duration::from_millis(350));
        assert_eq!(backoff(0, 1.0), Duration::from_millis(650));
        assert_eq!(backoff(40, 1.0), Duration::from_secs(13));
        assert_eq!(backoff(u32::MAX, 5.0), Duration::from_secs(13));
    }

    #[test]
    fn jitter_stays_in_range_and_spreads() {
        let mut j = Jitter::new(7);
        let xs: Vec<f64> = (0..10_000).map(|_| j.sample()).collect();
        assert!(xs.iter().all(|x| (-1.0..=1.0).contains(x)));
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        assert!(mean.abs() < 0.05, "{mean}");
        assert!(xs.iter().any(|x| *x < -0.9) && xs.iter().any(|x| *x > 0.9));
        let mut other = Jitter::new(8);
        assert_ne!(other.sample(), xs[0]);
    }

    #[test]
    fn what_is_retried() {
        for o in Outcome::ALL {
            let want = matches!(
                o,
                Outcome::Interrupted
                    | Outcome::ConnectionRefused
                    | Outcome::ConnectTimeout
                    | Outcome::Timeout
                    | Outcome::ExpiredUrl
            );
            assert_eq!(retryable(o), want, "{o:?}");
        }
    }

    #[test]
    fn expired_urls_are_resigned_with_the_key_that_signed_them_or_named() {
        let key = Secret::new("k1".into());
        let backup = Secret::new("k2".into());
        let keys = Keys {
            primary: Some(key.clone()),
            backup: Some(backup.clone()),
        };
        let spec = sign::UrlSpec {
            scheme: sign::Scheme::Rtmp,
            domain: "h".into(),
            port: None,
            app: "live".into(),
            stream: "s1".into(),
        };
        let day = Duration::from_secs(86_400);
        let valid = sign::sign_url(&spec, &key, 2000).unwrap();
        assert_eq!(before_retry(&valid, false, &keys, 1999, day), Next::Same);

        let Next::Resigned(u) = before_retry(&valid, false, &keys, 2000, day) else {
            panic!("expired at 2000");
        };
        assert_eq!(u.expiry().unwrap(), Some(2000 + 86_400));
        assert_eq!(sign::check_secret(&u, &keys), SecretCheck::Primary);

        // Signed with the backup key: re-signed with the backup key.
        let by_backup = sign::sign_url(&spec, &backup, 100).unwrap();
        let Next::Resigned(u) = before_retry(&by_backup, false, &keys, 2000, day) else {
            panic!("expired");
        };
        assert_eq!(sign::check_secret(&u, &keys), SecretCheck::Backup);

        // The server says expired though our clock does not: re-sign too.
        assert!(matches!(
            before_retry(&valid, true, &keys, 1000, day),
            Next::Resigned(_)
        ));

        // No key, or not the key that signed it: stop and name the expiry.
        assert_eq!(
            before_retry(&valid, false, &Keys::default(), 2000, day),
            Next::Expired
        );
        let other = Keys {
            primary: Some(Secret::new("other".into())),
            backup: None,
        };
        assert_eq!(
            before_retry(&valid, false, &other, 2000, day),
            Next::Expired
        );
    }
}
