//! The committed `schemas/commands.json` describes what `push`, `smoke`,
//! `dup` and `doctor` print with `--json`: real output of each, accepted and
//! refused, validates; the schema's outcome and phase lists match the code's.

mod common;

use std::time::Duration;

use common::{Serve, bin, now, run, signed};
use pushprobe::classify::Outcome;
use pushprobe::publish::Phase;
use serde_json::{Value, json};

fn schema(def: &str) -> jsonschema::Validator {
    common::command_schema(def)
}

/// Runs the binary and parses its one line of JSON; checks the exit code.
fn json_of(args: &[&str], env: &[(&str, &str)], code: i32) -> Value {
    let mut c = bin();
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = run(&mut c, Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{args:?}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{args:?}: {e}: {stdout}"))
}

fn assert_valid(v: &jsonschema::Validator, doc: &Value) {
    let errors: Vec<String> = v.iter_errors(doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}\n{doc:#}");
}

#[test]
fn enums_match_the_code() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schemas/commands.json"
    ))
    .unwrap();
    let s: Value = serde_json::from_str(&text).unwrap();
    let outcomes: Vec<Value> = Outcome::ALL.iter().map(|o| json!(o.name())).collect();
    assert_eq!(s["$defs"]["outcome"]["enum"], json!(outcomes));
    let phases: Vec<Value> = Phase::TIMED
        .iter()
        .chain([&Phase::Streaming])
        .map(|p| json!(p.name()))
        .collect();
    assert_eq!(s["$defs"]["phase"]["enum"], json!(phases));
}

#[test]
fn push_and_smoke_output_validates() {
    let push = schema("push");
    // Accepted, against the embedded ingest.
    let v = json_of(&["smoke", "--duration", "1s", "--json"], &[], 0);
    assert_eq!(v["outcome"], "accepted");
    assert!(v["phases_ms"]["publish"].is_number(), "{v}");
    assert_valid(&push, &v);

    // Refused with a reason, against pushprobe serve.
    let key = "schema-key";
    let serve = Serve::start(&[("PUSHPROBE_KEY", key)], &[]);
    let expired = signed(serve.port, "old", key, now() - 60);
    let v = json_of(
        &["push", &expired, "--duration", "1s", "--json"],
        &[("PUSHPROBE_KEY", key)],
        1,
    );
    assert_eq!(v["outcome"], "expired_url");
    assert_eq!(v["phase"], "publish");
    assert_eq!(v["step"], 3);
    assert!(!v["url"].as_str().unwrap().contains(key));
    assert_valid(&push, &v);

    // Nothing listening: no phases past dns, no status.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let v = json_of(
        &[
            "push",
            &format!("rtmp://127.0.0.1:{closed}/live/x"),
            "--timeout",
            "2s",
            "--json",
        ],
        &[],
        1,
    );
    assert_eq!(v["outcome"], "connection_refused");
    assert_eq!(v["server_status"], Value::Null);
    assert_valid(&push, &v);
}

#[test]
fn dup_and_doctor_output_validates() {
    let v = json_of(&["dup", "--hold", "3s", "--json"], &[], 0);
    assert_eq!(v["verdict"], "pass");
    assert_eq!(v["finding"], "refused");
    assert_eq!(v["second"]["outcome"], "already_in_use");
    assert_valid(&schema("dup"), &v);

    let key = "schema-key-2";
    let serve = Serve::start(&[("PUSHPROBE_KEY", key)], &[]);
    let url = signed(serve.port, "doc", key, now() + 48 * 3600);
    let v = json_of(
        &["doctor", &url, "--duration", "1s", "--json"],
        &[("PUSHPROBE_KEY", key)],
        0,
    );
    assert_eq!(v["steps"].as_array().unwrap().len(), 5);
    assert_eq!(v["verdict"], "ok");
    assert_valid(&schema("doctor"), &v);
}
