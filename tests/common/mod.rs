//! Shared test harness: real peers (nginx-rtmp, ffmpeg/ffprobe) as child
//! processes on free loopback ports, killed on drop, and the real binary.
//! Children's output is collected as it comes, so a readiness wait that gives
//! up says what the child printed; a test that cannot run fails unless
//! skipping is asked for (`PUSHPROBE_ALLOW_SKIP=1`), and always under CI.

#![allow(dead_code)]

pub mod peers;
pub mod script;
pub mod shaper;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use md5::{Digest, Md5};

/// How long a child may take to become ready (print its address, accept on
/// its port, list a stream). A bound against hangs, not a speed claim: a
/// healthy start takes milliseconds, a loaded 2-core machine building other
/// crates can stall a debug binary for seconds, and a child that fails is
/// reported at once (its exit), not after this bound.
pub const READY: Duration = Duration::from_secs(30);

/// How often a readiness wait polls.
pub const POLL: Duration = Duration::from_millis(20);

/// The pushprobe binary under test.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pushprobe"));
    c.env_remove("PUSHPROBE_KEY")
        .env_remove("PUSHPROBE_BACKUP_KEY")
        .env_remove("PUSHPROBE_CALLBACK_KEY")
        .env_remove("PUSHPROBE_PLAY_KEY");
    c
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// True when `CI` is set the way CI systems set it: `true` or `1` (any
/// case). `CI=false`, `CI=0` or an empty `CI` are not CI.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| {
        let v = v.trim();
        v == "1" || v.eq_ignore_ascii_case("true")
    })
}

/// True when skipping is asked for: `PUSHPROBE_ALLOW_SKIP=1`.
fn skip_allowed() -> bool {
    std::env::var("PUSHPROBE_ALLOW_SKIP").is_ok_and(|v| v.trim() == "1")
}

/// The running test's name (libtest names each test's thread after it).
fn test_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string()
}

/// A test that cannot run for `reason`. Under CI (`CI=true` or `1`) it fails.
/// Elsewhere it fails too, unless `PUSHPROBE_ALLOW_SKIP=1`: then it prints
/// `SKIPPED <test>: <reason>` straight to stdout (past libtest's capture, so
/// `cargo test` shows it beside the passing test) and the caller returns.
pub fn skip(reason: &str) {
    let name = test_name();
    if under_ci() {
        panic!(
            "{name} cannot run under CI: {reason} (CI fails on any skip; .ci/run installs what the tests need)"
        );
    }
    if !skip_allowed() {
        panic!(
            "{name} cannot run: {reason}. Install it (see .ci/run), or set PUSHPROBE_ALLOW_SKIP=1 to skip such tests with a printed SKIPPED line"
        );
    }
    // Not println!: libtest captures that and shows it only for failures.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "SKIPPED {name}: {reason}");
    let _ = out.flush();
}

/// True when `tool` is on PATH; otherwise `skip`s (a failure unless skipping
/// is allowed and not under CI) and returns false.
pub fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        skip(&format!("{tool} is not installed"));
    }
    found
}

/// A port that was free a moment ago. Racy by nature (anything may take it
/// before the caller binds it): only for peers that cannot bind port 0 and
/// say which port they got (nginx, whose start retries on a taken port), or
/// for a port nothing must listen on.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// True when something accepts TCP on the port now.
pub fn accepts(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// Lowercase hex MD5, by the `md-5` crate directly: the reference the tests
/// check pushprobe's own signing against (never `pushprobe::sign`).
pub fn md5_hex(s: &str) -> String {
    hex::encode(Md5::digest(s.as_bytes()))
}

/// `txSecret` for `key`, `stream`, `tx_time` as Tencent documents it:
/// MD5(KEY + STREAM + TXTIME), computed independently of the crate.
pub fn tx_secret(key: &str, stream: &str, tx_time: &str) -> String {
    md5_hex(&format!("{key}{stream}{tx_time}"))
}

/// A push callback's `sign`: MD5(CALLBACK_KEY + t), computed independently.
pub fn callback_sign(key: &str, t: u64) -> String {
    md5_hex(&format!("{key}{t}"))
}

/// `rtmp://127.0.0.1:PORT/live/STREAM?txSecret=..&txTime=..` signed with
/// `key` (txTime in uppercase hex, as Tencent's samples), independently of
/// `pushprobe::sign`.
pub fn signed(port: u16, stream: &str, key: &str, expiry: u64) -> String {
    let t = format!("{expiry:X}");
    format!(
        "rtmp://127.0.0.1:{port}/live/{stream}?txSecret={}&txTime={t}",
        tx_secret(key, stream, &t)
    )
}

/// Unix seconds now.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// What a child printed so far, collected by one thread per pipe so that the
/// child never blocks on a full pipe and a failed wait can show it.
#[derive(Clone, Default)]
pub struct Printed {
    what: Arc<String>,
    out: Arc<Mutex<Vec<u8>>>,
    err: Arc<Mutex<Vec<u8>>>,
    /// Pipes not yet at end of file.
    open: Arc<AtomicUsize>,
}

impl Printed {
    fn collect(&self, pipe: impl Read + Send + 'static, into: Arc<Mutex<Vec<u8>>>) {
        self.open.fetch_add(1, Ordering::SeqCst);
        let open = self.open.clone();
        std::thread::spawn(move || {
            let mut pipe = pipe;
            let mut buf = [0u8; 8192];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                into.lock().unwrap().extend_from_slice(&buf[..n]);
            }
            open.fetch_sub(1, Ordering::SeqCst);
        });
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.err.lock().unwrap()).into_owned()
    }

    /// True once the child closed both pipes: it exited (or closed them).
    pub fn closed(&self) -> bool {
        self.open.load(Ordering::SeqCst) == 0
    }

    /// The command line and everything printed, for a failure message.
    pub fn report(&self) -> String {
        format!(
            "--- `{}` printed on stdout:\n{}\n--- and on stderr:\n{}\n---",
            self.what,
            self.stdout(),
            self.stderr()
        )
    }
}

/// A child process killed when dropped, its output collected as it comes.
pub struct Proc(pub Child, pub Printed);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    /// Everything printed so far, stdout then stderr.
    pub fn printed(&self) -> String {
        format!("{}{}", self.1.stdout(), self.1.stderr())
    }

    /// Polls `ready` every 20 ms until it gives a value; panics with what the
    /// child printed when the child exits first or `within` passes.
    pub fn wait_for<T>(&self, what: &str, within: Duration, ready: impl FnMut() -> Option<T>) -> T {
        wait_until(what, within, &[&self.1], ready)
    }

    /// Waits for exit up to `within` (or kills it then) and returns the status.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + within;
        loop {
            if let Ok(Some(s)) = self.0.try_wait() {
                return Some(s);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits for exit up to `within`, killing it after; returns its output.
    pub fn finish(mut self, within: Duration) -> Output {
        if self.wait_exit(within).is_none() {
            let _ = self.0.kill();
        }
        let status = self.0.wait().expect("wait");
        // The pipes end with the child (a grandchild holding them is given a
        // little while, then left).
        let end = Instant::now() + Duration::from_secs(5);
        while !self.1.closed() && Instant::now() < end {
            std::thread::sleep(POLL);
        }
        Output {
            status,
            stdout: self.1.out.lock().unwrap().clone(),
            stderr: self.1.err.lock().unwrap().clone(),
        }
    }
}

/// Polls `ready` every 20 ms until it gives a value. Panics naming `what` and
/// showing what each `watched` child printed when one of them exits first
/// (closes its output) or when `within` passes.
pub fn wait_until<T>(
    what: &str,
    within: Duration,
    watched: &[&Printed],
    mut ready: impl FnMut() -> Option<T>,
) -> T {
    let began = Instant::now();
    loop {
        if let Some(v) = ready() {
            return v;
        }
        let gone = watched.iter().find(|p| p.closed());
        if gone.is_some() || began.elapsed() >= within {
            // One last look: the condition may have come with the exit.
            if let Some(v) = ready() {
                return v;
            }
            let why = match gone {
                Some(p) => format!("`{}` exited first", p.what),
                None => format!("not within {within:?}"),
            };
            let printed: Vec<String> = watched.iter().map(|p| p.report()).collect();
            panic!(
                "waiting for {what}: {why} (after {:?})\n{}",
                began.elapsed(),
                printed.join("\n")
            );
        }
        std::thread::sleep(POLL);
    }
}

/// Waits until something accepts TCP on `port`, reporting `watched` on failure.
pub fn wait_accepting(port: u16, what: &str, watched: &[&Printed]) {
    wait_until(what, READY, watched, || accepts(port).then_some(()));
}

pub fn spawn(cmd: &mut Command) -> Proc {
    let what = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{what}`: {e}"));
    let printed = Printed {
        what: Arc::new(what),
        ..Printed::default()
    };
    printed.collect(child.stdout.take().expect("piped"), printed.out.clone());
    printed.collect(child.stderr.take().expect("piped"), printed.err.clone());
    Proc(child, printed)
}

/// Runs a command to completion within `within` (killed after).
pub fn run(cmd: &mut Command, within: Duration) -> Output {
    spawn(cmd).finish(within)
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Sends `signal` (`TERM`, `INT`) to a child, as `kill` or Ctrl-C would.
pub fn signal(p: &Proc, signal: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{signal}"), &p.0.id().to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill -{signal} failed");
}

/// `GET path` on 127.0.0.1:port over HTTP/1.0: the response, or "" when the
/// connection fails.
pub fn http_get(port: u16, path: &str) -> String {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n");
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body
}

/// nginx with the RTMP module on a free loopback port, and its `rtmp_stat`
/// page on another, to see which streams are being published.
pub struct Nginx {
    pub port: u16,
    pub stat_port: u16,
    _dir: tempfile::TempDir,
    proc: Proc,
}

impl Nginx {
    /// Starts nginx-rtmp; `on_publish` is an HTTP URL for nginx's publish hook.
    /// nginx cannot bind port 0 and say which port it got, so its ports come
    /// from `free_port` and a start that finds one taken is tried again on
    /// others (up to 5 times); any other failure shows what nginx printed.
    pub fn start(on_publish: Option<&str>) -> Nginx {
        let hook = on_publish.map_or(String::new(), |u| format!("on_publish {u};"));
        Nginx::start_with(&hook, "")
    }

    /// Starts nginx-rtmp with more directives in `application live` and in
    /// the HTTP server of the stat page (`{d}` in either: nginx's directory).
    pub fn start_with(app_extra: &str, http_extra: &str) -> Nginx {
        for attempt in 1..=5 {
            let dir = tempfile::tempdir().unwrap();
            let (port, stat_port) = (free_port(), free_port());
            let d = dir.path().display().to_string();
            let hook = app_extra.replace("{d}", &d);
            let http_extra = http_extra.replace("{d}", &d);
            let conf = format!(
                "load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;\n\
                 daemon off; master_process off; pid {d}/n.pid; error_log {d}/err.log info;\n\
                 events {{}}\n\
                 rtmp {{ server {{ listen 127.0.0.1:{port}; application live {{ live on; record off; {hook} }} }} }}\n\
                 http {{ access_log off; client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n\
                   fastcgi_temp_path {d}/fastcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
                   server {{ listen 127.0.0.1:{stat_port}; location /stat {{ rtmp_stat all; }} {http_extra} }} }}\n",
                d = dir.path().display()
            );
            let conf_path = dir.path().join("n.conf");
            std::fs::write(&conf_path, conf).unwrap();
            let mut proc = spawn(
                Command::new("nginx")
                    .arg("-c")
                    .arg(&conf_path)
                    .arg("-p")
                    .arg(dir.path()),
            );
            let began = Instant::now();
            loop {
                if accepts(port) && accepts(stat_port) {
                    return Nginx {
                        port,
                        stat_port,
                        _dir: dir,
                        proc,
                    };
                }
                let exited = proc.0.try_wait().ok().flatten();
                if exited.is_some() || began.elapsed() > READY {
                    let log =
                        std::fs::read_to_string(dir.path().join("err.log")).unwrap_or_default();
                    let said = format!("{}{log}", proc.printed());
                    if said.contains("Address already in use") && attempt < 5 {
                        eprintln!("nginx found port {port} or {stat_port} taken; trying others");
                        break;
                    }
                    panic!(
                        "nginx did not start ({exited:?} after {:?}): {}\n--- err.log:\n{log}",
                        began.elapsed(),
                        proc.1.report()
                    );
                }
                std::thread::sleep(POLL);
            }
        }
        unreachable!("the fifth attempt panics")
    }

    pub fn url(&self, stream: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{stream}", self.port)
    }

    /// Streams nginx-rtmp has a publisher for, from its stat page.
    pub fn publishing(&self) -> Vec<String> {
        let page = http_get(self.stat_port, "/stat");
        page.split("<stream>")
            .skip(1)
            .filter(|s| s.contains("<publishing/>"))
            .filter_map(|s| {
                let name = s.split_once("<name>")?.1.split_once("</name>")?.0;
                Some(name.to_string())
            })
            .collect()
    }

    /// Waits until `stream`, pushed by `publisher`, is being published
    /// (nginx's stat page says so).
    pub fn wait_publishing(&self, stream: &str, publisher: &Proc) {
        wait_until(
            &format!("nginx to list {stream} as publishing"),
            READY,
            &[&self.proc.1, &publisher.1],
            || self.publishing().iter().any(|s| s == stream).then_some(()),
        );
    }
}

/// A tiny HTTP server answering every request with `status`, recording the
/// request lines (for nginx's on_publish hook). Runs on a thread.
pub struct HookServer {
    pub url: String,
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl HookServer {
    /// `decide(request_text) -> HTTP status` for each request.
    pub fn start(decide: impl Fn(&str) -> u16 + Send + 'static) -> HookServer {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://127.0.0.1:{}/on_publish",
            l.local_addr().unwrap().port()
        );
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let mut buf = vec![0u8; 16384];
                let mut got = 0;
                // Read headers and a small form body.
                while got < buf.len() {
                    match s.read(&mut buf[got..]) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got += n,
                    }
                    let t = String::from_utf8_lossy(&buf[..got]);
                    if let Some(h) = t.find("\r\n\r\n") {
                        let len = t
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if got >= h + 4 + len {
                            break;
                        }
                    }
                }
                let req = String::from_utf8_lossy(&buf[..got]).to_string();
                let status = decide(&req);
                seen.lock().unwrap().push(req);
                let _ = write!(
                    s,
                    "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        });
        HookServer { url, requests }
    }
}

/// `tests/tencent_hook.py`: nginx's on_publish hook applying Tencent's auth
/// rules with `key`, in Python (hashlib), apart from pushprobe's own code.
/// Each decision is a line in `decisions()`.
pub struct TencentHook {
    pub url: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
    proc: Proc,
}

impl TencentHook {
    /// Needs python3: check `have("python3")` first.
    pub fn start(key: &str) -> TencentHook {
        let dir = tempfile::tempdir().unwrap();
        let (port_file, log) = (dir.path().join("port"), dir.path().join("decisions"));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tencent_hook.py");
        let proc = spawn(
            Command::new("python3")
                .arg(&script)
                .arg(&port_file)
                .arg(&log)
                .env("TENCENT_HOOK_KEY", key),
        );
        let port = proc.wait_for("the hook's port file", READY, || {
            std::fs::read_to_string(&port_file).ok()
        });
        TencentHook {
            url: format!("http://127.0.0.1:{}/on_publish", port.trim()),
            log,
            _dir: dir,
            proc,
        }
    }

    /// One line per publish the hook decided: `200 NAME` or `403 NAME: why`.
    pub fn decisions(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// ffprobe of a live RTMP stream: the `codec,width,height` lines.
/// Decodes `secs` s of `url` with `ffmpeg -v error ... -f null -` and fails
/// the test unless ffmpeg exits 0 having printed nothing: not one decode error.
pub fn assert_decodes_cleanly(url: &str, secs: u32) {
    let o = run(
        Command::new("ffmpeg")
            .args([
                "-nostdin",
                "-v",
                "error",
                "-rw_timeout",
                "8000000",
                "-i",
                url,
                "-t",
            ])
            .arg(secs.to_string())
            .args(["-f", "null", "-"]),
        Duration::from_secs(30 + u64::from(secs)),
    );
    let printed = text(&o);
    assert!(
        o.status.success() && printed.trim().is_empty(),
        "{url}: ffmpeg did not decode cleanly: {printed}"
    );
}

/// The validator of `#/$defs/{def}` in the committed `schemas/commands.json`
/// (push, dup, doctor, play, codec matrix JSON).
pub fn command_schema(def: &str) -> jsonschema::Validator {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schemas/commands.json"
    ))
    .unwrap();
    let mut s: serde_json::Value = serde_json::from_str(&text).unwrap();
    s["$ref"] = serde_json::json!(format!("#/$defs/{def}"));
    jsonschema::validator_for(&s).unwrap()
}

/// What the committed load report schema (`schema.json`) says is wrong with
/// `report`, one line per error with where it is.
pub fn load_report_errors(report: &serde_json::Value) -> Vec<String> {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.json")).unwrap();
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    validator
        .iter_errors(report)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

pub fn ffprobe_stream(url: &str) -> String {
    let o = run(
        Command::new("ffprobe").args([
            "-v",
            "error",
            "-rw_timeout",
            "8000000",
            "-show_entries",
            "stream=codec_name,width,height",
            "-of",
            "csv=p=0",
            url,
        ]),
        Duration::from_secs(15),
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// `pushprobe serve` as a real process on loopback ports it picks itself
/// (`--listen 127.0.0.1:0 --http 127.0.0.1:0`, read from the lines it prints
/// once both are bound), so parallel tests never race for a port.
pub struct Serve {
    pub port: u16,
    pub http: u16,
    pub proc: Proc,
}

impl Serve {
    /// Starts it with these environment variables and extra arguments.
    pub fn start(env: &[(&str, &str)], extra: &[&str]) -> Serve {
        Self::start_at(env, extra, 0, 0)
    }

    /// Starts it on given ports (0: its own pick), as when restarting an
    /// ingest on the ports its publishers know.
    pub fn start_at(env: &[(&str, &str)], extra: &[&str], rtmp: u16, http: u16) -> Serve {
        let mut c = bin();
        for (k, v) in env {
            c.env(k, v);
        }
        c.args(["serve", "--listen", &format!("127.0.0.1:{rtmp}")])
            .args(["--http", &format!("127.0.0.1:{http}")])
            .args(extra);
        let proc = spawn(&mut c);
        // serve prints both lines once both listeners are bound.
        let port = printed_port(&proc, "RTMP on rtmp://127.0.0.1:");
        let http = printed_port(&proc, "HTTP on http://127.0.0.1:");
        Serve { port, http, proc }
    }

    /// Starts it on `listen` (an `IP:0` on loopback: 127.0.0.2, [::1], ...);
    /// also returns the address it listens on.
    pub fn start_on(
        listen: &str,
        env: &[(&str, &str)],
        extra: &[&str],
    ) -> (Serve, std::net::SocketAddr) {
        let mut c = bin();
        for (k, v) in env {
            c.env(k, v);
        }
        c.args(["serve", "--listen", listen])
            .args(["--http", "127.0.0.1:0"])
            .args(extra);
        let proc = spawn(&mut c);
        let ip = listen.rsplit_once(':').map_or(listen, |(ip, _)| ip);
        let port = printed_port(&proc, &format!("RTMP on rtmp://{ip}:"));
        let http = printed_port(&proc, "HTTP on http://127.0.0.1:");
        let addr = format!("{ip}:{port}").parse().expect("a socket address");
        (Serve { port, http, proc }, addr)
    }

    /// SIGKILL: no goodbye, the kernel closes every connection.
    pub fn kill(self) -> Output {
        let Serve { mut proc, .. } = self;
        let _ = proc.0.kill();
        proc.finish(Duration::from_secs(5))
    }

    /// Live streams as the ingest's `GET /streams` lists them (empty when it
    /// cannot be asked).
    pub fn streams(&self) -> Vec<serde_json::Value> {
        http_get(self.http, "/streams")
            .split_once("\r\n\r\n")
            .and_then(|(_, b)| serde_json::from_str(b).ok())
            .unwrap_or_default()
    }

    /// Waits until at least `n` streams are live; a failure shows what the
    /// ingest and the `publishers` (the children pushing to it) printed.
    pub fn wait_live(&self, n: usize, publishers: &[&Proc]) {
        let watched: Vec<&Printed> = std::iter::once(&self.proc)
            .chain(publishers.iter().copied())
            .map(|p| &p.1)
            .collect();
        wait_until(
            &format!("{n} live streams on the ingest"),
            READY,
            &watched,
            || (self.streams().len() >= n).then_some(()),
        );
    }

    /// Waits until `stream` is live, pushed by `publisher`.
    pub fn wait_stream(&self, stream: &str, publisher: &Proc) {
        wait_until(
            &format!("{stream} live on the ingest"),
            READY,
            &[&self.proc.1, &publisher.1],
            || {
                self.streams()
                    .iter()
                    .any(|s| s["stream"] == stream)
                    .then_some(())
            },
        );
    }
}

/// The port a child prints after `prefix` (`..on http://127.0.0.1:`) on
/// stderr, once it has printed it.
pub fn printed_port(p: &Proc, prefix: &str) -> u16 {
    let printed = p.1.clone();
    p.wait_for(&format!("a port after {prefix:?}"), READY, || {
        let err = printed.stderr();
        let rest = err.split_once(prefix)?.1;
        rest.split(['/', ',', ' ', '\n'])
            .next()?
            .parse::<u16>()
            .ok()
    })
}

/// `pushprobe callbacks --listen 127.0.0.1:0` with `key`: the port from the
/// line it prints once listening.
pub fn callbacks_receiver(key: &str) -> (Proc, u16) {
    let p = spawn(bin().env("PUSHPROBE_CALLBACK_KEY", key).args([
        "callbacks",
        "--listen",
        "127.0.0.1:0",
    ]));
    let port = printed_port(&p, CALLBACKS_AT);
    (p, port)
}

/// What `pushprobe callbacks` prints before its port.
pub const CALLBACKS_AT: &str = "listening for push callbacks on http://127.0.0.1:";

/// The exit code `load` promises for a run in which every publisher was
/// accepted: 0, unless the generator fell 1 s or more behind real time, which
/// a loaded machine can make it do and which it must then report with 1.
/// How far behind it fell is a measurement (benches), not a test outcome.
pub fn exit_for_lag(v: &serde_json::Value) -> i32 {
    let lag = v["lag_ms"]["max"].as_f64().expect("lag_ms.max");
    if lag < 1000.0 {
        0
    } else {
        eprintln!("the generator fell {lag} ms behind real time: exit 1 expected");
        1
    }
}

/// A JSON report the run must have written at `path`.
pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{} was not written: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// The exit code, -1 when a signal ended the process.
pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}
