//! The embedded ingest against a real publisher: ffmpeg pushing the 360p
//! fixture with signed, expired, unsigned, mis-signed and duplicate URLs.

mod common;

use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use pushprobe::errcode::{Errcode, SubErrcode};
use pushprobe::ingest::{self, IngestConfig, IngestHandle, Record};
use pushprobe::secret::Secret;
use pushprobe::sign::Keys;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

const KEY: &str = "ingest-test-key";

fn keyed_config() -> IngestConfig {
    IngestConfig {
        keys: Keys {
            primary: Some(Secret::new(KEY.into())),
            backup: None,
        },
        ..IngestConfig::default()
    }
}

/// A URL for the ingest signed independently of pushprobe (tests/common:
/// MD5 by the md-5 crate).
fn url(h: &IngestHandle, stream: &str, key: &str, expiry: u64) -> String {
    common::signed(h.rtmp_addr.port(), stream, key, expiry)
}

/// `ffmpeg -re -i FIXTURE -t SECS -c copy -f flv URL`, killed when dropped,
/// its stderr in a file so that a wait that gives up can show it.
struct Ffmpeg {
    child: tokio::process::Child,
    log: tempfile::NamedTempFile,
}

impl Ffmpeg {
    /// What ffmpeg printed so far.
    fn printed(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

fn ffmpeg_push(url: &str, secs: u32) -> Ffmpeg {
    let log = tempfile::NamedTempFile::new().unwrap();
    let child = tokio::process::Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "warning",
            "-re",
            "-i",
        ])
        .arg(common::fixture("sd-360p.flv"))
        .args(["-t", &secs.to_string(), "-c", "copy", "-f", "flv", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log.reopen().unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn ffmpeg");
    Ffmpeg { child, log }
}

/// Waits for ffmpeg to exit by itself (killed after `within`: then None).
async fn finish(mut push: Ffmpeg, within: Duration) -> (Option<ExitStatus>, String) {
    match timeout(within, push.child.wait()).await {
        Ok(Ok(status)) => (Some(status), push.printed()),
        Ok(Err(e)) => panic!("waiting for ffmpeg: {e}"),
        Err(_) => (
            None,
            format!("ffmpeg did not exit in time (killed): {}", push.printed()),
        ),
    }
}

/// GET http://ADDR/PATH as JSON, over a plain socket.
async fn get_json(addr: SocketAddr, path: &str) -> serde_json::Value {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut resp = Vec::new();
    timeout(Duration::from_secs(5), s.read_to_end(&mut resp))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8(resp).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    serde_json::from_str(body).unwrap()
}

/// Polls GET /streams until `stream`, pushed by `push`, shows with a known
/// size; a failure shows what ffmpeg printed.
async fn wait_listed(
    h: &IngestHandle,
    stream: &str,
    push: &Ffmpeg,
    within: Duration,
) -> serde_json::Value {
    let end = tokio::time::Instant::now() + within;
    loop {
        let streams = get_json(h.http_addr, "/streams").await;
        if let Some(s) = streams
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["stream"] == stream && s["width"].as_u64().unwrap_or(0) > 0)
        {
            return s.clone();
        }
        assert!(
            tokio::time::Instant::now() < end,
            "{stream} not listed with a size within {within:?}: {streams}\nffmpeg printed: {}",
            push.printed()
        );
        tokio::time::sleep(common::POLL).await;
    }
}

/// Polls the ingest's records until one for `stream` shows (it is written
/// when the connection ends, which ffmpeg's exit already saw).
async fn wait_record(h: &IngestHandle, stream: &str) -> Record {
    let within = common::READY;
    let end = tokio::time::Instant::now() + within;
    loop {
        let found = h
            .state()
            .registry()
            .records()
            .into_iter()
            .find(|r| r.stream == stream);
        if let Some(r) = found {
            return r;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "no record for {stream} within {within:?}"
        );
        tokio::time::sleep(common::POLL).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_ffmpeg_push_is_listed_with_its_size_and_ends_clean() {
    if !common::have("ffmpeg") {
        return;
    }
    let h = ingest::spawn(keyed_config()).await.unwrap();
    let push = ffmpeg_push(&url(&h, "cam1", KEY, common::now() + 3600), 3);
    let s = wait_listed(&h, "cam1", &push, common::READY).await;
    assert_eq!(
        (s["width"].as_u64(), s["height"].as_u64()),
        (Some(640), Some(360))
    );
    assert_eq!(s["app"], "live");
    assert!(s["query"].as_str().unwrap().contains("txSecret=***"), "{s}");
    let (status, stderr) = finish(push, common::READY).await;
    assert!(status.is_some_and(|s| s.success()), "{status:?}: {stderr}");
    let r = wait_record(&h, "cam1").await;
    assert_eq!(
        (r.errcode, r.sub_errcode),
        (Errcode(1), SubErrcode(0)),
        "{r:?}"
    );
    assert!(r.push_duration_ms >= 2000, "{r:?}");
    let records = get_json(h.http_addr, "/records").await;
    assert_eq!(records[0]["errcode"], 1);
    assert!(
        get_json(h.http_addr, "/streams")
            .await
            .as_array()
            .unwrap()
            .is_empty()
    );
    h.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_unsigned_and_mis_signed_pushes_fail_and_are_recorded() {
    if !common::have("ffmpeg") {
        return;
    }
    let h = ingest::spawn(keyed_config()).await.unwrap();
    let now = common::now();
    let unsigned = format!("rtmp://127.0.0.1:{}/live/unsigned", h.rtmp_addr.port());
    let cases = [
        ("expired", url(&h, "expired", KEY, now - 60), 501),
        ("unsigned", unsigned, 500),
        (
            "missigned",
            url(&h, "missigned", "wrong-key", now + 3600),
            503,
        ),
    ];
    // All three at once: each must fail on its own, not by our timeout.
    let pushes: Vec<_> = cases.iter().map(|(_, u, _)| ffmpeg_push(u, 3)).collect();
    for ((stream, _, sub), push) in cases.iter().zip(pushes) {
        let (status, stderr) = finish(push, common::READY).await;
        let status = status.unwrap_or_else(|| panic!("{stream}: ffmpeg hung"));
        assert!(!status.success(), "{stream}: ffmpeg succeeded: {stderr}");
        let r = wait_record(&h, stream).await;
        assert_eq!(
            (r.errcode, r.sub_errcode),
            (Errcode(18), SubErrcode(*sub)),
            "{r:?}"
        );
    }
    assert!(h.state().registry().streams().is_empty());
    h.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_ffmpeg_push_is_refused_with_601_and_the_first_stays() {
    if !common::have("ffmpeg") {
        return;
    }
    let config = IngestConfig {
        reject_with_status: true,
        ..keyed_config()
    };
    let h = ingest::spawn(config).await.unwrap();
    let u = url(&h, "dup", KEY, common::now() + 3600);
    let first = ffmpeg_push(&u, 4);
    let listed = wait_listed(&h, "dup", &first, common::READY).await;
    let second = ffmpeg_push(&u, 4);
    let (status, stderr) = finish(second, common::READY).await;
    let status = status.expect("the second ffmpeg hung");
    assert!(!status.success(), "the duplicate was accepted: {stderr}");
    assert!(stderr.contains("Already publishing"), "{stderr}");
    let r = wait_record(&h, "dup").await;
    assert_eq!(
        (r.errcode, r.sub_errcode),
        (Errcode(18), SubErrcode(601)),
        "{r:?}"
    );
    let still = wait_listed(&h, "dup", &first, Duration::ZERO).await;
    assert_eq!(still["id"], listed["id"]);
    assert_eq!(still["client"], listed["client"]);
    let (status, stderr) = finish(first, common::READY).await;
    assert!(status.is_some_and(|s| s.success()), "{status:?}: {stderr}");
    h.shutdown().await.unwrap();
}
