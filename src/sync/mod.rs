//! The init-container side: bring a directory up to date with an S3 prefix.
//!
//! One run is a straight line, each step in its own module:
//! 1. [`target::Target::open`]: create/open the target and `.s3-seed/`, prove
//!    it is writable (else a permission error naming uid, gid and fsGroup);
//!    then [`lock::acquire`]: one sync per target, kept by the target handle;
//! 2. [`source::select`]: one paginated ListObjectsV2 of the prefix, then
//!    [`keys::select`]: keys → safe relative paths (hostile keys fail the run);
//! 3. [`plan::plan`]: listing + [`state::State`] (with the [`journal`] of an
//!    interrupted run folded in) + local facts → skip / download / clear /
//!    prune (pure);
//! 4. free-space check, then [`download::download_all`]: bounded parallel
//!    GETs into temporary files, verified, fsynced, journaled and renamed
//!    into place;
//! 5. fsync changed folders, prune, write the state file, empty the journal.
//!
//! Tests and the demo call [`run`] with a client pointed at a local server;
//! the binary's flags, summary line and exit codes live in `crate::cli`, which
//! calls [`sources::run_all`] like any other caller. A run of several sources
//! ([`sources`]) runs this same line once per source, concurrently, on one
//! shared [`Budget`].

pub mod config;
pub mod delta;
mod download;
pub mod error;
pub mod journal;
pub mod keys;
pub mod lock;
pub mod mpu;
pub mod parts;
pub mod plan;
mod progress;
pub mod source;
pub mod sources;
pub mod state;
pub mod summary;
pub mod target;
pub mod verify;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub use config::SyncConfig;
pub use error::SyncError;
pub use summary::Summary;

use crate::s3::{self, Retry};
use download::pool::BufferPool;
use download::{Ctx, download_all, temp_stem};
use journal::Journal;
use keys::RelPath;
use plan::{Plan, PlanInput};
use progress::Progress;
use state::State;
use target::Target;

/// The buffers every GET of a run takes one of: they bound both the requests
/// in flight and the memory, whatever the number of sources.
#[derive(Debug, Clone)]
pub struct Budget {
    pool: Arc<BufferPool>,
    tiny_pool: Arc<BufferPool>,
}

impl Budget {
    /// The budget of one source's configuration (`concurrency` buffers of
    /// [`SyncConfig::buffer_size`], and the tiny-object buffers).
    pub fn new(cfg: &SyncConfig) -> Self {
        Self {
            pool: Arc::new(BufferPool::new(cfg.concurrency, cfg.buffer_size())),
            tiny_pool: Arc::new(BufferPool::new(
                cfg.tiny_concurrency(),
                config::TINY_OBJECT as usize,
            )),
        }
    }
}

/// Bring `cfg.target` up to date with `cfg.source` using `client`.
pub async fn run(cfg: &SyncConfig, client: &aws_sdk_s3::Client) -> Result<Summary, SyncError> {
    run_in(cfg, client, &Budget::new(cfg)).await
}

/// [`run`], taking buffers from `budget` (shared with other sources).
pub async fn run_in(
    cfg: &SyncConfig,
    client: &aws_sdk_s3::Client,
    budget: &Budget,
) -> Result<Summary, SyncError> {
    let started = Instant::now();
    let mut target = Target::open(&cfg.target)?;
    target.hold(lock::acquire(&target, cfg.lock_timeout).await?);
    let target = Arc::new(target);
    let journal = Journal::open(&target)?;
    let retry = Retry::new(cfg.retry_budget, cfg.max_attempts, cfg.retry_base);
    let selection = source::select(client, &cfg.source_spec(), &retry).await?;
    let placed = journal::read(&target);
    let journaled = !placed.is_empty();
    let previous = journal::recover(&target, State::load(&target), placed);
    let source = cfg.source.to_string();
    let plan = make_plan(cfg, &target, &source, selection.wanted, previous.as_ref())?;
    check_space(cfg, &target, &plan)?;
    for rel in &plan.clear_first {
        target.remove_placed(rel)?;
    }
    let total: u64 = plan.download.iter().map(|d| d.object.size).sum();
    let progress = Arc::new(Progress::new(total, plan.download.len() as u64));
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        bucket: cfg.source.bucket().to_owned(),
        uri: source.clone(),
        target: Arc::clone(&target),
        retry,
        pool: Arc::clone(&budget.pool),
        tiny_pool: Arc::clone(&budget.tiny_pool),
        progress: Arc::clone(&progress),
        part_size: cfg.part_size,
        stall: cfg.stall_timeout,
        touched: Mutex::new(BTreeSet::new()),
        journal,
        trust_installed: cfg.trust_installed,
    });
    let reporter = progress.spawn_reporter(cfg.progress_interval);
    let downloaded = download_all(
        Arc::clone(&ctx),
        plan.download.clone(),
        cfg.tiny_concurrency(),
        cfg.concurrency * 2,
    )
    .await;
    reporter.abort();
    let downloaded = downloaded?;
    // The state file on disk lacks what the journal held: write it even if unchanged.
    let previous = previous.filter(|_| !journaled);
    let pruned = finish(&ctx, &source, &plan, &downloaded, previous.as_ref())?;
    let verified = downloaded
        .iter()
        .filter(|(_, e)| e.verified.is_some())
        .count() as u64;
    let seconds = started.elapsed().as_secs_f64();
    let bytes = progress.bytes();
    Ok(Summary {
        listed: selection.listed,
        skipped: plan.skip.len() as u64,
        downloaded: downloaded.len() as u64,
        verified,
        unverified: downloaded.len() as u64 - verified,
        pruned,
        bytes,
        reused_bytes: progress.reused(),
        seconds,
        mb_per_s: bytes as f64 / 1e6 / seconds.max(1e-6),
        source: None,
    })
}

/// Build the S3 client for `cfg` (see [`crate::s3::client`]).
pub async fn build_client(cfg: &SyncConfig) -> Result<aws_sdk_s3::Client, SyncError> {
    let built = s3::build_client(&cfg.client_config()).await;
    built.map_err(|e| SyncError::s3(e, &cfg.source.to_string(), ""))
}

fn make_plan(
    cfg: &SyncConfig,
    target: &Target,
    source: &str,
    wanted: Vec<keys::Wanted>,
    previous: Option<&State>,
) -> Result<Plan, SyncError> {
    let old = previous.iter().flat_map(|s| s.entries.keys());
    let old: Vec<RelPath> = old.filter_map(|p| RelPath::parse(p).ok()).collect();
    let local = target.stat_many(wanted.iter().map(|w| &w.rel).chain(old.iter()));
    plan::plan(PlanInput {
        source,
        target: target.path(),
        wanted,
        previous,
        local: &local,
        prune: cfg.prune,
        part_size: cfg.part_size,
    })
}

/// Fail before any GET when the bytes to fetch exceed the free space.
fn check_space(cfg: &SyncConfig, target: &Target, plan: &Plan) -> Result<(), SyncError> {
    let need: u64 = plan
        .download
        .iter()
        .map(|d| {
            let on_disk = d.object.etag.as_deref().and_then(|etag| {
                download::resume::Record::peek(
                    target,
                    &temp_stem(&d.rel),
                    &d.object.key,
                    etag,
                    d.object.size,
                )
            });
            d.object.size - on_disk.unwrap_or(0).min(d.object.size)
        })
        .sum();
    let free = match cfg.free_space_override {
        Some(free) => free,
        None => target.free_space()?,
    };
    if need > free {
        return Err(SyncError::DiskSpace {
            dir: target.path().to_owned(),
            need,
            free,
        });
    }
    Ok(())
}

/// Make installs durable, prune, write the state file, then empty the
/// journal (everything in it is in the state now).
fn finish(
    ctx: &Ctx,
    source: &str,
    plan: &Plan,
    downloaded: &[(RelPath, state::Entry)],
    previous: Option<&State>,
) -> Result<u64, SyncError> {
    let target = &ctx.target;
    let mut touched = ctx.touched.lock().map(|t| t.clone()).unwrap_or_default();
    target.sync_dirs(&touched)?;
    touched.clear();
    let mut pruned = 0;
    for rel in &plan.prune {
        if target.remove_placed(rel)? {
            pruned += 1;
        } else {
            tracing::warn!(path = %rel, "not pruned: no longer a regular file placed by s3-seed");
        }
        touched.insert(rel.split_parent().0.unwrap_or("").to_owned());
    }
    target.sync_dirs(&touched)?;
    let mut state = State::new(source.to_owned());
    state.entries.extend(plan.skip.clone());
    state.entries.extend(plan.keep.clone());
    state
        .entries
        .extend(downloaded.iter().map(|(r, e)| (r.to_string(), e.clone())));
    if previous != Some(&state) {
        state.save(target)?;
    }
    ctx.journal.clear()?;
    target.clear_tmp();
    Ok(pruned)
}
