//! Hostile and broken RTMP servers on loopback (issue 7): each scripted server
//! misbehaves in one way, and `pushprobe push` (and `load`) must end with a
//! classified outcome naming the phase, within its timeout, without a panic,
//! a hang or unbounded memory.

mod common;

use std::io::{self, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use pushprobe::rtmp::amf0::Value;
use pushprobe::rtmp::chunk;
use pushprobe::rtmp::handshake::Handshaker;
use pushprobe::rtmp::message::{self, COMMAND_AMF0, Control};

use common::script::*;
use common::*;

/// The phase timeout every push here runs with.
const TIMEOUT: Duration = Duration::from_secs(2);
/// Slack for process start-up and a loaded machine (a debug binary starts in
/// 50-170 ms here with the load average at 13; this is 15 times that).
const MARGIN: Duration = Duration::from_millis(2500);
/// Time for a publisher's socket buffers to fill at the fixture's rate once
/// the server stops reading, before a write blocks and the timeout starts.
const FILL: Duration = Duration::from_secs(2);

/// Runs the real binary to its end (killed after 20 s); returns the output,
/// how long it took and the peak resident memory seen, in KiB.
fn run_measured(cmd: &mut Command) -> (Output, Duration, u64) {
    let began = Instant::now();
    let mut p = spawn(cmd);
    let pid = p.0.id();
    let mut peak = 0;
    while began.elapsed() < Duration::from_secs(20) {
        if let Ok(Some(_)) = p.0.try_wait() {
            break;
        }
        peak = peak.max(vm_rss_kib(pid).unwrap_or(0));
        // The sampling interval of the memory peak, not a wait for anything.
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = began.elapsed();
    (p.finish(Duration::ZERO), took, peak)
}

fn vm_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `pushprobe push URL --json --timeout 2s --duration 3s` plus `extra`.
fn push(url: &str, extra: &[&str]) -> (serde_json::Value, Duration, Output) {
    let (out, took, peak) = run_measured(
        bin()
            .args(["push", url, "--json", "--timeout", "2s", "--duration", "3s"])
            .args(extra),
    );
    let t = text(&out);
    assert!(!t.contains("panicked"), "panic: {t}");
    assert!(peak < 200 * 1024, "peak RSS {peak} KiB: {t}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("one JSON object on stdout ({e}): {t}"));
    eprintln!(
        "{url}: {} at {} in {took:?}, peak RSS {peak} KiB",
        v["outcome"], v["phase"]
    );
    (v, took, out)
}

/// Exit 1 with `outcome` at `phase`, within `limit`.
fn assert_ends(
    (v, took, out): &(serde_json::Value, Duration, Output),
    outcome: &str,
    phase: &str,
    limit: Duration,
) {
    assert_eq!(out.status.code(), Some(1), "{v}\n{}", text(out));
    assert_eq!(v["outcome"], outcome, "{v}");
    assert_eq!(v["phase"], phase, "{v}");
    assert!(*took < limit, "took {took:?}, limit {limit:?}: {v}");
}

#[test]
fn never_answers_the_handshake_is_a_handshake_timeout() {
    let srv = Server::start(|mut p| p.hold_reading());
    let r = push(&srv.url("s"), &[]);
    assert_ends(&r, "timeout", "handshake", TIMEOUT + MARGIN);
    assert_eq!(r.0["step"], 2);
}

#[test]
fn garbage_handshake_is_handshake_failed() {
    let srv = Server::start(|mut p| {
        let mut c0c1 = [0u8; 1537];
        p.s.read_exact(&mut c0c1)?;
        // An HTTP server on the RTMP port: the usual wrong-port mistake.
        let mut reply = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n".to_vec();
        reply.resize(3073, b'x');
        p.s.write_all(&reply)?;
        p.hold_reading()
    });
    let r = push(&srv.url("s"), &[]);
    assert_ends(&r, "handshake_failed", "handshake", MARGIN);
}

#[test]
fn close_mid_handshake_is_handshake_failed() {
    let srv = Server::start(|mut p| {
        let mut c0c1 = [0u8; 1537];
        p.s.read_exact(&mut c0c1)?;
        let mut hs = Handshaker::server();
        let step = hs.feed(&c0c1).map_err(io::Error::other)?;
        // S0 and half of S1, then close.
        p.s.write_all(&step.send[..1 + 768])?;
        Ok(())
    });
    let r = push(&srv.url("s"), &[]);
    assert_ends(&r, "handshake_failed", "handshake", MARGIN);
    let ev = r.0["evidence"].to_string();
    assert!(ev.contains("closed"), "{ev}");
}

#[test]
fn silent_after_connect_is_a_connect_timeout() {
    let srv = Server::start(|mut p| {
        p.handshake()?;
        p.expect("connect")?;
        p.drain()
    });
    let r = push(&srv.url("s"), &[]);
    assert_ends(&r, "timeout", "connect", TIMEOUT + MARGIN);
}

#[test]
fn issue7_chunk_size_zero() {
    let srv = Server::start(|mut p| {
        p.handshake()?;
        p.expect("connect")?;
        // Sent raw: a SetChunkSize of 0 would make our own writer misbehave.
        let mut out = BytesMut::new();
        chunk::write_message(
            &mut out,
            128,
            2,
            0,
            message::SET_CHUNK_SIZE,
            0,
            &[0, 0, 0, 0],
        );
        p.s.write_all(&out)?;
        p.answer_connect()?;
        p.drain()
    });
    let r = push(&srv.url("s"), &[]);
    assert_ends(&r, "protocol_error", "connect", MARGIN);
    let ev = r.0["evidence"].to_string();
    assert!(ev.contains("chunk size 0"), "{ev}");
}

#[test]
fn issue12_chunk_size_with_the_top_bit_set_is_a_protocol_error() {
    // The RFC says the top bit of SetChunkSize must be 0. Publisher and
    // ingest share one policy (`rtmp::session`): refuse it, do not mask it.
    let srv = Server::start(|mut p| {
        p.handshake()?;
        p.expect("connect")?;
        p.control(&Control::SetChunkSize(0x8000_1000))?;
        p.answer_connect()?;
        p.drain()
    });
    let r = push(&srv.url("s"), &[]);
    assert_ends(&r, "protocol_error", "connect", MARGIN);
    let ev = r.0["evidence"].to_string();
    assert!(ev.contains("chunk size 2147487744"), "{ev}");
}

#[test]
fn issue7_chunk_size_max_is_legal_and_a_huge_message_is_refused() {
    // 2^31-1 is the largest chunk size RTMP allows: a server may use it.
    let legal = Server::start(|mut p| {
        p.handshake()?;
        p.expect("connect")?;
        p.control(&Control::SetChunkSize(0x7FFF_FFFF))?;
        p.answer_connect()?;
        p.create_stream_ok()?;
        p.publish_start()?;
        p.drain()
    });
    let (v, took, out) = push(&legal.url("s"), &[]);
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(v["outcome"], "accepted", "{v}");
    assert!(took < Duration::from_secs(3) + MARGIN, "{took:?}");

    // With it, one chunk may claim a 16 MB message and trickle it: refused at
    // the header, nothing of the size allocated.
    let huge = Server::start(|mut p| {
        p.handshake()?;
        p.expect("connect")?;
        p.control(&Control::SetChunkSize(0x7FFF_FFFF))?;
        let mut head = BytesMut::new();
        chunk::write_message(&mut head, 0x7FFF_FFFF, 3, 0, COMMAND_AMF0, 0, &[]);
        head[4..7].copy_from_slice(&[0xFF, 0xFF, 0xFF]); // claimed length
        p.s.write_all(&head)?;
        for _ in 0..100 {
            if p.s.write_all(&[0u8; 1024]).is_err() {
                break;
            }
            // The trickle is the behaviour under test.
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    });
    let r = push(&huge.url("s"), &[]);
    assert_ends(&r, "protocol_error", "connect", MARGIN);
    let ev = r.0["evidence"].to_string();
    assert!(ev.contains("16777215 bytes exceeds"), "{ev}");
}

#[test]
fn on_status_without_info_object_is_a_publish_timeout() {
    let srv = Server::start(|mut p| {
        p.handshake()?;
        p.connect_ok()?;
        p.create_stream_ok()?;
        p.expect("publish")?;
        p.reply_values(
            1,
            &[Value::str("onStatus"), Value::Number(0.0), Value::Null],
        )?;
        p.reply_values(1, &[Value::str("onStatus"), Value::Number(0.0)])?;
        p.drain()
    });
    let r = push(&srv.url("s"), &[]);
    assert_ends(&r, "timeout", "publish", TIMEOUT + MARGIN);
}

#[test]
fn issue7_two_value_command_is_a_protocol_error() {
    // rml_rtmp panics on commands of fewer than three values; a createStream
    // `_result` with no stream id must be a protocol error, not a refusal.
    let srv = Server::start(|mut p| {
        p.handshake()?;
        p.connect_ok()?;
        let c = p.expect("createStream")?;
        p.reply_values(0, &[Value::str("_result"), Value::Number(c.transaction_id)])?;
        p.drain()
    });
    let r = push(&srv.url("s"), &[]);
    assert_ends(&r, "protocol_error", "create_stream", MARGIN);

    // A one-value command cannot be parsed at all.
    let srv = Server::start(|mut p| {
        p.handshake()?;
        p.expect("connect")?;
        p.reply_values(0, &[Value::str("_result")])?;
        p.drain()
    });
    let r = push(&srv.url("s"), &[]);
    assert_ends(&r, "protocol_error", "connect", MARGIN);
}

#[test]
fn issue7_window_ack_size_zero() {
    // A window of 0 is meaningless: the client must not divide by it nor ack
    // every byte. It keeps its window and streams.
    let srv = Server::start(|mut p| {
        p.handshake()?;
        p.expect("connect")?;
        p.control(&Control::WindowAckSize(0))?;
        p.answer_connect()?;
        p.create_stream_ok()?;
        p.publish_start()?;
        // Some server traffic while the client streams, each a chance to ack.
        for i in 0..20 {
            p.control(&Control::User(message::UserControl::PingRequest(i)))?;
            p.reply(1, &on_status("status", "NetStream.Data.Start"))?;
            // Spread over the streaming: the behaviour under test.
            std::thread::sleep(Duration::from_millis(50));
        }
        p.drain()
    });
    let (v, took, out) = push(&srv.url("s"), &[]);
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(v["outcome"], "accepted", "{v}");
    assert!(took < Duration::from_secs(3) + MARGIN, "{took:?}");
    // The server's script has read everything up to the close: its count is final.
    wait_until("the scripted server to see the close", READY, &[], || {
        (srv.seen.finished.load(Relaxed) >= 1).then_some(())
    });
    let acks = srv.seen.acks.load(Relaxed);
    assert_eq!(acks, 0, "acks sent for a window of 0");
}

/// A listener whose accepted sockets have a small receive buffer, so a server
/// that stops reading blocks the client's writes within a second.
fn small_window_listener() -> TcpListener {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.set_recv_buffer_size(4096).unwrap();
    s.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    s.listen(1024).unwrap();
    s.into()
}

#[test]
fn issue7_stops_reading_is_a_streaming_timeout() {
    let srv = Server::start_on(small_window_listener(), |mut p| {
        p.accept_publish()?;
        p.hold(Duration::from_secs(15))
    });
    // A duration well past the timeout: the push must end on the blocked
    // write, not on the clock.
    let (out, took, _) = run_measured(bin().args([
        "push",
        &srv.url("s"),
        "--json",
        "--timeout",
        "2s",
        "--duration",
        "12s",
    ]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(out.status.code(), Some(1), "{v}");
    assert_eq!(v["outcome"], "interrupted", "{v}");
    assert_eq!(v["phase"], "streaming", "{v}");
    let ev = v["evidence"].to_string();
    assert!(ev.contains("stopped answering during streaming"), "{ev}");
    assert!(took < TIMEOUT + FILL + MARGIN, "took {took:?}");
}

/// `pushprobe load` with 100 publishers, all at once, against `srv`: returns
/// the JSON report, how long the run took and its output.
fn load(srv: &Server, duration: &str) -> (serde_json::Value, Duration, Output) {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let template = format!("rtmp://127.0.0.1:{}/live/s{{i}}", srv.port);
    let (out, took, peak) = run_measured(
        bin()
            .args(["load", "--url-template", &template])
            .args(["--publishers", "100", "--rate", "0", "--timeout", "2s"])
            .args(["--duration", duration, "--progress", "none", "--json-out"])
            .arg(&report),
    );
    let t = text(&out);
    assert!(!t.contains("panicked"), "panic: {t}");
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(peak < 300 * 1024, "peak RSS {peak} KiB");
    let v: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&report).unwrap_or_else(|e| panic!("report written ({e}): {t}")),
    )
    .expect("report is JSON");
    eprintln!("load: {} in {took:?}, peak RSS {peak} KiB", v["outcomes"]);
    assert_eq!(v["publishers"], 100, "{}", v["outcomes"]);
    (v, took, out)
}

#[test]
fn load_of_100_against_hostile_servers_ends_and_reports() {
    let silent = Server::start(|mut p| p.hold_reading());
    let (v, took, _) = load(&silent, "3s");
    assert_eq!(v["outcomes"]["timeout"], 100, "{}", v["outcomes"]);
    assert_eq!(v["phases_ms"]["tcp"]["count"], 100);
    assert_eq!(v["phases_ms"]["handshake"]["count"], 0);
    assert!(took < TIMEOUT + MARGIN + Duration::from_secs(1), "{took:?}");

    let garbage = Server::start(|mut p| {
        let mut c0c1 = [0u8; 1537];
        p.s.read_exact(&mut c0c1)?;
        p.s.write_all(&[0x47; 3073])?;
        p.hold_reading()
    });
    let (v, took, _) = load(&garbage, "3s");
    assert_eq!(v["outcomes"]["handshake_failed"], 100, "{}", v["outcomes"]);
    assert!(took < MARGIN + Duration::from_secs(1), "{took:?}");

    // Accepts every publish, then stops reading: every publisher's write
    // blocks and times out long before the 10 s duration.
    let stalled = Server::start_on(small_window_listener(), |mut p| {
        p.accept_publish()?;
        p.hold(Duration::from_secs(15))
    });
    let (v, took, _) = load(&stalled, "10s");
    assert_eq!(v["outcomes"]["interrupted"], 100, "{}", v["outcomes"]);
    assert_eq!(v["phases_ms"]["publish"]["count"], 100);
    // Ending on the clock would take the 10 s and count accepted; a doubled
    // margin for 100 publishers in one process.
    assert!(took < TIMEOUT + FILL + 2 * MARGIN, "{took:?}");
}
