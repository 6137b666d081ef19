//! The demo end to end, the ingest's callbacks checked by an independent
//! receiver (issue 3), `pushprobe callbacks` as a real process, and a connect
//! timeout against a listener whose backlog is full (issue 4).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use pushprobe::secret::Secret;
use pushprobe::sign::{self, Scheme, UrlSpec};

#[test]
fn demo_runs_the_whole_job_offline() {
    let o = run(
        bin().args(["demo", "--duration", "3s"]),
        Duration::from_secs(60),
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    for want in [
        "[ok] the signed push was accepted and streamed",
        "[ok] the ingest parsed 640x360 from the SPS",
        "[ok] both callbacks arrived with a valid sign",
        "[ok] both carry the same sequence",
        "[ok] the expired URL was refused and named expired_url",
        "[ok] the ingest recorded errcode 18 / 501",
        "demo passed",
    ] {
        assert!(t.contains(want), "missing {want:?} in:\n{t}");
    }
    assert!(!t.contains("FAILED"), "{t}");
}

fn wait_file(p: &Path, within: Duration) -> String {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if let Ok(s) = std::fs::read_to_string(p) {
            return s;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{} never appeared", p.display());
}

#[test]
fn ingest_callbacks_pass_an_independent_receiver() {
    if !have("python3") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port_file = dir.path().join("port");
    let events = dir.path().join("events");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/independent_receiver.py");
    let _receiver = spawn(
        std::process::Command::new("python3")
            .arg(&script)
            .arg(&port_file)
            .arg(&events)
            .env("PUSHPROBE_CALLBACK_KEY", "cb-key-1"),
    );
    let cb_port = wait_file(&port_file, Duration::from_secs(10));
    let port = free_port();
    let _serve = spawn(
        bin()
            .env("PUSHPROBE_KEY", "push-key")
            .env("PUSHPROBE_CALLBACK_KEY", "cb-key-1")
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args([
                "--callback-url",
                &format!("http://127.0.0.1:{cb_port}/live/cb"),
            ]),
    );
    assert!(wait_port(port, Duration::from_secs(5)));
    let spec = UrlSpec {
        scheme: Scheme::Rtmp,
        domain: "127.0.0.1".into(),
        port: Some(port),
        app: "live".into(),
        stream: "indep".into(),
    };
    let url = sign::sign_url(&spec, &Secret::new("push-key".into()), now() + 3600).unwrap();
    let o = run(
        bin().args(["push", &url.to_string(), "--duration", "2s"]),
        Duration::from_secs(20),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // Both events, verified by the independent receiver.
    let end = Instant::now() + Duration::from_secs(10);
    let lines = loop {
        let s = std::fs::read_to_string(&events).unwrap_or_default();
        if s.lines().filter(|l| l.starts_with('{')).count() >= 2 || Instant::now() > end {
            break s;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!lines.contains("REFUSED"), "{lines}");
    let evs: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(evs.len(), 2, "{lines}");
    assert_eq!(evs[0]["event_type"], 1);
    assert_eq!(evs[1]["event_type"], 0);
    assert_eq!(evs[0]["sequence"], evs[1]["sequence"]);
    assert_eq!(
        (evs[0]["width"].as_i64(), evs[0]["height"].as_i64()),
        (Some(640), Some(360))
    );
    assert_eq!(evs[0]["stream_id"], "indep");
    assert_eq!(evs[1]["errcode"], 1);
    let pd: u64 = evs[1]["push_duration"].as_str().unwrap().parse().unwrap();
    assert!((1500..4000).contains(&pd), "push_duration {pd}");
}

fn post(port: u16, body: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "POST /cb HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn callbacks_command_verifies_and_prints_events() {
    let port = free_port();
    let p = spawn(bin().env("PUSHPROBE_CALLBACK_KEY", "ckey").args([
        "callbacks",
        "--listen",
        &format!("127.0.0.1:{port}"),
    ]));
    assert!(wait_port(port, Duration::from_secs(5)));
    let t = now() + 600;
    let sign = sign::callback_sign(&Secret::new("ckey".into()), t);
    let ev = serde_json::json!({
        "appid": 1, "app": "d", "appname": "live", "stream_id": "s1", "channel_id": "s1",
        "event_time": now(), "event_type": 1, "sequence": "42", "node": "n", "user_ip": "1.2.3.4",
        "stream_param": "txSecret=supersecret&txTime=FF", "errcode": 0, "errmsg": "",
        "set_id": 1, "width": 640, "height": 360, "idc_id": 0, "t": t, "sign": sign,
    });
    let ok = post(port, &ev.to_string());
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(ok.contains("{\"code\":0}"), "{ok}");
    let mut forged = ev.clone();
    forged["sign"] = "0".repeat(32).into();
    assert!(post(port, &forged.to_string()).starts_with("HTTP/1.1 403"));
    let mut stale = ev.clone();
    stale["t"] = (now() - 10).into();
    stale["sign"] = sign::callback_sign(&Secret::new("ckey".into()), now() - 10).into();
    assert!(post(port, &stale.to_string()).starts_with("HTTP/1.1 403"));
    assert!(post(port, "{nope").starts_with("HTTP/1.1 400"));
    let _ = std::process::Command::new("kill")
        .args(["-INT", &p.0.id().to_string()])
        .status();
    let out = p.finish(Duration::from_secs(10));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one verified event: {stdout}");
    let printed: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(printed["stream_id"], "s1");
    let all = text(&out);
    assert!(!all.contains("supersecret"), "txSecret leaked: {all}");
    assert!(!all.contains(&sign), "sign leaked: {all}");
}

#[tokio::test]
async fn full_backlog_is_a_connect_timeout() {
    // A listener with a backlog of 1 that never accepts; fill its queue.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = sock.listen(1).unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut held = Vec::new();
    for _ in 0..8 {
        if let Ok(Ok(s)) = tokio::time::timeout(
            Duration::from_millis(300),
            tokio::net::TcpStream::connect(("127.0.0.1", port)),
        )
        .await
        {
            held.push(s);
        }
    }
    let started = Instant::now();
    let o = tokio::task::spawn_blocking(move || {
        run(
            bin().args([
                "push",
                &format!("rtmp://127.0.0.1:{port}/live/s"),
                "--timeout",
                "2s",
                "--json",
            ]),
            Duration::from_secs(20),
        )
    })
    .await
    .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(o.status.code(), Some(1), "{v}");
    assert_eq!(v["outcome"], "connect_timeout", "{v}");
    assert_eq!(v["step"], 2);
    assert!(started.elapsed() < Duration::from_secs(8));
    drop(listener);
}

/// Issue 2: Tencent's published vector through the real binary.
#[test]
fn url_reproduces_tencents_published_vector() {
    let o = run(
        bin()
            .env("PUSHPROBE_KEY", "e12c46f2612d5106e2034781ab261ca3")
            .args([
                "url",
                "--domain",
                "livepush.example.com",
                "--stream",
                "test",
            ])
            .args(["--expires-at", "1546064025"]),
        Duration::from_secs(10),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "rtmp://livepush.example.com/live/test?txSecret=f85a2ab363fe4deaffef9754d79da6fe&txTime=5C271099\n"
    );
}
