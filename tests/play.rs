//! Play-back (issue 13): `pushprobe play` against independent peers.
//! nginx-rtmp relays a stamped push and the player measures per-frame
//! latency over RTMP play; a delay proxy between publisher and nginx raises
//! that latency by its delay; a missing stream fails with the server's
//! words; garbage from a server is a clear error, not a hang.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use common::peers::nginx_play;
use common::shaper::{Shape, Shaper};
use common::*;

/// `play`'s own bounds in these tests: every wait (and so the first frame)
/// is bounded by `--timeout`, the play by `--duration`.
const PLAY_TIMEOUT: &str = "10s";

fn play_json(url: &str, extra: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let mut args = vec!["play", url, "--json", "--timeout", PLAY_TIMEOUT];
    args.extend_from_slice(extra);
    // Bound: the timeout for each of the setup steps and the first frame,
    // plus the duration, with a margin for a loaded machine.
    let out = run(bin().args(&args), Duration::from_secs(90));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let v = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("play printed no JSON ({e}): {}", text(&out)));
    (out.status.code(), v, text(&out))
}

fn p50(v: &serde_json::Value) -> f64 {
    v["latency_ms"]["p50"].as_f64().expect("a latency p50")
}

#[test]
fn rtmp_play_of_a_stamped_push_relayed_by_nginx_measures_latency() {
    let Some(ng) = nginx_play() else { return };
    let url = ng.url("stamped");
    let push = spawn(bin().args(["push", &url, "--stamp", "--duration", "20s"]));
    ng.wait_publishing("stamped", &push);
    // The bound a loopback relay must stay under: generous for a loaded
    // 2-core machine, far below what a stuck relay (seconds) would show.
    let (code, v, all) = play_json(&url, &["--duration", "3s", "--max-latency", "1s"]);
    assert_eq!(code, Some(0), "{all}");
    assert_eq!(v["protocol"], "rtmp");
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["latency_method"], "sei", "{v}");
    let frames = v["video_frames"].as_u64().unwrap();
    assert!(frames > 0, "{v}");
    assert_eq!(
        v["stamped"].as_u64(),
        Some(frames),
        "every frame stamped: {v}"
    );
    assert_eq!(v["lost"], 0, "no frame lost over RTMP: {v}");
    assert_eq!(v["duplicated"], 0, "{v}");
    assert_eq!(v["reordered"], 0, "{v}");
    assert_eq!(v["stalls"], 0, "{v}");
    let lat = &v["latency_ms"];
    assert!(lat["p50"].as_f64().unwrap() > 0.0, "latency positive: {v}");
    assert!(
        lat["max"].as_f64().unwrap() < 1000.0,
        "under --max-latency: {v}"
    );
    assert_eq!(lat["count"].as_u64(), Some(frames), "{v}");
    for phase in [
        "dns",
        "tcp",
        "handshake",
        "connect",
        "play",
        "first_frame",
        "first_keyframe",
    ] {
        assert!(v["phases_ms"][phase].is_number(), "phase {phase}: {v}");
    }
}

/// Tolerance of the delay test. The proxy holds every byte at least its
/// delay, so the rise is 300 ms less at most the baseline's own p50 (a few
/// ms on loopback; allow 50 ms for a loaded machine). Above: the proxy moves
/// data in 8 KB pieces through a thread per direction, and a loaded
/// machine adds scheduling delay to each piece: allow 200 ms.
const DELAY: Duration = Duration::from_millis(300);
const BELOW: f64 = 50.0;
const ABOVE: f64 = 200.0;

#[test]
fn delay_proxy_between_publisher_and_nginx_raises_latency_by_its_delay() {
    let Some(ng) = nginx_play() else { return };
    let upstream: SocketAddr = format!("127.0.0.1:{}", ng.port).parse().unwrap();
    let shaper = Shaper::start(
        upstream,
        Shape {
            delay: DELAY,
            up_bps: None,
        },
    );
    let direct = spawn(bin().args(["push", &ng.url("direct"), "--stamp", "--duration", "25s"]));
    let delayed = spawn(bin().args([
        "push",
        &shaper.url("delayed"),
        "--stamp",
        "--duration",
        "25s",
    ]));
    ng.wait_publishing("direct", &direct);
    ng.wait_publishing("delayed", &delayed);
    let (code, base, all) = play_json(&ng.url("direct"), &["--duration", "3s"]);
    assert_eq!(code, Some(0), "{all}");
    let (code, slow, all) = play_json(&ng.url("delayed"), &["--duration", "3s"]);
    assert_eq!(code, Some(0), "{all}");
    assert_eq!(slow["latency_method"], "sei");
    let rise = p50(&slow) - p50(&base);
    eprintln!(
        "p50 direct {:.1} ms, delayed {:.1} ms, rise {rise:.1} ms",
        p50(&base),
        p50(&slow)
    );
    let want = DELAY.as_secs_f64() * 1000.0;
    assert!(
        rise >= want - BELOW && rise <= want + ABOVE,
        "p50 rose by {rise:.1} ms, expected {want} ms (-{BELOW}/+{ABOVE}): direct {} delayed {}",
        base["latency_ms"],
        slow["latency_ms"]
    );
}

#[test]
fn a_stream_nobody_publishes_fails_with_the_servers_words() {
    let Some(ng) = nginx_play() else { return };
    let (code, v, all) = play_json(&ng.url("nobody"), &["--duration", "2s"]);
    assert_eq!(code, Some(1), "{all}");
    assert_eq!(v["ok"], false);
    assert_eq!(v["failure"]["kind"], "rejected", "{v}");
    let msg = v["failure"]["message"].as_str().unwrap();
    assert!(msg.contains("NetStream.Play.StreamNotFound"), "{msg}");
    // The text output says it too.
    let out = run(
        bin().args(["play", &ng.url("nobody"), "--timeout", PLAY_TIMEOUT]),
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("StreamNotFound"), "{}", text(&out));
}

/// A one-shot TCP server on port 0 that answers every connection with
/// `reply` after reading what the client sent first, then holds it open.
fn answering(reply: &'static [u8]) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let _ = s.write_all(reply);
                // Hold the connection: a client that waits for more must
                // give up on its own timeout or on what it got.
                std::thread::sleep(Duration::from_secs(60));
            });
        }
    });
    port
}

#[test]
fn garbage_from_a_server_is_a_clear_error_not_a_hang() {
    // Bound: the play's --timeout is 3 s; the error must come from what the
    // server sent, well before the 60 s the server holds the connection.
    let cases: [(&str, &[u8], &str); 3] = [
        ("rtmp", b"HTTP/1.1 400 Bad Request\r\n\r\n", "protocol"),
        ("http", b"\x00\x01garbage\r\n\r\n", "protocol"),
        (
            "http",
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html>not flv</html>",
            "protocol",
        ),
    ];
    for (scheme, reply, kind) in cases {
        let port = answering(reply);
        let url = match scheme {
            "rtmp" => format!("rtmp://127.0.0.1:{port}/live/x"),
            _ => format!("http://127.0.0.1:{port}/live/x.flv"),
        };
        let began = Instant::now();
        let out = run(
            bin().args([
                "play",
                &url,
                "--json",
                "--timeout",
                "3s",
                "--duration",
                "2s",
            ]),
            Duration::from_secs(60),
        );
        assert_eq!(out.status.code(), Some(1), "{url}: {}", text(&out));
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
        assert_eq!(v["failure"]["kind"], kind, "{url}: {v}");
        assert!(
            began.elapsed() < Duration::from_secs(50),
            "{url} took {:?}",
            began.elapsed()
        );
    }
}

#[test]
fn http_error_status_is_the_failure_with_the_servers_words() {
    let port = answering(
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 15\r\nConnection: close\r\n\r\nno such stream\n",
    );
    let (code, v, all) = play_json(
        &format!("http://127.0.0.1:{port}/live/missing.flv?txSecret=hidden"),
        &["--duration", "2s"],
    );
    assert_eq!(code, Some(1), "{all}");
    assert_eq!(v["http_status"], 404);
    assert_eq!(v["failure"]["kind"], "http");
    let msg = v["failure"]["message"].as_str().unwrap();
    assert!(
        msg.contains("404") && msg.contains("no such stream"),
        "{msg}"
    );
    assert!(!all.contains("hidden"), "secret shown: {all}");
}

fn schema(def: &str) -> jsonschema::Validator {
    common::command_schema(def)
}

fn assert_valid(def: &str, doc: &serde_json::Value) {
    let v = schema(def);
    let errors: Vec<String> = v.iter_errors(doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}\n{doc:#}");
}

#[test]
fn push_with_play_plays_the_stream_back_and_its_json_validates() {
    let Some(ng) = nginx_play() else { return };
    let url = ng.url("both");
    // No --stamp: --play turns stamping on.
    let out = run(
        bin().args(["push", &url, "--duration", "5s", "--json", "--play", &url]),
        Duration::from_secs(90),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_valid("push", &v);
    assert_eq!(v["outcome"], "accepted");
    let p = &v["play"];
    assert_eq!(p["ok"], true, "{p}");
    assert_eq!(p["latency_method"], "sei", "{p}");
    assert!(p["video_frames"].as_u64().unwrap() > 0, "{p}");
    assert_eq!(p["lost"], 0, "{p}");
    assert_eq!(p["stopped_by_user"], false, "{p}");
    // Text: the verdict gains the play-back line.
    let out = run(
        bin().args([
            "smoke",
            &ng.url("both2"),
            "--duration",
            "5s",
            "--play",
            &ng.url("both2"),
        ]),
        Duration::from_secs(90),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("playable: first frame after") && said.contains("latency p50"),
        "{said}"
    );
    // A play URL nobody publishes: the push is accepted, the check fails.
    let out = run(
        bin().args([
            "push",
            &ng.url("pushed"),
            "--duration",
            "3s",
            "--json",
            "--play",
            &ng.url("other"),
        ]),
        Duration::from_secs(90),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_valid("push", &v);
    assert_eq!(v["play"]["failure"]["kind"], "rejected", "{v}");
}

#[test]
fn play_json_validates_against_the_schema() {
    let Some(ng) = nginx_play() else { return };
    let (_, v, _) = play_json(&ng.url("none"), &["--duration", "1s"]);
    assert_valid("play", &v);
}

#[test]
fn hls_play_of_nginx_rtmps_hls_output_measures_latency() {
    let Some(ng) = nginx_play() else { return };
    let url = ng.url("hlsout");
    let push = spawn(bin().args(["push", &url, "--stamp", "--duration", "30s"]));
    ng.wait_publishing("hlsout", &push);
    // nginx writes the playlist once its first segment is cut.
    wait_until("nginx to write the HLS playlist", READY, &[&push.1], || {
        http_get(ng.stat_port, "/hls/hlsout.m3u8")
            .contains("#EXTINF")
            .then_some(())
    });
    let hls = format!("http://127.0.0.1:{}/hls/hlsout.m3u8", ng.stat_port);
    // Bound: nginx keeps 6 s of playlist (hls_playlist_length), segments
    // are one GOP (2 s); a frame can wait for its segment to be cut (2 s),
    // the next poll (1 s) and the fetch: far under 10 s unless broken.
    let (code, v, all) = play_json(&hls, &["--duration", "5s", "--max-latency", "10s"]);
    assert_eq!(code, Some(0), "{all}");
    assert_eq!(v["protocol"], "hls");
    assert_eq!(v["http_status"], 200);
    assert_eq!(v["latency_method"], "sei", "{v}");
    let frames = v["video_frames"].as_u64().unwrap();
    assert!(frames > 0, "{v}");
    assert_eq!(v["stamped"].as_u64(), Some(frames), "{v}");
    assert_eq!(v["lost"], 0, "{v}");
    let lat = &v["latency_ms"];
    assert!(lat["p50"].as_f64().unwrap() > 0.0, "{v}");
    assert!(lat["max"].as_f64().unwrap() < 10_000.0, "{v}");
    assert_valid("play", &v);
}

#[test]
fn doctor_step_6_plays_the_push_back() {
    let Some(ng) = nginx_play() else { return };
    let url = ng.url("doc");
    let out = run(
        bin().args(["doctor", &url, "--json", "--play", &url]),
        Duration::from_secs(90),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_valid("doctor", &v);
    let s6 = &v["steps"][5];
    assert_eq!(
        (s6["step"].as_u64(), s6["name"].as_str()),
        (Some(6), Some("play"))
    );
    assert_eq!(s6["status"], "pass", "{v}");
    let d = s6["detail"].as_str().unwrap();
    assert!(
        d.contains("first frame after") && d.contains("(sei)"),
        "{d}"
    );
    // A play domain that serves no such stream: step 6 fails, exit 1.
    let port = ng.port.to_string();
    let out = run(
        bin().args([
            "doctor",
            &ng.url("doc2"),
            "--play",
            &format!("rtmp://127.0.0.1:{port}/live/elsewhere"),
        ]),
        Duration::from_secs(90),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("6 play     fail") && said.contains("StreamNotFound"),
        "{said}"
    );
    assert!(said.contains("verdict  play"), "{said}");
}

/// A relay that strips the stamps (as a transcoding CDN may strip SEI):
/// ffmpeg copies the stream from one nginx name to another, dropping SEI
/// NAL units and keeping timestamps (`-copyts`). `push --play` then has no
/// stamps and falls back to matching FLV timestamps against its own send log.
#[test]
fn without_stamps_latency_falls_back_to_the_publishers_send_log() {
    if !have("nginx") || !have("ffmpeg") {
        return;
    }
    // idle_streams on (nginx's default): the player waits for `out` to appear.
    let ng = Nginx::start(None);
    let (input, output) = (ng.url("in"), ng.url("out"));
    let push = spawn(bin().args([
        "push",
        &input,
        "--duration",
        "15s",
        "--json",
        "--play",
        &output,
    ]));
    ng.wait_publishing("in", &push);
    let _relay = spawn(std::process::Command::new("ffmpeg").args([
        "-nostdin",
        "-v",
        "error",
        "-rw_timeout",
        "8000000",
        "-i",
        &input,
        "-c",
        "copy",
        "-bsf:v",
        "filter_units=remove_types=6",
        "-copyts",
        "-f",
        "flv",
        &output,
    ]));
    let out = push.finish(Duration::from_secs(90));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let p = &v["play"];
    assert_eq!(p["stamped"], 0, "the relay stripped the stamps: {p}");
    assert_eq!(p["latency_method"], "timestamp", "{p}");
    let lat = &p["latency_ms"];
    assert!(lat["count"].as_u64().unwrap() > 0, "{p}");
    // Bound: the relay adds its start-up burst (ffmpeg reads the first GOP
    // as fast as it can: up to ~1.5 s seen here) and loopback hops; 10 s is
    // the player's own bound on any wait (the push's --timeout).
    assert!(lat["max"].as_f64().unwrap() < 10_000.0, "{p}");
}

/// HTTP-FLV from an independent server with an HTTP-FLV output:
/// node-media-server relays the stamped push over HTTP.
#[test]
fn http_flv_play_from_node_media_server_measures_latency() {
    let Some(peer) = common::peers::Peer::node_media_server(None) else {
        return;
    };
    let url = peer.url("flvplay");
    let flv = format!(
        "http://127.0.0.1:{}/live/flvplay.flv",
        peer.http_port.unwrap()
    );
    // push --play: the player starts once the push is accepted.
    let out = run(
        bin().args(["push", &url, "--duration", "6s", "--json", "--play", &flv]),
        Duration::from_secs(90),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_valid("push", &v);
    let p = &v["play"];
    assert_eq!(p["protocol"], "http_flv", "{p}");
    assert_eq!(p["http_status"], 200, "{p}");
    assert_eq!(p["latency_method"], "sei", "{p}");
    assert!(p["video_frames"].as_u64().unwrap() > 0, "{p}");
    assert_eq!(p["lost"], 0, "{p}");
    assert!(p["latency_ms"]["p50"].as_f64().unwrap() > 0.0, "{p}");
    // Bound: a loopback relay; 10 s is the player's own bound on any wait.
    assert!(p["latency_ms"]["max"].as_f64().unwrap() < 10_000.0, "{p}");
}
