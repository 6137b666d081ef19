//! `pushprobe url --play` and `url --check` on play URLs (issue 13): the
//! expected txSecret comes from Python's hashlib, not from pushprobe.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{bin, have, run, text};

/// MD5(key + stream + txTime) by Python's hashlib.
fn python_md5(s: &str) -> Option<String> {
    if !have("python3") {
        return None;
    }
    let o = run(
        Command::new("python3").args([
            "-c",
            "import hashlib,sys; print(hashlib.md5(sys.argv[1].encode()).hexdigest())",
            s,
        ]),
        Duration::from_secs(10),
    );
    assert!(o.status.success(), "{}", text(&o));
    Some(String::from_utf8(o.stdout).unwrap().trim().to_string())
}

fn url(env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let mut c = bin();
    for (k, v) in env {
        c.env(k, v);
    }
    run(c.arg("url").args(args), Duration::from_secs(20))
}

#[test]
fn play_urls_are_signed_with_the_play_key() {
    // Tencent's documented vector, and one of our own.
    for (key, stream, expiry) in [
        ("e12c46f2612d5106e2034781ab261ca3", "test", 0x5C27_1099u64),
        ("another-play-key", "room_42", 1_900_000_000),
    ] {
        let tx_time = format!("{expiry:X}");
        let Some(secret) = python_md5(&format!("{key}{stream}{tx_time}")) else {
            return;
        };
        let q = format!("txSecret={secret}&txTime={tx_time}");
        let o = url(
            &[("PUSHPROBE_PLAY_KEY", key)],
            &[
                "--play",
                "--play-domain",
                "liveplay.example.com",
                "--stream",
                stream,
                "--expires-at",
                &expiry.to_string(),
            ],
        );
        assert!(o.status.success(), "{}", text(&o));
        let lines: Vec<String> = String::from_utf8(o.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        assert_eq!(
            lines,
            [
                format!("rtmp://liveplay.example.com/live/{stream}?{q}"),
                format!("http://liveplay.example.com/live/{stream}.flv?{q}"),
                format!("http://liveplay.example.com/live/{stream}.m3u8?{q}"),
            ]
        );
    }
    if python_md5("").is_none() {
        return;
    }
    // The same from a key file, with another app.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("play.key");
    std::fs::write(&file, "e12c46f2612d5106e2034781ab261ca3\n").unwrap();
    let o = url(
        &[],
        &[
            "--play",
            "--play-domain",
            "p.example.com",
            "--app",
            "app2",
            "--stream",
            "test",
            "--expires-at",
            "1546064025",
            "--play-key-file",
            file.to_str().unwrap(),
        ],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("http://p.example.com/app2/test.flv?txSecret=f85a2ab363fe4deaffef9754d79da6fe&txTime=5C271099"),
        "{}",
        text(&o)
    );
}

#[test]
fn unsigned_play_urls_without_a_play_key() {
    let o = url(
        &[],
        &[
            "--play",
            "--play-domain",
            "play.example.com",
            "--stream",
            "s1",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "rtmp://play.example.com/live/s1\nhttp://play.example.com/live/s1.flv\nhttp://play.example.com/live/s1.m3u8\n"
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no play key"),
        "{}",
        text(&o)
    );
    // Bad input: a clear error, exit 2.
    let o = url(
        &[],
        &[
            "--play",
            "--play-domain",
            "play.example.com",
            "--stream",
            "a b",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("stream name"), "{}", text(&o));
    let o = url(&[], &["--play", "--stream", "s1"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--play-domain"), "{}", text(&o));
}

#[test]
fn check_explains_play_urls_against_the_play_key() {
    let key = "e12c46f2612d5106e2034781ab261ca3";
    let expiry = common::now() + 7200;
    let tx_time = format!("{expiry:X}");
    let Some(secret) = python_md5(&format!("{key}test{tx_time}")) else {
        return;
    };
    let flv =
        format!("http://liveplay.example.com/live/test.flv?txSecret={secret}&txTime={tx_time}");
    let o = url(&[("PUSHPROBE_PLAY_KEY", key)], &["--check", &flv]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    for want in [
        "play URL (HTTP-FLV)",
        "port      80 (default)",
        "app       live",
        "stream    test",
        "matches the play key",
        "verdict   ok",
    ] {
        assert!(out.contains(want), "{want:?} in {out}");
    }
    assert!(!out.contains(&secret), "txSecret printed: {out}");
    assert!(out.contains("txSecret=***"), "{out}");

    let o = url(&[("PUSHPROBE_PLAY_KEY", "wrong")], &["--check", &flv]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("DOES NOT MATCH the play key"),
        "{}",
        text(&o)
    );

    let hls = "https://liveplay.example.com/live/test.m3u8?txSecret=00&txTime=5C271099";
    let o = url(&[], &["--check", hls]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.contains("play URL (HLS)") && out.contains("EXPIRED"),
        "{out}"
    );
    assert!(out.contains("port      443 (default)"), "{out}");

    // An RTMP URL signed with the play key is recognised as a play URL.
    let rtmp = format!("rtmp://liveplay.example.com/live/test?txSecret={secret}&txTime={tx_time}");
    let o = url(&[("PUSHPROBE_PLAY_KEY", key)], &["--check", &rtmp]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("play key  matches the play key"),
        "{}",
        text(&o)
    );

    let o = url(
        &[],
        &["--check", "http://liveplay.example.com/live/test.mp4"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("STREAM.flv"), "{}", text(&o));
}
