//! Flags of `s3-seed sync`. Their env names come from [`crate::spec::env`],
//! the contract the webhook writes.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use crate::spec::{Endpoint, GlobList, S3Uri, env, parse_bool, parse_region};

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

    /// Parallel transfers (objects and ranges together).
    #[arg(long, env = env::CONCURRENCY, default_value_t = 16)]
    pub concurrency: u16,

    /// Size of one ranged GET for large objects, e.g. 8MiB.
    #[arg(long, env = env::PART_SIZE, default_value = "8MiB")]
    pub part_size: bytesize::ByteSize,

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

pub async fn run(args: SyncArgs) -> ExitCode {
    crate::sync::run_cli(args).await
}
