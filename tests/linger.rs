//! Early HTTP answers reach clients that write their whole body before reading
//! (issue 10 part 4): `pushprobe callbacks` answers 413 to a 2 MiB body without
//! reading it, then lingers (shuts down its write side, reads and discards for
//! a bounded time and byte count) so the kernel does not reset the connection
//! and destroy the answer. Checked with Python's urllib (the client of the
//! report) and a plain std `TcpStream`, one at a time and 200 at once, against
//! the real binary; `serve --http` the same for its 404/405; the bounds of the
//! linger against the library server.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::{Proc, bin, have, printed_port, spawn};

/// The body every client sends: 2 MiB, 32 times the receiver's 64 KiB limit.
const BODY: usize = 2 * 1024 * 1024;

/// Starts `cmd` (listening on 127.0.0.1) and returns it with the address it
/// printed on stderr after `prefix` (`http://127.0.0.1:PORT...`).
fn start(cmd: &mut std::process::Command, prefix: &'static str) -> (Proc, SocketAddr) {
    let p = spawn(cmd);
    let port = printed_port(&p, &format!("{prefix}127.0.0.1:"));
    (p, SocketAddr::from(([127, 0, 0, 1], port)))
}

fn callbacks() -> (Proc, SocketAddr) {
    let mut c = bin();
    c.env("PUSHPROBE_CALLBACK_KEY", "linger-test-key").args([
        "callbacks",
        "--listen",
        "127.0.0.1:0",
    ]);
    start(&mut c, "listening for push callbacks on http://")
}

/// POSTs `BODY` bytes the way urllib does: the whole body first, then the
/// answer. The status, or the error that replaced it (a reset shows here as
/// "Broken pipe" or "Connection reset").
fn post_all_then_read(addr: SocketAddr, path: &str, body: &[u8]) -> Result<u16, String> {
    let err = |what: &str, e: std::io::Error| format!("{what}: {e}");
    let mut s = TcpStream::connect(addr).map_err(|e| err("connect", e))?;
    // Bounds far above the 2 s linger, so only a hang trips them.
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())
        .map_err(|e| err("write head", e))?;
    s.write_all(body).map_err(|e| err("write body", e))?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).map_err(|e| err("read", e))?;
    let text = String::from_utf8_lossy(&answer);
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|t| t.get(..3))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {text:?}"))
}

fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The repro of issue 10 part 4: 30 POSTs of 2 MiB from Python's urllib, one
/// after another. Before the lingering close about half ended in
/// "[Errno 32] Broken pipe".
#[test]
fn urllib_writing_the_whole_body_first_gets_413_every_time() {
    if !have("python3") {
        return;
    }
    let (_p, addr) = callbacks();
    let script = r#"
import json, sys, urllib.request, urllib.error
url, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
body = b"x" * size
counts = {}
for _ in range(n):
    try:
        req = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        key = str(urllib.request.urlopen(req, timeout=30).status)
    except urllib.error.HTTPError as e:
        key = str(e.code)
    except Exception as e:
        key = repr(e)
    counts[key] = counts.get(key, 0) + 1
print(json.dumps(counts))
"#;
    let out = common::run(
        std::process::Command::new("python3").args([
            "-c",
            script,
            &format!("http://{addr}/callback"),
            "30",
            &BODY.to_string(),
        ]),
        Duration::from_secs(300),
    );
    assert!(out.status.success(), "{}", common::text(&out));
    let counts: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(counts, serde_json::json!({"413": 30}));
}

/// The same with a std `TcpStream`: 30 of 30 get 413.
#[test]
fn a_std_client_writing_the_whole_body_first_gets_413_every_time() {
    let (_p, addr) = callbacks();
    let body = vec![b'x'; BODY];
    let results: Vec<_> = (0..30)
        .map(|_| post_all_then_read(addr, "/callback", &body))
        .collect();
    assert!(results.iter().all(|r| r == &Ok(413)), "{results:?}");
}

/// 200 such clients at once: every one gets 413, and the receiver does not
/// hold the bodies: its resident memory grows by less than a tenth of the
/// 400 MiB sent. Per connection it keeps hyper's read buffer (at most
/// ~408 KiB) and an 8 KiB discard buffer while lingering, so 200 connections
/// stay far under 40 MiB unless bodies are buffered.
#[test]
fn two_hundred_at_once_all_get_413_with_memory_bounded() {
    const CLIENTS: usize = 200;
    const BOUND_KIB: u64 = 40 * 1024;
    let (p, addr) = callbacks();
    let pid = p.0.id();
    let body = Arc::new(vec![b'x'; BODY]);
    // One request first, so what a first connection allocates once is in the
    // baseline.
    assert_eq!(post_all_then_read(addr, "/", &body), Ok(413));
    let rss_before = proc_status_kib(pid, "VmRSS:");
    let hwm_before = proc_status_kib(pid, "VmHWM:");

    let start = Arc::new(Barrier::new(CLIENTS));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (body, start) = (body.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                post_all_then_read(addr, "/", &body)
            })
        })
        .collect();
    let results: Vec<_> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let rss_after = proc_status_kib(pid, "VmRSS:");
    let hwm_after = proc_status_kib(pid, "VmHWM:");
    let failed: Vec<_> = results.iter().filter(|r| **r != Ok(413)).collect();
    assert!(
        failed.is_empty(),
        "{} of {CLIENTS}: {failed:?}",
        failed.len()
    );
    println!(
        "receiver VmRSS {rss_before} -> {rss_after} KiB, peak VmHWM {hwm_before} -> {hwm_after} KiB"
    );
    assert!(
        hwm_after.saturating_sub(rss_before) < BOUND_KIB,
        "peak resident memory grew {} KiB (bound {BOUND_KIB})",
        hwm_after - rss_before
    );
    assert!(
        rss_after.saturating_sub(rss_before) < BOUND_KIB,
        "resident memory grew {} KiB (bound {BOUND_KIB})",
        rss_after - rss_before
    );
}

/// `serve --http` answers 404 and 405 before reading a body; the answer still
/// arrives at a client that sends 2 MiB first.
#[test]
fn serve_http_early_answers_arrive_too() {
    let mut c = bin();
    c.args(["serve", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"]);
    let (_p, addr) = start(&mut c, "pushprobe serve: HTTP on http://");
    let body = vec![b'x'; BODY];
    for (path, want) in [("/nowhere", 404), ("/streams", 405)] {
        let results: Vec<_> = (0..10)
            .map(|_| post_all_then_read(addr, path, &body))
            .collect();
        assert!(
            results.iter().all(|r| r == &Ok(want)),
            "{path}: {results:?}"
        );
    }
}

/// Starts the library receiver server with these linger bounds; returns its
/// address and the sender that stops it.
async fn library_server(
    linger_time: Duration,
    linger_bytes: u64,
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    use pushprobe::callback::{ReceiverConfig, ReceiverState, ServeOptions, serve_with};
    use pushprobe::secret::Secret;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (state, _rx) = ReceiverState::new(ReceiverConfig::new(Secret::new("k".into())));
    let opts = ServeOptions {
        linger_time,
        linger_bytes,
        ..ServeOptions::default()
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_with(listener, state, opts, async {
        let _ = stop_rx.await;
    }));
    (addr, stop_tx, server)
}

/// Declares a 100 GB body and sends it (16 KiB writes, `pace` between them)
/// until the server cuts the connection; how long that took and how many
/// bytes went out. Gives up after 60 s, which the callers' bounds reject.
fn send_endlessly(addr: SocketAddr, pace: Option<Duration>) -> (Duration, u64) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000000\r\n\r\n")
        .unwrap();
    let chunk = [b'x'; 16 * 1024];
    let (began, mut sent) = (Instant::now(), 0u64);
    while began.elapsed() < Duration::from_secs(60) {
        if let Some(p) = pace {
            std::thread::sleep(p);
        }
        match s.write(&chunk) {
            Ok(n) => sent += n as u64,
            Err(_) => break,
        }
    }
    (began.elapsed(), sent)
}

/// The time bound: a client that keeps sending slowly (16 KiB every 10 ms,
/// under 1.7 MB/s, so far from the byte bound) is cut off once the 500 ms
/// linger has passed, not after the 60 s it would keep going.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lingering_stops_at_its_time_bound() {
    let linger_time = Duration::from_millis(500);
    let (addr, stop, server) = library_server(linger_time, u64::MAX).await;
    let (took, sent) =
        tokio::task::spawn_blocking(move || send_endlessly(addr, Some(Duration::from_millis(10))))
            .await
            .unwrap();
    assert!(took >= linger_time, "cut off after {took:?} ({sent} bytes)");
    // 20 s: a margin of 40 times the linger for a loaded machine.
    assert!(took < Duration::from_secs(20), "not cut off: {took:?}");
    stop.send(()).unwrap();
    let done = tokio::time::timeout(Duration::from_secs(20), server).await;
    assert!(matches!(done, Ok(Ok(Ok(())))), "{done:?}");
}

/// The byte bound: a client sending as fast as it can is cut off once 4 MiB
/// were discarded, long before the 60 s linger time, having sent at most the
/// 4 MiB plus what loopback socket buffers hold (a few MiB; 32 MiB allowed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lingering_stops_at_its_byte_bound() {
    const BYTES: u64 = 4 * 1024 * 1024;
    let linger_time = Duration::from_secs(60);
    let (addr, stop, server) = library_server(linger_time, BYTES).await;
    let (took, sent) = tokio::task::spawn_blocking(move || send_endlessly(addr, None))
        .await
        .unwrap();
    assert!(took < Duration::from_secs(50), "not cut off: {took:?}");
    assert!(sent >= BYTES, "cut off after {sent} bytes");
    assert!(sent < BYTES + 32 * 1024 * 1024, "sent {sent}");
    stop.send(()).unwrap();
    let done = tokio::time::timeout(Duration::from_secs(20), server).await;
    assert!(matches!(done, Ok(Ok(Ok(())))), "{done:?}");
}
