//! Prometheus metrics of the controller, served on `/metrics` (plain HTTP,
//! `--metrics-listen`) in the OpenMetrics text format, the way the webhook's
//! are ([`crate::webhook::metrics`]): one registry built here, and small
//! recording methods, so names and label values live in one place (the
//! README, "Metrics", lists them).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

pub use crate::webhook::metrics::CONTENT_TYPE;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PollLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    decision: &'static str,
}

/// The controller's metrics and their registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    polls: Family<PollLabels, Counter>,
    decisions: Family<DecisionLabels, Counter>,
    rollouts: Counter,
    watched: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Register every metric under the `s3_seed_controller_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("s3_seed_controller");
        let polls = Family::<PollLabels, Counter>::default();
        registry.register(
            "polls",
            "Polls of a source by result (ok, error: the source could not be listed)",
            polls.clone(),
        );
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "decisions",
            "Decisions taken after a poll or a change of a StatefulSet",
            decisions.clone(),
        );
        let rollouts = Counter::default();
        registry.register(
            "rollouts_started",
            "Rollouts started: a new source revision written to a pod template",
            rollouts.clone(),
        );
        let watched = Gauge::default();
        registry.register(
            "statefulsets_watched",
            "StatefulSets opted in with s3-seed.io/rollout: on-change",
            watched.clone(),
        );
        Self {
            registry,
            polls,
            decisions,
            rollouts,
            watched,
        }
    }

    /// Count one poll (`ok: false`: the source could not be listed).
    pub fn poll(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.polls.get_or_create(&PollLabels { result }).inc();
    }

    pub fn decision(&self, decision: &'static str) {
        self.decisions
            .get_or_create(&DecisionLabels { decision })
            .inc();
    }

    pub fn rollout_started(&self) {
        self.rollouts.inc();
    }

    pub fn set_watched(&self, n: usize) {
        self.watched.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// The registry in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
