//! Packet-level check by an independent dissector (issue 11): tshark
//! captures one pushprobe push and one ffmpeg push to `pushprobe serve` on
//! loopback, and must decode every RTMP message of pushprobe's (publisher
//! and ingest) with no malformed or unknown message.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::peers::{Check, Ingest, major_minor};
use common::{HookServer, Printed, Proc, fixture, have, now, run, signed, text};

const KEY: &str = "packet-check-key";

/// tshark capturing `tcp port PORT` on lo into `file`, returned once it has
/// seen a packet: its "Capturing on" line comes before the capture is live,
/// so it also watches a closed port and knocks there (SYN, then RST) until
/// a knock shows up in its output.
fn capture(port: u16, file: &std::path::Path) -> Proc {
    let knock = common::free_port();
    let filter = format!("tcp port {port} or tcp port {knock}");
    let mut p = Proc(
        Command::new("tshark")
            .args(["-i", "lo", "-B", "64", "-l", "-P", "-f", &filter, "-w"])
            .arg(file)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tshark"),
        Printed::default(),
    );
    let (tx, rx) = mpsc::channel();
    let out = p.0.stdout.take().unwrap();
    let seen = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if line.contains(&knock.to_string()) {
                let _ = seen.send(Ok(()));
            }
        }
    });
    let err = p.0.stderr.take().unwrap();
    std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            all.push_str(&line);
            all.push('\n');
        }
        // tshark ended: its stderr says why.
        let _ = tx.send(Err(all));
    });
    let end = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < end {
        let _ = std::net::TcpStream::connect(("127.0.0.1", knock));
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(Ok(())) => return p,
            Ok(Err(log)) => panic!(
                "tshark could not capture on lo (root or the wireshark group is needed): {log}"
            ),
            Err(_) => {}
        }
    }
    panic!("tshark captured nothing within 60 s");
}

/// Stops tshark with SIGINT, as Ctrl-C would, so it closes the file.
fn stop(p: Proc) {
    let pid = p.0.id().to_string();
    run(
        Command::new("kill").args(["-INT", &pid]),
        Duration::from_secs(5),
    );
    let out = p.finish(Duration::from_secs(20));
    assert!(
        out.status.success() || out.status.code().is_none(),
        "{}",
        text(&out)
    );
}

fn tshark_read(file: &std::path::Path, port: u16, extra: &[&str]) -> String {
    let out = run(
        Command::new("tshark")
            .arg("-r")
            .arg(file)
            .args(["-d", &format!("tcp.port=={port},rtmpt")])
            .args(extra),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn tshark_decodes_every_message_of_a_push_and_an_ingest_session() {
    if !have("tshark") || !have("ffmpeg") {
        return;
    }
    let version = text(&run(
        Command::new("tshark").arg("--version"),
        Duration::from_secs(20),
    ))
    .lines()
    .find_map(|l| l.strip_prefix("TShark (Wireshark) ").map(major_minor))
    .unwrap_or_default();
    let check = Check::begin("tshark", &version, "packets");
    let hook = HookServer::start(|_| 200);
    let ingest = Ingest::start(KEY, "unused", &hook.url);
    let port = ingest.rtmp_port;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rtmp.pcapng");
    let tshark = capture(port, &file);
    let out = run(
        common::bin().args([
            "push",
            &signed(port, "ours", KEY, now() + 3600),
            "--duration",
            "3s",
        ]),
        Duration::from_secs(40),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = run(
        Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "error", "-re", "-i"])
            .arg(fixture("sd-360p.flv"))
            .args(["-t", "2", "-c", "copy", "-f", "flv"])
            .arg(signed(port, "theirs", KEY, now() + 3600)),
        Duration::from_secs(40),
    );
    assert!(out.status.success(), "{}", text(&out));
    stop(tshark);

    // A capture that lost packets cannot judge the stream (the dissector
    // loses sync): say so rather than blame either side.
    let lost = tshark_read(
        &file,
        port,
        &[
            "-Y",
            "tcp.analysis.lost_segment || tcp.analysis.ack_lost_segment",
        ],
    );
    assert!(lost.trim().is_empty(), "the capture lost packets: {lost}");
    let keep = common::peers::results_dir().join("last-capture.pcapng");
    let _ = std::fs::create_dir_all(common::peers::results_dir());
    let _ = std::fs::copy(&file, &keep);
    let malformed = tshark_read(
        &file,
        port,
        &["-Y", "_ws.malformed || _ws.expert.severity == error"],
    );
    assert!(malformed.trim().is_empty(), "tshark reports: {malformed}");
    // Info column of every RTMP packet, per (TCP stream, direction).
    let fields = tshark_read(
        &file,
        port,
        &[
            "-Y",
            "rtmpt",
            "-T",
            "fields",
            "-e",
            "tcp.stream",
            "-e",
            "tcp.dstport",
            "-e",
            "_ws.col.Info",
        ],
    );
    let mut seen: BTreeMap<(String, bool), Vec<String>> = BTreeMap::new();
    for line in fields.lines() {
        let mut f = line.splitn(3, '\t');
        let (Some(s), Some(dst), Some(info)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let to_server = dst == port.to_string();
        let msgs = seen.entry((s.to_string(), to_server)).or_default();
        msgs.extend(info.split(['|', ',']).map(|m| m.trim().to_string()));
    }
    let unknown: Vec<_> = seen
        .iter()
        .flat_map(|(k, v)| {
            v.iter()
                .filter(|m| m.contains("Unknown"))
                .map(move |m| (k, m))
        })
        .collect();
    assert!(unknown.is_empty(), "undecoded messages: {unknown:?}");
    let has = |stream: &str, to_server: bool, what: &str| {
        seen.get(&(stream.to_string(), to_server))
            .is_some_and(|v| v.iter().any(|m| m.starts_with(what)))
    };
    // The TCP stream whose client published this stream name.
    let stream_of = |name: &str| {
        let publish = format!("publish('{name}?");
        seen.keys()
            .find(|(s, up)| *up && has(s, true, &publish))
            .map(|(s, _)| s.clone())
            .unwrap_or_else(|| panic!("no publish of {name}: {seen:?}"))
    };
    let (ours, theirs) = (stream_of("ours"), stream_of("theirs"));
    // pushprobe's publisher, as tshark reads it.
    for what in [
        "connect(",
        "createStream(",
        "publish(",
        "@setDataFrame(",
        "Audio Data",
        "Video Data",
    ] {
        assert!(has(&ours, true, what), "publisher sent no {what}: {seen:?}");
    }
    let videos = seen[&(ours.clone(), true)]
        .iter()
        .filter(|m| *m == "Video Data")
        .count();
    // 3 s of 30 fps video, less a tenth for the edges.
    assert!(videos >= 81, "only {videos} video messages decoded");
    // pushprobe's ingest answering pushprobe and ffmpeg.
    for stream in [&ours, &theirs] {
        for what in [
            "_result('NetConnection.Connect.Success')",
            "onStatus('NetStream.Publish.Start')",
        ] {
            assert!(
                has(stream, false, what),
                "ingest sent no {what} on {stream}: {seen:?}"
            );
        }
    }
    assert!(has(&theirs, true, "Video Data"), "ffmpeg's media: {seen:?}");
    check.pass("push and ingest session: every RTMP message decoded, none malformed");
}
