//! `--junit FILE` on smoke, doctor, dup and load (issue 15): the real binary
//! on loopback, its XML validated against the JUnit schema CI systems read
//! (tests/junit.xsd, with Python's xmlschema) and read with junitparser,
//! both independent of pushprobe's writer (tests/junit_read.py).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

const KEY: &str = "0123456789abcdef0123456789abcdef";

/// True when python3 with junitparser and xmlschema is there (CI installs them).
fn have_reader() -> bool {
    if !have("python3") {
        return false;
    }
    let ok = Command::new("python3")
        .args(["-c", "import junitparser, xmlschema"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        if std::env::var_os("CI").is_some() {
            panic!("python3 -m pip install junitparser xmlschema is required under CI (.ci/run)");
        }
        eprintln!("SKIPPED: the Python junitparser / xmlschema are not installed");
    }
    ok
}

/// The one suite of `file`, after the schema accepted the file.
fn read(file: &Path) -> Value {
    let o = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/junit_read.py"))
        .arg(file)
        .output()
        .expect("python3 runs");
    let raw = std::fs::read_to_string(file).unwrap_or_default();
    assert!(o.status.success(), "{}\n{raw}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["suites"].as_array().unwrap().len(), 1, "{v}");
    assert!(!raw.contains(KEY), "key in the JUnit file");
    v["suites"][0].clone()
}

/// (name, result) of each case.
fn cases(suite: &Value) -> Vec<(String, String)> {
    suite["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["result"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn smoke_writes_one_case_passing_or_failing_with_evidence_and_fix() {
    if !have_reader() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ok = dir.path().join("ok.xml");
    let o = run(
        bin()
            .args(["smoke", "--duration", "1s", "--junit"])
            .arg(&ok),
        Duration::from_secs(30),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let s = read(&ok);
    assert_eq!(s["name"], "pushprobe.smoke");
    assert_eq!(cases(&s), pairs(&[("push", "passed")]));
    assert_eq!(
        (s["tests"].as_u64(), s["failures"].as_u64()),
        (Some(1), Some(0))
    );

    // A wrong signature against the local ingest: refused, named, with the fix.
    let serve = Serve::start(&[("PUSHPROBE_KEY", KEY)], &[]);
    let url = signed(serve.port, "s1", "not-the-key", now() + 3600);
    let bad = dir.path().join("bad.xml");
    let o = run(
        bin()
            .env("PUSHPROBE_KEY", KEY)
            .args(["smoke", &url, "--duration", "1s", "--junit"])
            .arg(&bad),
        Duration::from_secs(30),
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let s = read(&bad);
    assert_eq!(cases(&s), pairs(&[("push", "failure")]));
    assert_eq!(s["failures"], 1);
    let c = &s["cases"][0];
    assert_eq!(c["message"], "push bad_secret", "{c}");
    let body = c["text"].as_str().unwrap();
    assert!(
        body.contains("evidence: ") && body.contains("fix: "),
        "{body}"
    );
    let secret = url
        .split("txSecret=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    assert!(
        !std::fs::read_to_string(&bad).unwrap().contains(secret),
        "txSecret in the file"
    );
}

#[test]
fn doctor_writes_one_case_per_step_failures_and_skips_included() {
    if !have_reader() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("doctor.xml");
    // Nothing listens on the port: step 2 fails, step 5 cannot run.
    let url = signed(free_port(), "s1", KEY, now() + 3600);
    let o = run(
        bin()
            .env("PUSHPROBE_KEY", KEY)
            .args(["doctor", &url, "--timeout", "2s", "--junit"])
            .arg(&file),
        Duration::from_secs(30),
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let s = read(&file);
    assert_eq!(s["name"], "pushprobe.doctor");
    let got = cases(&s);
    let names: Vec<&str> = got.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(
        names,
        ["1 cname", "2 network", "3 txtime", "4 txsecret", "5 push"]
    );
    assert_eq!(got[1].1, "failure", "{got:?}");
    assert_eq!(got[4].1, "skipped", "{got:?}");
    assert_eq!((got[2].1.as_str(), got[3].1.as_str()), ("passed", "passed"));
    let network = &s["cases"][1];
    assert!(
        network["text"].as_str().unwrap().contains("fix: "),
        "{network}"
    );
    assert_eq!(s["tests"], 5);
    assert_eq!(s["failures"], 1);
}

#[test]
fn dup_writes_the_pair_as_one_case() {
    if !have_reader() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dup.xml");
    let o = run(
        bin().args(["dup", "--hold", "3s", "--junit"]).arg(&file),
        Duration::from_secs(40),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let s = read(&file);
    assert_eq!(s["name"], "pushprobe.dup");
    assert_eq!(cases(&s), pairs(&[("duplicate push refused", "passed")]));
    let out = s["cases"][0]["system_out"].as_str().unwrap();
    assert!(out.contains("second push: already_in_use"), "{out}");
}

#[test]
fn load_writes_outcomes_lag_and_callbacks() {
    if !have_reader() {
        return;
    }
    let serve = Serve::start(&[("PUSHPROBE_KEY", KEY)], &[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("load.xml");
    let o = run(
        bin()
            .env("PUSHPROBE_KEY", KEY)
            .args([
                "load",
                "--domain",
                "127.0.0.1",
                "--port",
                &serve.port.to_string(),
            ])
            .args(["--publishers", "5", "--duplicates", "1", "--duration", "2s"])
            .args(["--progress", "none", "--junit"])
            .arg(&file),
        Duration::from_secs(40),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let s = read(&file);
    assert_eq!(s["name"], "pushprobe.load");
    assert_eq!(
        cases(&s),
        pairs(&[
            ("outcomes", "passed"),
            ("lag", "passed"),
            ("callbacks", "skipped")
        ])
    );
    let out = s["cases"][0]["system_out"].as_str().unwrap();
    assert!(
        out.contains("accepted=5") && out.contains("refused 1"),
        "{out}"
    );

    // An unreachable ingest: the outcomes case fails naming what happened.
    let file = dir.path().join("down.xml");
    let o = run(
        bin()
            .env("PUSHPROBE_KEY", KEY)
            .args([
                "load",
                "--domain",
                "127.0.0.1",
                "--port",
                &free_port().to_string(),
            ])
            .args(["--publishers", "2", "--duration", "1s", "--timeout", "2s"])
            .args(["--progress", "none", "--junit"])
            .arg(&file),
        Duration::from_secs(40),
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let s = read(&file);
    assert_eq!(cases(&s)[0], ("outcomes".into(), "failure".into()));
    let c = &s["cases"][0];
    assert_eq!(c["message"], "0 of 2 accepted", "{c}");
    assert!(
        c["text"].as_str().unwrap().contains("connection_refused=2"),
        "{c}"
    );
}
