//! Flags of `s3-seed sync`. Their env names come from [`crate::contract::env`],
//! the contract the webhook writes; tuning flags the webhook never sets use
//! `S3_SEED_*` names of their own; defaults are the `DEFAULT_*` constants of
//! [`crate::sync::config`]. [`SyncArgs::to_sources`] turns them into the plain
//! [`SyncConfig`] of each source the sync component takes, and [`run`] does
//! the CLI's part of a run: the summary lines, the termination log and the
//! exit code.
//!
//! The single-source flags (`--source`, `--target`, `--include`, ...)
//! describe the unnamed source. Named sources come as one JSON array in
//! `--sources` / `S3_SEED_SOURCES` ([`crate::contract::SourceEntry`]), a
//! list that clap's `env =` alone cannot express; an entry inherits the
//! connection flags it leaves out, as the annotations do.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::contract::{
    Endpoint, GlobList, S3Uri, SourceEntry, SourceName, env, parse_bool, parse_entries,
    parse_region,
};
use crate::s3::{CA_BUNDLE_ENV, StaticCredentials};
use crate::sync::config::{
    DEFAULT_CONCURRENCY, DEFAULT_LOCK_TIMEOUT, DEFAULT_PART_SIZE, DEFAULT_PROGRESS_INTERVAL,
    DEFAULT_RETRY_BUDGET, DEFAULT_STALL_TIMEOUT,
};
use crate::sync::sources::{self, Outcome, Source};
use crate::sync::{Summary, SyncConfig, SyncError};

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// s3://BUCKET or s3://BUCKET/PREFIX to copy from.
    #[arg(long, env = env::SOURCE, required_unless_present = "sources", requires = "target")]
    pub source: Option<S3Uri>,

    /// Directory to bring up to date (created if missing).
    #[arg(long, env = env::TARGET, requires = "source")]
    pub target: Option<PathBuf>,

    /// Named sources, synced with the one above: a JSON array of objects with
    /// name, source, target and optionally include, exclude, prune, endpoint,
    /// region, path-style, credentials (see the README).
    #[arg(long, env = env::SOURCES, value_parser = parse_sources)]
    pub sources: Option<SourceList>,

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

    /// In a delta transfer, take unchanged parts cloned from the installed
    /// file (XFS, Btrfs) without reading them back: the file is trusted by
    /// its size, mtime and inode, as a warm sync trusts it.
    #[arg(long, env = env::TRUST_INSTALLED, value_parser = parse_bool, num_args = 0..=1, default_value = "false", default_missing_value = "true")]
    pub trust_installed: bool,

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

/// The entries of `--sources`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceList(pub Vec<SourceEntry>);

fn parse_sources(s: &str) -> Result<SourceList, String> {
    parse_entries(s).map(SourceList)
}

impl SyncArgs {
    /// Every source of the run: the unnamed one from the single-source
    /// flags, then the named ones. `var` reads the environment, for the
    /// keys of a source whose entry names a `credentials` prefix.
    pub fn to_sources(
        &self,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Vec<Source>, SyncError> {
        let mut out = Vec::new();
        if let (Some(source), Some(target)) = (&self.source, &self.target) {
            let mut cfg = self.base(source.clone(), target.clone());
            cfg.include = self.include.clone();
            cfg.exclude = self.exclude.clone();
            cfg.prune = !self.no_prune;
            out.push(Source {
                name: None,
                config: cfg,
            });
        }
        for entry in self.sources.iter().flat_map(|l| &l.0) {
            out.push(Source {
                name: Some(entry.name.clone()),
                config: self.named(entry, &var)?,
            });
        }
        if out.is_empty() {
            return Err(SyncError::Config(format!(
                "nothing to sync: set --source and --target ({}, {}) or list sources in --sources ({})",
                env::SOURCE,
                env::TARGET,
                env::SOURCES
            )));
        }
        sources::check(&out)?;
        Ok(out)
    }

    /// One source's config with the run-wide and shared connection flags.
    fn base(&self, source: S3Uri, target: PathBuf) -> SyncConfig {
        let mut cfg = SyncConfig::new(source, target);
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
        cfg.trust_installed = self.trust_installed;
        cfg
    }

    fn named(
        &self,
        entry: &SourceEntry,
        var: &impl Fn(&str) -> Option<String>,
    ) -> Result<SyncConfig, SyncError> {
        let mut cfg = self.base(entry.source.clone(), entry.target.clone());
        cfg.include = entry.include.clone();
        cfg.exclude = entry.exclude.clone();
        cfg.prune = entry.prune;
        cfg.endpoint = entry.endpoint.clone().or(cfg.endpoint);
        cfg.region = entry.region.clone().or(cfg.region);
        cfg.path_style = entry.path_style.unwrap_or(cfg.path_style);
        if let Some(prefix) = &entry.credentials {
            cfg.credentials = Some(keys(&entry.name, prefix, var)?);
        }
        Ok(cfg)
    }
}

/// The keys under `prefix`: `PREFIX_AWS_ACCESS_KEY_ID`, ... (never logged).
fn keys(
    name: &SourceName,
    prefix: &str,
    var: &impl Fn(&str) -> Option<String>,
) -> Result<StaticCredentials, SyncError> {
    let get = |key: &str| var(&format!("{prefix}_{key}")).filter(|v| !v.is_empty());
    let required = |key: &str| {
        get(key).ok_or_else(|| {
            SyncError::Config(format!(
                "source {name}: credentials {prefix}: {prefix}_{key} is not set"
            ))
        })
    };
    Ok(StaticCredentials {
        access_key_id: required(env::AWS_ACCESS_KEY_ID)?,
        secret_access_key: required(env::AWS_SECRET_ACCESS_KEY)?,
        session_token: get(env::AWS_SESSION_TOKEN),
    })
}

fn parse_part_size(s: &str) -> Result<bytesize::ByteSize, String> {
    let size: bytesize::ByteSize = s.parse()?;
    if !(64 * 1024..=5 * 1024 * 1024 * 1024).contains(&size.as_u64()) {
        return Err(format!("{s} is outside 64KiB..5GiB"));
    }
    Ok(size)
}

/// Run `s3-seed sync` from parsed flags: every source to completion, one
/// summary line per source that succeeded; on failure a one-line reason in
/// the termination log naming each failed source, and the exit code of the
/// first (in the order of [`SyncArgs::to_sources`]).
pub async fn run(args: SyncArgs) -> ExitCode {
    let outcomes = match args.to_sources(|name| std::env::var(name).ok()) {
        Ok(sources) => sources::run_all(sources).await,
        Err(e) => vec![Outcome {
            name: None,
            result: Err(e),
        }],
    };
    let named = outcomes.iter().any(|o| o.name.is_some());
    let mut failures = Vec::new();
    for outcome in &outcomes {
        match &outcome.result {
            Ok(summary) => println!("{}", summary_line(summary, args.summary_format)),
            Err(e) => failures.push((label(outcome.name.as_ref(), named), e)),
        }
    }
    let Some((_, first)) = failures.first() else {
        return ExitCode::SUCCESS;
    };
    let code = first.exit_code();
    report_failure(&failures, &args.termination_log);
    ExitCode::from(code)
}

/// How a failure names its source: not at all in a run of the unnamed
/// source alone (the message is as it always was).
fn label(name: Option<&SourceName>, named_run: bool) -> Option<String> {
    match name {
        Some(name) => Some(format!("source {name}")),
        None if named_run => Some("unnamed source".to_owned()),
        None => None,
    }
}

fn summary_line(summary: &Summary, format: SummaryFormat) -> String {
    match format {
        SummaryFormat::Text => summary.text(),
        SummaryFormat::Json => summary.json(),
    }
}

/// Log each failure and leave one line naming them all for `kubectl
/// describe pod`.
fn report_failure(failures: &[(Option<String>, &SyncError)], termination_log: &std::path::Path) {
    let reasons: Vec<String> = failures
        .iter()
        .map(|(label, e)| {
            tracing::error!(exit_code = e.exit_code(), source = label.as_deref(), "{e}");
            match label {
                Some(label) => format!("{label}: {e}"),
                None => e.to_string(),
            }
        })
        .collect();
    let line = format!("s3-seed sync failed: {}", reasons.join("; ")).replace(['\n', '\r'], " ");
    // Best effort: the file only exists (and is writable) in Kubernetes.
    let _ = std::fs::write(termination_log, format!("{line}\n"));
}

#[cfg(test)]
mod tests;
