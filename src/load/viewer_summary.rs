//! The viewers' part of a load report: counts that add, histograms that merge
//! exactly, and the percentiles derived from them (`schema.json` describes it).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::hist::{Hist, Percentiles};
use super::viewers::{REAL_TIME, ViewerRecord};

/// Frame counts summed over viewers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewerFrames {
    pub video: u64,
    pub keyframes: u64,
    pub audio: u64,
    pub media_bytes: u64,
    /// No frame for longer than the stall threshold (1 s), a silent end included.
    pub stalls: u64,
    /// Media timestamps going backwards or jumping over 1 s.
    pub discontinuities: u64,
    /// Video frames that carried a latency stamp.
    pub stamped: u64,
    /// Stamp sequence numbers never received.
    pub lost: u64,
    pub duplicated: u64,
    pub reordered: u64,
    /// Frames stamped after they arrived (clocks apart), recorded as 0 ms.
    pub negative_latency: u64,
    /// Frames pushed before their viewer asked for the stream (the server's
    /// GOP cache at join): counted here, not in the latency.
    pub catchup: u64,
}

impl ViewerFrames {
    fn add(&mut self, o: &ViewerFrames) {
        let ViewerFrames {
            video,
            keyframes,
            audio,
            media_bytes,
            stalls,
            discontinuities,
            stamped,
            lost,
            duplicated,
            reordered,
            negative_latency,
            catchup,
        } = *o;
        for (into, n) in [
            (&mut self.video, video),
            (&mut self.keyframes, keyframes),
            (&mut self.audio, audio),
            (&mut self.media_bytes, media_bytes),
            (&mut self.stalls, stalls),
            (&mut self.discontinuities, discontinuities),
            (&mut self.stamped, stamped),
            (&mut self.lost, lost),
            (&mut self.duplicated, duplicated),
            (&mut self.reordered, reordered),
            (&mut self.negative_latency, negative_latency),
            (&mut self.catchup, catchup),
        ] {
            *into = into.saturating_add(n);
        }
    }
}

/// The raw viewer histograms (µs), base64 HdrHistogram V2 in JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ViewerHistograms {
    pub first_frame: Hist,
    pub first_frame_from_schedule: Hist,
    pub latency: Hist,
    /// Each measured viewer's worst live-frame latency, one sample per viewer.
    pub viewer_max_latency: Hist,
}

/// The viewers of a run (or of merged runs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Viewers {
    /// Viewers per stream (`--viewers`); merged runs keep the largest.
    pub per_stream: u64,
    /// Viewers of our own publishers (`with_publishers`) or of streams
    /// someone else pushes (`viewer_only`); merged runs of both: `mixed`.
    pub mode: String,
    /// The play URL template, secrets redacted (merged: distinct ones joined by " | ").
    pub play_target: String,
    /// Viewers planned: per stream times streams (with publishers: streams
    /// whose publisher was planned).
    pub planned: u64,
    /// Viewers that ran (a viewer's publisher must be accepted first).
    pub measured: u64,
    /// A first video frame arrived.
    pub started: u64,
    /// Started, ran to the end without failing, never stalled and was never
    /// behind real time (see `late`).
    pub kept_up: u64,
    /// Viewers behind real time: a frame pushed after the viewer joined
    /// reached it more than [`REAL_TIME`] later.
    pub late: u64,
    pub failed: u64,
    /// Failed viewers by reason (`http_404`, `timeout_first_frame`,
    /// `rejected NetStream.Play.StreamNotFound`, `no_first_frame`, ...).
    pub failures: BTreeMap<String, u64>,
    /// Viewers by how their latency was measured: `sei` (stamps), `timestamp`, `none`.
    pub latency_method: BTreeMap<String, u64>,
    pub frames: ViewerFrames,
    /// Sum of the time each viewer played after its first frame.
    pub play_seconds: f64,
    /// First video frame from the viewer's actual start.
    pub first_frame_ms: Percentiles,
    /// First video frame from when the viewer was due (its publisher's
    /// Publish.Start, or its slot): coordinated-omission correct.
    pub first_frame_from_schedule_ms: Percentiles,
    /// Per-frame push-to-play latency from the stamps, every live frame of
    /// every viewer (the join catch-up is in `frames.catchup`).
    pub latency_ms: Percentiles,
    /// Each viewer's worst live-frame latency: its max is the slowest viewer.
    pub viewer_max_latency_ms: Percentiles,
    pub histograms: ViewerHistograms,
}

impl Viewers {
    pub fn new(per_stream: u64, mode: &str, play_target: String, planned: u64) -> Viewers {
        Viewers {
            per_stream,
            mode: mode.to_owned(),
            play_target,
            planned,
            ..Viewers::default()
        }
    }

    /// Folds one viewer's record in (its latency samples are already in the
    /// shared histogram: see [`Viewers::add_latency`]).
    pub fn add(&mut self, r: &ViewerRecord) {
        self.measured += 1;
        let c = &r.counts;
        self.frames.add(&ViewerFrames {
            video: c.video_frames,
            keyframes: c.keyframes,
            audio: c.audio_frames,
            media_bytes: c.media_bytes,
            stalls: u64::from(c.stalls),
            discontinuities: u64::from(c.discontinuities),
            stamped: c.stamped,
            lost: c.lost,
            duplicated: c.duplicated,
            reordered: c.reordered,
            negative_latency: c.negative_latency,
            catchup: c.catchup,
        });
        if let Some(worst) = r.max_latency {
            self.histograms.viewer_max_latency.record(worst);
            self.late += u64::from(worst > REAL_TIME);
        }
        *self
            .latency_method
            .entry(r.latency_method.name().to_owned())
            .or_default() += 1;
        self.play_seconds += r.played.as_secs_f64();
        if let Some(ff) = r.first_frame {
            self.started += 1;
            self.histograms.first_frame.record(ff);
            self.histograms
                .first_frame_from_schedule
                .record(ff + r.start_delay);
        }
        self.kept_up += u64::from(r.kept_up());
        if let Some(why) = &r.failure {
            self.failed += 1;
            *self.failures.entry(why.clone()).or_default() += 1;
        }
    }

    pub fn add_latency(&mut self, h: &Hist) -> Result<(), hdrhistogram::AdditionError> {
        self.histograms.latency.add(h)
    }

    /// Adds another run's viewers (exact: counts sum, histograms add).
    pub fn merge(
        &mut self,
        o: &Viewers,
    ) -> Result<(), (&'static str, hdrhistogram::AdditionError)> {
        self.per_stream = self.per_stream.max(o.per_stream);
        if self.mode.is_empty() {
            self.mode.clone_from(&o.mode);
        } else if self.mode != o.mode {
            self.mode = "mixed".to_owned();
        }
        if self.play_target.is_empty() {
            self.play_target.clone_from(&o.play_target);
        } else if !self.play_target.split(" | ").any(|t| t == o.play_target) {
            self.play_target = format!("{} | {}", self.play_target, o.play_target);
        }
        for (into, n) in [
            (&mut self.planned, o.planned),
            (&mut self.measured, o.measured),
            (&mut self.started, o.started),
            (&mut self.kept_up, o.kept_up),
            (&mut self.late, o.late),
            (&mut self.failed, o.failed),
        ] {
            *into = into.saturating_add(n);
        }
        for (into, from) in [
            (&mut self.failures, &o.failures),
            (&mut self.latency_method, &o.latency_method),
        ] {
            for (k, n) in from {
                let c = into.entry(k.clone()).or_default();
                *c = c.saturating_add(*n);
            }
        }
        self.frames.add(&o.frames);
        self.play_seconds += o.play_seconds;
        let h = &mut self.histograms;
        h.first_frame
            .add(&o.histograms.first_frame)
            .map_err(|e| ("viewer_first_frame", e))?;
        h.first_frame_from_schedule
            .add(&o.histograms.first_frame_from_schedule)
            .map_err(|e| ("viewer_first_frame.from_schedule", e))?;
        h.latency
            .add(&o.histograms.latency)
            .map_err(|e| ("viewer_latency", e))?;
        h.viewer_max_latency
            .add(&o.histograms.viewer_max_latency)
            .map_err(|e| ("viewer_max_latency", e))?;
        Ok(())
    }

    /// The percentiles, from the histograms.
    pub fn finished(&self) -> Viewers {
        let mut v = self.clone();
        v.first_frame_ms = v.histograms.first_frame.percentiles();
        v.first_frame_from_schedule_ms = v.histograms.first_frame_from_schedule.percentiles();
        v.latency_ms = v.histograms.latency.percentiles();
        v.viewer_max_latency_ms = v.histograms.viewer_max_latency.percentiles();
        if !v.play_seconds.is_finite() {
            v.play_seconds = 0.0;
        }
        v
    }

    /// Every planned viewer ran, started and none failed.
    pub fn passed(&self) -> bool {
        self.measured == self.planned && self.started == self.planned && self.failed == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::play::LatencyMethod;
    use crate::play::measure::Counts;
    use std::time::Duration;

    pub(crate) fn record(i: u64, failure: Option<&str>) -> ViewerRecord {
        ViewerRecord {
            stream_index: i / 3,
            viewer: (i % 3) as u32,
            start_delay: Duration::from_millis(i),
            first_frame: failure.is_none().then(|| Duration::from_millis(100 + i)),
            failure: failure.map(str::to_owned),
            cancelled: false,
            counts: Counts {
                video_frames: 100,
                stamped: 100,
                lost: i % 2,
                stalls: 0,
                ..Counts::default()
            },
            latency_method: LatencyMethod::Sei,
            max_latency: failure
                .is_none()
                .then(|| Duration::from_millis(if i == 4 { 1200 } else { 20 })),
            played: Duration::from_secs(4),
        }
    }

    fn fold(records: impl IntoIterator<Item = ViewerRecord>) -> Viewers {
        let mut v = Viewers::new(3, "with_publishers", "t".into(), 6);
        for r in records {
            v.add(&r);
        }
        v
    }

    #[test]
    fn counts_and_first_frames_from_start_and_schedule() {
        let v = fold((0..6).map(|i| record(i, (i == 5).then_some("http_404")))).finished();
        // Viewer 4's worst live frame came 1.2 s late: started, behind real time.
        assert_eq!(
            (v.measured, v.started, v.failed, v.kept_up, v.late),
            (6, 5, 1, 4, 1)
        );
        assert_eq!(v.viewer_max_latency_ms.count, 5);
        assert!((v.viewer_max_latency_ms.max - 1200.0).abs() <= 1.2);
        assert_eq!(v.failures.get("http_404"), Some(&1));
        assert_eq!(v.frames.video, 600);
        assert_eq!(v.frames.lost, 3);
        assert_eq!(v.first_frame_ms.count, 5);
        // Viewer 4: first frame 104 ms after its start, started 4 ms late.
        // (HdrHistogram at 3 significant digits: within 0.1%.)
        let near = |got: f64, want: f64| (got - want).abs() <= want / 1000.0;
        assert!(near(v.first_frame_ms.max, 104.0), "{:?}", v.first_frame_ms);
        assert!(
            near(v.first_frame_from_schedule_ms.max, 108.0),
            "{:?}",
            v.first_frame_from_schedule_ms
        );
        assert!(!v.passed());
    }

    #[test]
    fn merging_two_halves_equals_the_whole() {
        let whole = fold((0..6).map(|i| record(i, None)));
        let mut a = fold((0..3).map(|i| record(i, None)));
        a.planned = 3;
        let mut b = fold((3..6).map(|i| record(i, None)));
        b.planned = 3;
        let mut merged = Viewers::default();
        merged.merge(&a).unwrap();
        merged.merge(&b).unwrap();
        assert_eq!(merged.finished(), whole.finished());
        assert!(merged.passed());
    }
}
