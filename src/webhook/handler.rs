//! The HTTP surface: the axum router, its limits, and thin handlers.
//!
//! `POST /mutate` checks the content type and length, waits for room in the
//! [`Budget`] for its body, reads the body, asks the pure
//! [`review`](super::review) what decoding it will cost, waits for that room
//! too, then answers and records span fields, one log line and the metrics.
//! `/healthz` answers while the process serves, `/readyz` only until
//! shutdown starts (so endpoints drop the pod before it stops accepting),
//! `/metrics` serves Prometheus. The router has no TLS and no socket, so
//! tests drive it with `tower::ServiceExt::oneshot`.
//!
//! A request refused before its body was read (415, 413, 503) still has its
//! body read and thrown away, up to [`DRAIN_LIMIT`]: an HTTP/1.1 client that
//! writes the whole body before it reads (curl `--data-binary`, Go's
//! `net/http`) would otherwise see the connection reset instead of the
//! answer. A client that asked `Expect: 100-continue` is answered at once
//! and sends nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::BodyExt;
use tower_http::timeout::TimeoutLayer;
use tracing::field::{Empty, display};
use tracing::{Span, info, instrument, warn};

use super::budget::{Budget, Refusal};
use super::metrics::{self, Metrics};
use super::review::{self, Decision, Reviewed};
use super::{InjectConfig, Limits};
use crate::excerpt::Excerpt;

/// Largest accepted request body. The API server sends objects of at most
/// ~3 MiB (its request limit), and the old object besides on UPDATE.
pub const BODY_LIMIT: usize = 7 * 1024 * 1024;
/// A refused body is read and thrown away up to this many bytes before the
/// answer; past it, the answer goes out and the connection is closed.
pub const DRAIN_LIMIT: usize = 16 * 1024 * 1024;
/// `Retry-After` of a 503, in seconds.
const RETRY_AFTER_SECS: &str = "1";

/// What the handlers share: the injection config, metrics, readiness and
/// the review budget.
#[derive(Debug, Clone)]
pub struct AppState {
    inject: Arc<InjectConfig>,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    budget: Arc<Budget>,
}

impl AppState {
    /// State for a webhook that is ready from the start, with the default
    /// [`Limits`].
    pub fn new(inject: InjectConfig) -> Self {
        Self::with_limits(inject, &Limits::default())
    }

    pub fn with_limits(inject: InjectConfig, limits: &Limits) -> Self {
        Self {
            inject: Arc::new(inject),
            metrics: Arc::new(Metrics::new()),
            ready: Arc::new(AtomicBool::new(true)),
            budget: Arc::new(Budget::new(limits)),
        }
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
    }

    /// Flip what `/readyz` reports.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }
}

/// The webhook's routes with the request timeout (408).
pub fn router(state: AppState, request_timeout: Duration) -> Router {
    Router::new()
        .route("/mutate", post(mutate))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
        .layer(DefaultBodyLimit::disable())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
}

/// Why a request was answered without a review.
#[derive(Debug, Clone, Copy)]
enum Refused {
    ContentType,
    TooLarge,
    Busy,
}

impl Refused {
    fn status(self) -> StatusCode {
        match self {
            Self::ContentType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Busy => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn message(self) -> String {
        match self {
            Self::ContentType => "content type must be application/json".to_owned(),
            Self::TooLarge => format!("request body over the limit of {BODY_LIMIT} bytes"),
            Self::Busy => "the webhook is at its memory budget; retry".to_owned(),
        }
    }

    fn decision(self) -> Decision {
        match self {
            Self::ContentType | Self::TooLarge => Decision::Rejected,
            Self::Busy => Decision::Busy,
        }
    }
}

#[instrument(skip_all, fields(uid = Empty, namespace = Empty, object = Empty, operation = Empty))]
async fn mutate(State(state): State<AppState>, request: Request) -> Response {
    let (parts, mut body) = request.into_parts();
    let call = Call {
        state: &state,
        headers: &parts.headers,
        version: parts.version,
        started: Instant::now(),
    };
    if !is_json(&parts.headers) {
        return call.refuse(Refused::ContentType, Some(&mut body)).await;
    }
    let length = content_length(&parts.headers);
    if length.is_some_and(|n| n > BODY_LIMIT) {
        return call.refuse(Refused::TooLarge, Some(&mut body)).await;
    }
    let Ok(_body_share) = state.budget.body(length.unwrap_or(BODY_LIMIT)).await else {
        return call.refuse(Refused::Busy, Some(&mut body)).await;
    };
    let bytes = match read_body(&mut body, length).await {
        Ok(bytes) => bytes,
        Err(ReadError::TooLarge) => return call.refuse(Refused::TooLarge, Some(&mut body)).await,
        Err(ReadError::Broken(reason)) => return call.finish(Reviewed::rejected(reason)),
    };
    let prepared = match review::prepare(&bytes) {
        Ok(prepared) => prepared,
        Err(rejected) => return call.finish(*rejected),
    };
    let reviewed = match state.budget.decoding(prepared.cost()).await {
        Ok(_share) => prepared.finish(&state.inject),
        Err(Refusal::TooLarge { budget }) => prepared.too_large(budget),
        Err(Refusal::Busy) => return call.refuse(Refused::Busy, None).await,
    };
    call.finish(reviewed)
}

/// One `POST /mutate` being answered.
struct Call<'a> {
    state: &'a AppState,
    headers: &'a HeaderMap,
    version: Version,
    started: Instant,
}

impl Call<'_> {
    /// Record and answer a review.
    fn finish(&self, reviewed: Reviewed) -> Response {
        let elapsed = self.started.elapsed();
        let span = Span::current();
        span.record("uid", display(Excerpt::bare(&reviewed.uid)));
        span.record("namespace", display(Excerpt::bare(&reviewed.namespace)));
        span.record("object", display(Excerpt::bare(&reviewed.name)));
        span.record("operation", reviewed.operation);
        self.state
            .metrics
            .admission(reviewed.operation, reviewed.decision, elapsed);
        let decision = reviewed.decision.as_str();
        let latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        match &reviewed.reason {
            Some(reason) => info!(decision, latency_us, reason = %reason, "admission"),
            None => info!(decision, latency_us, "admission"),
        }
        let content_type = if reviewed.status.is_success() {
            "application/json"
        } else {
            "text/plain; charset=utf-8"
        };
        (
            reviewed.status,
            [(header::CONTENT_TYPE, content_type)],
            reviewed.body,
        )
            .into_response()
    }

    /// Answer without a review, after reading the rest of the body (if
    /// any is left) away.
    async fn refuse(&self, why: Refused, body: Option<&mut Body>) -> Response {
        let drained = match body {
            None => true,
            Some(_) if expects_continue(self.headers) => false,
            Some(body) => drain(body).await,
        };
        let decision = why.decision();
        self.state
            .metrics
            .admission("", decision, self.started.elapsed());
        let message = why.message();
        warn!(decision = decision.as_str(), reason = %message, "admission refused");
        let mut response = (why.status(), message).into_response();
        let headers = response.headers_mut();
        if matches!(why, Refused::Busy) {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        if !drained && self.version <= Version::HTTP_11 {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

enum ReadError {
    /// More than [`BODY_LIMIT`] bytes arrived; the rest is still unread.
    TooLarge,
    /// The client broke off or sent a malformed body.
    Broken(String),
}

/// The whole body, in one buffer of its announced length.
async fn read_body(body: &mut Body, length: Option<usize>) -> Result<Vec<u8>, ReadError> {
    // Unknown length: reserve the limit; pages never written stay virtual.
    let mut buf = Vec::with_capacity(length.unwrap_or(BODY_LIMIT).min(BODY_LIMIT));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ReadError::Broken(format!("cannot read the body: {e}")))?;
        if let Some(data) = frame.data_ref() {
            if buf.len() + data.len() > BODY_LIMIT {
                return Err(ReadError::TooLarge);
            }
            buf.extend_from_slice(data);
        }
    }
    Ok(buf)
}

/// Read and drop the rest of a body, up to [`DRAIN_LIMIT`] bytes. True when
/// it ended within that.
async fn drain(body: &mut Body) -> bool {
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                seen += frame.data_ref().map_or(0, |d| d.len());
                if seen > DRAIN_LIMIT {
                    return false;
                }
            }
            Err(_) => return false,
        }
    }
    true
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ok").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response()
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        state.metrics.encode(),
    )
        .into_response()
}

/// `application/json`, with or without parameters such as `charset`.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

fn content_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("100-continue"))
}
