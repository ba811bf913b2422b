//! The admission side: AdmissionReview in, JSON Patch out, over HTTPS.
//!
//! The decision is pure and lives in [`mutate`] (one StatefulSet as raw JSON
//! in, a JSON Patch or a denial out) and [`review`] (the bytes of an
//! AdmissionReview in, the bytes of the answer out). Everything with I/O is a
//! thin shell around them: [`handler`] owns the router, its limits and the
//! handlers, [`server`] the accept loop, the connection limit and shutdown,
//! [`conn`] one connection (protocol, idle timeout), [`tls`] the certificate
//! and its reload, [`metrics`] the Prometheus registry. `s3-seed inject`
//! calls the same [`mutate`] and applies its patch, so a preview is exactly
//! what the webhook would store.
//!
//! Memory is bounded by [`Limits`]: open connections, request bodies held at
//! once ([`budget`]), and the estimated memory of the reviews decoding at
//! once ([`footprint`] counts it from the JSON text before anything is
//! decoded). Everything over a bound waits briefly, then is refused.
//!
//! Objects are mutated as `serde_json::Value`, never through typed structs:
//! a round trip through k8s-openapi's `StatefulSet` would drop fields that
//! are newer than the compiled API version, and the patch is a diff between
//! the object as received and the desired copy, so nothing the webhook does
//! not understand can ever be removed.

pub mod budget;
pub mod conn;
pub mod footprint;
pub mod handler;
pub mod metrics;
pub mod mutate;
pub mod review;
pub mod server;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::contract::Endpoint;

pub use mutate::{Action, MutateError, Mutation, Plan, mutate, plan};
pub use review::{Decision, Reviewed, review};
pub use server::{AppState, ServerError, router, serve, serve_with};
pub use tls::TlsError;

/// Image injected when the admin sets none: this release's own image.
pub const DEFAULT_IMAGE: &str = concat!("s3-seed:", env!("CARGO_PKG_VERSION"));
/// Default CPU request of the injected container.
pub const DEFAULT_CPU_REQUEST: &str = "100m";
/// Default memory request of the injected container.
pub const DEFAULT_MEMORY_REQUEST: &str = "64Mi";
/// Default memory limit of the injected container.
pub const DEFAULT_MEMORY_LIMIT: &str = "256Mi";

/// What the admin decides about the injected container. Annotations never
/// override these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectConfig {
    /// Image of the injected container.
    pub image: String,
    /// `imagePullPolicy`; `None` applies the API server's rule (Always for
    /// `:latest` or untagged images, IfNotPresent otherwise).
    pub image_pull_policy: Option<String>,
    /// CPU request, a Kubernetes quantity such as `100m`.
    pub cpu_request: String,
    /// Memory request, a Kubernetes quantity such as `64Mi`.
    pub memory_request: String,
    /// CPU limit; `None` sets no CPU limit.
    pub cpu_limit: Option<String>,
    /// Memory limit, a Kubernetes quantity such as `256Mi`.
    pub memory_limit: String,
    /// Region when the StatefulSet has no `s3-seed.io/region`.
    pub default_region: Option<String>,
    /// Endpoint when the StatefulSet has no `s3-seed.io/endpoint`.
    pub default_endpoint: Option<Endpoint>,
    /// Path-style addressing when the StatefulSet has no `s3-seed.io/path-style`.
    pub default_path_style: Option<bool>,
    /// `S3_SEED_CONCURRENCY` of the injected sync, when set.
    pub sync_concurrency: Option<u16>,
    /// `S3_SEED_PART_SIZE` of the injected sync in bytes, when set.
    pub sync_part_size: Option<u64>,
    /// `S3_SEED_TRUST_INSTALLED=true` in the injected sync.
    pub sync_trust_installed: bool,
}

impl Default for InjectConfig {
    /// The same defaults as the flags of `s3-seed webhook`.
    fn default() -> Self {
        Self {
            image: DEFAULT_IMAGE.to_owned(),
            image_pull_policy: None,
            cpu_request: DEFAULT_CPU_REQUEST.to_owned(),
            memory_request: DEFAULT_MEMORY_REQUEST.to_owned(),
            cpu_limit: None,
            memory_limit: DEFAULT_MEMORY_LIMIT.to_owned(),
            default_region: None,
            default_endpoint: None,
            default_path_style: None,
            sync_concurrency: None,
            sync_part_size: None,
            sync_trust_installed: false,
        }
    }
}

/// Default of [`Limits::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// Default of [`Limits::idle_timeout`].
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default of [`Limits::body_budget`]: three bodies of the largest size,
/// or hundreds of the usual tens of kilobytes.
pub const DEFAULT_BODY_BUDGET: usize = 24 * MIB;
/// Default of [`Limits::decode_budget`]: far more than the parts a review
/// decodes ever take for an object the API server would store (its
/// annotations are limited to 256 KiB).
pub const DEFAULT_DECODE_BUDGET: usize = 24 * MIB;
/// Default of [`Limits::queue_wait`].
pub const DEFAULT_QUEUE_WAIT: Duration = Duration::from_secs(2);
const MIB: usize = 1024 * 1024;

/// What one webhook process holds at most, so that its memory stays under a
/// fixed bound whatever its clients do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once. Further ones wait in the listen backlog
    /// (their TLS handshake starts when one closes).
    pub max_connections: usize,
    /// A connection with no request in flight for this long is closed
    /// (HTTP/2 with GOAWAY), including one that never sent a request.
    pub idle_timeout: Duration,
    /// Bytes of `POST /mutate` bodies being received or held at once; at
    /// least [`handler::BODY_LIMIT`].
    pub body_budget: usize,
    /// Estimated bytes of the reviews decoding at once; a single review
    /// estimated above it is denied.
    pub decode_budget: usize,
    /// How long a request waits for room in either budget before it gets
    /// 503 with `Retry-After`.
    pub queue_wait: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            body_budget: DEFAULT_BODY_BUDGET,
            decode_budget: DEFAULT_DECODE_BUDGET,
            queue_wait: DEFAULT_QUEUE_WAIT,
        }
    }
}

/// How the HTTPS server runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to bind in [`serve`]; [`serve_with`] takes a bound listener.
    pub listen: SocketAddr,
    /// PEM certificate chain, leaf first.
    pub tls_cert: PathBuf,
    /// PEM private key of the leaf certificate.
    pub tls_key: PathBuf,
    /// How often the certificate and key files are re-read.
    pub tls_reload: Duration,
    /// Time limit for one HTTP request, body included.
    pub request_timeout: Duration,
    /// After the shutdown signal: keep serving, reporting not ready.
    pub shutdown_delay: Duration,
    /// Then: stop accepting and wait at most this long for requests in flight.
    pub shutdown_grace: Duration,
    /// Connections, idle timeout and memory budgets.
    pub limits: Limits,
    /// The injected container.
    pub inject: InjectConfig,
}
