//! No leak (issue 7): after 1,000 short pushes in one process against the
//! embedded ingest, open file descriptors and resident memory are back near
//! where they started. Alone in its test binary so nothing else moves them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pushprobe::ingest::{self, IngestConfig};
use pushprobe::media::MediaPlan;
use pushprobe::publish::{self, PublishConfig};
use pushprobe::sign::PushUrl;
use tokio_util::sync::CancellationToken;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn vm_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// `count` pushes of 200 ms, `at_once` at a time; every one must be accepted.
async fn pushes(addr: std::net::SocketAddr, plan: &Arc<MediaPlan>, from: u32, count: u32) {
    const AT_ONCE: u32 = 50;
    for batch in (from..from + count).step_by(AT_ONCE as usize) {
        let mut set = tokio::task::JoinSet::new();
        for i in batch..(batch + AT_ONCE).min(from + count) {
            let url = PushUrl::parse(&format!("rtmp://{addr}/live/leak{i}")).unwrap();
            let mut cfg = PublishConfig::new(url);
            cfg.duration = Some(Duration::from_millis(200));
            cfg.timeout = Duration::from_secs(5);
            let plan = plan.clone();
            set.spawn(async move {
                let r = publish::publish(&cfg, &plan, &CancellationToken::new(), &mut ()).await;
                assert!(r.accepted(), "push {i}: {:?}", r.ending);
            });
        }
        while let Some(r) = set.join_next().await {
            r.unwrap();
        }
    }
}

/// Waits until the ingest has let go of every connection, then until the
/// number of open descriptors holds still (sockets close just after their
/// session leaves the registry) for 10 polls of 20 ms. Bounded: 30 s each,
/// a bound against hangs, not a speed claim.
async fn settle(ingest: &ingest::IngestHandle) {
    let bound = Duration::from_secs(30);
    let began = Instant::now();
    while ingest.state().registry().live_count() > 0 {
        assert!(
            began.elapsed() < bound,
            "{} streams still live after {bound:?}",
            ingest.state().registry().live_count()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let began = Instant::now();
    let (mut last, mut still) = (open_fds(), 0);
    while still < 10 && began.elapsed() < bound {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = open_fds();
        if now == last {
            still += 1;
        } else {
            (last, still) = (now, 0);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_short_pushes_leave_no_fds_or_memory_behind() {
    let ingest = ingest::spawn(IngestConfig::default()).await.unwrap();
    let plan = MediaPlan::new(&pushprobe::flv::default_fixture(), 4096);
    // Warm up: runtime threads, allocator arenas, the ingest's tables.
    pushes(ingest.rtmp_addr, &plan, 0, 100).await;
    settle(&ingest).await;
    let (fds0, rss0) = (open_fds(), vm_rss_kib());

    let began = Instant::now();
    pushes(ingest.rtmp_addr, &plan, 100, 1000).await;
    let took = began.elapsed();
    settle(&ingest).await;
    let (fds1, rss1) = (open_fds(), vm_rss_kib());
    eprintln!(
        "1000 pushes in {took:?}: fds {fds0} -> {fds1}, VmRSS {rss0} -> {rss1} KiB ({:+} KiB)",
        rss1 as i64 - rss0 as i64
    );
    assert!(
        fds1 <= fds0 + 2,
        "file descriptors leaked: {fds0} -> {fds1}"
    );
    assert!(
        rss1 <= rss0 + 16 * 1024,
        "resident memory grew by {} KiB",
        rss1 - rss0
    );
    ingest.shutdown().await.unwrap();
}
