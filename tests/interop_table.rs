//! README's "Tested against" tables match the last interop run (issue 11):
//! `scripts/interop-table --check README.md` over target/interop-results/,
//! which tests/interop*.rs write. Cargo runs test files in name order, so in
//! `cargo test` this runs after interop, interop_clients and interop_packets.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::peers::{require, results_dir};
use common::{have, run, text};

#[test]
fn readme_tested_against_matches_the_last_interop_run() {
    if !have("python3") {
        return;
    }
    let any = std::fs::read_dir(results_dir())
        .map(|d| {
            d.flatten()
                .any(|e| e.path().extension().is_some_and(|x| x == "json"))
        })
        .unwrap_or(false);
    if !require("interop results (run the interop tests first)", any) {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = run(
        Command::new("python3")
            .arg(root.join("scripts/interop-table"))
            .arg("--results")
            .arg(results_dir())
            .arg("--check")
            .arg(root.join("README.md")),
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        !text(&out).contains("failed in the last run"),
        "{}",
        text(&out)
    );
}

/// The renderer itself: a failed check shows FAIL, a missing one says why.
#[test]
fn interop_table_renders_fail_and_not_run() {
    if !have("python3") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let r = |peer: &str, check: &str, result: &str| serde_json::json!({"peer": peer, "version": "1.0", "check": check, "result": result, "measured": ""});
    for (i, v) in [
        r("nginx-rtmp", "push", "pass"),
        r("nginx-rtmp", "load", "fail"),
    ]
    .iter()
    .enumerate()
    {
        std::fs::write(dir.path().join(format!("{i}.json")), v.to_string()).unwrap();
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = run(
        Command::new("python3")
            .arg(root.join("scripts/interop-table"))
            .arg("--results")
            .arg(dir.path()),
        Duration::from_secs(30),
    );
    let t = text(&out);
    let row = t.lines().find(|l| l.contains("nginx-rtmp (C")).expect(&t);
    assert!(row.starts_with("| nginx-rtmp (C; Debian nginx-light + libnginx-mod-rtmp) | 1.0 | pass | not run: no result | not run: no result | FAIL |"), "{row}");
    assert!(
        t.contains("failed in the last run: nginx-rtmp / load"),
        "{t}"
    );
    assert!(
        t.contains("| Node-Media-Server (Node.js; npm node-media-server) | - |"),
        "{t}"
    );
}
