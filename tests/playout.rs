//! `pushprobe serve` plays out what it ingests (issue 13): pushprobe pushes
//! the 360p fixture in, and independent peers (ffmpeg, ffprobe, a raw HTTP
//! reader parsing FLV itself) play it back over RTMP and HTTP-FLV.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use common::{READY, Serve, bin, have, run, spawn, wait_until};

/// A push of the 360p fixture (2 s GOP) into the ingest.
fn push(serve: &Serve, stream: &str, secs: u32) -> common::Proc {
    spawn(bin().args([
        "push",
        &format!("rtmp://127.0.0.1:{}/live/{stream}", serve.port),
        "--duration",
        &format!("{secs}s"),
        "--json",
    ]))
}

fn rtmp_url(serve: &Serve, stream: &str) -> String {
    format!("rtmp://127.0.0.1:{}/live/{stream}", serve.port)
}

fn flv_url(serve: &Serve, stream: &str) -> String {
    format!("http://127.0.0.1:{}/live/{stream}.flv", serve.http)
}

/// `/streams`' entry for `stream`.
fn stream_view(serve: &Serve, stream: &str) -> Option<serde_json::Value> {
    serve.streams().into_iter().find(|s| s["stream"] == stream)
}

fn viewers(serve: &Serve, stream: &str) -> (u64, u64, u64) {
    let v = stream_view(serve, stream).map(|s| s["viewers"].clone());
    let n = |k: &str| v.as_ref().and_then(|v| v[k].as_u64()).unwrap_or(0);
    (n("rtmp"), n("flv"), n("dropped"))
}

#[test]
fn ffmpeg_and_ffprobe_play_rtmp_and_http_flv() {
    if !have("ffmpeg") || !have("ffprobe") {
        return;
    }
    let serve = Serve::start(&[], &[]);
    let publisher = push(&serve, "cam", 40);
    serve.wait_stream("cam", &publisher);
    for url in [rtmp_url(&serve, "cam"), flv_url(&serve, "cam")] {
        let probed = common::ffprobe_stream(&url);
        assert!(probed.contains("h264,640,360"), "{url}: {probed}");
        assert!(
            probed.lines().any(|l| l.starts_with("aac")),
            "{url}: {probed}"
        );
        common::assert_decodes_cleanly(&url, 3);
    }
}

#[test]
fn a_stream_that_is_not_live_is_404_and_stream_not_found() {
    if !have("ffmpeg") {
        return;
    }
    let serve = Serve::start(&[], &[]);
    let answer = common::http_get(serve.http, "/live/nobody.flv");
    assert!(answer.starts_with("HTTP/1.0 404"), "{answer}");
    for path in ["/live/nobody.mp4", "/other/nobody.flv"] {
        let answer = common::http_get(serve.http, path);
        assert!(answer.starts_with("HTTP/1.0 404"), "{path}: {answer}");
    }
    let o = run(
        Command::new("ffmpeg").args([
            "-nostdin",
            "-v",
            "error",
            "-rw_timeout",
            "8000000",
            "-i",
            &rtmp_url(&serve, "nobody"),
            "-f",
            "null",
            "-",
        ]),
        Duration::from_secs(20),
    );
    assert!(!o.status.success());
    // ffmpeg prints the onStatus description of a level "error" status.
    assert!(
        common::text(&o).contains("nobody is not live"),
        "{}",
        common::text(&o)
    );
}

/// One FLV tag as a raw HTTP reader sees it.
#[derive(Debug)]
struct FlvTag {
    kind: u8,
    timestamp: u32,
    body: Vec<u8>,
}

/// `GET path` over HTTP/1.0 (a body that ends with the connection): the
/// status line, then the FLV header and tags as they arrive, read until
/// `want` tags or the end of the body.
fn read_flv(port: u16, path: &str, want: usize) -> (String, Vec<FlvTag>, bool) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).expect("response headers");
        assert!(n > 0, "closed before headers: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    };
    let status = String::from_utf8_lossy(&buf[..head_end])
        .lines()
        .next()
        .unwrap()
        .to_string();
    let mut body = buf.split_off(head_end);
    let mut tags = Vec::new();
    let mut at = 13;
    let mut ended = false;
    loop {
        while body.len() >= at + 11 {
            let len = u32::from_be_bytes([0, body[at + 1], body[at + 2], body[at + 3]]) as usize;
            if body.len() < at + 11 + len + 4 {
                break;
            }
            let h = &body[at..at + 11];
            tags.push(FlvTag {
                kind: h[0],
                timestamp: u32::from_be_bytes([h[7], h[4], h[5], h[6]]),
                body: body[at + 11..at + 11 + len].to_vec(),
            });
            at += 11 + len + 4;
        }
        if tags.len() >= want {
            break;
        }
        let n = s.read(&mut chunk).expect("FLV body");
        if n == 0 {
            ended = true;
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    if body.len() >= 13 {
        assert_eq!(&body[..13], b"FLV\x01\x05\0\0\0\x09\0\0\0\0", "FLV header");
    }
    (status, tags, ended)
}

#[test]
fn a_viewer_joining_mid_stream_starts_at_a_keyframe_and_the_body_ends_with_the_push() {
    if !have("ffprobe") {
        return;
    }
    let serve = Serve::start(&[], &[]);
    let mut publisher = push(&serve, "mid", 12);
    serve.wait_stream("mid", &publisher);
    // Join after more than one 2 s GOP went by (about 3 s of a 570 kbit/s
    // stream), so a viewer starting at the live edge would get inter frames.
    wait_until("3 s of media ingested", READY, &[&publisher.1], || {
        let bytes = stream_view(&serve, "mid")?["bytes"].as_u64()?;
        (bytes > 210_000).then_some(())
    });
    let (status, tags, ended) = read_flv(serve.http, "/live/mid.flv", usize::MAX);
    assert!(status.contains(" 200 "), "{status}");
    assert!(ended, "the body ends once the push ends");
    let meta = &tags[0];
    assert_eq!(
        (meta.kind, meta.timestamp),
        (18, 0),
        "onMetaData first, at 0"
    );
    assert!(meta.body.starts_with(b"\x02\x00\x0aonMetaData"));
    let video: Vec<&FlvTag> = tags.iter().filter(|t| t.kind == 9).collect();
    assert_eq!(&video[0].body[..2], [0x17, 0], "AVC sequence header first");
    let first = video[1];
    assert_eq!(&first.body[..2], [0x17, 1], "then a keyframe (NALUs)");
    assert!(
        first.timestamp >= 1000,
        "the keyframe is from the GOP cache mid-stream, not the start: {}",
        first.timestamp
    );
    assert!(
        tags.iter().any(|t| t.kind == 8 && t.body[..2] == [0xaf, 0]),
        "AAC header"
    );
    let out = publisher.wait_exit(Duration::from_secs(30));
    assert!(out.is_some_and(|s| s.success()), "{}", publisher.printed());

    // RTMP play, seen by ffprobe: the first video packet is a keyframe.
    let publisher = push(&serve, "mid2", 30);
    serve.wait_stream("mid2", &publisher);
    wait_until("3 s of media ingested", READY, &[&publisher.1], || {
        let bytes = stream_view(&serve, "mid2")?["bytes"].as_u64()?;
        (bytes > 210_000).then_some(())
    });
    let o = run(
        Command::new("ffprobe").args([
            "-v",
            "error",
            "-rw_timeout",
            "8000000",
            "-select_streams",
            "v",
            "-read_intervals",
            "%+#3",
            "-show_entries",
            "packet=pts_time,flags",
            "-of",
            "csv=p=0",
            &rtmp_url(&serve, "mid2"),
        ]),
        Duration::from_secs(30),
    );
    let packets = String::from_utf8_lossy(&o.stdout).to_string();
    let first = packets.lines().next().unwrap_or_default();
    assert!(
        first.ends_with("K_"),
        "first video packet over RTMP play: {packets}"
    );
    let pts: f64 = first.split(',').next().unwrap().parse().unwrap();
    assert!(pts >= 1.0, "mid-stream, from the GOP cache: {packets}");
}

#[test]
fn a_viewer_that_never_reads_is_dropped_while_the_push_and_another_viewer_go_on() {
    if !have("ffmpeg") {
        return;
    }
    // A short queue (64 tags, about 1 s) so the drop comes within seconds.
    let serve = Serve::start(&[], &["--play-queue", "64"]);
    let publisher = push(&serve, "busy", 25);
    serve.wait_stream("busy", &publisher);
    // A viewer that keeps reading: ffmpeg decoding RTMP play to the end.
    let reader = spawn(Command::new("ffmpeg").args([
        "-nostdin",
        "-v",
        "error",
        "-rw_timeout",
        "10000000",
        "-i",
        &rtmp_url(&serve, "busy"),
        "-f",
        "null",
        "-",
    ]));
    // A viewer that never reads, with a small receive buffer so the kernel
    // holds little for it.
    let stalled = {
        let sock =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        sock.set_recv_buffer_size(4096).unwrap();
        let addr: std::net::SocketAddr = format!("127.0.0.1:{}", serve.http).parse().unwrap();
        sock.connect(&addr.into()).unwrap();
        let mut s: TcpStream = sock.into();
        s.write_all(b"GET /live/busy.flv HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        s
    };
    // Both counted (the stalled one may already be dropped by the time a
    // slow ffmpeg joins: then it counts as dropped, not as a viewer).
    wait_until(
        "one RTMP and one FLV viewer in /streams",
        READY,
        &[&serve.proc.1, &reader.1],
        || {
            let (rtmp, flv, dropped) = viewers(&serve, "busy");
            (rtmp == 1 && flv + dropped == 1).then_some(())
        },
    );
    wait_until(
        "the stalled viewer dropped",
        Duration::from_secs(20),
        &[&serve.proc.1, &publisher.1, &reader.1],
        || (viewers(&serve, "busy").2 == 1).then_some(()),
    );
    assert_eq!(
        viewers(&serve, "busy"),
        (1, 0, 1),
        "the reading viewer stays, the stalled one is uncounted and counted as dropped"
    );
    let pushed = publisher.finish(Duration::from_secs(40));
    let report: serde_json::Value = serde_json::from_slice(&pushed.stdout)
        .unwrap_or_else(|_| panic!("{}", common::text(&pushed)));
    assert_eq!(report["outcome"], "accepted", "{report}");
    assert!(
        report["streamed_seconds"].as_f64().unwrap() >= 24.0,
        "the publisher streamed its whole duration: {report}"
    );
    // The reading viewer got the stream to its end (UnpublishNotify, Stop).
    let read = reader.finish(Duration::from_secs(20));
    assert!(read.status.success(), "{}", common::text(&read));
    assert!(
        common::text(&read).trim().is_empty(),
        "{}",
        common::text(&read)
    );
    drop(stalled);
}

#[test]
fn play_authentication_refuses_unsigned_wrong_and_expired_urls() {
    if !have("ffmpeg") || !have("ffprobe") {
        return;
    }
    const PLAY_KEY: &str = "play-test-key";
    let serve = Serve::start(&[("PUSHPROBE_PLAY_KEY", PLAY_KEY)], &[]);
    let publisher = push(&serve, "auth", 40);
    serve.wait_stream("auth", &publisher);
    let query = |key: &str, expiry: u64| {
        let t = format!("{expiry:X}");
        format!("txSecret={}&txTime={t}", common::tx_secret(key, "auth", &t))
    };
    let later = common::now() + 3600;
    let good = query(PLAY_KEY, later);
    for bad in [
        String::new(),
        format!("?{}", query("wrong-key", later)),
        format!("?{}", query(PLAY_KEY, common::now() - 60)),
    ] {
        let answer = common::http_get(serve.http, &format!("/live/auth.flv{bad}"));
        assert!(answer.starts_with("HTTP/1.0 403"), "{bad}: {answer}");
    }
    let (status, tags, _) = read_flv(serve.http, &format!("/live/auth.flv?{good}"), 3);
    assert!(status.contains(" 200 "), "{status}");
    assert_eq!(tags[0].kind, 18);

    let unsigned = run(
        Command::new("ffmpeg").args([
            "-nostdin",
            "-v",
            "error",
            "-rw_timeout",
            "8000000",
            "-i",
            &rtmp_url(&serve, "auth"),
            "-f",
            "null",
            "-",
        ]),
        Duration::from_secs(20),
    );
    assert!(!unsigned.status.success());
    assert!(
        common::text(&unsigned).contains("Server error: no txTime"),
        "NetStream.Play.Failed's description: {}",
        common::text(&unsigned)
    );
    let signed = format!("{}?{good}", rtmp_url(&serve, "auth"));
    let probed = common::ffprobe_stream(&signed);
    assert!(probed.contains("h264,640,360"), "{probed}");
}
