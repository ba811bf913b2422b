//! Flags of `s3-seed sync`. Their env names come from [`crate::contract::env`],
//! the contract the webhook writes; tuning flags the webhook never sets use
//! `S3_SEED_*` names of their own; defaults are the `DEFAULT_*` constants of
//! [`crate::sync::config`]. [`SyncArgs::to_config`] turns them into the plain
//! [`SyncConfig`] the sync component takes, and [`run`] does the CLI's part
//! of a run: the summary line, the termination log and the exit code.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::contract::{Endpoint, GlobList, S3Uri, env, parse_bool, parse_region};
use crate::s3::CA_BUNDLE_ENV;
use crate::sync::config::{
    DEFAULT_CONCURRENCY, DEFAULT_LOCK_TIMEOUT, DEFAULT_PART_SIZE, DEFAULT_PROGRESS_INTERVAL,
    DEFAULT_RETRY_BUDGET, DEFAULT_STALL_TIMEOUT,
};
use crate::sync::{self, Summary, SyncConfig, SyncError};

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// s3://BUCKET or s3://BUCKET/PREFIX to copy from.
    #[arg(long, env = env::SOURCE)]
    pub source: S3Uri,

    /// Directory to bring up to date (created if missing).
    #[arg(long, env = env::TARGET)]
    pub target: PathBuf,

    /// Comma-separated globs on keys relative to the prefix; only matching keys are copied.
    #[arg(long, env = env::INCLUDE, default_value = "")]
    pub include: GlobList,

    /// Comma-separated globs on keys relative to the prefix; matching keys are skipped.
    #[arg(long, env = env::EXCLUDE, default_value = "")]
    pub exclude: GlobList,

    /// Keep files that s3-seed placed earlier and that are gone from the source.
    #[arg(long, env = env::NO_PRUNE, value_parser = parse_bool, num_args = 0..=1, default_value = "false", default_missing_value = "true")]
    pub no_prune: bool,

    /// S3 endpoint URL for S3-compatible stores (AWS_ENDPOINT_URL is honoured too).
    #[arg(long, env = env::ENDPOINT)]
    pub endpoint: Option<Endpoint>,

    /// Use path-style addressing (http://host/bucket/key), as MinIO and Ceph usually need.
    #[arg(long, env = env::PATH_STYLE, value_parser = parse_bool, num_args = 0..=1, default_value = "false", default_missing_value = "true")]
    pub path_style: bool,

    /// Region (otherwise the AWS default chain: AWS_REGION, profile, instance metadata).
    #[arg(long, env = env::REGION, value_parser = parse_region)]
    pub region: Option<String>,

    /// PEM file of CAs to trust besides the system roots (for a store with a private CA).
    // An OsString, not a PathBuf: an empty value must reach the client and
    // fail there with exit code 3, as it did before it became a flag.
    #[arg(long, env = CA_BUNDLE_ENV, value_parser = clap::value_parser!(std::ffi::OsString))]
    pub ca_bundle: Option<std::ffi::OsString>,

    /// Parallel GETs of large objects and ranges; objects of 64 KiB or less go 8 times wider.
    #[arg(long, env = env::CONCURRENCY, default_value_t = DEFAULT_CONCURRENCY, value_parser = clap::value_parser!(u16).range(1..=512))]
    pub concurrency: u16,

    /// Size of one ranged GET for large objects, e.g. 8MiB (64KiB to 5GiB).
    #[arg(long, env = env::PART_SIZE, default_value_t = bytesize::ByteSize::b(DEFAULT_PART_SIZE), value_parser = parse_part_size)]
    pub part_size: bytesize::ByteSize,

    /// Seconds a response body may deliver nothing before the request is retried.
    #[arg(long, env = "S3_SEED_STALL_TIMEOUT_SECS", default_value_t = DEFAULT_STALL_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pub stall_timeout_secs: u64,

    /// Retries allowed in the whole run (throttling, 5xx, broken or stalled connections).
    #[arg(long, env = "S3_SEED_RETRY_BUDGET", default_value_t = DEFAULT_RETRY_BUDGET)]
    pub retry_budget: u32,

    /// Seconds between progress lines in the log while downloading.
    #[arg(long, env = "S3_SEED_PROGRESS_INTERVAL_SECS", default_value_t = DEFAULT_PROGRESS_INTERVAL.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pub progress_interval_secs: u64,

    /// Seconds to wait for another sync of the same target to finish before failing (exit code 10).
    #[arg(long, env = "S3_SEED_LOCK_TIMEOUT_SECS", default_value_t = DEFAULT_LOCK_TIMEOUT.as_secs())]
    pub lock_timeout_secs: u64,

    /// Format of the final summary line.
    #[arg(long, env = env::SUMMARY_FORMAT, value_enum, default_value_t = SummaryFormat::Text)]
    pub summary_format: SummaryFormat,

    /// Where to write a one-line failure reason for `kubectl describe pod`.
    #[arg(
        long,
        env = "S3_SEED_TERMINATION_LOG",
        default_value = "/dev/termination-log"
    )]
    pub termination_log: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SummaryFormat {
    Text,
    Json,
}

impl SyncArgs {
    /// The component's configuration for these flags.
    pub fn to_config(&self) -> SyncConfig {
        let mut cfg = SyncConfig::new(self.source.clone(), self.target.clone());
        cfg.include = self.include.clone();
        cfg.exclude = self.exclude.clone();
        cfg.prune = !self.no_prune;
        cfg.endpoint = self.endpoint.clone();
        cfg.path_style = self.path_style;
        cfg.region = self.region.clone();
        cfg.ca_bundle = self.ca_bundle.clone().map(PathBuf::from);
        cfg.concurrency = usize::from(self.concurrency);
        cfg.part_size = self.part_size.as_u64();
        cfg.stall_timeout = Duration::from_secs(self.stall_timeout_secs);
        cfg.retry_budget = self.retry_budget;
        cfg.progress_interval = Duration::from_secs(self.progress_interval_secs);
        cfg.lock_timeout = Duration::from_secs(self.lock_timeout_secs);
        cfg
    }
}

fn parse_part_size(s: &str) -> Result<bytesize::ByteSize, String> {
    let size: bytesize::ByteSize = s.parse()?;
    if !(64 * 1024..=5 * 1024 * 1024 * 1024).contains(&size.as_u64()) {
        return Err(format!("{s} is outside 64KiB..5GiB"));
    }
    Ok(size)
}

/// Run `s3-seed sync` from parsed flags: print the summary line, write a
/// one-line reason to the termination log on failure, map errors to the
/// documented exit codes.
pub async fn run(args: SyncArgs) -> ExitCode {
    let cfg = args.to_config();
    let result = async {
        let client = sync::build_client(&cfg).await?;
        sync::run(&cfg, &client).await
    }
    .await;
    match result {
        Ok(summary) => {
            println!("{}", summary_line(&summary, args.summary_format));
            ExitCode::SUCCESS
        }
        Err(e) => {
            report_failure(&e, &args.termination_log);
            ExitCode::from(e.exit_code())
        }
    }
}

fn summary_line(summary: &Summary, format: SummaryFormat) -> String {
    match format {
        SummaryFormat::Text => summary.text(),
        SummaryFormat::Json => summary.json(),
    }
}

/// Log the failure and leave its one-line reason for `kubectl describe pod`.
fn report_failure(e: &SyncError, termination_log: &std::path::Path) {
    let line = format!("s3-seed sync failed: {e}").replace(['\n', '\r'], " ");
    tracing::error!(exit_code = e.exit_code(), "{line}");
    // Best effort: the file only exists (and is writable) in Kubernetes.
    let _ = std::fs::write(termination_log, format!("{line}\n"));
}

#[cfg(test)]
mod tests;
