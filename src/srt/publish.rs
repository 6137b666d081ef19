//! One SRT publisher, in the shape of the RTMP one: DNS -> SRT handshake
//! (the listener accepts or rejects the streamid) -> TS payloads paced in
//! real time until the first one is acknowledged (the push is accepted) and
//! on to the end. Returns the same [`PublishResult`] record, with SRT's own
//! numbers in [`PublishResult::srt`].
//!
//! Phases as recorded: `dns`, `handshake` (the induction and conclusion
//! exchanges, timed apart in [`caller::SrtStats`]), `publish` (the first TS
//! payload acknowledged by the listener).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::caller::{self, CallError, Caller, CallerConfig, Event};
use crate::media::MediaPlan;
use crate::publish::{
    Ending, Failure, Observer, Phase, PhaseMarks, PublishConfig, PublishResult, dial,
};
use crate::rtmp::message::StatusReply;
use crate::ts::mux::{TsCursor, TsLoop};

/// What an SRT push carries: the fixture as TS (shared by every publisher)
/// and the latency asked for.
#[derive(Debug, Clone)]
pub struct SrtMedia {
    pub ts: Arc<TsLoop>,
    pub latency: Duration,
}

/// How long closing may take (the shutdown to the listener).
const CLOSE_WITHIN: Duration = Duration::from_secs(1);

struct Run<'a> {
    cfg: &'a PublishConfig,
    start: Instant,
    marks: PhaseMarks,
    remote_addr: Option<std::net::SocketAddr>,
    forced: Option<String>,
    observer: &'a mut dyn Observer,
}

#[derive(Default)]
struct Streamed {
    media_ms: u64,
    streamed: Duration,
    max_lag: Duration,
    bytes: u64,
    stats: Option<caller::SrtStats>,
}

/// Runs one SRT push of `srt.ts` (starting at the keyframe `cfg.start_index`
/// names in `plan`) to its end.
pub async fn publish(
    cfg: &PublishConfig,
    srt: &SrtMedia,
    plan: &MediaPlan,
    cancel: &CancellationToken,
    observer: &mut dyn Observer,
) -> PublishResult {
    let mut run = Run {
        cfg,
        start: Instant::now(),
        marks: PhaseMarks::default(),
        remote_addr: None,
        forced: None,
        observer,
    };
    // Set from the start: an SRT push's record says so even when it failed.
    let mut out = Streamed {
        stats: Some(caller::SrtStats {
            latency_ms: srt.latency.as_secs_f64() * 1000.0,
            ..caller::SrtStats::default()
        }),
        ..Streamed::default()
    };
    let setup = tokio::select! {
        biased;
        _ = cancel.cancelled() => None,
        r = run.setup(srt) => Some(r),
    };
    let ending = match setup {
        None => Ending::Cancelled {
            phase: run.in_progress(),
        },
        Some(Err(failure)) => Ending::Failed { failure },
        Some(Ok(mut caller)) => {
            let start_index = ts_start(plan, &srt.ts, cfg.start_index);
            let ending = run
                .stream(&mut caller, &srt.ts, start_index, cancel, &mut out)
                .await;
            let mut stats = caller.stats();
            if stats.acks == 0 || stats.rtt_ms == 0.0 {
                stats.rtt_ms = handshake_rtt_ms(&run.marks);
            }
            let secs = out.streamed.as_secs_f64();
            if secs > 0.0 {
                stats.send_kbps = (stats.bytes_sent as f64 * 8.0 / secs / 100.0).round() / 10.0;
            }
            out.stats = Some(stats);
            caller.close(CLOSE_WITHIN).await;
            ending
        }
    };
    PublishResult {
        ending,
        marks: run.marks,
        statuses: Vec::new(),
        bytes_sent: out.bytes,
        media_ms: out.media_ms,
        streamed: out.streamed,
        max_lag: out.max_lag,
        publish_sent: None,
        stream_bytes: out.bytes,
        planned: cfg.duration,
        remote_addr: run.remote_addr,
        attempts: Vec::new(),
        forced: run.forced,
        srt: out.stats.map(Box::new),
        server_fourcc: None,
        pushed_fourcc: None,
    }
}

/// Half the handshake (two round trips: induction, conclusion), ms: the
/// RTT when no ACK reported one.
fn handshake_rtt_ms(marks: &PhaseMarks) -> f64 {
    let own = marks.durations();
    let hs = own.iter().find(|(p, _)| *p == Phase::Handshake);
    hs.map_or(0.0, |(_, d)| {
        (d.as_secs_f64() * 500.0 * 10.0).round() / 10.0
    })
}

/// The TS payload index of the keyframe the RTMP plan's tag index names
/// (the n-th keyframe of one is the n-th of the other).
fn ts_start(plan: &MediaPlan, ts: &TsLoop, tag_index: usize) -> usize {
    let nth = plan.keyframes.binary_search(&tag_index).unwrap_or(0);
    ts.keyframes[nth % ts.keyframes.len()]
}

/// A listener's rejection as the status the classifier reads: access
/// control refuses the streamid (the publish request); core reasons fail
/// the handshake itself.
pub fn rejection_failure(r: caller::Rejection) -> Failure {
    let phase = if r.is_access_control() {
        Phase::Publish
    } else {
        Phase::Handshake
    };
    Failure::Rejected {
        phase,
        status: StatusReply {
            level: "error".into(),
            code: format!("SRT_REJ {}", r.code),
            description: format!("SRT listener rejected the streamid: {r}"),
        },
    }
}

impl Run<'_> {
    fn mark(&mut self, phase: Phase) {
        self.marks.mark(phase, self.start);
        self.observer.phase(phase, Instant::now());
    }

    fn in_progress(&self) -> Phase {
        match self.marks.done.last() {
            None => Phase::Dns,
            Some((Phase::Dns, _)) => Phase::Handshake,
            Some((Phase::Handshake, _)) => Phase::Publish,
            Some(_) => Phase::Streaming,
        }
    }

    async fn setup(&mut self, srt: &SrtMedia) -> Result<Caller, Failure> {
        let url = &self.cfg.url;
        let resolved =
            dial::resolve_forced(&url.host, url.port(), &self.cfg.dial, self.cfg.timeout)
                .await
                .map_err(crate::publish::dial_failure)?;
        self.forced = resolved.forced;
        self.mark(Phase::Dns);
        // UDP has no connect to race: the first address is called.
        let addr = *resolved.addrs.first().ok_or_else(|| Failure::Dns {
            detail: "no address".into(),
        })?;
        self.remote_addr = Some(addr);
        let cc = CallerConfig {
            latency: srt.latency,
            timeout: self.cfg.timeout,
            idle_timeout: self
                .cfg
                .timeout
                .clamp(Duration::from_secs(2), Duration::from_secs(10)),
        };
        let caller = caller::call(addr, &url.stream_id(), &cc)
            .await
            .map_err(|e| match e {
                CallError::Timeout(_) => Failure::Timeout {
                    phase: Phase::Handshake,
                },
                CallError::Rejected(r) => rejection_failure(r),
                CallError::Io(detail) => Failure::Io {
                    phase: Phase::Handshake,
                    detail,
                },
            })?;
        self.mark(Phase::Handshake);
        Ok(caller)
    }

    fn accepted_for(&self) -> Option<Duration> {
        self.marks
            .at(Phase::Publish)
            .map(|at| self.start.elapsed().saturating_sub(at))
    }

    /// The connection ended while streaming: before the first ACK it is a
    /// refusal, within the refusal window after it a refusal after start,
    /// later an interruption.
    fn ended(&self, failure: Failure) -> Ending {
        match self.accepted_for() {
            None => Ending::Failed { failure },
            Some(after) if after < self.cfg.refusal_window => Ending::Failed {
                failure: Failure::RefusedAfterStart {
                    after_start_ms: after.as_millis() as u64,
                    cause: Box::new(failure),
                },
            },
            Some(_) => Ending::Interrupted { failure },
        }
    }

    async fn stream(
        &mut self,
        caller: &mut Caller,
        ts: &TsLoop,
        start_index: usize,
        cancel: &CancellationToken,
        out: &mut Streamed,
    ) -> Ending {
        let began = Instant::now();
        let handshake_done = self.start.elapsed();
        let end = self.cfg.duration.map(|d| began + d);
        let ack_by = began + self.cfg.timeout;
        let mut cursor = TsCursor::new(ts, start_index);
        let ending = loop {
            let phase = self.in_progress();
            let now = Instant::now();
            if end.is_some_and(|e| now >= e) {
                break if phase == Phase::Streaming {
                    Ending::Completed
                } else {
                    // Streamed to the end without one acknowledgement.
                    Ending::Failed {
                        failure: Failure::Timeout {
                            phase: Phase::Publish,
                        },
                    }
                };
            }
            if phase == Phase::Publish && now >= ack_by {
                break Ending::Failed {
                    failure: Failure::Timeout {
                        phase: Phase::Publish,
                    },
                };
            }
            let next = began + Duration::from_millis(cursor.next_due_ms(ts));
            let mut wake = end.map_or(next, |e| e.min(next));
            if phase == Phase::Publish {
                wake = wake.min(ack_by);
            }
            let event = tokio::select! {
                biased;
                _ = cancel.cancelled() => break Ending::Cancelled { phase },
                e = caller.wait(wake) => e,
            };
            match event {
                Event::Closed => {
                    let failure = Failure::Closed {
                        phase,
                        after_publish_ms: Some(
                            self.start
                                .elapsed()
                                .saturating_sub(handshake_done)
                                .as_millis() as u64,
                        ),
                    };
                    break self.ended(failure);
                }
                Event::Stats => {
                    if phase == Phase::Publish && caller.stats().acks > 0 {
                        self.mark(Phase::Publish);
                    }
                }
                Event::Due => {
                    if let Err(f) = self.send_due(caller, ts, &mut cursor, began, out).await {
                        break self.ended(f);
                    }
                }
            }
        };
        out.streamed = began.elapsed();
        ending
    }

    /// Sends every payload due within one tick from now.
    async fn send_due(
        &mut self,
        caller: &mut Caller,
        ts: &TsLoop,
        cursor: &mut TsCursor,
        began: Instant,
        out: &mut Streamed,
    ) -> Result<(), Failure> {
        let now = Instant::now();
        let horizon = now.saturating_duration_since(began) + self.cfg.tick;
        while Duration::from_millis(cursor.next_due_ms(ts)) <= horizon {
            let (payload, due) = cursor.next(ts);
            let due_at = began + Duration::from_millis(due);
            out.max_lag = out
                .max_lag
                .max(Instant::now().saturating_duration_since(due_at));
            let len = payload.len() as u64;
            let phase = self.in_progress();
            match tokio::time::timeout(self.cfg.timeout, caller.send(due_at, payload)).await {
                Err(_) => return Err(Failure::Timeout { phase }),
                Ok(Err(e)) => {
                    return Err(Failure::Closed {
                        phase,
                        after_publish_ms: None,
                    })
                    .inspect_err(|_| tracing::debug!("SRT send failed: {e}"));
                }
                Ok(Ok(())) => {}
            }
            out.bytes += len;
            out.media_ms = due;
            self.observer.sent(len);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::srt::caller::Rejection;

    #[test]
    fn access_control_rejections_refuse_the_publish_core_ones_the_handshake() {
        let f = rejection_failure(Rejection::from_wire(2401));
        assert_eq!(f.phase(), Phase::Publish);
        assert!(f.to_string().contains("1401 unauthorized"), "{f}");
        let f = rejection_failure(Rejection::from_wire(1008));
        assert_eq!(f.phase(), Phase::Handshake);
    }

    #[test]
    fn start_keyframe_follows_the_plan() {
        let fx = crate::flv::default_fixture();
        let plan = MediaPlan::new(&fx, 4096);
        let ts = TsLoop::new(&fx).unwrap();
        assert_eq!(plan.keyframes.len(), ts.keyframes.len());
        for n in 0..plan.keyframes.len() as u64 {
            let i = ts_start(&plan, &ts, plan.start_index(n));
            assert_eq!(i, ts.start_index(n));
        }
    }
}
