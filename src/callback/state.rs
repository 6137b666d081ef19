//! The receiver's state: key, clock, counters, duplicate memory and the channel
//! verified events go to; `accept` parses, verifies, de-duplicates and counts.

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use serde::Serialize;
use tokio::sync::mpsc;

use super::event::{CallbackEvent, EVENT_INTERRUPT, EVENT_PUSH, verify};
use crate::secret::Secret;

/// Largest callback body accepted; Tencent's are well under 2 KiB.
pub const MAX_BODY: usize = 64 * 1024;
/// How many (sequence, event_type) pairs the duplicate detector remembers.
pub const SEEN_CAP: usize = 1_000_000;

/// Why a callback was refused. `status()` gives the HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    #[error("sign does not match MD5(key + t): wrong callback key, or a forged notification")]
    Forged,
    #[error("t {t} is in the past (now {now}): the notification expired or is a replay")]
    Stale { t: u64, now: u64 },
    #[error("{0}")]
    Malformed(String),
    #[error("body is over the {MAX_BODY}-byte limit")]
    TooLarge,
    #[error("request not received in time")]
    Timeout,
}

impl Reject {
    pub fn status(&self) -> StatusCode {
        match self {
            Reject::Forged | Reject::Stale { .. } => StatusCode::FORBIDDEN,
            Reject::Malformed(_) => StatusCode::BAD_REQUEST,
            Reject::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Reject::Timeout => StatusCode::REQUEST_TIMEOUT,
        }
    }
}

/// A verified event as published to the consumer.
#[derive(Debug, Clone)]
pub struct Received {
    pub event: CallbackEvent,
    /// When the request reached the handler.
    pub arrived: Instant,
    /// True when this (sequence, event_type) was seen before: a retry.
    pub duplicate: bool,
}

/// Unix seconds now; injected so tests can fix time.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The real clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    })
}

/// How to build a [`ReceiverState`].
#[derive(Clone)]
pub struct ReceiverConfig {
    /// The callback key (Tencent: Feature Configuration > Live Stream Callback).
    pub key: Secret,
    /// Accept POSTs only at this path (others are 404); `None` accepts any path.
    pub path: Option<String>,
    pub clock: Clock,
    /// Cap of the duplicate detector's memory ([`SEEN_CAP`]).
    pub seen_cap: usize,
    /// Time allowed to receive a request body once its headers are in.
    pub body_timeout: Duration,
}

impl ReceiverConfig {
    pub fn new(key: Secret) -> ReceiverConfig {
        ReceiverConfig {
            key,
            path: None,
            clock: system_clock(),
            seen_cap: SEEN_CAP,
            body_timeout: Duration::from_secs(10),
        }
    }
}

/// A snapshot of the receiver's counts. `accepted_*` count first sightings of
/// verified events; retries of those count in `duplicates` only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    pub accepted_push: u64,
    pub accepted_interrupt: u64,
    /// Verified events whose event_type is neither 0 nor 1.
    pub accepted_other: u64,
    pub duplicates: u64,
    pub forged: u64,
    pub stale: u64,
    /// Bodies that are not a callback, and requests that are not HTTP.
    pub malformed: u64,
    pub oversized: u64,
    /// Requests whose headers or body did not arrive in time (slow or stalled
    /// clients). Idle keep-alive connections closing are not counted.
    pub timed_out: u64,
    /// Events not remembered for duplicate detection because the memory was full.
    pub seen_overflow: u64,
}

#[derive(Default)]
struct AtomicCounters {
    accepted_push: AtomicU64,
    accepted_interrupt: AtomicU64,
    accepted_other: AtomicU64,
    duplicates: AtomicU64,
    forged: AtomicU64,
    stale: AtomicU64,
    malformed: AtomicU64,
    oversized: AtomicU64,
    timed_out: AtomicU64,
    seen_overflow: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

struct Inner {
    key: Secret,
    path: Option<String>,
    clock: Clock,
    seen_cap: usize,
    body_timeout: Duration,
    /// Hashes of (sequence, event_type): 8 bytes per push instead of the strings.
    /// Keyed randomly per process, so a collision (about 3e-8 at a million
    /// entries) cannot be aimed at.
    seen: Mutex<HashSet<u64>>,
    hasher: RandomState,
    counts: AtomicCounters,
    tx: mpsc::UnboundedSender<Received>,
}

/// Shared receiver state: key, clock, counters, duplicate memory and the channel
/// verified events go to. Cheap to clone.
#[derive(Clone)]
pub struct ReceiverState {
    inner: Arc<Inner>,
}

impl ReceiverState {
    /// The state and the receiving end of its event channel. Events are dropped
    /// silently if the receiver is dropped.
    pub fn new(cfg: ReceiverConfig) -> (ReceiverState, mpsc::UnboundedReceiver<Received>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let path = cfg.path.map(|p| {
            if p.starts_with('/') {
                p
            } else {
                format!("/{p}")
            }
        });
        let inner = Inner {
            key: cfg.key,
            path,
            clock: cfg.clock,
            seen_cap: cfg.seen_cap,
            body_timeout: cfg.body_timeout,
            seen: Mutex::new(HashSet::new()),
            hasher: RandomState::new(),
            counts: AtomicCounters::default(),
            tx,
        };
        (
            ReceiverState {
                inner: Arc::new(inner),
            },
            rx,
        )
    }

    pub fn counters(&self) -> Counters {
        let c = &self.inner.counts;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Counters {
            accepted_push: get(&c.accepted_push),
            accepted_interrupt: get(&c.accepted_interrupt),
            accepted_other: get(&c.accepted_other),
            duplicates: get(&c.duplicates),
            forged: get(&c.forged),
            stale: get(&c.stale),
            malformed: get(&c.malformed),
            oversized: get(&c.oversized),
            timed_out: get(&c.timed_out),
            seen_overflow: get(&c.seen_overflow),
        }
    }

    /// Parses, verifies, de-duplicates, counts and publishes one callback body.
    /// `Ok(duplicate)` when verified.
    pub fn accept(&self, body: &[u8], arrived: Instant) -> Result<bool, Reject> {
        let checked = CallbackEvent::from_json(body)
            .and_then(|ev| verify(&ev, &self.inner.key, (self.inner.clock)()).map(|()| ev));
        let event = match checked {
            Ok(ev) => ev,
            Err(r) => {
                self.note_reject(&r);
                return Err(r);
            }
        };
        let duplicate = self.seen_before(&event);
        let c = &self.inner.counts;
        bump(match (duplicate, event.event_type) {
            (true, _) => &c.duplicates,
            (false, Some(EVENT_PUSH)) => &c.accepted_push,
            (false, Some(EVENT_INTERRUPT)) => &c.accepted_interrupt,
            (false, _) => &c.accepted_other,
        });
        let _ = self.inner.tx.send(Received {
            event,
            arrived,
            duplicate,
        });
        Ok(duplicate)
    }

    /// The only path POSTs are accepted at, if one was configured.
    pub(super) fn path(&self) -> Option<&str> {
        self.inner.path.as_deref()
    }

    /// Time allowed to receive a request body once its headers are in.
    pub(super) fn body_timeout(&self) -> Duration {
        self.inner.body_timeout
    }

    pub(super) fn note_reject(&self, r: &Reject) {
        let c = &self.inner.counts;
        bump(match r {
            Reject::Forged => &c.forged,
            Reject::Stale { .. } => &c.stale,
            Reject::Malformed(_) => &c.malformed,
            Reject::TooLarge => &c.oversized,
            Reject::Timeout => &c.timed_out,
        });
    }

    /// Remembers (sequence, event_type); true if it was already there. Events
    /// without a sequence are never duplicates. When the memory is full, new
    /// pairs are counted in `seen_overflow` and not remembered.
    fn seen_before(&self, ev: &CallbackEvent) -> bool {
        if ev.sequence.is_empty() {
            return false;
        }
        let h = self
            .inner
            .hasher
            .hash_one((ev.sequence.as_str(), ev.event_type));
        let mut seen = self
            .inner
            .seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if seen.contains(&h) {
            return true;
        }
        if seen.len() >= self.inner.seen_cap {
            bump(&self.inner.counts.seen_overflow);
        } else {
            seen.insert(h);
        }
        false
    }
}

/// The receiver's configuration in tests: the sample key, time fixed at `NOW`.
#[cfg(test)]
pub(crate) fn test_config() -> ReceiverConfig {
    ReceiverConfig {
        clock: Arc::new(|| super::samples::NOW),
        ..ReceiverConfig::new(super::samples::key())
    }
}

#[cfg(test)]
mod tests {
    use super::super::samples::*;
    use super::*;

    #[tokio::test]
    async fn full_duplicate_memory_counts_overflow() {
        let (state, _rx) = ReceiverState::new(ReceiverConfig {
            seen_cap: 1,
            ..test_config()
        });
        assert_eq!(
            state.accept(push_event("1").as_bytes(), Instant::now()),
            Ok(false)
        );
        assert_eq!(
            state.accept(push_event("1").as_bytes(), Instant::now()),
            Ok(true)
        );
        assert_eq!(
            state.accept(push_event("2").as_bytes(), Instant::now()),
            Ok(false)
        );
        assert_eq!(
            state.accept(push_event("2").as_bytes(), Instant::now()),
            Ok(false)
        );
        let c = state.counters();
        assert_eq!((c.accepted_push, c.duplicates, c.seen_overflow), (3, 1, 2));
    }
}
