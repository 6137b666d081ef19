//! `load --metrics-listen` (issue 15): a real 300-publisher run against
//! `pushprobe serve` on loopback, scraped during the run and after it with
//! the Python prometheus_client parsers (text 0.0.4 and OpenMetrics), which
//! are independent of the Rust exporter; families, labels and the final
//! values against the JSON report; the Grafana dashboard's metrics against
//! the scrape.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const KEY: &str = "0123456789abcdef0123456789abcdef";
const CALLBACK_KEY: &str = "callback-key-for-tests";
/// The RTMP bucket bounds (s) every latency histogram must have.
const BUCKETS: [f64; 17] = [
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    15.0,
    20.0,
    30.0,
    f64::INFINITY,
];

/// True when python3 and its prometheus_client are there (CI installs them).
fn have_parser() -> bool {
    if !have("python3") {
        return false;
    }
    let ok = Command::new("python3")
        .args(["-c", "import prometheus_client"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        if std::env::var_os("CI").is_some() {
            panic!("python3 -m pip install prometheus_client is required under CI (.ci/run)");
        }
        eprintln!("SKIPPED: the Python prometheus_client is not installed");
    }
    ok
}

/// One parsed scrape: what prometheus_client read.
struct Scrape(Value);

impl Scrape {
    fn take(url: &str, format: &str, save: Option<&Path>) -> Scrape {
        let mut c = Command::new("python3");
        c.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/prom_scrape.py"))
            .args([url, format]);
        if let Some(p) = save {
            c.arg(p);
        }
        // The script's own HTTP timeout (10 s) bounds the wait; its output
        // is larger than a pipe holds, so read it as it comes.
        let o = c.output().expect("python3 runs");
        assert!(o.status.success(), "scrape failed: {}", text(&o));
        Scrape(serde_json::from_slice(&o.stdout).unwrap())
    }

    fn family(&self, name: &str) -> &Value {
        self.0["families"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("no family {name} in {}", self.0["raw"]))
    }

    fn samples(&self) -> impl Iterator<Item = &Value> {
        self.0["families"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|f| f["samples"].as_array().unwrap())
    }

    /// The value of the one sample `name` whose labels include `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let hits: Vec<f64> = self
            .samples()
            .filter(|s| s["name"] == name)
            .filter(|s| labels.iter().all(|(k, v)| s["labels"][*k] == *v))
            .map(|s| s["value"].as_f64().unwrap())
            .collect();
        assert_eq!(hits.len(), 1, "{name} {labels:?}: {hits:?}");
        hits[0]
    }
}

fn u(v: &Value, pointer: &str) -> f64 {
    v.pointer(pointer)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("no number at {pointer}"))
}

#[test]
fn a_300_publisher_run_is_scraped_live_and_ends_on_the_reports_values() {
    if !have_parser() {
        return;
    }
    let cb = free_port();
    let s = Serve::start(
        &[
            ("PUSHPROBE_KEY", KEY),
            ("PUSHPROBE_CALLBACK_KEY", CALLBACK_KEY),
        ],
        &["--callback-url", &format!("http://127.0.0.1:{cb}/cb")],
    );
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("load.json");
    let mut c = bin();
    c.env("PUSHPROBE_KEY", KEY)
        .env("PUSHPROBE_CALLBACK_KEY", CALLBACK_KEY)
        .args([
            "load",
            "--domain",
            "127.0.0.1",
            "--port",
            &s.port.to_string(),
        ])
        .args(["--publishers", "300", "--rate", "300", "--duration", "4s"])
        .args(["--callback-listen", &format!("127.0.0.1:{cb}")])
        .args(["--metrics-listen", "127.0.0.1:0", "--metrics-linger", "60s"])
        .args(["--progress", "plain", "--json-out"])
        .arg(&json);
    let p = spawn(&mut c);
    // stderr: the metrics address, then the linger line once the report is out.
    let printed = p.1.clone();
    let wait_line = |prefix: &str, within: Duration| -> String {
        p.wait_for(&format!("a line {prefix:?}"), within, || {
            printed
                .stderr()
                .lines()
                .find(|l| l.starts_with(prefix))
                .map(str::to_owned)
        })
    };
    let line = wait_line("metrics: serving http://", Duration::from_secs(20));
    let url = line
        .trim_start_matches("metrics: serving ")
        .trim()
        .to_owned();

    // During the run: wait (bounded by the 4 s run plus ramp and slack) for
    // a scrape that sees publishers streaming.
    let saved = Path::new(env!("CARGO_TARGET_TMPDIR")).join("metrics-scrape.prom");
    let end = Instant::now() + Duration::from_secs(20);
    let live = loop {
        let sc = Scrape::take(&url, "text", Some(&saved));
        if sc.value("pushprobe_publishers", &[("state", "publishing")]) > 0.0 {
            break sc;
        }
        assert!(
            Instant::now() < end,
            "no publisher seen publishing: {}",
            sc.0["raw"]
        );
    };
    assert!(
        live.0["content_type"]
            .as_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "{}",
        live.0["content_type"]
    );
    assert_eq!(live.value("pushprobe_run_finished", &[]), 0.0);
    for (family, kind) in [
        ("pushprobe_publishers", "gauge"),
        ("pushprobe_publishers_planned", "gauge"),
        ("pushprobe_run_finished", "gauge"),
        ("pushprobe_outcomes", "counter"),
        ("pushprobe_sent_bytes", "counter"),
        ("pushprobe_reconnects", "counter"),
        ("pushprobe_callbacks", "counter"),
        ("pushprobe_phase_seconds", "histogram"),
        ("pushprobe_lag_seconds", "histogram"),
    ] {
        assert_eq!(live.family(family)["type"], kind, "{family}");
    }
    let raw = live.0["raw"].as_str().unwrap();
    assert!(
        !raw.contains(KEY)
            && !raw.contains(CALLBACK_KEY)
            && !raw.to_lowercase().contains("txsecret"),
        "a secret in /metrics"
    );
    for s in live.samples() {
        assert_eq!(s["labels"]["shard"], "0/1", "{s}");
    }
    assert_eq!(live.value("pushprobe_publishers_planned", &[]), 300.0);
    // Phase latencies are live (not waiting for publishers to end).
    assert!(
        live.value(
            "pushprobe_phase_seconds_count",
            &[("phase", "handshake"), ("from", "start")]
        ) > 0.0
    );
    dashboard_queries_only_scraped_metrics(&saved);

    // After the run: the report is written before the linger line.
    wait_line("metrics: final values stay up", Duration::from_secs(40));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    for format in ["text", "openmetrics"] {
        let f = Scrape::take(&url, format, None);
        let ctx = format!("{format}: {}", f.0["raw"]);
        assert_eq!(f.value("pushprobe_run_finished", &[]), 1.0, "{ctx}");
        for state in ["scheduled", "finished"] {
            assert_eq!(
                f.value("pushprobe_publishers", &[("state", state)]),
                300.0,
                "{ctx}"
            );
        }
        for state in [
            "connecting",
            "publishing",
            "refused",
            "failed",
            "interrupted",
        ] {
            assert_eq!(
                f.value("pushprobe_publishers", &[("state", state)]),
                0.0,
                "{state} {ctx}"
            );
        }
        let accepted = f.value(
            "pushprobe_outcomes_total",
            &[("outcome", "accepted"), ("expected_refusal", "false")],
        );
        assert_eq!(accepted, u(&report, "/outcomes/accepted"), "{ctx}");
        assert_eq!(accepted, 300.0);
        let all: f64 = f
            .samples()
            .filter(|s| s["name"] == "pushprobe_outcomes_total")
            .map(|s| s["value"].as_f64().unwrap())
            .sum();
        assert_eq!(all, 300.0, "only accepted outcomes: {ctx}");
        assert_eq!(
            f.value("pushprobe_sent_bytes_total", &[]),
            u(&report, "/bytes_sent")
        );
        assert_eq!(
            f.value("pushprobe_reconnects_total", &[]),
            u(&report, "/reconnects")
        );
        for kind in [
            "push",
            "interrupt",
            "missing",
            "duplicate",
            "forged",
            "unmatched",
        ] {
            assert_eq!(
                f.value("pushprobe_callbacks_total", &[("kind", kind)]),
                u(&report, &format!("/callbacks/{kind}")),
                "{kind}"
            );
        }
        assert_eq!(
            f.value("pushprobe_callbacks_total", &[("kind", "push")]),
            300.0
        );
        for (from, key) in [
            ("start", "phases_ms"),
            ("schedule", "phases_from_schedule_ms"),
        ] {
            for phase in ["tcp", "handshake", "connect", "create_stream", "publish"] {
                let labels = [("phase", phase), ("from", from)];
                let count = f.value("pushprobe_phase_seconds_count", &labels);
                assert_eq!(
                    count,
                    u(&report, &format!("/{key}/{phase}/count")),
                    "{phase}"
                );
                check_buckets(&f, "pushprobe_phase_seconds_bucket", &labels, count);
            }
        }
        assert_eq!(
            f.value(
                "pushprobe_phase_seconds_count",
                &[("phase", "publish"), ("from", "start")]
            ),
            300.0
        );
        let lag = f.value("pushprobe_lag_seconds_count", &[]);
        assert_eq!(lag, u(&report, "/lag_ms/count"));
        check_buckets(&f, "pushprobe_lag_seconds_bucket", &[], lag);
    }
    // Ctrl-C ends the 60 s linger early (15 s allowed) and leaves the run's
    // own exit code: 0, or 1 when a loaded machine made publishers lag.
    let ok = Command::new("kill")
        .args(["-INT", &p.0.id().to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok);
    let o = p.finish(Duration::from_secs(15));
    assert!(
        matches!(o.status.code(), Some(0 | 1)),
        "{:?} {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The RTMP buckets (compared as numbers: text writes `1`, OpenMetrics
/// `1.0`), cumulative, ending at `+Inf` = the count.
fn check_buckets(f: &Scrape, name: &str, labels: &[(&str, &str)], count: f64) {
    let le_of = |s: &Value| -> f64 {
        match s["labels"]["le"].as_str().unwrap() {
            "+Inf" => f64::INFINITY,
            x => x.parse().unwrap(),
        }
    };
    let rows: Vec<(f64, f64)> = f
        .samples()
        .filter(|s| s["name"] == name)
        .filter(|s| labels.iter().all(|(k, v)| s["labels"][*k] == *v))
        .map(|s| (le_of(s), s["value"].as_f64().unwrap()))
        .collect();
    let les: Vec<f64> = rows.iter().map(|r| r.0).collect();
    assert_eq!(les, BUCKETS, "{name} {labels:?}");
    assert!(
        rows.windows(2).all(|w| w[0].1 <= w[1].1),
        "{name} {labels:?} not cumulative: {rows:?}"
    );
    assert_eq!(rows.last().unwrap().1, count, "{name} {labels:?}");
}

/// Every metric the Grafana dashboard queries is in a real scrape.
fn dashboard_queries_only_scraped_metrics(scrape: &Path) {
    let o = run(
        Command::new("python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/scripts/check-dashboard.py"
            ))
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/deploy/grafana/pushprobe-load.json"
            ))
            .arg(scrape),
        Duration::from_secs(20),
    );
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn a_metrics_address_in_use_is_a_usage_error_naming_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let o = run(
        bin()
            .env("PUSHPROBE_KEY", KEY)
            .args([
                "load",
                "--domain",
                "127.0.0.1",
                "--port",
                "9",
                "--publishers",
                "1",
            ])
            .args(["--progress", "none", "--metrics-listen", &addr]),
        Duration::from_secs(20),
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(
        t.contains(&format!("cannot listen for metrics on {addr}")),
        "{t}"
    );
}
