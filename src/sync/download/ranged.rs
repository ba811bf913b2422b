//! Large objects: parallel ranged GETs written at their offsets into one
//! preallocated temporary file, resumable across runs.
//!
//! A HEAD (with `If-Match` and `ChecksumMode::Enabled`) pins the version and
//! says what can be verified. Each missing part is its own task; all of them
//! queue on the shared buffer pool, so a big object uses every free slot and
//! many big objects never use more memory than one. Part CRCs are combined
//! in order at the end; an MD5 ETag is checked by reading the file back
//! (MD5 cannot be combined). With only a composite CRC, GetObjectAttributes
//! gives the upload's parts and the ranges are cut at their boundaries, so
//! every part's CRC and the composite value can be checked
//! ([`crate::sync::parts`]). With no checksum at all but a multipart MD5
//! ETag, the ranges are the upload parts (listed by GetObjectAttributes, else
//! inferred from the size, [`crate::sync::mpu`]), each MD5-hashed as it is
//! written, and the MD5 of the MD5s is compared with the ETag; a mismatch
//! with inferred parts leaves the object unverified rather than failing.
//! GetObjectAttributes is asked only when the HEAD offers no full-object
//! check. Without any of these the object stays unverified.
//! Progress is checkpointed at most once a second: `fdatasync` of the file,
//! then the resume record. The part file is this run's alone (a fresh
//! `O_EXCL` name, or a dead run's file taken over by rename under the target
//! lock, its recorded parts read back and rechecked), so the CRCs combined at
//! the end are those of exactly the bytes on disk.
//! With the parts listed, the parts unchanged since the installed file was
//! fetched are copied from it before any GET ([`super::reuse`]): they enter
//! the record as ranges already done, and are checked with the rest.

use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tracing::Instrument as _;

use super::direct::PartFile;
use super::get::{Span, get_into};
use super::resume::Record;
use super::reuse;
use super::{Ctx, Fetch, Fetched, Version, blocking, sync_file, temp_stem, unverified_reason};
use crate::s3::{self, S3Error};
use crate::sync::error::SyncError;
use crate::sync::keys::RelPath;
use crate::sync::state::Entry;
use crate::sync::target::Target;
use crate::sync::verify::{CrcKind, Expected, Offered, check_crc, expected};
use crate::sync::{mpu, parts};

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
    installed: Option<&Entry>,
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
        Ok(_) | Err(S3Error::Changed) => return Err(Fetch::Changed),
        Err(e) => return Err(Fetch::Failed(SyncError::s3(e, &ctx.uri, key))),
    };
    let (head_expected, composite) = offered_checks(&head);
    let multipart = matches!(head_expected, Expected::Nothing(_))
        .then(|| head.etag.as_deref().and_then(mpu::parse))
        .flatten();
    let listed = match (composite, multipart) {
        (None, None) => Err("not asked".to_owned()),
        _ => listed_parts(ctx, key, version).await,
    };
    let upload = composite.and_then(|offer| composite_parts(offer, version.size, &listed));
    let plan = match multipart.filter(|_| upload.is_none()) {
        Some(etag) => md5_plan(etag, version.size, &listed),
        None => Err(unverified_reason(&head_expected).unwrap_or_default()),
    };
    let checksum = match (head_expected, &upload) {
        (Expected::Nothing(_), Some((offer, _))) => Expected::Crc(offer.kind, offer.value),
        _ => head_expected,
    };
    let stem = temp_stem(rel);
    let want = new_record(
        ctx,
        key,
        version,
        checksum,
        upload.as_ref(),
        plan.as_ref().ok(),
    );
    let (file, tmp, record) = open(ctx, &stem, want, version.etag.is_some()).await?;
    let (record, reused) = match &upload {
        Some(upload) => reuse::reuse(ctx, rel, installed, upload, &file, record).await?,
        None => (record, 0),
    };
    let record = fetch_parts(ctx, key, version, &stem, file.clone(), record).await?;
    let checks = Checks {
        expected: &head_expected,
        upload: upload.as_ref(),
        plan: plan.as_ref().ok(),
    };
    let checked = verify(ctx, &file, &record, &checks).await?;
    let (verified, unverified_because) = match (checked, &plan) {
        (Ok(Some(v)), _) => (Some(v), None),
        (Ok(None), Err(why)) if upload.is_none() => (None, Some(why.clone())),
        (Ok(None), _) => (None, None),
        (Err(reason), Ok((_, layout))) if !layout.confirmed => {
            (None, Some(mpu::guessed(layout, &reason)))
        }
        (Err(reason), _) => {
            ctx.target.remove_temp(&tmp);
            ctx.target.remove_temp(&Record::name(&stem));
            return Err(Fetch::Mismatch(reason));
        }
    };
    sync_file(ctx, &file, &tmp).await?;
    Ok(Fetched {
        resume: Some(Record::name(&stem)),
        tmp,
        verified,
        unverified_because,
        parts: upload.as_ref().map(reuse::part_sums),
        reused,
    })
}

/// A multipart ETag and the layout to check it against.
type Plan = (mpu::Etag, mpu::Layout);

/// What the finished file is checked against (see [`verify`]).
struct Checks<'a> {
    expected: &'a Expected,
    upload: Option<&'a Upload>,
    plan: Option<&'a Plan>,
}

/// The part layout for a multipart ETag (logged), or why there is none.
fn md5_plan(etag: mpu::Etag, size: u64, listed: &Listed) -> Result<Plan, String> {
    let sizes = listed.clone().map(|parts| {
        let size = |p: &s3::ObjectPart| p.size.and_then(|s| u64::try_from(s).ok()).unwrap_or(0);
        parts.iter().map(size).collect()
    });
    let layout = mpu::layout(size, etag.parts, sizes)?;
    tracing::info!(parts = etag.parts, how = %layout.how, "checking the multipart ETag part by part");
    Ok((etag, layout))
}

/// What a HEAD lets us check: the strongest whole-object check, and a
/// composite CRC when there is no such check (see [`composite`]).
fn offered_checks(head: &s3::Head) -> (Expected, Option<parts::Offer>) {
    let offered = Offered::of_head(head);
    let expected = expected(offered);
    let composite = matches!(expected, Expected::Nothing(_))
        .then(|| parts::offered(offered))
        .flatten();
    (expected, composite)
}

/// The resume record a fresh download of this version starts from: ranges
/// never cross an upload part when its CRCs are checked, and are exactly the
/// upload parts when the multipart ETag is.
fn new_record(
    ctx: &Ctx,
    key: &str,
    version: &Version,
    checksum: Expected,
    upload: Option<&Upload>,
    plan: Option<&Plan>,
) -> Record {
    let (part_size, upload_parts) = match (upload, plan) {
        (Some((_, p)), _) => (ctx.part_size, p.iter().map(|p| p.size).collect()),
        (None, Some((_, l))) => (l.parts.iter().copied().max().unwrap_or(1), l.parts.clone()),
        (None, None) => (ctx.part_size, Vec::new()),
    };
    Record {
        key: key.to_owned(),
        etag: version.etag.clone().unwrap_or_default(),
        size: version.size,
        part_size,
        crc: match checksum {
            Expected::Crc(kind, _) => Some(kind),
            _ => None,
        },
        upload_parts,
        md5: upload.is_none() && plan.is_some(),
        done: Default::default(),
        md5s: Default::default(),
        file: String::new(),
    }
}

/// A composite CRC and the upload parts it covers.
pub(super) type Upload = (parts::Offer, Vec<parts::Part>);

/// What GetObjectAttributes listed, or why nothing.
type Listed = Result<Vec<s3::ObjectPart>, String>;

/// The upload's parts from GetObjectAttributes (one page per 1,000 parts),
/// asked only when the HEAD offered no full-object check.
async fn listed_parts(ctx: &Ctx, key: &str, version: &Version) -> Listed {
    let etag = version.etag.as_deref();
    let listed = s3::object_parts(&ctx.client, &ctx.bucket, key, etag, &ctx.retry).await;
    listed.map_err(|e| e.to_string())
}

/// The upload's parts with their CRCs when the HEAD offered only a composite
/// CRC and GetObjectAttributes listed them usably; `None` (logged) otherwise.
fn composite_parts(offer: parts::Offer, size: u64, listed: &Listed) -> Option<Upload> {
    let listed = listed.clone().map(|parts| {
        let listed = |p| parts::ListedPart::of(p, offer.kind);
        parts.into_iter().map(listed).collect::<Vec<_>>()
    });
    match listed.and_then(|l| parts::layout(&offer, size, &l)) {
        Ok(parts) => Some((offer, parts)),
        Err(reason) => {
            tracing::info!(%reason, "no usable per-part checksums (GetObjectAttributes)");
            None
        }
    }
}

/// Check every upload part and the composite CRC from the range CRCs.
fn composite_check(
    offer: &parts::Offer,
    parts: &[parts::Part],
    record: &Record,
) -> Result<Option<&'static str>, String> {
    let ranges = record.ranges();
    let crcs: Option<Vec<u64>> = (0..ranges.len() as u64)
        .map(|i| record.done.get(&i).copied())
        .collect();
    let crcs = crcs.ok_or("a range is missing from the download record")?;
    parts::check(offer, parts, &ranges, &crcs).map(Some)
}

/// Take over a dead run's part file for this download (its recorded parts
/// read back and rechecked), or create and preallocate a fresh one. Returns
/// the file, its name and the record of what it holds.
async fn open(
    ctx: &Arc<Ctx>,
    stem: &str,
    want: Record,
    pinned: bool,
) -> Result<(Arc<PartFile>, String, Record), SyncError> {
    let (target, s, w) = (Arc::clone(&ctx.target), stem.to_owned(), want.clone());
    let adopted = blocking(move || adopt(&target, &s, &w, pinned)).await?;
    let Some((name, file, record)) = adopted else {
        return fresh(ctx, stem, want).await;
    };
    let file = Arc::new(PartFile::open(&ctx.target, &name, file));
    let f = Arc::clone(&file);
    let (record, rejected) = read_back(ctx, move |buf| {
        let mut record = record;
        let rejected = record.recheck(&f, buf);
        Ok((record, rejected))
    })
    .await?;
    tracing::info!(
        parts_done = record.done.len(),
        parts = record.parts(),
        rejected,
        "resuming download (recorded parts read back and checked)"
    );
    Ok((file, name, record))
}

/// A fresh, preallocated part file of this run, and its empty record.
async fn fresh(
    ctx: &Ctx,
    stem: &str,
    want: Record,
) -> Result<(Arc<PartFile>, String, Record), SyncError> {
    let (target, stem) = (Arc::clone(&ctx.target), stem.to_owned());
    blocking(move || {
        let (name, file) = target.create_temp(&stem, "part")?;
        preallocate(&file, want.size).map_err(|e| SyncError::io(target.tmp_path(&name), e))?;
        let record = Record {
            file: name.clone(),
            ..want
        };
        let file = PartFile::open(&target, &name, file);
        Ok((Arc::new(file), name, record))
    })
    .await
}

/// The part file of a record for exactly `want`, renamed to a name of this
/// run (the record rewritten to name it); leftovers of any other download
/// of the path are removed.
fn adopt(
    target: &Target,
    stem: &str,
    want: &Record,
    pinned: bool,
) -> Result<Option<(String, File, Record)>, SyncError> {
    let Some(rec) = Record::read(target, stem) else {
        return Ok(None);
    };
    let old = rec.part_file(stem).map(str::to_owned);
    if let Some(old) = old {
        let claimed = (pinned && rec.matches(want))
            .then(|| target.claim_temp(&old, stem, "part"))
            .flatten();
        match claimed {
            Some((name, file)) if file.metadata().is_ok_and(|m| m.len() == want.size) => {
                let rec = Record {
                    file: name.clone(),
                    ..rec
                };
                target.write_temp_atomic(&Record::name(stem), &rec.to_json())?;
                return Ok(Some((name, file, rec)));
            }
            Some((name, _)) => target.remove_temp(&name),
            None => target.remove_temp(&old),
        }
    }
    target.remove_temp(&Record::name(stem));
    Ok(None)
}

/// Run `read` on a blocking thread with a pooled buffer, so reading a file
/// back counts against the memory bound like a GET.
pub(super) async fn read_back<T: Send + 'static>(
    ctx: &Ctx,
    read: impl FnOnce(&mut [u8]) -> Result<T, SyncError> + Send + 'static,
) -> Result<T, SyncError> {
    let mut pooled = ctx.pool.acquire().await;
    let mut scratch = pooled.scratch();
    let (scratch, out) = blocking(move || {
        let out = read(scratch.bytes());
        Ok((scratch, out))
    })
    .await?;
    pooled.restore(scratch.into_inner());
    out
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
    stem: &str,
    file: Arc<PartFile>,
    record: Record,
) -> Result<Record, Fetch> {
    let ranges = record.ranges();
    let todo: Vec<(u64, (u64, u64))> = (0..)
        .zip(ranges)
        .filter(|(i, _)| !record.done.contains_key(i))
        .collect();
    // Every range is hashed (for the record), with the object's CRC if it
    // has one, or with MD5 when the ranges are the parts of a multipart ETag.
    let per_range = if record.md5 {
        Expected::Md5([0; 16])
    } else {
        Expected::Crc(record.check_kind(), 0)
    };
    let tracker = Arc::new(Mutex::new(Tracker {
        record,
        last: Instant::now(),
        busy: false,
    }));
    let mut set = JoinSet::new();
    for (i, (start, len)) in todo {
        let (ctx, file, tracker) = (Arc::clone(ctx), Arc::clone(&file), Arc::clone(&tracker));
        let (key, version, stem) = (key.to_owned(), version.clone(), stem.to_owned());
        let span = tracing::debug_span!("part", part = i);
        set.spawn(
            async move {
                let span = Span {
                    start,
                    len,
                    whole: false,
                };
                let (hasher, _) =
                    get_into(&ctx, &key, &version, span, &file, Some(per_range)).await?;
                lock(&tracker)
                    .record
                    .mark_done(i, hasher.crc(), hasher.md5());
                checkpoint(&ctx, &stem, &file, &tracker)
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
    stem: &str,
    file: &Arc<PartFile>,
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
    let (target, file, name) = (
        Arc::clone(&ctx.target),
        Arc::clone(file),
        Record::name(stem),
    );
    let path = ctx.target.tmp_path(&snapshot.file);
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

/// Check the finished file against what S3 offered: the upload parts and
/// composite CRC when listed, else the multipart ETag from the part MD5s,
/// else `expected`.
async fn verify(
    ctx: &Arc<Ctx>,
    file: &Arc<PartFile>,
    record: &Record,
    checks: &Checks<'_>,
) -> Result<Result<Option<&'static str>, String>, SyncError> {
    if let Some((offer, parts)) = checks.upload {
        return Ok(composite_check(offer, parts, record));
    }
    if let Some((etag, _)) = checks.plan {
        let md5s: Option<Vec<[u8; 16]>> = (0..record.parts())
            .map(|i| record.md5s.get(&i).copied())
            .collect();
        let Some(md5s) = md5s else {
            return Ok(Err(
                "a part MD5 is missing from the download record".to_owned()
            ));
        };
        return Ok(mpu::check(etag, &md5s).map(Some));
    }
    match *checks.expected {
        Expected::Crc(kind, want) => Ok(check_crc(kind, combined(kind, record), want)),
        Expected::Md5(want) => {
            let (file, path) = (Arc::clone(file), ctx.target.path().to_owned());
            let got = read_back(ctx, move |buf| {
                md5_of(&file, buf).map_err(|e| SyncError::io(path, e))
            })
            .await?;
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
    let ranges = record.ranges();
    record
        .done
        .iter()
        .fold(kind.checksum(&[]), |acc, (i, crc)| {
            let len = parts::range_at(&ranges, *i).map_or(0, |r| r.1);
            kind.combine(acc, *crc, len)
        })
}

fn md5_of(file: &File, buf: &mut [u8]) -> std::io::Result<[u8; 16]> {
    let mut hasher = md5_many::Md5State::new();
    let mut offset = 0;
    loop {
        let n = file.read_at(buf, offset)?;
        if n == 0 {
            return Ok(hasher.finalize());
        }
        hasher.update(&buf[..n]);
        offset += n as u64;
    }
}
