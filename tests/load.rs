//! `pushprobe load` and `pushprobe report merge` (issue 5), the real binary
//! against the local ingest (`pushprobe serve`) and nginx-rtmp, on loopback,
//! with bounded publisher counts and durations.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const KEY: &str = "0123456789abcdef0123456789abcdef";
const CALLBACK_KEY: &str = "callback-key-for-tests";

/// Runs that push real media take this lock, so that their lag behind real
/// time measures the binary rather than the other tests on a small machine.
static PUSHING: Mutex<()> = Mutex::new(());

/// `pushprobe serve` with the push and callback keys, callbacks to `cb` if given.
fn serve(callback_port: Option<u16>) -> Serve {
    let url = callback_port.map(|cb| format!("http://127.0.0.1:{cb}/cb"));
    let mut extra = Vec::new();
    if let Some(u) = &url {
        extra.extend(["--callback-url", u.as_str()]);
    }
    Serve::start(
        &[
            ("PUSHPROBE_KEY", KEY),
            ("PUSHPROBE_CALLBACK_KEY", CALLBACK_KEY),
        ],
        &extra,
    )
}

fn pushing() -> std::sync::MutexGuard<'static, ()> {
    PUSHING.lock().unwrap_or_else(|e| e.into_inner())
}

/// `pushprobe load` signing URLs for the local ingest, progress off.
fn load(port: u16) -> Command {
    let mut c = bin();
    c.env("PUSHPROBE_KEY", KEY)
        .env("PUSHPROBE_CALLBACK_KEY", CALLBACK_KEY)
        .args(["load", "--domain", "127.0.0.1", "--port", &port.to_string()])
        .args(["--progress", "none"]);
    c
}

fn schema_errors(report: &Value) -> Vec<String> {
    common::load_report_errors(report)
}

/// A bound against hangs for runs that push media, not a speed claim: a 4 s
/// run of 300 publishers took 19 s here with two CPU hogs beside the other
/// builds, and a run that ends is never waited for longer.
const HANG: Duration = Duration::from_secs(120);

fn u(v: &Value, pointer: &str) -> u64 {
    v.pointer(pointer)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no count at {pointer}"))
}

/// The rows of an `.hgrm` file: (value, percentile, total count); checks the header.
fn hgrm_rows(path: &Path) -> Vec<(f64, f64, u64)> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{} was not written: {e}", path.display()));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["Value", "Percentile", "TotalCount", "1/(1-Percentile)"]
    );
    assert_eq!(lines.next(), Some(""));
    let rows: Vec<(f64, f64, u64)> = lines
        .take_while(|l| !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
            )
        })
        .collect();
    assert!(!rows.is_empty(), "{} has no rows", path.display());
    rows
}

/// What an SVG plot draws: its texts and its polylines (stroke colour, points).
struct Svg {
    texts: Vec<String>,
    text_ys: Vec<(String, f64)>,
    lines: Vec<(String, Vec<(f64, f64)>)>,
}

impl Svg {
    fn read(path: &Path) -> Svg {
        let svg = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("{} was not written: {e}", path.display()));
        assert!(
            svg.starts_with("<svg"),
            "not an SVG: {}",
            &svg[..svg.len().min(200)]
        );
        let attr = |el: &str, name: &str| -> Option<String> {
            let rest = el.split_once(&format!(" {name}=\""))?.1;
            Some(rest.split_once('"')?.0.to_string())
        };
        let mut texts = Vec::new();
        let mut text_ys = Vec::new();
        for el in svg.split("<text").skip(1) {
            let (head, body) = el.split_once('>').unwrap();
            let t = body.split_once("</text>").unwrap().0.trim().to_string();
            let y = attr(head, "y")
                .and_then(|y| y.parse().ok())
                .unwrap_or(f64::NAN);
            text_ys.push((t.clone(), y));
            texts.push(t);
        }
        let lines = svg
            .split("<polyline")
            .skip(1)
            .map(|el| {
                let el = el.split_once("/>").unwrap().0;
                let pts = attr(el, "points")
                    .unwrap_or_default()
                    .split_whitespace()
                    .filter_map(|p| {
                        let (x, y) = p.split_once(',')?;
                        Some((x.parse().ok()?, y.parse().ok()?))
                    })
                    .collect();
                (attr(el, "stroke").unwrap_or_default(), pts)
            })
            .collect();
        Svg {
            texts,
            text_ys,
            lines,
        }
    }

    /// The y of the first text starting with `prefix` (a panel's caption).
    fn text_y(&self, prefix: &str) -> f64 {
        self.text_ys
            .iter()
            .find(|(t, _)| t.starts_with(prefix))
            .unwrap_or_else(|| panic!("no text {prefix:?} in {:?}", self.texts))
            .1
    }
}

#[test]
fn three_hundred_publishers_all_accepted_with_callbacks_histograms_and_plot() {
    let _g = pushing();
    let cb = free_port();
    let s = serve(Some(cb));
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("load.json");
    let hgrm = dir.path().join("hgrm");
    let svg = dir.path().join("load.svg");
    let o = run(
        load(s.port)
            .args(["--publishers", "300", "--rate", "300", "--duration", "4s"])
            .args(["--callback-listen", &format!("127.0.0.1:{cb}")])
            .arg("--json-out")
            .arg(&json)
            .arg("--hgrm")
            .arg(&hgrm)
            .arg("--plot")
            .arg(&svg),
        HANG,
    );
    let t = text(&o);
    assert!(!t.contains(KEY) && !t.contains(CALLBACK_KEY), "key leaked");

    let v = read_json(&json);
    assert_eq!(code(&o), exit_for_lag(&v), "{t}");
    assert_eq!(schema_errors(&v), Vec::<String>::new());
    assert_eq!(u(&v, "/publishers"), 300);
    assert_eq!(u(&v, "/outcomes/accepted"), 300, "{t}");
    assert_eq!(u(&v, "/phases_ms/publish/count"), 300);
    assert_eq!(u(&v, "/phases_from_schedule_ms/publish/count"), 300);
    assert_eq!(
        (
            u(&v, "/callbacks/push"),
            u(&v, "/callbacks/interrupt"),
            u(&v, "/callbacks/missing"),
            u(&v, "/callbacks/unmatched"),
            u(&v, "/callbacks/forged"),
        ),
        (300, 300, 0, 0, 0),
        "{t}"
    );
    assert_eq!(v["callbacks"]["measured"], true);
    assert_eq!(u(&v, "/callbacks/latency_ms/push/count"), 300);
    assert_eq!(u(&v, "/callbacks/latency_ms/interrupt/count"), 300);
    assert_eq!(v["coverage"]["covered"], 300);
    assert_eq!(v["streams"], serde_json::json!([[0, 299]]));

    for (file, count) in [
        ("publish.hgrm", 300),
        ("publish.from_schedule.hgrm", 300),
        ("handshake.hgrm", 300),
        ("lag.hgrm", 300),
        ("callback_push.hgrm", 300),
        ("callback_interrupt.hgrm", 300),
    ] {
        let rows = hgrm_rows(&hgrm.join(file));
        let last = rows.last().unwrap();
        assert_eq!((last.1, last.2), (1.0, count), "{file}");
        assert!(
            rows.windows(2)
                .all(|w| w[0].0 <= w[1].0 && w[0].2 <= w[1].2),
            "{file} rows are not cumulative"
        );
    }
    // The plot: one latency curve per phase measured and one timeline curve
    // each for publishing, failed and bitrate, all named in legends.
    let plot = Svg::read(&svg);
    let phases: Vec<&str> = v["phases_ms"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, h)| h["count"].as_u64().unwrap_or(0) > 0)
        .map(|(name, _)| name.as_str())
        .collect();
    assert!(phases.len() >= 5, "{phases:?}");
    for name in phases.iter().copied().chain(["publishing", "failed"]) {
        assert!(
            plot.texts.iter().any(|t| t == name),
            "no legend entry {name}"
        );
    }
    assert!(
        plot.texts.iter().any(|t| t.starts_with("bitrate")),
        "no bitrate legend"
    );
    let timeline_y = plot.text_y("timeline");
    let curve_colours = |in_timeline: bool| {
        plot.lines
            .iter()
            .filter(|(_, pts)| pts.len() >= 4)
            .filter(|(_, pts)| pts.iter().all(|p| (p.1 > timeline_y) == in_timeline))
            .map(|(colour, _)| colour.as_str())
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(
        curve_colours(false).len(),
        phases.len(),
        "one latency curve per phase {phases:?}: {:?}",
        curve_colours(false)
    );
    assert_eq!(curve_colours(true).len(), 3, "{:?}", curve_colours(true));

    assert!(t.contains("publishers: 300 measured of 300 planned"), "{t}");
    assert!(
        t.contains("callbacks: push 300, interrupt 300, missing 0"),
        "{t}"
    );
    assert!(
        t.contains("push latency") && t.contains("from schedule"),
        "{t}"
    );
}

#[test]
fn duplicates_and_expired_urls_are_refused_and_classified() {
    let _g = pushing();
    let s = serve(None);
    let dir = tempfile::tempdir().unwrap();

    let json = dir.path().join("dup.json");
    let o = run(
        load(s.port)
            .args([
                "--publishers",
                "20",
                "--duplicates",
                "5",
                "--duration",
                "4s",
            ])
            .arg("--json-out")
            .arg(&json),
        HANG,
    );
    let t = text(&o);
    let v = read_json(&json);
    assert_eq!(code(&o), exit_for_lag(&v), "{t}");
    assert_eq!(schema_errors(&v), Vec::<String>::new());
    assert_eq!(u(&v, "/outcomes/accepted"), 20, "{t}");
    assert_eq!(u(&v, "/publishers"), 20);
    assert_eq!(u(&v, "/expected_refusals/refused"), 5, "{t}");
    assert_eq!(u(&v, "/expected_refusals/accepted"), 0);
    assert_eq!(
        v["expected_refusals"]["outcomes"],
        serde_json::json!({"already_in_use": 5}),
        "{t}"
    );
    assert!(
        t.contains("expected refusals (duplicates): 5 refused, 0 accepted (already_in_use 5)"),
        "{t}"
    );

    let json = dir.path().join("expired.json");
    let o = run(
        load(s.port)
            .args([
                "--publishers",
                "10",
                "--expires-in",
                "0s",
                "--duration",
                "4s",
            ])
            .arg("--json-out")
            .arg(&json),
        HANG,
    );
    let t = text(&o);
    assert_eq!(code(&o), 1, "{t}");
    let v = read_json(&json);
    assert_eq!(u(&v, "/outcomes/expired_url"), 10, "{t}");
    assert_eq!(u(&v, "/outcomes/accepted"), 0, "{t}");
    assert_eq!(u(&v, "/phases_ms/publish/count"), 0);
}

#[test]
fn nginx_rtmp_accepts_publishers_and_a_stream_decodes() {
    if !have("nginx") || !have("ffprobe") {
        return;
    }
    let _g = pushing();
    let ng = Nginx::start(None);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("nginx.json");
    let template = format!("rtmp://127.0.0.1:{}/live/s{{i}}", ng.port);
    let p = spawn(
        bin()
            .args(["load", "--url-template", &template, "--progress", "none"])
            .args(["--publishers", "20", "--rate", "20", "--duration", "8s"])
            .arg("--json-out")
            .arg(&json),
    );
    ng.wait_publishing("s3", &p);
    let probe = ffprobe_stream(&ng.url("s3"));
    let o = p.finish(HANG);
    let t = text(&o);
    assert!(probe.contains("h264,640,360"), "ffprobe: {probe:?}\n{t}");
    assert!(probe.contains("aac"), "ffprobe: {probe:?}");
    let v = read_json(&json);
    assert_eq!(code(&o), exit_for_lag(&v), "{t}");
    assert_eq!(u(&v, "/outcomes/accepted"), 20, "{t}");
    assert_eq!(u(&v, "/phases_ms/publish/count"), 20);
}

#[test]
fn three_shard_processes_merge_to_their_sum_covering_every_stream_once() {
    let _g = pushing();
    let s = serve(None);
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<_> = ["a.json", "b.json", "c.json"]
        .iter()
        .map(|f| dir.path().join(f))
        .collect();
    let procs: Vec<Proc> = files
        .iter()
        .enumerate()
        .map(|(k, f)| {
            spawn(
                load(s.port)
                    .args(["--publishers", "30", "--rate", "30", "--duration", "3s"])
                    .args(["--shard", &format!("{k}/3")])
                    .arg("--json-out")
                    .arg(f),
            )
        })
        .collect();
    let mut shards = Vec::new();
    for (k, p) in procs.into_iter().enumerate() {
        let o = p.finish(HANG);
        let v = read_json(&files[k]);
        assert_eq!(code(&o), exit_for_lag(&v), "shard {k}: {}", text(&o));
        assert_eq!(v["shards"], serde_json::json!([{"index": k, "count": 3}]));
        assert_eq!(u(&v, "/publishers"), 10);
        shards.push(v);
    }
    // Each shard took its own contiguous third of the streams.
    let ranges: Vec<&Value> = shards.iter().map(|v| &v["streams"]).collect();
    assert_eq!(
        ranges,
        [
            &serde_json::json!([[0, 9]]),
            &serde_json::json!([[10, 19]]),
            &serde_json::json!([[20, 29]])
        ]
    );

    let merged = dir.path().join("m.json");
    let hgrm = dir.path().join("hgrm");
    let o = run(
        bin()
            .args(["report", "merge"])
            .args(&files)
            .arg("--json-out")
            .arg(&merged)
            .arg("--hgrm")
            .arg(&hgrm),
        Duration::from_secs(10),
    );
    let t = text(&o);
    assert_eq!(code(&o), 0, "{t}");
    let m = read_json(&merged);
    assert_eq!(schema_errors(&m), Vec::<String>::new());
    assert_eq!(u(&m, "/publishers"), 30);
    assert_eq!(u(&m, "/publishers_planned"), 30);
    assert_eq!(u(&m, "/runs"), 3);
    assert_eq!(
        m["coverage"],
        serde_json::json!({"covered": 30, "overlaps": [], "gaps": []})
    );
    assert_eq!(m["streams"], serde_json::json!([[0, 29]]));
    for pointer in [
        "/phases_ms/publish/count",
        "/phases_from_schedule_ms/handshake/count",
        "/outcomes/accepted",
        "/lag_ms/count",
        "/bytes_sent",
    ] {
        let sum: u64 = shards.iter().map(|v| u(v, pointer)).sum();
        assert_eq!(u(&m, pointer), sum, "{pointer}");
    }
    assert_eq!(u(&m, "/phases_ms/publish/count"), 30);
    let max = shards
        .iter()
        .map(|v| v["phases_ms"]["publish"]["max"].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert_eq!(m["phases_ms"]["publish"]["max"].as_f64().unwrap(), max);
    assert_eq!(hgrm_rows(&hgrm.join("publish.hgrm")).last().unwrap().2, 30);
    assert!(t.contains("shards 0/3 1/3 2/3, merged from 3 runs"), "{t}");

    // The same report twice covers its streams twice: exit 1.
    let o = run(
        bin().args(["report", "merge"]).args([&files[0], &files[0]]),
        Duration::from_secs(10),
    );
    let t = text(&o);
    assert_eq!(code(&o), 1, "{t}");
    assert!(t.contains("more than one report"), "{t}");

    // A malformed file: exit 2, the error names it.
    let bad = dir.path().join("truncated.json");
    std::fs::write(&bad, "{\"format\": \"pushprobe-load-report\", ").unwrap();
    let o = run(
        bin().args(["report", "merge"]).arg(&files[0]).arg(&bad),
        Duration::from_secs(10),
    );
    let t = text(&o);
    assert_eq!(code(&o), 2, "{t}");
    assert!(
        t.contains("truncated.json: not JSON: EOF while parsing"),
        "{t}"
    );
    assert_eq!(
        t.matches("EOF while parsing").count(),
        1,
        "cause said twice: {t}"
    );
}

#[test]
fn shards_take_their_index_from_job_completion_index() {
    let _g = pushing();
    let s = serve(None);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("pod-1.json");
    let o = run(
        load(s.port)
            .env("JOB_COMPLETION_INDEX", "1")
            .args(["--publishers", "30", "--shards", "3", "--duration", "2s"])
            .arg("--json-out")
            .arg(&json),
        HANG,
    );
    let t = text(&o);
    let v = read_json(&json);
    assert_eq!(code(&o), exit_for_lag(&v), "{t}");
    assert_eq!(v["shards"], serde_json::json!([{"index": 1, "count": 3}]));
    assert_eq!(v["streams"], serde_json::json!([[10, 19]]));
    assert!(t.contains("shard 1/3"), "{t}");

    let o = run(
        load(s.port).env_remove("JOB_COMPLETION_INDEX").args([
            "--publishers",
            "30",
            "--shards",
            "3",
            "--duration",
            "2s",
        ]),
        Duration::from_secs(10),
    );
    let t = text(&o);
    assert_eq!(code(&o), 2, "{t}");
    assert!(t.contains("JOB_COMPLETION_INDEX"), "{t}");
}

#[test]
fn ctrl_c_stops_the_run_and_writes_the_report_of_what_was_measured() {
    let _g = pushing();
    let s = serve(None);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("interrupted.json");
    let started = Instant::now();
    let p = spawn(
        load(s.port)
            .args(["--publishers", "60", "--rate", "100", "--duration", "30s"])
            .arg("--json-out")
            .arg(&json),
    );
    s.wait_live(60, &[&p]);
    signal(&p, "INT");
    let asked = Instant::now();
    let o = p.finish(Duration::from_secs(30));
    let took = asked.elapsed();
    let lived = started.elapsed();
    let t = text(&o);
    // Stopping is cancelling: nothing to wait out but the report, well
    // under the 30 s the run had left.
    assert!(took < Duration::from_secs(10), "took {took:?} to stop: {t}");
    assert!(o.status.code().is_some(), "killed, not exited: {t}");
    let v = read_json(&json);
    assert_eq!(v["interrupted_by_user"], true);
    assert_eq!(u(&v, "/publishers"), 60, "{t}");
    assert_eq!(u(&v, "/outcomes/accepted"), 60, "{t}");
    // The run reports the time it ran, not the 30 s it was asked for, and no
    // more stream time than 60 publishers could stream in it.
    let duration = v["duration_s"].as_f64().unwrap();
    assert!(duration <= lived.as_secs_f64(), "{duration} s > {lived:?}");
    let stream_seconds = v["stream_seconds"].as_f64().unwrap();
    assert!(
        stream_seconds > 0.0 && stream_seconds <= 60.0 * duration,
        "{stream_seconds} stream-seconds in {duration} s"
    );
    assert!(t.contains("(interrupted by user)"), "{t}");
    assert_eq!(v["callbacks"]["measured"], false);
    assert!(
        t.contains("callbacks: not measured (use --callback-listen)"),
        "{t}"
    );
}

/// Regression (issue 5): a publisher stopped by Ctrl-C before Publish.Start
/// was reported as accepted. Against a listener that never answers the
/// handshake, nothing is accepted and nothing is measured.
#[test]
fn ctrl_c_before_publish_start_is_not_counted_as_accepted() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    // Accepts and holds every connection, answering nothing.
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in silent.incoming().flatten() {
            held.push(c);
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("silent.json");
    let p = spawn(
        bin()
            .args(["load", "--progress", "none", "--url-template"])
            .arg(format!("rtmp://127.0.0.1:{port}/live/s{{i}}"))
            .args(["--publishers", "5", "--rate", "0", "--timeout", "20s"])
            .arg("--json-out")
            .arg(&json),
    );
    // All five are connected and waiting on the handshake.
    p.wait_for("5 connections to the silent listener", READY, || {
        (accepted.load(std::sync::atomic::Ordering::SeqCst) >= 5).then_some(())
    });
    signal(&p, "INT");
    let o = p.finish(Duration::from_secs(30));
    let t = text(&o);
    assert_eq!(code(&o), 1, "{t}");
    let v = read_json(&json);
    assert_eq!(v["interrupted_by_user"], true);
    assert_eq!(u(&v, "/outcomes/accepted"), 0, "{t}");
    assert_eq!(u(&v, "/publishers"), 0, "{t}");
    assert_eq!(u(&v, "/publishers_planned"), 5, "{t}");
}

#[test]
fn too_few_open_files_is_a_usage_error_naming_the_limit_and_shard() {
    let o = run(
        Command::new("sh")
            .args(["-c", "ulimit -n 256; ulimit -Hn 256; exec \"$@\"", "sh"])
            .arg(env!("CARGO_BIN_EXE_pushprobe"))
            .args(["load", "--url-template", "rtmp://127.0.0.1:9/live/s{i}"])
            .args(["--publishers", "1000", "--progress", "none"]),
        Duration::from_secs(10),
    );
    let t = text(&o);
    assert_eq!(code(&o), 2, "{t}");
    assert!(
        t.contains("1000 publishers need about 1064 open files"),
        "{t}"
    );
    assert!(
        t.contains("open-files limit") && t.contains("is 256"),
        "{t}"
    );
    assert!(t.contains("--shard I/N") && t.contains("more pods"), "{t}");
}
