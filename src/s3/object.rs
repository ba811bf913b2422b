//! Requests about one object that are not downloads: HEAD (which pins a
//! version and says what can be verified) and GetObjectAttributes (the parts
//! of a multipart upload: sizes, and CRCs when the upload had them). Answers
//! are returned as S3 sent them; deciding what they mean for verification is
//! the caller's job.

use aws_sdk_s3::Client;
use aws_sdk_s3::types::{ChecksumMode, ObjectAttributes};

use super::error::S3Error;
use super::retry::{Retry, with_retry};

/// The checksum headers of an answer, as S3 sent them (base64, maybe `-N`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checksums {
    pub crc64nvme: Option<String>,
    pub crc32c: Option<String>,
    pub crc32: Option<String>,
    /// `x-amz-checksum-type` (`FULL_OBJECT` or `COMPOSITE`).
    pub checksum_type: Option<String>,
}

/// What a HEAD says about the current version of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub etag: Option<String>,
    pub size: u64,
    pub last_modified: Option<i64>,
    pub checksums: Checksums,
}

/// HEAD with `ChecksumMode::Enabled` (and `If-Match` when given).
pub async fn head(
    client: &Client,
    bucket: &str,
    key: &str,
    if_match: Option<&str>,
    retry: &Retry,
) -> Result<Head, S3Error> {
    let req = client
        .head_object()
        .bucket(bucket)
        .key(key)
        .set_if_match(if_match.map(str::to_owned))
        .checksum_mode(ChecksumMode::Enabled);
    let out = with_retry(retry, key, || req.clone().send()).await?;
    let owned = |v: Option<&str>| v.map(str::to_owned);
    Ok(Head {
        etag: owned(out.e_tag()),
        size: u64::try_from(out.content_length().unwrap_or(0)).unwrap_or(0),
        last_modified: out.last_modified().map(|t| t.secs()),
        checksums: Checksums {
            crc64nvme: owned(out.checksum_crc64_nvme()),
            crc32c: owned(out.checksum_crc32_c()),
            crc32: owned(out.checksum_crc32()),
            checksum_type: owned(out.checksum_type().map(|t| t.as_str())),
        },
    })
}

/// One part of a multipart object, as GetObjectAttributes lists it (raw).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectPart {
    pub number: Option<i32>,
    pub size: Option<i64>,
    /// Base64 CRC32C of the part, when the upload used CRC32C.
    pub crc32c: Option<String>,
    /// Base64 CRC32 of the part, when the upload used CRC32.
    pub crc32: Option<String>,
}

/// Every part of `key` (size and CRC) from GetObjectAttributes, 1,000 a page.
/// Fails when the store lacks the API (501) or refuses it, when the object is
/// not the one with `etag` (as [`S3Error::Fatal`]), or when retries ran out.
/// Only transient failures are retried.
pub async fn object_parts(
    client: &Client,
    bucket: &str,
    key: &str,
    etag: Option<&str>,
    retry: &Retry,
) -> Result<Vec<ObjectPart>, S3Error> {
    let mut out = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let req = client
            .get_object_attributes()
            .bucket(bucket)
            .key(key)
            .object_attributes(ObjectAttributes::ObjectParts)
            .object_attributes(ObjectAttributes::Checksum)
            // S3 and MinIO send the ETag only when asked for it.
            .object_attributes(ObjectAttributes::Etag)
            .max_parts(1000)
            .set_part_number_marker(marker.clone());
        let page = with_retry(retry, key, || req.clone().send()).await?;
        let same = |e: &str| e.trim_matches('"') == etag.unwrap_or(e).trim_matches('"');
        if !page.e_tag().is_some_and(same) {
            let msg = format!("ETag {:?} is not the listed one", page.e_tag());
            return Err(S3Error::Fatal(msg));
        }
        let parts = page.object_parts();
        let parts = parts.ok_or_else(|| S3Error::Fatal("no ObjectParts in the answer".into()))?;
        out.extend(parts.parts().iter().map(|p| ObjectPart {
            number: p.part_number(),
            size: p.size(),
            crc32c: p.checksum_crc32_c().map(str::to_owned),
            crc32: p.checksum_crc32().map(str::to_owned),
        }));
        match parts.next_part_number_marker() {
            Some(next) if parts.is_truncated() == Some(true) => marker = Some(next.to_owned()),
            _ => return Ok(out),
        }
    }
}
