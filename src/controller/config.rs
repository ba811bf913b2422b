//! The plain configuration of `s3-seed controller` (no clap here): what the
//! CLI, or a test, hands to [`super::run`]. The defaults are the constants
//! below, which the flags use too.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::decide::Pacing;
use crate::contract::Endpoint;

/// Time between two polls of one source (spread with ±10% jitter).
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(300);
/// Least time between two rollouts of one StatefulSet.
pub const DEFAULT_MIN_ROLLOUT_INTERVAL: Duration = Duration::from_secs(600);
/// StatefulSets rolling at once, cluster-wide.
pub const DEFAULT_MAX_ROLLING: usize = 3;
/// Where `/metrics` and `/healthz` are served (plain HTTP).
pub const DEFAULT_METRICS_LISTEN: &str = "0.0.0.0:9090";
/// StatefulSets reconciled at once (each poll is one listing).
pub const DEFAULT_CONCURRENCY: u16 = 16;
/// How long credentials read from a Secret are used before it is read again.
pub const DEFAULT_SECRET_TTL: Duration = Duration::from_secs(3600);
/// How long an S3 answer may take to start arriving.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The admin's defaults for annotations a StatefulSet leaves out: the
/// webhook's `--default-*` flags, which the injected sync receives, so the
/// controller lists the source the way the init container would.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceDefaults {
    pub region: Option<String>,
    pub endpoint: Option<Endpoint>,
    pub path_style: Option<bool>,
}

/// Everything `s3-seed controller` needs besides its clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerConfig {
    pub poll_interval: Duration,
    pub pacing: Pacing,
    pub metrics_listen: SocketAddr,
    pub defaults: SourceDefaults,
    /// How long credentials read from a Secret are reused (zero: every poll
    /// reads the Secret).
    pub secret_ttl: Duration,
    /// A PEM bundle of CAs trusted besides the system roots (`AWS_CA_BUNDLE`).
    pub ca_bundle: Option<PathBuf>,
    /// StatefulSets reconciled at once.
    pub concurrency: u16,
    /// This replica's name in Events (the pod name), if known.
    pub instance: Option<String>,
    /// Watch StatefulSets of this namespace only (`None`: every namespace).
    pub namespace: Option<String>,
}

impl ControllerConfig {
    /// A configuration with the documented defaults.
    pub fn new(metrics_listen: SocketAddr) -> Self {
        Self {
            poll_interval: DEFAULT_POLL_INTERVAL,
            pacing: Pacing {
                min_interval: DEFAULT_MIN_ROLLOUT_INTERVAL,
                max_rolling: DEFAULT_MAX_ROLLING,
            },
            metrics_listen,
            defaults: SourceDefaults::default(),
            secret_ttl: DEFAULT_SECRET_TTL,
            ca_bundle: None,
            concurrency: DEFAULT_CONCURRENCY,
            instance: None,
            namespace: None,
        }
    }
}
