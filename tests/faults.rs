//! Faults during a load run (issue 7): the ingest killed mid-run, SIGTERM to
//! the load generator, and `--reconnect` across an ingest restart.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// `pushprobe serve` on free loopback ports, RTMP and HTTP.
struct Serve {
    rtmp: u16,
    http: u16,
    proc: Option<Proc>,
}

impl Serve {
    fn start() -> Serve {
        Self::start_on(free_port(), free_port(), None)
    }

    /// Checks signatures when `key` is given.
    fn start_on(rtmp: u16, http: u16, key: Option<&str>) -> Serve {
        let mut cmd = bin();
        cmd.args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{rtmp}"),
            "--http",
            &format!("127.0.0.1:{http}"),
        ]);
        if let Some(k) = key {
            cmd.env("PUSHPROBE_KEY", k);
        }
        let proc = spawn(&mut cmd);
        assert!(wait_port(http, Duration::from_secs(5)), "serve started");
        assert!(wait_port(rtmp, Duration::from_secs(5)), "serve started");
        Serve {
            rtmp,
            http,
            proc: Some(proc),
        }
    }

    /// SIGKILL: no goodbye, the kernel closes every connection.
    fn kill(&mut self) {
        drop(self.proc.take());
    }

    fn template(&self) -> String {
        format!("rtmp://127.0.0.1:{}/live/f{{i}}", self.rtmp)
    }

    /// Live streams as the ingest's `GET /streams` lists them.
    fn streams(&self) -> Vec<serde_json::Value> {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.http)) else {
            return Vec::new();
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = write!(s, "GET /streams HTTP/1.0\r\nHost: x\r\n\r\n");
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        body.split_once("\r\n\r\n")
            .and_then(|(_, b)| serde_json::from_str(b).ok())
            .unwrap_or_default()
    }

    /// Waits until `n` streams are live.
    fn wait_live(&self, n: usize, within: Duration) -> bool {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if self.streams().len() >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

fn load_cmd(template: &str, publishers: u32, duration: &str, report: &Path) -> Command {
    let mut c = bin();
    c.args(["load", "--url-template", template])
        .args(["--publishers", &publishers.to_string(), "--rate", "0"])
        .args(["--timeout", "2s", "--duration", duration])
        .args(["--progress", "none", "--json-out"])
        .arg(report);
    c
}

fn read_report(path: &Path, output: &str) -> serde_json::Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("report written ({e}): {output}"));
    serde_json::from_slice(&bytes).expect("report is JSON")
}

/// Waits for a child to exit; returns how long that took from `since`.
fn wait_exit(p: &mut Proc, since: Instant, within: Duration) -> Option<Duration> {
    while since.elapsed() < within {
        if let Ok(Some(_)) = p.0.try_wait() {
            return Some(since.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn ingest_killed_mid_load_reports_every_publisher_interrupted() {
    let mut ingest = Serve::start();
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.json");
    let mut load = spawn(&mut load_cmd(&ingest.template(), 20, "20s", &report));
    assert!(ingest.wait_live(20, Duration::from_secs(10)), "20 live");
    let killed = Instant::now();
    ingest.kill();
    let took = wait_exit(&mut load, killed, Duration::from_secs(10));
    let out = load.finish(Duration::ZERO);
    let t = text(&out);
    let took = took.unwrap_or_else(|| panic!("load still running 10 s after the kill: {t}"));
    eprintln!("load exited {took:?} after the ingest was killed");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(out.status.code(), Some(1), "{t}");
    let v = read_report(&report, &t);
    assert_eq!(v["publishers"], 20);
    assert_eq!(v["outcomes"]["interrupted"], 20, "{}", v["outcomes"]);
    assert!(t.contains("interrupted"), "{t}");
}

#[test]
fn sigterm_writes_the_report_with_what_was_measured() {
    let ingest = Serve::start();
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.json");
    let mut load = spawn(&mut load_cmd(&ingest.template(), 10, "60s", &report));
    assert!(ingest.wait_live(10, Duration::from_secs(10)), "10 live");
    std::thread::sleep(Duration::from_millis(1200));
    let sent = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &load.0.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let took = wait_exit(&mut load, sent, Duration::from_secs(10));
    let out = load.finish(Duration::ZERO);
    let t = text(&out);
    let took = took.unwrap_or_else(|| panic!("load still running 10 s after SIGTERM: {t}"));
    eprintln!("load exited {took:?} after SIGTERM");
    assert!(took < Duration::from_secs(3), "{took:?}");
    let v = read_report(&report, &t);
    assert_eq!(v["interrupted_by_user"], true, "{v}");
    assert_eq!(v["publishers"], 10);
    assert_eq!(v["phases_ms"]["publish"]["count"], 10);
    assert!(
        v["bytes_sent"].as_u64().unwrap() > 100_000,
        "{}",
        v["bytes_sent"]
    );
    assert!(
        v["stream_seconds"].as_f64().unwrap() > 10.0,
        "{}",
        v["stream_seconds"]
    );
    assert!(t.contains("interrupted by user"), "{t}");
}

/// Publishers of a `--reconnect` load come back after the ingest is killed
/// and started again on the same port, and finish their duration.
#[test]
fn reconnect_survives_an_ingest_restart() {
    let mut ingest = Serve::start();
    let (rtmp, http) = (ingest.rtmp, ingest.http);
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.json");
    let began = Instant::now();
    let mut load = spawn(load_cmd(&ingest.template(), 10, "8s", &report).arg("--reconnect"));
    assert!(ingest.wait_live(10, Duration::from_secs(10)), "10 live");
    ingest.kill();
    std::thread::sleep(Duration::from_millis(1500));
    let ingest = Serve::start_on(rtmp, http, None);
    let back = ingest.wait_live(10, Duration::from_secs(8));
    eprintln!("all 10 back {:?} after the start", began.elapsed());
    let took = wait_exit(&mut load, began, Duration::from_secs(20));
    let out = load.finish(Duration::ZERO);
    let t = text(&out);
    assert!(back, "publishers reconnected to the new ingest: {t}");
    assert!(took.is_some(), "load ended: {t}");
    let v = read_report(&report, &t);
    eprintln!(
        "reconnects {}, outcomes {}, exit {:?}",
        v["reconnects"],
        v["outcomes"],
        out.status.code()
    );
    assert_eq!(v["outcomes"]["accepted"], 10, "{}", v["outcomes"]);
    assert!(
        v["reconnects"].as_u64().unwrap() >= 10,
        "{}",
        v["reconnects"]
    );
    assert!(t.contains("reconnects: "), "{t}");
    assert_eq!(out.status.code(), Some(0), "{t}");
}

const KEY: &str = "0123456789abcdef0123456789abcdef";

/// With the push key at hand, a URL that expired while streaming is signed
/// again before reconnecting, and the restarted (signature-checking) ingest
/// takes it.
#[test]
fn reconnect_resigns_an_expired_url_with_the_key() {
    let (rtmp, http) = (free_port(), free_port());
    let mut ingest = Serve::start_on(rtmp, http, Some(KEY));
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.json");
    let began = Instant::now();
    let mut load = spawn(
        bin()
            .env("PUSHPROBE_KEY", KEY)
            .args(["load", "--domain", "127.0.0.1", "--port", &rtmp.to_string()])
            .args(["--stream-template", "r{i}", "--expires-in", "2s"])
            .args(["--publishers", "3", "--rate", "0", "--timeout", "2s"])
            .args(["--duration", "7s", "--reconnect", "--progress", "none"])
            .arg("--json-out")
            .arg(&report),
    );
    assert!(ingest.wait_live(3, Duration::from_secs(10)), "3 live");
    let first_tx_time = tx_time_of(&ingest.streams()[0]);
    // Past the 2 s expiry, then a restart: the old URLs would be refused.
    std::thread::sleep(Duration::from_secs(3).saturating_sub(began.elapsed()));
    ingest.kill();
    let ingest = Serve::start_on(rtmp, http, Some(KEY));
    let back = ingest.wait_live(3, Duration::from_secs(8));
    let streams = ingest.streams();
    let took = wait_exit(&mut load, began, Duration::from_secs(20));
    let out = load.finish(Duration::ZERO);
    let t = text(&out);
    assert!(back, "re-signed publishers accepted: {t}");
    assert!(took.is_some(), "load ended: {t}");
    for s in &streams {
        assert!(
            tx_time_of(s) > first_tx_time,
            "re-signed: {s} vs {first_tx_time:X}"
        );
    }
    let v = read_report(&report, &t);
    assert_eq!(v["outcomes"]["accepted"], 3, "{}", v["outcomes"]);
    assert!(
        v["reconnects"].as_u64().unwrap() >= 3,
        "{}",
        v["reconnects"]
    );
    assert!(!t.contains(KEY), "key leaked: {t}");
}

/// Without the key, a publisher whose URL expired stops and says why.
#[test]
fn reconnect_without_the_key_stops_on_expiry_and_names_it() {
    let (rtmp, http) = (free_port(), free_port());
    let mut ingest = Serve::start_on(rtmp, http, Some(KEY));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let url = pushprobe::sign::sign_url(
        &pushprobe::sign::UrlSpec {
            scheme: pushprobe::sign::Scheme::Rtmp,
            domain: "127.0.0.1".into(),
            port: Some(rtmp),
            app: "live".into(),
            stream: "x0".into(),
        },
        &pushprobe::secret::Secret::new(KEY.into()),
        now + 2,
    )
    .unwrap()
    .to_string()
    .replace("/x0?", "/x{i}?");
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.json");
    let began = Instant::now();
    let mut load = spawn(load_cmd(&url, 1, "20s", &report).arg("--reconnect"));
    assert!(ingest.wait_live(1, Duration::from_secs(10)), "live");
    std::thread::sleep(Duration::from_secs(3).saturating_sub(began.elapsed()));
    let killed = Instant::now();
    ingest.kill();
    let took = wait_exit(&mut load, killed, Duration::from_secs(10));
    let out = load.finish(Duration::ZERO);
    let t = text(&out);
    assert!(
        took.is_some_and(|d| d < Duration::from_secs(3)),
        "{took:?}: {t}"
    );
    assert_eq!(out.status.code(), Some(1), "{t}");
    let v = read_report(&report, &t);
    assert_eq!(v["outcomes"]["expired_url"], 1, "{}", v["outcomes"]);
    assert_eq!(v["reconnects"], 0);
    assert!(t.contains("has passed and no push key"), "{t}");
    assert!(
        !t.contains(
            url.split("txSecret=")
                .nth(1)
                .unwrap()
                .split('&')
                .next()
                .unwrap()
        )
    );
}

fn tx_time_of(stream: &serde_json::Value) -> u64 {
    let q = stream["query"].as_str().unwrap_or_default();
    let t = q
        .split('&')
        .find_map(|kv| kv.strip_prefix("txTime="))
        .unwrap_or_else(|| panic!("txTime in {q}"));
    u64::from_str_radix(t, 16).unwrap()
}
