//! Issue 10 part 5: impaired networks, through the shaping proxy in
//! tests/common/shaper.rs in front of `pushprobe serve`: a capped uplink is
//! named with its figures, added delay shows in every phase, a stall ends
//! as "server stopped reading" and a reset as "connection reset".

mod common;

use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use common::shaper::{Shape, Shaper};
use common::*;

const KEY: &str = "0123456789abcdef0123456789abcdef";

fn ingest() -> Serve {
    Serve::start(&[("PUSHPROBE_KEY", KEY)], &[])
}

fn upstream(s: &Serve) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], s.port))
}

fn json_of(o: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("no JSON: {}", text(o)))
}

/// The fixture's bitrate from ffprobe, an implementation independent of ours.
fn fixture_kbps() -> Option<f64> {
    if !have("ffprobe") {
        return None;
    }
    let o = run(
        std::process::Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "format=bit_rate",
                "-of",
                "csv=p=0",
            ])
            .arg(fixture("sd-360p.flv")),
        Duration::from_secs(20),
    );
    String::from_utf8_lossy(&o.stdout)
        .trim()
        .parse::<f64>()
        .ok()
        .map(|bps| bps / 1000.0)
}

#[test]
fn issue10_an_uplink_below_the_bitrate_is_too_slow() {
    let s = ingest();
    // 128 kbit/s against a ~507 kbit/s fixture: past the buffers (~200 KB,
    // filled in ~4 s at the surplus rate) the push falls behind by 0.75 s
    // per second. Measured over 10 s: 2.5 to 4.4 s behind (8 s gave 1.5 to
    // 2.9 s: too close to the 1 s limit on a loaded machine).
    let shape = Shape {
        up_bps: Some(128_000),
        ..Shape::default()
    };
    let runs: Vec<_> = ["push", "smoke"]
        .into_iter()
        .flat_map(|cmd| [(cmd, true), (cmd, false)])
        .map(|(cmd, json)| {
            let shaper = Shaper::start(upstream(&s), shape);
            // One stream per run: the ingest refuses a second publisher.
            let stream = format!("{cmd}-{}", if json { "json" } else { "text" });
            let url = signed(shaper.port, &stream, KEY, now() + 86_400);
            thread::spawn(move || {
                let mut c = bin();
                c.env("PUSHPROBE_KEY", KEY).args([
                    cmd,
                    &url,
                    "--fixture",
                    fixture("sd-360p.flv").to_str().unwrap(),
                    "--duration",
                    "10s",
                    "--timeout",
                    "10s",
                ]);
                if json {
                    c.arg("--json");
                }
                let o = run(&mut c, Duration::from_secs(60));
                drop(shaper);
                (cmd, json, o)
            })
        })
        .collect();
    let independent = fixture_kbps();
    for h in runs {
        let (cmd, json, o) = h.join().unwrap();
        let all = text(&o);
        assert_eq!(o.status.code(), Some(1), "{cmd}: {all}");
        if !json {
            assert!(all.contains("outcome   too_slow"), "{cmd}: {all}");
            assert!(all.contains("uplink too slow: "), "{cmd}: {all}");
            assert!(all.contains("kbit/s achieved, "), "{cmd}: {all}");
            assert!(all.contains("uplink    "), "{cmd}: {all}");
            continue;
        }
        let v = json_of(&o);
        assert_eq!(v["outcome"], "too_slow", "{cmd}: {v}");
        let uplink = v["uplink_kbps"].as_f64().unwrap();
        let needed = v["needed_kbps"].as_f64().unwrap();
        let lag = v["max_lag_ms"].as_f64().unwrap();
        assert!(lag > 1000.0, "{cmd}: {v}");
        assert!(uplink < needed, "{cmd}: {v}");
        // What went through the cap plus what the buffers held: well under
        // the bitrate, above nothing.
        assert!(uplink > 50.0 && uplink < 0.8 * needed, "{cmd}: {v}");
        if let Some(k) = independent {
            assert!(
                (needed - k).abs() < 0.05 * k,
                "{cmd}: needed {needed} vs ffprobe {k}"
            );
        }
        let ev = v["evidence"].to_string();
        assert!(ev.contains("uplink too slow"), "{cmd}: {v}");
        eprintln!("{cmd} over a 128 kbit/s path: {ev}");
    }
}

#[test]
fn issue10_a_fast_enough_uplink_is_accepted_with_its_figures() {
    let s = ingest();
    let shaper = Shaper::start(
        upstream(&s),
        Shape {
            up_bps: Some(4_000_000),
            ..Shape::default()
        },
    );
    let url = signed(shaper.port, "fast", KEY, now() + 86_400);
    let o = run(
        bin()
            .env("PUSHPROBE_KEY", KEY)
            .args(["push", &url, "--duration", "2s", "--json"]),
        Duration::from_secs(30),
    );
    let v = json_of(&o);
    assert_eq!(o.status.code(), Some(0), "{v}");
    assert_eq!(v["outcome"], "accepted", "{v}");
    assert!(v["uplink_kbps"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["needed_kbps"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["max_lag_ms"].as_f64().unwrap() < 1000.0, "{v}");
}

#[test]
fn issue10_added_delay_shows_in_every_phase() {
    let s = ingest();
    let shaper = Shaper::start(
        upstream(&s),
        Shape {
            delay: Duration::from_millis(100),
            ..Shape::default()
        },
    );
    let url = signed(shaper.port, "delay", KEY, now() + 86_400);
    let o = run(
        bin()
            .env("PUSHPROBE_KEY", KEY)
            .args(["push", &url, "--duration", "1s", "--json"]),
        Duration::from_secs(30),
    );
    let v = json_of(&o);
    assert_eq!(v["outcome"], "accepted", "{v}");
    // 100 ms each way is a 200 ms round trip; each RTMP phase waits for one
    // answer. Lower bounds only (minus 10 ms of timer slack): a loaded
    // machine only adds. The TCP connect is answered by the proxy's kernel,
    // so it is not delayed.
    eprintln!("phases with 100 ms each way: {}", v["phases_ms"]);
    for phase in ["handshake", "connect", "create_stream", "publish"] {
        let ms = v["phases_ms"][phase].as_f64().unwrap_or(0.0);
        assert!(ms >= 190.0, "{phase} took {ms} ms: {v}");
    }
    assert!(
        v["time_to_publish_ms"].as_f64().unwrap() >= 4.0 * 190.0,
        "{v}"
    );
}

/// Pushes for long; once the proxy forwarded `streaming_bytes`, impairs the
/// path with `act`; returns the output and how long after `act` it ended.
fn impair_midstream(act: impl FnOnce(&Shaper)) -> (std::process::Output, Duration) {
    let s = ingest();
    let shaper = Shaper::start(upstream(&s), Shape::default());
    let url = signed(shaper.port, "cut", KEY, now() + 86_400);
    let p = spawn(bin().env("PUSHPROBE_KEY", KEY).args([
        "push",
        &url,
        "--duration",
        "60s",
        "--timeout",
        "2s",
        "--refusal-window",
        "200ms",
        "--json",
    ]));
    // 150 KB is more than the handshake, commands and the first second of
    // media: the push is streaming, well past the refusal window.
    assert!(
        shaper.wait_up_bytes(150_000, Duration::from_secs(20)),
        "the push never streamed"
    );
    act(&shaper);
    let at = Instant::now();
    let o = p.finish(Duration::from_secs(40));
    eprintln!(
        "the push ended {:?} after the path was impaired",
        at.elapsed()
    );
    (o, at.elapsed())
}

#[test]
fn issue10_a_stall_mid_stream_is_an_interruption_within_the_timeout() {
    let (o, took) = impair_midstream(Shaper::stall);
    let v = json_of(&o);
    assert_eq!(o.status.code(), Some(1), "{v}");
    assert_eq!(v["outcome"], "interrupted", "{v}");
    assert_eq!(v["phase"], "streaming", "{v}");
    assert!(
        v["evidence"].to_string().contains("server stopped reading"),
        "{v}"
    );
    // The stall blocks the writes once the send buffer (about one second of
    // media) and the proxy's small buffers are full; then one --timeout
    // (2 s). 20 s of margin for a loaded machine; far below the 60 s push.
    assert!(took < Duration::from_secs(22), "{took:?}");
}

#[test]
fn issue10_a_reset_mid_stream_is_an_interruption() {
    let (o, took) = impair_midstream(Shaper::reset);
    let v = json_of(&o);
    assert_eq!(o.status.code(), Some(1), "{v}");
    assert_eq!(v["outcome"], "interrupted", "{v}");
    assert_eq!(v["phase"], "streaming", "{v}");
    assert!(
        v["evidence"].to_string().contains("connection reset"),
        "{v}"
    );
    assert!(took < Duration::from_secs(20), "{took:?}");
}
