//! The ingest's HTTP view: `GET /streams` (live pushes and their viewers),
//! `GET /records` (refusals and interruptions) and `GET /health`, as JSON,
//! and HTTP-FLV play (`GET /APP/STREAM.flv`), served with a lingering close
//! after early answers.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::{Bytes, BytesMut};
use hyper::body::Frame;

use super::playout::{FLV_HEADER, MediaTag, Viewer, ViewerEnd, ViewerKind};
use super::registry::{Record, StreamView};
use super::{IngestState, PlayDenied};
use crate::callback::{ServeOptions, serve_router};

pub fn router(state: Arc<IngestState>) -> Router {
    Router::new()
        .route("/streams", get(streams))
        .route("/records", get(records))
        .route("/health", get(health))
        .route("/{app}/{file}", get(play_flv))
        .with_state(state)
}

/// `GET /APP/STREAM.flv[?txSecret=..&txTime=..]`: the stream as FLV, from
/// its last keyframe, until the publisher leaves (the body ends) or the
/// viewer reads too slowly (the connection is aborted). 404 when the stream
/// is not live, 403 when play authentication refuses the URL.
async fn play_flv(
    State(state): State<Arc<IngestState>>,
    Path((app, file)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(stream) = file.strip_suffix(".flv") else {
        return (
            StatusCode::NOT_FOUND,
            "not found: play URLs are /APP/STREAM.flv\n",
        )
            .into_response();
    };
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let query = query.unwrap_or_default();
    match state.play(&app, stream, &query, ViewerKind::Flv, now) {
        Ok(viewer) => (
            [
                (header::CONTENT_TYPE, "video/x-flv"),
                (header::CACHE_CONTROL, "no-cache"),
                (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
            ],
            Body::new(FlvBody::new(viewer)),
        )
            .into_response(),
        Err(PlayDenied::NotFound) => (
            StatusCode::NOT_FOUND,
            format!("stream {stream:?} is not live\n"),
        )
            .into_response(),
        Err(PlayDenied::Refused(r)) => {
            (StatusCode::FORBIDDEN, format!("{}\n", r.errmsg)).into_response()
        }
    }
}

/// Live tags sent in one body frame, at most.
const LIVE_BATCH: usize = 64;

/// An FLV body fed by a viewer: the file header, the startup tags, then
/// live tags, each the tag's shared framing.
struct FlvBody {
    header: bool,
    startup: VecDeque<Arc<MediaTag>>,
    viewer: Viewer,
}

impl FlvBody {
    fn new(mut viewer: Viewer) -> FlvBody {
        FlvBody {
            header: false,
            startup: std::mem::take(&mut viewer.startup).into(),
            viewer,
        }
    }
}

impl hyper::body::Body for FlvBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        if !this.header {
            this.header = true;
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&FLV_HEADER)))));
        }
        loop {
            if let Some(tag) = this.startup.pop_front() {
                if tag.fits_flv() {
                    return Poll::Ready(Some(Ok(Frame::data(tag.flv().clone()))));
                }
                continue;
            }
            // Live tags: whatever is queued, in one frame (one chunk, one
            // write) rather than a frame per tag.
            let mut batch = Vec::new();
            match this.viewer.poll_batch(cx, &mut batch, LIVE_BATCH) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(())) => {}
                // The stream is over: a clean end of the body.
                Poll::Ready(Err(ViewerEnd::PublisherLeft)) => return Poll::Ready(None),
                // Too slow: abort, so the viewer sees a cut, not an end.
                Poll::Ready(Err(ViewerEnd::Dropped)) => {
                    return Poll::Ready(Some(Err(io::Error::other(
                        "viewer dropped: it read slower than the stream",
                    ))));
                }
            }
            let tags: Vec<&Bytes> = batch
                .iter()
                .filter(|t| t.fits_flv())
                .map(|t| t.flv())
                .collect();
            let data = match tags.as_slice() {
                [] => continue,
                [one] => (*one).clone(),
                many => {
                    let mut out = BytesMut::with_capacity(many.iter().map(|b| b.len()).sum());
                    for b in many {
                        out.extend_from_slice(b);
                    }
                    out.freeze()
                }
            };
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
    }
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

    #[tokio::test]
    async fn http_flv_plays_from_the_fanout_404_when_not_live_403_unsigned() {
        let config = IngestConfig {
            play_keys: crate::sign::Keys {
                primary: Some(crate::secret::Secret::new("pk".into())),
                backup: None,
            },
            ..IngestConfig::default()
        };
        let state = Arc::new(IngestState::new(config));
        let client: SocketAddr = "10.0.0.7:5000".parse().unwrap();
        let p = Publisher::new(
            1,
            "cam",
            "live",
            client,
            "",
            SystemTime::now(),
            Flags::default(),
        );
        let claim = state.registry().claim(p, DuplicateMode::Reject).unwrap();
        claim
            .fanout
            .push(MediaTag::new(9, 0, Bytes::from_static(&[0x17, 0, 0, 0, 0])));
        claim.fanout.push(MediaTag::new(
            9,
            40,
            Bytes::from_static(&[0x17, 1, 0, 0, 0, 7]),
        ));
        let get = |path: &str| {
            router(state.clone()).oneshot(Request::get(path).body(Body::empty()).unwrap())
        };
        let status = |path: &'static str| async move { get(path).await.unwrap().status() };
        // Authentication first: an unsigned URL learns nothing of what is live.
        assert_eq!(status("/live/nobody.flv").await, StatusCode::FORBIDDEN);
        assert_eq!(status("/other/cam.flv").await, StatusCode::NOT_FOUND);
        assert_eq!(status("/live/cam.mp4").await, StatusCode::NOT_FOUND);
        assert_eq!(status("/live/cam.flv").await, StatusCode::FORBIDDEN);
        let t = format!("{:X}", crate::clock::now_unix() + 600);
        // Signed independently of sign.rs: MD5 over key + stream + txTime.
        let signed = |stream: &str| {
            use md5::{Digest, Md5};
            let secret = hex::encode(Md5::digest(format!("pk{stream}{t}").as_bytes()));
            format!("/live/{stream}.flv?txSecret={secret}&txTime={t}")
        };
        let nobody = get(&signed("nobody")).await.unwrap();
        assert_eq!(nobody.status(), StatusCode::NOT_FOUND);
        let resp = get(&signed("cam")).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], "video/x-flv");
        assert_eq!(state.registry().streams()[0].viewers.flv, 1);
        // The publisher leaves: the body ends after what was cached.
        assert!(state.registry().release("cam", 1));
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..13], &FLV_HEADER);
        let mut want = FLV_HEADER.to_vec();
        want.extend_from_slice(&[
            9, 0, 0, 5, 0, 0, 40, 0, 0, 0, 0, 0x17, 0, 0, 0, 0, 0, 0, 0, 16,
        ]);
        want.extend_from_slice(&[
            9, 0, 0, 6, 0, 0, 40, 0, 0, 0, 0, 0x17, 1, 0, 0, 0, 7, 0, 0, 0, 17,
        ]);
        assert_eq!(
            &body[..],
            &want[..],
            "header, then the sequence header and keyframe at 40"
        );
    }
}
