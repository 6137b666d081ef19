//! The receiver's HTTP app: POST only (on one path if configured), the body
//! limit and timeout, and the JSON answers.

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::json;

use super::state::{MAX_BODY, ReceiverState, Reject};

/// The receiver app: POST on any path (or only the configured one).
pub fn router(state: ReceiverState) -> Router {
    Router::new().fallback(handle).with_state(state)
}

fn error_reply(status: StatusCode, msg: &str) -> Response {
    let body = json!({ "code": status.as_u16(), "error": msg });
    (status, Json(body)).into_response()
}

async fn handle(State(state): State<ReceiverState>, req: Request) -> Response {
    let arrived = Instant::now();
    if let Some(path) = state.path()
        && req.uri().path() != path
    {
        return error_reply(StatusCode::NOT_FOUND, "no callback receiver at this path");
    }
    if req.method() != Method::POST {
        let mut resp = error_reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "callbacks are sent with POST",
        );
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return resp;
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let body = if declared.is_some_and(|n| n > MAX_BODY as u64) {
        Err(Reject::TooLarge)
    } else {
        read_body(req.into_body(), state.body_timeout()).await
    };
    let result = match body {
        Ok(bytes) => state.accept(&bytes, arrived),
        Err(r) => {
            state.note_reject(&r);
            Err(r)
        }
    };
    match result {
        Ok(_) => (StatusCode::OK, Json(json!({ "code": 0 }))).into_response(),
        Err(r) => error_reply(r.status(), &r.to_string()),
    }
}

async fn read_body(body: Body, limit: Duration) -> Result<Bytes, Reject> {
    match tokio::time::timeout(limit, Limited::new(body, MAX_BODY).collect()).await {
        Err(_) => Err(Reject::Timeout),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<LengthLimitError>() => Err(Reject::TooLarge),
        Ok(Err(e)) => Err(Reject::Malformed(format!("could not read the body: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::super::event::{EVENT_INTERRUPT, EVENT_PUSH};
    use super::super::samples::*;
    use super::super::state::{Counters, ReceiverConfig, test_config as config};
    use super::*;
    use crate::secret::Secret;
    use crate::sign;
    use serde_json::{Value, json};
    use std::convert::Infallible;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tower::ServiceExt;

    async fn send(app: &Router, method: Method, path: &str, body: Body) -> (StatusCode, String) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body)
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    async fn post(app: &Router, body: impl Into<Body>) -> (StatusCode, String) {
        send(app, Method::POST, "/callback", body.into()).await
    }

    #[tokio::test]
    async fn push_and_interrupt_are_accepted_counted_and_published() {
        let (state, mut rx) = ReceiverState::new(config());
        let app = router(state.clone());
        assert_eq!(
            post(&app, push_event("2210464508206756938")).await,
            (StatusCode::OK, r#"{"code":0}"#.to_string())
        );
        assert_eq!(
            post(&app, interrupt_event("2210464508206756938")).await,
            (StatusCode::OK, r#"{"code":0}"#.to_string())
        );
        let c = state.counters();
        assert_eq!((c.accepted_push, c.accepted_interrupt), (1, 1));
        assert_eq!(
            c,
            Counters {
                accepted_push: 1,
                accepted_interrupt: 1,
                ..Counters::default()
            }
        );

        let started = rx.try_recv().unwrap();
        assert!(!started.duplicate);
        let ev = &started.event;
        assert_eq!(ev.event_type, Some(EVENT_PUSH));
        assert_eq!(ev.appid, 12345678);
        assert_eq!(ev.app, "test.domain.com");
        assert_eq!((ev.width, ev.height), (720, 1280));
        assert_eq!(ev.idc_id, Some(34));
        assert_eq!(ev.push_duration, None);
        let ended = rx.try_recv().unwrap();
        assert_eq!(ended.event.event_type, Some(EVENT_INTERRUPT));
        assert_eq!(ended.event.sequence, ev.sequence);
        assert_eq!(ended.event.push_duration, Some(128_581));
        assert_eq!(ended.event.errcode, 1);
        assert!(ended.arrived >= started.arrived);
        assert!(rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn forged_and_stale_are_403_and_not_published() {
        let (state, mut rx) = ReceiverState::new(config());
        let app = router(state.clone());
        let mut forged: Value = serde_json::from_str(&push_event("1")).unwrap();
        forged["sign"] = json!(sign::callback_sign(&Secret::new("other".into()), NOW + 600));
        let (status, body) = post(&app, forged.to_string()).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(
            body.starts_with(r#"{"code":403,"error":"sign does not match"#),
            "{body}"
        );

        let stale = signed(json!({"event_type": 1, "sequence": "2"}), NOW - 1);
        let (status, body) = post(&app, stale).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(body.contains("in the past"), "{body}");

        let c = state.counters();
        assert_eq!((c.forged, c.stale, c.accepted_push), (1, 1, 0));
        assert!(rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn malformed_bodies_are_400() {
        let (state, mut rx) = ReceiverState::new(config());
        let app = router(state.clone());
        let cases = [
            "{not json".to_string(),
            "[1,2,3]".to_string(),
            "\"a string\"".to_string(),
            String::new(),
            r#"{"t": 1703732078}"#.to_string(),
            r#"{"sign": "abc"}"#.to_string(),
            r#"{"t": -5, "sign": "abc"}"#.to_string(),
            r#"{"t": 17037320.5, "sign": "abc"}"#.to_string(),
            signed(json!({"width": {"a": 1}}), NOW + 600),
            signed(json!({"appid": -1}), NOW + 600),
        ];
        for case in &cases {
            let (status, body) = post(&app, case.clone()).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{case}");
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["code"], 400, "{case}");
            assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{case}");
        }
        assert_eq!(state.counters().malformed, cases.len() as u64);
        assert!(rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn oversized_body_is_413() {
        let (state, _rx) = ReceiverState::new(config());
        let app = router(state.clone());
        let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(100 * 1024));
        let req = Request::builder()
            .method(Method::POST)
            .uri("/")
            .header(header::CONTENT_LENGTH, big.len())
            .body(Body::from(big.clone()))
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert!(body.starts_with(br#"{"code":413"#));
        // The same without a Content-Length: the limit is enforced while reading.
        let req = Request::builder()
            .method(Method::POST)
            .uri("/")
            .body(Body::new(OneFrame(Some(Bytes::from(big)))))
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(state.counters().oversized, 2);
    }

    /// A body of one frame with no size hint, like a chunked upload.
    struct OneFrame(Option<Bytes>);

    impl hyper::body::Body for OneFrame {
        type Data = Bytes;
        type Error = Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
            Poll::Ready(self.0.take().map(|b| Ok(hyper::body::Frame::data(b))))
        }
    }

    #[tokio::test]
    async fn stalled_body_times_out() {
        struct Stalled;
        impl hyper::body::Body for Stalled {
            type Data = Bytes;
            type Error = Infallible;
            fn poll_frame(
                self: Pin<&mut Self>,
                _: &mut Context<'_>,
            ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
                Poll::Pending
            }
        }
        let (state, _rx) = ReceiverState::new(ReceiverConfig {
            body_timeout: Duration::from_millis(50),
            ..config()
        });
        let app = router(state.clone());
        let (status, _) = post(&app, Body::new(Stalled)).await;
        assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
        assert_eq!(state.counters().timed_out, 1);
    }

    #[tokio::test]
    async fn duplicates_are_200_counted_and_flagged() {
        let (state, mut rx) = ReceiverState::new(config());
        let app = router(state.clone());
        for _ in 0..2 {
            assert_eq!(post(&app, push_event("77")).await.0, StatusCode::OK);
        }
        // Same sequence, other event type: not a duplicate.
        assert_eq!(post(&app, interrupt_event("77")).await.0, StatusCode::OK);
        let c = state.counters();
        assert_eq!(
            (c.accepted_push, c.accepted_interrupt, c.duplicates),
            (1, 1, 1)
        );
        let flags: Vec<bool> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|r| r.duplicate)
            .collect();
        assert_eq!(flags, [false, true, false]);
    }

    #[tokio::test]
    async fn path_restriction_and_methods() {
        let (state, _rx) = ReceiverState::new(ReceiverConfig {
            path: Some("cb".into()),
            ..config()
        });
        let app = router(state.clone());
        let body = || Body::from(push_event("9"));
        assert_eq!(
            send(&app, Method::POST, "/cb", body()).await.0,
            StatusCode::OK
        );
        assert_eq!(
            send(&app, Method::POST, "/cb?x=1", body()).await.0,
            StatusCode::OK
        );
        let (status, text) = send(&app, Method::POST, "/other", body()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(text.starts_with(r#"{"code":404"#));
        assert_eq!(
            send(&app, Method::GET, "/cb", Body::empty()).await.0,
            StatusCode::METHOD_NOT_ALLOWED
        );

        let (any, _rx) = ReceiverState::new(config());
        let app = router(any);
        assert_eq!(
            send(&app, Method::POST, "/anything/at/all", body()).await.0,
            StatusCode::OK
        );
        let req = Request::builder()
            .method(Method::PUT)
            .uri("/")
            .body(Body::empty())
            .unwrap();
        let resp = app.oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(resp.headers()[header::ALLOW], "POST");
    }

    #[tokio::test]
    async fn numbers_as_strings_and_strings_as_numbers() {
        let (state, mut rx) = ReceiverState::new(config());
        let app = router(state.clone());
        let t = (NOW + 600).to_string();
        let body = json!({
            "appid": "12345678", "event_type": "0", "event_time": "1703731606",
            "sequence": 2210464508206756938u64, "width": "720", "height": 1280.0,
            "errcode": "18", "set_id": " 7 ", "idc_id": "", "push_duration": 1500,
            "node": 3, "user_ip": null, "future_field": [1, "two"],
            "t": t, "sign": sign::callback_sign(&key(), NOW + 600).to_uppercase()
        });
        assert_eq!(post(&app, body.to_string()).await.0, StatusCode::OK);
        let ev = rx.try_recv().unwrap().event;
        assert_eq!(ev.appid, 12345678);
        assert_eq!(ev.event_type, Some(EVENT_INTERRUPT));
        assert_eq!(ev.event_time, 1703731606);
        assert_eq!(ev.sequence, "2210464508206756938");
        assert_eq!((ev.width, ev.height), (720, 1280));
        assert_eq!((ev.errcode, ev.set_id, ev.idc_id), (18, 7, None));
        assert_eq!(ev.push_duration, Some(1500));
        assert_eq!(ev.node, "3");
        assert_eq!(ev.user_ip, "");
        assert_eq!(ev.t, NOW + 600);
        assert_eq!(ev.t_text, t);
        assert_eq!(ev.extra["future_field"], json!([1, "two"]));
    }
}
