//! The demo end to end, the ingest's callbacks checked by an independent
//! receiver (issue 3), `pushprobe callbacks` as a real process, and a connect
//! timeout against a listener whose backlog is full (issue 4).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

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
        "[ok] the ingest played the push back over RTMP, stamped latency measured",
        "[ok] the ingest played the push back over HTTP-FLV, stamped latency measured",
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

#[test]
fn ingest_callbacks_pass_an_independent_receiver() {
    if !have("python3") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port_file = dir.path().join("port");
    let events = dir.path().join("events");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/independent_receiver.py");
    let receiver = spawn(
        std::process::Command::new("python3")
            .arg(&script)
            .arg(&port_file)
            .arg(&events)
            .env("PUSHPROBE_CALLBACK_KEY", "cb-key-1"),
    );
    let cb_port = receiver.wait_for("the receiver's port file", READY, || {
        std::fs::read_to_string(&port_file).ok()
    });
    let callback_url = format!("http://127.0.0.1:{cb_port}/live/cb");
    let serve = Serve::start(
        &[
            ("PUSHPROBE_KEY", "push-key"),
            ("PUSHPROBE_CALLBACK_KEY", "cb-key-1"),
        ],
        &["--callback-url", &callback_url],
    );
    // Signed independently of pushprobe (MD5 by the md-5 crate).
    let url = signed(serve.port, "indep", "push-key", now() + 3600);
    let pushed = Instant::now();
    let o = run(
        bin().args(["push", &url, "--duration", "2s"]),
        Duration::from_secs(20),
    );
    let push_lived = pushed.elapsed();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // Both events, verified by the independent receiver.
    let lines = wait_until(
        "two verified callbacks at the independent receiver",
        READY,
        &[&receiver.1, &serve.proc.1],
        || {
            let s = std::fs::read_to_string(&events).unwrap_or_default();
            let done =
                s.contains("REFUSED") || s.lines().filter(|l| l.starts_with('{')).count() >= 2;
            done.then_some(s)
        },
    );
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
    // The push streamed its 2 s (less a little: the ingest starts counting at
    // publish) and cannot have lasted longer than the process that pushed it.
    let pd: u64 = evs[1]["push_duration"].as_str().unwrap().parse().unwrap();
    assert!(
        (1800..=push_lived.as_millis() as u64).contains(&pd),
        "push_duration {pd} ms, push process lived {push_lived:?}"
    );
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
    let (p, port) = callbacks_receiver("ckey");
    let t = now() + 600;
    // The sign computed independently: MD5(key + t) by the md-5 crate.
    let sign = callback_sign("ckey", t);
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
    stale["sign"] = callback_sign("ckey", now() - 10).into();
    assert!(post(port, &stale.to_string()).starts_with("HTTP/1.1 403"));
    assert!(post(port, "{nope").starts_with("HTTP/1.1 400"));
    signal(&p, "INT");
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
    // Bound by the configured 2 s timeout, plus 6 s for process start-up and
    // a loaded machine: far below a connect that never times out.
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2 + 6), "took {took:?}");
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

/// The tests' own reference signer (tests/common, MD5 by the md-5 crate)
/// reproduces Tencent's published vector, so what it signs is right without
/// pushprobe's word for it.
#[test]
fn the_tests_reference_signer_reproduces_tencents_vector() {
    assert_eq!(
        tx_secret("e12c46f2612d5106e2034781ab261ca3", "test", "5C271099"),
        "f85a2ab363fe4deaffef9754d79da6fe"
    );
    assert_eq!(
        signed(
            1935,
            "test",
            "e12c46f2612d5106e2034781ab261ca3",
            0x5C27_1099
        ),
        "rtmp://127.0.0.1:1935/live/test?txSecret=f85a2ab363fe4deaffef9754d79da6fe&txTime=5C271099"
    );
}
