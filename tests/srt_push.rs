//! SRT pushes against independent peers: the TS our muxer writes read by
//! ffprobe/ffmpeg, `pushprobe push srt://` into libsrt's
//! `srt-live-transmit`, refusals and timeouts named.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use pushprobe::ts::mux::{TsCursor, TsLoop};

/// ffprobe's streams of a TS file, and what it printed on stderr.
fn ffprobe_streams(path: &Path) -> (serde_json::Value, String) {
    let o = run(
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_streams",
                "-show_format",
                "-of",
                "json",
            ])
            .arg(path),
        Duration::from_secs(60),
    );
    let json = serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
    (json, String::from_utf8_lossy(&o.stderr).into_owned())
}

/// Asserts h264 640x360 + aac and returns the format duration in seconds.
fn assert_h264_aac(json: &serde_json::Value) -> f64 {
    let streams = json["streams"].as_array().expect("streams");
    let video = streams
        .iter()
        .find(|s| s["codec_type"] == "video")
        .expect("video stream");
    assert_eq!(video["codec_name"], "h264", "{json}");
    assert_eq!(video["width"], 640, "{json}");
    assert_eq!(video["height"], 360, "{json}");
    let audio = streams
        .iter()
        .find(|s| s["codec_type"] == "audio")
        .expect("audio stream");
    assert_eq!(audio["codec_name"], "aac", "{json}");
    json["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .expect("duration")
}

/// Stops `srt-live-transmit` (it keeps listening) and checks what it wrote:
/// ffprobe reads it without a complaint as H.264 + AAC lasting what the push
/// (`json`, its report) says it sent. The file ends where the last payload
/// did; a payload carries at most one frame interval more than its due time
/// says. Returns the file (and the folder holding it).
fn received_by_libsrt(
    listener: Proc,
    json: &serde_json::Value,
) -> (tempfile::TempDir, std::path::PathBuf) {
    signal(&listener, "INT");
    let out = listener.finish(Duration::from_secs(10));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("received.ts");
    std::fs::write(&path, &out.stdout).unwrap();
    let (probe, stderr) = ffprobe_streams(&path);
    assert_eq!(stderr, "", "ffprobe complained about what libsrt received");
    let secs = assert_h264_aac(&probe);
    let media = json["media_seconds"].as_f64().unwrap();
    assert!(
        (secs - media).abs() < 0.5,
        "received {secs} s, pushed {media} s"
    );
    (dir, path)
}

/// The muxer's TS of 2.5 fixture loops (starting at a later keyframe, so the
/// loop seam is inside), written to a file: ffprobe and a full ffmpeg decode
/// read it without a single error, and its duration is what was muxed.
#[test]
fn muxed_ts_reads_without_errors_across_loops() {
    if !have("ffprobe") || !have("ffmpeg") {
        return;
    }
    let ts = TsLoop::new(&pushprobe::flv::default_fixture()).unwrap();
    let mut cursor = TsCursor::new(&ts, ts.start_index(1));
    let mut out = Vec::new();
    let mut last = 0;
    // Cut at a keyframe: a file cut mid-frame ends in a truncated frame.
    while last < u64::from(ts.duration_ms) * 5 / 2 || !cursor.at_keyframe(&ts) {
        let (b, due) = cursor.next(&ts);
        out.extend_from_slice(&b);
        last = due;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("loop.ts");
    std::fs::write(&path, &out).unwrap();
    let (json, stderr) = ffprobe_streams(&path);
    assert_eq!(stderr, "", "ffprobe complained");
    let secs = assert_h264_aac(&json);
    let want = last as f64 / 1000.0;
    assert!(
        (secs - want).abs() < 1.0,
        "duration {secs} s, muxed {want} s"
    );
    let o = run(
        Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(&path)
            .args(["-f", "null", "-"]),
        Duration::from_secs(120),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "",
        "ffmpeg decode complained"
    );
}

const KEY: &str = "srtkey";

/// A UDP port that was free a moment ago (srt-live-transmit cannot bind
/// port 0 and say which it got).
fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Tencent's SRT URL for 127.0.0.1:`port`, signed independently of pushprobe.
fn srt_url(port: u16, stream: &str, key: &str, expiry: u64) -> String {
    let t = format!("{expiry:X}");
    format!(
        "srt://127.0.0.1:{port}?streamid=#!::h=127.0.0.1,r=live/{stream},txSecret={},txTime={t}",
        tx_secret(key, stream, &t)
    )
}

/// Checks a push's JSON against schemas/commands.json (its `srt` block too).
fn assert_push_schema(doc: &serde_json::Value) {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schemas/commands.json"
    ))
    .unwrap();
    let mut s: serde_json::Value = serde_json::from_str(&text).unwrap();
    s["$ref"] = serde_json::json!("#/$defs/push");
    let v = jsonschema::validator_for(&s).unwrap();
    let errors: Vec<String> = v.iter_errors(doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}\n{doc:#}");
}

fn push_json(
    url: &str,
    extra: &[&str],
    within: Duration,
) -> (serde_json::Value, String, Option<i32>) {
    let o = run(
        bin()
            .env("PUSHPROBE_KEY", KEY)
            .args(["push", url, "--json"])
            .args(extra),
        within,
    );
    let json = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("push printed no JSON ({e}):\n{}", text(&o)));
    assert_push_schema(&json);
    (json, text(&o), o.status.code())
}

/// pushprobe -> libsrt's srt-live-transmit (listener writing the TS to its
/// stdout): accepted; ffprobe reads what libsrt received without an error,
/// H.264 640x360 + AAC, as long as the push streamed.
#[test]
fn push_to_srt_live_transmit_is_read_by_ffprobe() {
    if !have("srt-live-transmit") || !have("ffprobe") {
        return;
    }
    let port = free_udp_port();
    let listener = spawn(Command::new("srt-live-transmit").args([
        &format!("srt://127.0.0.1:{port}?mode=listener"),
        "file://con",
    ]));
    listener.wait_for("srt-live-transmit to start", READY, || {
        listener.1.stderr().contains("Media path").then_some(())
    });
    let url = srt_url(port, "cam1", KEY, now() + 3600 * 24);
    let (json, printed, code) = push_json(&url, &["--duration", "4s"], Duration::from_secs(60));
    assert_eq!(code, Some(0), "{printed}");
    assert_eq!(json["outcome"], "accepted", "{printed}");
    for phase in ["dns", "handshake", "publish"] {
        assert!(json["phases_ms"][phase].is_number(), "{phase}: {printed}");
    }
    let srt = &json["srt"];
    assert_eq!(srt["latency_ms"], 120.0, "{printed}");
    assert!(srt["packets_sent"].as_u64().unwrap() > 100, "{printed}");
    assert!(srt["acks"].as_u64().unwrap() > 0, "{printed}");
    // The handshake's two exchanges, timed apart.
    assert!(srt["induction_ms"].as_f64().unwrap() > 0.0, "{printed}");
    assert!(srt["conclusion_ms"].as_f64().unwrap() > 0.0, "{printed}");
    // libsrt's RTT starts at 100 ms and moves with every ACKACK it gets
    // back: anything else shows our ACKACKs answered its full ACKs.
    let rtt = srt["rtt_ms"].as_f64().unwrap();
    assert!(rtt > 0.0 && rtt != 100.0, "rtt {rtt}: {printed}");
    assert!(!printed.contains(&tx_secret(KEY, "cam1", &format!("{:X}", now() + 3600 * 24))[..12]));
    // srt-live-transmit keeps listening: stop it and read what it wrote.
    let (_dir, _path) = received_by_libsrt(listener, &json);
    let media = json["media_seconds"].as_f64().unwrap();
    assert!(media > 3.5, "pushed {media} s of 4 s");
}

/// Nothing answers on the UDP port: the push times out in the handshake
/// within its --timeout, and says UDP.
#[test]
fn silent_udp_port_is_a_named_timeout() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let url = srt_url(port, "s", KEY, now() + 3600 * 24);
    let (json, printed, code) = push_json(&url, &["--timeout", "1s"], Duration::from_secs(30));
    assert_eq!(code, Some(1), "{printed}");
    assert_eq!(json["outcome"], "timeout", "{printed}");
    assert_eq!(json["phase"], "handshake", "{printed}");
    assert_eq!(json["step"], 2, "{printed}");
    let ev = json["evidence"].to_string();
    assert!(ev.contains(&format!("UDP port {port}")), "{printed}");
}

/// A listener that rejects every call with `reason`, on a port of its own.
fn rejecting_listener(
    reason: srt_tokio::access::RejectReason,
) -> (u16, std::thread::JoinHandle<()>) {
    use futures::StreamExt;
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let addr = udp.local_addr().unwrap();
            let (_l, mut incoming) = srt_tokio::SrtListener::builder()
                .socket(udp)
                .bind(addr)
                .await
                .unwrap();
            tx.send(addr.port()).unwrap();
            // One call is all a test makes; bounded so the thread ends.
            let first =
                tokio::time::timeout(Duration::from_secs(30), incoming.incoming().next()).await;
            if let Ok(Some(req)) = first {
                let _ = req.reject(reason).await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        });
    });
    (rx.recv_timeout(READY).expect("listener bound"), t)
}

/// Issue 17: a listener's access-control code is weighed with the local
/// facts: 1401 on an expired URL is expired_url; 1401 on a URL signed with
/// another key is bad_secret; 1409 is already_in_use.
#[test]
fn rejections_get_the_same_outcomes_as_rtmp() {
    use srt_tokio::access::{RejectReason, ServerRejectReason};
    let cases = [
        (
            ServerRejectReason::Unauthorized,
            KEY,
            now() - 600,
            "expired_url",
            3,
            "1401 unauthorized",
        ),
        (
            ServerRejectReason::Unauthorized,
            "otherkey",
            now() + 86_400,
            "bad_secret",
            4,
            "1401 unauthorized",
        ),
        (
            ServerRejectReason::Conflict,
            KEY,
            now() + 86_400,
            "already_in_use",
            5,
            "1409 conflict",
        ),
    ];
    for (reason, key, expiry, outcome, step, words) in cases {
        let (port, t) = rejecting_listener(RejectReason::Server(reason));
        let url = srt_url(port, "s", key, expiry);
        let (json, printed, code) = push_json(&url, &["--timeout", "5s"], Duration::from_secs(30));
        assert_eq!(code, Some(1), "{printed}");
        assert_eq!(json["outcome"], outcome, "{printed}");
        assert_eq!(json["step"], step, "{printed}");
        assert!(json["evidence"].to_string().contains(words), "{printed}");
        t.join().unwrap();
    }
}

/// An SRT listener on its own port that accepts every caller and counts
/// the callers and the TS bytes they send (a many-caller peer for `load`).
struct Sink {
    port: u16,
    callers: std::sync::Arc<std::sync::atomic::AtomicU64>,
    bytes: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

fn accepting_sink() -> Sink {
    use futures::StreamExt;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let (callers, bytes) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (c, b) = (callers.clone(), bytes.clone());
    let (tx, rx) = std::sync::mpsc::channel();
    // The thread lives as long as the test process (its runtime serves
    // every caller); the test binary's exit ends it.
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let addr = udp.local_addr().unwrap();
            let (_l, mut incoming) = srt_tokio::SrtListener::builder()
                .socket(udp)
                .bind(addr)
                .await
                .unwrap();
            tx.send(addr.port()).unwrap();
            while let Some(req) = incoming.incoming().next().await {
                let Ok(mut s) = req.accept(None).await else {
                    continue;
                };
                c.fetch_add(1, Ordering::SeqCst);
                let b = b.clone();
                tokio::spawn(async move {
                    while let Some(Ok((_, d))) = s.next().await {
                        b.fetch_add(d.len() as u64, Ordering::SeqCst);
                    }
                });
            }
        });
    });
    Sink {
        port: rx.recv_timeout(READY).expect("sink bound"),
        callers,
        bytes,
    }
}

/// `load` with SRT publishers: the same report (outcomes, phases from start
/// and from schedule, lag) plus SRT's counts; the listener saw every caller
/// and their TS.
#[test]
fn load_over_srt_reports_srt_counts() {
    use std::sync::atomic::Ordering;
    let sink = accepting_sink();
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("load.json");
    let template = format!(
        "srt://127.0.0.1:{}?streamid=#!::r=live/load{{i}}",
        sink.port
    );
    let o = run(
        bin()
            .args([
                "load",
                "--url-template",
                &template,
                "--publishers",
                "4",
                "--rate",
                "0",
            ])
            .args(["--duration", "3s", "--progress", "none", "--json-out"])
            .arg(&report),
        Duration::from_secs(90),
    );
    assert!(o.status.success(), "{}", text(&o));
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(s["outcomes"]["accepted"], 4, "{s}");
    for phase in ["dns", "handshake", "publish"] {
        assert_eq!(
            s["phases_ms"][phase]["count"], 4,
            "{phase}: {}",
            s["phases_ms"]
        );
        assert_eq!(s["phases_from_schedule_ms"][phase]["count"], 4, "{phase}");
    }
    assert_eq!(s["srt"]["publishers"], 4, "{s}");
    assert!(
        s["srt"]["packets_sent"].as_u64().unwrap() > 4 * 100,
        "{}",
        s["srt"]
    );
    assert!(s["srt"]["packets_retransmitted"].is_u64());
    assert!(s["srt"]["packets_dropped"].is_u64());
    assert!(text(&o).contains("srt: 4 publishers"), "{}", text(&o));
    assert_eq!(sink.callers.load(Ordering::SeqCst), 4);
    // Each publisher streamed ~3 s of a ~500 kbit/s fixture.
    let got = sink.bytes.load(Ordering::SeqCst);
    assert!(got > 4 * 100_000, "sink got {got} bytes");
}

/// A UDP relay between one caller and the listener on `upstream` that
/// drops every `nth` data packet the caller sends for the first time
/// (retransmissions, flagged R in the packet's second word, pass): only
/// the caller's answers to the listener's NAKs can repair the stream.
struct LossyRelay {
    port: u16,
    dropped: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

fn lossy_relay(upstream: u16, nth: u64) -> LossyRelay {
    use std::net::UdpSocket;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    let front = UdpSocket::bind("127.0.0.1:0").unwrap();
    let back = UdpSocket::bind("127.0.0.1:0").unwrap();
    back.connect(("127.0.0.1", upstream)).unwrap();
    // Bounded reads so the threads see `stop`.
    for s in [&front, &back] {
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
    }
    let port = front.local_addr().unwrap().port();
    let caller = Arc::new(Mutex::new(None));
    let dropped = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (f2, b2) = (front.try_clone().unwrap(), back.try_clone().unwrap());
    let (c2, d2, s2) = (caller.clone(), dropped.clone(), stop.clone());
    let up = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let mut data = 0u64;
        while !s2.load(Ordering::Relaxed) {
            let Ok((n, from)) = f2.recv_from(&mut buf) else {
                continue;
            };
            *c2.lock().unwrap() = Some(from);
            let first_send = n >= 16 && buf[0] & 0x80 == 0 && buf[4] & 0x04 == 0;
            if first_send {
                data += 1;
                if data.is_multiple_of(nth) {
                    d2.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
            let _ = b2.send(&buf[..n]);
        }
    });
    let s3 = stop.clone();
    let down = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while !s3.load(Ordering::Relaxed) {
            let Ok(n) = back.recv(&mut buf) else {
                continue;
            };
            if let Some(to) = *caller.lock().unwrap() {
                let _ = front.send_to(&buf[..n], to);
            }
        }
    });
    LossyRelay {
        port,
        dropped,
        stop,
        threads: vec![up, down],
    }
}

impl Drop for LossyRelay {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// One data packet in 20 lost on the way to libsrt's srt-live-transmit:
/// the caller retransmits what libsrt's NAKs name, and what libsrt
/// delivers decodes without one error and lasts as long as the push.
#[test]
fn lost_packets_are_retransmitted_to_libsrt() {
    if !have("srt-live-transmit") || !have("ffprobe") || !have("ffmpeg") {
        return;
    }
    let port = free_udp_port();
    let listener = spawn(Command::new("srt-live-transmit").args([
        &format!("srt://127.0.0.1:{port}?mode=listener"),
        "file://con",
    ]));
    listener.wait_for("srt-live-transmit to start", READY, || {
        listener.1.stderr().contains("Media path").then_some(())
    });
    let relay = lossy_relay(port, 20);
    let url = srt_url(relay.port, "lossy", KEY, now() + 3600 * 24);
    let (json, printed, code) = push_json(&url, &["--duration", "4s"], Duration::from_secs(60));
    assert_eq!(code, Some(0), "{printed}");
    assert_eq!(json["outcome"], "accepted", "{printed}");
    let dropped = relay.dropped.load(std::sync::atomic::Ordering::Relaxed);
    drop(relay);
    assert!(dropped >= 10, "the relay dropped only {dropped}");
    let srt = &json["srt"];
    let (rexmit, lost) = (
        srt["packets_retransmitted"].as_u64().unwrap(),
        srt["packets_lost"].as_u64().unwrap(),
    );
    // A loss among the very last packets may be reported after the close.
    assert!(
        lost + 1 >= dropped,
        "{lost} reported lost of {dropped}: {printed}"
    );
    assert!(
        rexmit + 1 >= dropped,
        "{rexmit} retransmitted of {dropped}: {printed}"
    );
    let (_dir, path) = received_by_libsrt(listener, &json);
    let decode = run(
        Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-i"])
            .arg(&path)
            .args(["-f", "null", "-"]),
        Duration::from_secs(60),
    );
    assert!(
        decode.status.success() && text(&decode).trim().is_empty(),
        "a hole in what libsrt delivered: {}",
        text(&decode)
    );
}
