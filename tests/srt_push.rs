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
