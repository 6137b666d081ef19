//! Independent RTMP servers and players for the interop matrix (issue 11):
//! each peer started as a child process on free loopback ports, its version
//! read from the peer itself, and the result of every check written to
//! `target/interop-results/` for `scripts/interop-table`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use md5::{Digest, Md5};

use super::{Nginx, Printed, Proc, accepts, free_port, have, run};

/// Where `.ci/run` installs node-media-server (override: PUSHPROBE_NMS_DIR).
const NMS_DIR: &str = "/opt/pushprobe-peers/npm/node_modules/node-media-server";

/// True when `what` is usable; when it is not, fails under CI, else prints
/// why the test is skipped and returns false (as `have` does for tools).
pub fn require(what: &str, ok: bool) -> bool {
    if !ok {
        if std::env::var_os("CI").is_some() {
            panic!("{what} is required under CI (installed by .ci/run)");
        }
        eprintln!("SKIPPED: {what} is not installed (run .ci/run's install steps)");
    }
    ok
}

fn python_module_version(dist: &str) -> Option<String> {
    let o = run(
        Command::new("python3").args([
            "-c",
            &format!("import importlib.metadata as m; print(m.version({dist:?}))"),
        ]),
        Duration::from_secs(20),
    );
    let v = String::from_utf8_lossy(&o.stdout).trim().to_string();
    (o.status.success() && !v.is_empty()).then_some(v)
}

/// The first line of `cmd`'s output matching `prefix`, with the prefix cut.
fn version_line(cmd: &mut Command, prefix: &str) -> Option<String> {
    let o = run(cmd, Duration::from_secs(20));
    let all = super::text(&o);
    all.lines()
        .find_map(|l| l.trim().strip_prefix(prefix).map(str::to_string))
}

/// `major.minor` of a Debian package version (`5.1.9-0+deb12u1` -> `5.1`),
/// so a Debian security update does not change the README table.
pub fn major_minor(v: &str) -> String {
    v.split(['.', '-', ' '])
        .take(2)
        .collect::<Vec<_>>()
        .join(".")
}

/// node-media-server's package folder.
pub fn nms_dir() -> PathBuf {
    std::env::var_os("PUSHPROBE_NMS_DIR").map_or_else(|| PathBuf::from(NMS_DIR), PathBuf::from)
}

/// An RTMP ingest server under test.
pub struct Peer {
    /// Short name used in results and the README table.
    pub name: &'static str,
    pub version: String,
    pub rtmp_port: u16,
    /// HTTP-FLV play port, for servers that have one.
    pub http_port: Option<u16>,
    /// What ffprobe logs when this server has registered a player (for a
    /// server without a GOP cache, where a late player misses the headers).
    pub play_answer: Option<&'static str>,
    pub dir: tempfile::TempDir,
    _proc: Option<Proc>,
    _nginx: Option<Nginx>,
}

impl Peer {
    /// Records that the peer ran here, with its version, then returns it.
    fn started(self) -> Option<Peer> {
        Check::begin(self.name, &self.version, "started").pass("");
        Some(self)
    }

    pub fn url(&self, stream: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{stream}", self.rtmp_port)
    }

    /// nginx-rtmp (C), with an optional on_publish hook URL.
    pub fn nginx(on_publish: Option<&str>) -> Option<Peer> {
        if !have("nginx") {
            return None;
        }
        let version = version_line(Command::new("nginx").arg("-v"), "nginx version: nginx/")
            .map(|v| major_minor(&v))
            .unwrap_or_default();
        let ng = Nginx::start(on_publish);
        Peer {
            name: "nginx-rtmp",
            version,
            rtmp_port: ng.port,
            http_port: None,
            play_answer: None,
            dir: tempfile::tempdir().unwrap(),
            _proc: None,
            _nginx: Some(ng),
        }
        .started()
    }

    /// node-media-server 4 (Node.js). With `secret`, publishing needs
    /// `?sign=EXPIRY-MD5("/live/NAME-EXPIRY-SECRET")` (its own auth).
    pub fn node_media_server(secret: Option<&str>) -> Option<Peer> {
        let app = nms_dir().join("bin/app.js");
        if !have("node") || !require("node-media-server (npm)", app.exists()) {
            return None;
        }
        let pkg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(nms_dir().join("package.json")).unwrap())
                .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (rtmp_port, http_port) = (free_port(), free_port());
        let conf = serde_json::json!({
            "bind": "127.0.0.1",
            "notify": { "url": "" },
            "store": { "path": dir.path().join("data"), "maxHistory": 1000 },
            "auth": {
                "play": false,
                "publish": secret.is_some(),
                "secret": secret.unwrap_or("unused-when-publish-auth-is-off"),
                "jwt": { "secret": "interop-test-jwt-secret", "expiresIn": "24h",
                         "refreshExpiresIn": "7d", "algorithm": "HS256", "users": [] }
            },
            "rtmp": { "port": rtmp_port },
            "http": { "port": http_port },
            "webadmin": { "enable": false },
            "record": { "auto": false, "path": dir.path().join("record") }
        });
        let conf_path = dir.path().join("nms.json");
        std::fs::write(&conf_path, conf.to_string()).unwrap();
        let proc = spawn_logged(
            Command::new("node").arg(&app).arg("-c").arg(&conf_path),
            dir.path(),
        );
        assert!(
            wait_port(rtmp_port, Duration::from_secs(20))
                && wait_port(http_port, Duration::from_secs(10)),
            "node-media-server did not start: {}",
            log_of(dir.path())
        );
        Peer {
            name: "node-media-server",
            version: pkg["version"].as_str().unwrap_or_default().to_string(),
            rtmp_port,
            http_port: Some(http_port),
            play_answer: None,
            dir,
            _proc: Some(proc),
            _nginx: None,
        }
        .started()
    }

    /// rtmplite3 (Python, PyPI): no publish auth of its own.
    pub fn rtmplite() -> Option<Peer> {
        if !have("python3") {
            return None;
        }
        let version = python_module_version("rtmplite3");
        if !require("rtmplite3 (PyPI)", version.is_some()) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let root = format!("{}/", dir.path().display());
        let proc = spawn_logged(
            Command::new("rtmplite3").args([
                "-i",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-r",
                &root,
            ]),
            dir.path(),
        );
        assert!(
            wait_port(port, Duration::from_secs(20)),
            "rtmplite3 did not start: {}",
            log_of(dir.path())
        );
        Peer {
            name: "rtmplite3",
            version: version.unwrap(),
            rtmp_port: port,
            http_port: None,
            // rtmplite3 sends SetChunkSize once the player is registered.
            play_answer: Some("New incoming chunk size"),
            dir,
            _proc: Some(proc),
            _nginx: None,
        }
        .started()
    }

    /// An ingest on pyrtmp (Python, PyPI), tests/peers/pyrtmp_ingest.py:
    /// `token=TOKEN` in the query when `token` is given; with `record`,
    /// every accepted stream recorded to `dir/NAME.flv`.
    pub fn pyrtmp(token: Option<&str>, record: bool) -> Option<Peer> {
        if !have("python3") {
            return None;
        }
        let version = python_module_version("pyrtmp");
        if !require("pyrtmp (PyPI)", version.is_some()) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/pyrtmp_ingest.py");
        let mut cmd = Command::new("python3");
        cmd.arg(script);
        if record {
            cmd.arg("--record-dir").arg(dir.path());
        }
        if let Some(t) = token {
            cmd.args(["--token", t]);
        }
        let mut p = Proc(
            cmd.stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn python3"),
            Printed::default(),
        );
        let port = line_after(p.0.stdout.take().unwrap(), "listening ")
            .and_then(|l| l.trim().parse::<u16>().ok())
            .expect("pyrtmp ingest printed its port");
        Peer {
            name: "pyrtmp",
            version: version.unwrap(),
            rtmp_port: port,
            http_port: None,
            play_answer: None,
            dir,
            _proc: Some(p),
            _nginx: None,
        }
        .started()
    }
}

/// Spawns with stdout and stderr into `dir/peer.log` (a pipe nobody reads
/// would fill up and stall a chatty server under load).
fn spawn_logged(cmd: &mut Command, dir: &Path) -> Proc {
    let log = std::fs::File::create(dir.join("peer.log")).unwrap();
    Proc(
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn peer"),
        Printed::default(),
    )
}

pub fn log_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("peer.log")).unwrap_or_default()
}

/// Reads lines from `r` on a thread until one contains `needle` (the rest
/// of the line after it returned, within 20 s), then keeps draining so the
/// writer never blocks.
fn line_after(r: impl std::io::Read + Send + 'static, needle: &str) -> Option<String> {
    let (tx, rx) = mpsc::channel();
    let needle = needle.to_string();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(r).lines();
        for line in lines.by_ref() {
            let Ok(line) = line else { return };
            if let Some((_, rest)) = line.split_once(&needle) {
                let _ = tx.send(rest.to_string());
                break;
            }
        }
        for _ in lines {}
    });
    rx.recv_timeout(Duration::from_secs(20)).ok()
}

/// node-media-server's publish signature: `EXPIRY-md5("/live/NAME-EXPIRY-SECRET")`.
pub fn nms_sign(stream: &str, expiry: u64, secret: &str) -> String {
    let digest = Md5::digest(format!("/live/{stream}-{expiry}-{secret}").as_bytes());
    format!("{expiry}-{}", hex::encode(digest))
}

/// An RTMP player (ffprobe) subscribed before the push starts, so servers
/// without a GOP cache (rtmplite3) still hand it the sequence headers.
pub struct Player {
    proc: Proc,
}

impl Player {
    /// Returns once ffprobe has sent its play command (read from its debug
    /// log) and, when `answer` is given, has then logged a line containing
    /// it (the server's reply that shows the play was registered), so a push
    /// started after this cannot outrun it.
    pub fn subscribe(url: &str, answer: Option<&'static str>) -> Player {
        let p = super::spawn(
            Command::new("ffprobe")
                .args(["-loglevel", "debug", "-rw_timeout", "15000000"])
                .args(["-show_entries", "stream=codec_name,width,height"])
                .args(["-of", "csv=p=0", url]),
        );
        let printed = p.1.clone();
        p.wait_for("ffprobe's play answered", Duration::from_secs(20), || {
            let err = printed.stderr();
            let (_, after_play) = err.split_once("Sending play command")?;
            match answer {
                None => Some(()),
                Some(a) => after_play.contains(a).then_some(()),
            }
        });
        Player { proc: p }
    }

    /// The `codec,width,height` lines ffprobe found (killed after `within`),
    /// and its RTMP log lines.
    pub fn streams(self, within: Duration) -> (String, String) {
        let out = self.proc.finish(within);
        // Keep the RTMP and error lines for the failure message.
        let log = String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| l.starts_with("[rtmp") || l.contains("rror"))
            .collect::<Vec<_>>()
            .join("\n");
        (
            String::from_utf8_lossy(&out.stdout).to_string(),
            format!("{:?}: {log}", out.status),
        )
    }
}

/// Polls `ffprobe URL` (HTTP-FLV or RTMP play of a live stream) until it
/// sees video, for at most `within`.
pub fn probe_until_video(url: &str, within: Duration) -> String {
    let end = Instant::now() + within;
    loop {
        let seen = super::ffprobe_stream(url);
        if seen.contains("h264") || Instant::now() > end {
            return seen;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One cell of the interop matrix (tests/peers/matrix.json names the rows
/// and columns): written as `fail` when begun and `pass` when the test
/// reaches `pass()`, so a test that panics leaves its failure on record.
pub struct Check {
    path: PathBuf,
    record: serde_json::Value,
}

pub fn results_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join("target"),
            PathBuf::from,
        )
        .join("interop-results")
}

impl Check {
    /// `peer` and `check` as named in tests/peers/matrix.json.
    pub fn begin(peer: &str, version: &str, check: &str) -> Check {
        let dir = results_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let file: String = format!("{peer}--{check}")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = dir.join(format!("{file}.json"));
        let record = serde_json::json!({
            "peer": peer, "version": version, "check": check,
            "result": "fail", "measured": "",
        });
        std::fs::write(&path, record.to_string()).unwrap();
        Check { path, record }
    }

    /// A fact of this check that the README table shows (fixed by the test,
    /// never a measurement), e.g. the load's scale.
    pub fn note(mut self, key: &str, value: &str) -> Check {
        self.record[key] = value.into();
        self
    }

    /// `measured`: figures of this run (not rendered in the README table,
    /// which must not change from run to run).
    pub fn pass(mut self, measured: &str) {
        self.record["result"] = "pass".into();
        self.record["measured"] = measured.into();
        std::fs::write(&self.path, self.record.to_string()).unwrap();
    }
}

/// `pushprobe serve` with its HTTP API and callbacks, as the ingest that
/// independent encoders push to. Both ports are picked by serve itself
/// (`127.0.0.1:0`) and read from its first lines.
pub struct Ingest {
    pub rtmp_port: u16,
    pub http_port: u16,
    _p: Proc,
}

impl Ingest {
    pub fn start(key: &str, callback_key: &str, callback_url: &str) -> Ingest {
        let mut c = super::bin();
        c.env("PUSHPROBE_KEY", key)
            .env("PUSHPROBE_CALLBACK_KEY", callback_key)
            .args(["serve", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .args(["--callback-url", callback_url]);
        let p = super::spawn(&mut c);
        // serve prints both lines once both listeners are bound.
        let rtmp_port = super::printed_port(&p, "pushprobe serve: RTMP on rtmp://127.0.0.1:");
        let http_port = super::printed_port(&p, "pushprobe serve: HTTP on http://127.0.0.1:");
        Ingest {
            rtmp_port,
            http_port,
            _p: p,
        }
    }

    /// GET http://127.0.0.1:HTTP_PORT/PATH as JSON (Null when it fails).
    pub fn get(&self, path: &str) -> serde_json::Value {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.http_port)) else {
            return serde_json::Value::Null;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        );
        let mut resp = String::new();
        let _ = s.read_to_string(&mut resp);
        resp.split_once("\r\n\r\n")
            .and_then(|(_, body)| serde_json::from_str(body).ok())
            .unwrap_or(serde_json::Value::Null)
    }
}

/// Polls until something accepts TCP on `port`, up to `within`. Peers log to
/// files: their callers print the log when this gives up.
fn wait_port(port: u16, within: Duration) -> bool {
    let end = std::time::Instant::now() + within;
    while std::time::Instant::now() < end {
        if accepts(port) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// nginx-rtmp for play-back tests (issue 13): a player of a stream nobody
/// publishes gets NetStream.Play.StreamNotFound (`idle_streams off`), and
/// the stream is also cut into 1 s HLS segments served at
/// `http://127.0.0.1:{stat_port}/hls/NAME.m3u8`.
pub fn nginx_play() -> Option<Nginx> {
    if !have("nginx") {
        return None;
    }
    Some(Nginx::start_with(
        "idle_streams off; hls on; hls_path {d}/hls; hls_fragment 1s; hls_playlist_length 6s;",
        "location /hls { root {d}; add_header Cache-Control no-cache; }",
    ))
}
