//! The download pipeline: planned downloads feed a `JoinSet` of object tasks
//! (at most `2 × concurrency` alive); every GET, small or ranged, first takes
//! a buffer from the [`BufferPool`], so the number of requests in flight and
//! the memory used are bounded by the pool. The first error returns at once
//! and dropping the `JoinSet` cancels every other transfer; temporary files
//! stay in `.s3-seed/tmp/` for the next run to resume or overwrite.
//!
//! Every GET carries `If-Match` with the listed ETag. A 412 means the object
//! was replaced: the object restarts with the new version (at most
//! [`MAX_RESTARTS`] times). A checksum mismatch refetches the object once,
//! then fails naming the key.

use std::collections::BTreeSet;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::types::ChecksumMode;
use aws_smithy_types::error::display::DisplayErrorContext;
use sha2::{Digest as _, Sha256};
use tokio::task::JoinSet;
use tracing::Instrument as _;

use super::error::SyncError;
use super::fsutil::{LocalFact, Target};
use super::keys::RelPath;
use super::plan::Download;
use super::pool::{BufferPool, PooledBuf};
use super::progress::Progress;
use super::ranged;
use super::retry::{Class, Retry, classify};
use super::s3;
use super::state::Entry;
use super::verify::{Expected, Hasher, Offered, expected};

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
    pub pool: BufferPool,
    pub progress: Arc<Progress>,
    pub part_size: u64,
    pub stall: Duration,
    /// Folders whose entries changed; fsynced before the state is written.
    pub touched: Mutex<BTreeSet<String>>,
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
    pub unverified_because: Option<&'static str>,
    /// Resume record to delete once installed.
    pub resume: Option<String>,
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
pub async fn download_all(
    ctx: Arc<Ctx>,
    jobs: Vec<Download>,
    max_objects: usize,
) -> Result<Vec<(RelPath, Entry)>, SyncError> {
    let mut set = JoinSet::new();
    let mut jobs = jobs.into_iter();
    let mut out = Vec::new();
    loop {
        while set.len() < max_objects.max(1) {
            let Some(job) = jobs.next() else { break };
            let span = tracing::info_span!("object", key = %job.object.key);
            set.spawn(object(Arc::clone(&ctx), job).instrument(span));
        }
        match set.join_next().await {
            None => return Ok(out),
            Some(Ok(done)) => out.push(done?),
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
            ranged::fetch(&ctx, &job.rel, key, &version).await
        } else {
            small(&ctx, &job.rel, key, &version).await
        };
        match fetched {
            Ok(fetched) => return install(&ctx, &job, &version, fetched).await,
            Err(Fetch::Changed) if restarts < MAX_RESTARTS => {
                restarts += 1;
                let head = s3::head(&ctx.client, &ctx.bucket, key, None, &ctx.retry).await;
                let head = head.map_err(|e| e.into_sync(&ctx.uri, key))?;
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
            Err(Fetch::Changed) => return Err(s3::RequestError::Changed.into_sync(&ctx.uri, key)),
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

/// Move the fetched file into place and describe it for the state file.
async fn install(
    ctx: &Arc<Ctx>,
    job: &Download,
    version: &Version,
    fetched: Fetched,
) -> Result<(RelPath, Entry), SyncError> {
    let target = Arc::clone(&ctx.target);
    let (rel, tmp) = (job.rel.clone(), fetched.tmp.clone());
    let fact = blocking(move || target.install(&tmp, &rel)).await?;
    if let Some(resume) = &fetched.resume {
        ctx.target.remove_temp(resume);
    }
    let dir = job.rel.split_parent().0.unwrap_or("").to_owned();
    if let Ok(mut touched) = ctx.touched.lock() {
        touched.insert(dir);
    }
    let LocalFact::File { mtime_ns, .. } = fact else {
        return Err(SyncError::Io {
            path: ctx.target.display(job.rel.as_str()),
            source: std::io::Error::other("file vanished right after it was installed"),
        });
    };
    if let Some(why) = fetched.unverified_because {
        tracing::warn!(reason = why, "installed without verification");
    }
    ctx.progress.file_done();
    let entry = Entry {
        key: job.object.key.clone(),
        size: version.size,
        etag: version.etag.clone(),
        last_modified: version.last_modified,
        mtime_ns,
        verified: fetched.verified.map(str::to_owned),
    };
    Ok((job.rel.clone(), entry))
}

/// Objects up to `part_size`: one GET (checksums come with the response).
async fn small(ctx: &Ctx, rel: &RelPath, key: &str, version: &Version) -> Result<Fetched, Fetch> {
    let tmp = temp_name(rel);
    let file = Arc::new(ctx.target.create_temp(&tmp)?);
    let range = Span {
        start: 0,
        len: version.size,
        whole: true,
    };
    let (hasher, expected) = get_into(ctx, key, version, range, &file, None).await?;
    let verified = match hasher.check(&expected) {
        Ok(v) => v,
        Err(reason) => {
            ctx.target.remove_temp(&tmp);
            return Err(Fetch::Mismatch(reason));
        }
    };
    sync_file(ctx, &file, &tmp).await?;
    Ok(Fetched {
        tmp,
        verified,
        unverified_because: unverified_reason(&expected),
        resume: None,
    })
}

pub fn unverified_reason(expected: &Expected) -> Option<&'static str> {
    match expected {
        Expected::Nothing(why) => Some(why),
        _ => None,
    }
}

/// The temporary file name of a target path: stable, so a rerun finds it.
pub fn temp_name(rel: &RelPath) -> String {
    let digest = Sha256::digest(rel.as_str().as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}.part")
}

/// fsync a finished temporary file.
pub async fn sync_file(ctx: &Ctx, file: &Arc<File>, tmp: &str) -> Result<(), SyncError> {
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

/// Which bytes one GET asks for.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    pub start: u64,
    pub len: u64,
    /// The whole object, without a Range header (and with ChecksumMode).
    pub whole: bool,
}

/// One GET attempt's failure.
enum Attempt {
    Transient(String),
    Stop(Fetch),
}

/// GET `span` of `key` into `file` at its offset, with retries. The hash is
/// of the kind `plan` says, or (when `None`) chosen from the response headers.
pub async fn get_into(
    ctx: &Ctx,
    key: &str,
    version: &Version,
    span: Span,
    file: &Arc<File>,
    plan: Option<Expected>,
) -> Result<(Hasher, Expected), Fetch> {
    let mut failures = 0;
    loop {
        let result = {
            let mut buf = ctx.pool.acquire().await;
            attempt(ctx, key, version, span, file, plan, &mut buf).await
        };
        match result {
            Ok(done) => return Ok(done),
            Err(Attempt::Stop(f)) => return Err(f),
            Err(Attempt::Transient(why)) => {
                failures += 1;
                ctx.retry.backoff(failures, key, &why).await?;
            }
        }
    }
}

async fn attempt(
    ctx: &Ctx,
    key: &str,
    version: &Version,
    span: Span,
    file: &Arc<File>,
    plan: Option<Expected>,
    buf: &mut PooledBuf<'_>,
) -> Result<(Hasher, Expected), Attempt> {
    let mut req = ctx
        .client
        .get_object()
        .bucket(&ctx.bucket)
        .key(key)
        .set_if_match(version.etag.clone());
    req = if span.whole {
        req.checksum_mode(ChecksumMode::Enabled)
    } else {
        req.range(format!(
            "bytes={}-{}",
            span.start,
            span.start + span.len - 1
        ))
    };
    let out = req
        .send()
        .await
        .map_err(|e| request_failed(ctx, key, &classify(&e)))?;
    check_lengths(&out, span, version)?;
    let expected = plan.unwrap_or_else(|| {
        expected(Offered {
            crc64nvme: out.checksum_crc64_nvme(),
            crc32c: out.checksum_crc32_c(),
            crc32: out.checksum_crc32(),
            etag: out.e_tag(),
        })
    });
    let mut hasher = Hasher::new(&expected);
    let mut body = out.body;
    let (mut written, mut received) = (span.start, 0u64);
    loop {
        let chunk = match tokio::time::timeout(ctx.stall, body.next()).await {
            Err(_) => {
                return Err(Attempt::Transient(format!(
                    "no data for {:?} (stall timeout)",
                    ctx.stall
                )));
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(Attempt::Transient(format!(
                    "body: {}",
                    DisplayErrorContext(e)
                )));
            }
            Ok(Some(Ok(chunk))) => chunk,
        };
        received += chunk.len() as u64;
        if received > span.len {
            return Err(Attempt::Transient(format!(
                "body longer than {} bytes",
                span.len
            )));
        }
        hasher.update(&chunk);
        ctx.progress.add_bytes(chunk.len() as u64);
        let mut rest = &chunk[..];
        while !rest.is_empty() {
            rest = &rest[buf.fill(rest)..];
            if buf.is_full() {
                written += flush(ctx, file, buf, written).await?;
            }
        }
    }
    flush(ctx, file, buf, written).await?;
    if received != span.len {
        return Err(Attempt::Transient(format!(
            "body ended after {received} of {} bytes",
            span.len
        )));
    }
    Ok((hasher, expected))
}

/// Content-Length must be what was asked; a ranged answer must carry the
/// exact Content-Range of the request and of the listed object size.
fn check_lengths(
    out: &aws_sdk_s3::operation::get_object::GetObjectOutput,
    span: Span,
    version: &Version,
) -> Result<(), Attempt> {
    let len = out.content_length().and_then(|l| u64::try_from(l).ok());
    if len != Some(span.len) {
        if span.whole && version.etag.is_none() {
            return Err(Attempt::Stop(Fetch::Changed)); // no ETag to pin the version
        }
        return Err(Attempt::Transient(format!(
            "Content-Length {len:?}, expected {}",
            span.len
        )));
    }
    if span.whole {
        return Ok(());
    }
    let want = format!(
        "bytes {}-{}/{}",
        span.start,
        span.start + span.len - 1,
        version.size
    );
    match out.content_range() {
        Some(got) if got == want => Ok(()),
        got => Err(Attempt::Transient(format!(
            "Content-Range {got:?}, expected {want:?}"
        ))),
    }
}

fn request_failed(ctx: &Ctx, key: &str, class: &Class) -> Attempt {
    let stop = |e| Attempt::Stop(Fetch::Failed(e));
    let source = |reason: String| SyncError::Source {
        uri: ctx.uri.clone(),
        reason,
    };
    match class.clone() {
        Class::Transient(why) => Attempt::Transient(why),
        Class::Changed => Attempt::Stop(Fetch::Changed),
        Class::NotFound(d) => stop(source(format!(
            "key {key:?} disappeared during the sync ({d})"
        ))),
        Class::Credentials(d) => stop(SyncError::Config(format!(
            "credentials or client setup: {d}"
        ))),
        Class::Fatal(d) => stop(source(format!("key {key:?}: {d}"))),
    }
}

/// Write the buffer at `offset` on a blocking thread; returns bytes written.
async fn flush(
    ctx: &Ctx,
    file: &Arc<File>,
    buf: &mut PooledBuf<'_>,
    offset: u64,
) -> Result<u64, Attempt> {
    if buf.data().is_empty() {
        return Ok(0);
    }
    let data = buf.take();
    let f = Arc::clone(file);
    let joined = tokio::task::spawn_blocking(move || {
        let res = f.write_all_at(&data, offset);
        (data, res)
    })
    .await;
    let (data, res) = joined.map_err(|e| {
        Attempt::Stop(Fetch::Failed(SyncError::Io {
            path: ctx.target.path().to_owned(),
            source: std::io::Error::other(format!("write task failed: {e}")),
        }))
    })?;
    let n = data.len() as u64;
    buf.restore(data);
    res.map_err(|e| Attempt::Stop(Fetch::Failed(SyncError::io(ctx.target.path(), e))))?;
    Ok(n)
}
