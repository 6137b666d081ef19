//! The player's fold, pure: frames in (with the receive time passed in), counts,
//! stalls, timestamp discontinuities, lost/duplicated/reordered frames (from
//! the stamps' sequence numbers) and latency samples out. Per-viewer state is
//! a few dozen bytes: no list of frames, no histogram; latency samples go to a
//! [`LatencySink`] the caller owns (one histogram per player, or one shared by
//! thousands of viewers in a load run).

use std::time::Duration;

use serde::Serialize;

use crate::flv::MAX_GAP_MS;
use crate::load::hist::Hist;

/// Where per-frame push-to-play latency goes (Send: a player runs in a
/// spawned task, as every viewer of a load run does).
pub trait LatencySink: Send {
    fn record(&mut self, latency: Duration);
    /// The player's first video frame arrived (once per play).
    fn first_frame(&mut self) {}
}

impl LatencySink for Hist {
    fn record(&mut self, latency: Duration) {
        Hist::record(self, latency);
    }
}

/// Drops samples (a player that only counts frames).
impl LatencySink for () {
    fn record(&mut self, _latency: Duration) {}
}

/// Which track a media message belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    Audio,
    Video,
}

/// One media message as the player saw it.
#[derive(Debug, Clone, Copy)]
pub struct Frame {
    pub track: Track,
    /// The media timestamp (FLV/RTMP ms).
    pub timestamp_ms: u32,
    pub keyframe: bool,
    pub bytes: usize,
    /// When it arrived, on the player's monotonic clock (since the play began).
    pub at: Duration,
    /// When it arrived, unix µs (for latency against a send time).
    pub at_unix_us: u64,
    /// The push-to-play send time, when the frame carries one (a stamp, or
    /// a send-log match); `seq` is set only for stamps.
    pub sent: Option<Sent>,
}

/// A frame's send time and, for a stamp, its sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub unix_us: u64,
    pub stamp: Option<(u32, u64)>,
}

/// How many sequence numbers back a late frame is still told apart from a
/// duplicate (one bit each).
const SEQ_WINDOW: u64 = 64;

/// Counts of one play-back, as reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Video frames (sequence headers not counted).
    pub video_frames: u64,
    pub keyframes: u64,
    pub audio_frames: u64,
    /// Media bytes (audio + video message bodies).
    pub media_bytes: u64,
    /// Gaps between frames (any track) longer than the stall threshold,
    /// including a silent end.
    pub stalls: u32,
    /// The longest gap between frames, in ms.
    pub longest_gap_ms: u64,
    /// Media timestamps going backwards or jumping forward over 1 s
    /// (per track).
    pub discontinuities: u32,
    /// Video frames that carried a stamp.
    pub stamped: u64,
    /// Sequence numbers skipped (and not filled by a late frame).
    pub lost: u64,
    /// A sequence number seen again.
    pub duplicated: u64,
    /// A frame older than one already seen (filling a gap).
    pub reordered: u64,
    /// Frames whose send time was after their receive time (clocks apart):
    /// recorded as 0 latency.
    pub negative_latency: u64,
    /// Frames pushed before the player asked for the stream (the server's
    /// GOP cache, an HLS playlist's backlog): the join catch-up. They are
    /// counted here, not in the latency samples, which are the live frames.
    pub catchup: u64,
    /// How old the oldest catch-up frame was when it arrived, ms.
    pub catchup_oldest_ms: u64,
}

/// The fold state of one player.
#[derive(Debug, Clone)]
pub struct Meter {
    stall_after: Duration,
    counts: Counts,
    last_frame_at: Option<Duration>,
    last_video_ts: Option<u32>,
    last_audio_ts: Option<u32>,
    /// The publisher whose sequence we follow.
    publisher: Option<u32>,
    /// The highest sequence seen, and a bit per sequence number below it
    /// (bit i: `highest - i` was seen).
    highest: u64,
    seen: u64,
    /// When the player asked for the stream (unix µs): frames sent before
    /// are catch-up, not live.
    asked_unix_us: Option<u64>,
}

impl Meter {
    pub fn new(stall_after: Duration) -> Meter {
        Meter {
            stall_after,
            counts: Counts::default(),
            last_frame_at: None,
            last_video_ts: None,
            last_audio_ts: None,
            publisher: None,
            highest: 0,
            seen: 0,
            asked_unix_us: None,
        }
    }

    /// The player asked for the stream at `unix_us` (the first request only:
    /// an HLS player's later requests do not move it).
    pub fn asked(&mut self, unix_us: u64) {
        self.asked_unix_us.get_or_insert(unix_us);
    }

    /// Raises the stall threshold by `by` (bursty transports).
    pub fn widen_stall(&mut self, by: Duration) {
        self.stall_after += by;
    }

    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    /// Folds one media message in; a latency sample goes to `sink` when the
    /// frame carries a send time.
    pub fn frame(&mut self, f: &Frame, sink: &mut dyn LatencySink) {
        self.gap(f.at);
        self.last_frame_at = Some(f.at);
        self.counts.media_bytes += f.bytes as u64;
        let last_ts = match f.track {
            Track::Video => {
                self.counts.video_frames += 1;
                self.counts.keyframes += u64::from(f.keyframe);
                &mut self.last_video_ts
            }
            Track::Audio => {
                self.counts.audio_frames += 1;
                &mut self.last_audio_ts
            }
        };
        if let Some(prev) = *last_ts
            && (f.timestamp_ms < prev || f.timestamp_ms - prev > MAX_GAP_MS)
        {
            self.counts.discontinuities += 1;
        }
        *last_ts = Some(f.timestamp_ms);
        if let Some(sent) = f.sent {
            let age = f.at_unix_us.checked_sub(sent.unix_us);
            if self.asked_unix_us.is_some_and(|asked| sent.unix_us < asked) {
                // Pushed before we asked: the join catch-up, whose age is
                // the server's cache depth, not the delivery path's delay.
                self.counts.catchup += 1;
                let ms = age.unwrap_or(0) / 1000;
                self.counts.catchup_oldest_ms = self.counts.catchup_oldest_ms.max(ms);
            } else {
                match age {
                    Some(us) => sink.record(Duration::from_micros(us)),
                    None => {
                        self.counts.negative_latency += 1;
                        sink.record(Duration::ZERO);
                    }
                }
            }
            if let Some((publisher, seq)) = sent.stamp {
                self.counts.stamped += 1;
                self.sequence(publisher, seq);
            }
        }
    }

    /// Counts the gap from the last frame to `at` when it is a stall.
    fn gap(&mut self, at: Duration) {
        if let Some(last) = self.last_frame_at {
            let gap = at.saturating_sub(last);
            self.counts.longest_gap_ms = self.counts.longest_gap_ms.max(gap.as_millis() as u64);
            if gap > self.stall_after {
                self.counts.stalls += 1;
            }
        }
    }

    fn sequence(&mut self, publisher: u32, seq: u64) {
        if self.publisher != Some(publisher) {
            // The first stamp, or a new publisher (the stream restarted):
            // start following its sequence from here.
            self.publisher = Some(publisher);
            self.highest = seq;
            self.seen = 1;
            return;
        }
        if seq > self.highest {
            let ahead = seq - self.highest;
            self.counts.lost += ahead - 1;
            self.seen = if ahead >= SEQ_WINDOW {
                1
            } else {
                (self.seen << ahead) | 1
            };
            self.highest = seq;
            return;
        }
        let back = self.highest - seq;
        if back >= SEQ_WINDOW {
            // Too old to tell: a frame from before the window is late.
            self.counts.reordered += 1;
            return;
        }
        let bit = 1u64 << back;
        if self.seen & bit != 0 {
            self.counts.duplicated += 1;
        } else {
            self.seen |= bit;
            self.counts.reordered += 1;
            self.counts.lost = self.counts.lost.saturating_sub(1);
        }
    }

    /// Ends the fold at `at`: a silent tail longer than the threshold is a
    /// stall too.
    pub fn finish(&mut self, at: Duration) -> Counts {
        self.gap(at);
        self.counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Samples(Vec<Duration>);
    impl LatencySink for Samples {
        fn record(&mut self, d: Duration) {
            self.0.push(d);
        }
    }

    fn video(ms: u64, ts: u32, stamp: Option<(u32, u64, u64)>) -> Frame {
        Frame {
            track: Track::Video,
            timestamp_ms: ts,
            keyframe: false,
            bytes: 100,
            at: Duration::from_millis(ms),
            at_unix_us: 1_000_000_000 + ms * 1000,
            sent: stamp.map(|(p, seq, sent)| Sent {
                unix_us: sent,
                stamp: Some((p, seq)),
            }),
        }
    }

    fn seqs(list: &[u64]) -> Counts {
        let mut m = Meter::new(Duration::from_secs(1));
        for (i, &s) in list.iter().enumerate() {
            let ms = i as u64 * 40;
            m.frame(&video(ms, ms as u32, Some((7, s, 1_000_000_000))), &mut ());
        }
        m.finish(Duration::from_millis(list.len() as u64 * 40))
    }

    #[test]
    fn in_order_sequence_has_nothing_lost() {
        let c = seqs(&[10, 11, 12, 13]);
        assert_eq!((c.lost, c.duplicated, c.reordered, c.stamped), (0, 0, 0, 4));
    }

    #[test]
    fn gaps_duplicates_and_late_frames() {
        // 12 and 13 skipped; 12 arrives late (fills the gap); 14 twice.
        let c = seqs(&[10, 11, 14, 12, 14, 15]);
        assert_eq!((c.lost, c.duplicated, c.reordered), (1, 1, 1));
        // A late frame filling the same hole twice: the second is a duplicate.
        let c = seqs(&[1, 3, 2, 2]);
        assert_eq!((c.lost, c.duplicated, c.reordered), (0, 1, 1));
        // A jump past the window, then a frame from before it.
        let c = seqs(&[1, 200, 2]);
        assert_eq!((c.lost, c.duplicated, c.reordered), (198, 0, 1));
    }

    #[test]
    fn a_new_publisher_restarts_the_sequence() {
        let mut m = Meter::new(Duration::from_secs(1));
        m.frame(&video(0, 0, Some((1, 500, 0))), &mut ());
        m.frame(&video(40, 40, Some((2, 0, 0))), &mut ());
        m.frame(&video(80, 80, Some((2, 1, 0))), &mut ());
        assert_eq!(m.counts().lost, 0);
    }

    #[test]
    fn stalls_count_gaps_over_the_threshold_and_a_silent_end() {
        let mut m = Meter::new(Duration::from_secs(1));
        for ms in [0, 40, 1040, 1100, 2200] {
            m.frame(&video(ms, ms as u32, None), &mut ());
        }
        // 1040 - 40 = 1000 is not over 1 s; 2200 - 1100 = 1100 is.
        assert_eq!(m.counts().stalls, 1);
        assert_eq!(m.counts().longest_gap_ms, 1100);
        let c = m.finish(Duration::from_millis(3300));
        assert_eq!((c.stalls, c.longest_gap_ms), (2, 1100));
    }

    #[test]
    fn discontinuities_per_track() {
        let mut m = Meter::new(Duration::from_secs(1));
        let audio = |ms: u64, ts: u32| Frame {
            track: Track::Audio,
            ..video(ms, ts, None)
        };
        // Audio slightly behind video is interleaving, not a discontinuity.
        m.frame(&video(0, 100, None), &mut ());
        m.frame(&audio(1, 90), &mut ());
        m.frame(&video(2, 140, None), &mut ());
        assert_eq!(m.counts().discontinuities, 0);
        m.frame(&video(3, 120, None), &mut ()); // backwards
        m.frame(&video(4, 1200, None), &mut ()); // +1080 ms
        m.frame(&audio(5, 1090), &mut ()); // +1000 ms: allowed
        assert_eq!(m.counts().discontinuities, 2);
        assert_eq!((m.counts().video_frames, m.counts().audio_frames), (4, 2));
    }

    #[test]
    fn latency_is_receive_minus_send() {
        let mut m = Meter::new(Duration::from_secs(1));
        let mut s = Samples::default();
        // Received at unix 1_000_000_000 + 40_000 µs, sent 250 ms before.
        m.frame(
            &video(40, 40, Some((1, 1, 1_000_040_000 - 250_000))),
            &mut s,
        );
        // Sent "after" it arrived: clocks apart, recorded as 0 and counted.
        m.frame(&video(80, 80, Some((1, 2, 2_000_000_000))), &mut s);
        assert_eq!(
            s.0,
            [Duration::from_millis(250), Duration::ZERO],
            "latency samples"
        );
        assert_eq!(m.counts().negative_latency, 1);
    }

    #[test]
    fn frames_pushed_before_the_request_are_catch_up_not_latency() {
        let mut m = Meter::new(Duration::from_secs(1));
        let mut s = Samples::default();
        // Asked at unix 1_000_000_000 µs (the play's 0 ms).
        m.asked(1_000_000_000);
        m.asked(1_500_000_000); // a later request does not move it
        // Cached frames sent 1.9 s and 0.5 s before the request, arriving
        // at 10 and 20 ms: catch-up.
        m.frame(
            &video(10, 0, Some((1, 1, 1_000_000_000 - 1_900_000))),
            &mut s,
        );
        m.frame(
            &video(20, 1400, Some((1, 2, 1_000_000_000 - 500_000))),
            &mut s,
        );
        // Sent 5 ms after the request, arriving at 40 ms: live, 35 ms.
        m.frame(&video(40, 1900, Some((1, 3, 1_000_005_000))), &mut s);
        assert_eq!(s.0, [Duration::from_millis(35)], "only the live frame");
        let c = m.counts();
        assert_eq!(
            (c.catchup, c.catchup_oldest_ms, c.stamped, c.lost),
            (2, 1910, 3, 0)
        );
    }
}
