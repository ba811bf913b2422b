//! Flags of `s3-seed controller`. Defaults are the constants of
//! [`crate::controller::config`]; the `--default-*` flags are the webhook's
//! own ([`super::defaults`]), so the controller lists sources as the
//! injected sync reads them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::defaults::DefaultsFlags;
use crate::controller::config::{
    DEFAULT_CONCURRENCY, DEFAULT_MAX_ROLLING, DEFAULT_METRICS_LISTEN, DEFAULT_MIN_ROLLOUT_INTERVAL,
    DEFAULT_POLL_INTERVAL, DEFAULT_SECRET_TTL,
};
use crate::controller::{self, ControllerConfig};
use crate::s3::CA_BUNDLE_ENV;

#[derive(Debug, Args)]
pub struct ControllerArgs {
    /// Seconds between two polls of one source (each poll is spread by ±10%).
    #[arg(long, env = "S3_SEED_POLL_INTERVAL_SECS", default_value_t = DEFAULT_POLL_INTERVAL.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pub poll_interval_secs: u64,

    /// Least seconds between two rollouts of one StatefulSet; changes seen
    /// meanwhile are rolled out together after it.
    #[arg(long, env = "S3_SEED_MIN_ROLLOUT_INTERVAL_SECS", default_value_t = DEFAULT_MIN_ROLLOUT_INTERVAL.as_secs())]
    pub min_rollout_interval_secs: u64,

    /// StatefulSets rolling at once, cluster-wide (opted-in ones whose
    /// rollout is in flight, whoever started it).
    #[arg(long, env = "S3_SEED_MAX_ROLLING", default_value_t = DEFAULT_MAX_ROLLING, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_rolling: usize,

    /// Address and port to serve /metrics and /healthz on (plain HTTP).
    #[arg(long, env = "S3_SEED_METRICS_LISTEN", default_value = DEFAULT_METRICS_LISTEN)]
    pub metrics_listen: SocketAddr,

    /// StatefulSets reconciled at once.
    #[arg(long, env = "S3_SEED_CONTROLLER_CONCURRENCY", default_value_t = DEFAULT_CONCURRENCY, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,

    /// Seconds credentials read from a Secret are reused before it is read
    /// again (credentials that fail are read again at once); 0 reads the
    /// Secret on every poll.
    #[arg(long, env = "S3_SEED_SECRET_REFRESH_SECS", default_value_t = DEFAULT_SECRET_TTL.as_secs())]
    pub secret_refresh_secs: u64,

    #[command(flatten)]
    pub defaults: DefaultsFlags,

    /// PEM file of CAs to trust besides the system roots.
    #[arg(long, env = CA_BUNDLE_ENV)]
    pub ca_bundle: Option<PathBuf>,

    /// Watch StatefulSets of this namespace only (with a RoleBinding there
    /// instead of the ClusterRoleBinding); every namespace when unset.
    #[arg(long, env = "S3_SEED_WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,

    /// This replica's name in Events (the Deployment sets the pod name).
    #[arg(long, env = "S3_SEED_POD_NAME")]
    pub instance: Option<String>,
}

impl ControllerArgs {
    pub fn to_config(&self) -> ControllerConfig {
        let mut cfg = ControllerConfig::new(self.metrics_listen);
        cfg.poll_interval = Duration::from_secs(self.poll_interval_secs);
        cfg.pacing.min_interval = Duration::from_secs(self.min_rollout_interval_secs);
        cfg.pacing.max_rolling = self.max_rolling;
        cfg.concurrency = self.concurrency;
        cfg.secret_ttl = Duration::from_secs(self.secret_refresh_secs);
        cfg.defaults = self.defaults.clone().into();
        cfg.ca_bundle = self.ca_bundle.clone();
        cfg.instance = self.instance.clone();
        cfg.namespace = self.watch_namespace.clone();
        cfg
    }
}

/// Connect to the API server (in-cluster, or `KUBECONFIG`) and run. Its
/// requests carry `User-Agent: s3-seed/VERSION (controller)`, so an audit
/// log tells them, and its Secret reads, apart.
pub async fn run(args: ControllerArgs) -> anyhow::Result<()> {
    let mut config = kube::Config::infer()
        .await
        .map_err(controller::ControllerError::Config)?;
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static(controller::USER_AGENT),
    ));
    let client = kube::Client::try_from(config).map_err(controller::ControllerError::Client)?;
    controller::run(args.to_config(), client).await?;
    Ok(())
}
