//! `pushprobe doctor` with the real binary: nginx-rtmp (plain and with an
//! on_publish hook refusing), a closed port, a listener that never speaks,
//! `.invalid` and `localhost` names. Loopback only.

mod common;

use std::net::TcpListener;
use std::process::Output;
use std::time::{Duration, Instant};

use common::*;
use pushprobe::sign;
use serde_json::Value;

fn secret_of(url: &str) -> String {
    let u = sign::PushUrl::parse(url).unwrap();
    u.tx_secret().unwrap().to_string()
}

/// Runs `doctor URL --json ARGS` and returns (exit code, report).
fn doctor_json(url: &str, key: Option<&str>, args: &[&str]) -> (Option<i32>, Value, Output) {
    let mut cmd = bin();
    cmd.args(["doctor", url, "--json"]).args(args);
    if let Some(k) = key {
        cmd.env("PUSHPROBE_KEY", k);
    }
    let out = run(&mut cmd, Duration::from_secs(15));
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("one JSON object ({e}): {}", text(&out)));
    (out.status.code(), v, out)
}

fn statuses(v: &Value) -> Vec<&str> {
    v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect()
}

fn detail(v: &Value, step: usize) -> &str {
    v["steps"][step - 1]["detail"].as_str().unwrap()
}

#[test]
fn signed_url_to_nginx_passes_every_step() {
    if !have("nginx") {
        return;
    }
    let ng = Nginx::start(None);
    let url = signed(ng.port, "doc1", "k1", now() + 86_400);
    let (code, v, out) = doctor_json(&url, Some("k1"), &["--duration", "1s"]);
    assert_eq!(code, Some(0), "{}", text(&out));
    let steps = v["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 5, "{v}");
    let names = ["cname", "network", "txtime", "txsecret", "push"];
    for (i, s) in steps.iter().enumerate() {
        let keys: Vec<&str> = s.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 5, "{s}");
        for k in ["step", "name", "status", "detail", "fix"] {
            assert!(keys.contains(&k), "step {i} lacks {k}: {s}");
        }
        assert_eq!(s["step"], i + 1);
        assert_eq!(s["name"], names[i]);
    }
    // 127.0.0.1 is an IP literal: nothing to resolve, no CNAME to check.
    assert_eq!(
        statuses(&v),
        ["skip", "pass", "pass", "pass", "pass"],
        "{v}"
    );
    assert!(detail(&v, 5).starts_with("accepted"), "{v}");
    assert_eq!(v["verdict"], "ok");
    assert!(!text(&out).contains(&secret_of(&url)), "secret leaked");
}

#[test]
fn closed_port_fails_network_and_skips_push() {
    let port = free_port();
    let out = run(
        bin().args(["doctor", &format!("rtmp://127.0.0.1:{port}/live/s")]),
        Duration::from_secs(15),
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains(&format!(
            "2 network  fail  connection refused: nothing listens on port {port}"
        )),
        "{t}"
    );
    assert!(t.contains("                 fix: nothing listens"), "{t}");
    assert!(t.contains("5 push     skip  not run"), "{t}");
    assert!(t.contains("verdict  network"), "{t}");
}

#[test]
fn invalid_name_fails_dns_and_localhost_skips_cname() {
    let (code, v, out) = doctor_json("rtmp://push.doctor.invalid/live/s", None, &[]);
    assert_eq!(code, Some(1), "{}", text(&out));
    assert_eq!(statuses(&v)[..2], ["fail", "skip"], "{v}");
    assert_eq!(statuses(&v)[4], "skip", "{v}");
    assert!(
        detail(&v, 1).contains("push.doctor.invalid does not resolve"),
        "{v}"
    );
    assert!(detail(&v, 5).contains("does not resolve"), "{v}");
    assert_eq!(v["verdict"], "cname");

    let port = free_port();
    let (_, v, _) = doctor_json(&format!("rtmp://localhost:{port}/live/s"), None, &[]);
    assert_eq!(statuses(&v)[0], "skip", "{v}");
    assert!(detail(&v, 1).starts_with("localhost resolves to"), "{v}");
}

#[test]
fn expired_url_refused_by_hook_fails_txtime_and_push() {
    if !have("nginx") {
        return;
    }
    let hook = HookServer::start(|_| 403);
    let ng = Nginx::start(Some(&hook.url));
    let url = signed(ng.port, "old", "k1", now() - 3600);
    let (code, v, out) = doctor_json(&url, Some("k1"), &[]);
    assert_eq!(code, Some(1), "{}", text(&out));
    assert_eq!(
        statuses(&v),
        ["skip", "pass", "fail", "pass", "fail"],
        "{v}"
    );
    assert!(detail(&v, 3).contains("expired 1 h 0 min ago"), "{v}");
    assert!(detail(&v, 5).starts_with("expired_url: "), "{v}");
    assert!(detail(&v, 5).contains("txTime expired"), "{v}");
    assert_eq!(v["verdict"], "txtime");
    assert!(!text(&out).contains(&secret_of(&url)), "secret leaked");
    assert!(!hook.requests.lock().unwrap().is_empty(), "hook was asked");
}

#[test]
fn mis_signed_url_fails_txsecret_even_when_the_ingest_accepts() {
    if !have("nginx") {
        return;
    }
    let ng = Nginx::start(None);
    let url = signed(ng.port, "mis", "k1", now() + 86_400);
    let (code, v, out) = doctor_json(&url, Some("another-key"), &["--duration", "1s"]);
    assert_eq!(code, Some(1), "{}", text(&out));
    assert_eq!(
        statuses(&v),
        ["skip", "pass", "pass", "fail", "pass"],
        "{v}"
    );
    assert!(detail(&v, 4).contains("matches neither"), "{v}");
    assert_eq!(v["verdict"], "txsecret");
}

#[test]
fn silent_listener_times_out_the_push_within_the_timeout() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming() {
            held.push(s);
        }
    });
    let started = Instant::now();
    let (code, v, out) = doctor_json(
        &format!("rtmp://127.0.0.1:{port}/live/s"),
        None,
        &["--timeout", "2s"],
    );
    let took = started.elapsed();
    assert_eq!(code, Some(1), "{}", text(&out));
    assert_eq!(statuses(&v)[1], "pass", "{v}");
    assert_eq!(statuses(&v)[4], "fail", "{v}");
    assert!(detail(&v, 5).starts_with("timeout: "), "{v}");
    // The configured 2 s timeout, plus 4 s for the other steps, process
    // start-up and a loaded machine: far below a push that waits forever.
    assert!(took < Duration::from_secs(2 + 4), "took {took:?}");
}
