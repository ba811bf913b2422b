//! s3-seed against the real API server of the test control plane
//! (tests/cluster/up.sh), installed as an admin installs it and exercised
//! through `kubectl`: the overlays are accepted, the API server calls the
//! webhook through the Service reference of the registration (over TLS,
//! checked against the caBundle), the examples are stored injected once,
//! re-applies are no-ops, refusals reach kubectl, matchConditions keep
//! everything else away from the webhook, and the StatefulSet controller,
//! Pod Security admission and kwok take the injected pods to Ready.
//!
//! Every assertion is on what the API server stored or answered, or on the
//! webhook's own counters; none on its logs.
//!
//! Needs the built control plane and root (a network namespace):
//! `cargo test --test cluster_webhook -- --ignored` (README, Development).

mod common;
#[path = "cluster_webhook/examples.rs"]
mod examples;
#[path = "cluster_webhook/idempotence.rs"]
mod idempotence;
#[path = "cluster_webhook/install.rs"]
mod install;
#[path = "cluster_webhook/match_conditions.rs"]
mod match_conditions;
#[path = "cluster_webhook/pods.rs"]
mod pods;
#[path = "cluster_webhook/refusals.rs"]
mod refusals;
#[path = "cluster_webhook/stored.rs"]
mod stored;
