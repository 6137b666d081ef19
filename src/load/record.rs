//! The plain records a load run produces: one per publisher, one per
//! timeline sample, one per matched callback. The aggregator folds them.

use std::time::Duration;

use crate::classify::Outcome;
use crate::publish::Phase;

/// What one publisher did, measured by the runner.
#[derive(Debug, Clone)]
pub struct PublisherRecord {
    pub index: u64,
    pub stream: String,
    /// A deliberate duplicate (`--duplicates`): expected to be refused.
    pub expected_refusal: bool,
    pub outcome: Outcome,
    /// Actual start minus scheduled start (how late the generator was).
    pub start_delay: Duration,
    /// When each phase completed, from the actual start.
    pub marks: Vec<(Phase, Duration)>,
    pub bytes_sent: u64,
    /// Largest delay of a media message behind real time.
    pub max_lag: Duration,
    /// How long it streamed after Publish.Start (all attempts together).
    pub streamed: Duration,
    /// Reconnect attempts after the first one (`--reconnect`).
    pub reconnects: u32,
    /// The remote address and the addresses whose connects failed.
    pub addrs: super::by_address::PublisherAddrs,
    /// SRT publishers: SRT's counts over all attempts.
    pub srt: Option<Box<super::summary::SrtTotals>>,
}

impl PublisherRecord {
    /// When `phase` completed, from the scheduled start.
    pub fn from_schedule(&self, phase: Phase) -> Option<Duration> {
        self.from_start(phase).map(|d| d + self.start_delay)
    }
    /// When `phase` completed, from the actual start.
    pub fn from_start(&self, phase: Phase) -> Option<Duration> {
        self.marks
            .iter()
            .find(|(p, _)| *p == phase)
            .map(|(_, d)| *d)
    }
}

/// A once-a-second view of the run, for the timeline plot.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Sample {
    /// Seconds since the run started.
    pub t_s: f64,
    pub publishing: u64,
    pub failed: u64,
    /// Aggregate bitrate over the last interval.
    pub bitrate_bps: u64,
}

/// Which callback event a latency belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackKind {
    /// event_type 1, latency from our Publish.Start.
    Push,
    /// event_type 0, latency from our close.
    Interrupt,
}
