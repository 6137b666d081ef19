//! Viewer-only runs (`load --viewers K` with a play template and no push
//! target): viewers of streams someone else pushes, started on their own
//! open-model schedule at `--rate`, each playing `--duration` after its first
//! frame. First frame and stalls are measured; latency only if the streams
//! carry stamps.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::aggregate::Aggregator;
use super::runner::{LoadOutput, Workers};
use super::viewer_summary::Viewers;
use super::viewers::{self, ViewerSettings};

/// The streams to watch: index and name of each.
pub struct ViewerOnlyConfig {
    pub streams: Vec<(u64, String)>,
    /// Viewers started per second (all streams together); 0: all at once.
    pub rate: f64,
    pub settings: Arc<ViewerSettings>,
    pub part: Viewers,
    pub workers: usize,
}

/// When viewer `n` of the run is due, at `rate` per second from the start.
pub fn due(n: u64, rate: f64) -> Duration {
    if rate > 0.0 && rate.is_finite() {
        Duration::from_secs_f64(n as f64 / rate)
    } else {
        Duration::ZERO
    }
}

/// Runs the viewers; `cancel` stops them (those not yet started are skipped,
/// those without a first frame are left out).
pub async fn run(cfg: ViewerOnlyConfig, cancel: CancellationToken) -> LoadOutput {
    let began = Instant::now();
    let workers = Workers::start(cfg.workers);
    let per_stream = cfg.settings.per_stream;
    let n_streams = cfg.streams.len() as u64;
    let mut tasks = Vec::new();
    let mut started = 0;
    // Viewer n watches stream n % streams: the streams fill evenly.
    'schedule: for v in 0..per_stream {
        for (k, (index, stream)) in cfg.streams.iter().enumerate() {
            let n = u64::from(v) * n_streams + k as u64;
            let at = began + due(n, cfg.rate);
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break 'schedule,
                _ = tokio::time::sleep_until(at) => {}
            }
            started += 1;
            let url = match cfg.settings.url(*index, stream) {
                Ok(u) => u,
                Err(e) => {
                    tracing::warn!("stream {index}: {e}");
                    continue;
                }
            };
            let fut = viewers::view(
                cfg.settings.clone(),
                url,
                *index,
                v,
                at,
                None,
                cancel.clone(),
            );
            tasks.push(workers.spawn(n as usize, fut));
        }
    }
    let mut aggregator = Aggregator::new();
    aggregator.set_viewers(cfg.part);
    for t in tasks {
        if let Ok(r) = t.await
            && r.measured()
        {
            aggregator.add_viewer(&r);
        }
    }
    drop(workers);
    aggregator.add_viewer_latency(&cfg.settings.latency.take());
    LoadOutput {
        aggregator,
        interrupted_by_user: cancel.is_cancelled(),
        elapsed: began.elapsed(),
        started,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viewers_are_due_at_the_rate() {
        assert_eq!(due(10, 5.0), Duration::from_secs(2));
        assert_eq!(due(10, 0.0), Duration::ZERO);
        assert_eq!(due(10, f64::NAN), Duration::ZERO);
    }
}
