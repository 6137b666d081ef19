//! Which streams a load run pushes to: the index range (sharded), the URL of
//! each index (signed from a template, or a pre-signed URL template), and the
//! open-model schedule. Pure: time is passed in.

use std::time::Duration;

use crate::secret::Secret;
use crate::sign::{self, PushUrl, UrlError, UrlSpec};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    #[error("shard {0:?} is not I/N with 0 <= I < N (e.g. 0/4)")]
    Shard(String),
    #[error(
        "template {0:?} has no {{i}} placeholder: every publisher would push to the same stream"
    )]
    NoPlaceholder(String),
    // The cause is the source: `{:#}` prints it once.
    #[error("URL for publisher {index}")]
    Url { index: u64, source: UrlError },
}

/// `i/n`: this process runs the i-th of n slices (0-based). The one shard
/// type: parsed from `--shard I/N`, carried in `RunMeta`, written in the
/// report's `shards` as `{"index": I, "count": N}`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    pub fn parse(s: &str) -> Result<Shard, TargetError> {
        let err = || TargetError::Shard(s.to_string());
        let (i, n) = s.split_once('/').ok_or_else(err)?;
        let index: u32 = i.trim().parse().map_err(|_| err())?;
        let count: u32 = n.trim().parse().map_err(|_| err())?;
        if count == 0 || index >= count {
            return Err(err());
        }
        Ok(Shard { index, count })
    }

    /// The slice `[start, end)` of `[0, total)` this shard takes: contiguous,
    /// sizes differ by at most one, the union over all shards is the whole.
    pub fn slice(self, total: u64) -> (u64, u64) {
        let n = self.count as u64;
        let i = self.index as u64;
        let base = total / n;
        let extra = total % n;
        let start = i * base + i.min(extra);
        let len = base + u64::from(i < extra);
        (start, start + len)
    }
}

/// How a publisher index becomes a URL.
#[derive(Debug, Clone)]
pub enum Template {
    /// Signed with the push key: `{i}` in the stream template.
    Signed {
        spec: UrlSpec,
        key: Secret,
        expiry_unix: u64,
    },
    /// A URL template with `{i}`, used as given (pre-signed or unsigned).
    Url(String),
}

impl Template {
    pub fn check(&self) -> Result<(), TargetError> {
        let t = match self {
            Template::Signed { spec, .. } => &spec.stream,
            Template::Url(u) => u,
        };
        if !t.contains("{i}") {
            return Err(TargetError::NoPlaceholder(t.clone()));
        }
        self.url(0).map(|_| ())
    }

    pub fn url(&self, index: u64) -> Result<PushUrl, TargetError> {
        let i = index.to_string();
        let r = match self {
            Template::Signed {
                spec,
                key,
                expiry_unix,
            } => {
                let mut s = spec.clone();
                s.stream = spec.stream.replace("{i}", &i);
                sign::sign_url(&s, key, *expiry_unix)
            }
            Template::Url(t) => PushUrl::parse(&t.replace("{i}", &i)),
        };
        r.map_err(|source| TargetError::Url { index, source })
    }

    /// The template for reports, secrets redacted.
    pub fn describe(&self) -> String {
        match self {
            Template::Signed { spec, .. } => format!(
                "{}://{}{}/{}/{}?txSecret=***&txTime=...",
                spec.scheme.as_str(),
                spec.domain,
                spec.port.map_or(String::new(), |p| format!(":{p}")),
                spec.app,
                spec.stream
            ),
            Template::Url(u) => sign::redact_query_in(u),
        }
    }
}

/// One planned publisher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Stream index (the `{i}`).
    pub index: u64,
    /// Offset from the run's start at which it is scheduled.
    pub at: Duration,
    /// A deliberate duplicate of a stream another slot holds.
    pub duplicate: bool,
}

/// Open-model schedule: `rate` publishers per second (0: all at once) over
/// the indices `[start, end)`, then `duplicates` extra publishers on the
/// first streams, each scheduled `dup_delay` after the one it duplicates.
pub fn schedule(
    start: u64,
    end: u64,
    rate: f64,
    duplicates: u64,
    dup_delay: Duration,
) -> Vec<Slot> {
    let at = |k: u64| {
        if rate > 0.0 {
            Duration::from_secs_f64(k as f64 / rate)
        } else {
            Duration::ZERO
        }
    };
    let mut slots: Vec<Slot> = (start..end)
        .enumerate()
        .map(|(k, index)| Slot {
            index,
            at: at(k as u64),
            duplicate: false,
        })
        .collect();
    let n = end.saturating_sub(start);
    for k in 0..duplicates.min(n) {
        slots.push(Slot {
            index: start + k,
            at: at(k) + dup_delay,
            duplicate: true,
        });
    }
    slots.sort_by_key(|s| s.at);
    slots
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::Scheme;

    #[test]
    fn shards_cover_every_index_once() {
        for total in [0u64, 1, 7, 300, 10_001] {
            for n in 1..=7u32 {
                let mut next = 0;
                for i in 0..n {
                    let (a, b) = Shard { index: i, count: n }.slice(total);
                    assert_eq!(a, next, "total {total} n {n} i {i}");
                    assert!(b >= a);
                    next = b;
                }
                assert_eq!(next, total);
            }
        }
        assert_eq!(Shard::parse("2/4"), Ok(Shard { index: 2, count: 4 }));
        assert!(Shard::parse("4/4").is_err());
        assert!(Shard::parse("1/0").is_err());
        assert!(Shard::parse("x").is_err());
    }

    #[test]
    fn schedule_is_open_model_with_duplicates_after() {
        let s = schedule(10, 14, 2.0, 2, Duration::from_secs(1));
        let primaries: Vec<_> = s.iter().filter(|s| !s.duplicate).collect();
        assert_eq!(primaries.len(), 4);
        assert_eq!(primaries[3].at, Duration::from_millis(1500));
        let dups: Vec<_> = s.iter().filter(|s| s.duplicate).collect();
        assert_eq!(dups.len(), 2);
        assert_eq!((dups[0].index, dups[0].at), (10, Duration::from_secs(1)));
        assert_eq!(
            (dups[1].index, dups[1].at),
            (11, Duration::from_millis(1500))
        );
        assert!(s.windows(2).all(|w| w[0].at <= w[1].at));
        let all_at_once = schedule(0, 3, 0.0, 0, Duration::ZERO);
        assert!(all_at_once.iter().all(|s| s.at == Duration::ZERO));
    }

    #[test]
    fn templates() {
        let signed = Template::Signed {
            spec: UrlSpec {
                scheme: Scheme::Rtmp,
                domain: "127.0.0.1".into(),
                port: Some(1935),
                app: "live".into(),
                stream: "load-{i}".into(),
            },
            key: Secret::new("k".into()),
            expiry_unix: 100,
        };
        signed.check().unwrap();
        let u = signed.url(7).unwrap();
        assert_eq!(u.stream, "load-7");
        assert_eq!(
            u.tx_secret().unwrap(),
            sign::tx_secret(&Secret::new("k".into()), "load-7", "64")
        );
        assert!(!signed.describe().contains(u.tx_secret().unwrap()));
        let t = Template::Url("rtmp://h/live/s{i}?txSecret=abc&txTime=FF".into());
        assert_eq!(t.url(3).unwrap().stream, "s3");
        assert_eq!(t.describe(), "rtmp://h/live/s{i}?txSecret=***&txTime=FF");
        assert_eq!(
            Template::Url("rtmp://h/live/s".into()).check(),
            Err(TargetError::NoPlaceholder("rtmp://h/live/s".into()))
        );
    }
}
