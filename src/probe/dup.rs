//! The duplicate-push check behind `dup` and `demo`: run a first push, a
//! second to the same URL while the first streams, and judge from what
//! happened to the media whether the duplicate was refused.

use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{PreparedPush, Pushed};
use crate::publish::{Observer, Phase, PublishResult};

/// What a dup run found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DupFinding {
    /// B was refused and A streamed through the hold: pass.
    Refused,
    /// A never got to Publish.Start.
    FirstNeverStarted,
    /// B was accepted while A kept streaming.
    AcceptedAlongside,
    /// B was accepted and A was cut off.
    Replaced,
    /// B was refused but A was interrupted anyway.
    FirstInterrupted,
    /// B was refused, A completed, but A fell behind real time by a second or more.
    FirstLagged,
    /// The user stopped the check (Ctrl-C, SIGTERM) before it could decide.
    Cancelled,
}

impl DupFinding {
    pub fn passed(self) -> bool {
        self == DupFinding::Refused
    }
    pub fn describe(self) -> &'static str {
        match self {
            DupFinding::Refused => {
                "the second push was refused and the first kept streaming: duplicates are rejected"
            }
            DupFinding::FirstNeverStarted => {
                "the first push never got going, so nothing was tested"
            }
            DupFinding::AcceptedAlongside => {
                "the second push was ACCEPTED while the first kept streaming: two publishers on one URL"
            }
            DupFinding::Replaced => "the second push REPLACED the first (the first was cut off)",
            DupFinding::FirstInterrupted => {
                "the second push was refused, but the first was interrupted anyway"
            }
            DupFinding::FirstLagged => {
                "the second push was refused, but the first fell behind real time by 1 s or more"
            }
            DupFinding::Cancelled => {
                "stopped by the user before the check finished: nothing was decided"
            }
        }
    }
}

/// Pure: what happened to the media, from the two results. A second push
/// the server answered with Publish.Start and then ended within the refusal
/// window was refused, not accepted.
pub fn judge(a: &PublishResult, b: &PublishResult) -> DupFinding {
    if a.cancelled().is_some() || b.cancelled().is_some() {
        return DupFinding::Cancelled;
    }
    let b_kept = b.accepted() && !b.refused_after_start();
    let a_completed = a.accepted() && a.failure().is_none();
    match (a.accepted(), b_kept, a_completed) {
        (false, _, _) => DupFinding::FirstNeverStarted,
        (true, true, true) => DupFinding::AcceptedAlongside,
        (true, true, false) => DupFinding::Replaced,
        (true, false, false) => DupFinding::FirstInterrupted,
        (true, false, true) if a.max_lag >= Duration::from_secs(1) => DupFinding::FirstLagged,
        (true, false, true) => DupFinding::Refused,
    }
}

struct Started(Option<oneshot::Sender<()>>);

impl Observer for Started {
    fn phase(&mut self, phase: Phase, _at: Instant) {
        if phase == Phase::Publish
            && let Some(tx) = self.0.take()
        {
            let _ = tx.send(());
        }
    }
}

/// What the pair did: the finding, the first push and, if it ran, the second.
pub struct PairReport {
    pub finding: DupFinding,
    pub first: Pushed,
    pub second: Option<Pushed>,
}

/// Runs A; once A has streamed past its refusal window (at least a second),
/// runs B to the same URL; waits for A. Waiting out the window keeps A's
/// verdict true: a first push cut by the second is interrupted, not refused.
pub async fn run_pair(
    a: &PreparedPush,
    b: &PreparedPush,
    cancel: &CancellationToken,
) -> PairReport {
    let (tx, rx) = oneshot::channel();
    let first = async {
        let mut obs = Started(Some(tx));
        a.run_observed(cancel, &mut obs, false).await
    };
    let second = async {
        // Err: A ended before Publish.Start.
        rx.await.ok()?;
        let settle = a.config.refusal_window.max(Duration::from_secs(1));
        tokio::select! {
            _ = cancel.cancelled() => return None,
            _ = tokio::time::sleep(settle) => {}
        }
        Some(b.run_observed(cancel, &mut (), true).await)
    };
    let (first, second) = tokio::join!(first, second);
    let finding = match &second {
        Some(b) => judge(&first.result, &b.result),
        None if first.stopped_by_user() => DupFinding::Cancelled,
        None => DupFinding::FirstNeverStarted,
    };
    PairReport {
        finding,
        first,
        second,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::{Ending, Failure, PhaseMarks};

    fn r(accepted: bool, ending: Ending, lag_ms: u64) -> PublishResult {
        let mut marks = PhaseMarks::default();
        if accepted {
            marks.done.push((Phase::Publish, Duration::from_millis(5)));
        }
        PublishResult {
            ending,
            marks,
            statuses: vec![],
            bytes_sent: 0,
            media_ms: 0,
            streamed: Duration::from_secs(10),
            max_lag: Duration::from_millis(lag_ms),
            publish_sent: None,
            stream_bytes: 0,
            planned: None,
            remote_addr: None,
            attempts: vec![],
            forced: None,
            srt: None,
            server_fourcc: None,
            pushed_fourcc: None,
        }
    }

    fn cut() -> Ending {
        Ending::Interrupted {
            failure: Failure::Closed {
                phase: Phase::Streaming,
                after_publish_ms: None,
            },
        }
    }

    fn refused() -> Ending {
        Ending::Failed {
            failure: Failure::Closed {
                phase: Phase::Publish,
                after_publish_ms: Some(1),
            },
        }
    }

    fn refused_after_start() -> Ending {
        Ending::Failed {
            failure: Failure::RefusedAfterStart {
                after_start_ms: 1,
                cause: Box::new(Failure::Closed {
                    phase: Phase::Streaming,
                    after_publish_ms: Some(2),
                }),
            },
        }
    }

    #[test]
    fn judge_table() {
        let ok = r(true, Ending::Completed, 5);
        // issue 10: Publish.Start, then closed 1 ms later, is a refusal.
        assert_eq!(
            judge(&ok, &r(true, refused_after_start(), 0)),
            DupFinding::Refused
        );
        let stopped = |phase| Ending::Cancelled { phase };
        assert_eq!(
            judge(
                &r(true, stopped(Phase::Streaming), 0),
                &r(false, refused(), 0)
            ),
            DupFinding::Cancelled
        );
        assert_eq!(
            judge(&ok, &r(false, stopped(Phase::Handshake), 0)),
            DupFinding::Cancelled,
            "a second push stopped before Publish.Start was not refused"
        );
        assert_eq!(judge(&ok, &r(false, refused(), 0)), DupFinding::Refused);
        assert_eq!(
            judge(&ok, &r(true, Ending::Completed, 0)),
            DupFinding::AcceptedAlongside
        );
        assert_eq!(
            judge(&r(true, cut(), 0), &r(true, Ending::Completed, 0)),
            DupFinding::Replaced
        );
        assert_eq!(
            judge(&r(true, cut(), 0), &r(false, refused(), 0)),
            DupFinding::FirstInterrupted
        );
        assert_eq!(
            judge(&r(false, refused(), 0), &r(false, refused(), 0)),
            DupFinding::FirstNeverStarted
        );
        assert_eq!(
            judge(&r(true, Ending::Completed, 1500), &r(false, refused(), 0)),
            DupFinding::FirstLagged
        );
    }
}
