//! Happy Eyeballs through the real binary (issue 10 part 2): names resolved
//! through the test-only `PUSHPROBE_TEST_HOSTS` file (so nothing depends on
//! this machine's /etc/hosts) to `::1` then `127.0.0.1` and the reverse, a
//! closed port or a black hole first, every address dead; push, smoke,
//! doctor and load. Loopback only.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// A hosts file in a temp dir; the dir lives as long as the value.
struct Hosts {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn hosts(lines: &[(&str, &str)]) -> Hosts {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hosts");
    let text: String = lines.iter().map(|(ip, n)| format!("{ip} {n}\n")).collect();
    std::fs::write(&path, text).unwrap();
    Hosts { _dir: dir, path }
}

/// `pushprobe ARGS` with the hosts file, its output and its JSON (when `--json`).
fn run_with(h: &Hosts, args: &[&str], within: Duration) -> (Output, Option<Value>) {
    let mut c = bin();
    c.env("PUSHPROBE_TEST_HOSTS", &h.path).args(args);
    let o = run(&mut c, within);
    let v = serde_json::from_slice(&o.stdout).ok();
    (o, v)
}

fn push_json(h: &Hosts, url: &str, extra: &[&str]) -> (Output, Value) {
    let args = [&["push", url, "--json", "--duration", "1s"], extra].concat();
    let (o, v) = run_with(h, &args, Duration::from_secs(30));
    let v = v.unwrap_or_else(|| panic!("one JSON object: {}", text(&o)));
    (o, v)
}

fn attempts(v: &Value) -> Vec<(String, String)> {
    v["attempts"]
        .as_array()
        .unwrap_or_else(|| panic!("attempts: {v}"))
        .iter()
        .map(|a| {
            (
                a["addr"].as_str().unwrap().to_string(),
                a["result"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pair(addr: &str, result: &str) -> (String, String) {
    (addr.to_string(), result.to_string())
}

/// A listener on `ip:port` with a backlog of 1 whose queue is full: connects
/// to it get no answer until they time out (a black hole on loopback).
struct BlackHole {
    addr: SocketAddr,
    _listener: socket2::Socket,
    _held: Vec<TcpStream>,
}

fn black_hole(ip: &str, port: u16) -> BlackHole {
    use socket2::{Domain, Socket, Type};
    let addr: SocketAddr = format!("{ip}:{port}").parse().unwrap();
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None).unwrap();
    s.bind(&addr.into()).unwrap();
    s.listen(1).unwrap();
    let addr = s.local_addr().unwrap().as_socket().unwrap();
    let held = (0..8)
        .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_millis(300)).ok())
        .collect();
    BlackHole {
        addr,
        _listener: s,
        _held: held,
    }
}

#[test]
fn v6_first_falls_back_to_the_v4_ingest_and_the_reverse() {
    // Ingest on 127.0.0.1 only; the name gives ::1 first.
    let (_s, at) = Serve::start_on("127.0.0.1:0", &[], &[]);
    let h = hosts(&[("::1", "edge.test"), ("127.0.0.1", "edge.test")]);
    let url = format!("rtmp://edge.test:{}/live/he1", at.port());
    let (o, v) = push_json(&h, &url, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(v["outcome"], "accepted", "{v}");
    assert_eq!(v["remote_addr"], at.to_string(), "{v}");
    let v6 = format!("[::1]:{}", at.port());
    assert_eq!(
        attempts(&v),
        [pair(&v6, "refused"), pair(&at.to_string(), "connected")]
    );
    // The same as text names the address used and each attempt.
    let (o, _) = run_with(
        &h,
        &["push", &url, "--duration", "1s"],
        Duration::from_secs(30),
    );
    let t = text(&o);
    assert!(t.contains(&format!("remote    {at}\n")), "{t}");
    assert!(t.contains(&format!("dial      {v6} refused after ")), "{t}");
    assert!(
        t.contains(&format!("dial      {at} connected after ")),
        "{t}"
    );

    // Ingest on ::1 only; the name gives 127.0.0.1 first.
    let (_s6, at6) = Serve::start_on("[::1]:0", &[], &[]);
    let h = hosts(&[("127.0.0.1", "edge.test"), ("::1", "edge.test")]);
    let url = format!("rtmp://edge.test:{}/live/he2", at6.port());
    let (o, v) = push_json(&h, &url, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(v["remote_addr"], at6.to_string(), "{v}");
    let v4 = format!("127.0.0.1:{}", at6.port());
    assert_eq!(
        attempts(&v),
        [pair(&v4, "refused"), pair(&at6.to_string(), "connected")]
    );
}

#[test]
fn localhost_with_v6_first_reaches_a_v4_only_ingest() {
    // Most systems list ::1 first for localhost; this one may not: the hook
    // makes it so.
    let (_s, at) = Serve::start_on("127.0.0.1:0", &[], &[]);
    let h = hosts(&[("::1", "localhost"), ("127.0.0.1", "localhost")]);
    let url = format!("rtmp://localhost:{}/live/lh", at.port());
    let (o, v) = run_with(
        &h,
        &["smoke", &url, "--json", "--duration", "1s"],
        Duration::from_secs(30),
    );
    let v = v.unwrap_or_else(|| panic!("{}", text(&o)));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(v["outcome"], "accepted", "{v}");
    assert_eq!(v["remote_addr"], at.to_string(), "{v}");
}

#[test]
fn closed_port_or_black_hole_first_is_passed_over() {
    let (_s, at) = Serve::start_on("127.0.0.1:0", &[], &[]);
    let port = at.port();
    // 127.0.0.3 has nothing on the port: refused, the next starts at once.
    let h = hosts(&[("127.0.0.3", "edge.test"), ("127.0.0.1", "edge.test")]);
    let url = format!("rtmp://edge.test:{port}/live/bh1");
    let (o, v) = push_json(&h, &url, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        attempts(&v),
        [
            pair(&format!("127.0.0.3:{port}"), "refused"),
            pair(&at.to_string(), "connected")
        ]
    );

    // 127.0.0.2 never answers: the next starts 250 ms later and wins; the
    // pending one is closed, recorded as cancelled.
    let hole = black_hole("127.0.0.2", port);
    let h = hosts(&[("127.0.0.2", "edge.test"), ("127.0.0.1", "edge.test")]);
    let url = format!("rtmp://edge.test:{port}/live/bh2");
    let (o, v) = push_json(&h, &url, &["--timeout", "10s"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(v["remote_addr"], at.to_string(), "{v}");
    assert_eq!(
        attempts(&v),
        [
            pair(&hole.addr.to_string(), "cancelled"),
            pair(&at.to_string(), "connected")
        ]
    );
    let second_start = v["attempts"][1]["start_ms"].as_f64().unwrap();
    // Not before the attempt delay; long before the 10 s connect timeout
    // (a margin of 9 s for a loaded machine).
    assert!((250.0..9250.0).contains(&second_start), "{v}");
}

#[test]
fn every_address_dead_names_each_and_is_uniform_only_when_alike() {
    let hole = black_hole("127.0.0.2", 0);
    let port = hole.addr.port();
    let closed = format!("127.0.0.3:{port}");
    let h = hosts(&[("127.0.0.2", "edge.test"), ("127.0.0.3", "edge.test")]);
    let url = format!("rtmp://edge.test:{port}/live/dead");
    let (o, v) = push_json(&h, &url, &["--timeout", "1s"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(v["outcome"], "connect_failed", "{v}");
    assert_eq!(v["step"], 2, "{v}");
    assert_eq!(v["remote_addr"], Value::Null, "{v}");
    assert_eq!(
        attempts(&v),
        [
            pair(&hole.addr.to_string(), "timeout"),
            pair(&closed, "refused")
        ]
    );
    let evidence = v["evidence"].to_string();
    assert!(
        evidence.contains(&format!(
            "TCP connect failed on every address: {} timed out; {closed} refused",
            hole.addr
        )),
        "{v}"
    );

    // Two closed ports: refused everywhere is connection_refused, each listed.
    let h = hosts(&[("127.0.0.3", "edge.test"), ("127.0.0.4", "edge.test")]);
    let (o, _) = run_with(&h, &["push", &url], Duration::from_secs(30));
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("outcome   connection_refused"), "{t}");
    assert!(
        t.contains(&format!("dial      {closed} refused after ")),
        "{t}"
    );
    assert!(
        t.contains(&format!("evidence  127.0.0.4:{port}: refused")),
        "{t}"
    );
}

#[test]
fn ipv4_and_ipv6_flags_restrict_the_family() {
    let (_s, at) = Serve::start_on("127.0.0.1:0", &[], &[]);
    let h = hosts(&[("::1", "edge.test"), ("127.0.0.1", "edge.test")]);
    let url = format!("rtmp://edge.test:{}/live/fam", at.port());
    let (o, v) = push_json(&h, &url, &["-4"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(attempts(&v), [pair(&at.to_string(), "connected")]);
    let (o, v) = push_json(&h, &url, &["--ipv6"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(v["outcome"], "connection_refused", "{v}");
    assert_eq!(
        attempts(&v),
        [pair(&format!("[::1]:{}", at.port()), "refused")]
    );
    let only_v4 = hosts(&[("127.0.0.1", "edge.test")]);
    let (o, v) = push_json(&only_v4, &url, &["-6"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(v["outcome"], "dns_failure", "{v}");
    assert!(
        v["evidence"][0]
            .as_str()
            .unwrap()
            .contains("no IPv6 (-6) address among 127.0.0.1"),
        "{v}"
    );
}

#[test]
fn doctor_warns_on_one_dead_edge_of_three_and_fails_when_all_are_dead() {
    let (_s, at) = Serve::start_on("127.0.0.1:0", &[], &[]);
    let port = at.port();
    // `localhost`: no CNAME applies, so step 1 does not depend on DNS here.
    let h = hosts(&[
        ("127.0.0.1", "localhost"),
        ("127.0.0.3", "localhost"),
        ("::1", "localhost"),
    ]);
    // ::1 has nothing on the port either, so only 127.0.0.1 is alive: make
    // ::1 alive too with a plain listener.
    let v6 = std::net::TcpListener::bind(format!("[::1]:{port}")).unwrap();
    let url = format!("rtmp://localhost:{port}/live/doc");
    let (o, v) = run_with(
        &h,
        &["doctor", &url, "--json", "--duration", "1s"],
        Duration::from_secs(30),
    );
    let v = v.unwrap_or_else(|| panic!("{}", text(&o)));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let step2 = &v["steps"][1];
    assert_eq!(step2["status"], "warn", "{v}");
    let detail = step2["detail"].as_str().unwrap();
    assert!(
        detail.starts_with(&format!(
            "1 of 3 addresses failed: 127.0.0.3:{port} connection refused"
        )),
        "{detail}"
    );
    assert!(
        detail.contains(&format!("connected to {at} in ")),
        "{detail}"
    );
    assert!(
        detail.contains(&format!("connected to [::1]:{port} in ")),
        "{detail}"
    );
    assert!(
        step2["fix"]
            .as_str()
            .unwrap()
            .contains(&format!("127.0.0.3:{port}")),
        "{v}"
    );
    assert_eq!(v["steps"][0]["status"], "skip", "{v}");
    assert_eq!(v["steps"][4]["status"], "pass", "{v}");
    assert_eq!(v["verdict"], "ok with warnings", "{v}");
    drop(v6);

    let dead = hosts(&[("127.0.0.3", "localhost"), ("127.0.0.4", "localhost")]);
    let (o, v) = run_with(&dead, &["doctor", &url, "--json"], Duration::from_secs(30));
    let v = v.unwrap_or_else(|| panic!("{}", text(&o)));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(v["steps"][1]["status"], "fail", "{v}");
    assert!(
        v["steps"][1]["detail"]
            .as_str()
            .unwrap()
            .starts_with("every address failed: 127.0.0.3:"),
        "{v}"
    );
    assert_eq!(v["steps"][4]["status"], "skip", "{v}");
    assert_eq!(v["verdict"], "network", "{v}");
}

#[test]
fn load_counts_publishers_and_failed_connects_per_remote_address() {
    let (_s, at) = Serve::start_on("127.0.0.1:0", &[], &[]);
    let port = at.port();
    let h = hosts(&[("::1", "edge.test"), ("127.0.0.1", "edge.test")]);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("load.json");
    let template = format!("rtmp://edge.test:{port}/live/ld{{i}}");
    let (o, _) = run_with(
        &h,
        &[
            "load",
            "--url-template",
            &template,
            "--progress",
            "none",
            "--publishers",
            "3",
            "--rate",
            "0",
            "--duration",
            "1s",
            "--json-out",
            json.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let by = &v["by_address"];
    assert_eq!(
        by[at.to_string()],
        serde_json::json!({"publishers": 3, "failed": 0, "dial_failures": 0}),
        "{v}"
    );
    assert_eq!(
        by[format!("[::1]:{port}")],
        serde_json::json!({"publishers": 0, "failed": 0, "dial_failures": 3}),
        "{v}"
    );
    assert!(t.contains("remote address"), "{t}");
    let row = t
        .lines()
        .find(|l| l.trim_start().starts_with(&at.to_string()))
        .unwrap_or_else(|| panic!("{t}"));
    assert_eq!(
        row.split_whitespace().collect::<Vec<_>>(),
        [at.to_string().as_str(), "3", "0", "0"]
    );
}
