//! Issue 17: `pushprobe serve --srt-listen` takes SRT pushes from independent
//! libsrt callers (Debian's ffmpeg, srt-live-transmit, libsrt itself through
//! `tests/srt_reject_code.py`), checks Tencent's signature in the streamid
//! with the RTMP rules, refuses with access-control codes, and shares one
//! registry with RTMP. Signatures are computed here with the md-5 crate
//! (`common::tx_secret`), never with `pushprobe::sign`.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

const KEY: &str = "srt-push-key";
const CB_KEY: &str = "srt-cb-key";
/// A refused ffmpeg gives up after libsrt's connect timeout (3 s by
/// default); this bounds a hang, with room for a loaded machine.
const REFUSED_WITHIN: Duration = Duration::from_secs(30);

/// Tencent's streamid (doc 267/40102): `#!::h=..,r=live/STREAM,txSecret=..,txTime=..`.
fn streamid(stream: &str, key: &str, expiry: u64) -> String {
    let t = format!("{expiry:X}");
    format!(
        "#!::h=push.example.com,r=live/{stream},txSecret={},txTime={t}",
        tx_secret(key, stream, &t)
    )
}

/// `serve` with the push key and an SRT listener; also its SRT port.
fn serve(extra: &[&str]) -> (Serve, u16) {
    let mut args = vec!["--srt-listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let s = Serve::start(&[("PUSHPROBE_KEY", KEY)], &args);
    let port = printed_port(&s.proc, "SRT on srt://127.0.0.1:");
    (s, port)
}

/// ffmpeg pushing the 360p fixture as MPEG-TS over SRT, in real time.
fn ffmpeg_srt(port: u16, sid: &str, secs: u32) -> Proc {
    spawn(
        Command::new("ffmpeg")
            .args([
                "-nostdin",
                "-loglevel",
                "warning",
                "-re",
                "-t",
                &secs.to_string(),
            ])
            .arg("-i")
            .arg(fixture("sd-360p.flv"))
            .args(["-c", "copy", "-f", "mpegts"])
            .arg(format!("srt://127.0.0.1:{port}?streamid={sid}")),
    )
}

/// What a bare libsrt caller hears: `accepted` or `rejected CODE`.
fn libsrt_answer(port: u16, sid: &str) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/srt_reject_code.py");
    let o = run(
        Command::new("python3")
            .arg(script)
            .arg("127.0.0.1")
            .arg(port.to_string())
            .arg(sid),
        REFUSED_WITHIN,
    );
    assert!(o.status.success(), "srt_reject_code.py: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn records(s: &Serve) -> Vec<serde_json::Value> {
    http_get(s.http, "/records")
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or_default()
}

/// Waits for the ingest's record of `stream` with `errcode`; returns it.
fn wait_record(s: &Serve, stream: &str, errcode: u64, watched: &[&Proc]) -> serde_json::Value {
    let printed: Vec<&Printed> = std::iter::once(&s.proc.1)
        .chain(watched.iter().map(|p| &p.1))
        .collect();
    wait_until(
        &format!("a record of {stream} with errcode {errcode}"),
        READY,
        &printed,
        || {
            records(s)
                .into_iter()
                .find(|r| r["stream"] == stream && r["errcode"] == errcode)
        },
    )
}

fn tools() -> bool {
    have("ffmpeg") && have("python3")
}

#[test]
fn ffmpeg_srt_push_is_accepted_listed_recorded_and_called_back() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (port_file, events) = (dir.path().join("port"), dir.path().join("events"));
    let receiver = spawn(
        Command::new("python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/independent_receiver.py"))
            .arg(&port_file)
            .arg(&events)
            .env("PUSHPROBE_CALLBACK_KEY", CB_KEY),
    );
    let cb_port = receiver.wait_for("the receiver's port file", READY, || {
        std::fs::read_to_string(&port_file).ok()
    });
    let cb_url = format!("http://127.0.0.1:{cb_port}/live/cb");
    let mut args = vec!["--srt-listen", "127.0.0.1:0", "--callback-url", &cb_url];
    args.push("--callback-retries");
    args.push("0");
    let s = Serve::start(
        &[("PUSHPROBE_KEY", KEY), ("PUSHPROBE_CALLBACK_KEY", CB_KEY)],
        &args,
    );
    let port = printed_port(&s.proc, "SRT on srt://127.0.0.1:");
    let expiry = now() + 3600;
    let secret = tx_secret(KEY, "srtok", &format!("{expiry:X}"));
    let sid = streamid("srtok", KEY, expiry);
    let ff = ffmpeg_srt(port, &sid, 4);
    // Listed as an SRT stream with the size from the SPS in its TS.
    let listed = wait_until(
        "srtok listed with its size",
        READY,
        &[&s.proc.1, &ff.1],
        || {
            s.streams()
                .into_iter()
                .find(|v| v["stream"] == "srtok" && v["width"] != 0)
        },
    );
    assert_eq!(listed["transport"], "srt", "{listed}");
    assert_eq!(listed["app"], "live");
    assert_eq!(
        (listed["width"].as_u64(), listed["height"].as_u64()),
        (Some(640), Some(360))
    );
    let query = listed["query"].as_str().unwrap();
    assert!(query.contains("txSecret=***"), "{query}");
    assert!(!query.contains(&secret), "{query}");
    let out = ff.finish(Duration::from_secs(60));
    assert!(out.status.success(), "ffmpeg: {}", text(&out));
    // ffmpeg closed: the push ends as the client's (errcode 1).
    let r = wait_record(&s, "srtok", 1, &[]);
    assert_eq!(r["sub_errcode"], 0, "{r}");
    assert!(r["push_duration_ms"].as_u64().unwrap() > 0, "{r}");
    // Both callbacks, verified by the independent receiver, as for RTMP.
    let lines = wait_until(
        "two verified callbacks",
        READY,
        &[&receiver.1, &s.proc.1],
        || {
            let t = std::fs::read_to_string(&events).unwrap_or_default();
            let done =
                t.contains("REFUSED") || t.lines().filter(|l| l.starts_with('{')).count() >= 2;
            done.then_some(t)
        },
    );
    assert!(!lines.contains("REFUSED"), "{lines}");
    let evs: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        (evs[0]["event_type"].as_i64(), evs[1]["event_type"].as_i64()),
        (Some(1), Some(0))
    );
    assert_eq!(evs[0]["stream_id"], "srtok");
    assert_eq!(evs[0]["sequence"], evs[1]["sequence"]);
    assert_eq!(
        (evs[0]["width"].as_i64(), evs[0]["height"].as_i64()),
        (Some(640), Some(360))
    );
    assert_eq!(evs[1]["errcode"], 1);
}

#[test]
fn srt_pushes_are_refused_by_signature_with_sub_codes_and_reject_codes() {
    if !tools() {
        return;
    }
    let (s, port) = serve(&[]);
    let t = format!("{:X}", now() + 3600);
    let past = now() - 60;
    let expired_secret = tx_secret(KEY, "expired", &format!("{past:X}"));
    let cases = [
        ("expired", streamid("expired", KEY, past), 501, 1403),
        (
            "wrongkey",
            streamid("wrongkey", "not-the-key", now() + 3600),
            503,
            1403,
        ),
        (
            "unsigned",
            "#!::h=push.example.com,r=live/unsigned".to_string(),
            500,
            1401,
        ),
        (
            "nosecret",
            format!("#!::r=live/nosecret,txTime={t}"),
            502,
            1401,
        ),
        (
            "otherapp",
            streamid("otherapp", KEY, now() + 3600).replace("live/", "other/"),
            304,
            1404,
        ),
    ];
    for (stream, sid, sub, code) in &cases {
        // ffmpeg fails to connect ...
        let out = ffmpeg_srt(port, sid, 2).finish(REFUSED_WITHIN);
        assert!(
            !out.status.success(),
            "{stream}: ffmpeg pushed: {}",
            text(&out)
        );
        // ... the ingest records the Tencent sub-code ...
        let r = wait_record(&s, stream, 18, &[]);
        assert_eq!(r["sub_errcode"], *sub, "{stream}: {r}");
        // ... and libsrt hears the access-control code.
        assert_eq!(
            libsrt_answer(port, sid),
            format!("rejected {code}"),
            "{stream}"
        );
    }
    // Not a publisher, or no resource: bad mode, bad request.
    let mode = format!("{},m=request", streamid("player", KEY, now() + 3600));
    assert_eq!(libsrt_answer(port, &mode), "rejected 1405");
    assert_eq!(
        libsrt_answer(port, "#!::h=push.example.com"),
        "rejected 1400"
    );
    assert!(s.streams().is_empty(), "{:?}", s.streams());
    // The secret never reaches the ingest's output.
    let printed = s.kill();
    let all = text(&printed);
    assert!(!all.contains(&expired_secret), "{all}");
}

#[test]
fn rtmp_and_srt_pushes_to_one_stream_are_duplicates() {
    if !tools() {
        return;
    }
    let (s, port) = serve(&[]);
    // RTMP first (ffmpeg), then SRT to the same stream: 601 / 1409.
    let rtmp = spawn(
        Command::new("ffmpeg")
            .args([
                "-nostdin",
                "-loglevel",
                "warning",
                "-re",
                "-stream_loop",
                "-1",
                "-i",
            ])
            .arg(fixture("sd-360p.flv"))
            .args(["-c", "copy", "-f", "flv"])
            .arg(signed(s.port, "dup", KEY, now() + 3600)),
    );
    s.wait_stream("dup", &rtmp);
    let sid = streamid("dup", KEY, now() + 3600);
    assert_eq!(libsrt_answer(port, &sid), "rejected 1409");
    let out = ffmpeg_srt(port, &sid, 2).finish(REFUSED_WITHIN);
    assert!(
        !out.status.success(),
        "ffmpeg SRT pushed a duplicate: {}",
        text(&out)
    );
    let r = wait_record(&s, "dup", 18, &[&rtmp]);
    assert_eq!(r["sub_errcode"], 601, "{r}");
    let live = s.streams();
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!(live[0]["transport"], "rtmp");
    drop(rtmp);

    // SRT first, then RTMP to the same stream: refused with 601.
    let sid = streamid("dup2", KEY, now() + 3600);
    let srt = ffmpeg_srt(port, &sid, 30);
    s.wait_stream("dup2", &srt);
    let out = run(
        Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "warning", "-re", "-t", "2", "-i"])
            .arg(fixture("sd-360p.flv"))
            .args(["-c", "copy", "-f", "flv"])
            .arg(signed(s.port, "dup2", KEY, now() + 3600)),
        REFUSED_WITHIN,
    );
    let r = wait_record(&s, "dup2", 18, &[&srt]);
    assert_eq!(r["sub_errcode"], 601, "{r}; ffmpeg RTMP: {}", text(&out));
    let live: Vec<_> = s
        .streams()
        .into_iter()
        .filter(|v| v["stream"] == "dup2")
        .collect();
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!(live[0]["transport"], "srt");
}

/// srt-live-transmit 1.5 at the end of its input waits for its send buffer
/// to drain and does not close in a way srt-tokio 0.4.4 sees: the push ends
/// by the ingest's idle timeout (errcode 8; 3 s here) or, should that
/// change, as the client's close (errcode 1). Either way it is recorded.
#[test]
fn srt_live_transmit_push_is_accepted() {
    if !have("ffmpeg") || !have("srt-live-transmit") {
        return;
    }
    let (s, port) = serve(&["--idle-timeout", "3s"]);
    let sid = streamid("slt", KEY, now() + 3600);
    // ffmpeg makes real-time TS; srt-live-transmit (libsrt's own tool) pushes it.
    let pipeline = format!(
        "ffmpeg -nostdin -loglevel error -re -t 6 -i '{}' -c copy -f mpegts - \
         | srt-live-transmit -a:no file://con 'srt://127.0.0.1:{port}?streamid={sid}'",
        fixture("sd-360p.flv").display()
    );
    let p = spawn(Command::new("sh").arg("-c").arg(&pipeline));
    let listed = wait_until(
        "slt listed with its size",
        READY,
        &[&s.proc.1, &p.1],
        || {
            s.streams()
                .into_iter()
                .find(|v| v["stream"] == "slt" && v["width"] != 0)
        },
    );
    assert_eq!(listed["transport"], "srt");
    assert_eq!(
        (listed["width"].as_u64(), listed["height"].as_u64()),
        (Some(640), Some(360))
    );
    let out = p.finish(Duration::from_secs(60));
    assert!(out.status.success(), "pipeline: {}", text(&out));
    let r = wait_until("the record of slt's end", READY, &[&s.proc.1], || {
        records(&s).into_iter().find(|r| r["stream"] == "slt")
    });
    assert!(r["errcode"] == 1 || r["errcode"] == 8, "{r}");
    assert_eq!(r["sub_errcode"], 0, "{r}");
}

/// Issue 17: an SRT push plays out over RTMP and HTTP-FLV like an RTMP one
/// (TS access units become FLV tags in the fan-out); ffprobe reads both and
/// ffmpeg decodes the RTMP play without an error.
#[test]
fn srt_push_plays_out_over_rtmp_and_http_flv() {
    if !tools() || !have("ffprobe") {
        return;
    }
    let (s, port) = serve(&[]);
    let sid = streamid("srtplay", KEY, now() + 3600);
    let ff = ffmpeg_srt(port, &sid, 10);
    wait_until(
        "srtplay listed with its size",
        READY,
        &[&s.proc.1, &ff.1],
        || {
            s.streams()
                .into_iter()
                .find(|v| v["stream"] == "srtplay" && v["width"] != 0)
        },
    );
    let rtmp = format!("rtmp://127.0.0.1:{}/live/srtplay", s.port);
    let flv = format!("http://127.0.0.1:{}/live/srtplay.flv", s.http);
    for url in [&rtmp, &flv] {
        let probed = ffprobe_stream(url);
        assert!(
            probed.contains("h264,640,360"),
            "{url}: ffprobe saw {probed:?}"
        );
        assert!(probed.contains("aac"), "{url}: ffprobe saw {probed:?}");
    }
    assert_decodes_cleanly(&rtmp, 2);
    let out = ff.finish(Duration::from_secs(60));
    assert!(out.status.success(), "ffmpeg: {}", text(&out));
}
