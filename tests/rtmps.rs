//! rtmps:// (issue 2): a TLS terminator on loopback with a self-signed
//! certificate in front of the embedded ingest. `--insecure` pushes through;
//! without it the certificate is refused and the push is `tls_failed`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use tokio::net::TcpListener;

/// Accepts TLS on a free port and pipes each connection to `backend`.
async fn tls_proxy(backend: std::net::SocketAddr) -> u16 {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let der = rustls::pki_types::CertificateDer::from(cert.cert.der().to_vec());
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![der], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut up) = tokio::net::TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmps_push_through_tls_with_insecure_and_refused_without() {
    let ingest = pushprobe::ingest::spawn(pushprobe::ingest::IngestConfig::default())
        .await
        .unwrap();
    let port = tls_proxy(ingest.rtmp_addr).await;
    let url = format!("rtmps://localhost:{port}/live/secure");
    let ok = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            run(
                bin().args(["push", &url, "--insecure", "--duration", "2s", "--json"]),
                Duration::from_secs(20),
            )
        }
    })
    .await
    .unwrap();
    let v: serde_json::Value =
        serde_json::from_slice(&ok.stdout).unwrap_or_else(|_| panic!("{}", text(&ok)));
    assert_eq!(ok.status.code(), Some(0), "{v}");
    assert_eq!(v["outcome"], "accepted");
    assert!(
        v["phases_ms"]["tls"].as_f64().is_some(),
        "TLS phase timed: {v}"
    );
    // The media went through the TLS terminator to the ingest: it recorded
    // the push ending normally (errcode 1) after streaming.
    let record = wait_until("the ingest's record of the push", READY, &[], || {
        ingest
            .state()
            .registry()
            .records()
            .into_iter()
            .find(|r| r.stream == "secure")
    });
    assert_eq!(record.errcode, pushprobe::errcode::Errcode(1), "{record:?}");
    assert!(record.push_duration_ms > 0, "{record:?}");

    let refused = tokio::task::spawn_blocking(move || {
        run(
            bin().args(["push", &url, "--duration", "2s", "--json"]),
            Duration::from_secs(20),
        )
    })
    .await
    .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&refused.stdout).unwrap();
    assert_eq!(refused.status.code(), Some(1), "{v}");
    assert_eq!(v["outcome"], "tls_failed", "{v}");
    assert_eq!(v["step"], 2);
}
