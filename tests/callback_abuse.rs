//! The callback receiver under abuse (issue 7), on a real socket: forged
//! signs, stale `t`, replays, malformed JSON, 10 MB bodies, clients trickling
//! headers and 10,000 junk requests, each refused and counted, with memory
//! bounded, while real signed callbacks sent in between are all accepted and
//! reach the consumer. One test: it measures this process's memory.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pushprobe::callback::{self, ReceiverConfig, ReceiverState};
use pushprobe::secret::Secret;
use pushprobe::sign;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

const KEY: &str = "callback-key-for-abuse-tests";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn vm_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A push callback body as Tencent sends it, signed with `key` over `t`.
fn body(key: &str, sequence: &str, t: u64) -> String {
    let sign = sign::callback_sign(&Secret::new(key.into()), t);
    serde_json::json!({
        "appid": 12345,
        "app": "push.example.com",
        "appname": "live",
        "stream_id": format!("s-{sequence}"),
        "channel_id": format!("s-{sequence}"),
        "event_time": t - 600,
        "event_type": 1,
        "sequence": sequence,
        "node": "127.0.0.1",
        "user_ip": "127.0.0.1",
        "stream_param": "txSecret=abc&txTime=FFFFFFFF",
        "errcode": 0,
        "errmsg": "ok",
        "set_id": 2,
        "width": 640,
        "height": 360,
        "t": t,
        "sign": sign,
    })
    .to_string()
}

/// A keep-alive HTTP/1.1 client speaking raw bytes, to send what a polite
/// client would not.
struct Client {
    io: BufReader<TcpStream>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        Client {
            io: BufReader::new(TcpStream::connect(addr).await.unwrap()),
        }
    }

    /// POSTs `body`; returns the status, or 0 when the server closed instead.
    async fn post(&mut self, path: &str, body: &[u8]) -> u16 {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let mut req = head.into_bytes();
        req.extend_from_slice(body);
        if self.io.get_mut().write_all(&req).await.is_err() {
            return 0;
        }
        self.response().await
    }

    async fn response(&mut self) -> u16 {
        let mut line = String::new();
        if self.io.read_line(&mut line).await.unwrap_or(0) == 0 {
            return 0;
        }
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut len = 0;
        loop {
            line.clear();
            if self.io.read_line(&mut line).await.unwrap_or(0) == 0 {
                return status;
            }
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; len];
        let _ = self.io.read_exact(&mut body).await;
        status
    }
}

/// A client trickling header bytes; returns how long until the server cut it off.
async fn trickle(addr: SocketAddr) -> Duration {
    let began = Instant::now();
    let mut s = TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\n").await;
    let mut buf = [0u8; 256];
    while began.elapsed() < Duration::from_secs(25) {
        if s.write_all(b"X").await.is_err() {
            break;
        }
        match tokio::time::timeout(Duration::from_millis(250), s.read(&mut buf)).await {
            Err(_) => continue,
            Ok(_) => break, // closed, reset, or an error response
        }
    }
    began.elapsed()
}

/// POSTs a body declared (or streamed) as 10 MB; returns the status and how
/// many body bytes were sent before the answer.
async fn ten_megabytes(addr: SocketAddr, chunked: bool) -> (u16, usize) {
    const TEN_MB: usize = 10 << 20;
    let s = TcpStream::connect(addr).await.unwrap();
    let (r, mut w) = s.into_split();
    let head = if chunked {
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_string()
    } else {
        format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {TEN_MB}\r\n\r\n")
    };
    w.write_all(head.as_bytes()).await.unwrap();
    let answer = tokio::spawn(async move {
        let mut line = String::new();
        let _ = BufReader::new(r).read_line(&mut line).await;
        line.split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0u16)
    });
    let piece = vec![b'{'; 16 * 1024];
    let mut sent = 0;
    while sent < TEN_MB && !answer.is_finished() {
        let ok = if chunked {
            let mut c = format!("{:x}\r\n", piece.len()).into_bytes();
            c.extend_from_slice(&piece);
            c.extend_from_slice(b"\r\n");
            w.write_all(&c).await
        } else {
            w.write_all(&piece).await
        };
        if ok.is_err() {
            break;
        }
        sent += piece.len();
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let status = tokio::time::timeout(Duration::from_secs(5), answer)
        .await
        .expect("an answer")
        .unwrap();
    (status, sent)
}

/// Junk request `i` of connection `conn` and the status it must get.
fn junk(conn: u32, i: usize) -> (String, u16) {
    match i % 4 {
        0 => (format!("{{\"sequence\": \"{conn}-{i}\""), 400),
        1 => ("null".to_string(), 400),
        // Well-formed but signed with nothing: forged.
        2 => (format!("{{\"t\": {}, \"sign\": {i}}}", now() + 600), 403),
        _ => ("x".repeat(i * 100), 400),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_refuses_and_counts_abuse_and_still_takes_real_callbacks() {
    let (state, mut events) = ReceiverState::new(ReceiverConfig::new(Secret::new(KEY.into())));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let server = tokio::spawn(callback::serve(
        listener,
        state.clone(),
        stop.clone().cancelled_owned(),
    ));
    let consumer = tokio::spawn(async move {
        let mut firsts = HashSet::new();
        while let Some(r) = events.recv().await {
            if !r.duplicate {
                firsts.insert(r.event.sequence.clone());
            }
        }
        firsts
    });

    // Warm up, then take the memory base.
    let mut c = Client::connect(addr).await;
    assert_eq!(
        c.post("/", body(KEY, "warm", now() + 600).as_bytes()).await,
        200
    );
    let rss0 = vm_rss_kib();
    let began = Instant::now();

    // Twenty slow clients trickle headers the whole time, one connection says
    // nothing at all, one keep-alive connection idles after a real callback.
    let trickles: Vec<_> = (0..20).map(|_| tokio::spawn(trickle(addr))).collect();
    let silent = TcpStream::connect(addr).await.unwrap();
    let mut idle = Client::connect(addr).await;
    assert_eq!(
        idle.post("/", body(KEY, "idle", now() + 600).as_bytes())
            .await,
        200
    );

    // Forged, stale, replayed, malformed: each answered and counted.
    let fresh = now() + 600;
    assert_eq!(
        c.post("/", body("wrong-key", "f1", fresh).as_bytes()).await,
        403
    );
    let mut forged = body(KEY, "f2", fresh);
    forged = forged.replace(&format!("\"t\":{fresh}"), &format!("\"t\":{}", fresh + 1));
    assert_eq!(
        c.post("/", forged.as_bytes()).await,
        403,
        "t changed under its sign"
    );
    assert_eq!(
        c.post("/", body(KEY, "old", now() - 60).as_bytes()).await,
        403
    );
    let real = body(KEY, "replayed", fresh);
    assert_eq!(c.post("/", real.as_bytes()).await, 200);
    for _ in 0..5 {
        assert_eq!(
            c.post("/", real.as_bytes()).await,
            200,
            "a retry is answered 200"
        );
    }
    let stale_replay = body(KEY, "old", now() - 1);
    assert_eq!(c.post("/", stale_replay.as_bytes()).await, 403);
    for junk in [
        &b"{not json"[..],
        b"[]",
        b"",
        b"\xff\xfe",
        br#"{"t": "soon", "sign": 1}"#,
    ] {
        assert_eq!(
            c.post("/", junk).await,
            400,
            "{:?}",
            String::from_utf8_lossy(junk)
        );
    }

    // Bytes that are not HTTP at all.
    for _ in 0..50 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"\x16\x03\x01\x02\x00NOT HTTP\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer)).await;
        assert!(
            answer.starts_with(b"HTTP/1.1 400"),
            "{:?}",
            String::from_utf8_lossy(&answer)
        );
    }

    // 10 MB bodies: declared ones refused on the header, streamed ones at
    // the 64 KiB limit; neither read to the end.
    let (status, sent) = ten_megabytes(addr, false).await;
    assert_eq!(status, 413);
    assert!(
        sent < 1 << 20,
        "declared 10 MB: {sent} bytes sent before the 413"
    );
    let (status, sent) = ten_megabytes(addr, true).await;
    assert_eq!(status, 413);
    assert!(
        sent < 4 << 20,
        "chunked 10 MB: {sent} bytes sent before the 413"
    );

    // 10,000 junk requests from 100 keep-alive connections at once, each
    // connection sending one real callback in the middle of its junk.
    let junk_began = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for conn in 0..100 {
        tasks.spawn(async move {
            let mut c = Client::connect(addr).await;
            let mut real_ok = false;
            for i in 0..100 {
                if i == 50 {
                    let b = body(KEY, &format!("real-{conn}"), now() + 600);
                    real_ok = c.post("/cb", b.as_bytes()).await == 200;
                    continue;
                }
                let (junk, want) = junk(conn, i);
                assert_eq!(c.post("/cb", junk.as_bytes()).await, want, "{junk}");
            }
            real_ok
        });
    }
    let mut real_ok = 0;
    while let Some(r) = tasks.join_next().await {
        real_ok += u32::from(r.unwrap());
    }
    eprintln!("10,000 requests in {:?}", junk_began.elapsed());
    assert_eq!(real_ok, 100, "real callbacks answered 200 amid the junk");

    // The trickling clients are cut off by the 10 s header timeout.
    for t in trickles {
        let cut = t.await.unwrap();
        assert!(
            cut >= Duration::from_secs(8) && cut < Duration::from_secs(14),
            "trickling client cut off after {cut:?}"
        );
    }
    // The silent connection went the same way; the idle one was closed too.
    let mut silent = silent;
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(3), silent.read(&mut buf)).await;
    assert!(
        matches!(n, Ok(Ok(0)) | Ok(Err(_))),
        "silent connection closed: {n:?}"
    );
    let n = tokio::time::timeout(Duration::from_secs(3), idle.io.read(&mut buf)).await;
    assert!(
        matches!(n, Ok(Ok(0)) | Ok(Err(_))),
        "idle connection closed: {n:?}"
    );
    let rss1 = vm_rss_kib();

    let c = state.counters();
    eprintln!("{c:?}");
    eprintln!(
        "VmRSS {rss0} -> {rss1} KiB ({:+} KiB) over {:?}",
        rss1 as i64 - rss0 as i64,
        began.elapsed()
    );
    assert_eq!(
        c.accepted_push,
        1 + 1 + 1 + 100,
        "warm-up, idle, replayed, 100 real"
    );
    assert_eq!(c.duplicates, 5);
    let junk_forged = (0..100)
        .filter(|i| *i != 50 && junk(0, *i).1 == 403)
        .count() as u64;
    assert_eq!(c.forged, 2 + 100 * junk_forged);
    assert_eq!(c.stale, 2);
    assert_eq!(c.malformed, 5 + 50 + 100 * (99 - junk_forged));
    assert_eq!(
        c.timed_out,
        20 + 1,
        "trickling and silent; not the idle keep-alive"
    );
    assert_eq!(c.oversized, 2);
    assert!(rss1 < rss0 + 32 * 1024, "memory grew {rss0} -> {rss1} KiB");

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("receiver stopped")
        .unwrap()
        .unwrap();
    drop(idle);
    drop(state); // the last sender of the event channel: the consumer ends
    let firsts = tokio::time::timeout(Duration::from_secs(5), consumer)
        .await
        .expect("consumer ended")
        .unwrap();
    for conn in 0..100 {
        assert!(
            firsts.contains(&format!("real-{conn}")),
            "real-{conn} published"
        );
    }
    assert!(firsts.contains("replayed") && !firsts.contains("f1") && !firsts.contains("old"));
}
