//! The plain configuration of a sync: what the CLI (or a test) hands to
//! [`super::run`] and [`super::build_client`]. No clap here; the defaults are
//! the `DEFAULT_*` constants below, which [`SyncConfig::new`] and the flags of
//! `s3-seed sync` both use, so tests and the CLI agree on them.
//!
//! A [`SyncConfig`] is one source's whole configuration. A run of several
//! sources ([`super::sources`]) takes one per source; their run-wide fields
//! (`concurrency`, `part_size`) size the one budget the sources share.

use std::path::PathBuf;
use std::time::Duration;

use super::source::SourceSpec;
use crate::contract::{Endpoint, GlobList, S3Uri};
use crate::s3::{ClientConfig, StaticCredentials};

/// Objects up to this size are "tiny": one GET into one small buffer.
pub const TINY_OBJECT: u64 = 64 * 1024;
/// How much wider than `--concurrency` tiny objects are fetched.
pub const TINY_FANOUT: usize = 8;

/// Parallel GETs of large objects and ranges.
pub const DEFAULT_CONCURRENCY: u16 = 16;
/// Size of one ranged GET.
pub const DEFAULT_PART_SIZE: u64 = 8 * 1024 * 1024;
/// A body silent for this long is abandoned and retried.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Retries allowed in the whole run.
pub const DEFAULT_RETRY_BUDGET: u32 = 100;
/// Attempts of one request before it fails.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 8;
/// First backoff step.
pub const DEFAULT_RETRY_BASE: Duration = Duration::from_millis(200);
/// How long a run waits for another run on the same target to finish.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(300);
/// Time between progress lines.
pub const DEFAULT_PROGRESS_INTERVAL: Duration = Duration::from_secs(5);

/// Everything `s3-seed sync` needs besides the S3 client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncConfig {
    pub source: S3Uri,
    pub target: PathBuf,
    pub include: GlobList,
    pub exclude: GlobList,
    /// Remove files s3-seed placed earlier that are gone from the source.
    pub prune: bool,
    pub endpoint: Option<Endpoint>,
    pub path_style: bool,
    pub region: Option<String>,
    /// Explicit keys for this source; `None` uses the AWS default chain.
    pub credentials: Option<StaticCredentials>,
    /// A PEM bundle of CAs trusted besides the system roots (`AWS_CA_BUNDLE`).
    pub ca_bundle: Option<PathBuf>,
    /// Parallel GETs (objects and ranges together); also the number of buffers.
    pub concurrency: usize,
    /// Objects larger than this are fetched as ranges of this size.
    pub part_size: u64,
    /// A body that delivers no byte for this long is abandoned and retried.
    pub stall_timeout: Duration,
    /// Retries allowed in the whole run, across all requests.
    pub retry_budget: u32,
    /// Attempts of one request before it fails.
    pub max_attempts: u32,
    /// First backoff step; doubles each attempt (with full jitter), capped at 20 s.
    pub retry_base: Duration,
    /// How often progress is logged while downloading.
    pub progress_interval: Duration,
    /// How long to wait for another sync of the same target to finish.
    pub lock_timeout: Duration,
    /// Pretend the target filesystem has this many free bytes (tests).
    pub free_space_override: Option<u64>,
    /// A delta transfer takes the unchanged parts of a changed object from
    /// the installed file without reading them back where the filesystem
    /// clones them: the file is trusted by its size, mtime and inode, as a
    /// warm sync trusts an unchanged one.
    pub trust_installed: bool,
}

impl SyncConfig {
    /// A configuration with the documented defaults.
    pub fn new(source: S3Uri, target: PathBuf) -> Self {
        Self {
            source,
            target,
            include: GlobList::default(),
            exclude: GlobList::default(),
            prune: true,
            endpoint: None,
            path_style: false,
            region: None,
            credentials: None,
            ca_bundle: None,
            concurrency: usize::from(DEFAULT_CONCURRENCY),
            part_size: DEFAULT_PART_SIZE,
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            retry_budget: DEFAULT_RETRY_BUDGET,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            retry_base: DEFAULT_RETRY_BASE,
            progress_interval: DEFAULT_PROGRESS_INTERVAL,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            free_space_override: None,
            trust_installed: false,
        }
    }

    /// The source and its filters.
    pub fn source_spec(&self) -> SourceSpec {
        SourceSpec {
            uri: self.source.clone(),
            include: self.include.clone(),
            exclude: self.exclude.clone(),
        }
    }

    /// The S3 client settings of this sync.
    pub fn client_config(&self) -> ClientConfig {
        ClientConfig {
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            path_style: self.path_style,
            read_timeout: self.stall_timeout,
            ca_bundle: self.ca_bundle.clone(),
            credentials: self.credentials.clone(),
        }
    }

    /// Size of each write buffer: at most 512 KiB, and never more than a part.
    pub fn buffer_size(&self) -> usize {
        usize::try_from(self.part_size.min(512 * 1024)).unwrap_or(512 * 1024)
    }

    /// GETs of tiny objects in flight: they are latency-bound (one round
    /// trip, one fsync each), so they go [`TINY_FANOUT`] times wider than
    /// `concurrency`, on buffers of [`TINY_OBJECT`] bytes.
    pub fn tiny_concurrency(&self) -> usize {
        self.concurrency.saturating_mul(TINY_FANOUT)
    }
}
