//! The load report's model: `Summary` and the serde types in it, as the JSON
//! report carries them (`schema.json` describes it).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::by_address::ByAddress;
use super::hist::{Hist, Percentiles};
use super::record::Sample;
use super::targets::Shard;
use super::viewer_summary::Viewers;
use crate::classify::Outcome;
use crate::publish::Phase;

/// The `format` field of every report: what tells a report from other JSON.
pub const FORMAT: &str = "pushprobe-load-report";
/// The report layout version this build reads and writes.
pub const VERSION: u32 = 1;

/// SRT's own counts summed over the SRT publishers of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SrtTotals {
    /// Publishers that pushed over SRT.
    pub publishers: u64,
    /// Data packets sent, retransmissions included.
    pub packets_sent: u64,
    pub packets_retransmitted: u64,
    /// Packets the senders dropped as too late to play (TLPKTDROP).
    pub packets_dropped: u64,
    /// Packets the receivers reported lost (NAK).
    pub packets_lost: u64,
}

impl SrtTotals {
    /// One publisher attempt's numbers.
    pub fn of(s: &crate::srt::caller::SrtStats) -> SrtTotals {
        SrtTotals {
            publishers: 1,
            packets_sent: s.packets_sent,
            packets_retransmitted: s.packets_retransmitted,
            packets_dropped: s.packets_dropped,
            packets_lost: s.packets_lost,
        }
    }

    /// Adds counts (publishers too: pass `publishers: 0` to add attempts).
    pub fn add(&mut self, o: &SrtTotals) {
        self.publishers = self.publishers.saturating_add(o.publishers);
        self.packets_sent = self.packets_sent.saturating_add(o.packets_sent);
        self.packets_retransmitted = self
            .packets_retransmitted
            .saturating_add(o.packets_retransmitted);
        self.packets_dropped = self.packets_dropped.saturating_add(o.packets_dropped);
        self.packets_lost = self.packets_lost.saturating_add(o.packets_lost);
    }
}

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
    pub(crate) fn add(&mut self, o: &CallbackCounts) {
        self.push = self.push.saturating_add(o.push);
        self.interrupt = self.interrupt.saturating_add(o.interrupt);
        self.missing = self.missing.saturating_add(o.missing);
        self.duplicate = self.duplicate.saturating_add(o.duplicate);
        self.forged = self.forged.saturating_add(o.forged);
        self.unmatched = self.unmatched.saturating_add(o.unmatched);
    }
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
    /// SRT runs: SRT's retransmission and drop counts (absent for RTMP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub srt: Option<SrtTotals>,
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
    /// Viewers (`--viewers`): absent when the run had none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub viewers: Option<Viewers>,
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
