//! Per-frame stamps (issue 13): a stamped push relayed by nginx-rtmp is
//! decoded by ffmpeg without one error, and ffmpeg's own SEI reader (the
//! showinfo filter) finds pushprobe's UUID and fields in every frame it
//! decodes, with sequences that count up and send times near the wall clock.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

/// pushprobe's stamp UUID ("pushprobe-SEI-v1") as ffmpeg's showinfo prints it.
const UUID_SHOWN: &str = "70757368-7072-6f62-652d-5345492d7631";

#[test]
fn stamped_push_relayed_by_nginx_decodes_cleanly_and_carries_stamps() {
    if !have("nginx") || !have("ffmpeg") {
        return;
    }
    let ng = Nginx::start(None);
    let url = ng.url("stamped");
    let push = spawn(bin().args(["push", &url, "--stamp", "--duration", "12s", "--json"]));
    ng.wait_publishing("stamped", &push);

    // 1. A clean decode: -v error prints nothing and ffmpeg exits 0.
    assert_decodes_cleanly(&url, 3);

    // 2. ffmpeg's SEI reader sees the stamps.
    let shown = run(
        Command::new("ffmpeg").args([
            "-nostdin",
            "-v",
            "info",
            "-rw_timeout",
            "8000000",
            "-i",
            &url,
            // A frame count, not a time: nginx relays audio at once but
            // video from the next keyframe (up to a GOP later), so "-t 2"
            // from the audio's start held anywhere from 0 to 60 frames.
            "-frames:v",
            "40",
            "-vf",
            "showinfo",
            "-an",
            "-f",
            "null",
            "-",
        ]),
        Duration::from_secs(30),
    );
    let log = String::from_utf8_lossy(&shown.stderr).to_string();
    assert_eq!(shown.status.code(), Some(0), "{log}");
    let frames = log.matches("] n:").count();
    let stamps = parse_showinfo_stamps(&log);
    assert!(frames >= 10, "showinfo saw {frames} frames: {log}");
    assert_eq!(
        stamps.len(),
        frames,
        "every decoded frame carries a stamp (UUID {UUID_SHOWN}): {log}"
    );
    let now_us = now() * 1_000_000;
    for w in stamps.windows(2) {
        assert_eq!(w[1].1, w[0].1 + 1, "sequences count up by one: {stamps:?}");
    }
    for &(publisher, _, sent) in &stamps {
        assert_eq!(publisher, 0, "a single push is publisher 0");
        // Sent during this test: within a minute of the clock read after.
        assert!(
            sent <= now_us + 1_000_000 && sent + 60_000_000 >= now_us,
            "{sent} vs {now_us}"
        );
    }
    let out = push.finish(Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// (publisher, sequence, sent_unix_us) from showinfo's "User Data
/// Unregistered" dumps that carry pushprobe's UUID, decoded here from the
/// hex ffmpeg prints (big-endian u32, u64, u64 after the UUID).
fn parse_showinfo_stamps(log: &str) -> Vec<(u32, u64, u64)> {
    let mut out = Vec::new();
    let lines: Vec<&str> = log.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        if !l.contains(UUID_SHOWN) {
            continue;
        }
        // The user data follows on the next lines as hex bytes.
        let mut hex = String::new();
        for next in &lines[i + 1..] {
            let Some((_, rest)) = next.split_once("] ") else {
                break;
            };
            let rest = rest.trim().trim_start_matches("User Data=").trim();
            if rest.is_empty() || !rest.chars().all(|c| c.is_ascii_hexdigit() || c == ' ') {
                break;
            }
            hex.extend(rest.chars().filter(|c| !c.is_whitespace()));
            if hex.len() >= 40 {
                break;
            }
        }
        if hex.len() < 40 {
            continue;
        }
        let b: Vec<u8> = (0..20)
            .map(|k| u8::from_str_radix(&hex[2 * k..2 * k + 2], 16).unwrap())
            .collect();
        out.push((
            u32::from_be_bytes(b[..4].try_into().unwrap()),
            u64::from_be_bytes(b[4..12].try_into().unwrap()),
            u64::from_be_bytes(b[12..20].try_into().unwrap()),
        ));
    }
    out
}
