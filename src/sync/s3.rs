//! The S3 side: building the SDK client the way an init container needs it,
//! listing the source, HEAD and GetObjectAttributes requests, all through the
//! run's retry policy.
//!
//! The client uses the AWS default chains (env keys, web identity/IRSA, EKS
//! Pod Identity, profile, IMDS) for credentials and region, honours
//! `AWS_ENDPOINT_URL`, a CA bundle (`AWS_CA_BUNDLE`, added to the system roots) and
//! `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY`. The SDK's own retries and stalled
//! stream protection are off: [`super::retry`] and the stall timeout of the
//! download workers handle both, with one budget.

use std::error::Error as StdError;
use std::future::Future;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::meta::region::RegionProviderChain;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{Region, ResponseChecksumValidation, StalledStreamProtectionConfig};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types::{ChecksumMode, ObjectAttributes};
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use aws_smithy_http_client::{Builder, ConnectorBuilder};
use rustls::pki_types::{CertificateDer, pem::PemObject};

use super::composite;
use super::config::SyncConfig;
use super::error::SyncError;
use super::keys::Listed;
use super::retry::{Class, Retry, classify};
use super::verify::{CrcKind, Expected, Offered, expected};

/// Environment variable naming a PEM bundle of extra trusted CAs.
pub const CA_BUNDLE_ENV: &str = "AWS_CA_BUNDLE";

/// Build the S3 client for `cfg` (see the module docs for what is honoured).
pub async fn build_client(cfg: &SyncConfig) -> Result<Client, SyncError> {
    let http = http_client(cfg.ca_bundle.as_deref())?;
    let region = RegionProviderChain::first_try(cfg.region.clone().map(Region::new))
        .or_default_provider()
        .or_else(Region::from_static("us-east-1"));
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(cfg.stall_timeout)
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(region)
        .http_client(http)
        .retry_config(RetryConfig::disabled())
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
        .timeout_config(timeouts);
    if let Some(endpoint) = &cfg.endpoint {
        loader = loader.endpoint_url(endpoint.as_str());
    }
    let sdk = loader.load().await;
    let conf = aws_sdk_s3::config::Builder::from(&sdk)
        .force_path_style(cfg.path_style)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .build();
    Ok(Client::from_conf(conf))
}

/// An HTTPS client trusting the system roots plus an optional PEM bundle,
/// and routing through the proxy named by the environment.
fn http_client(
    ca_bundle: Option<&std::path::Path>,
) -> Result<aws_sdk_s3::config::SharedHttpClient, SyncError> {
    let mut trust = TrustStore::default();
    if let Some(path) = ca_bundle {
        let pem = std::fs::read(path)
            .map_err(|e| SyncError::Config(format!("{CA_BUNDLE_ENV} {}: {e}", path.display())))?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SyncError::Config(format!("{CA_BUNDLE_ENV} {}: {e}", path.display())))?;
        if certs.is_empty() {
            let msg = format!(
                "{CA_BUNDLE_ENV} {}: no PEM certificate found",
                path.display()
            );
            return Err(SyncError::Config(msg));
        }
        trust = trust.with_pem_certificate(pem);
    }
    let tls_context = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .map_err(|e| SyncError::Config(format!("tls: {e}")))?;
    let proxy = ProxyConfig::from_env();
    Ok(
        Builder::new().build_with_connector_fn(move |settings, components| {
            let mut conn = ConnectorBuilder::default()
                .tls_provider(tls::Provider::Rustls(
                    tls::rustls_provider::CryptoMode::AwsLc,
                ))
                .tls_context(tls_context.clone());
            conn.set_connector_settings(settings.cloned());
            if let Some(components) = components {
                conn.set_sleep_impl(components.sleep_impl());
            }
            conn.set_proxy_config(Some(proxy.clone()));
            conn.build()
        }),
    )
}

/// Why a request (after retries) did not succeed.
#[derive(Debug)]
pub enum RequestError {
    /// `If-Match` failed: the object was replaced.
    Changed,
    NotFound(String),
    Credentials(String),
    Fatal(String),
    /// Retries exhausted (already a [`SyncError::Transfer`]).
    GaveUp(SyncError),
}

impl RequestError {
    /// The sync error for a request about `key` of `uri`.
    pub fn into_sync(self, uri: &str, key: &str) -> SyncError {
        let source = |reason: String| SyncError::Source {
            uri: uri.to_owned(),
            reason,
        };
        match self {
            Self::Changed => source(format!("key {key:?} changed repeatedly during the sync")),
            Self::NotFound(d) if key.is_empty() => source(format!("bucket not found ({d})")),
            Self::NotFound(d) => source(format!("key {key:?} not found ({d})")),
            Self::Credentials(d) => SyncError::Config(format!("credentials or client setup: {d}")),
            Self::Fatal(d) => source(if key.is_empty() {
                d
            } else {
                format!("key {key:?}: {d}")
            }),
            Self::GaveUp(e) => e,
        }
    }
}

/// Send a request (built afresh by `send` for each attempt) with retries.
pub async fn with_retry<T, E, F, Fut>(
    retry: &Retry,
    key: &str,
    mut send: F,
) -> Result<T, RequestError>
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
{
    let mut failures = 0;
    loop {
        let err = match send().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        match classify(&err) {
            Class::Transient(why) => {
                failures += 1;
                retry
                    .backoff(failures, key, &why)
                    .await
                    .map_err(RequestError::GaveUp)?;
            }
            Class::Changed => return Err(RequestError::Changed),
            Class::NotFound(d) => return Err(RequestError::NotFound(d)),
            Class::Credentials(d) => return Err(RequestError::Credentials(d)),
            Class::Fatal(d) => return Err(RequestError::Fatal(d)),
        }
    }
}

/// List every key under the source prefix (one ListObjectsV2 per 1,000 keys).
pub async fn list(
    client: &Client,
    bucket: &str,
    prefix: &str,
    retry: &Retry,
) -> Result<Vec<Listed>, SyncError> {
    let uri = format!("s3://{bucket}/{prefix}");
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let req = client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_continuation_token(token.clone());
        let page = with_retry(retry, "", || req.clone().send())
            .await
            .map_err(|e| match e {
                RequestError::GaveUp(e) => SyncError::Source {
                    uri: uri.clone(),
                    reason: e.to_string(),
                },
                e => e.into_sync(&uri, ""),
            })?;
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

/// What a HEAD says about the current version of an object.
#[derive(Debug, Clone)]
pub struct Head {
    pub etag: Option<String>,
    pub size: u64,
    pub last_modified: Option<i64>,
    pub expected: Expected,
    /// A composite CRC, when there is no full-object one (see [`composite`]).
    pub composite: Option<composite::Offer>,
}

/// HEAD with `ChecksumMode::Enabled` (and `If-Match` when given).
pub async fn head(
    client: &Client,
    bucket: &str,
    key: &str,
    if_match: Option<&str>,
    retry: &Retry,
) -> Result<Head, RequestError> {
    let req = client
        .head_object()
        .bucket(bucket)
        .key(key)
        .set_if_match(if_match.map(str::to_owned))
        .checksum_mode(ChecksumMode::Enabled);
    let out = with_retry(retry, key, || req.clone().send()).await?;
    let offered = Offered {
        crc64nvme: out.checksum_crc64_nvme(),
        crc32c: out.checksum_crc32_c(),
        crc32: out.checksum_crc32(),
        etag: out.e_tag(),
        checksum_type: out.checksum_type().map(|t| t.as_str()),
    };
    let expected = expected(offered);
    Ok(Head {
        etag: out.e_tag().map(str::to_owned),
        size: u64::try_from(out.content_length().unwrap_or(0)).unwrap_or(0),
        last_modified: out.last_modified().map(|t| t.secs()),
        composite: matches!(expected, Expected::Nothing(_))
            .then(|| composite::offered(offered))
            .flatten(),
        expected,
    })
}

/// Every part of `key` (size and `kind` CRC) from GetObjectAttributes, 1,000
/// a page. `Err` says why not, for the log: the store lacks the API (501),
/// refuses it, the object changed (ETag other than `etag`), or retries ran out.
pub async fn object_parts(
    client: &Client,
    bucket: &str,
    key: &str,
    etag: Option<&str>,
    kind: CrcKind,
    retry: &Retry,
) -> Result<Vec<composite::ListedPart>, String> {
    let mut out = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let req = client
            .get_object_attributes()
            .bucket(bucket)
            .key(key)
            .object_attributes(ObjectAttributes::ObjectParts)
            .object_attributes(ObjectAttributes::Checksum)
            .max_parts(1000)
            .set_part_number_marker(marker.clone());
        let page = attributes_page(retry, key, || req.clone().send()).await?;
        let same = |e: &str| e.trim_matches('"') == etag.unwrap_or(e).trim_matches('"');
        if !page.e_tag().is_some_and(same) {
            return Err(format!("ETag {:?} is not the listed one", page.e_tag()));
        }
        let parts = page.object_parts().ok_or("no ObjectParts in the answer")?;
        out.extend(parts.parts().iter().map(|p| {
            composite::ListedPart {
                number: p.part_number(),
                size: p.size(),
                crc: match kind {
                    CrcKind::Crc32c => p.checksum_crc32_c(),
                    _ => p.checksum_crc32(),
                }
                .map(str::to_owned),
            }
        }));
        match parts.next_part_number_marker() {
            Some(next) if parts.is_truncated() == Some(true) => marker = Some(next.to_owned()),
            _ => return Ok(out),
        }
    }
}

/// One GetObjectAttributes page, retrying only transient failures: a store
/// without the API (501) or refusing it is answered once, not retried.
async fn attributes_page<T, E, F, Fut>(retry: &Retry, key: &str, send: F) -> Result<T, String>
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
{
    with_retry(retry, key, send).await.map_err(|e| match e {
        RequestError::Changed => "the object changed".to_owned(),
        RequestError::GaveUp(e) => e.to_string(),
        RequestError::NotFound(why) | RequestError::Credentials(why) | RequestError::Fatal(why) => {
            why
        }
    })
}
