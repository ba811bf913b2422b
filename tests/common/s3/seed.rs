//! Seeding helpers: upload through the SDK, as a real producer would, with a
//! marker header so the server neither counts nor faults these requests.
//!
//! Plain [`S3Server::put`] sends no checksum (`WhenRequired`), like older
//! tools: the object then has only an MD5 ETag. [`S3Server::put_with_checksum`]
//! sends the chosen algorithm, which s3s-fs verifies and stores.
//! [`composite_crc32`] computes the checksum a store that keeps per-part
//! CRCs reports for a multipart upload, for `S3Server::report_crc32`;
//! [`S3Server::report_composite`] also serves the per-part CRCs.

use aws_sdk_s3::Client;
use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_s3::config::{ConfigBag, Intercept, RequestChecksumCalculation, RuntimeComponents};
use aws_sdk_s3::error::BoxError;
use aws_sdk_s3::operation::put_object::PutObjectOutput;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use crc_fast::CrcAlgorithm;

use super::http::SEED_HEADER;
use super::{BUCKET, Reported, S3Server, lock};

fn crc32(data: &[u8]) -> u32 {
    let crc = crc_fast::checksum(CrcAlgorithm::Crc32IsoHdlc, data);
    u32::try_from(crc).expect("a CRC32 fits in 32 bits")
}

/// The composite CRC32 of `body` uploaded in parts of `part_size` bytes, in
/// base64: the CRC32 of the parts' big-endian CRC32s. moto 5 reports exactly
/// this for an aws CLI multipart upload; real S3 appends `-N` (N parts).
pub fn composite_crc32(body: &[u8], part_size: usize) -> String {
    let parts: Vec<u8> = body
        .chunks(part_size.max(1))
        .flat_map(|part| crc32(part).to_be_bytes())
        .collect();
    B64.encode(crc32(&parts).to_be_bytes())
}

/// How a store marks a composite checksum (see [`S3Server::report_composite`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marking {
    /// Real S3: `value-N` and `x-amz-checksum-type: COMPOSITE`.
    S3,
    /// moto 5: the bare value, no checksum type.
    Moto,
}

/// Adds [`SEED_HEADER`] to every request of the seeding client.
#[derive(Debug)]
struct SeedMark;

impl Intercept for SeedMark {
    fn name(&self) -> &'static str {
        "S3SeedHarnessSeedMark"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        context.request_mut().headers_mut().insert(SEED_HEADER, "1");
        Ok(())
    }
}

impl S3Server {
    /// Play a store that kept per-part CRC32s of `key`'s upload in parts of
    /// `part_size` bytes: HeadObject, whole-object GetObject and listings
    /// report the composite CRC32 (marked as `marking` says) and
    /// GetObjectAttributes lists each part's size and CRC32, computed here
    /// from the stored bytes. Returns the base64 CRC32 of each part.
    pub fn report_composite(&self, key: &str, part_size: usize, marking: Marking) -> Vec<String> {
        let path = self.root().join(BUCKET).join(key);
        let body = std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let parts: Vec<(u64, String)> = body
            .chunks(part_size.max(1))
            .map(|part| (part.len() as u64, B64.encode(crc32(part).to_be_bytes())))
            .collect();
        let composite = composite_crc32(&body, part_size);
        let (crc32, checksum_type) = match marking {
            Marking::S3 => (format!("{composite}-{}", parts.len()), Some("COMPOSITE")),
            Marking::Moto => (composite, None),
        };
        let reported = Reported {
            crc32: Some(crc32),
            checksum_type: checksum_type.map(str::to_owned),
            parts: Some(
                parts
                    .iter()
                    .map(|(n, crc)| (*n, Some(crc.clone())))
                    .collect(),
            ),
        };
        lock(&self.shared.reported).insert(key.to_owned(), reported);
        parts.into_iter().map(|(_, crc)| crc).collect()
    }

    /// Play a store that lists the parts of `key`'s upload (in parts of
    /// `part_size` bytes) in GetObjectAttributes, with sizes only: the upload
    /// carried no checksum, so HeadObject and GetObject are untouched.
    pub fn list_parts(&self, key: &str, part_size: usize) {
        let path = self.root().join(BUCKET).join(key);
        let len = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
            .len();
        let step = part_size.max(1) as u64;
        let parts = (0..len.div_ceil(step))
            .map(|i| (step.min(len - i * step), None))
            .collect();
        let reported = Reported {
            crc32: None,
            checksum_type: None,
            parts: Some(parts),
        };
        lock(&self.shared.reported).insert(key.to_owned(), reported);
    }

    /// The seeding client. `checksums` selects `WhenSupported`; without it the
    /// SDK sends no checksum (with `WhenRequired` it even ignores an explicit
    /// `checksum_algorithm` on PutObject, as probed with aws-sdk-s3 1.157).
    fn seed_client_with(&self, checksums: bool) -> Client {
        let calculation = if checksums {
            RequestChecksumCalculation::WhenSupported
        } else {
            RequestChecksumCalculation::WhenRequired
        };
        let config = self
            .config()
            .interceptor(SeedMark)
            .request_checksum_calculation(calculation);
        Client::from_conf(config.build())
    }

    fn seed_client(&self) -> Client {
        self.seed_client_with(false)
    }

    /// Upload `body` at `key` without a checksum; returns the ETag (quoted, as S3 sends it).
    /// Puts `body` as an upload of `part_size`-byte parts would store it,
    /// without uploading them: s3s-fs refuses parts under S3's 5 MiB minimum
    /// (10,000 real parts would be 50 GB), so the object is put whole and
    /// given the multipart ETag (`md5(part MD5s)-N`) where s3s-fs 0.14 keeps
    /// ETags, its `.bucket-B.object-K.internal.json`. HEAD, GET, If-Match and
    /// listings then all see that ETag. Returns it.
    pub async fn put_as_multipart(&self, key: &str, body: &[u8], part_size: usize) -> String {
        use md5::{Digest as _, Md5};
        self.put(key, body).await;
        let mut outer = Md5::new();
        let chunks = body.chunks(part_size.max(1));
        let n = chunks.len();
        for part in chunks {
            outer.update(Md5::digest(part));
        }
        let hex: String = outer
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let etag = format!("{hex}-{n}");
        self.set_etag(key, &etag);
        format!("\"{etag}\"")
    }

    /// Give `key` the ETag `etag` (unquoted) where s3s-fs 0.14 keeps ETags,
    /// its `.bucket-B.object-K.internal.json`: HEAD, GET, If-Match and
    /// listings then all see it. Plays a store whose ETag changed while the
    /// bytes did not (a re-upload with SSE-KMS, a copy).
    pub fn set_etag(&self, key: &str, etag: &str) {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let name = format!(
            ".bucket-{}.object-{}.internal.json",
            URL_SAFE_NO_PAD.encode(BUCKET),
            URL_SAFE_NO_PAD.encode(key)
        );
        let path = self.root().join(name);
        let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let mut info: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&raw).expect("s3s-fs internal info is a JSON object");
        info.insert("e_tag".to_owned(), etag.into());
        std::fs::write(&path, serde_json::to_vec(&info).expect("serialise"))
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    pub async fn put(&self, key: &str, body: &[u8]) -> String {
        let out = self
            .seed_client()
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(ByteStream::from(body.to_vec()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("seed put {key}: {e:?}"));
        out.e_tag.unwrap_or_default()
    }

    /// Upload `body` at `key` with a full-object checksum of `algorithm`.
    pub async fn put_with_checksum(
        &self,
        key: &str,
        body: &[u8],
        algorithm: ChecksumAlgorithm,
    ) -> PutObjectOutput {
        self.seed_client_with(true)
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .checksum_algorithm(algorithm)
            .body(ByteStream::from(body.to_vec()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("seed put {key} with checksum: {e:?}"))
    }

    /// Upload `body` at `key` as a multipart upload of `part_size` parts (s3s-fs
    /// requires every part but the last to be at least 5 MiB); returns the ETag.
    pub async fn put_multipart(&self, key: &str, body: &[u8], part_size: usize) -> String {
        let client = self.seed_client();
        let upload = client
            .create_multipart_upload()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await;
        let upload_id = upload
            .unwrap_or_else(|e| panic!("seed create multipart {key}: {e:?}"))
            .upload_id
            .expect("CreateMultipartUpload returns an upload id");
        let mut parts = Vec::new();
        for (n, chunk) in (1..).zip(body.chunks(part_size.max(1))) {
            let part = client
                .upload_part()
                .bucket(BUCKET)
                .key(key)
                .upload_id(&upload_id)
                .part_number(n)
                .body(ByteStream::from(chunk.to_vec()))
                .send()
                .await
                .unwrap_or_else(|e| panic!("seed upload part {n} of {key}: {e:?}"));
            parts.push(
                CompletedPart::builder()
                    .part_number(n)
                    .set_e_tag(part.e_tag)
                    .build(),
            );
        }
        let done = CompletedMultipartUpload::builder()
            .set_parts(Some(parts))
            .build();
        let out = client
            .complete_multipart_upload()
            .bucket(BUCKET)
            .key(key)
            .upload_id(&upload_id)
            .multipart_upload(done)
            .send()
            .await
            .unwrap_or_else(|e| panic!("seed complete multipart {key}: {e:?}"));
        out.e_tag.unwrap_or_default()
    }

    /// Delete `key` (no error if it is absent).
    pub async fn delete(&self, key: &str) {
        self.seed_client()
            .delete_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("seed delete {key}: {e:?}"));
    }
}
