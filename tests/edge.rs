//! Pushing to a chosen edge (issue 16): `--resolve` / `--connect-to` send the
//! TCP connection to the address given while tcUrl, the TLS server name and
//! the signature keep the URL's domain; `--tx-host`; `load --resolve` round
//! robin. Two ingests on 127.0.0.1 and 127.0.0.2, a domain that resolves
//! nowhere (`.invalid`), nginx-rtmp with an on_publish hook that refuses a
//! bare IP in tcUrl, a TLS terminator that records the server name sent.

mod common;

use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::Value;

const NOWHERE: &str = "push.edge.invalid";

fn push_json(args: &[&str]) -> (Output, Value) {
    let o = run(
        bin()
            .arg("push")
            .args(args)
            .args(["--json", "--duration", "1s"]),
        Duration::from_secs(30),
    );
    let v = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", text(&o)));
    (o, v)
}

#[test]
fn resolve_reaches_each_ingest_for_a_name_that_resolves_nowhere() {
    let (_a, at_a) = Serve::start_on("127.0.0.1:0", &[], &[]);
    let (_b, at_b) = Serve::start_on("127.0.0.2:0", &[], &[]);
    for at in [at_a, at_b] {
        let url = format!("rtmp://{NOWHERE}:{}/live/edge", at.port());
        let rule = format!("{NOWHERE}:{}:{}", at.port(), at.ip());
        let (o, v) = push_json(&[&url, "--resolve", &rule]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        assert_eq!(v["outcome"], "accepted", "{v}");
        assert_eq!(v["remote_addr"], at.to_string(), "{v}");
        assert_eq!(v["forced_by"], format!("--resolve {rule}"), "{v}");
        let o = run(
            bin().args(["push", &url, "--resolve", &rule, "--duration", "1s"]),
            Duration::from_secs(30),
        );
        assert!(
            text(&o).contains(&format!("remote    {at} (forced by --resolve {rule})\n")),
            "{}",
            text(&o)
        );
    }
    // Without it the name does not resolve.
    let url = format!("rtmp://{NOWHERE}:{}/live/edge", at_a.port());
    let (o, v) = push_json(&[&url]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(v["outcome"], "dns_failure", "{v}");
    // --connect-to moves host and port: the URL's default port 1935 goes to
    // the second ingest's address and port.
    let url = format!("rtmp://{NOWHERE}/live/moved");
    let rule = format!("{NOWHERE}:1935:{}:{}", at_b.ip(), at_b.port());
    let (o, v) = push_json(&[&url, "--connect-to", &rule]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(v["remote_addr"], at_b.to_string(), "{v}");
    assert_eq!(v["forced_by"], format!("--connect-to {rule}"), "{v}");
    // A malformed rule is a usage error naming the expected form.
    let o = run(
        bin().args(["push", &url, "--resolve", "nonsense"]),
        Duration::from_secs(10),
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("HOST:PORT:ADDR"), "{}", text(&o));
}

/// The on_publish form body, percent-decoded enough to read tcurl and args.
fn decoded(req: &str) -> String {
    req.replace("%3A", ":")
        .replace("%3a", ":")
        .replace("%2F", "/")
        .replace("%2f", "/")
        .replace("%3D", "=")
        .replace("%3d", "=")
        .replace("%26", "&")
}

#[test]
fn ingest_refusing_a_bare_ip_in_tcurl_accepts_the_domain_through_resolve() {
    if !have("nginx") {
        return;
    }
    // Refuses a push whose tcUrl names 127.0.0.1, unless txHost names the domain.
    let hook = HookServer::start(|req| {
        let r = decoded(req);
        if r.contains("tcurl=rtmp://127.0.0.1") && !r.contains("txHost=push.example.test") {
            403
        } else {
            200
        }
    });
    let ng = Nginx::start(Some(&hook.url));
    let by_ip = format!("rtmp://127.0.0.1:{}/live/tc", ng.port);
    let (o, v) = push_json(&[&by_ip]);
    assert_eq!(o.status.code(), Some(1), "by IP is refused: {v}");
    assert_ne!(v["outcome"], "accepted", "{v}");

    let domain = format!("rtmp://push.example.test:{}/live/tc", ng.port);
    let rule = format!("push.example.test:{}:127.0.0.1", ng.port);
    let (o, v) = push_json(&[&domain, "--resolve", &rule]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(v["outcome"], "accepted", "{v}");
    let seen = hook.requests.lock().unwrap().clone();
    let want = format!("tcurl=rtmp://push.example.test:{}/live", ng.port);
    assert!(
        seen.iter().any(|r| decoded(r).contains(&want)),
        "the hook saw the domain in tcUrl: {seen:#?}"
    );

    // By IP with --tx-host: the domain travels as txHost=, and is accepted.
    let (o, v) = push_json(&[&by_ip, "--tx-host=push.example.test"]);
    assert_eq!(o.status.code(), Some(0), "{v}");
    let last = decoded(hook.requests.lock().unwrap().last().unwrap());
    assert!(last.contains("txHost=push.example.test"), "{last}");
}

#[test]
fn load_resolve_spreads_publishers_round_robin() {
    let (_a, at_a) = Serve::start_on("127.0.0.1:0", &[], &[]);
    let port = at_a.port();
    let (_b, at_b) = Serve::start_on(&format!("127.0.0.2:{port}"), &[], &[]);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("load.json");
    let template = format!("rtmp://{NOWHERE}:{port}/live/rr{{i}}");
    let rule = format!("{NOWHERE}:{port}:127.0.0.1,127.0.0.2");
    let o = run(
        bin()
            .args(["load", "--url-template", &template, "--progress", "none"])
            .args(["--publishers", "4", "--rate", "0", "--duration", "1s"])
            .args(["--resolve", &rule, "--json-out"])
            .arg(&json),
        Duration::from_secs(60),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    for at in [at_a, at_b] {
        assert_eq!(
            v["by_address"][at.to_string()]["publishers"],
            2,
            "two of four on each: {}",
            v["by_address"]
        );
    }
}

/// A TLS terminator with a self-signed certificate for `name`, piping to
/// `backend`; records the server name (SNI) each client sent.
async fn tls_proxy(
    name: &str,
    backend: std::net::SocketAddr,
) -> (u16, Arc<Mutex<Vec<Option<String>>>>) {
    let cert = rcgen::generate_simple_self_signed(vec![name.into()]).unwrap();
    let der = rustls::pki_types::CertificateDer::from(cert.cert.der().to_vec());
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![der], key)
            .unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let names = Arc::new(Mutex::new(Vec::new()));
    let seen = names.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (config, seen) = (config.clone(), seen.clone());
            tokio::spawn(async move {
                let acceptor =
                    tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp);
                let Ok(start) = acceptor.await else { return };
                let sni = start.client_hello().server_name().map(str::to_owned);
                seen.lock().unwrap().push(sni);
                let Ok(mut tls) = start.into_stream(config).await else {
                    return;
                };
                let Ok(mut up) = tokio::net::TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
            });
        }
    });
    (port, names)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmps_with_resolve_checks_the_certificate_against_the_domain() {
    let ingest = pushprobe::ingest::spawn(pushprobe::ingest::IngestConfig::default())
        .await
        .unwrap();
    let (port, names) = tls_proxy(NOWHERE, ingest.rtmp_addr).await;
    let url = format!("rtmps://{NOWHERE}:{port}/live/tls");
    let rule = format!("{NOWHERE}:{port}:127.0.0.1");
    let push = |extra: &'static [&'static str]| {
        let (url, rule) = (url.clone(), rule.clone());
        tokio::task::spawn_blocking(move || {
            let mut c = bin();
            c.args([
                "push",
                &url,
                "--resolve",
                &rule,
                "--json",
                "--duration",
                "1s",
            ])
            .args(extra);
            run(&mut c, Duration::from_secs(20))
        })
    };
    // The certificate is checked (and this self-signed one refused) even
    // though the address was forced; the name sent is the domain, not the IP.
    let o = push(&[]).await.unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", text(&o)));
    assert_eq!(o.status.code(), Some(1), "{v}");
    assert_eq!(v["outcome"], "tls_failed", "{v}");
    assert_eq!(v["remote_addr"], format!("127.0.0.1:{port}"), "{v}");
    assert_eq!(
        names.lock().unwrap().as_slice(),
        [Some(NOWHERE.to_string())]
    );
    // With --insecure the same forced push goes through, still naming the domain.
    let o = push(&["--insecure"]).await.unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", text(&o)));
    assert_eq!(o.status.code(), Some(0), "{v}");
    assert_eq!(v["outcome"], "accepted", "{v}");
    assert_eq!(names.lock().unwrap().len(), 2);
    assert_eq!(names.lock().unwrap()[1].as_deref(), Some(NOWHERE));
}

#[test]
fn doctor_each_address_reports_every_edge_and_fails_naming_the_dead_one() {
    let (_a, at_a) = Serve::start_on("127.0.0.1:0", &[], &[]);
    let port = at_a.port();
    let (_b, at_b) = Serve::start_on(&format!("127.0.0.2:{port}"), &[], &[]);
    let dead = format!("127.0.0.3:{port}");
    let url = format!("rtmp://{NOWHERE}:{port}/live/each");
    let doctor = |rule: &str| {
        let o = run(
            bin()
                .args([
                    "doctor",
                    &url,
                    "--json",
                    "--each-address",
                    "--duration",
                    "1s",
                ])
                .args(["--resolve", rule]),
            Duration::from_secs(60),
        );
        let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", text(&o)));
        (o, v)
    };
    let lines = |v: &Value, step: u64| -> Vec<(String, String)> {
        v["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["step"] == step)
            .map(|s| {
                (
                    s["status"].as_str().unwrap().to_string(),
                    s["detail"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    // Two live edges: a network and a push line for each, all pass.
    let (o, v) = doctor(&format!("{NOWHERE}:{port}:127.0.0.1,127.0.0.2"));
    let step1 = &lines(&v, 1)[0];
    assert!(
        step1
            .1
            .starts_with(&format!("addresses forced by --resolve {NOWHERE}:{port}:")),
        "{v}"
    );
    let net = lines(&v, 2);
    let push = lines(&v, 5);
    assert_eq!(net.len(), 2, "{v}");
    assert_eq!(push.len(), 2, "{v}");
    for (i, at) in [at_a, at_b].iter().enumerate() {
        assert_eq!(net[i].0, "pass", "{v}");
        assert!(
            net[i].1.starts_with(&format!("connected to {at} in ")),
            "{v}"
        );
        assert_eq!(push[i].0, "pass", "{v}");
        assert!(push[i].1.starts_with(&format!("{at}: accepted")), "{v}");
    }
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!v["verdict"].as_str().unwrap().contains("failed at"), "{v}");

    // A dead third edge: its network line fails, its push is skipped, and
    // the verdict fails naming it.
    let (o, v) = doctor(&format!("{NOWHERE}:{port}:127.0.0.1,127.0.0.3,127.0.0.2"));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let net = lines(&v, 2);
    assert_eq!(net.len(), 3, "{v}");
    assert_eq!(net[1].0, "fail", "{v}");
    assert!(
        net[1].1.contains("nothing listens on port") && net[1].1.contains("127.0.0.3"),
        "{v}"
    );
    let push = lines(&v, 5);
    assert_eq!(
        push[1],
        (
            "skip".to_string(),
            format!("not run: {dead} does not answer (step 2)")
        )
    );
    assert_eq!(push[0].0, "pass", "{v}");
    assert_eq!(push[2].0, "pass", "{v}");
    assert!(
        v["verdict"]
            .as_str()
            .unwrap()
            .ends_with(&format!("failed at {dead}")),
        "{v}"
    );
}
