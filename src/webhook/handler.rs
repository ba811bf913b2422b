//! The HTTP surface: the axum router, its limits, and thin handlers.
//!
//! `POST /mutate` checks the content type, hands the body to the pure
//! [`review`](super::review::review), then records span fields, one log line
//! and the metrics. `/healthz` answers while the process serves, `/readyz`
//! only until shutdown starts (so endpoints drop the pod before it stops
//! accepting), `/metrics` serves Prometheus. The router has no TLS and no
//! socket, so tests drive it with `tower::ServiceExt::oneshot`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tracing::field::Empty;
use tracing::{Span, info, instrument, warn};

use super::InjectConfig;
use super::metrics::{self, Metrics};
use super::review::{Decision, review};

/// Largest accepted request body. The API server sends at most ~3 MiB
/// objects (etcd's limit) plus the old object on UPDATE.
pub const BODY_LIMIT: usize = 7 * 1024 * 1024;

/// What the handlers share: the injection config, metrics and readiness.
#[derive(Debug, Clone)]
pub struct AppState {
    inject: Arc<InjectConfig>,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
}

impl AppState {
    /// State for a webhook that is ready from the start.
    pub fn new(inject: InjectConfig) -> Self {
        Self {
            inject: Arc::new(inject),
            metrics: Arc::new(Metrics::new()),
            ready: Arc::new(AtomicBool::new(true)),
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

/// The webhook's routes with the body limit (413) and request timeout (408).
pub fn router(state: AppState, request_timeout: Duration) -> Router {
    Router::new()
        .route("/mutate", post(mutate))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state.clone())
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        .layer(middleware::map_response_with_state(state, count_oversized))
}

/// A body over [`BODY_LIMIT`] is refused by the limit layer (413) before the
/// handler can log or count it; count and log it here instead.
async fn count_oversized(State(state): State<AppState>, response: Response) -> Response {
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
        state
            .metrics
            .admission("", Decision::Rejected, Duration::ZERO);
        warn!(
            limit = BODY_LIMIT,
            "admission body over the size limit: 413"
        );
    }
    response
}

#[instrument(skip_all, fields(uid = Empty, namespace = Empty, object = Empty, operation = Empty))]
async fn mutate(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let started = Instant::now();
    if !is_json(&headers) {
        state
            .metrics
            .admission("", Decision::Rejected, started.elapsed());
        warn!(
            decision = "rejected",
            "content type is not application/json"
        );
        let msg = "content type must be application/json";
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, msg).into_response();
    }
    let reviewed = review(&body, &state.inject);
    let elapsed = started.elapsed();
    let span = Span::current();
    span.record("uid", reviewed.uid.as_str());
    span.record("namespace", reviewed.namespace.as_str());
    span.record("object", reviewed.name.as_str());
    span.record("operation", reviewed.operation);
    state
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
