//! Live Prometheus metrics of a load run (`load --metrics-listen`): the
//! runner's counters, outcomes and phase histograms as the exposition
//! formats Prometheus scrapes, and the HTTP endpoint that serves them.
//!
//! Values are read at scrape time: while the run lasts from the live
//! counters and a fold of the records seen so far; once `finish` is given the
//! run's `Summary`, from that summary, so the final scrape says what the JSON
//! report says. Histograms are classic (cumulative `le` buckets, 1 ms to
//! 30 s): native histograms exist only in the protobuf exposition format.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};
use tokio_util::sync::CancellationToken;

use super::aggregate::{Aggregator, CallbackCounts, RunMeta, Summary};
use super::hist::Hist;
use super::record::PublisherRecord;
use super::runner::{Live, Watch};
use crate::classify::Outcome;
use crate::publish::Phase;

/// Upper bounds (seconds) of the latency buckets: RTMP phases take from
/// under a millisecond (loopback) to the 30 s a stalled ingest may need.
pub const BUCKETS_S: [f64; 16] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0,
];

/// The states `pushprobe_publishers` reports, in the order of the progress line.
pub const STATES: [&str; 7] = [
    "scheduled",
    "connecting",
    "publishing",
    "refused",
    "failed",
    "interrupted",
    "finished",
];

/// The kinds `pushprobe_callbacks_total` reports (the JSON report's
/// `callbacks.counts`).
pub const CALLBACK_KINDS: [&str; 6] = [
    "push",
    "interrupt",
    "missing",
    "duplicate",
    "forged",
    "unmatched",
];

/// Reads the callback receiver's counters while the run lasts.
pub type CallbackSource = Box<dyn Fn() -> CallbackCounts + Send + Sync>;

/// The metrics of one load run (one shard). Cheap to share.
pub struct LoadMetrics {
    live: Arc<Live>,
    planned: u64,
    callbacks: Option<CallbackSource>,
    recorder: Arc<Recorder>,
}

/// What the runner tells the metrics (`Live::watch`): phases and records.
#[derive(Debug, Default)]
pub struct Recorder(Mutex<Inner>);

#[derive(Debug, Default)]
struct Inner {
    /// Records seen so far, folded the way the report folds them.
    records: Aggregator,
    /// Phase latencies as they happen (every attempt), from start / schedule.
    phases: BTreeMap<&'static str, Hist>,
    phases_from_schedule: BTreeMap<&'static str, Hist>,
    /// The run's report, once it is known.
    done: Option<Box<Summary>>,
}

impl std::fmt::Debug for LoadMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadMetrics")
            .field("planned", &self.planned)
            .finish_non_exhaustive()
    }
}

impl LoadMetrics {
    /// `recorder` is the watch given to the runner (`Live::watch` of
    /// `live`); `planned`: publishers this shard schedules (duplicates included).
    pub fn new(
        live: Arc<Live>,
        recorder: Arc<Recorder>,
        planned: u64,
        callbacks: Option<CallbackSource>,
    ) -> LoadMetrics {
        LoadMetrics {
            live,
            planned,
            callbacks,
            recorder,
        }
    }

    /// From now on, report what `summary` (the run's JSON report) says.
    pub fn finish(&self, summary: &Summary) {
        if let Ok(mut i) = self.recorder.0.lock() {
            i.done = Some(Box::new(summary.clone()));
        }
    }

    /// A registry with every family of this run, each carrying `shard`
    /// ("INDEX/COUNT", "0/1" for an unsharded run).
    pub fn registry(self: &Arc<Self>, shard: (u32, u32)) -> Registry {
        let mut r = Registry::with_prefix_and_labels(
            "pushprobe",
            [("shard".into(), format!("{}/{}", shard.0, shard.1).into())].into_iter(),
        );
        r.register_collector(Box::new(self.clone()));
        r
    }

    /// What a scrape reports now.
    fn view(&self) -> View {
        let live = &self.live;
        let states = [
            &live.scheduled,
            &live.connecting,
            &live.publishing,
            &live.refused,
            &live.failed,
            &live.interrupted,
            &live.finished,
        ]
        .map(|a| a.load(Relaxed));
        let Ok(inner) = self.recorder.0.lock() else {
            return View::empty(states, self.planned);
        };
        if let Some(s) = &inner.done {
            return View::of_summary(s, states, self.planned, true);
        }
        let mut s = inner.records.summary(RunMeta {
            started_unix: 0,
            duration_s: 0.0,
            target: String::new(),
            shard: None,
            publishers_planned: self.planned,
            interrupted_by_user: false,
        });
        let named = |m: &BTreeMap<&'static str, Hist>| {
            m.iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect()
        };
        s.histograms.phases = named(&inner.phases);
        s.histograms.phases_from_schedule = named(&inner.phases_from_schedule);
        s.bytes_sent = live.bytes.load(Relaxed);
        s.reconnects = live.reconnects.load(Relaxed);
        if let Some(read) = &self.callbacks {
            s.callbacks.counts = read();
        }
        View::of_summary(&s, states, self.planned, false)
    }
}

impl Watch for Recorder {
    fn phase(&self, phase: Phase, from_start: Duration, from_schedule: Duration) {
        if !Phase::TIMED.contains(&phase) {
            return;
        }
        if let Ok(mut i) = self.0.lock() {
            i.phases.entry(phase.name()).or_default().record(from_start);
            i.phases_from_schedule
                .entry(phase.name())
                .or_default()
                .record(from_schedule);
        }
    }

    fn done(&self, record: &PublisherRecord) {
        if let Ok(mut i) = self.0.lock() {
            i.records.add(record);
        }
    }
}

/// One scrape's numbers, whichever source they came from.
struct View {
    states: [u64; 7],
    planned: u64,
    finished: bool,
    /// (outcome, expected refusal?) -> publishers.
    outcomes: Vec<(Outcome, bool, u64)>,
    bytes: u64,
    reconnects: u64,
    callbacks: [u64; 6],
    /// (phase, from) -> latencies.
    phases: Vec<(String, &'static str, Hist)>,
    lag: Hist,
}

impl View {
    fn empty(states: [u64; 7], planned: u64) -> View {
        View {
            states,
            planned,
            finished: false,
            outcomes: Vec::new(),
            bytes: 0,
            reconnects: 0,
            callbacks: [0; 6],
            phases: Vec::new(),
            lag: Hist::new(),
        }
    }

    fn of_summary(s: &Summary, states: [u64; 7], planned: u64, finished: bool) -> View {
        let mut outcomes = Vec::new();
        for o in Outcome::ALL {
            outcomes.push((o, false, s.outcomes.get(&o).copied().unwrap_or(0)));
            let dup = s.expected_refusals.outcomes.get(&o).copied().unwrap_or(0);
            outcomes.push((o, true, dup));
        }
        let c = &s.callbacks.counts;
        let mut phases = Vec::new();
        for (from, m) in [
            ("start", &s.histograms.phases),
            ("schedule", &s.histograms.phases_from_schedule),
        ] {
            for p in Phase::TIMED {
                let h = m.get(p.name()).cloned().unwrap_or_default();
                phases.push((p.name().to_owned(), from, h));
            }
        }
        View {
            states,
            planned,
            finished,
            outcomes,
            bytes: s.bytes_sent,
            reconnects: s.reconnects,
            callbacks: [
                c.push,
                c.interrupt,
                c.missing,
                c.duplicate,
                c.forged,
                c.unmatched,
            ],
            phases,
            lag: s.histograms.lag.clone(),
        }
    }
}

/// Classic buckets of a µs histogram: (upper bound in s, count in that bucket),
/// the sum in seconds and the count. Values are taken at the low end of
/// their HdrHistogram bucket (3 significant digits).
fn buckets(h: &Hist) -> (Vec<(f64, u64)>, f64, u64) {
    let h = h.inner();
    let mut per = vec![0u64; BUCKETS_S.len() + 1];
    let mut sum_us = 0f64;
    for v in h.iter_recorded() {
        let n = v.count_at_value();
        let at_us = h.lowest_equivalent(v.value_iterated_to());
        sum_us += h.median_equivalent(v.value_iterated_to()) as f64 * n as f64;
        let s = at_us as f64 / 1e6;
        let i = BUCKETS_S
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(BUCKETS_S.len());
        per[i] += n;
    }
    let mut out: Vec<(f64, u64)> = BUCKETS_S.iter().copied().zip(per.iter().copied()).collect();
    out.push((f64::INFINITY, per[BUCKETS_S.len()]));
    (out, sum_us / 1e6, h.len())
}

impl Collector for LoadMetrics {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let v = self.view();
        let gauge = |e: &mut DescriptorEncoder, name: &str, help: &str, x: u64| {
            let m = ConstGauge::new(x as i64);
            m.encode(e.encode_descriptor(name, help, None, m.metric_type())?)
        };
        let counter = |e: &mut DescriptorEncoder, name: &str, help: &str, x: u64| {
            let m = ConstCounter::new(x);
            m.encode(e.encode_descriptor(name, help, None, m.metric_type())?)
        };
        {
            let mut f = e.encode_descriptor(
                "publishers",
                "Publishers by state: scheduled, refused, failed, interrupted and finished only grow; connecting and publishing are current.",
                None,
                MetricType::Gauge,
            )?;
            for (state, n) in STATES.iter().zip(v.states) {
                ConstGauge::new(n as i64).encode(f.encode_family(&[("state", *state)])?)?;
            }
        }
        gauge(
            &mut e,
            "publishers_planned",
            "Publishers this shard schedules, deliberate duplicates included.",
            v.planned,
        )?;
        gauge(
            &mut e,
            "run_finished",
            "1 once the run has ended and the values are the report's.",
            u64::from(v.finished),
        )?;
        {
            let mut f = e.encode_descriptor(
                "outcomes",
                "Publishers that ended, by outcome; expected_refusal=\"true\" for deliberate duplicates (--duplicates).",
                None,
                MetricType::Counter,
            )?;
            for (o, dup, n) in &v.outcomes {
                let labels = [
                    ("outcome", o.name()),
                    ("expected_refusal", if *dup { "true" } else { "false" }),
                ];
                ConstCounter::new(*n).encode(f.encode_family(&labels)?)?;
            }
        }
        counter(
            &mut e,
            "sent_bytes",
            "Bytes written to the ingest by all publishers.",
            v.bytes,
        )?;
        counter(
            &mut e,
            "reconnects",
            "Reconnect attempts (--reconnect).",
            v.reconnects,
        )?;
        {
            let mut f = e.encode_descriptor(
                "callbacks",
                "Push callbacks by kind, as in the JSON report's callbacks.counts (missing and unmatched are known once the run ends).",
                None,
                MetricType::Counter,
            )?;
            for (kind, n) in CALLBACK_KINDS.iter().zip(v.callbacks) {
                ConstCounter::new(n).encode(f.encode_family(&[("kind", *kind)])?)?;
            }
        }
        {
            let mut f = e.encode_descriptor(
                "phase",
                "Time until each phase of a push completed (publish = NetStream.Publish.Start), from the publisher's actual start (from=\"start\") or from its scheduled start (from=\"schedule\").",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?;
            for (phase, from, h) in &v.phases {
                let (b, sum, count) = buckets(h);
                f.encode_family(&[("phase", phase.as_str()), ("from", *from)])?
                    .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                        sum, count, &b, None,
                    )?;
            }
        }
        {
            let (b, sum, count) = buckets(&v.lag);
            let mut f = e.encode_descriptor(
                "lag",
                "Largest delay of a media message behind real time, one value per publisher that reached Publish.Start (recorded when the publisher ends).",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?;
            f.encode_histogram::<prometheus_client::encoding::NoLabelSet>(sum, count, &b, None)?;
        }
        Ok(())
    }
}

/// `Content-Type` of OpenMetrics text, which Prometheus asks for first.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Encodes `registry` as OpenMetrics text when `accept` asks for it, else as
/// the Prometheus text format 0.0.4.
pub fn render(
    registry: &Registry,
    accept: &str,
) -> Result<(String, &'static str), std::fmt::Error> {
    let mut body = String::new();
    if accept.contains("application/openmetrics-text") {
        prometheus_client::encoding::text::encode(&mut body, registry)?;
        Ok((body, OPENMETRICS))
    } else {
        prometheus_client::encoding::prometheus_text::encode(&mut body, registry)?;
        Ok((
            body,
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        ))
    }
}

/// `GET /metrics` over `registry`; `GET /` says where the metrics are.
pub fn router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .route(
            "/",
            get(|| async { "pushprobe load: metrics at /metrics\n" }),
        )
        .with_state(registry)
}

async fn scrape(State(registry): State<Arc<Registry>>, headers: HeaderMap) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match render(&registry, accept) {
        Ok((body, ctype)) => ([(header::CONTENT_TYPE, ctype)], body).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n").into_response(),
    }
}

/// Serves `router(registry)` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    registry: Arc<Registry>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(registry))
        .with_graceful_shutdown(shutdown)
        .await
}

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot listen for metrics on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// The `/metrics` endpoint of a run, served in the background.
pub struct MetricsServer {
    addr: SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl MetricsServer {
    /// Binds `addr` and serves the metrics of `metrics` for shard `(index, count)`.
    pub async fn start(
        addr: SocketAddr,
        metrics: &Arc<LoadMetrics>,
        shard: (u32, u32),
    ) -> Result<MetricsServer, MetricsError> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| MetricsError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| MetricsError::Bind { addr, source })?;
        let registry = Arc::new(metrics.registry(shard));
        let stop = CancellationToken::new();
        let s = stop.clone();
        let task = tokio::spawn(serve(
            listener,
            registry,
            async move { s.cancelled().await },
        ));
        Ok(MetricsServer { addr, stop, task })
    }

    /// The address bound (port 0 resolved).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Keeps serving for `linger` (or until `cancel`), then stops; open
    /// scrapes get up to 5 s to finish.
    pub async fn linger(self, linger: Duration, cancel: &CancellationToken) {
        tokio::select! {
            _ = cancel.cancelled() => {}
            _ = tokio::time::sleep(linger) => {}
        }
        self.stop.cancel();
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(5), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(index: u64, outcome: Outcome, publish_ms: Option<u64>) -> PublisherRecord {
        PublisherRecord {
            index,
            stream: format!("load-{index}"),
            expected_refusal: false,
            outcome,
            start_delay: Duration::from_millis(2),
            marks: publish_ms
                .map(|m| vec![(Phase::Publish, Duration::from_millis(m))])
                .unwrap_or_default(),
            bytes_sent: 1000,
            max_lag: Duration::from_millis(3),
            streamed: Duration::from_secs(1),
            reconnects: 0,
            addrs: Default::default(),
            srt: None,
        }
    }

    fn scrape_text(m: &Arc<LoadMetrics>) -> String {
        render(&m.registry((1, 4)), "").unwrap().0
    }

    #[test]
    fn buckets_are_cumulative_ready_and_count_every_value() {
        let mut h = Hist::new();
        for ms in [0, 1, 2, 40, 31_000] {
            h.record(Duration::from_millis(ms));
        }
        let (b, sum, count) = buckets(&h);
        assert_eq!(count, 5);
        assert_eq!(b.len(), BUCKETS_S.len() + 1);
        assert_eq!(b.iter().map(|x| x.1).sum::<u64>(), 5);
        // 0 ms and 1 ms fall in le=0.001, 2 ms in le=0.0025, 40 ms in le=0.05.
        assert_eq!((b[0].1, b[1].1, b[5].1), (2, 1, 1));
        assert_eq!(b.last().unwrap(), &(f64::INFINITY, 1));
        assert!((sum - 31.043).abs() < 0.05, "{sum}");
    }

    #[test]
    fn final_scrape_says_what_the_summary_says() {
        let live = Arc::new(Live::default());
        live.bytes.store(123, Relaxed);
        let w = Arc::new(Recorder::default());
        let m = Arc::new(LoadMetrics::new(live, w.clone(), 3, None));
        w.done(&record(0, Outcome::Accepted, Some(12)));
        w.done(&record(1, Outcome::BadSecret, None));
        let text = scrape_text(&m);
        assert!(
            text.contains("pushprobe_sent_bytes_total{shard=\"1/4\"} 123"),
            "{text}"
        );
        assert!(text.contains("pushprobe_run_finished{shard=\"1/4\"} 0"));
        assert!(text.contains(
            "pushprobe_outcomes_total{shard=\"1/4\",outcome=\"bad_secret\",expected_refusal=\"false\"} 1"
        ));
        let mut agg = Aggregator::new();
        agg.add(&record(0, Outcome::Accepted, Some(12)));
        agg.add(&record(1, Outcome::BadSecret, None));
        agg.add(&record(2, Outcome::Accepted, Some(30)));
        let mut summary = agg.summary(RunMeta {
            started_unix: 0,
            duration_s: 1.0,
            target: String::new(),
            shard: Some(crate::load::targets::Shard { index: 1, count: 4 }),
            publishers_planned: 3,
            interrupted_by_user: false,
        });
        summary.callbacks.counts.push = 2;
        m.finish(&summary);
        let text = scrape_text(&m);
        assert!(
            text.contains("pushprobe_sent_bytes_total{shard=\"1/4\"} 3000"),
            "{text}"
        );
        assert!(text.contains("pushprobe_run_finished{shard=\"1/4\"} 1"));
        assert!(text.contains(
            "pushprobe_outcomes_total{shard=\"1/4\",outcome=\"accepted\",expected_refusal=\"false\"} 2"
        ));
        assert!(text.contains("pushprobe_callbacks_total{shard=\"1/4\",kind=\"push\"} 2"));
        assert!(text.contains(
            "pushprobe_phase_seconds_count{shard=\"1/4\",phase=\"publish\",from=\"start\"} 2"
        ));
        assert!(text.contains(
            "pushprobe_phase_seconds_bucket{shard=\"1/4\",phase=\"publish\",from=\"start\",le=\"0.025\"} 1"
        ), "{text}");
    }

    #[test]
    fn live_phases_come_from_the_watch() {
        let w = Arc::new(Recorder::default());
        let m = Arc::new(LoadMetrics::new(
            Arc::new(Live::default()),
            w.clone(),
            1,
            None,
        ));
        w.phase(
            Phase::Tcp,
            Duration::from_millis(3),
            Duration::from_millis(4),
        );
        w.phase(
            Phase::Streaming,
            Duration::from_secs(9),
            Duration::from_secs(9),
        );
        let text = scrape_text(&m);
        assert!(text.contains(
            "pushprobe_phase_seconds_count{shard=\"1/4\",phase=\"tcp\",from=\"schedule\"} 1"
        ));
        assert!(!text.contains("phase=\"streaming\""));
    }

    #[test]
    fn openmetrics_when_asked() {
        let m = Arc::new(LoadMetrics::new(
            Arc::new(Live::default()),
            Arc::default(),
            1,
            None,
        ));
        let (body, ctype) = render(&m.registry((0, 1)), "application/openmetrics-text").unwrap();
        assert!(ctype.starts_with("application/openmetrics-text"));
        assert!(body.ends_with("# EOF\n"), "{body}");
    }
}
