//! Downloads: the pipeline, and the types its parts share.
//!
//! The pipeline: planned downloads feed a `JoinSet` of object tasks
//! (at most `2 × concurrency` alive); every GET, small or ranged, first takes
//! a buffer from the [`BufferPool`], so the number of requests in flight and
//! the memory used are bounded by the pool. The first error returns at once
//! and dropping the `JoinSet` cancels every other transfer; temporary files
//! stay in `.s3-seed/tmp/` for the next run to resume or overwrite.
//!
//! Each object is installed as [`crate::sync::journal`] describes: its
//! state entry is journaled (durably) before the rename into place, so a
//! killed or failed run still leaves a record of what it placed.
//!
//! Every GET carries `If-Match` with the listed ETag. A 412 means the object
//! was replaced: the object restarts with the new version (at most
//! [`MAX_RESTARTS`] times). A checksum mismatch refetches the object once,
//! then fails naming the key.
//!
//! This module holds what every transfer shares ([`Ctx`], [`Version`],
//! [`Fetched`], [`Fetch`] and the file helpers); its children do one thing
//! each and import the shared types from here: [`get`] one GET into a file
//! (and a small object in one GET), [`ranged`] a large object in parallel
//! ranges, [`pool`] the buffers that bound memory and requests, [`resume`]
//! the records that let a large download continue after a restart, [`reuse`]
//! the unchanged parts of an installed file taken instead of fetched.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::Client;
use sha2::{Digest as _, Sha256};
use tokio::task::JoinSet;
use tracing::Instrument as _;

mod direct;
mod get;
pub(super) mod pool;
mod ranged;
pub(super) mod resume;
mod reuse;

use crate::s3::{self, Retry, S3Error};
use crate::sync::delta::PartSums;
use crate::sync::error::SyncError;
use crate::sync::journal::{Journal, Placed};
use crate::sync::keys::RelPath;
use crate::sync::plan::Download;
use crate::sync::progress::Progress;
use crate::sync::state::Entry;
use crate::sync::target::{LocalFact, Target};
use crate::sync::verify::Expected;
use pool::BufferPool;

/// Times one object may be found replaced before the run gives up on it.
pub const MAX_RESTARTS: u32 = 3;

/// Shared by every transfer of a run.
#[derive(Debug)]
pub struct Ctx {
    pub client: Client,
    pub bucket: String,
    pub uri: String,
    pub target: Arc<Target>,
    pub retry: Retry,
    /// Shared by every source of a run (see `sync::Budget`).
    pub pool: Arc<BufferPool>,
    /// Buffers for objects of at most `TINY_OBJECT` bytes.
    pub tiny_pool: Arc<BufferPool>,
    pub progress: Arc<Progress>,
    pub part_size: u64,
    pub stall: Duration,
    /// Folders whose entries changed; fsynced before the state is written.
    pub touched: Mutex<BTreeSet<String>>,
    /// Where each file is recorded before it is renamed into place.
    pub journal: Journal,
    /// See [`crate::sync::SyncConfig::trust_installed`].
    pub trust_installed: bool,
}

/// The version of an object being fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub etag: Option<String>,
    pub size: u64,
    pub last_modified: Option<i64>,
}

/// A fetched, verified (or knowingly unverified) and fsynced temporary file.
#[derive(Debug)]
pub struct Fetched {
    pub tmp: String,
    pub verified: Option<&'static str>,
    pub unverified_because: Option<String>,
    /// Resume record to delete once installed.
    pub resume: Option<String>,
    /// The upload's parts and checksums, when the store listed them.
    pub parts: Option<PartSums>,
    /// Bytes taken from the installed file instead of S3.
    pub reused: u64,
}

/// Why fetching one object stopped.
#[derive(Debug)]
pub enum Fetch {
    /// The object was replaced (412): restart with the new version.
    Changed,
    /// The bytes do not match S3's checksum.
    Mismatch(String),
    Failed(SyncError),
}

impl From<SyncError> for Fetch {
    fn from(e: SyncError) -> Self {
        Self::Failed(e)
    }
}

/// Download and install every planned object; returns the new state entries.
///
/// At most `max_objects` objects are in flight, and of those at most
/// `max_ranged` large ones: each large object holds a HEAD, a preallocated
/// file and one task per range, so only tiny objects go as wide as
/// `max_objects`.
pub async fn download_all(
    ctx: Arc<Ctx>,
    jobs: Vec<Download>,
    max_objects: usize,
    max_ranged: usize,
) -> Result<Vec<(RelPath, Entry)>, SyncError> {
    let mut set = JoinSet::new();
    let mut jobs = jobs.into_iter().peekable();
    let (mut out, mut ranged) = (Vec::new(), 0);
    loop {
        while set.len() < max_objects.max(1) {
            let Some(job) = jobs.next_if(|j| !j.ranged || ranged < max_ranged.max(1)) else {
                break;
            };
            let is_ranged = job.ranged;
            ranged += usize::from(is_ranged);
            let span = tracing::info_span!("object", key = %job.object.key);
            let task = object(Arc::clone(&ctx), job).instrument(span);
            set.spawn(async move { (is_ranged, task.await) });
        }
        match set.join_next().await {
            None => return Ok(out),
            Some(Ok((was_ranged, done))) => {
                ranged -= usize::from(was_ranged);
                out.push(done?);
            }
            Some(Err(e)) => {
                return Err(SyncError::Io {
                    path: ctx.target.path().to_owned(),
                    source: std::io::Error::other(format!("download task failed: {e}")),
                });
            }
        }
    }
}

/// Fetch one object (restarting on 412, refetching once on mismatch), install it.
async fn object(ctx: Arc<Ctx>, job: Download) -> Result<(RelPath, Entry), SyncError> {
    let key = job.object.key.as_str();
    let mut version = Version {
        etag: job.object.etag.clone(),
        size: job.object.size,
        last_modified: job.object.last_modified,
    };
    let (mut restarts, mut mismatches) = (0, 0);
    loop {
        let fetched = if version.size > ctx.part_size {
            let installed = job.installed.as_ref();
            ranged::fetch(&ctx, &job.rel, key, &version, installed).await
        } else {
            get::small(&ctx, &job.rel, key, &version).await
        };
        match fetched {
            Ok(fetched) => return install(&ctx, &job, &version, fetched).await,
            Err(Fetch::Changed) if restarts < MAX_RESTARTS => {
                restarts += 1;
                let head = s3::head(&ctx.client, &ctx.bucket, key, None, &ctx.retry).await;
                let head = head.map_err(|e| SyncError::s3(e, &ctx.uri, key))?;
                tracing::warn!(old = ?version.etag, new = ?head.etag, "object replaced during download; restarting it");
                version = Version {
                    etag: head.etag,
                    size: head.size,
                    last_modified: head.last_modified,
                };
            }
            Err(Fetch::Mismatch(reason)) if mismatches == 0 => {
                mismatches += 1;
                tracing::warn!(%reason, "checksum mismatch; downloading the object again");
            }
            Err(Fetch::Changed) => return Err(SyncError::s3(S3Error::Changed, &ctx.uri, key)),
            Err(Fetch::Mismatch(reason)) => {
                return Err(SyncError::Integrity {
                    key: key.to_owned(),
                    reason,
                });
            }
            Err(Fetch::Failed(e)) => return Err(e),
        }
    }
}

/// Journal the fetched file, move it into place, and describe it for the
/// state file.
async fn install(
    ctx: &Arc<Ctx>,
    job: &Download,
    version: &Version,
    fetched: Fetched,
) -> Result<(RelPath, Entry), SyncError> {
    let mut entry = Entry {
        key: job.object.key.clone(),
        size: version.size,
        etag: version.etag.clone(),
        last_modified: version.last_modified,
        mtime_ns: 0,
        verified: fetched.verified.map(str::to_owned),
        ino: None,
        parts: fetched.parts.clone(),
    };
    let (c, rel, tmp) = (Arc::clone(ctx), job.rel.clone(), fetched.tmp.clone());
    let placed = entry.clone();
    let (fact, ino) = blocking(move || {
        let (id, fact) = c.target.temp_facts(&tmp)?;
        let LocalFact::File { mtime_ns, .. } = fact else {
            return Err(vanished(c.target.tmp_path(&tmp)));
        };
        let (source, path) = (c.uri.clone(), rel.to_string());
        let ino = Some(id.ino);
        let entry = Entry {
            mtime_ns,
            ino,
            ..placed
        };
        c.journal.record(&Placed {
            source,
            path,
            id,
            entry,
        })?;
        Ok((c.target.install(&tmp, &rel)?, ino))
    })
    .await?;
    if let Some(resume) = &fetched.resume {
        ctx.target.remove_temp(resume);
    }
    let dir = job.rel.split_parent().0.unwrap_or("").to_owned();
    if let Ok(mut touched) = ctx.touched.lock() {
        touched.insert(dir);
    }
    let LocalFact::File { mtime_ns, .. } = fact else {
        return Err(vanished(ctx.target.display(job.rel.as_str())));
    };
    if let Some(why) = fetched.unverified_because {
        tracing::warn!(reason = %why, "installed without verification");
    }
    ctx.progress.file_done();
    ctx.progress.add_reused(fetched.reused);
    entry.mtime_ns = mtime_ns;
    entry.ino = ino;
    Ok((job.rel.clone(), entry))
}

fn vanished(path: std::path::PathBuf) -> SyncError {
    SyncError::Io {
        path,
        source: std::io::Error::other("file vanished right after it was written"),
    }
}

pub fn unverified_reason(expected: &Expected) -> Option<String> {
    match expected {
        Expected::Nothing(why) => Some((*why).to_owned()),
        _ => None,
    }
}

/// The stem of a target path's temporary files: stable, so a rerun finds
/// the resume record (`<stem>.part.json`); the files themselves get fresh
/// names ([`Target::create_temp`]).
pub fn temp_stem(rel: &RelPath) -> String {
    let digest = Sha256::digest(rel.as_str().as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// fsync a finished temporary file.
pub async fn sync_file(
    ctx: &Ctx,
    file: &Arc<direct::PartFile>,
    tmp: &str,
) -> Result<(), SyncError> {
    let f = Arc::clone(file);
    let path = ctx.target.tmp_path(tmp);
    blocking(move || f.sync_all().map_err(|e| SyncError::io(path, e))).await
}

/// Run blocking filesystem work off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SyncError> + Send + 'static,
) -> Result<T, SyncError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| SyncError::Io {
            path: std::path::PathBuf::from("."),
            source: std::io::Error::other(format!("blocking task failed: {e}")),
        })?
}
