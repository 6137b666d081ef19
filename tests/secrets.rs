//! Secrets (issue 7): push keys, callback keys and txSecret never appear in
//! the real output (stdout, stderr at `--log debug`, written files, the
//! ingest's HTTP view) of any subcommand unless `--show-secrets`; key files
//! readable by others draw a warning.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::script::*;
use common::*;
use pushprobe::rtmp::amf0::Value;
use pushprobe::rtmp::message::Command as Cmd;

const KEY: &str = "pp-push-key-5ecret-0001";
const CB_KEY: &str = "pp-callback-key-5ecret-0002";
/// A txSecret we make up for URLs that need not verify.
const FAKE_SECRET: &str = "f00dfeedf00dfeedf00dfeedf00dfeed";

/// Every place a secret could show: `(what, text)`.
type Texts = Vec<(String, String)>;

fn texts_of(what: &str, o: &Output) -> Texts {
    vec![
        (
            format!("{what} stdout"),
            String::from_utf8_lossy(&o.stdout).into(),
        ),
        (
            format!("{what} stderr"),
            String::from_utf8_lossy(&o.stderr).into(),
        ),
    ]
}

/// Files written under `dir`, recursively.
fn files_in(dir: &Path) -> Texts {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_in(&p));
        } else if let Ok(t) = std::fs::read(&p) {
            out.push((p.display().to_string(), String::from_utf8_lossy(&t).into()));
        }
    }
    out
}

/// Runs of exactly 32 lowercase hex digits: what an MD5 (txSecret, sign) looks like.
fn md5_like(t: &str) -> Vec<&str> {
    let b = t.as_bytes();
    let is_hex = |c: u8| c.is_ascii_digit() || (b'a'..=b'f').contains(&c);
    let mut found = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if is_hex(b[i]) {
            let start = i;
            while i < b.len() && is_hex(b[i]) {
                i += 1;
            }
            if i - start == 32 {
                found.push(&t[start..i]);
            }
        } else {
            i += 1;
        }
    }
    found
}

/// None of `secrets`, and nothing that looks like an MD5, in any text.
fn assert_clean(texts: &Texts, secrets: &[&str]) {
    for (what, t) in texts {
        for s in secrets {
            assert!(!t.contains(s), "{s} leaked in {what}:\n{t}");
        }
        let md5s = md5_like(t);
        assert!(md5s.is_empty(), "{md5s:?} (an MD5) in {what}:\n{t}");
    }
}

/// The tx secret of a URL.
fn tx_secret(url: &str) -> &str {
    url.split("txSecret=")
        .nth(1)
        .and_then(|r| r.split('&').next())
        .unwrap()
}

/// The whole stack at `--log debug`: a callback receiver, an ingest that
/// checks signatures and sends callbacks to it, and every subcommand run
/// with known keys against them.
#[test]
fn no_subcommand_shows_a_secret_without_show_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("out");
    std::fs::create_dir(&files).unwrap();
    let key_file = dir.path().join("push.key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();

    let callbacks = spawn(bin().env("PUSHPROBE_CALLBACK_KEY", CB_KEY).args([
        "--log",
        "debug",
        "callbacks",
        "--listen",
        "127.0.0.1:0",
    ]));
    let cb_port = printed_port(&callbacks, CALLBACKS_AT);
    let callback_url = format!("http://127.0.0.1:{cb_port}/cb");
    let serve = Serve::start(
        &[
            ("PUSHPROBE_KEY", KEY),
            ("PUSHPROBE_CALLBACK_KEY", CB_KEY),
            ("PUSHPROBE_LOG", "debug"),
        ],
        &[
            "--reject-with-status",
            "--callback-url",
            &callback_url,
            "--callback-retry-interval",
            "100ms",
        ],
    );
    let (rtmp, http) = (serve.port, serve.http);

    // Building a URL prints its txSecret: that is its job. Not the key.
    let built = run(
        bin()
            .args(["url", "--domain", "127.0.0.1", "--port", &rtmp.to_string()])
            .args(["--stream", "sec1", "--key-file"])
            .arg(&key_file),
        Duration::from_secs(10),
    );
    assert_eq!(built.status.code(), Some(0), "{}", text(&built));
    let url = String::from_utf8_lossy(&built.stdout).trim().to_string();
    let secret = tx_secret(&url).to_string();
    assert_eq!(secret.len(), 32);
    assert_clean(
        &vec![(
            "url stderr".into(),
            String::from_utf8_lossy(&built.stderr).into(),
        )],
        &[KEY],
    );
    let secrets = [KEY, CB_KEY, secret.as_str(), FAKE_SECRET];

    let with_key = |args: &[&str], within: u64| {
        run(
            bin()
                .env("PUSHPROBE_KEY", KEY)
                .args(["--log", "debug"])
                .args(args),
            Duration::from_secs(within),
        )
    };
    let mut texts: Texts = Vec::new();
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("url --check", vec!["url", "--check", &url]),
        ("push", vec!["push", &url, "--duration", "1s"]),
        (
            "push --json",
            vec!["push", &url, "--duration", "1s", "--json"],
        ),
        ("smoke", vec!["smoke", &url, "--duration", "1s"]),
        (
            "smoke --json",
            vec!["smoke", &url, "--duration", "1s", "--json"],
        ),
        ("doctor", vec!["doctor", &url, "--duration", "1s"]),
        (
            "doctor --json",
            vec!["doctor", &url, "--duration", "1s", "--json"],
        ),
        ("dup", vec!["dup", &url, "--hold", "2s"]),
        ("dup --json", vec!["dup", &url, "--hold", "2s", "--json"]),
    ];
    for (what, args) in &cases {
        let o = with_key(args, 30);
        assert!(o.status.code().is_some(), "{what} ran: {}", text(&o));
        texts.extend(texts_of(what, &o));
    }

    // A signed load with callbacks measured, all outputs written.
    let report = files.join("load.json");
    let load = run(
        bin()
            .env("PUSHPROBE_KEY", KEY)
            .env("PUSHPROBE_CALLBACK_KEY", CB_KEY)
            .args(["--log", "debug", "load", "--domain", "127.0.0.1"])
            .args(["--port", &rtmp.to_string(), "--stream-template", "ld{i}"])
            .args(["--publishers", "3", "--rate", "0", "--duration", "1s"])
            .args(["--callback-listen", "127.0.0.1:0", "--callback-grace", "1s"])
            .args(["--progress", "plain", "--json-out"])
            .arg(&report)
            .arg("--hgrm")
            .arg(files.join("hgrm"))
            .arg("--plot")
            .arg(files.join("plot.svg")),
        Duration::from_secs(30),
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(
        load.status.code(),
        Some(exit_for_lag(&v)),
        "{}",
        text(&load)
    );
    texts.extend(texts_of("load", &load));
    // A pre-signed template whose secret is wrong: refused, in text output.
    let template =
        format!("rtmp://127.0.0.1:{rtmp}/live/lt{{i}}?txSecret={FAKE_SECRET}&txTime=FFFFFFFF");
    let load = with_key(
        &[
            "load",
            "--url-template",
            &template,
            "--publishers",
            "2",
            "--rate",
            "0",
            "--duration",
            "1s",
            "--progress",
            "plain",
        ],
        30,
    );
    assert_eq!(load.status.code(), Some(1), "{}", text(&load));
    texts.extend(texts_of("load --url-template", &load));
    let merged = with_key(&["report", "merge", report.to_str().unwrap()], 10);
    texts.extend(texts_of("report merge", &merged));
    texts.extend(files_in(&files));

    // The ingest's view and logs, the receiver's output.
    texts.push(("serve /streams".into(), http_get(http, "/streams")));
    texts.push(("serve /records".into(), http_get(http, "/records")));
    texts.push(("serve /health".into(), http_get(http, "/health")));
    // Every push has ended at the ingest (its last logs are written) before
    // its output is taken.
    wait_until(
        "no live stream left on the ingest",
        READY,
        &[&serve.proc.1],
        || serve.streams().is_empty().then_some(()),
    );
    texts.extend(texts_of("serve", &serve.kill()));
    let cb = callbacks.finish(Duration::ZERO);
    let cb_text = text(&cb);
    assert!(
        cb_text.contains("push started"),
        "callbacks arrived: {cb_text}"
    );
    texts.extend(texts_of("callbacks", &cb));

    assert_clean(&texts, &secrets);
    // And the checks saw the real thing (not an empty run).
    let all: String = texts.iter().map(|(_, t)| t.as_str()).collect();
    assert!(all.contains("txSecret=***"), "redacted, not absent");
    assert!(
        all.contains("matches the primary key"),
        "url --check checked"
    );
    assert!(all.contains("publish accepted"), "serve logged at debug");
    assert!(all.contains("pushprobe-load-report"), "load report read");
    let seen: Vec<&str> = texts.iter().map(|(w, _)| w.as_str()).collect();
    eprintln!("checked {} outputs: {seen:?}", texts.len());
}

#[test]
fn show_secrets_shows_the_tx_secret() {
    let srv = Server::start(|mut p| p.accept_publish().and_then(|()| p.drain()));
    let url = format!(
        "{}?txSecret={FAKE_SECRET}&txTime=FFFFFFFF",
        srv.url("shown")
    );
    for args in [
        vec!["url", "--check", &url, "--show-secrets"],
        vec!["push", &url, "--duration", "1s", "--show-secrets"],
        vec!["push", &url, "--duration", "1s", "--json", "--show-secrets"],
        vec![
            "smoke",
            &url,
            "--duration",
            "1s",
            "--json",
            "--show-secrets",
        ],
        vec!["doctor", &url, "--duration", "1s", "--show-secrets"],
        vec!["dup", &url, "--hold", "2s", "--json", "--show-secrets"],
    ] {
        let o = run(bin().args(&args), Duration::from_secs(20));
        let t = text(&o);
        assert!(t.contains(FAKE_SECRET), "{args:?} shows txSecret: {t}");
    }
}

/// A server that names the publish (query and all) in its refusal, as some
/// do: our evidence and status lines must redact it.
#[test]
fn a_server_echoing_the_tx_secret_is_redacted() {
    let srv = Server::start(|mut p| {
        p.handshake()?;
        p.connect_ok()?;
        p.create_stream_ok()?;
        let publish = p.expect("publish")?;
        let name = publish
            .args
            .first()
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let status = Value::obj(&[
            ("level", Value::str("error")),
            ("code", Value::str("NetStream.Publish.Denied")),
            (
                "description",
                Value::String(format!("publish {name} denied")),
            ),
        ]);
        p.reply(1, &Cmd::new("onStatus", 0.0, Value::Null, vec![status]))?;
        p.drain()
    });
    let url = format!("{}?txSecret={FAKE_SECRET}&txTime=FFFFFFFF", srv.url("echo"));
    let mut texts = Vec::new();
    for args in [
        vec!["push", &url, "--duration", "1s"],
        vec!["push", &url, "--duration", "1s", "--json"],
        vec!["smoke", &url, "--duration", "1s"],
        vec!["doctor", &url, "--duration", "1s"],
        vec!["doctor", &url, "--duration", "1s", "--json"],
        vec!["dup", &url, "--hold", "2s"],
        vec!["dup", &url, "--hold", "2s", "--json"],
    ] {
        let o = run(
            bin().args(["--log", "debug"]).args(&args),
            Duration::from_secs(20),
        );
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", text(&o));
        assert!(text(&o).contains("denied"), "{args:?}: {}", text(&o));
        texts.extend(texts_of(&args.join(" "), &o));
    }
    assert_clean(&texts, &[FAKE_SECRET]);
}

#[test]
fn malformed_urls_do_not_echo_the_tx_secret() {
    for url in [
        format!("rtmp://127.0.0.1/live/s?txSecret={FAKE_SECRET} x&txTime=FF"),
        format!("rtmp://127.0.0.1/live/s?txTime=FF&TXSECRET={FAKE_SECRET}\u{7}"),
        format!("rtmp://127.0.0.1/live/s?txSecret={FAKE_SECRET}&txTime=zz"),
        format!("rtmp://127.0.0.1/li ve/s?txSecret={FAKE_SECRET}&txTime=FF"),
    ] {
        for cmd in ["push", "smoke", "doctor"] {
            let o = run(bin().args([cmd, url.as_str()]), Duration::from_secs(10));
            assert_eq!(o.status.code(), Some(2), "{}", text(&o));
            assert_clean(&texts_of(cmd, &o), &[FAKE_SECRET]);
        }
        let o = run(
            bin().args(["url", "--check", url.as_str()]),
            Duration::from_secs(10),
        );
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert_clean(&texts_of("url --check", &o), &[FAKE_SECRET]);
    }
}

#[test]
fn loose_key_files_draw_a_warning_naming_chmod_600() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("k");
    std::fs::write(&key_file, KEY).unwrap();
    let url = "rtmp://127.0.0.1:9/live/s?txSecret=0&txTime=FFFFFFFF";
    for (mode, warned) in [(0o644, true), (0o640, true), (0o600, false), (0o400, false)] {
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(mode)).unwrap();
        let o = run(
            bin()
                .args(["url", "--check", url, "--key-file"])
                .arg(&key_file),
            Duration::from_secs(10),
        );
        let t = text(&o);
        assert_eq!(t.contains("chmod 600"), warned, "mode {mode:o}: {t}");
        assert!(!t.contains(KEY), "{t}");
    }
    // A key on the command line: warned about, never printed.
    let o = run(
        bin().args(["url", "--check", url, "--key", KEY]),
        Duration::from_secs(10),
    );
    let t = text(&o);
    assert!(t.contains("argv"), "{t}");
    assert!(!t.contains(KEY), "{t}");
    // The callback receiver's key file too.
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut cb = spawn(
        bin()
            .args([
                "callbacks",
                "--listen",
                "127.0.0.1:0",
                "--callback-key-file",
            ])
            .arg(&key_file),
    );
    // Listening: the warning, printed before, is in its output.
    printed_port(&cb, CALLBACKS_AT);
    let _ = cb.0.kill();
    let t = text(&cb.finish(Duration::ZERO));
    assert!(t.contains("chmod 600"), "{t}");
    assert!(!t.contains(KEY), "{t}");
}
