//! Shared test harness: real peers (nginx-rtmp, ffmpeg/ffprobe) as child
//! processes on free loopback ports, killed on drop, and the real binary.

#![allow(dead_code)]

pub mod peers;
pub mod script;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The pushprobe binary under test.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pushprobe"));
    c.env_remove("PUSHPROBE_KEY")
        .env_remove("PUSHPROBE_BACKUP_KEY")
        .env_remove("PUSHPROBE_CALLBACK_KEY");
    c
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// True when `tool` is on PATH. When it is not: fails under CI, else prints
/// why the test is skipped and returns false.
pub fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        if std::env::var_os("CI").is_some() {
            panic!("{tool} is required under CI (install it in .ci/run)");
        }
        eprintln!("SKIPPED: {tool} is not installed");
    }
    found
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something accepts TCP on the port.
pub fn wait_port(port: u16, within: Duration) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A child process killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    /// Waits for exit up to `within`, killing it after; returns its output.
    pub fn finish(mut self, within: Duration) -> Output {
        let end = Instant::now() + within;
        loop {
            match self.0.try_wait() {
                Ok(Some(_)) => break,
                _ if Instant::now() > end => {
                    let _ = self.0.kill();
                    break;
                }
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        if let Some(mut o) = self.0.stdout.take() {
            let _ = o.read_to_end(&mut stdout);
        }
        if let Some(mut e) = self.0.stderr.take() {
            let _ = e.read_to_end(&mut stderr);
        }
        let status = self.0.wait().expect("wait");
        Output {
            status,
            stdout,
            stderr,
        }
    }
}

pub fn spawn(cmd: &mut Command) -> Proc {
    Proc(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn"),
    )
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

/// nginx with the RTMP module on a free loopback port.
pub struct Nginx {
    pub port: u16,
    _dir: tempfile::TempDir,
    _proc: Proc,
}

impl Nginx {
    /// Starts nginx-rtmp; `on_publish` is an HTTP URL for nginx's publish hook.
    pub fn start(on_publish: Option<&str>) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let hook = on_publish.map_or(String::new(), |u| format!("on_publish {u};"));
        let conf = format!(
            "load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;\n\
             daemon off; master_process off; pid {d}/n.pid; error_log {d}/err.log info;\n\
             events {{}}\n\
             rtmp {{ server {{ listen 127.0.0.1:{port}; application live {{ live on; record off; {hook} }} }} }}\n",
            d = dir.path().display()
        );
        let conf_path = dir.path().join("n.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let proc = spawn(
            Command::new("nginx")
                .arg("-c")
                .arg(&conf_path)
                .arg("-p")
                .arg(dir.path()),
        );
        assert!(
            wait_port(port, Duration::from_secs(5)),
            "nginx did not start"
        );
        Nginx {
            port,
            _dir: dir,
            _proc: proc,
        }
    }

    pub fn url(&self, stream: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{stream}", self.port)
    }
}

/// A tiny HTTP server answering every request with `status`, recording the
/// request lines (for nginx's on_publish hook). Runs on a thread.
pub struct HookServer {
    pub url: String,
    pub requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl HookServer {
    /// `decide(request_text) -> HTTP status` for each request.
    pub fn start(decide: impl Fn(&str) -> u16 + Send + 'static) -> HookServer {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://127.0.0.1:{}/on_publish",
            l.local_addr().unwrap().port()
        );
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
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

/// ffprobe of a live RTMP stream: the `codec,width,height` lines.
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

/// Unix seconds now.
pub fn now() -> u64 {
    pushprobe::cli::now_unix()
}

/// `rtmp://127.0.0.1:PORT/live/STREAM?txSecret=..&txTime=..` signed with `key`.
pub fn signed(port: u16, stream: &str, key: &str, expiry: u64) -> String {
    let spec = pushprobe::sign::UrlSpec {
        scheme: pushprobe::sign::Scheme::Rtmp,
        domain: "127.0.0.1".into(),
        port: Some(port),
        app: "live".into(),
        stream: stream.into(),
    };
    let key = pushprobe::secret::Secret::new(key.into());
    pushprobe::sign::sign_url(&spec, &key, expiry)
        .unwrap()
        .to_string()
}

/// `pushprobe serve` as a real process on a loopback port it picks itself
/// (`--listen 127.0.0.1:0`, the port read from its first line), so parallel
/// tests never race for a port.
pub struct Serve {
    pub port: u16,
    _p: Proc,
}

impl Serve {
    /// Starts it with these environment variables and extra arguments.
    pub fn start(env: &[(&str, &str)], extra: &[&str]) -> Serve {
        use std::io::BufRead;
        let mut c = bin();
        for (k, v) in env {
            c.env(k, v);
        }
        c.args(["serve", "--listen", "127.0.0.1:0"]).args(extra);
        let mut p = spawn(&mut c);
        let stderr = p.0.stderr.take().expect("piped stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads the address line, then keeps draining so serve never blocks
        // on a full pipe.
        std::thread::spawn(move || {
            let mut lines = std::io::BufReader::new(stderr).lines();
            for line in lines.by_ref() {
                let Ok(line) = line else { return };
                if let Some(rest) = line.strip_prefix("pushprobe serve: RTMP on rtmp://127.0.0.1:")
                {
                    let port = rest.split('/').next().and_then(|p| p.parse::<u16>().ok());
                    let _ = tx.send(port);
                    break;
                }
            }
            for _ in lines {}
        });
        let port = rx
            .recv_timeout(Duration::from_secs(10))
            .ok()
            .flatten()
            .expect("serve printed its RTMP address");
        assert!(
            wait_port(port, Duration::from_secs(5)),
            "serve did not start"
        );
        Serve { port, _p: p }
    }
}
