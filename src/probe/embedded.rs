//! The embedded ingest on loopback that `smoke`, `dup` and `demo` push to
//! when no URL is given, and the choice between it and the user's URL.

use crate::clock::now_unix;
use crate::ingest::{self, IngestConfig, IngestHandle};
use crate::secret::Secret;
use crate::sign::{self, Keys, Scheme, UrlError, UrlSpec};

/// An embedded ingest that checks signatures with a random key of its own.
pub struct Embedded {
    pub ingest: IngestHandle,
    pub key: Secret,
}

impl Embedded {
    pub async fn start(config: IngestConfig) -> std::io::Result<Embedded> {
        let key = Secret::new(random_hex(16));
        let config = IngestConfig {
            keys: Keys {
                primary: Some(key.clone()),
                backup: None,
            },
            ..config
        };
        let ingest = ingest::spawn(config).await?;
        Ok(Embedded { ingest, key })
    }

    /// A URL for `stream` on the embedded ingest, expiring at `expiry_unix`.
    pub fn url(&self, stream: &str, expiry_unix: u64) -> Result<String, UrlError> {
        let spec = UrlSpec {
            scheme: Scheme::Rtmp,
            domain: self.ingest.rtmp_addr.ip().to_string(),
            port: Some(self.ingest.rtmp_addr.port()),
            app: "live".into(),
            stream: stream.into(),
        };
        Ok(sign::sign_url(&spec, &self.key, expiry_unix)?.to_string())
    }

    /// The keys that sign for this ingest.
    pub fn keys(&self) -> Keys {
        Keys {
            primary: Some(self.key.clone()),
            backup: None,
        }
    }
}

/// Where a command pushes: the user's URL with the user's keys, or a URL
/// signed for an embedded ingest started for it (valid 24 h).
pub struct Target {
    pub url: String,
    pub keys: Keys,
    /// The embedded ingest when no URL was given; shut it down at the end.
    pub embedded: Option<Embedded>,
}

impl Target {
    /// `url` with `user_keys`, or, without a URL, an embedded ingest and a
    /// URL for `stream` on it.
    pub async fn pick(
        url: Option<&str>,
        user_keys: Keys,
        stream: &str,
    ) -> Result<Target, TargetError> {
        match url {
            Some(u) => Ok(Target {
                url: u.to_string(),
                keys: user_keys,
                embedded: None,
            }),
            None => {
                let e = Embedded::start(IngestConfig::default()).await?;
                let url = e.url(stream, now_unix() + 24 * 3600)?;
                Ok(Target {
                    url,
                    keys: e.keys(),
                    embedded: Some(e),
                })
            }
        }
    }

    /// Stops the embedded ingest, if any.
    pub async fn shutdown(self) {
        if let Some(e) = self.embedded {
            let _ = e.ingest.shutdown().await;
        }
    }
}

/// Why the embedded target could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("cannot start the embedded ingest on loopback")]
    Ingest(#[from] std::io::Error),
    #[error(transparent)]
    Url(#[from] UrlError),
}

/// Hex of `n` bytes from std's randomly seeded hasher (no extra crate).
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
