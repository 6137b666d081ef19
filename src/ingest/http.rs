//! The ingest's HTTP view: `GET /streams` (live pushes), `GET /records`
//! (refusals and interruptions) and `GET /health`, as JSON, served with a
//! lingering close after early answers.

use std::io;
use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use super::IngestState;
use super::registry::{Record, StreamView};
use crate::callback::{ServeOptions, serve_router};

pub fn router(state: Arc<IngestState>) -> Router {
    Router::new()
        .route("/streams", get(streams))
        .route("/records", get(records))
        .route("/health", get(health))
        .with_state(state)
}

/// Serves [`router`] on `listener` until `shutdown` completes, on the callback
/// receiver's server: header timeout, connection cap, and a lingering close so
/// a 404 or 405 reaches a client still sending a body.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<IngestState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let opts = ServeOptions::default();
    serve_router(listener, router(state), opts, shutdown, |_, _| {}).await
}

async fn streams(State(state): State<Arc<IngestState>>) -> Json<Vec<StreamView>> {
    Json(state.registry().streams())
}

async fn records(State(state): State<Arc<IngestState>>) -> Json<Vec<Record>> {
    Json(state.registry().records())
}

async fn health(State(state): State<Arc<IngestState>>) -> Json<serde_json::Value> {
    let callbacks = state.config().notifier.as_ref().map(|n| n.stats());
    Json(serde_json::json!({
        "status": "ok",
        "live_streams": state.registry().live_count(),
        "callbacks": callbacks,
    }))
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::SystemTime;

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;
    use crate::ingest::registry::{DuplicateMode, Flags, Publisher, RecordOf};
    use crate::ingest::{IngestConfig, Refusal};

    async fn get_json(app: Router, path: &str) -> serde_json::Value {
        let resp = app
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&body).unwrap()
    }

    #[tokio::test]
    async fn streams_records_and_health() {
        let state = Arc::new(IngestState::new(IngestConfig::default()));
        let client: SocketAddr = "10.0.0.7:5000".parse().unwrap();
        let p = Publisher::new(
            7,
            "cam",
            "live",
            client,
            "txSecret=0123&txTime=AB",
            SystemTime::now(),
            Flags::default(),
        );
        let claim = state.registry().claim(p, DuplicateMode::Reject).unwrap();
        claim.publisher.set_dimensions(640, 360);
        claim.publisher.add_bytes(42);
        let of = RecordOf {
            stream: "cam",
            app: "live",
            client,
            flags: Flags::default(),
            video: None,
        };
        state
            .registry()
            .record(super::super::registry::Record::refusal(
                of,
                SystemTime::now(),
                &Refusal::new(crate::errcode::SubErrcode(601), "in use"),
            ));

        let app = router(state.clone());
        let streams = get_json(app.clone(), "/streams").await;
        let s = &streams[0];
        assert_eq!(s["stream"], "cam");
        assert_eq!(s["client"], "10.0.0.7:5000");
        assert_eq!(
            (s["width"].as_u64(), s["height"].as_u64()),
            (Some(640), Some(360))
        );
        assert_eq!(s["bytes"], 42);
        assert_eq!(s["query"], "txSecret=***&txTime=AB");
        assert!(s["started"].as_str().unwrap().ends_with('Z'));
        assert!(s["bitrate_bps"].is_u64());
        assert!(s["started_unix_ms"].as_u64().unwrap() > 1_600_000_000_000);

        let records = get_json(app.clone(), "/records").await;
        assert_eq!(records[0]["errcode"], 18);
        assert_eq!(records[0]["sub_errcode"], 601);
        assert_eq!(records[0]["flags"], serde_json::json!([]));

        let health = get_json(app, "/health").await;
        assert_eq!(health["status"], "ok");
        assert_eq!(health["live_streams"], 1);
    }
}
