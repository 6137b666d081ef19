//! `pushprobe load --viewers K` (issue 13): viewers of our own stamping
//! publishers through nginx-rtmp (latency from the stamps, nothing lost,
//! shards merge exactly), viewers of streams ffmpeg pushes (no stamps:
//! first frame and stalls only), and a play URL that answers 404.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// Bound against hangs, not a speed claim: the runs below stream 4 s.
const HANG: Duration = Duration::from_secs(120);

fn schema_errors(report: &Value) -> Vec<String> {
    common::load_report_errors(report)
}

fn u(v: &Value, pointer: &str) -> u64 {
    v.pointer(pointer)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{pointer} missing in {v:#}"))
}

/// `pushprobe load` of `publishers` stamping publishers to nginx, `viewers`
/// per stream playing them back over RTMP, the JSON report in `json`.
fn load_with_viewers(ng: &Nginx, publishers: u64, viewers: u32, json: &Path) -> Command {
    let mut c = bin();
    c.args(["load", "--url-template"])
        .arg(ng.url("v-{i}"))
        .args(["--publishers", &publishers.to_string()])
        .args(["--viewers", &viewers.to_string()])
        .arg("--play-template")
        .arg(ng.url("{stream}"))
        .args(["--duration", "4s", "--rate", "0", "--progress", "none"])
        .arg("--json-out")
        .arg(json);
    c
}

/// What every report of viewers of our publishers must show: each viewer
/// ran and started, latency from the stamps, every video frame stamped and
/// none lost.
fn assert_viewers_kept_up(r: &Value, planned: u64) {
    assert_eq!(schema_errors(r), Vec::<String>::new());
    let v = &r["viewers"];
    assert_eq!(v["mode"], "with_publishers", "{v:#}");
    assert_eq!(u(v, "/planned"), planned, "{v:#}");
    assert_eq!(u(v, "/measured"), planned, "{v:#}");
    assert_eq!(u(v, "/started"), planned, "every viewer started: {v:#}");
    assert_eq!(u(v, "/failed"), 0, "{v:#}");
    assert_eq!(u(v, "/latency_method/sei"), planned, "{v:#}");
    assert_eq!(u(v, "/first_frame_ms/count"), planned, "{v:#}");
    assert!(u(v, "/latency_ms/count") > 0, "latency samples: {v:#}");
    assert!(u(v, "/frames/video") > 0, "{v:#}");
    assert_eq!(
        u(v, "/frames/stamped"),
        u(v, "/frames/video"),
        "every video frame carries its stamp: {v:#}"
    );
    assert_eq!(u(v, "/frames/lost"), 0, "{v:#}");
    assert_eq!(u(v, "/frames/duplicated"), 0, "{v:#}");
    // One latency sample per stamped frame pushed after its viewer asked;
    // those pushed before (a relay's cache) are the catch-up.
    assert_eq!(
        u(v, "/latency_ms/count") + u(v, "/frames/catchup"),
        u(v, "/frames/stamped"),
        "{v:#}"
    );
    assert_eq!(u(v, "/viewer_max_latency_ms/count"), planned, "{v:#}");
}

#[test]
fn viewers_of_stamping_publishers_through_nginx_and_shards_merge() {
    if !have("nginx") {
        return;
    }
    let ng = Nginx::start(None);
    let dir = tempfile::tempdir().unwrap();

    // The whole run: 5 publishers x 3 viewers.
    let whole = dir.path().join("whole.json");
    let o = run(&mut load_with_viewers(&ng, 5, 3, &whole), HANG);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let r = read_json(&whole);
    assert_eq!(u(&r, "/publishers"), 5);
    assert_viewers_kept_up(&r, 15);
    let t = text(&o);
    assert!(
        t.contains("viewers (with_publishers, 3 per stream")
            && t.contains("15 planned, 15 measured, 15 started")
            && t.contains("push-to-play latency"),
        "{t}"
    );

    // The same run in two shards at once, then merged: counts add,
    // histograms merge.
    let shards: Vec<_> = (0..2)
        .map(|i| {
            let json = dir.path().join(format!("shard-{i}.json"));
            let p = spawn(
                load_with_viewers(&ng, 5, 3, &json)
                    .arg("--shard")
                    .arg(format!("{i}/2")),
            );
            (p, json)
        })
        .collect();
    let mut parts = Vec::new();
    for (p, json) in shards {
        let o = p.finish(HANG);
        assert_eq!(code(&o), 0, "{}", text(&o));
        parts.push((read_json(&json), json));
    }
    // Shard 0 has streams 0..3, shard 1 streams 3..5.
    assert_viewers_kept_up(&parts[0].0, 9);
    assert_viewers_kept_up(&parts[1].0, 6);
    let merged = dir.path().join("merged.json");
    let hgrm = dir.path().join("hgrm");
    let o = run(
        bin()
            .args(["report", "merge"])
            .arg(&parts[0].1)
            .arg(&parts[1].1)
            .arg("--json-out")
            .arg(&merged)
            .arg("--hgrm")
            .arg(&hgrm),
        Duration::from_secs(30),
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    let m = read_json(&merged);
    assert_viewers_kept_up(&m, 15);
    for pointer in [
        "/viewers/measured",
        "/viewers/started",
        "/viewers/frames/video",
        "/viewers/frames/stamped",
        "/viewers/frames/media_bytes",
        "/viewers/first_frame_ms/count",
        "/viewers/first_frame_from_schedule_ms/count",
        "/viewers/latency_ms/count",
    ] {
        assert_eq!(
            u(&m, pointer),
            u(&parts[0].0, pointer) + u(&parts[1].0, pointer),
            "{pointer}"
        );
    }
    // Histograms merged exactly: the merged maximum is the larger one.
    for pointer in ["/viewers/latency_ms/max", "/viewers/first_frame_ms/max"] {
        let max = |v: &Value| v.pointer(pointer).and_then(Value::as_f64).unwrap();
        assert_eq!(max(&m), max(&parts[0].0).max(max(&parts[1].0)), "{pointer}");
    }
    for f in ["viewer_first_frame.hgrm", "viewer_latency.hgrm"] {
        let text = std::fs::read_to_string(hgrm.join(f)).unwrap_or_default();
        assert!(text.contains("#[Mean"), "{f}: {text}");
    }
}

/// ffmpeg pushing `stream` to nginx in a loop (killed when dropped).
fn ffmpeg_push(ng: &Nginx, stream: &str) -> Proc {
    spawn(
        Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-re",
                "-stream_loop",
                "-1",
            ])
            .arg("-i")
            .arg(fixture("low-240p.flv"))
            .args(["-c", "copy", "-f", "flv"])
            .arg(ng.url(stream)),
    )
}

#[test]
fn viewer_only_mode_watches_streams_ffmpeg_pushes() {
    if !have("nginx") || !have("ffmpeg") {
        return;
    }
    let ng = Nginx::start(None);
    let pushers: Vec<Proc> = (0..2)
        .map(|i| ffmpeg_push(&ng, &format!("ext-{i}")))
        .collect();
    for (i, p) in pushers.iter().enumerate() {
        ng.wait_publishing(&format!("ext-{i}"), p);
    }
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let o = run(
        bin()
            .args(["load", "--stream-template", "ext-{i}", "--publishers", "2"])
            .args(["--viewers", "2", "--play-template"])
            .arg(ng.url("{stream}"))
            .args(["--duration", "3s", "--rate", "0", "--progress", "none"])
            .arg("--json-out")
            .arg(&json),
        HANG,
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    let r = read_json(&json);
    assert_eq!(schema_errors(&r), Vec::<String>::new());
    assert_eq!(u(&r, "/publishers"), 0);
    let v = &r["viewers"];
    assert_eq!(v["mode"], "viewer_only", "{v:#}");
    assert_eq!(u(v, "/planned"), 4, "{v:#}");
    assert_eq!(u(v, "/started"), 4, "{v:#}");
    assert_eq!(
        u(v, "/first_frame_ms/count"),
        4,
        "first frame measured: {v:#}"
    );
    assert_eq!(u(v, "/latency_method/none"), 4, "no stamps: {v:#}");
    assert_eq!(u(v, "/latency_ms/count"), 0, "{v:#}");
    assert_eq!(u(v, "/frames/stamped"), 0, "{v:#}");
    assert!(u(v, "/frames/video") > 0, "{v:#}");
    drop(pushers);
}

#[test]
fn a_play_url_that_404s_is_a_viewer_failure_with_the_reason() {
    let http = HookServer::start(|_| 404);
    let port = http
        .url
        .rsplit(':')
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let o = run(
        bin()
            .args(["load", "--stream-template", "gone-{i}", "--publishers", "2"])
            .args(["--viewers", "1", "--play-template"])
            .arg(format!("http://127.0.0.1:{port}/live/{{stream}}.flv"))
            .args(["--duration", "2s", "--rate", "0", "--progress", "none"])
            .args(["--timeout", "5s"])
            .arg("--json-out")
            .arg(&json),
        HANG,
    );
    let t = text(&o);
    assert_eq!(code(&o), 1, "viewers failed: exit 1\n{t}");
    let r = read_json(&json);
    assert_eq!(schema_errors(&r), Vec::<String>::new());
    let v = &r["viewers"];
    assert_eq!((u(v, "/failed"), u(v, "/started")), (2, 0), "{v:#}");
    assert_eq!(u(v, "/failures/http_404"), 2, "{v:#}");
    assert!(t.contains("failures: http_404 2"), "{t}");
    // Both streams were asked for, as the template says.
    let asked = http.requests.lock().unwrap().join("\n");
    assert!(
        asked.contains("GET /live/gone-0.flv") && asked.contains("GET /live/gone-1.flv"),
        "{asked}"
    );
}

#[test]
fn viewer_options_without_viewers_or_urls_are_refused_clearly() {
    let o = run(
        bin().args([
            "load",
            "--url-template",
            "rtmp://127.0.0.1:9/live/{i}",
            "--viewers",
            "2",
        ]),
        Duration::from_secs(30),
    );
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(text(&o).contains("--play-template"), "{}", text(&o));
    let o = run(
        bin()
            .args(["load", "--url-template", "rtmp://127.0.0.1:9/live/{i}"])
            .args(["--play-template", "rtmp://127.0.0.1:9/live/{i}"]),
        Duration::from_secs(30),
    );
    assert!(text(&o).contains("need --viewers K"), "{}", text(&o));
    let o = run(
        bin()
            .args([
                "load",
                "--viewers",
                "1",
                "--play-template",
                "http://h/{i}.flv",
            ])
            .args(["--play-protocol", "rtmp"]),
        Duration::from_secs(30),
    );
    assert!(
        text(&o).contains("--play-protocol says rtmp"),
        "{}",
        text(&o)
    );
}

/// With a play key, load signs each viewer's play URL (txSecret = MD5(play
/// key + stream + txTime)): serve's play authentication takes them; without
/// the key the same viewers are refused, by reason.
#[test]
fn viewers_sign_play_urls_with_the_play_key() {
    const PLAY_KEY: &str = "load-play-key";
    let serve = Serve::start(&[("PUSHPROBE_PLAY_KEY", PLAY_KEY)], &[]);
    let dir = tempfile::tempdir().unwrap();
    let run_viewers = |with_key: bool, json: &Path| {
        let mut c = bin();
        c.args(["load", "--url-template"])
            .arg(format!("rtmp://127.0.0.1:{}/live/signed-{{i}}", serve.port))
            .args(["--publishers", "2", "--viewers", "2"])
            .arg("--play-domain")
            .arg(format!("127.0.0.1:{}", serve.port))
            .args(["--duration", "4s", "--rate", "0", "--progress", "none"])
            .arg("--json-out")
            .arg(json)
            .env_remove("PUSHPROBE_PLAY_KEY");
        if with_key {
            c.env("PUSHPROBE_PLAY_KEY", PLAY_KEY);
        }
        let o = run(&mut c, HANG);
        (o, read_json(json))
    };
    let (o, r) = run_viewers(true, &dir.path().join("signed.json"));
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(schema_errors(&r), Vec::<String>::new());
    let v = &r["viewers"];
    assert_eq!(u(v, "/started"), 4, "{v:#}");
    assert!(
        v["play_target"]
            .as_str()
            .unwrap()
            .contains("signed with the play key"),
        "{v:#}"
    );
    assert!(
        !text(&o).contains(PLAY_KEY),
        "the key stays out of the output"
    );

    let (o, r) = run_viewers(false, &dir.path().join("unsigned.json"));
    assert_ne!(code(&o), 0, "{}", text(&o));
    let v = &r["viewers"];
    assert_eq!(u(v, "/started"), 0, "{v:#}");
    assert_eq!(
        u(v, "/failures/rejected NetStream.Play.Failed"),
        4,
        "unsigned viewers refused by serve's play authentication: {v:#}"
    );
}
