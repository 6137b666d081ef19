//! HEVC, AV1 and VP9 pushes (issue 14) against independent peers: a modern
//! ffmpeg (6.1+, the static 9.x in the `imageio-ffmpeg` wheel) pushing to
//! `pushprobe serve` and pulling back from node-media-server, nginx-rtmp
//! (no Enhanced RTMP) showing what users see there, and `serve --codecs`
//! emulating a domain without Enhanced RTMP HEVC.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::peers::Peer;
use common::{READY, Serve, bin, fixture, http_get, run, skip, spawn, text, wait_until};
use serde_json::Value;

/// The static ffmpeg 9 of the imageio-ffmpeg wheel (Debian's 5.1 cannot read
/// or write Enhanced RTMP); `None` after a visible skip.
fn modern_ffmpeg() -> Option<String> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())",
        ])
        .output();
    match out {
        Ok(o) if o.status.success() => Some(String::from_utf8_lossy(&o.stdout).trim().to_string()),
        _ => {
            skip("ffmpeg 6.1+ is not installed (pip install imageio-ffmpeg)");
            None
        }
    }
}

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {}", text(out)))
}

/// `pushprobe smoke URL --json` streaming `secs`, with extra arguments.
fn smoke(url: &str, secs: u32, extra: &[&str]) -> (Option<i32>, Value) {
    let out = run(
        bin()
            .args(["smoke", url, "--duration", &format!("{secs}s"), "--json"])
            .args(extra),
        Duration::from_secs(u64::from(secs) + 40),
    );
    (out.status.code(), json(&out))
}

fn records(serve: &Serve) -> Vec<Value> {
    http_get(serve.http, "/records")
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or_default()
}

/// Plays `url` with the modern ffmpeg, decoding up to 3 s; retried (each
/// try bounded) until its input shows a stream line containing `want`, for
/// at most `within`. Returns (exit success, stderr) of the last try.
fn play(ffmpeg: &str, url: &str, want: &str, within: Duration) -> (bool, String) {
    let began = Instant::now();
    loop {
        let out = run(
            Command::new(ffmpeg).args([
                "-hide_banner",
                "-rw_timeout",
                "8000000",
                "-i",
                url,
                "-t",
                "3",
                "-f",
                "null",
                "-",
            ]),
            Duration::from_secs(30),
        );
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        let seen = err
            .lines()
            .any(|l| l.trim_start().starts_with("Stream #0:") && l.contains(want));
        if seen || began.elapsed() > within {
            return (out.status.success(), err);
        }
        std::thread::sleep(common::POLL);
    }
}

/// Error lines ffmpeg printed while decoding (its banner and stream lines aside).
fn decode_errors(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains("rror") || l.contains("nvalid") || l.contains("unspecified size"))
        .collect()
}

/// Issue 14: a modern ffmpeg pushes HEVC and AV1 (Enhanced RTMP) to
/// `pushprobe serve`: accepted, codec, framing and size listed.
#[test]
fn modern_ffmpeg_pushes_hevc_and_av1_to_serve() {
    let Some(ffmpeg) = modern_ffmpeg() else {
        return;
    };
    let serve = Serve::start(&[], &[]);
    for (name, codec) in [("hevc-360p.flv", "hevc"), ("av1-360p.flv", "av1")] {
        let url = format!("rtmp://127.0.0.1:{}/live/{codec}", serve.port);
        let pusher = spawn(
            Command::new(&ffmpeg)
                .args(["-hide_banner", "-loglevel", "error", "-re", "-i"])
                .arg(fixture(name))
                .args(["-c", "copy", "-f", "flv", &url]),
        );
        let listed = wait_until(
            &format!("{codec} listed with its size"),
            READY,
            &[&serve.proc.1, &pusher.1],
            || {
                serve
                    .streams()
                    .into_iter()
                    .find(|s| s["stream"] == codec && s["width"] != 0)
            },
        );
        assert_eq!(listed["codec"], codec, "{listed}");
        assert_eq!(listed["framing"], "enhanced", "{listed}");
        assert_eq!(
            (listed["width"].as_u64(), listed["height"].as_u64()),
            (Some(640), Some(360)),
            "{listed}"
        );
        drop(pusher);
    }
}

/// Issue 14: `serve --codecs h264,hevc:legacy-id` emulates a domain that
/// takes HEVC only as FLV codec id 12. The Enhanced RTMP push is named
/// codec_unsupported (with the server's fourCcList as evidence and the fix);
/// the same fixture with --legacy-codec-id is accepted.
#[test]
fn serve_codecs_limit_is_named_codec_unsupported() {
    let serve = Serve::start(&[], &["--codecs", "h264,hevc:legacy-id"]);
    let url = format!("rtmp://127.0.0.1:{}/live/cam", serve.port);
    let hevc = fixture("hevc-360p.flv");
    let hevc = hevc.to_str().unwrap();

    let (code, v) = smoke(&url, 3, &["--fixture", hevc]);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(v["outcome"], "codec_unsupported", "{v}");
    assert_eq!(v["certain"], true, "{v}");
    assert_eq!(
        v["server_fourcc"]["fourCcList"],
        serde_json::json!([]),
        "{v}"
    );
    assert_eq!(v["fixture"]["codec"], "hevc", "{v}");
    assert_eq!(v["fixture"]["framing"], "enhanced", "{v}");
    let fix = v["fix"].as_str().unwrap();
    assert!(
        fix.contains("--legacy-codec-id") && fix.contains("H.264"),
        "{v}"
    );
    let evidence = v["evidence"].to_string();
    assert!(evidence.contains("without hvc1"), "{v}");
    let cut = wait_until("the interruption record", READY, &[&serve.proc.1], || {
        records(&serve).into_iter().find(|r| r["errcode"] == 6)
    });
    assert_eq!(cut["codec"], "hevc", "{cut}");
    assert!(
        cut["errmsg"]
            .as_str()
            .unwrap()
            .contains("video codec hevc (enhanced framing) is not accepted"),
        "{cut}"
    );

    let (code, v) = smoke(&url, 2, &["--fixture", hevc, "--legacy-codec-id"]);
    assert_eq!(
        (code, v["outcome"].as_str()),
        (Some(0), Some("accepted")),
        "{v}"
    );
    assert_eq!(v["fixture"]["framing"], "legacy-id", "{v}");
    assert_eq!(
        v["server_fourcc"]["fourCcList"],
        Value::Null,
        "no fourCcList sent: {v}"
    );
    let ended = wait_until("the end-of-push record", READY, &[&serve.proc.1], || {
        records(&serve).into_iter().find(|r| r["errcode"] == 1)
    });
    assert_eq!(ended["codec"], "hevc", "{ended}");

    // AV1 in Enhanced RTMP is not on the list either.
    let av1 = fixture("av1-360p.flv");
    let (_, v) = smoke(&url, 2, &["--fixture", av1.to_str().unwrap()]);
    assert_eq!(v["outcome"], "codec_unsupported", "{v}");
    assert!(v["evidence"].to_string().contains("without av01"), "{v}");
}

/// Issue 14: pushprobe pushes the HEVC and AV1 fixtures to node-media-server
/// 4 (Enhanced RTMP, npm) and a modern ffmpeg pulls each back and decodes it
/// without errors. NMS's connect `_result` says nothing about FourCCs, so the
/// verdict cannot confirm the codec: codec_unsupported, not certain.
#[test]
fn nms_relays_enhanced_hevc_and_av1_to_modern_ffmpeg() {
    let Some(ffmpeg) = modern_ffmpeg() else {
        return;
    };
    let Some(peer) = Peer::node_media_server(None) else {
        return;
    };
    for (name, codec) in [("hevc-360p.flv", "hevc"), ("av1-360p.flv", "av1")] {
        let url = peer.url(codec);
        let push = spawn(
            bin()
                .args(["push", &url, "--duration", "12s", "--json", "--fixture"])
                .arg(fixture(name)),
        );
        let (ok, err) = play(&ffmpeg, &url, &format!("Video: {codec}"), READY);
        assert!(ok, "ffmpeg failed to play {codec}: {err}");
        assert!(
            err.contains(&format!("Video: {codec}")) && err.contains("640x360"),
            "{err}"
        );
        assert!(err.contains("Audio: aac"), "{err}");
        assert_eq!(decode_errors(&err), Vec::<&str>::new(), "{err}");
        let out = push.finish(Duration::from_secs(40));
        let v = json(&out);
        assert_eq!(v["outcome"], "codec_unsupported", "{v}");
        assert_eq!(v["certain"], false, "{v}");
        assert!(
            v["evidence"].to_string().contains("said nothing about"),
            "{v}"
        );
        assert!(v["streamed_seconds"].as_f64().unwrap() >= 11.0, "{v}");
    }
}

/// Issue 14: nginx-rtmp (no Enhanced RTMP) answers Publish.Start to an
/// Enhanced RTMP HEVC push and drops the video: players get audio only. The
/// verdict says so (codec_unsupported, not certain: the _result is silent).
#[test]
fn nginx_rtmp_drops_enhanced_hevc_video() {
    let Some(ffmpeg) = modern_ffmpeg() else {
        return;
    };
    let Some(peer) = Peer::nginx(None) else {
        return;
    };
    let url = peer.url("hevc");
    let push = spawn(
        bin()
            .args(["push", &url, "--duration", "10s", "--json", "--fixture"])
            .arg(fixture("hevc-360p.flv")),
    );
    let (_, err) = play(&ffmpeg, &url, "Audio: aac", READY);
    assert!(err.contains("Audio: aac"), "{err}");
    assert!(
        !err.contains("Video:"),
        "nginx-rtmp relayed video after all: {err}"
    );
    let out = push.finish(Duration::from_secs(40));
    let v = json(&out);
    assert_eq!(v["outcome"], "codec_unsupported", "{v}");
    assert_eq!(v["certain"], false, "{v}");
    let evidence = v["evidence"].to_string();
    assert!(
        evidence.contains("nginx-rtmp") && evidence.contains("audio only"),
        "{v}"
    );
    assert_eq!(v["server_fourcc"]["fourCcList"], Value::Null, "{v}");
}

/// Issue 14: `smoke --codecs` prints the codec x framing matrix; against an
/// ingest that takes HEVC only as codec id 12 and no AV1, the cells say so,
/// the JSON matches the committed schema, and the exit code is 1 (AV1 was
/// accepted in no framing).
#[test]
fn smoke_codecs_matrix() {
    let serve = Serve::start(&[], &["--codecs", "h264,hevc:legacy-id"]);
    let url = format!("rtmp://127.0.0.1:{}/live/matrix", serve.port);
    let out = run(
        bin().args([
            "smoke",
            &url,
            "--codecs",
            "h264,hevc,av1",
            "--duration",
            "1s",
            "--json",
        ]),
        Duration::from_secs(120),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let v = json(&out);
    let validator = common::command_schema("codec_matrix");
    let errors: Vec<String> = validator.iter_errors(&v).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}\n{v:#}");
    let cells: Vec<(String, String, String)> = v["codecs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap().to_string();
            (s("codec"), s("framing"), s("result"))
        })
        .collect();
    let want = [
        ("h264", "legacy-id", "accepted"),
        ("hevc", "enhanced", "cut"),
        ("hevc", "legacy-id", "accepted"),
        ("av1", "enhanced", "cut"),
        ("av1", "legacy-id", "cut"),
    ];
    let want: Vec<(String, String, String)> = want
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    assert_eq!(cells, want, "{v:#}");
    assert_eq!(v["passed"], false);
    assert_eq!(v["codecs"][1]["outcome"], "codec_unsupported", "{v:#}");
}

/// Issue 14, the doctor option: `doctor --codecs` adds step 7 with the same
/// matrix. Against `serve --codecs h264,hevc:legacy-id`, AV1 is accepted in
/// no framing: step 7 fails naming av1, the verdict names the step, exit 1,
/// and the JSON matches the schema.
#[test]
fn doctor_codecs_step_names_what_the_domain_refuses() {
    let serve = Serve::start(&[], &["--codecs", "h264,hevc:legacy-id"]);
    let url = format!("rtmp://127.0.0.1:{}/live/doc", serve.port);
    let out = run(
        bin().args([
            "doctor",
            &url,
            "--codecs",
            "h264,hevc,av1",
            "--duration",
            "1s",
            "--json",
        ]),
        Duration::from_secs(180),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let v = json(&out);
    let validator = common::command_schema("doctor");
    let errors: Vec<String> = validator.iter_errors(&v).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}\n{v:#}");
    let s7 = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == 7)
        .unwrap_or_else(|| panic!("no step 7: {v:#}"));
    assert_eq!(s7["name"], "codecs", "{s7}");
    assert_eq!(s7["status"], "fail", "{s7}");
    let detail = s7["detail"].as_str().unwrap();
    assert!(detail.contains("hevc legacy-id accepted"), "{detail}");
    assert!(detail.contains("av1 enhanced cut"), "{detail}");
    assert!(
        s7["fix"].as_str().unwrap().contains("does not take av1"),
        "{s7}"
    );
    assert_eq!(v["verdict"], "codecs", "{v:#}");
}
