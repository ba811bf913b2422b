//! Large objects: parallel ranged GETs written at their offsets into one
//! preallocated temporary file, resumable across runs.
//!
//! A HEAD (with `If-Match` and `ChecksumMode::Enabled`) pins the version and
//! says what can be verified. Each missing part is its own task; all of them
//! queue on the shared buffer pool, so a big object uses every free slot and
//! many big objects never use more memory than one. Part CRCs are combined
//! in order at the end; an MD5 ETag is checked by reading the file back
//! (MD5 cannot be combined). Progress is checkpointed at most once a second:
//! `fdatasync` of the file, then the resume record.

use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use md5::Digest as _;
use tokio::task::JoinSet;
use tracing::Instrument as _;

use super::download::{
    Ctx, Fetch, Fetched, Version, blocking, sync_file, temp_name, unverified_reason,
};
use super::error::SyncError;
use super::get::{Span, get_into};
use super::keys::RelPath;
use super::resume::Record;
use super::s3::{self, RequestError};
use super::verify::{CrcKind, Expected, check_crc};

const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// The resume record being filled in, and when it was last made durable.
struct Tracker {
    record: Record,
    last: Instant,
    busy: bool,
}

/// Download a large object into a verified, fsynced temporary file.
pub async fn fetch(
    ctx: &Arc<Ctx>,
    rel: &RelPath,
    key: &str,
    version: &Version,
) -> Result<Fetched, Fetch> {
    let head = s3::head(
        &ctx.client,
        &ctx.bucket,
        key,
        version.etag.as_deref(),
        &ctx.retry,
    )
    .await;
    let head = match head {
        Ok(h) if h.size == version.size => h,
        Ok(_) | Err(RequestError::Changed) => return Err(Fetch::Changed),
        Err(e) => return Err(Fetch::Failed(e.into_sync(&ctx.uri, key))),
    };
    let crc = match head.expected {
        Expected::Crc(kind, _) => Some(kind),
        _ => None,
    };
    let tmp = temp_name(rel);
    let want = Record {
        key: key.to_owned(),
        etag: version.etag.clone().unwrap_or_default(),
        size: version.size,
        part_size: ctx.part_size,
        crc,
        done: Default::default(),
    };
    let (file, record) = open(ctx, &tmp, want, version.etag.is_some()).await?;
    let record = fetch_parts(ctx, key, version, &tmp, file.clone(), record, head.expected).await?;
    let verified = match verify(ctx, &file, &record, &head.expected).await? {
        Ok(v) => v,
        Err(reason) => {
            ctx.target.remove_temp(&tmp);
            ctx.target.remove_temp(&Record::name(&tmp));
            return Err(Fetch::Mismatch(reason));
        }
    };
    sync_file(ctx, &file, &tmp).await?;
    Ok(Fetched {
        resume: Some(Record::name(&tmp)),
        tmp,
        verified,
        unverified_because: unverified_reason(&head.expected),
    })
}

/// Reopen a resumable part file, or create and preallocate a fresh one.
async fn open(
    ctx: &Arc<Ctx>,
    tmp: &str,
    want: Record,
    pinned: bool,
) -> Result<(Arc<File>, Record), SyncError> {
    let target = Arc::clone(&ctx.target);
    let tmp = tmp.to_owned();
    blocking(move || {
        if pinned && let Some(rec) = Record::load(&target, &tmp, &want) {
            let file = target.open_temp(&tmp);
            if let Some(file) = file.filter(|f| f.metadata().is_ok_and(|m| m.len() == want.size)) {
                tracing::info!(
                    parts_done = rec.done.len(),
                    parts = rec.parts(),
                    "resuming download"
                );
                return Ok((Arc::new(file), rec));
            }
        }
        target.remove_temp(&Record::name(&tmp));
        let file = target.create_temp(&tmp)?;
        preallocate(&file, want.size).map_err(|e| SyncError::io(target.tmp_path(&tmp), e))?;
        Ok((Arc::new(file), want))
    })
    .await
}

/// Reserve the blocks up front (so a full disk fails early), or at least set
/// the length where the filesystem cannot preallocate.
fn preallocate(file: &File, size: u64) -> std::io::Result<()> {
    match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, size) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::OPNOTSUPP) => file.set_len(size),
        Err(e) => Err(e.into()),
    }
}

/// Fetch every part not in the record, in parallel; returns the full record.
async fn fetch_parts(
    ctx: &Arc<Ctx>,
    key: &str,
    version: &Version,
    tmp: &str,
    file: Arc<File>,
    record: Record,
    expected: Expected,
) -> Result<Record, Fetch> {
    let todo: Vec<u64> = (0..record.parts())
        .filter(|i| !record.done.contains_key(i))
        .collect();
    let tracker = Arc::new(Mutex::new(Tracker {
        record,
        last: Instant::now(),
        busy: false,
    }));
    let plan = match expected {
        Expected::Crc(..) => expected,
        _ => Expected::Nothing("hashed after download"),
    };
    let mut set = JoinSet::new();
    for i in todo {
        let (ctx, file, tracker) = (Arc::clone(ctx), Arc::clone(&file), Arc::clone(&tracker));
        let (key, version, tmp) = (key.to_owned(), version.clone(), tmp.to_owned());
        let span = tracing::debug_span!("part", part = i);
        set.spawn(
            async move {
                let (start, len) = lock(&tracker).record.part(i);
                let span = Span {
                    start,
                    len,
                    whole: false,
                };
                let (hasher, _) = get_into(&ctx, &key, &version, span, &file, Some(plan)).await?;
                lock(&tracker)
                    .record
                    .done
                    .insert(i, hasher.crc().unwrap_or(0));
                checkpoint(&ctx, &tmp, &file, &tracker)
                    .await
                    .map_err(Fetch::Failed)
            }
            .instrument(span),
        );
    }
    while let Some(joined) = set.join_next().await {
        joined.map_err(|e| {
            Fetch::Failed(SyncError::Transfer {
                key: key.to_owned(),
                reason: format!("part task failed: {e}"),
            })
        })??;
    }
    let record = lock(&tracker).record.clone();
    Ok(record)
}

fn lock(tracker: &Mutex<Tracker>) -> std::sync::MutexGuard<'_, Tracker> {
    tracker
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// At most once a second: make the finished parts durable, then record them.
async fn checkpoint(
    ctx: &Arc<Ctx>,
    tmp: &str,
    file: &Arc<File>,
    tracker: &Arc<Mutex<Tracker>>,
) -> Result<(), SyncError> {
    let snapshot = {
        let mut t = lock(tracker);
        if t.busy || t.last.elapsed() < CHECKPOINT_EVERY || t.record.etag.is_empty() {
            return Ok(());
        }
        t.busy = true;
        t.record.clone()
    };
    let (target, file, name) = (Arc::clone(&ctx.target), Arc::clone(file), Record::name(tmp));
    let path = ctx.target.tmp_path(tmp);
    let res = blocking(move || {
        file.sync_data().map_err(|e| SyncError::io(path, e))?;
        target.write_temp_atomic(&name, &snapshot.to_json())
    })
    .await;
    let mut t = lock(tracker);
    t.busy = false;
    t.last = Instant::now();
    res
}

/// Check the finished file against what S3 offered.
async fn verify(
    ctx: &Arc<Ctx>,
    file: &Arc<File>,
    record: &Record,
    expected: &Expected,
) -> Result<Result<Option<&'static str>, String>, SyncError> {
    match *expected {
        Expected::Crc(kind, want) => Ok(check_crc(kind, combined(kind, record), want)),
        Expected::Md5(want) => {
            // Reading back uses a pooled buffer, so it counts against the memory bound.
            let mut pooled = ctx.pool.acquire().await;
            let mut buf = pooled.take();
            buf.resize(pooled.capacity(), 0);
            let (file, path) = (Arc::clone(file), ctx.target.path().to_owned());
            let (buf, got) = blocking(move || {
                let got = md5_of(&file, &mut buf).map_err(|e| SyncError::io(path, e))?;
                Ok((buf, got))
            })
            .await?;
            pooled.restore(buf);
            Ok(if got == want {
                Ok(Some("md5"))
            } else {
                Err("md5 of the downloaded bytes differs from the ETag".to_owned())
            })
        }
        Expected::Nothing(_) => Ok(Ok(None)),
    }
}

/// The CRC of the whole object from the CRCs of its parts, in order.
fn combined(kind: CrcKind, record: &Record) -> u64 {
    let mut parts = record.done.iter();
    let Some((_, first)) = parts.next() else {
        return kind.checksum(&[]);
    };
    parts.fold(*first, |acc, (i, crc)| {
        kind.combine(acc, *crc, record.part(*i).1)
    })
}

fn md5_of(file: &File, buf: &mut [u8]) -> std::io::Result<[u8; 16]> {
    let mut hasher = md5::Md5::default();
    let mut offset = 0;
    loop {
        let n = file.read_at(buf, offset)?;
        if n == 0 {
            return Ok(hasher.finalize().into());
        }
        hasher.update(&buf[..n]);
        offset += n as u64;
    }
}
