//! Flags of `s3-seed webhook`, and the admin flags that shape the injected
//! container (shared with `s3-seed inject`, so a preview matches the webhook).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::defaults::DefaultsFlags;
use crate::contract::parse_bool;
use crate::webhook::{self, InjectConfig, Limits, ServerConfig};

#[derive(Debug, Args)]
pub struct WebhookArgs {
    /// Address and port to serve HTTPS on.
    #[arg(long, env = "S3_SEED_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,

    /// PEM file with the serving certificate, leaf first, chain allowed.
    #[arg(long, env = "S3_SEED_TLS_CERT", default_value = "/tls/tls.crt")]
    pub tls_cert: PathBuf,

    /// PEM file with the private key of the serving certificate.
    #[arg(long, env = "S3_SEED_TLS_KEY", default_value = "/tls/tls.key")]
    pub tls_key: PathBuf,

    /// How often to re-read the certificate and key files, in seconds.
    #[arg(long, env = "S3_SEED_TLS_RELOAD_SECS", default_value_t = 10)]
    pub tls_reload_secs: u64,

    /// Time limit for one request, in seconds.
    #[arg(long, env = "S3_SEED_REQUEST_TIMEOUT_SECS", default_value_t = 10)]
    pub request_timeout_secs: u64,

    /// After SIGTERM, keep serving (and report not ready) this many seconds so
    /// that endpoints are updated before connections are closed.
    #[arg(long, env = "S3_SEED_SHUTDOWN_DELAY_SECS", default_value_t = 5)]
    pub shutdown_delay_secs: u64,

    /// After the delay, wait at most this many seconds for requests in flight.
    #[arg(long, env = "S3_SEED_SHUTDOWN_GRACE_SECS", default_value_t = 20)]
    pub shutdown_grace_secs: u64,

    /// Close a connection that has had no request in flight for this many
    /// seconds (HTTP/2: GOAWAY), including one that never sent a request.
    #[arg(long, env = "S3_SEED_IDLE_TIMEOUT_SECS", default_value_t = webhook::DEFAULT_IDLE_TIMEOUT.as_secs())]
    pub idle_timeout_secs: u64,

    /// Connections open at once; further clients wait in the listen backlog
    /// until one closes.
    #[arg(long, env = "S3_SEED_MAX_CONNECTIONS", default_value_t = webhook::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,

    /// MiB of request bodies received or held at once (at least 7, the body
    /// limit); a request that finds no room within 2 s gets 503.
    #[arg(long, env = "S3_SEED_BODY_BUDGET_MIB", default_value_t = webhook::DEFAULT_BODY_BUDGET / MIB)]
    pub body_budget_mib: usize,

    /// MiB of memory the reviews decoding at once may take, as estimated
    /// from their JSON before decoding; a request that finds no room within
    /// 2 s gets 503, a single review estimated above it is denied.
    #[arg(long, env = "S3_SEED_DECODE_BUDGET_MIB", default_value_t = webhook::DEFAULT_DECODE_BUDGET / MIB)]
    pub decode_budget_mib: usize,

    #[command(flatten)]
    pub inject: InjectFlags,
}

/// What the admin decides about the injected container. Annotations never
/// override these.
#[derive(Debug, Clone, Args)]
pub struct InjectFlags {
    /// Image of the injected init container (normally the webhook's own image,
    /// set by the Deployment through the env var).
    #[arg(long, env = "S3_SEED_IMAGE", default_value = webhook::DEFAULT_IMAGE)]
    pub image: String,

    /// imagePullPolicy of the injected container (Always, IfNotPresent, Never).
    #[arg(long, env = "S3_SEED_IMAGE_PULL_POLICY", value_parser = ["Always", "IfNotPresent", "Never"])]
    pub image_pull_policy: Option<String>,

    /// CPU request of the injected container.
    #[arg(long, env = "S3_SEED_CPU_REQUEST", value_parser = parse_quantity, default_value = webhook::DEFAULT_CPU_REQUEST)]
    pub cpu_request: String,

    /// Memory request of the injected container.
    #[arg(long, env = "S3_SEED_MEMORY_REQUEST", value_parser = parse_quantity, default_value = webhook::DEFAULT_MEMORY_REQUEST)]
    pub memory_request: String,

    /// CPU limit of the injected container (none by default: a CPU limit
    /// throttles downloads).
    #[arg(long, env = "S3_SEED_CPU_LIMIT", value_parser = parse_quantity)]
    pub cpu_limit: Option<String>,

    /// Memory limit of the injected container.
    #[arg(long, env = "S3_SEED_MEMORY_LIMIT", value_parser = parse_quantity, default_value = webhook::DEFAULT_MEMORY_LIMIT)]
    pub memory_limit: String,

    #[command(flatten)]
    pub defaults: DefaultsFlags,

    /// Parallel transfers of the injected sync (its own default when unset).
    #[arg(long, env = "S3_SEED_SYNC_CONCURRENCY")]
    pub sync_concurrency: Option<u16>,

    /// Range size of the injected sync, e.g. 16MiB (its own default when unset).
    #[arg(long, env = "S3_SEED_SYNC_PART_SIZE")]
    pub sync_part_size: Option<bytesize::ByteSize>,

    /// The injected sync's `--trust-installed`: delta transfers take cloned
    /// parts of the installed file without reading them back.
    #[arg(long, env = "S3_SEED_SYNC_TRUST_INSTALLED", value_parser = parse_bool, num_args = 0..=1, default_value = "false", default_missing_value = "true")]
    pub sync_trust_installed: bool,
}

impl From<InjectFlags> for InjectConfig {
    fn from(f: InjectFlags) -> Self {
        Self {
            image: f.image,
            image_pull_policy: f.image_pull_policy,
            cpu_request: f.cpu_request,
            memory_request: f.memory_request,
            cpu_limit: f.cpu_limit,
            memory_limit: f.memory_limit,
            default_region: f.defaults.default_region,
            default_endpoint: f.defaults.default_endpoint,
            default_path_style: f.defaults.default_path_style,
            sync_concurrency: f.sync_concurrency,
            sync_part_size: f.sync_part_size.map(|b| b.as_u64()),
            sync_trust_installed: f.sync_trust_installed,
        }
    }
}

const MIB: usize = 1024 * 1024;

impl From<WebhookArgs> for ServerConfig {
    fn from(a: WebhookArgs) -> Self {
        let limits = Limits {
            max_connections: a.max_connections,
            idle_timeout: Duration::from_secs(a.idle_timeout_secs.max(1)),
            body_budget: a.body_budget_mib.saturating_mul(MIB),
            decode_budget: a.decode_budget_mib.saturating_mul(MIB),
            ..Limits::default()
        };
        Self {
            listen: a.listen,
            tls_cert: a.tls_cert,
            tls_key: a.tls_key,
            tls_reload: Duration::from_secs(a.tls_reload_secs.max(1)),
            request_timeout: Duration::from_secs(a.request_timeout_secs.max(1)),
            shutdown_delay: Duration::from_secs(a.shutdown_delay_secs),
            shutdown_grace: Duration::from_secs(a.shutdown_grace_secs),
            limits,
            inject: a.inject.into(),
        }
    }
}

/// A Kubernetes resource quantity (`100m`, `64Mi`, `1.5`, `2e3`), so that a
/// typo fails at startup instead of making every injected pod invalid. Write
/// quantities in canonical form (`500m`, not `0.5`): the API server stores
/// the canonical form, and only then is the injection a fixed point.
fn parse_quantity(s: &str) -> Result<String, String> {
    const SUFFIXES: [&str; 15] = [
        "", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n",
    ];
    let number_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(number_end);
    let valid_number = !number.is_empty()
        && number != "."
        && number.matches('.').count() <= 1
        && number.chars().any(|c| c.is_ascii_digit());
    let exponent_ok = |e: &str| {
        let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
        !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit())
    };
    let exponent = suffix.strip_prefix(['e', 'E']).is_some_and(exponent_ok);
    if valid_number && (SUFFIXES.contains(&suffix) || exponent) {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "{s:?} is not a Kubernetes quantity such as 100m, 64Mi or 1"
        ))
    }
}

pub async fn run(args: WebhookArgs) -> anyhow::Result<()> {
    crate::webhook::serve(args.into()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_quantity;

    #[test]
    fn quantities() {
        for ok in [
            "100m", "64Mi", "1", "0.5", "1.5Gi", "2e3", "1E-2", "250n", "10k",
        ] {
            assert!(parse_quantity(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "m", "64MB", "1.2.3", ".", "-1", "1 Gi", "e3", "1e", "1e+",
        ] {
            assert!(parse_quantity(bad).is_err(), "{bad}");
        }
    }
}
