//! The admission side: AdmissionReview in, JSON Patch out, over HTTPS.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::spec::Endpoint;

/// What the admin decides about the injected container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectConfig {
    pub image: String,
    pub image_pull_policy: Option<String>,
    pub cpu_request: String,
    pub memory_request: String,
    pub cpu_limit: Option<String>,
    pub memory_limit: String,
    pub default_region: Option<String>,
    pub default_endpoint: Option<Endpoint>,
    pub default_path_style: Option<bool>,
    pub sync_concurrency: Option<u16>,
    pub sync_part_size: Option<u64>,
}

/// How the HTTPS server runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    pub tls_reload: Duration,
    pub request_timeout: Duration,
    pub shutdown_delay: Duration,
    pub shutdown_grace: Duration,
    pub inject: InjectConfig,
}

/// Serve until SIGTERM/SIGINT. (Skeleton: implemented by the webhook work.)
pub async fn serve(_config: ServerConfig) -> anyhow::Result<()> {
    anyhow::bail!("the webhook server is not built yet")
}
