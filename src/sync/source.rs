//! Selection: what one source holds, as the files it becomes. One paginated
//! listing of the prefix, then [`keys::select`] with the include/exclude
//! filters. It is a function of its own so that anything that must agree
//! with the sync about a source (a controller computing the source's
//! revision, say) asks the same question the same way.

use aws_sdk_s3::Client;

use super::error::SyncError;
use super::keys::{self, Filters, Wanted};
use crate::contract::{GlobList, S3Uri};
use crate::s3::{self, Retry, S3Error};

/// One source: where it lives and which of its keys belong to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSpec {
    pub uri: S3Uri,
    pub include: GlobList,
    pub exclude: GlobList,
}

/// The result of [`select`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Keys the listing returned, before any was filtered out.
    pub listed: u64,
    /// The objects that belong to the source, with the file each becomes.
    pub wanted: Vec<Wanted>,
}

/// List the source and select its objects. Fails naming the source when the
/// listing fails, or naming the key when one is hostile or conflicts.
pub async fn select(
    client: &Client,
    spec: &SourceSpec,
    retry: &Retry,
) -> Result<Selection, SyncError> {
    let (bucket, prefix) = (spec.uri.bucket(), spec.uri.prefix());
    let uri = format!("s3://{bucket}/{prefix}");
    let listed = s3::list(client, bucket, prefix, retry)
        .await
        .map_err(|e| match e {
            e @ S3Error::GaveUp(_) => SyncError::Source {
                uri: uri.clone(),
                reason: e.to_string(),
            },
            e => SyncError::s3(e, &uri, ""),
        })?;
    let count = listed.len() as u64;
    let filters = Filters::new(spec.include.compile(), spec.exclude.compile());
    let wanted = keys::select(prefix, listed, &filters)?;
    Ok(Selection {
        listed: count,
        wanted,
    })
}
