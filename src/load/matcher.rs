//! Callback matching for a load run: each push callback and interruption
//! callback the receiver verified is matched to one of our pushes by
//! stream_id and sequence, giving its latency from our own action.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::record::CallbackKind;
use super::summary::CallbackCounts;
use crate::callback::{Counters, EVENT_INTERRUPT, EVENT_PUSH, Received};

/// A push of ours (one slot) and when its callbacks arrived, for matching.
#[derive(Debug, Default, Clone)]
pub(super) struct PushCallbacks {
    started: Option<Instant>,
    closed: Option<Instant>,
    sequence: Option<String>,
    push_cb: Option<Instant>,
    interrupt_cb: Option<Instant>,
}

/// Matches callbacks to our pushes by stream_id and sequence.
#[derive(Default)]
pub(super) struct Matcher {
    by_stream: HashMap<String, Vec<usize>>,
    pushes: HashMap<usize, PushCallbacks>,
    pub(super) latencies: Vec<(CallbackKind, Duration)>,
    pub(super) unmatched: u64,
    duplicates: u64,
    pub(super) events: Option<mpsc::UnboundedReceiver<Received>>,
}

impl Matcher {
    pub(super) fn new(streams: Vec<String>) -> Matcher {
        let mut by_stream: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, s) in streams.iter().enumerate() {
            by_stream.entry(s.clone()).or_default().push(i);
        }
        Matcher {
            by_stream,
            ..Matcher::default()
        }
    }

    pub(super) fn started(&mut self, slot: usize, at: Instant) {
        self.pushes.entry(slot).or_default().started = Some(at);
    }

    pub(super) fn closed(&mut self, slot: usize, started: Option<Instant>, closed: Instant) {
        if started.is_none() {
            return;
        }
        let p = self.pushes.entry(slot).or_default();
        p.closed = Some(closed);
        if let Some(a) = p.interrupt_cb {
            self.latencies
                .push((CallbackKind::Interrupt, a.saturating_duration_since(closed)));
        }
    }

    pub(super) fn on_callback(&mut self, r: Received) {
        if r.duplicate {
            self.duplicates += 1;
            return;
        }
        let arrived = Instant::from_std(r.arrived);
        let ev = &r.event;
        let Some(slots) = self.by_stream.get(&ev.stream_id) else {
            self.unmatched += 1;
            return;
        };
        let seq = Some(ev.sequence.clone()).filter(|s| !s.is_empty());
        let candidates: Vec<usize> = slots
            .iter()
            .copied()
            .filter(|s| self.pushes.get(s).is_some_and(|p| p.started.is_some()))
            .collect();
        let find = |pushes: &HashMap<usize, PushCallbacks>,
                    want: &dyn Fn(&PushCallbacks) -> bool| {
            candidates
                .iter()
                .copied()
                .find(|s| pushes.get(s).is_some_and(want))
        };
        match ev.event_type {
            Some(EVENT_PUSH) => {
                let slot = find(&self.pushes, &|p| {
                    seq.is_some() && p.sequence == seq && p.push_cb.is_none()
                })
                .or_else(|| {
                    find(&self.pushes, &|p| {
                        p.sequence.is_none() && p.push_cb.is_none()
                    })
                });
                let Some(slot) = slot else {
                    self.unmatched += 1;
                    return;
                };
                let p = self.pushes.get_mut(&slot).expect("candidate exists");
                p.push_cb = Some(arrived);
                p.sequence = p.sequence.take().or(seq);
                if let Some(s) = p.started {
                    self.latencies
                        .push((CallbackKind::Push, arrived.saturating_duration_since(s)));
                }
            }
            Some(EVENT_INTERRUPT) => {
                let slot = find(&self.pushes, &|p| {
                    seq.is_some() && p.sequence == seq && p.interrupt_cb.is_none()
                })
                .or_else(|| {
                    find(&self.pushes, &|p| {
                        p.interrupt_cb.is_none() && p.closed.is_some()
                    })
                })
                .or_else(|| find(&self.pushes, &|p| p.interrupt_cb.is_none()));
                let Some(slot) = slot else {
                    self.unmatched += 1;
                    return;
                };
                let p = self.pushes.get_mut(&slot).expect("candidate exists");
                p.interrupt_cb = Some(arrived);
                p.sequence = p.sequence.take().or(seq);
                if let Some(c) = p.closed {
                    self.latencies.push((
                        CallbackKind::Interrupt,
                        arrived.saturating_duration_since(c),
                    ));
                }
            }
            _ => self.unmatched += 1,
        }
    }

    pub(super) fn missing(&self) -> u64 {
        self.pushes
            .values()
            .filter(|p| p.started.is_some())
            .map(|p| {
                u64::from(p.push_cb.is_none())
                    + u64::from(p.closed.is_some() && p.interrupt_cb.is_none())
            })
            .sum()
    }

    pub(super) fn has_outstanding(&self) -> bool {
        self.missing() > 0
    }

    pub(super) async fn wait(&mut self, until: Instant, cancel: &CancellationToken) {
        let Some(mut events) = self.events.take() else {
            return;
        };
        while self.has_outstanding() {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep_until(until) => break,
                r = events.recv() => match r {
                    Some(r) => self.on_callback(r),
                    None => break,
                },
            }
        }
        self.events = Some(events);
    }

    pub(super) fn counts(&self, c: &Counters) -> CallbackCounts {
        CallbackCounts {
            push: c.accepted_push,
            interrupt: c.accepted_interrupt,
            missing: self.missing(),
            duplicate: c.duplicates.max(self.duplicates),
            forged: c.forged + c.stale,
            unmatched: self.unmatched,
        }
    }
}
