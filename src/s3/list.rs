//! Listing a prefix: one paginated ListObjectsV2, every page through the
//! run's retry policy, reduced to what s3-seed uses of each entry.

use aws_sdk_s3::Client;

use super::error::S3Error;
use super::retry::{Retry, with_retry};

/// One entry of a listing, as far as s3-seed cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub size: u64,
    /// The ETag exactly as S3 returned it (with quotes).
    pub etag: Option<String>,
    /// Last-Modified in Unix seconds, the change token when a store gives no ETag.
    pub last_modified: Option<i64>,
}

/// List every key under `prefix` of `bucket` (one ListObjectsV2 per 1,000 keys).
pub async fn list(
    client: &Client,
    bucket: &str,
    prefix: &str,
    retry: &Retry,
) -> Result<Vec<Listed>, S3Error> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let req = client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_continuation_token(token.clone());
        let page = with_retry(retry, "", || req.clone().send()).await?;
        out.extend(page.contents().iter().filter_map(|o| {
            Some(Listed {
                key: o.key()?.to_owned(),
                size: u64::try_from(o.size().unwrap_or(0)).unwrap_or(0),
                etag: o.e_tag().map(str::to_owned),
                last_modified: o.last_modified().map(|t| t.secs()),
            })
        }));
        match page.next_continuation_token() {
            Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_owned()),
            _ => return Ok(out),
        }
    }
}
