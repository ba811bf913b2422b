//! The `s3s::S3` implementation the server runs: s3s-fs, plus the few things a
//! sync client relies on that s3s-fs leaves out.
//!
//! - ListObjectsV2 entries get their ETag (and checksum algorithm) from
//!   HeadObject, because s3s-fs lists only key, size and mtime;
//! - GetObject and HeadObject honour `If-Match` (412 PreconditionFailed on
//!   mismatch, ranged or not), because s3s-fs ignores it;
//! - the first page of an undelimited ListObjectsV2 gets the entries armed
//!   with `S3Server::list_extra`, for keys no filesystem can hold;
//! - ListObjectsV2 with `encoding-type=url` URL-encodes its keys as S3 does
//!   (a space as `+`, everything but `A-Za-z0-9-_.~/` as `%XX`), because
//!   s3s-fs only echoes the parameter;
//! - a checksum armed with `S3Server::report_crc32` replaces what s3s-fs
//!   stored for that key in HeadObject, whole-object GetObject and listings,
//!   to play a store that reports composite checksums (moto, real S3);
//! - GetObjectAttributes (which s3s-fs lacks: 501 NotImplemented) answers for
//!   keys armed with `S3Server::report_composite` or `S3Server::list_parts`,
//!   listing their parts [`ATTRIBUTE_PAGE`] at a time so that clients must
//!   paginate, and only the attributes asked for (no ETag unless asked, as
//!   S3 and MinIO); other keys still get 501.
//!
//! Every other operation the harness uses is delegated untouched.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use http::{Extensions, HeaderMap, Method, Uri};
use s3s::auth::Credentials;
use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result, s3_error};

use super::{Reported, Shared, lock};

/// s3s-fs behind the `S3` trait, with listing ETags, `If-Match`, listing
/// injection and reported checksums.
pub(crate) struct Store {
    shared: Arc<Shared>,
}

/// An `S3Request` for calling the store directly, outside HTTP.
pub(crate) fn internal_request<T>(input: T, credentials: Option<Credentials>) -> S3Request<T> {
    S3Request {
        input,
        method: Method::GET,
        uri: Uri::default(),
        headers: HeaderMap::new(),
        extensions: Extensions::new(),
        credentials,
        region: None,
        service: None,
        trailing_headers: None,
    }
}

/// 412 PreconditionFailed unless `current` is the ETag an `If-Match` asks for.
fn check_if_match(condition: Option<&ETagCondition>, current: Option<&ETag>) -> S3Result<()> {
    let Some(ETagCondition::ETag(expected)) = condition else {
        return Ok(());
    };
    if current.is_some_and(|current| current.strong_cmp(expected)) {
        return Ok(());
    }
    Err(s3_error!(
        PreconditionFailed,
        "At least one of the pre-conditions you specified did not hold"
    ))
}

/// Put a [`Reported`] checksum (if any) in place of every checksum field of
/// a HeadObject or GetObject output (two types with the same fields).
macro_rules! overlay {
    ($reported:expr, $out:expr) => {
        if let Some(Reported {
            crc32: Some(crc32),
            checksum_type,
            ..
        }) = $reported
        {
            $out.checksum_crc32 = Some(crc32);
            $out.checksum_crc32c = None;
            $out.checksum_crc64nvme = None;
            $out.checksum_sha1 = None;
            $out.checksum_sha256 = None;
            $out.checksum_type = checksum_type.map(ChecksumType::from);
        }
    };
}

/// Parts per GetObjectAttributes page by default, whatever MaxParts asks (S3
/// allows 1,000); [`super::S3Server::set_attribute_page`] changes it.
pub(crate) const ATTRIBUTE_PAGE: usize = 2;

impl Store {
    pub fn new(shared: Arc<Shared>) -> Store {
        Store { shared }
    }

    /// HeadObject straight from s3s-fs (uncounted), with any reported checksum.
    async fn head(&self, bucket: &str, key: &str) -> S3Result<HeadObjectOutput> {
        let input = HeadObjectInput::builder()
            .bucket(bucket.to_owned())
            .key(key.to_owned())
            .build()
            .map_err(|e| s3_error!(InternalError, "head input: {e}"))?;
        let mut out = self
            .shared
            .fs
            .head_object(internal_request(input, None))
            .await?
            .output;
        overlay!(self.reported(key), out);
        Ok(out)
    }

    fn reported(&self, key: &str) -> Option<Reported> {
        lock(&self.shared.reported).get(key).cloned()
    }

    async fn guarded_head(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let condition = req.input.if_match.clone();
        let reported = self.reported(&req.input.key);
        let mut resp = self.shared.fs.head_object(req).await?;
        check_if_match(condition.as_ref(), resp.output.e_tag.as_ref())?;
        overlay!(reported, resp.output);
        Ok(resp)
    }

    async fn guarded_get(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        if req.input.if_match.is_some() {
            let head = self.head(&req.input.bucket, &req.input.key).await?;
            check_if_match(req.input.if_match.as_ref(), head.e_tag.as_ref())?;
        }
        let reported = self.reported(&req.input.key);
        let mut resp = self.shared.fs.get_object(req).await?;
        // As s3s-fs and S3 do: no checksum on a GET of part of the object.
        if resp.output.content_range.is_none() {
            overlay!(reported, resp.output);
        }
        Ok(resp)
    }

    async fn attributes(
        &self,
        req: S3Request<GetObjectAttributesInput>,
    ) -> S3Result<S3Response<GetObjectAttributesOutput>> {
        let input = req.input;
        let reported = self.reported(&input.key);
        let Some((reported, parts)) = reported.and_then(|r| Some((r.clone(), r.parts?))) else {
            return Err(s3_error!(NotImplemented, "GetObjectAttributes"));
        };
        let head = self.head(&input.bucket, &input.key).await?;
        let wants = |name| input.object_attributes.iter().any(|a| a.as_str() == name);
        let marker = usize::try_from(input.part_number_marker.unwrap_or(0)).unwrap_or(0);
        let max = usize::try_from(input.max_parts.unwrap_or(1000)).unwrap_or(1000);
        let page: Vec<ObjectPart> = (1..)
            .zip(&parts)
            .skip(marker)
            .take(max.clamp(1, self.shared.attribute_page.load(Ordering::SeqCst)))
            .map(|(n, (size, crc))| ObjectPart {
                part_number: Some(n),
                size: i64::try_from(*size).ok(),
                checksum_crc32: crc.clone(),
                ..ObjectPart::default()
            })
            .collect();
        let next = marker + page.len();
        let object_parts = GetObjectAttributesParts {
            is_truncated: Some(next < parts.len()),
            max_parts: input.max_parts,
            next_part_number_marker: i32::try_from(next).ok(),
            part_number_marker: input.part_number_marker,
            total_parts_count: i32::try_from(parts.len()).ok(),
            parts: Some(page),
        };
        let checksum = reported.crc32.map(|crc32| Checksum {
            checksum_crc32: Some(crc32),
            checksum_type: reported.checksum_type.map(ChecksumType::from),
            ..Checksum::default()
        });
        Ok(S3Response::new(GetObjectAttributesOutput {
            // As S3 and MinIO: only the attributes asked for.
            e_tag: head.e_tag.filter(|_| wants(ObjectAttributes::ETAG)),
            object_size: head.content_length,
            last_modified: head.last_modified,
            checksum: checksum.filter(|_| wants(ObjectAttributes::CHECKSUM)),
            object_parts: wants(ObjectAttributes::OBJECT_PARTS).then_some(object_parts),
            ..GetObjectAttributesOutput::default()
        }))
    }

    async fn listed_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let bucket = req.input.bucket.clone();
        let prefix = req.input.prefix.clone().unwrap_or_default();
        let url = req
            .input
            .encoding_type
            .as_ref()
            .is_some_and(|e| e.as_str() == EncodingType::URL);
        let first_flat_page = req.input.continuation_token.is_none()
            && req.input.start_after.is_none()
            && req.input.delimiter.is_none();
        let mut resp = self.shared.fs.list_objects_v2(req).await?;
        for object in resp.output.contents.iter_mut().flatten() {
            self.describe(&bucket, object).await;
        }
        if first_flat_page {
            self.inject_extra(&mut resp.output, &prefix);
        }
        if url {
            for object in resp.output.contents.iter_mut().flatten() {
                object.key = object.key.as_deref().map(url_encode);
            }
        }
        Ok(resp)
    }

    /// Fill ETag and checksum algorithm as real S3 lists them.
    async fn describe(&self, bucket: &str, object: &mut Object) {
        let Some(key) = object.key.as_deref() else {
            return;
        };
        // An object deleted between list and head keeps a bare entry, as a racing S3 listing would.
        let Ok(head) = self.head(bucket, key).await else {
            return;
        };
        let algorithms: Vec<ChecksumAlgorithm> = [
            (head.checksum_crc32.is_some(), ChecksumAlgorithm::CRC32),
            (head.checksum_crc32c.is_some(), ChecksumAlgorithm::CRC32C),
            (
                head.checksum_crc64nvme.is_some(),
                ChecksumAlgorithm::CRC64NVME,
            ),
            (head.checksum_sha1.is_some(), ChecksumAlgorithm::SHA1),
            (head.checksum_sha256.is_some(), ChecksumAlgorithm::SHA256),
        ]
        .into_iter()
        .filter(|(present, _)| *present)
        .map(|(_, name)| ChecksumAlgorithm::from_static(name))
        .collect();
        if !algorithms.is_empty() {
            object.checksum_algorithm = Some(algorithms);
            let full = || ChecksumType::from_static(ChecksumType::FULL_OBJECT);
            object.checksum_type = Some(head.checksum_type.unwrap_or_else(full));
        }
        object.e_tag = head.e_tag;
    }

    fn inject_extra(&self, out: &mut ListObjectsV2Output, prefix: &str) {
        let extra = lock(&self.shared.extra);
        let injected = extra.iter().filter(|(key, _)| key.starts_with(prefix));
        let contents = out.contents.get_or_insert_with(Vec::new);
        for (n, (key, size)) in injected.enumerate() {
            contents.push(Object {
                key: Some(key.clone()),
                size: Some(i64::try_from(*size).unwrap_or(i64::MAX)),
                e_tag: Some(ETag::Strong(format!("{:032x}", n + 1))),
                last_modified: Some(Timestamp::from(SystemTime::now())),
                ..Object::default()
            });
        }
        contents.sort_by(|a, b| a.key.cmp(&b.key));
        out.key_count = Some(i32::try_from(contents.len()).unwrap_or(i32::MAX));
    }
}

/// A key as S3 writes it under `encoding-type=url`.
fn url_encode(key: &str) -> String {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    const KEPT: &percent_encoding::AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'/');
    utf8_percent_encode(key, KEPT)
        .to_string()
        .replace("%20", "+")
}

/// Implement `S3` for `Store`: listed operations go to s3s-fs untouched, the
/// ones with `=> method` to an inherent method of `Store`.
macro_rules! s3_impl {
    ($($op:ident($input:ident) -> $output:ident $(=> $own:ident)?;)*) => {
        #[async_trait::async_trait]
        impl S3 for Store {
            $(
                async fn $op(&self, req: S3Request<$input>) -> S3Result<S3Response<$output>> {
                    s3_impl!(@call self, req, $op $(, $own)?)
                }
            )*
        }
    };
    (@call $self:ident, $req:ident, $op:ident) => { $self.shared.fs.$op($req).await };
    (@call $self:ident, $req:ident, $op:ident, $own:ident) => { $self.$own($req).await };
}

s3_impl! {
    create_bucket(CreateBucketInput) -> CreateBucketOutput;
    delete_bucket(DeleteBucketInput) -> DeleteBucketOutput;
    head_bucket(HeadBucketInput) -> HeadBucketOutput;
    list_buckets(ListBucketsInput) -> ListBucketsOutput;
    get_bucket_location(GetBucketLocationInput) -> GetBucketLocationOutput;
    list_objects(ListObjectsInput) -> ListObjectsOutput;
    list_objects_v2(ListObjectsV2Input) -> ListObjectsV2Output => listed_v2;
    get_object(GetObjectInput) -> GetObjectOutput => guarded_get;
    head_object(HeadObjectInput) -> HeadObjectOutput => guarded_head;
    get_object_attributes(GetObjectAttributesInput) -> GetObjectAttributesOutput => attributes;
    put_object(PutObjectInput) -> PutObjectOutput;
    copy_object(CopyObjectInput) -> CopyObjectOutput;
    delete_object(DeleteObjectInput) -> DeleteObjectOutput;
    delete_objects(DeleteObjectsInput) -> DeleteObjectsOutput;
    create_multipart_upload(CreateMultipartUploadInput) -> CreateMultipartUploadOutput;
    upload_part(UploadPartInput) -> UploadPartOutput;
    upload_part_copy(UploadPartCopyInput) -> UploadPartCopyOutput;
    list_parts(ListPartsInput) -> ListPartsOutput;
    complete_multipart_upload(CompleteMultipartUploadInput) -> CompleteMultipartUploadOutput;
    abort_multipart_upload(AbortMultipartUploadInput) -> AbortMultipartUploadOutput;
}
