//! The load runner: one small task per publisher started on an open-model
//! schedule, live counters for progress, a once-a-second timeline, and one
//! collector task that folds records and hands callbacks to the `matcher`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::aggregate::Aggregator;
use super::by_address::PublisherAddrs;
use super::matcher::Matcher;
use super::reconnect::{self, Jitter, Next};
use super::record::{PublisherRecord, Sample};
use super::targets::Slot;
use super::viewer_summary::Viewers;
use super::viewers::{self as viewing, ViewerRecord, ViewerSettings};
use crate::callback::{Received, ReceiverState};
use crate::classify::{self, Outcome};
use crate::media::MediaPlan;
use crate::probe::local_facts;
use crate::publish::{self, Ending, Observer, Phase, PublishConfig};
use crate::sign::{Keys, PushUrl};

/// Counters the progress display and the timeline read.
#[derive(Debug, Default)]
pub struct Live {
    pub scheduled: AtomicU64,
    pub connecting: AtomicU64,
    pub publishing: AtomicU64,
    pub refused: AtomicU64,
    pub failed: AtomicU64,
    pub interrupted: AtomicU64,
    pub finished: AtomicU64,
    /// Reconnect attempts so far (`--reconnect`).
    pub reconnects: AtomicU64,
    pub bytes: AtomicU64,
    pub callbacks: AtomicU64,
    /// Time to Publish.Start from the actual start, µs.
    pub to_publish: Mutex<Option<Histogram<u64>>>,
    /// Told of every phase and every finished publisher (`--metrics-listen`).
    pub watch: Option<Arc<dyn Watch>>,
}

/// Sees a run as it goes: each phase a publisher reaches and each record.
pub trait Watch: std::fmt::Debug + Send + Sync {
    /// A deliberate duplicate's phases are not reported (the report leaves
    /// them out of the phase histograms too).
    fn phase(&self, phase: Phase, from_start: Duration, from_schedule: Duration);
    fn done(&self, record: &PublisherRecord);
}

impl Live {
    /// (p50, p99) time to Publish.Start so far, in ms.
    pub fn publish_percentiles(&self) -> Option<(f64, f64)> {
        let h = self.to_publish.lock().ok()?;
        let h = h.as_ref()?;
        if h.is_empty() {
            return None;
        }
        Some((
            h.value_at_quantile(0.5) as f64 / 1000.0,
            h.value_at_quantile(0.99) as f64 / 1000.0,
        ))
    }
}

/// Everything a run needs, validated.
pub struct LoadConfig {
    pub slots: Vec<Slot>,
    /// URL of each slot (same order as `slots`).
    pub urls: Vec<PushUrl>,
    pub keys: Keys,
    pub plan: Arc<MediaPlan>,
    pub duration: Duration,
    pub timeout: Duration,
    pub chunk_size: u32,
    pub insecure: bool,
    pub tick: Duration,
    /// See [`PublishConfig::refusal_window`].
    pub refusal_window: Duration,
    /// Resolver and address families (`-4`/`-6`).
    pub dial: Arc<crate::publish::dial::DialOptions>,
    /// Receiver state and its event stream, when callbacks are measured.
    pub callbacks: Option<(ReceiverState, mpsc::UnboundedReceiver<Received>)>,
    pub callback_grace: Duration,
    /// Single-threaded runtimes the publishers are spread over (one per core).
    pub workers: usize,
    /// Reconnect after an interruption or an unreachable ingest, with
    /// jittered exponential backoff, until the publisher's duration is used up.
    pub reconnect: bool,
    /// Validity of a URL re-signed before reconnecting.
    pub expires_in: Duration,
    /// The fixture as TS and the latency, for `srt://` publishers.
    pub srt: Option<crate::srt::publish::SrtMedia>,
    /// Viewers of each accepted publisher (`--viewers`), and the report part
    /// they fold into.
    pub viewers: Option<(Arc<ViewerSettings>, Viewers)>,
}

/// What a run returns: the folded aggregate and how it ended.
pub struct LoadOutput {
    pub aggregator: Aggregator,
    pub interrupted_by_user: bool,
    pub elapsed: Duration,
    pub started: usize,
}

enum Event {
    Started {
        slot: usize,
        at: Instant,
    },
    Done {
        slot: usize,
        record: PublisherRecord,
        started: Option<Instant>,
        closed: Instant,
    },
    /// A publisher's viewers, sent just before its `Done`.
    Viewers(Vec<ViewerRecord>),
    Sample(Sample),
}

struct LiveObserver {
    live: Arc<Live>,
    events: mpsc::UnboundedSender<Event>,
    slot: usize,
    start: Instant,
    scheduled: Instant,
    duplicate: bool,
    /// This publisher's viewers, started at its first Publish.Start.
    viewers: Option<Box<ViewerLaunch>>,
}

/// The viewers of one publisher: what they need to start, then their tasks.
struct ViewerLaunch {
    settings: Arc<ViewerSettings>,
    index: u64,
    stream: String,
    cancel: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<ViewerRecord>>,
}

impl ViewerLaunch {
    /// Starts the viewers on the current runtime, due at `at` (Publish.Start);
    /// they stop a little before the publisher's `duration` is over.
    fn start(&mut self, at: Instant, duration: Duration) {
        if !self.tasks.is_empty() {
            return;
        }
        let end = at + duration.saturating_sub(viewing::end_margin(duration));
        let s = &self.settings;
        match s.url(self.index, &self.stream) {
            Ok(url) => {
                for v in 0..s.per_stream {
                    let fut = viewing::view(
                        s.clone(),
                        url.clone(),
                        self.index,
                        v,
                        at,
                        Some(end),
                        self.cancel.clone(),
                    );
                    self.tasks.push(tokio::spawn(fut));
                }
            }
            Err(e) => tracing::warn!("stream {}: {e}", self.index),
        }
    }

    /// Waits for the viewers' records.
    async fn finish(self) -> Vec<ViewerRecord> {
        let mut out = Vec::with_capacity(self.tasks.len());
        for t in self.tasks {
            if let Ok(r) = t.await {
                out.push(r);
            }
        }
        out
    }
}

impl Observer for LiveObserver {
    fn phase(&mut self, phase: Phase, at: Instant) {
        if let Some(w) = &self.live.watch
            && !self.duplicate
        {
            w.phase(
                phase,
                at.saturating_duration_since(self.start),
                at.saturating_duration_since(self.scheduled),
            );
        }
        if phase == Phase::Publish {
            self.live.connecting.fetch_sub(1, Relaxed);
            self.live.publishing.fetch_add(1, Relaxed);
            if let Ok(mut h) = self.live.to_publish.lock()
                && let Some(h) = h.as_mut()
            {
                let _ = h.record(at.saturating_duration_since(self.start).as_micros() as u64);
            }
            if let Some(v) = &mut self.viewers {
                v.start(at, v.settings.duration);
            }
            let _ = self.events.send(Event::Started {
                slot: self.slot,
                at,
            });
        }
    }
    fn sent(&mut self, bytes: u64) {
        self.live.bytes.fetch_add(bytes, Relaxed);
    }
}

/// Runs the load. `cancel` (Ctrl-C) stops streaming publishers cleanly, skips
/// those not started and leaves out those still connecting (their outcome is
/// unknown); what was measured is still returned.
pub async fn run(cfg: LoadConfig, live: Arc<Live>, cancel: CancellationToken) -> LoadOutput {
    let began = Instant::now();
    if let Ok(mut h) = live.to_publish.lock() {
        *h = Histogram::new(3).ok();
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let (receiver_state, cb_events) = match cfg.callbacks {
        Some((s, r)) => (Some(s), Some(r)),
        None => (None, None),
    };
    let streams: Vec<String> = cfg.urls.iter().map(|u| u.stream.clone()).collect();
    let (viewer_settings, viewer_part) = match cfg.viewers {
        Some((s, v)) => (Some(s), Some(v)),
        None => (None, None),
    };
    let collector = tokio::spawn(collect(rx, cb_events, streams, live.clone(), viewer_part));
    let sampler = tokio::spawn(sample(live.clone(), tx.clone(), began));

    let settings = Arc::new(PublisherSettings {
        plan: cfg.plan,
        keys: cfg.keys,
        duration: cfg.duration,
        timeout: cfg.timeout,
        chunk_size: cfg.chunk_size,
        insecure: cfg.insecure,
        dial: cfg.dial,
        tick: cfg.tick,
        refusal_window: cfg.refusal_window,
        reconnect: cfg.reconnect,
        expires_in: cfg.expires_in,
        srt: cfg.srt,
        viewers: viewer_settings.clone(),
    });
    let workers = Workers::start(cfg.workers);
    let mut tasks = Vec::with_capacity(cfg.slots.len());
    let mut started = 0;
    for (i, (slot, url)) in cfg.slots.iter().zip(cfg.urls).enumerate() {
        let due = began + slot.at;
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep_until(due) => {}
        }
        started += 1;
        live.scheduled.fetch_add(1, Relaxed);
        live.connecting.fetch_add(1, Relaxed);
        let task = PublisherTask {
            slot_index: i,
            slot: *slot,
            url,
            scheduled: due,
        };
        let fut = task.run(settings.clone(), live.clone(), tx.clone(), cancel.clone());
        tasks.push(workers.spawn(i, fut));
    }
    for t in tasks {
        let _ = t.await;
    }
    drop(workers);
    sampler.abort();
    // Callback grace: wait for outstanding callbacks, unless interrupted.
    let grace_end = Instant::now()
        + if cancel.is_cancelled() {
            Duration::ZERO
        } else {
            cfg.callback_grace
        };
    let _ = tx.send(Event::Sample(snapshot(&live, began, 0)));
    drop(tx);
    let (mut aggregator, mut matcher) = collector.await.unwrap_or_default();
    if let Some(v) = &viewer_settings {
        aggregator.add_viewer_latency(&v.latency.take());
    }
    if let Some(state) = &receiver_state {
        // Late callbacks still arrive on the channel the collector owned;
        // it handed its receiver back inside `matcher`.
        matcher.wait(grace_end, &cancel).await;
        let c = state.counters();
        // A receiver ran: its counts, zeros included, are measurements.
        aggregator.set_callback_counts(matcher.counts(&c));
        for (kind, d) in matcher.latencies.drain(..) {
            aggregator.add_callback_latency(kind, d);
        }
    }
    LoadOutput {
        aggregator,
        interrupted_by_user: cancel.is_cancelled(),
        elapsed: began.elapsed(),
        started,
    }
}

/// Publisher tasks run on one single-threaded runtime per core: no work
/// stealing, no cross-thread wake-ups on the media path.
pub(super) struct Workers {
    handles: Vec<tokio::runtime::Handle>,
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
}

impl Workers {
    pub(super) fn start(n: usize) -> Workers {
        let mut handles = Vec::new();
        let mut stops = Vec::new();
        for i in 0..n.max(1) {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::warn!("cannot start worker runtime {i}: {e}; using fewer");
                    continue;
                }
            };
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            handles.push(rt.handle().clone());
            stops.push(stop);
            let spawned = std::thread::Builder::new()
                .name(format!("publishers-{i}"))
                .spawn(move || {
                    rt.block_on(async move {
                        let _ = stopped.await;
                    })
                });
            if spawned.is_err() {
                handles.pop();
                stops.pop();
            }
        }
        Workers { handles, stops }
    }

    /// Spawns on worker `i % n`, or on the caller's runtime when none started.
    pub(super) fn spawn<F, T>(&self, i: usize, fut: F) -> tokio::task::JoinHandle<T>
    where
        F: std::future::Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        match self.handles.len() {
            0 => tokio::spawn(fut),
            n => self.handles[i % n].spawn(fut),
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for s in self.stops.drain(..) {
            let _ = s.send(());
        }
    }
}

/// What every publisher of the run uses alike: the media, the keys, the
/// timings and the connection options.
struct PublisherSettings {
    plan: Arc<MediaPlan>,
    keys: Keys,
    duration: Duration,
    timeout: Duration,
    chunk_size: u32,
    insecure: bool,
    dial: Arc<crate::publish::dial::DialOptions>,
    tick: Duration,
    refusal_window: Duration,
    reconnect: bool,
    expires_in: Duration,
    srt: Option<crate::srt::publish::SrtMedia>,
    viewers: Option<Arc<ViewerSettings>>,
}

/// One publisher of the run: its slot in the schedule and its URL.
struct PublisherTask {
    slot_index: usize,
    slot: Slot,
    url: PushUrl,
    scheduled: Instant,
}

/// What one attempt of a publisher measured, for its record.
struct Attempt {
    start: Instant,
    marks: Vec<(Phase, Duration)>,
}

impl PublisherTask {
    /// One publisher: one push, or with `--reconnect` a push and the
    /// reconnects after it, folded into one record.
    async fn run(
        self,
        settings: Arc<PublisherSettings>,
        live: Arc<Live>,
        events: mpsc::UnboundedSender<Event>,
        cancel: CancellationToken,
    ) {
        let reconnecting = settings.reconnect && !self.slot.duplicate;
        let mut url = self.url.clone();
        let mut jitter = Jitter::new(std::hash::BuildHasher::hash_one(
            &std::hash::RandomState::new(),
            self.slot.index,
        ));
        // Until the first Publish.Start, the publisher gives up retrying one
        // duration after its start; after it, one duration after that.
        let mut deadline = Instant::now() + settings.duration;
        let mut first_publish: Option<Instant> = None;
        let mut kept: Option<Attempt> = None;
        let mut last = None;
        let (mut bytes_sent, mut streamed, mut max_lag) = (0, Duration::ZERO, Duration::ZERO);
        let mut srt: Option<Box<crate::load::summary::SrtTotals>> = None;
        let (mut reconnects, mut failures_in_a_row) = (0u32, 0u32);
        // Boxed: it lives across every await of the task (issue 6 budget).
        let mut addrs = Box::<PublisherAddrs>::default();
        let mut outcome;
        let mut viewers = match &settings.viewers {
            Some(v) if !self.slot.duplicate => Some(Box::new(ViewerLaunch {
                settings: v.clone(),
                index: self.slot.index,
                stream: self.url.stream.clone(),
                cancel: cancel.clone(),
                tasks: Vec::new(),
            })),
            _ => None,
        };
        loop {
            let start = Instant::now();
            let mut cfg = PublishConfig::new(url.clone());
            cfg.timeout = settings.timeout;
            cfg.duration = Some(match first_publish {
                Some(_) => deadline.saturating_duration_since(start),
                None => settings.duration,
            });
            cfg.chunk_size = settings.chunk_size;
            cfg.insecure = settings.insecure;
            cfg.publisher_id = self.slot.index as u32;
            cfg.dial = if settings.dial.spreads() {
                Arc::new(settings.dial.rotated(self.slot.index))
            } else {
                settings.dial.clone()
            };
            cfg.tick = settings.tick;
            cfg.refusal_window = settings.refusal_window;
            cfg.start_index = settings.plan.start_index(self.slot.index);
            if url.scheme == crate::sign::Scheme::Srt {
                cfg.srt = settings.srt.clone();
            }
            let mut obs = LiveObserver {
                live: live.clone(),
                events: events.clone(),
                slot: self.slot_index,
                start,
                scheduled: self.scheduled,
                duplicate: self.slot.duplicate,
                viewers: viewers.take(),
            };
            // The result is dropped at the end of this block, before the
            // backoff's await: the task future stays small (issue 6).
            let attempt = {
                let result = publish::publish(&cfg, &settings.plan, &cancel, &mut obs).await;
                viewers = obs.viewers.take();
                let facts = local_facts(
                    &cfg.url,
                    &settings.keys,
                    crate::clock::now_unix(),
                    self.slot.duplicate,
                );
                outcome = classify::classify(&result, &facts).outcome;
                if !result.accepted() && matches!(result.ending, Ending::Cancelled { .. }) {
                    // Stopped by the user before Publish.Start: we cannot tell
                    // what the ingest would have said, so it is left out of the
                    // counts (a single push says `cancelled`).
                    live.connecting.fetch_sub(1, Relaxed);
                    if first_publish.is_none() {
                        live.finished.fetch_add(1, Relaxed);
                        if let Some(v) = viewers {
                            // Its viewers never started: nothing to wait for.
                            drop(Box::pin(v.finish()).await);
                        }
                        return; // not measured
                    }
                    // An earlier attempt was accepted, then cut; the user stopped
                    // the reconnect.
                    outcome = Outcome::Interrupted;
                    break;
                }
                if result.accepted() {
                    live.publishing.fetch_sub(1, Relaxed);
                } else {
                    live.connecting.fetch_sub(1, Relaxed);
                }
                addrs.remote = result.remote_addr.or(addrs.remote);
                addrs.failed.extend(
                    result
                        .attempts
                        .iter()
                        .filter(|a| a.result.is_failure())
                        .map(|a| a.addr),
                );
                bytes_sent += result.bytes_sent;
                streamed += result.streamed;
                if let Some(s) = &result.srt {
                    let mut t = crate::load::summary::SrtTotals::of(s);
                    t.publishers = u64::from(srt.is_none());
                    srt.get_or_insert_default().add(&t);
                }
                max_lag = max_lag.max(result.max_lag);
                Attempt {
                    start,
                    marks: result.marks.done,
                }
            };
            if let Some(p) = attempt.marks.iter().find(|(p, _)| *p == Phase::Publish) {
                if first_publish.is_none() {
                    first_publish = Some(start + p.1);
                    deadline = start + p.1 + settings.duration;
                    kept = Some(attempt);
                } else {
                    last = Some(attempt);
                }
                failures_in_a_row = 0;
            } else {
                last = Some(attempt);
            }
            if !reconnecting || cancel.is_cancelled() || !reconnect::retryable(outcome) {
                break;
            }
            match reconnect::before_retry(
                &url,
                outcome == Outcome::ExpiredUrl,
                &settings.keys,
                crate::clock::now_unix(),
                settings.expires_in,
            ) {
                Next::Same => {}
                Next::Resigned(u) => url = u,
                Next::Expired => {
                    outcome = Outcome::ExpiredUrl;
                    warn_expired_once(&url);
                    break;
                }
            }
            let wake = Instant::now() + reconnect::backoff(failures_in_a_row, jitter.sample());
            failures_in_a_row = failures_in_a_row.saturating_add(1);
            if wake >= deadline {
                break;
            }
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep_until(wake) => {}
            }
            reconnects += 1;
            live.reconnects.fetch_add(1, Relaxed);
            live.connecting.fetch_add(1, Relaxed);
        }
        let closed = Instant::now();
        match outcome {
            Outcome::Accepted => {}
            Outcome::Interrupted => {
                live.interrupted.fetch_add(1, Relaxed);
            }
            o if o.step().is_some_and(|s| s >= 3) || o == Outcome::Refused => {
                live.refused.fetch_add(1, Relaxed);
            }
            _ => {
                live.failed.fetch_add(1, Relaxed);
            }
        }
        live.finished.fetch_add(1, Relaxed);
        // Phase marks of the first accepted attempt (measured from the
        // schedule, so time lost retrying shows), else of the last one.
        let shown = kept.or(last).expect("at least one attempt ran");
        let record = PublisherRecord {
            index: self.slot.index,
            stream: self.url.stream.clone(),
            expected_refusal: self.slot.duplicate,
            outcome,
            start_delay: shown.start.saturating_duration_since(self.scheduled),
            marks: shown.marks,
            bytes_sent,
            max_lag,
            streamed,
            reconnects,
            addrs: *addrs,
            srt,
        };
        if let Some(v) = viewers {
            // Boxed: the task future stays small (issue 6 budget).
            let _ = events.send(Event::Viewers(Box::pin(v.finish()).await));
        }
        let _ = events.send(Event::Done {
            slot: self.slot_index,
            record,
            started: first_publish,
            closed,
        });
    }
}

/// Says once per process why publishers stopped reconnecting on expiry.
fn warn_expired_once(url: &PushUrl) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        tracing::warn!(
            "txTime of {} has passed and no push key at hand signs it: publishers stop instead of reconnecting (set PUSHPROBE_KEY to re-sign, or sign with a longer --expires-in)",
            url.redacted()
        );
    });
}

fn snapshot(live: &Live, began: Instant, bytes_delta: u64) -> Sample {
    Sample {
        t_s: began.elapsed().as_secs_f64(),
        publishing: live.publishing.load(Relaxed),
        failed: live.failed.load(Relaxed)
            + live.refused.load(Relaxed)
            + live.interrupted.load(Relaxed),
        bitrate_bps: bytes_delta * 8,
    }
}

/// Once a second: a timeline sample with the bitrate over that second.
async fn sample(live: Arc<Live>, tx: mpsc::UnboundedSender<Event>, began: Instant) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut last = 0;
    loop {
        tick.tick().await;
        let bytes = live.bytes.load(Relaxed);
        let _ = tx.send(Event::Sample(snapshot(&live, began, bytes - last)));
        last = bytes;
    }
}

/// The collector: folds records into the aggregator and matches callbacks.
async fn collect(
    mut rx: mpsc::UnboundedReceiver<Event>,
    mut callbacks: Option<mpsc::UnboundedReceiver<Received>>,
    streams: Vec<String>,
    live: Arc<Live>,
    viewers: Option<Viewers>,
) -> (Aggregator, Matcher) {
    let mut agg = Aggregator::new();
    if let Some(v) = viewers {
        agg.set_viewers(v);
    }
    let mut m = Matcher::new(streams);
    loop {
        let cb = async {
            match callbacks.as_mut() {
                Some(c) => c.recv().await,
                None => std::future::pending().await,
            }
        };
        // Publisher events first: a publisher's Started is queued before it
        // sends the media that makes the ingest call back, so draining them
        // first means a callback never finds its push not yet started.
        tokio::select! {
            biased;
            e = rx.recv() => match e {
                None => break,
                Some(Event::Started { slot, at }) => m.started(slot, at),
                Some(Event::Done { slot, record, started, closed }) => {
                    m.closed(slot, started, closed);
                    if let Some(w) = &live.watch {
                        w.done(&record);
                    }
                    agg.add(&record);
                }
                Some(Event::Sample(s)) => agg.add_sample(s),
                Some(Event::Viewers(viewers)) => {
                    for v in viewers.iter().filter(|v| v.measured()) {
                        agg.add_viewer(v);
                    }
                }
            },
            r = cb => match r {
                Some(r) => {
                    live.callbacks.fetch_add(1, Relaxed);
                    m.on_callback(r);
                }
                None => callbacks = None,
            },
        }
    }
    m.events = callbacks;
    (agg, m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::callback::{CallbackEvent, EVENT_PUSH};

    fn push_callback(stream: &str) -> Received {
        Received {
            event: CallbackEvent {
                stream_id: stream.to_owned(),
                event_type: Some(EVENT_PUSH),
                sequence: "seq-1".to_owned(),
                ..CallbackEvent::default()
            },
            arrived: std::time::Instant::now(),
            duplicate: false,
        }
    }

    /// Regression (issue 5): with both queues ready, the collector could take
    /// a push callback before the Started event queued ahead of it, count it
    /// unmatched and then wait out the grace for a callback it had dropped.
    #[tokio::test]
    async fn a_callback_behind_its_started_event_is_matched() {
        for _ in 0..32 {
            let (tx, rx) = mpsc::unbounded_channel();
            let (cb_tx, cb_rx) = mpsc::unbounded_channel();
            tx.send(Event::Started {
                slot: 0,
                at: Instant::now(),
            })
            .unwrap();
            cb_tx.send(push_callback("load-0")).unwrap();
            drop(tx);
            let live = Arc::new(Live::default());
            let (_, mut m) = collect(rx, Some(cb_rx), vec!["load-0".to_owned()], live, None).await;
            m.wait(
                Instant::now() + Duration::from_secs(1),
                &CancellationToken::new(),
            )
            .await;
            assert_eq!((m.unmatched, m.missing()), (0, 0));
            assert_eq!(m.latencies.len(), 1);
        }
    }

    /// Issue 6: every streaming publisher carries its task's future; keep it
    /// small so 10,000 publishers fit in 8 KB each all told.
    #[test]
    fn publisher_future_stays_small() {
        let plan = crate::media::MediaPlan::new(&crate::flv::default_fixture(), 4096);
        let url = crate::sign::PushUrl::parse("rtmp://127.0.0.1:9/live/s").unwrap();
        let cfg = crate::publish::PublishConfig::new(url);
        let cancel = tokio_util::sync::CancellationToken::new();
        let mut obs = ();
        let f = crate::publish::publish(&cfg, &plan, &cancel, &mut obs);
        let size = std::mem::size_of_val(&f);
        assert!(size <= 1536, "publish future grew to {size} bytes");
        // The whole task: one publisher with its reconnect loop.
        let task = PublisherTask {
            slot_index: 0,
            slot: Slot {
                index: 0,
                at: Duration::ZERO,
                duplicate: false,
            },
            url: cfg.url.clone(),
            scheduled: Instant::now(),
        };
        let settings = Arc::new(PublisherSettings {
            plan: plan.clone(),
            keys: Keys::default(),
            duration: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            chunk_size: 4096,
            insecure: false,
            dial: Default::default(),
            tick: Duration::from_millis(200),
            refusal_window: crate::publish::REFUSAL_WINDOW,
            reconnect: false,
            expires_in: Duration::from_secs(60),
            srt: None,
            viewers: None,
        });
        let (tx, _rx) = mpsc::unbounded_channel();
        let task = task.run(settings, Arc::new(Live::default()), tx, cancel.clone());
        let size = std::mem::size_of_val(&task);
        // 2736 bytes with the viewers' launch handle (issue 13; 2560 before);
        // 3016 with the SRT engine's config and stats and the codec evidence
        // in the held PublishResult (issues 14, 17); 2904 with those two boxed.
        assert!(size <= 3072, "publisher task future grew to {size} bytes");
    }
}
