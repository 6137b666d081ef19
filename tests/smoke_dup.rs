//! `pushprobe smoke` and `pushprobe dup` (issue 4) against the local ingest
//! (`pushprobe serve`, the real binary) and against nginx-rtmp with an
//! on_publish hook applying Tencent's rules.

mod common;

use std::time::Duration;

use common::*;

const KEY: &str = "0123456789abcdef0123456789abcdef";

fn smoke(url: &str, key: Option<&str>) -> (i32, serde_json::Value) {
    let mut c = bin();
    if let Some(k) = key {
        c.env("PUSHPROBE_KEY", k);
    }
    let o = run(
        c.args([
            "smoke",
            url,
            "--duration",
            "2s",
            "--timeout",
            "5s",
            "--json",
        ]),
        Duration::from_secs(20),
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|_| panic!("smoke printed no JSON: {}", text(&o)));
    assert!(!text(&o).contains(KEY), "key leaked");
    (o.status.code().unwrap_or(-1), v)
}

#[test]
fn smoke_names_each_refusal_against_the_local_ingest() {
    let s = Serve::start(
        &[("PUSHPROBE_KEY", KEY)],
        &["--disable", "blocked", "--reject-with-status"],
    );
    let good = signed(s.port, "ok", KEY, now() + 86_400);
    let (code, v) = smoke(&good, Some(KEY));
    assert_eq!((code, v["outcome"].as_str()), (0, Some("accepted")), "{v}");

    let cases = [
        (
            signed(s.port, "old", KEY, now() - 600),
            "expired_url",
            Some(3u64),
        ),
        (
            format!("rtmp://127.0.0.1:{}/live/bare", s.port),
            "unsigned_url",
            Some(4),
        ),
        (
            signed(s.port, "forged", "not-the-key", now() + 86_400),
            "bad_secret",
            Some(4),
        ),
        (
            signed(s.port, "blocked", KEY, now() + 86_400),
            "stream_disabled",
            Some(5),
        ),
    ];
    for (url, want, step) in cases {
        let (code, v) = smoke(&url, Some(KEY));
        assert_eq!(code, 1, "{v}");
        assert_eq!(v["outcome"], want, "{url}: {v}");
        assert_eq!(v["step"].as_u64(), step, "{v}");
        assert!(!v["fix"].as_str().unwrap().is_empty());
        assert!(!v["evidence"].as_array().unwrap().is_empty());
    }
}

#[test]
fn smoke_in_use_is_named_by_status_or_said_plainly_without() {
    // With a status (as nginx-rtmp and Wowza do), the wire names it.
    let s = Serve::start(&[("PUSHPROBE_KEY", KEY)], &["--reject-with-status"]);
    let url = signed(s.port, "busy", KEY, now() + 86_400);
    let holder = spawn(bin().args(["push", &url, "--duration", "30s"]));
    s.wait_stream("busy", &holder);
    let (code, v) = smoke(&url, Some(KEY));
    assert_eq!(code, 1);
    assert_eq!(v["outcome"], "already_in_use", "{v}");
    assert_eq!(
        v["server_status"]["code"], "NetStream.Publish.BadName",
        "{v}"
    );
    drop(holder);

    // Tencent-style silent close with a valid signature: the wire cannot tell
    // in-use from disabled, and smoke says so instead of guessing.
    let s = Serve::start(&[("PUSHPROBE_KEY", KEY)], &[]);
    let url = signed(s.port, "busy", KEY, now() + 86_400);
    let holder = spawn(bin().args(["push", &url, "--duration", "30s"]));
    s.wait_stream("busy", &holder);
    let (code, v) = smoke(&url, Some(KEY));
    assert_eq!(code, 1);
    assert_eq!(v["outcome"], "refused", "{v}");
    assert_eq!(v["certain"], false, "{v}");
    let ev = v["evidence"].to_string();
    assert!(ev.contains("in use") && ev.contains("disabled"), "{ev}");
    drop(holder);
}

#[test]
fn smoke_without_url_uses_the_embedded_ingest() {
    let o = run(
        bin().args(["smoke", "--duration", "2s"]),
        Duration::from_secs(20),
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("outcome   accepted"), "{t}");
    assert!(t.contains("embedded ingest"), "{t}");
}

#[test]
fn smoke_names_refusals_against_nginx_from_local_facts() {
    if !have("nginx") || !have("python3") {
        return;
    }
    // Tencent's rules applied by tests/tencent_hook.py (hashlib), not by us.
    let hook = TencentHook::start(KEY);
    let ng = Nginx::start(Some(&hook.url));
    let good = signed(ng.port, "ok", KEY, now() + 86_400);
    let (code, v) = smoke(&good, Some(KEY));
    assert_eq!((code, v["outcome"].as_str()), (0, Some("accepted")), "{v}");
    let cases = [
        (signed(ng.port, "old", KEY, now() - 600), "expired_url"),
        (
            format!("rtmp://127.0.0.1:{}/live/bare", ng.port),
            "unsigned_url",
        ),
        (
            signed(ng.port, "forged", "not-the-key", now() + 86_400),
            "bad_secret",
        ),
    ];
    for (url, want) in cases {
        let (code, v) = smoke(&url, Some(KEY));
        assert_eq!(code, 1, "{v}");
        assert_eq!(v["outcome"], want, "{url}: {v}");
        // nginx closed without a status: the classifier used local facts.
        assert!(v["server_status"].is_null(), "{v}");
    }
    // The hook, not pushprobe, decided each one, for the reason named.
    assert_eq!(
        hook.decisions(),
        [
            "200 ok",
            "403 old: txTime expired",
            "403 bare: no txTime or txSecret",
            "403 forged: txSecret mismatch",
        ]
    );
    // nginx's own duplicate refusal carries "Already publishing".
    let busy = signed(ng.port, "busy", KEY, now() + 86_400);
    let holder = spawn(bin().args(["push", &busy, "--duration", "30s"]));
    ng.wait_publishing("busy", &holder);
    let (code, v) = smoke(&busy, Some(KEY));
    assert_eq!(
        (code, v["outcome"].as_str()),
        (1, Some("already_in_use")),
        "{v}"
    );
    drop(holder);
}

fn dup(url: &str) -> (i32, serde_json::Value) {
    let o = run(
        bin().args(["dup", url, "--hold", "4s", "--json"]),
        Duration::from_secs(30),
    );
    let v = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", text(&o)));
    (o.status.code().unwrap_or(-1), v)
}

#[test]
fn dup_passes_when_duplicates_are_rejected_and_fails_when_replaced() {
    let reject = Serve::start(&[("PUSHPROBE_KEY", KEY)], &[]);
    let (code, v) = dup(&signed(reject.port, "d", KEY, now() + 86_400));
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["finding"], "refused");
    assert_eq!(v["first"]["outcome"], "accepted");

    let replace = Serve::start(&[("PUSHPROBE_KEY", KEY)], &["--duplicate", "replace"]);
    let (code, v) = dup(&signed(replace.port, "d", KEY, now() + 86_400));
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["finding"], "replaced", "{v}");
    assert_eq!(v["first"]["outcome"], "interrupted", "{v}");
}

#[test]
fn dup_against_nginx_passes() {
    if !have("nginx") {
        return;
    }
    let ng = Nginx::start(None);
    let (code, v) = dup(&ng.url("d"));
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["second"]["outcome"], "already_in_use", "{v}");
}
