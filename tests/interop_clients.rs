//! Independent encoders against `pushprobe serve` (issue 11): Debian's
//! ffmpeg 5.1, the static ffmpeg 9 inside PyPI's imageio-ffmpeg wheel and
//! GStreamer's flvmux + rtmp2sink. Each: a signed push accepted, listed in
//! /streams at 640x360, push and interruption callbacks sent; expired,
//! unsigned, mis-signed and duplicate pushes refused and recorded with
//! Tencent's sub-codes 501, 500, 503 and 601.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::peers::{Check, Ingest, require};
use common::{HookServer, Proc, fixture, have, now, run, signed, spawn, text};
use serde_json::Value;

const KEY: &str = "interop-client-key";
const CALLBACK_KEY: &str = "interop-callback-key";

/// An encoder implementation that pushes the 360p fixture to a URL.
struct Encoder {
    name: &'static str,
    version: String,
    push: fn(&Encoder, &str) -> Command,
    exe: String,
}

fn ffmpeg_push(e: &Encoder, url: &str) -> Command {
    let mut c = Command::new(&e.exe);
    c.args([
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "warning",
        "-re",
        "-i",
    ])
    .arg(fixture("sd-360p.flv"))
    .args(["-t", "4", "-c", "copy", "-f", "flv", url]);
    c
}

fn gst_push(_: &Encoder, url: &str) -> Command {
    let mut c = Command::new("gst-launch-1.0");
    c.arg("-q")
        .arg("filesrc")
        .arg(format!("location={}", fixture("sd-360p.flv").display()))
        .args([
            "!",
            "flvdemux",
            "name=d",
            "d.video",
            "!",
            "queue",
            "!",
            "h264parse",
        ])
        .args(["!", "flvmux", "name=m", "streamable=true", "!", "rtmp2sink"])
        .arg(format!("location={url}"))
        .args(["d.audio", "!", "queue", "!", "aacparse", "!", "m."]);
    c
}

fn ffmpeg_version(exe: &str) -> Option<String> {
    let o = run(Command::new(exe).arg("-version"), Duration::from_secs(20));
    let first = String::from_utf8_lossy(&o.stdout)
        .lines()
        .next()?
        .to_string();
    let v = first.strip_prefix("ffmpeg version ")?.split(' ').next()?;
    Some(v.trim_start_matches('n').to_string())
}

fn debian_ffmpeg() -> Option<Encoder> {
    if !have("ffmpeg") {
        return None;
    }
    let version = common::peers::major_minor(&ffmpeg_version("ffmpeg")?);
    Some(Encoder {
        name: "ffmpeg (Debian)",
        version,
        push: ffmpeg_push,
        exe: "ffmpeg".into(),
    })
}

fn wheel_ffmpeg() -> Option<Encoder> {
    if !have("python3") {
        return None;
    }
    let o = run(
        Command::new("python3").args([
            "-c",
            "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())",
        ]),
        Duration::from_secs(20),
    );
    let exe = String::from_utf8_lossy(&o.stdout).trim().to_string();
    if !require(
        "imageio-ffmpeg (PyPI)",
        o.status.success() && !exe.is_empty(),
    ) {
        return None;
    }
    let version = ffmpeg_version(&exe)?;
    // `9.0.2-17-g2a571b6068-20260930` -> `9.0.2`: the release, not the build.
    let version = version.split('-').next().unwrap_or_default().to_string();
    Some(Encoder {
        name: "ffmpeg (imageio-ffmpeg wheel)",
        version,
        push: ffmpeg_push,
        exe,
    })
}

fn gstreamer() -> Option<Encoder> {
    if !have("gst-launch-1.0") {
        return None;
    }
    let o = run(
        Command::new("gst-inspect-1.0").arg("rtmp2sink"),
        Duration::from_secs(20),
    );
    if !require(
        "GStreamer rtmp2sink (gstreamer1.0-plugins-bad)",
        o.status.success(),
    ) {
        return None;
    }
    let v = run(
        Command::new("gst-launch-1.0").arg("--version"),
        Duration::from_secs(20),
    );
    let version = text(&v)
        .lines()
        .find_map(|l| l.strip_prefix("GStreamer ").map(common::peers::major_minor))
        .unwrap_or_default();
    Some(Encoder {
        name: "GStreamer rtmp2sink",
        version,
        push: gst_push,
        exe: String::new(),
    })
}

fn push(e: &Encoder, url: &str) -> Proc {
    spawn(&mut (e.push)(e, url))
}

/// Polls `f` every 100 ms until it gives a value, for at most `within`.
fn wait_for<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn listed(ingest: &Ingest, stream: &str) -> Option<Value> {
    ingest
        .get("/streams")
        .as_array()?
        .iter()
        .find(|s| s["stream"] == stream && s["width"].as_u64().unwrap_or(0) > 0)
        .cloned()
}

fn record(ingest: &Ingest, stream: &str) -> Option<Value> {
    ingest
        .get("/records")
        .as_array()?
        .iter()
        .find(|r| r["stream"] == stream)
        .cloned()
}

/// The JSON bodies the callback receiver got.
fn callbacks(hook: &HookServer) -> Vec<Value> {
    hook.requests
        .lock()
        .unwrap()
        .iter()
        .filter_map(|r| serde_json::from_str(r.split_once("\r\n\r\n")?.1).ok())
        .collect()
}

/// Accepted, listed at 640x360, ended clean (errcode 1), callbacks sent.
fn accepted_listed_and_called_back(e: &Encoder) {
    let check = Check::begin(e.name, &e.version, "accepted");
    let hook = HookServer::start(|_| 200);
    let ingest = Ingest::start(KEY, CALLBACK_KEY, &hook.url);
    let url = signed(ingest.rtmp_port, "enc", KEY, now() + 3600);
    let p = push(e, &url);
    let s = wait_for(Duration::from_secs(15), || listed(&ingest, "enc"));
    let s = s.unwrap_or_else(|| panic!("not listed: {}", ingest.get("/streams")));
    assert_eq!(
        (s["width"].as_u64(), s["height"].as_u64()),
        (Some(640), Some(360)),
        "{s}"
    );
    let out = p.finish(Duration::from_secs(30));
    let r = wait_for(Duration::from_secs(10), || record(&ingest, "enc"))
        .unwrap_or_else(|| panic!("no record: {}", text(&out)));
    assert_eq!(
        (r["errcode"].as_u64(), r["sub_errcode"].as_u64()),
        (Some(1), Some(0)),
        "{r}"
    );
    let got = wait_for(Duration::from_secs(10), || {
        let c = callbacks(&hook);
        (c.iter().any(|c| c["event_type"] == 1) && c.iter().any(|c| c["event_type"] == 0))
            .then_some(c)
    })
    .unwrap_or_else(|| panic!("callbacks: {:?}", callbacks(&hook)));
    let pushed = got.iter().find(|c| c["event_type"] == 1).unwrap();
    assert_eq!(pushed["stream_id"], "enc", "{pushed}");
    let ended = got.iter().find(|c| c["event_type"] == 0).unwrap();
    assert_eq!(ended["sequence"], pushed["sequence"], "{got:?}");
    check.pass("accepted, /streams 640x360, record errcode 1, callbacks 1 and 0");
}

/// Expired, unsigned, mis-signed and duplicate pushes: the encoder fails
/// and /records holds 18/501, 18/500, 18/503 and 18/601.
fn refusals_recorded_with_sub_codes(e: &Encoder) {
    let check = Check::begin(e.name, &e.version, "refusals");
    let hook = HookServer::start(|_| 200);
    let ingest = Ingest::start(KEY, CALLBACK_KEY, &hook.url);
    let port = ingest.rtmp_port;
    let cases = [
        ("expired", signed(port, "expired", KEY, now() - 60), 501),
        (
            "unsigned",
            format!("rtmp://127.0.0.1:{port}/live/unsigned"),
            500,
        ),
        (
            "missigned",
            signed(port, "missigned", "wrong-key", now() + 3600),
            503,
        ),
    ];
    for (stream, url, sub) in &cases {
        let out = push(e, url).finish(Duration::from_secs(30));
        assert!(
            !out.status.success(),
            "{stream}: the encoder succeeded: {}",
            text(&out)
        );
        let r = wait_for(Duration::from_secs(10), || record(&ingest, stream))
            .unwrap_or_else(|| panic!("{stream}: no record"));
        assert_eq!(
            (r["errcode"].as_u64(), r["sub_errcode"].as_u64()),
            (Some(18), Some(*sub)),
            "{r}"
        );
    }
    let url = signed(port, "dup", KEY, now() + 3600);
    let first = push(e, &url);
    let held = wait_for(Duration::from_secs(15), || listed(&ingest, "dup")).expect("first listed");
    let out = push(e, &url).finish(Duration::from_secs(30));
    assert!(!out.status.success(), "duplicate accepted: {}", text(&out));
    let r = wait_for(Duration::from_secs(10), || record(&ingest, "dup")).expect("dup record");
    assert_eq!(
        (r["errcode"].as_u64(), r["sub_errcode"].as_u64()),
        (Some(18), Some(601)),
        "{r}"
    );
    let still = listed(&ingest, "dup").expect("the first push stays listed");
    assert_eq!(still["id"], held["id"]);
    drop(first);
    check.pass("18/501 expired, 18/500 unsigned, 18/503 mis-signed, 18/601 duplicate");
}

#[test]
fn debian_ffmpeg_against_serve() {
    let Some(e) = debian_ffmpeg() else { return };
    accepted_listed_and_called_back(&e);
    refusals_recorded_with_sub_codes(&e);
}

#[test]
fn wheel_ffmpeg_9_against_serve() {
    let Some(e) = wheel_ffmpeg() else { return };
    accepted_listed_and_called_back(&e);
    refusals_recorded_with_sub_codes(&e);
}

#[test]
fn gstreamer_rtmp2sink_against_serve() {
    let Some(e) = gstreamer() else { return };
    accepted_listed_and_called_back(&e);
    refusals_recorded_with_sub_codes(&e);
}

/// GStreamer exits 0 after a whole push to nginx-rtmp, but 1 ("connection
/// closed remotely") to `pushprobe serve`, which closes the connection on
/// deleteStream instead of waiting for the client to close.
#[test]
fn gstreamer_clean_push_to_serve_exits_zero() {
    let Some(e) = gstreamer() else { return };
    let hook = HookServer::start(|_| 200);
    let ingest = Ingest::start(KEY, CALLBACK_KEY, &hook.url);
    let url = signed(ingest.rtmp_port, "clean", KEY, now() + 3600);
    let out = push(&e, &url).finish(Duration::from_secs(40));
    assert!(out.status.success(), "{}", text(&out));
}
