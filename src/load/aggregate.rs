//! The fold of a load run: publisher records, timeline samples and callback
//! latencies -> one `Summary` (the JSON report, histograms included), and the
//! exact merge of summaries written by shards of one run.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::by_address::{self, ByAddress};
use super::hist::{Hist, Percentiles};
use super::record::{CallbackKind, PublisherRecord, Sample};
use crate::classify::Outcome;
use crate::publish::Phase;

/// The `format` field of every report: what tells a report from other JSON.
pub const FORMAT: &str = "pushprobe-load-report";
/// The report layout version this build reads and writes.
pub const VERSION: u32 = 1;

/// Callback events as the receiver counted them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackCounts {
    /// event_type 1 callbacks matched to one of our pushes.
    pub push: u64,
    /// event_type 0 callbacks matched to one of our pushes.
    pub interrupt: u64,
    /// Pushes of ours that never got their push callback.
    pub missing: u64,
    /// Callbacks received again (same sequence and event).
    pub duplicate: u64,
    /// Callbacks with a bad sign or an expired `t`.
    pub forged: u64,
    /// Well-signed callbacks for streams we did not push.
    pub unmatched: u64,
}

impl CallbackCounts {
    fn add(&mut self, o: &CallbackCounts) {
        self.push = self.push.saturating_add(o.push);
        self.interrupt = self.interrupt.saturating_add(o.interrupt);
        self.missing = self.missing.saturating_add(o.missing);
        self.duplicate = self.duplicate.saturating_add(o.duplicate);
        self.forged = self.forged.saturating_add(o.forged);
        self.unmatched = self.unmatched.saturating_add(o.unmatched);
    }
}

/// What the runner knows about the run as a whole.
#[derive(Debug, Clone, PartialEq)]
pub struct RunMeta {
    pub started_unix: u64,
    pub duration_s: f64,
    /// The push URL template, secrets redacted.
    pub target: String,
    /// `(index, count)` of `--shard index/count`.
    pub shard: Option<(u32, u32)>,
    pub publishers_planned: u64,
    pub interrupted_by_user: bool,
}

/// One shard of a distributed run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

/// Deliberate duplicates (`--duplicates`): each should be refused.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExpectedRefusals {
    /// Not accepted, as intended.
    pub refused: u64,
    /// Accepted: the ingest let a second publisher onto a stream in use.
    pub accepted: u64,
    /// How the duplicates ended, by outcome.
    pub outcomes: BTreeMap<Outcome, u64>,
}

/// Callback counts and the latency of each event from our own action.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Callbacks {
    /// A callback receiver ran (`--callback-listen`); without one the counts
    /// are zeros, not findings. Reports written before this field read false.
    #[serde(default)]
    pub measured: bool,
    #[serde(flatten)]
    pub counts: CallbackCounts,
    pub latency_ms: CallbackLatency,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallbackLatency {
    /// From our Publish.Start to the push callback.
    pub push: Percentiles,
    /// From our close to the interruption callback.
    pub interrupt: Percentiles,
}

/// Publisher indices `start..=end`, written `[start, end]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "[u64; 2]", into = "[u64; 2]")]
pub struct IndexRange {
    pub start: u64,
    pub end: u64,
}

impl IndexRange {
    /// How many indices it holds.
    pub fn count(&self) -> u64 {
        self.end.saturating_sub(self.start).saturating_add(1)
    }
}

impl TryFrom<[u64; 2]> for IndexRange {
    type Error = String;
    fn try_from([start, end]: [u64; 2]) -> Result<Self, String> {
        if start > end {
            return Err(format!(
                "index range [{start}, {end}] ends before it starts"
            ));
        }
        Ok(IndexRange { start, end })
    }
}

impl From<IndexRange> for [u64; 2] {
    fn from(r: IndexRange) -> [u64; 2] {
        [r.start, r.end]
    }
}

/// Whether every publisher index is covered exactly once.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Coverage {
    /// Distinct publisher indices covered.
    pub covered: u64,
    /// Indices covered more than once (the same stream pushed twice).
    pub overlaps: Vec<IndexRange>,
    /// Indices missing between the lowest and the highest covered.
    pub gaps: Vec<IndexRange>,
}

/// The raw histograms (µs), base64 HdrHistogram V2 in JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Histograms {
    pub phases: BTreeMap<String, Hist>,
    pub phases_from_schedule: BTreeMap<String, Hist>,
    pub lag: Hist,
    pub callback_push: Hist,
    pub callback_interrupt: Hist,
}

/// The report of a load run (or of merged runs). The JSON report is this,
/// serialized; `schema.json` describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Always `FORMAT`.
    pub format: String,
    /// Always `VERSION`.
    pub version: u32,
    pub started_unix: u64,
    pub duration_s: f64,
    pub target: String,
    pub shards: Vec<Shard>,
    /// How many runs this summary covers (1 unless merged).
    pub runs: u64,
    pub interrupted_by_user: bool,
    pub publishers_planned: u64,
    /// Publishers measured, deliberate duplicates excluded.
    pub publishers: u64,
    pub outcomes: BTreeMap<Outcome, u64>,
    pub expected_refusals: ExpectedRefusals,
    /// Per phase: from the actual start to the phase's completion.
    pub phases_ms: BTreeMap<String, Percentiles>,
    /// Per phase: from the scheduled start (coordinated-omission correct).
    pub phases_from_schedule_ms: BTreeMap<String, Percentiles>,
    pub max_lag_ms: f64,
    /// Per-publisher largest lag behind real time.
    pub lag_ms: Percentiles,
    pub callbacks: Callbacks,
    /// Bytes every publisher sent, deliberate duplicates included.
    pub bytes_sent: u64,
    /// Sum over publishers (duplicates included) of the time spent streaming.
    pub stream_seconds: f64,
    /// Reconnect attempts of all publishers (`--reconnect`); absent in
    /// reports of builds before it, read as 0.
    #[serde(default)]
    pub reconnects: u64,
    /// `bytes_sent` over the run's duration, in bits per second.
    pub bitrate_bps: f64,
    /// Publisher indices measured (duplicates excluded), merged into ranges.
    pub streams: Vec<IndexRange>,
    pub coverage: Coverage,
    pub timeline: Vec<Sample>,
    pub histograms: Histograms,
    /// Per remote address: publishers, failures, failed connects; absent in
    /// reports of builds before it.
    #[serde(default)]
    pub by_address: ByAddress,
}

impl Summary {
    /// `map`'s entries, phases in push order, unknown names last.
    pub fn in_phase_order<V>(map: &BTreeMap<String, V>) -> Vec<(&str, &V)> {
        let mut v: Vec<(&str, &V)> = map.iter().map(|(k, v)| (k.as_str(), v)).collect();
        v.sort_by_key(|(k, _)| {
            Phase::TIMED
                .iter()
                .position(|p| p.name() == *k)
                .unwrap_or(usize::MAX)
        });
        v
    }
}

/// Why summaries could not be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("nothing to merge")]
    Empty,
    #[error(
        "report {index} has format {format:?} version {version}; this build reads {FORMAT:?} version {VERSION}"
    )]
    Version {
        index: usize,
        format: String,
        version: u32,
    },
    #[error("histogram {name} of report {index} does not add: {source}")]
    Histogram {
        index: usize,
        name: String,
        source: hdrhistogram::AdditionError,
    },
}

/// Everything that adds up, before percentiles and coverage are derived.
#[derive(Debug, Clone, Default)]
struct Parts {
    publishers: u64,
    outcomes: BTreeMap<Outcome, u64>,
    expected: ExpectedRefusals,
    hists: Histograms,
    callbacks: CallbackCounts,
    callbacks_measured: bool,
    bytes_sent: u64,
    stream_seconds: f64,
    reconnects: u64,
    /// May overlap: coverage finds where.
    ranges: Vec<IndexRange>,
    /// Overlaps already found in merged inputs.
    overlaps: Vec<IndexRange>,
    timeline: Vec<Sample>,
    by_address: ByAddress,
}

impl Parts {
    fn new() -> Parts {
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
            shards: meta
                .shard
                .map(|(index, count)| Shard { index, count })
                .into_iter()
                .collect(),
            runs: 1,
            interrupted_by_user: meta.interrupted_by_user,
            publishers_planned: meta.publishers_planned,
        };
        finish(&self.parts, header)
    }
}

/// The run-level fields of a summary.
struct Header {
    started_unix: u64,
    duration_s: f64,
    target: String,
    shards: Vec<Shard>,
    runs: u64,
    interrupted_by_user: bool,
    publishers_planned: u64,
}

fn finite(x: f64) -> f64 {
    if x.is_finite() { x } else { 0.0 }
}

fn finish(p: &Parts, h: Header) -> Summary {
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
        bitrate_bps,
        streams,
        coverage,
        timeline,
        histograms: p.hists.clone(),
        by_address: p.by_address.clone(),
    }
}

/// The union of `ranges` and where they overlap or leave holes.
fn coverage(ranges: &[IndexRange], prior_overlaps: &[IndexRange]) -> (Vec<IndexRange>, Coverage) {
    let mut sorted = ranges.to_vec();
    sorted.sort_unstable();
    let mut union: Vec<IndexRange> = Vec::new();
    let mut overlaps = prior_overlaps.to_vec();
    let mut gaps = Vec::new();
    for r in sorted {
        let Some(last) = union.last_mut() else {
            union.push(r);
            continue;
        };
        if r.start <= last.end {
            overlaps.push(IndexRange {
                start: r.start,
                end: r.end.min(last.end),
            });
            last.end = last.end.max(r.end);
        } else if r.start == last.end + 1 {
            last.end = r.end;
        } else {
            gaps.push(IndexRange {
                start: last.end + 1,
                end: r.start - 1,
            });
            union.push(r);
        }
    }
    let covered = union.iter().fold(0u64, |n, r| n.saturating_add(r.count()));
    (
        union,
        Coverage {
            covered,
            overlaps: normalize(overlaps),
            gaps,
        },
    )
}

/// Sorted, with overlapping or touching ranges joined.
fn normalize(mut ranges: Vec<IndexRange>) -> Vec<IndexRange> {
    ranges.sort_unstable();
    let mut out: Vec<IndexRange> = Vec::new();
    for r in ranges {
        match out.last_mut() {
            Some(last) if r.start <= last.end.saturating_add(1) => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

/// Adds summaries of shards (or of separate runs) into one: histograms added
/// exactly, counts summed, timelines summed per second of wall time, stream
/// coverage joined with overlaps flagged in `coverage.overlaps`.
pub fn merge(summaries: &[Summary]) -> Result<Summary, MergeError> {
    if summaries.is_empty() {
        return Err(MergeError::Empty);
    }
    for (index, s) in summaries.iter().enumerate() {
        if s.format != FORMAT || s.version != VERSION {
            return Err(MergeError::Version {
                index,
                format: s.format.clone(),
                version: s.version,
            });
        }
    }
    let started = summaries.iter().map(|s| s.started_unix).min().unwrap_or(0);
    let mut parts = Parts::new();
    let mut timeline: BTreeMap<u64, Sample> = BTreeMap::new();
    for (index, s) in summaries.iter().enumerate() {
        parts.publishers = parts.publishers.saturating_add(s.publishers);
        for (o, n) in &s.outcomes {
            let c = parts.outcomes.entry(*o).or_default();
            *c = c.saturating_add(*n);
        }
        let e = &mut parts.expected;
        e.refused = e.refused.saturating_add(s.expected_refusals.refused);
        e.accepted = e.accepted.saturating_add(s.expected_refusals.accepted);
        for (o, n) in &s.expected_refusals.outcomes {
            let c = e.outcomes.entry(*o).or_default();
            *c = c.saturating_add(*n);
        }
        add_hists(&mut parts.hists, &s.histograms, index)?;
        parts.callbacks.add(&s.callbacks.counts);
        parts.callbacks_measured |= s.callbacks.measured;
        parts.bytes_sent = parts.bytes_sent.saturating_add(s.bytes_sent);
        parts.stream_seconds += s.stream_seconds;
        parts.reconnects = parts.reconnects.saturating_add(s.reconnects);
        by_address::merge(&mut parts.by_address, &s.by_address);
        parts.ranges.extend_from_slice(&s.streams);
        parts.overlaps.extend_from_slice(&s.coverage.overlaps);
        add_timeline(&mut timeline, &s.timeline, s.started_unix - started);
    }
    parts.timeline = timeline.into_values().collect();

    let end = summaries
        .iter()
        .map(|s| s.started_unix as f64 + s.duration_s)
        .fold(started as f64, f64::max);
    let mut targets: Vec<&str> = Vec::new();
    for s in summaries {
        if !targets.contains(&s.target.as_str()) {
            targets.push(&s.target);
        }
    }
    let mut shards: Vec<Shard> = summaries
        .iter()
        .flat_map(|s| s.shards.iter().copied())
        .collect();
    shards.sort_unstable();
    let header = Header {
        started_unix: started,
        duration_s: finite(end - started as f64),
        target: targets.join(" | "),
        shards,
        runs: summaries.iter().fold(0u64, |n, s| n.saturating_add(s.runs)),
        interrupted_by_user: summaries.iter().any(|s| s.interrupted_by_user),
        publishers_planned: summaries
            .iter()
            .fold(0u64, |n, s| n.saturating_add(s.publishers_planned)),
    };
    Ok(finish(&parts, header))
}

fn add_hists(into: &mut Histograms, from: &Histograms, index: usize) -> Result<(), MergeError> {
    let add = |into: &mut Hist, from: &Hist, name: &str| {
        into.add(from).map_err(|source| MergeError::Histogram {
            index,
            name: name.to_owned(),
            source,
        })
    };
    for (name, h) in &from.phases {
        add(into.phases.entry(name.clone()).or_default(), h, name)?;
    }
    for (name, h) in &from.phases_from_schedule {
        add(
            into.phases_from_schedule.entry(name.clone()).or_default(),
            h,
            &format!("{name}.from_schedule"),
        )?;
    }
    add(&mut into.lag, &from.lag, "lag")?;
    add(
        &mut into.callback_push,
        &from.callback_push,
        "callback_push",
    )?;
    add(
        &mut into.callback_interrupt,
        &from.callback_interrupt,
        "callback_interrupt",
    )
}

/// Adds one run's samples into per-second buckets of wall time since
/// `offset_s` before the run started. Within one run, the last sample of a
/// second stands for it (the counts are gauges); across runs they add.
fn add_timeline(into: &mut BTreeMap<u64, Sample>, samples: &[Sample], offset_s: u64) {
    let mut own: BTreeMap<u64, Sample> = BTreeMap::new();
    for s in samples {
        // `as` saturates: a negative or NaN time lands in second 0.
        let second = (s.t_s.floor() as u64).saturating_add(offset_s);
        own.insert(second, *s);
    }
    for (second, s) in own {
        let b = into.entry(second).or_insert(Sample {
            t_s: second as f64,
            publishing: 0,
            failed: 0,
            bitrate_bps: 0,
        });
        b.publishing = b.publishing.saturating_add(s.publishing);
        b.failed = b.failed.saturating_add(s.failed);
        b.bitrate_bps = b.bitrate_bps.saturating_add(s.bitrate_bps);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Publisher `i`: started `i % 7` ms late, DNS done at 1 ms, TCP at
    /// 2 + i%10 ms, handshake at 10 + i ms, ... publish at 100 + i ms.
    /// Every tenth one fails at the handshake (no later marks).
    pub(crate) fn record(i: u64) -> PublisherRecord {
        let failed = i % 10 == 9;
        let mut marks = vec![(Phase::Dns, ms(1)), (Phase::Tcp, ms(2 + i % 10))];
        if !failed {
            marks.extend([
                (Phase::Handshake, ms(10 + i)),
                (Phase::Connect, ms(20 + i)),
                (Phase::CreateStream, ms(30 + i)),
                (Phase::Publish, ms(100 + i)),
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
            start_delay: ms(i % 7),
            marks,
            bytes_sent: 1000 + i,
            max_lag: ms(i % 5),
            streamed: if failed {
                Duration::ZERO
            } else {
                Duration::from_secs(10)
            },
            addrs: Default::default(),
            reconnects: (i % 3) as u32,
        }
    }

    fn duplicate(i: u64, outcome: Outcome) -> PublisherRecord {
        PublisherRecord {
            index: 1_000_000 + i,
            stream: format!("load-{i}"),
            expected_refusal: true,
            outcome,
            start_delay: ms(500),
            marks: vec![(Phase::Dns, ms(500)), (Phase::Publish, ms(900))],
            bytes_sent: 10,
            max_lag: ms(900),
            streamed: Duration::ZERO,
            reconnects: 0,
            addrs: Default::default(),
        }
    }

    pub(crate) fn meta(shard: Option<(u32, u32)>, planned: u64) -> RunMeta {
        RunMeta {
            started_unix: 1_700_000_000,
            duration_s: 20.0,
            target: "rtmp://push.example.com/live/load-{i}?txSecret=<redacted>&txTime=6553F100"
                .to_owned(),
            shard,
            publishers_planned: planned,
            interrupted_by_user: false,
        }
    }

    fn aggregate(range: std::ops::Range<u64>) -> Aggregator {
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
        a.add_callback_latency(CallbackKind::Push, ms(40));
        a.add_callback_latency(CallbackKind::Push, ms(60));
        a.add_callback_latency(CallbackKind::Interrupt, ms(5000));
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
    fn merge_equals_the_aggregation_of_the_union() {
        let whole = aggregate(0..300);
        let mut shards = Vec::new();
        for (k, range) in [0..100u64, 100..250, 250..300].into_iter().enumerate() {
            let mut a = aggregate(range);
            a.add_callback_latency(CallbackKind::Push, ms(10 * k as u64 + 1));
            a.set_callback_counts(CallbackCounts {
                push: 1,
                ..Default::default()
            });
            shards.push(a.summary(meta(Some((k as u32, 3)), 100)));
        }
        let mut whole = whole;
        for k in 0..3 {
            whole.add_callback_latency(CallbackKind::Push, ms(10 * k + 1));
        }
        whole.set_callback_counts(CallbackCounts {
            push: 3,
            ..Default::default()
        });
        let want = whole.summary(meta(None, 300));
        let got = merge(&shards).unwrap();

        assert_eq!(got.histograms, want.histograms);
        for (name, h) in &want.histograms.phases {
            assert_eq!(got.histograms.phases[name].count(), h.count(), "{name}");
        }
        assert_eq!(got.phases_ms, want.phases_ms);
        assert_eq!(got.phases_from_schedule_ms, want.phases_from_schedule_ms);
        assert_eq!(got.lag_ms, want.lag_ms);
        assert_eq!(got.callbacks, want.callbacks);
        assert_eq!(got.outcomes, want.outcomes);
        assert_eq!(got.publishers, want.publishers);
        assert_eq!(got.bytes_sent, want.bytes_sent);
        assert_eq!(got.reconnects, want.reconnects);
        assert_eq!(want.reconnects, (0..300).map(|i| i % 3).sum::<u64>());
        assert_eq!(got.streams, want.streams);
        assert_eq!(
            got.coverage,
            Coverage {
                covered: 300,
                overlaps: vec![],
                gaps: vec![]
            }
        );
        assert!(got.callbacks.measured);
        assert_eq!(got.runs, 3);
        assert_eq!(got.publishers_planned, 300);
        assert_eq!(got.shards.len(), 3);
        assert_eq!(got.target, want.target);
    }

    #[test]
    fn merge_flags_overlaps_and_gaps() {
        let a = aggregate(0..100).summary(meta(Some((0, 3)), 100));
        let b = aggregate(90..150).summary(meta(Some((1, 3)), 100));
        let c = aggregate(200..300).summary(meta(Some((2, 3)), 100));
        let m = merge(&[a.clone(), b, c]).unwrap();
        assert_eq!(m.coverage.overlaps, vec![IndexRange { start: 90, end: 99 }]);
        assert_eq!(
            m.coverage.gaps,
            vec![IndexRange {
                start: 150,
                end: 199
            }]
        );
        assert_eq!(m.coverage.covered, 250);
        assert_eq!(
            m.streams,
            vec![
                IndexRange { start: 0, end: 149 },
                IndexRange {
                    start: 200,
                    end: 299
                }
            ]
        );

        // The same report twice covers everything twice.
        let twice = merge(&[a.clone(), a.clone()]).unwrap();
        assert_eq!(
            twice.coverage.overlaps,
            vec![IndexRange { start: 0, end: 99 }]
        );
        // An overlap found earlier survives a later merge.
        let again = merge(&[twice]).unwrap();
        assert_eq!(
            again.coverage.overlaps,
            vec![IndexRange { start: 0, end: 99 }]
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
    fn merge_sums_timelines_per_second_of_wall_time() {
        let mut a = Aggregator::new();
        a.add_sample(Sample {
            t_s: 0.2,
            publishing: 1,
            failed: 0,
            bitrate_bps: 100,
        });
        a.add_sample(Sample {
            t_s: 0.9,
            publishing: 2,
            failed: 0,
            bitrate_bps: 200,
        });
        a.add_sample(Sample {
            t_s: 1.1,
            publishing: 3,
            failed: 1,
            bitrate_bps: 300,
        });
        let mut b = Aggregator::new();
        b.add_sample(Sample {
            t_s: 0.5,
            publishing: 10,
            failed: 0,
            bitrate_bps: 1000,
        });
        let sa = a.summary(meta(None, 0));
        let mut mb = meta(None, 0);
        mb.started_unix += 1; // b started one second after a
        let sb = b.summary(mb);
        let m = merge(&[sa, sb]).unwrap();
        assert_eq!(
            m.timeline,
            vec![
                Sample {
                    t_s: 0.0,
                    publishing: 2,
                    failed: 0,
                    bitrate_bps: 200
                },
                Sample {
                    t_s: 1.0,
                    publishing: 13,
                    failed: 1,
                    bitrate_bps: 1300
                },
            ]
        );
        assert_eq!(m.started_unix, 1_700_000_000);
        assert_eq!(m.duration_s, 21.0);
    }

    #[test]
    fn merge_refuses_nothing_and_other_versions() {
        assert!(matches!(merge(&[]), Err(MergeError::Empty)));
        let mut s = Aggregator::new().summary(meta(None, 0));
        s.version = 99;
        assert!(matches!(
            merge(&[s]),
            Err(MergeError::Version { index: 0, .. })
        ));
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
    fn merge_saturates_hostile_counts() {
        let mut s = aggregate(0..3).summary(meta(None, u64::MAX));
        s.publishers = u64::MAX;
        s.bytes_sent = u64::MAX;
        s.reconnects = u64::MAX;
        s.expected_refusals.refused = u64::MAX;
        s.callbacks.counts.forged = u64::MAX;
        s.outcomes.insert(Outcome::Timeout, u64::MAX);
        s.streams = vec![IndexRange {
            start: 0,
            end: u64::MAX,
        }];
        s.timeline = vec![Sample {
            t_s: -1.0,
            publishing: u64::MAX,
            failed: 0,
            bitrate_bps: u64::MAX,
        }];
        let mut late = s.clone();
        late.started_unix = u64::MAX;
        late.duration_s = f64::MAX;
        let m = merge(&[s.clone(), late]).unwrap();
        assert_eq!(m.publishers, u64::MAX);
        assert_eq!(m.reconnects, u64::MAX);
        assert_eq!(m.publishers_planned, u64::MAX);
        assert_eq!(m.outcomes[&Outcome::Timeout], u64::MAX);
        assert_eq!(m.coverage.covered, u64::MAX);
        assert_eq!(
            m.coverage.overlaps,
            vec![IndexRange {
                start: 0,
                end: u64::MAX
            }]
        );
        assert!(m.duration_s.is_finite());
        serde_json::to_string(&m).unwrap();
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
