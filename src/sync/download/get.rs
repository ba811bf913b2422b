//! One GET into a file, and a small object fetched with one GET.
//!
//! The GET: the request (`If-Match`, `Range` or `ChecksumMode`),
//! the checks of Content-Length and Content-Range, the body streamed through a
//! pooled buffer with a stall timeout on every chunk, hashed as it arrives and
//! written at its offset on a blocking thread, and the retry loop around it.
//! A retried range starts again from its first byte. A checksum mismatch,
//! ours or the SDK's (its response-checksum check fails the body stream), is
//! never retried here: it goes back to the object as [`Fetch::Mismatch`].

use std::sync::Arc;

use aws_sdk_s3::types::ChecksumMode;

use super::direct::PartFile;
use super::pool::{PooledBuf, payload};
use super::{Ctx, Fetch, Fetched, Version, sync_file, temp_stem, unverified_reason};
use crate::s3::{Class, classify, classify_body};
use crate::sync::config::TINY_OBJECT;
use crate::sync::error::SyncError;
use crate::sync::keys::RelPath;
use crate::sync::verify::{Expected, Hasher, Offered, expected};

/// Which bytes one GET asks for.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    pub start: u64,
    pub len: u64,
    /// The whole object, without a Range header (and with ChecksumMode).
    pub whole: bool,
}

/// Objects up to `part_size`: one GET (checksums come with the response).
pub async fn small(
    ctx: &Ctx,
    rel: &RelPath,
    key: &str,
    version: &Version,
) -> Result<Fetched, Fetch> {
    let (tmp, file) = ctx.target.create_temp(&temp_stem(rel), "tmp")?;
    let file = Arc::new(PartFile::plain(file));
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
        parts: None,
        reused: 0,
    })
}

/// One GET attempt's failure.
enum Attempt {
    Transient(String),
    Stop(Fetch),
}

/// GET `span` of `key` into `file` at its offset, with retries. The hash is
/// of the kind `pinned` says, or (when `None`) chosen from the response headers.
pub async fn get_into(
    ctx: &Ctx,
    key: &str,
    version: &Version,
    span: Span,
    file: &Arc<PartFile>,
    pinned: Option<Expected>,
) -> Result<(Hasher, Expected), Fetch> {
    let mut failures = 0;
    loop {
        let result = {
            let tiny = span.whole && version.size <= TINY_OBJECT;
            let pool = if tiny { &ctx.tiny_pool } else { &ctx.pool };
            let mut buf = pool.acquire().await;
            attempt(ctx, key, version, span, file, pinned, &mut buf).await
        };
        match result {
            Ok(done) => return Ok(done),
            Err(Attempt::Stop(f)) => return Err(f),
            Err(Attempt::Transient(why)) => {
                failures += 1;
                ctx.retry
                    .backoff(failures, key, &why)
                    .await
                    .map_err(SyncError::from)?;
            }
        }
    }
}

async fn attempt(
    ctx: &Ctx,
    key: &str,
    version: &Version,
    span: Span,
    file: &Arc<PartFile>,
    pinned: Option<Expected>,
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
    let expected = pinned.unwrap_or_else(|| {
        expected(Offered {
            crc64nvme: out.checksum_crc64_nvme(),
            crc32c: out.checksum_crc32_c(),
            crc32: out.checksum_crc32(),
            etag: out.e_tag(),
            checksum_type: out.checksum_type().map(|t| t.as_str()),
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
            Ok(Some(Err(e))) => return Err(request_failed(ctx, key, &classify_body(&e))),
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
        Class::Integrity(d) => Attempt::Stop(Fetch::Mismatch(d)),
        Class::Fatal(d) => stop(source(format!("key {key:?}: {d}"))),
    }
}

/// Write the buffer at `offset` on a blocking thread; returns bytes written.
async fn flush(
    ctx: &Ctx,
    file: &Arc<PartFile>,
    buf: &mut PooledBuf<'_>,
    offset: u64,
) -> Result<u64, Attempt> {
    if buf.data().is_empty() {
        return Ok(0);
    }
    let data = buf.take();
    let f = Arc::clone(file);
    let joined = tokio::task::spawn_blocking(move || {
        let res = f.write_all_at(payload(&data), offset);
        (data, res)
    })
    .await;
    let (data, res) = joined.map_err(|e| {
        Attempt::Stop(Fetch::Failed(SyncError::Io {
            path: ctx.target.path().to_owned(),
            source: std::io::Error::other(format!("write task failed: {e}")),
        }))
    })?;
    let n = payload(&data).len() as u64;
    buf.restore(data);
    res.map_err(|e| Attempt::Stop(Fetch::Failed(SyncError::io(ctx.target.path(), e))))?;
    Ok(n)
}
