//! The fold of a load run: publisher records, timeline samples and callback
//! latencies -> one `Summary` (the JSON report, histograms included).

use std::collections::BTreeMap;
use std::time::Duration;

use super::by_address::{self, ByAddress};
use super::coverage::coverage;
use super::hist::Hist;
use super::record::{CallbackKind, PublisherRecord, Sample};
use super::viewer_summary::Viewers;
use super::viewers::ViewerRecord;
use crate::classify::Outcome;
use crate::publish::Phase;

// The report model and the merge lived here; re-exported so their old paths
// keep working.
pub use super::merge::{MergeError, merge};
pub use super::summary::{
    CallbackCounts, CallbackLatency, Callbacks, Coverage, ExpectedRefusals, FORMAT, Histograms,
    IndexRange, Summary, VERSION,
};
pub use super::targets::Shard;

/// What the runner knows about the run as a whole.
#[derive(Debug, Clone, PartialEq)]
pub struct RunMeta {
    pub started_unix: u64,
    pub duration_s: f64,
    /// The push URL template, secrets redacted.
    pub target: String,
    /// `--shard index/count`, when the run is one of several.
    pub shard: Option<Shard>,
    pub publishers_planned: u64,
    pub interrupted_by_user: bool,
}

/// Everything that adds up, before percentiles and coverage are derived.
#[derive(Debug, Clone, Default)]
pub(super) struct Parts {
    pub(super) publishers: u64,
    pub(super) outcomes: BTreeMap<Outcome, u64>,
    pub(super) expected: ExpectedRefusals,
    pub(super) hists: Histograms,
    pub(super) callbacks: CallbackCounts,
    pub(super) callbacks_measured: bool,
    pub(super) bytes_sent: u64,
    pub(super) stream_seconds: f64,
    pub(super) reconnects: u64,
    pub(super) srt: Option<super::summary::SrtTotals>,
    /// May overlap: coverage finds where.
    pub(super) ranges: Vec<IndexRange>,
    /// Overlaps already found in merged inputs.
    pub(super) overlaps: Vec<IndexRange>,
    pub(super) timeline: Vec<Sample>,
    pub(super) by_address: ByAddress,
    pub(super) viewers: Option<Viewers>,
}

impl Parts {
    pub(super) fn new() -> Parts {
        let mut p = Parts::default();
        for o in Outcome::ALL {
            p.outcomes.insert(o, 0);
        }
        for phase in Phase::TIMED {
            p.hists.phases.insert(phase.name().to_owned(), Hist::new());
            p.hists
                .phases_from_schedule
                .insert(phase.name().to_owned(), Hist::new());
        }
        p
    }
}

/// Folds one run's records. Feed it records, samples and callback data, then
/// ask for the `Summary`.
#[derive(Debug, Clone)]
pub struct Aggregator {
    parts: Parts,
}

impl Default for Aggregator {
    fn default() -> Self {
        Self::new()
    }
}

impl Aggregator {
    pub fn new() -> Aggregator {
        Aggregator {
            parts: Parts::new(),
        }
    }

    pub fn add(&mut self, r: &PublisherRecord) {
        let p = &mut self.parts;
        p.bytes_sent = p.bytes_sent.saturating_add(r.bytes_sent);
        p.stream_seconds += r.streamed.as_secs_f64();
        p.reconnects = p.reconnects.saturating_add(u64::from(r.reconnects));
        if let Some(s) = &r.srt {
            p.srt.get_or_insert_default().add(s);
        }
        if r.expected_refusal {
            let e = &mut p.expected;
            if r.outcome == Outcome::Accepted {
                e.accepted += 1;
            } else {
                e.refused += 1;
            }
            *e.outcomes.entry(r.outcome).or_default() += 1;
            return;
        }
        p.publishers += 1;
        *p.outcomes.entry(r.outcome).or_default() += 1;
        by_address::fold(&mut p.by_address, &r.addrs, r.outcome);
        p.ranges.push(IndexRange {
            start: r.index,
            end: r.index,
        });
        for phase in Phase::TIMED {
            let name = phase.name();
            if let (Some(from_start), Some(from_schedule)) =
                (r.from_start(phase), r.from_schedule(phase))
            {
                p.hists
                    .phases
                    .entry(name.to_owned())
                    .or_default()
                    .record(from_start);
                p.hists
                    .phases_from_schedule
                    .entry(name.to_owned())
                    .or_default()
                    .record(from_schedule);
            }
        }
        if r.from_start(Phase::Publish).is_some() {
            p.hists.lag.record(r.max_lag);
        }
    }

    /// Starts the viewers' part of the report (`--viewers`).
    pub fn set_viewers(&mut self, v: Viewers) {
        self.parts.viewers = Some(v);
    }

    /// Folds one viewer's record in (after [`Aggregator::set_viewers`]).
    pub fn add_viewer(&mut self, r: &ViewerRecord) {
        if let Some(v) = &mut self.parts.viewers {
            v.add(r);
        }
    }

    /// Adds the viewers' shared latency histogram.
    pub fn add_viewer_latency(&mut self, h: &Hist) {
        if let Some(v) = &mut self.parts.viewers
            && let Err(e) = v.add_latency(h)
        {
            tracing::warn!("viewer latency histogram does not add: {e}");
        }
    }

    pub fn add_sample(&mut self, s: Sample) {
        self.parts.timeline.push(s);
    }

    pub fn add_callback_latency(&mut self, kind: CallbackKind, latency: Duration) {
        match kind {
            CallbackKind::Push => self.parts.hists.callback_push.record(latency),
            CallbackKind::Interrupt => self.parts.hists.callback_interrupt.record(latency),
        }
    }

    /// The counts of a callback receiver that ran: also marks callbacks as
    /// measured, so that zeros read as findings rather than as "not asked".
    pub fn set_callback_counts(&mut self, counts: CallbackCounts) {
        self.parts.callbacks = counts;
        self.parts.callbacks_measured = true;
    }

    pub fn summary(&self, meta: RunMeta) -> Summary {
        let header = Header {
            started_unix: meta.started_unix,
            duration_s: finite(meta.duration_s),
            target: meta.target,
            shards: meta.shard.into_iter().collect(),
            runs: 1,
            interrupted_by_user: meta.interrupted_by_user,
            publishers_planned: meta.publishers_planned,
        };
        finish(&self.parts, header)
    }
}

/// The run-level fields of a summary.
pub(super) struct Header {
    pub(super) started_unix: u64,
    pub(super) duration_s: f64,
    pub(super) target: String,
    pub(super) shards: Vec<Shard>,
    pub(super) runs: u64,
    pub(super) interrupted_by_user: bool,
    pub(super) publishers_planned: u64,
}

pub(super) fn finite(x: f64) -> f64 {
    if x.is_finite() { x } else { 0.0 }
}

pub(super) fn finish(p: &Parts, h: Header) -> Summary {
    let (streams, coverage) = coverage(&p.ranges, &p.overlaps);
    let mut timeline = p.timeline.clone();
    timeline.sort_by(|a, b| a.t_s.total_cmp(&b.t_s));
    let bitrate_bps = if h.duration_s > 0.0 {
        finite(p.bytes_sent as f64 * 8.0 / h.duration_s)
    } else {
        0.0
    };
    let percentiles = |m: &BTreeMap<String, Hist>| {
        m.iter()
            .map(|(k, v)| (k.clone(), v.percentiles()))
            .collect()
    };
    Summary {
        format: FORMAT.to_owned(),
        version: VERSION,
        started_unix: h.started_unix,
        duration_s: h.duration_s,
        target: h.target,
        shards: h.shards,
        runs: h.runs,
        interrupted_by_user: h.interrupted_by_user,
        publishers_planned: h.publishers_planned,
        publishers: p.publishers,
        outcomes: p.outcomes.clone(),
        expected_refusals: p.expected.clone(),
        phases_ms: percentiles(&p.hists.phases),
        phases_from_schedule_ms: percentiles(&p.hists.phases_from_schedule),
        max_lag_ms: p.hists.lag.max_ms(),
        lag_ms: p.hists.lag.percentiles(),
        callbacks: Callbacks {
            measured: p.callbacks_measured,
            counts: p.callbacks,
            latency_ms: CallbackLatency {
                push: p.hists.callback_push.percentiles(),
                interrupt: p.hists.callback_interrupt.percentiles(),
            },
        },
        bytes_sent: p.bytes_sent,
        stream_seconds: finite(p.stream_seconds),
        reconnects: p.reconnects,
        srt: p.srt,
        bitrate_bps,
        streams,
        coverage,
        timeline,
        histograms: p.hists.clone(),
        by_address: p.by_address.clone(),
        viewers: p.viewers.as_ref().map(Viewers::finished),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::load::hist::Percentiles;

    pub(crate) fn millis(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Publisher `i`: started `i % 7` ms late, DNS done at 1 ms, TCP at
    /// 2 + i%10 ms, handshake at 10 + i ms, ... publish at 100 + i ms.
    /// Every tenth one fails at the handshake (no later marks).
    pub(crate) fn record(i: u64) -> PublisherRecord {
        let failed = i % 10 == 9;
        let mut marks = vec![(Phase::Dns, millis(1)), (Phase::Tcp, millis(2 + i % 10))];
        if !failed {
            marks.extend([
                (Phase::Handshake, millis(10 + i)),
                (Phase::Connect, millis(20 + i)),
                (Phase::CreateStream, millis(30 + i)),
                (Phase::Publish, millis(100 + i)),
            ]);
        }
        PublisherRecord {
            index: i,
            stream: format!("load-{i}"),
            expected_refusal: false,
            outcome: if failed {
                Outcome::HandshakeFailed
            } else {
                Outcome::Accepted
            },
            start_delay: millis(i % 7),
            marks,
            bytes_sent: 1000 + i,
            max_lag: millis(i % 5),
            streamed: if failed {
                Duration::ZERO
            } else {
                Duration::from_secs(10)
            },
            addrs: Default::default(),
            reconnects: (i % 3) as u32,
            srt: None,
        }
    }

    fn duplicate(i: u64, outcome: Outcome) -> PublisherRecord {
        PublisherRecord {
            index: 1_000_000 + i,
            stream: format!("load-{i}"),
            expected_refusal: true,
            outcome,
            start_delay: millis(500),
            marks: vec![(Phase::Dns, millis(500)), (Phase::Publish, millis(900))],
            bytes_sent: 10,
            max_lag: millis(900),
            streamed: Duration::ZERO,
            reconnects: 0,
            addrs: Default::default(),
            srt: None,
        }
    }

    pub(crate) fn meta(shard: Option<(u32, u32)>, planned: u64) -> RunMeta {
        RunMeta {
            started_unix: 1_700_000_000,
            duration_s: 20.0,
            target: "rtmp://push.example.com/live/load-{i}?txSecret=<redacted>&txTime=6553F100"
                .to_owned(),
            shard: shard.map(|(index, count)| Shard { index, count }),
            publishers_planned: planned,
            interrupted_by_user: false,
        }
    }

    pub(crate) fn aggregate(range: std::ops::Range<u64>) -> Aggregator {
        let mut a = Aggregator::new();
        for i in range {
            a.add(&record(i));
        }
        a
    }

    #[test]
    fn phases_are_cumulative_and_measured_from_start_and_schedule() {
        let s = aggregate(0..100).summary(meta(None, 100));
        assert_eq!(s.publishers, 100);
        assert_eq!(s.outcomes[&Outcome::Accepted], 90);
        assert_eq!(s.outcomes[&Outcome::HandshakeFailed], 10);
        assert_eq!(s.outcomes[&Outcome::Timeout], 0);

        let dns = s.phases_ms["dns"];
        assert_eq!((dns.count, dns.p50, dns.max), (100, 1.0, 1.0));
        let tcp = s.phases_ms["tcp"];
        assert_eq!(tcp.count, 100);
        assert_eq!((tcp.p50, tcp.p90, tcp.max), (6.003, 10.007, 11.007));
        let publish = s.phases_ms["publish"];
        assert_eq!(publish.count, 90);
        // 90 values 100..=198 ms without 109, 119, ...: the median is 148 ms.
        assert_eq!(publish.p50, 148.095);
        assert_eq!(publish.max, 198.015);
        // From the schedule adds each start delay (0..=6 ms).
        let dns_sched = s.phases_from_schedule_ms["dns"];
        assert_eq!(
            (dns_sched.count, dns_sched.p50, dns_sched.max),
            (100, 4.001, 7.003)
        );
        assert!(s.phases_from_schedule_ms["publish"].max >= publish.max);
        // Phases nobody completed are present and empty.
        assert_eq!(s.phases_ms["tls"], Percentiles::default());
        assert_eq!(s.phases_ms.len(), Phase::TIMED.len());
    }

    #[test]
    fn lag_bytes_and_streams() {
        let s = aggregate(0..100).summary(meta(None, 100));
        assert_eq!(s.lag_ms.count, 90);
        assert_eq!(s.max_lag_ms, 4.001);
        assert_eq!(s.bytes_sent, (0..100).map(|i| 1000 + i).sum::<u64>());
        assert_eq!(s.stream_seconds, 900.0);
        assert_eq!(s.bitrate_bps, s.bytes_sent as f64 * 8.0 / 20.0);
        assert_eq!(s.streams, vec![IndexRange { start: 0, end: 99 }]);
        assert_eq!(
            s.coverage,
            Coverage {
                covered: 100,
                overlaps: vec![],
                gaps: vec![]
            }
        );
    }

    #[test]
    fn expected_refusals_are_counted_apart() {
        let mut a = aggregate(0..10);
        a.add(&duplicate(0, Outcome::AlreadyInUse));
        a.add(&duplicate(1, Outcome::Refused));
        a.add(&duplicate(2, Outcome::Accepted));
        let s = a.summary(meta(None, 10));
        assert_eq!(s.publishers, 10);
        assert_eq!(s.outcomes.values().sum::<u64>(), 10);
        assert_eq!(s.outcomes[&Outcome::Accepted], 9);
        assert_eq!(s.expected_refusals.refused, 2);
        assert_eq!(s.expected_refusals.accepted, 1);
        assert_eq!(s.expected_refusals.outcomes[&Outcome::AlreadyInUse], 1);
        // Not in the histograms or the coverage.
        assert_eq!(s.phases_ms["dns"].count, 10);
        assert_eq!(s.phases_ms["publish"].max, 108.031);
        assert_eq!(s.max_lag_ms, 4.001);
        assert_eq!(s.streams, vec![IndexRange { start: 0, end: 9 }]);
    }

    #[test]
    fn callbacks_and_samples() {
        let mut a = aggregate(0..3);
        a.add_callback_latency(CallbackKind::Push, millis(40));
        a.add_callback_latency(CallbackKind::Push, millis(60));
        a.add_callback_latency(CallbackKind::Interrupt, millis(5000));
        let counts = CallbackCounts {
            push: 2,
            interrupt: 1,
            missing: 1,
            duplicate: 0,
            forged: 3,
            unmatched: 0,
        };
        a.set_callback_counts(counts);
        a.add_sample(Sample {
            t_s: 2.0,
            publishing: 3,
            failed: 0,
            bitrate_bps: 900,
        });
        a.add_sample(Sample {
            t_s: 1.0,
            publishing: 1,
            failed: 0,
            bitrate_bps: 300,
        });
        let s = a.summary(meta(None, 3));
        assert_eq!(s.callbacks.counts, counts);
        assert_eq!(s.callbacks.latency_ms.push.count, 2);
        assert_eq!(s.callbacks.latency_ms.push.max, 60.031);
        assert_eq!(s.callbacks.latency_ms.interrupt.p50, 5001.215);
        assert_eq!(
            s.timeline.iter().map(|x| x.t_s).collect::<Vec<_>>(),
            vec![1.0, 2.0]
        );
    }

    #[test]
    fn one_run_recording_an_index_twice_is_an_overlap() {
        let mut a = aggregate(0..5);
        a.add(&record(3));
        let s = a.summary(meta(None, 5));
        assert_eq!(s.coverage.overlaps, vec![IndexRange { start: 3, end: 3 }]);
        assert_eq!(s.coverage.covered, 5);
    }

    #[test]
    fn json_round_trip() {
        let mut a = aggregate(0..20);
        a.add(&duplicate(0, Outcome::AlreadyInUse));
        a.add_sample(Sample {
            t_s: 1.0,
            publishing: 18,
            failed: 2,
            bitrate_bps: 10_000,
        });
        let s = a.summary(meta(Some((0, 2)), 20));
        let text = serde_json::to_string(&s).unwrap();
        let back: Summary = serde_json::from_str(&text).unwrap();
        assert_eq!(back, s);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["outcomes"]["accepted"], 18);
        assert_eq!(v["expected_refusals"]["outcomes"]["already_in_use"], 1);
        assert_eq!(v["streams"], serde_json::json!([[0, 19]]));
        assert_eq!(v["callbacks"]["push"], 0);
        assert_eq!(v["callbacks"]["measured"], false);
        assert!(
            v["histograms"]["phases"]["dns"]
                .as_str()
                .unwrap()
                .starts_with("HIST")
        );
    }

    #[test]
    fn callbacks_measured_is_set_by_counts_read_as_false_when_absent_and_ored_by_merge() {
        let without = aggregate(0..3).summary(meta(Some((0, 2)), 3));
        assert!(!without.callbacks.measured);
        let mut a = aggregate(3..6);
        a.set_callback_counts(CallbackCounts::default());
        let with = a.summary(meta(Some((1, 2)), 3));
        assert!(with.callbacks.measured);
        assert!(merge(&[without.clone(), with]).unwrap().callbacks.measured);
        assert!(
            !merge(std::slice::from_ref(&without))
                .unwrap()
                .callbacks
                .measured
        );

        // A report written before the field existed.
        let mut old = serde_json::to_value(&without).unwrap();
        old["callbacks"].as_object_mut().unwrap().remove("measured");
        let back: Summary = serde_json::from_value(old).unwrap();
        assert_eq!(back, without);
    }

    #[test]
    fn backwards_ranges_are_rejected() {
        assert!(serde_json::from_str::<IndexRange>("[5, 4]").is_err());
        assert_eq!(
            serde_json::from_str::<IndexRange>("[4, 5]").unwrap(),
            IndexRange { start: 4, end: 5 }
        );
    }
}
