//! Listing a prefix: one paginated ListObjectsV2 with URL-encoded keys,
//! every page through the run's retry policy and the rules of [`super::pages`]
//! (decoded keys, real sizes, a listing that ends), reduced to what s3-seed
//! uses of each entry; and the
//! one rule for "same version" ([`VersionToken`]), which the sync's skip
//! decision and anything that tracks a source's revision share.

use aws_sdk_s3::Client;
use aws_sdk_s3::types::EncodingType;

use super::error::S3Error;
use super::pages::{self, Pages};
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

impl Listed {
    /// The version this entry describes, if it can be told apart at all.
    pub fn version(&self) -> Option<VersionToken> {
        VersionToken::new(
            &self.key,
            self.size,
            self.etag.as_deref(),
            self.last_modified,
        )
    }
}

/// What identifies one version of an object: key, size and ETag, or
/// Last-Modified when the store gives no ETag (an ETag, when there is one,
/// decides alone). Two descriptions are of the same version exactly when
/// their tokens are equal. An object with neither ETag nor Last-Modified has
/// no token: it is never the same version as anything.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VersionToken {
    key: String,
    size: u64,
    change: Change,
}

/// The part of a [`VersionToken`] that changes with each upload.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Change {
    ETag(String),
    LastModified(i64),
}

impl VersionToken {
    /// The token of an object described by these fields (from a listing, a
    /// HEAD or a record of an earlier sync); `None` when nothing can tell
    /// its versions apart.
    pub fn new(
        key: &str,
        size: u64,
        etag: Option<&str>,
        last_modified: Option<i64>,
    ) -> Option<Self> {
        let change = match (etag, last_modified) {
            (Some(etag), _) => Change::ETag(etag.to_owned()),
            (None, Some(secs)) => Change::LastModified(secs),
            (None, None) => return None,
        };
        Some(Self {
            key: key.to_owned(),
            size,
            change,
        })
    }

    /// A text form that is equal exactly when the tokens are, and the same
    /// in every process and release (a source revision is a hash of it).
    pub fn canonical(&self) -> String {
        let change = match &self.change {
            Change::ETag(etag) => format!("etag {etag}"),
            Change::LastModified(secs) => format!("mtime {secs}"),
        };
        format!("{}:{} {} {change}", self.key.len(), self.key, self.size)
    }
}

/// List every key under `prefix` of `bucket` (one ListObjectsV2 per 1,000
/// keys). A listing the store breaks (see [`super::pages`]) fails as
/// [`S3Error::Fatal`] saying so.
pub async fn list(
    client: &Client,
    bucket: &str,
    prefix: &str,
    retry: &Retry,
) -> Result<Vec<Listed>, S3Error> {
    let broken = |why: String| S3Error::Fatal(format!("the store's listing is broken: {why}"));
    let (mut out, mut pages) = (Vec::new(), Pages::default());
    let mut token: Option<String> = None;
    loop {
        let req = client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .encoding_type(EncodingType::Url)
            .set_continuation_token(token.clone());
        let page = with_retry(retry, "", || req.clone().send())
            .await
            .map_err(|e| match e {
                S3Error::Fatal(d) => S3Error::Fatal(pages::explain(d)),
                e => e,
            })?;
        let url = page.encoding_type() == Some(&EncodingType::Url);
        let start = out.len();
        for o in page.contents() {
            let Some(raw) = o.key() else { continue };
            let key = pages::decode_key(raw, url).map_err(broken)?;
            out.push(Listed {
                size: pages::size(&key, o.size()).map_err(broken)?,
                key,
                etag: o.e_tag().map(str::to_owned),
                last_modified: o.last_modified().map(|t| t.secs()),
            });
        }
        let keys: Vec<&str> = out[start..].iter().map(|o| o.key.as_str()).collect();
        let truncated = page.is_truncated() == Some(true);
        match pages.next(&keys, truncated, page.next_continuation_token()) {
            Ok(Some(next)) => token = Some(next),
            Ok(None) => return Ok(out),
            Err(why) => return Err(broken(why)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(key: &str, size: u64, etag: Option<&str>, secs: Option<i64>) -> Listed {
        Listed {
            key: key.to_owned(),
            size,
            etag: etag.map(str::to_owned),
            last_modified: secs,
        }
    }

    #[test]
    fn same_version_rule() {
        let base = listed("k", 10, Some("\"e1\""), Some(100));
        let cases = [
            (listed("k", 10, Some("\"e1\""), Some(100)), true),
            (listed("k", 10, Some("\"e1\""), Some(200)), true), // the ETag decides alone
            (listed("k", 10, Some("\"e2\""), Some(100)), false),
            (listed("k", 11, Some("\"e1\""), Some(100)), false),
            (listed("other", 10, Some("\"e1\""), Some(100)), false),
            (listed("k", 10, None, Some(100)), false), // an ETag only on one side
        ];
        for (other, same) in cases {
            assert_eq!(base.version() == other.version(), same, "{other:?}");
        }
        let no_etag = listed("k", 10, None, Some(100));
        assert_eq!(
            no_etag.version(),
            listed("k", 10, None, Some(100)).version()
        );
        assert_ne!(
            no_etag.version(),
            listed("k", 10, None, Some(101)).version()
        );
        assert_eq!(listed("k", 10, None, None).version(), None);
    }
}
