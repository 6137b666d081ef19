//! Issue 10 part 3: servers that answer Publish.Start (in onStatus, or only
//! in onFCPublish) and then close the connection are refusing. A close
//! within `--refusal-window` (default 2 s) is a refusal; later it is an
//! interruption. `smoke` classifies it; `dup` judges by what happened to the
//! media (second closed within the window, first kept streaming: PASS).

mod common;

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::thread;
use std::time::Duration;

use common::script::{Peer, Server, on_status};
use common::*;
use pushprobe::rtmp::amf0::Value;
use pushprobe::rtmp::message::Command as Cmd;

const KEY: &str = "0123456789abcdef0123456789abcdef";

/// Where the server sends NetStream.Publish.Start.
#[derive(Clone, Copy, Debug)]
enum StartIn {
    /// onStatus, in answer to publish.
    OnStatus,
    /// only onFCPublish, in answer to FCPublish (no onStatus at all).
    OnFcPublish,
}

/// Accepts the push; with `close_after` set, closes the connection that
/// long after Publish.Start without any error status, else keeps reading.
fn start_then(
    p: &mut Peer,
    start_in: StartIn,
    close_after: Option<Duration>,
) -> std::io::Result<()> {
    p.handshake()?;
    p.connect_ok()?;
    match start_in {
        StartIn::OnStatus => {
            p.create_stream_ok()?;
            p.publish_start()?;
        }
        StartIn::OnFcPublish => {
            p.expect("FCPublish")?;
            let start = on_status("status", "NetStream.Publish.Start");
            p.reply(
                0,
                &Cmd::new("onFCPublish", 0.0, Value::Null, start.args.clone()),
            )?;
            p.create_stream_ok()?;
            p.expect("publish")?;
        }
    }
    match close_after {
        Some(d) => {
            thread::sleep(d); // the scripted server's behaviour, not a sync
            p.s.shutdown(std::net::Shutdown::Both)
        }
        None => p.drain(),
    }
}

fn run_json(args: &[&str]) -> (i32, serde_json::Value, String) {
    let o = run(bin().args(args), Duration::from_secs(40));
    let v = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|_| panic!("no JSON from {args:?}: {}", text(&o)));
    (o.status.code().unwrap_or(-1), v, text(&o))
}

#[test]
fn issue10_smoke_calls_publish_start_then_close_a_refusal_within_the_window() {
    let cases = [
        (StartIn::OnStatus, 1),
        (StartIn::OnStatus, 50),
        (StartIn::OnFcPublish, 1),
        (StartIn::OnFcPublish, 50),
    ];
    let runs: Vec<_> = cases
        .into_iter()
        .map(|(start_in, ms)| {
            thread::spawn(move || {
                let srv = Server::start(move |mut p| {
                    start_then(&mut p, start_in, Some(Duration::from_millis(ms)))
                });
                // Signed and valid, no key to check it: nothing local decides.
                let url = signed(srv.port, "s", KEY, now() + 86_400);
                let r = run_json(&[
                    "smoke",
                    &url,
                    "--duration",
                    "5s",
                    "--timeout",
                    "5s",
                    "--json",
                ]);
                (start_in, ms, r)
            })
        })
        .collect();
    for h in runs {
        let (start_in, ms, (code, v, all)) = h.join().unwrap();
        let case = format!("{start_in:?} close after {ms} ms: {all}");
        assert_eq!(code, 1, "{case}");
        // A valid txTime and no key: plain `refused`, not certain.
        assert_eq!(v["outcome"], "refused", "{case}");
        assert_eq!(v["certain"], false, "{case}");
        assert_eq!(v["phase"], "publish", "{case}");
        let first = v["evidence"][0].as_str().unwrap();
        assert!(
            first.starts_with("server answered Publish.Start, then it closed the connection")
                || first
                    .starts_with("server answered Publish.Start, then the connection was reset"),
            "{case}"
        );
        assert!(first.ends_with("ms later: a refusal after start"), "{case}");
        // The time it names is the server's delay, less how late the client
        // got to Publish.Start: on a loaded 2-core CI machine a scheduling
        // delay of a few ms (seen: 49 ms named for a 50 ms delay), so up
        // to 20 ms is allowed; 50 ms is still told from 1 ms.
        let later: u64 = first
            .split(" ms later")
            .next()
            .and_then(|s| s.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{case}"));
        assert!(later + 20 >= ms && later < 2000, "{case}");
    }
}

#[test]
fn issue10_a_refusal_after_start_is_weighed_with_local_facts() {
    // An unsigned URL refused right after Publish.Start: the URL is why.
    let srv = Server::start(|mut p| start_then(&mut p, StartIn::OnStatus, Some(Duration::ZERO)));
    let (code, v, all) = run_json(&["smoke", &srv.url("s"), "--json"]);
    assert_eq!(code, 1, "{all}");
    assert_eq!(v["outcome"], "unsigned_url", "{all}");
    assert_eq!(v["certain"], true, "{all}");
}

#[test]
fn issue10_smoke_close_past_the_window_is_an_interruption() {
    let runs: Vec<_> = [StartIn::OnStatus, StartIn::OnFcPublish]
        .into_iter()
        .map(|start_in| {
            thread::spawn(move || {
                let srv = Server::start(move |mut p| {
                    start_then(&mut p, start_in, Some(Duration::from_secs(3)))
                });
                let url = srv.url("s");
                let r = run_json(&[
                    "smoke",
                    &url,
                    "--duration",
                    "6s",
                    "--timeout",
                    "5s",
                    "--json",
                ]);
                (start_in, r)
            })
        })
        .collect();
    for h in runs {
        let (start_in, (code, v, all)) = h.join().unwrap();
        let case = format!("{start_in:?}: {all}");
        assert_eq!(code, 1, "{case}");
        assert_eq!(v["outcome"], "interrupted", "{case}");
        assert!(v["streamed_seconds"].as_f64().unwrap() >= 2.0, "{case}");
    }
}

#[test]
fn issue10_refusal_window_is_a_flag() {
    // With a 100 ms window, a close 400 ms after Publish.Start is an interruption.
    let srv = Server::start(|mut p| {
        start_then(&mut p, StartIn::OnStatus, Some(Duration::from_millis(400)))
    });
    let url = srv.url("s");
    let (code, v, all) = run_json(&[
        "smoke",
        &url,
        "--duration",
        "5s",
        "--refusal-window",
        "100ms",
        "--json",
    ]);
    assert_eq!(
        (code, v["outcome"].as_str()),
        (1, Some("interrupted")),
        "{all}"
    );
}

/// A server that accepts its first publisher and keeps reading, and answers
/// every later one with Publish.Start, then closes after `close_after`.
fn busy_server(start_in: StartIn, close_after: Duration) -> Server {
    let n = AtomicU64::new(0);
    Server::start(move |mut p| {
        if n.fetch_add(1, SeqCst) == 0 {
            start_then(&mut p, start_in, None)
        } else {
            start_then(&mut p, start_in, Some(close_after))
        }
    })
}

#[test]
fn issue10_dup_passes_when_the_second_is_closed_within_the_window() {
    let cases = [
        (StartIn::OnStatus, 1),
        (StartIn::OnStatus, 50),
        (StartIn::OnFcPublish, 1),
        (StartIn::OnFcPublish, 50),
    ];
    let runs: Vec<_> = cases
        .into_iter()
        .map(|(start_in, ms)| {
            thread::spawn(move || {
                let srv = busy_server(start_in, Duration::from_millis(ms));
                let url = srv.url("d");
                (
                    start_in,
                    ms,
                    run_json(&["dup", &url, "--hold", "3s", "--json"]),
                )
            })
        })
        .collect();
    for h in runs {
        let (start_in, ms, (code, v, all)) = h.join().unwrap();
        let case = format!("{start_in:?} close after {ms} ms: {all}");
        assert_eq!(code, 0, "{case}");
        assert_eq!(v["verdict"], "pass", "{case}");
        assert_eq!(v["finding"], "refused", "{case}");
        assert_eq!(v["first"]["outcome"], "accepted", "{case}");
        // Our own first push on the very same URL was accepted: an unsigned
        // URL cannot be why the second was refused.
        assert_eq!(v["second"]["outcome"], "already_in_use", "{case}");
        let ev = v["second"]["evidence"].to_string();
        assert!(ev.contains("a refusal after start"), "{case}");
    }
}

#[test]
fn issue10_dup_fails_when_the_second_streams_past_the_window() {
    // The second push streams 2 s (hold 6 s / 3); closed 1.5 s after
    // Publish.Start with a 1 s window, it was accepted, then cut.
    let srv = busy_server(StartIn::OnStatus, Duration::from_millis(1500));
    let url = srv.url("d");
    let (code, v, all) = run_json(&[
        "dup",
        &url,
        "--hold",
        "6s",
        "--refusal-window",
        "1s",
        "--json",
    ]);
    assert_eq!(code, 1, "{all}");
    assert_eq!(v["finding"], "accepted_alongside", "{all}");
    assert_eq!(v["second"]["outcome"], "interrupted", "{all}");
}
