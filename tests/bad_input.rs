//! Bad input (issue 7): broken FLV files, malformed push URLs and reports that
//! are not reports. Each is a one-line error naming the problem, exit 2,
//! before any connection is made; never a panic.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::*;

/// Nothing listens on port 9 of loopback; no test here gets as far as dialing.
const URL: &str = "rtmp://127.0.0.1:9/live/s";

fn run_bin(args: &[&str]) -> Output {
    run(bin().args(args), Duration::from_secs(10))
}

/// Exit 2 and exactly one line on stderr, containing every one of `words`.
fn assert_usage_error(out: &Output, words: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{}", text(out));
    assert!(!stderr.contains("panicked"), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    for w in words {
        assert!(stderr.contains(w), "{w:?} not in: {stderr}");
    }
    // Each cause once: a cause repeated by its wrapper reads as noise.
    let parts: Vec<&str> = lines[0].split(": ").collect();
    for (i, p) in parts.iter().enumerate() {
        assert!(!parts[i + 1..].contains(p), "{p:?} repeated: {stderr}");
    }
    assert!(out.stdout.is_empty(), "{}", text(out));
    stderr
}

/// An FLV file: header, then `(type, timestamp ms, body)` tags.
fn flv(tags: &[(u8, u32, &[u8])]) -> Vec<u8> {
    let mut out = b"FLV\x01\x05\x00\x00\x00\x09".to_vec();
    out.extend_from_slice(&0u32.to_be_bytes());
    for &(tag_type, ts, body) in tags {
        let start = out.len();
        out.push(tag_type);
        out.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        out.extend_from_slice(&ts.to_be_bytes()[1..]);
        out.push((ts >> 24) as u8);
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(body);
        let size = (out.len() - start) as u32;
        out.extend_from_slice(&size.to_be_bytes());
    }
    out
}

const AVC_SEQ: &[u8] = &[0x17, 0, 0, 0, 0, 1, 0x4d, 0x40, 0x1e];
const KEY: &[u8] = &[0x17, 1, 0, 0, 0, 0xaa, 0xbb];
const INTER: &[u8] = &[0x27, 1, 0, 0, 0, 0xcc];

fn push_fixture(dir: &Path, name: &str, bytes: &[u8]) -> Output {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    run(
        bin().args(["push", URL, "--fixture"]).arg(&path),
        Duration::from_secs(10),
    )
}

#[test]
fn broken_flv_files_are_named_errors() {
    let dir = tempfile::tempdir().unwrap();
    let real = std::fs::read(fixture("sd-360p.flv")).unwrap();
    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        (
            "truncated.flv",
            real[..real.len() / 2].to_vec(),
            &["FLV", "truncated"],
        ),
        (
            "cut-header.flv",
            real[..5].to_vec(),
            &["FLV", "truncated in file header"],
        ),
        (
            "cut-tag-header.flv",
            real[..13 + 5].to_vec(),
            &["FLV", "truncated in tag header"],
        ),
        (
            "not.flv",
            b"<html>not a video</html>".to_vec(),
            &["not an FLV file"],
        ),
        ("empty.flv", Vec::new(), &["not an FLV file"]),
        ("header-only.flv", flv(&[]), &["FLV", "no audio or video"]),
        (
            "backwards.flv",
            flv(&[(9, 0, AVC_SEQ), (9, 0, KEY), (9, 80, INTER), (9, 40, INTER)]),
            &["FLV", "backwards", "80 ms to 40 ms"],
        ),
        (
            "jump.flv",
            flv(&[
                (9, 0, AVC_SEQ),
                (9, 0, KEY),
                (9, 40, INTER),
                (9, 5040, INTER),
            ]),
            &["FLV", "jump by 5000 ms"],
        ),
    ];
    for (name, bytes, words) in cases {
        let out = push_fixture(dir.path(), name, &bytes);
        let e = assert_usage_error(&out, words);
        eprintln!("{name}: {}", e.trim());
    }
    // A missing file names the path.
    let out = run_bin(&["push", URL, "--fixture", "/nonexistent/x.flv"]);
    assert_usage_error(&out, &["FLV", "/nonexistent/x.flv"]);
    // load checks the fixture before it starts anyone.
    let bad = dir.path().join("not.flv");
    let out = run(
        bin()
            .args(["load", "--url-template", "rtmp://127.0.0.1:9/live/s{i}"])
            .args(["--progress", "none", "--fixture"])
            .arg(&bad),
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("not an FLV file"), "{}", text(&out));
}

#[test]
fn malformed_urls_are_one_line_errors_in_every_command() {
    let huge = format!("rtmp://127.0.0.1/live/s?pad={}", "x".repeat(5000));
    let cases: Vec<(String, &[&str])> = vec![
        // push, smoke and doctor name the schemes they take; url --check
        // reads an http URL as a play URL and names the form it expects.
        ("http://127.0.0.1/live/s".into(), &["://"]),
        (
            "srt://127.0.0.1:9000/live/s".into(),
            &["streamid=#!::h=DOMAIN,r=APP/STREAM"],
        ),
        ("rtmp:///live/s".into(), &["no host"]),
        ("rtmp://127.0.0.1:9".into(), &["no app"]),
        ("rtmp://127.0.0.1/live/".into(), &["no stream name"]),
        ("rtmp://127.0.0.1:99999/live/s".into(), &["port"]),
        (huge, &["bytes long", "4096-byte limit"]),
        (
            "rtmp://127.0.0.1/live/直播".into(),
            &["stream name", "ASCII"],
        ),
        ("rtmp://127.0.0.1/live/s?txTime=soon".into(), &["txTime"]),
    ];
    for (url, words) in &cases {
        for cmd in [
            vec!["push", url.as_str(), "--json"],
            vec!["url", "--check", url.as_str()],
            vec!["smoke", url.as_str()],
            vec!["doctor", url.as_str()],
        ] {
            let out = run_bin(&cmd);
            let e = assert_usage_error(&out, words);
            if cmd[0] == "push" {
                eprintln!("{}: {}", &url[..url.len().min(40)], e.trim());
            }
        }
    }
}

#[test]
fn malformed_load_templates_are_one_line_errors() {
    let huge = format!("rtmp://127.0.0.1/live/s{{i}}?pad={}", "x".repeat(5000));
    let cases: Vec<(String, &[&str])> = vec![
        ("http://127.0.0.1/live/s{i}".into(), &["rtmp://"]),
        ("rtmp://127.0.0.1/s{i}".into(), &["no stream name"]),
        (huge, &["4096-byte limit"]),
        (
            "rtmp://127.0.0.1/live/直播{i}".into(),
            &["stream name", "ASCII"],
        ),
        ("rtmp://127.0.0.1/live/s".into(), &["no {i} placeholder"]),
    ];
    for (template, words) in &cases {
        let out = run_bin(&["load", "--url-template", template, "--progress", "none"]);
        assert_usage_error(&out, words);
    }
}

#[test]
fn report_merge_refuses_what_is_not_a_report_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, body: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p.display().to_string()
    };
    let cases = [
        (write("cut.json", "{\"format\": \"pushprobe-lo"), "not JSON"),
        (
            write("list.json", "[1, 2, 3]"),
            "not a pushprobe load report",
        ),
        (
            write("other.json", "{\"format\": \"k6\", \"version\": 1}"),
            "not a pushprobe load report",
        ),
        (
            write(
                "future.json",
                "{\"format\": \"pushprobe-load-report\", \"version\": 9}",
            ),
            "version 9",
        ),
        (
            write(
                "partial.json",
                "{\"format\": \"pushprobe-load-report\", \"version\": 1, \"publishers\": 3}",
            ),
            "missing field",
        ),
        (write("binary.json", "\u{0}\u{1}\u{2}"), "not JSON"),
        (
            dir.path().join("missing.json").display().to_string(),
            "cannot read",
        ),
    ];
    for (path, problem) in &cases {
        let out = run_bin(&["report", "merge", path]);
        let e = assert_usage_error(&out, &[path.as_str(), problem]);
        eprintln!("{}", e.trim());
    }
}
