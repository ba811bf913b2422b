//! Prometheus metrics of the webhook, served on `/metrics` in the
//! OpenMetrics text format.
//!
//! The registry is owned here and built once; handlers and the certificate
//! reloader only call the small recording methods below, so metric names and
//! label values are defined in one place (and documented in the README, "Metrics").

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::review::Decision;

/// `Content-Type` of the `/metrics` response.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AdmissionLabels {
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    result: &'static str,
}

/// The webhook's metrics and their registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    admissions: Family<AdmissionLabels, Counter>,
    latency: Histogram,
    reloads: Family<ReloadLabels, Counter>,
    connections: Gauge,
    idle_closed: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Register every metric under the `s3_seed_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("s3_seed");
        let admissions = Family::<AdmissionLabels, Counter>::default();
        registry.register(
            "admissions",
            "Admission requests by operation and outcome (allowed, patched, denied, rejected, busy)",
            admissions.clone(),
        );
        // 100 µs .. ~1.6 s
        let latency = Histogram::new(exponential_buckets(0.0001, 2.0, 15));
        registry.register(
            "admission_duration_seconds",
            "Time to answer one admission request, body read excluded",
            latency.clone(),
        );
        let reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "tls_reloads",
            "Serving certificate reloads by result (success, failure)",
            reloads.clone(),
        );
        let connections = Gauge::default();
        registry.register(
            "connections",
            "Open connections (TLS handshake done or in progress)",
            connections.clone(),
        );
        let idle_closed = Counter::default();
        registry.register(
            "connections_closed_idle",
            "Connections closed because no request was in flight for --idle-timeout-secs",
            idle_closed.clone(),
        );
        Self {
            registry,
            admissions,
            latency,
            reloads,
            connections,
            idle_closed,
        }
    }

    /// Count one answered request and its latency.
    pub fn admission(&self, operation: &'static str, decision: Decision, elapsed: Duration) {
        let operation = if operation.is_empty() {
            "none"
        } else {
            operation
        };
        self.admissions
            .get_or_create(&AdmissionLabels {
                operation,
                outcome: decision.as_str(),
            })
            .inc();
        self.latency.observe(elapsed.as_secs_f64());
    }

    /// Count one certificate reload attempt that found new file contents.
    pub fn tls_reload(&self, success: bool) {
        let result = if success { "success" } else { "failure" };
        self.reloads.get_or_create(&ReloadLabels { result }).inc();
    }

    /// A connection was accepted; the returned guard counts it until dropped.
    pub fn connection(self: &std::sync::Arc<Self>) -> ConnectionGauge {
        self.connections.inc();
        ConnectionGauge(std::sync::Arc::clone(self))
    }

    /// A connection is being closed for being idle.
    pub fn idle_closed(&self) {
        self.idle_closed.inc();
    }

    /// The registry in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Counts one open connection in `s3_seed_connections` while it lives.
#[derive(Debug)]
pub struct ConnectionGauge(std::sync::Arc<Metrics>);

impl Drop for ConnectionGauge {
    fn drop(&mut self) {
        self.0.connections.dec();
    }
}
