//! Building the SDK client the way s3-seed needs it, from a plain
//! [`ClientConfig`] (no clap, no component config).
//!
//! Credentials come from the AWS default chain (env keys, web identity/IRSA,
//! EKS Pod Identity, profile, IMDS) unless the config carries explicit
//! [`StaticCredentials`] (a controller reads them from a Secret). Region comes
//! from the config, else the default chain, else `us-east-1`. The client
//! honours `AWS_ENDPOINT_URL`, a CA bundle added to the system roots, and
//! `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY`. The SDK's own retries and stalled
//! stream protection are off: [`super::retry`] and the callers' stall timeouts
//! handle both, with one budget.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::meta::region::RegionProviderChain;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    Credentials, Region, ResponseChecksumValidation, StalledStreamProtectionConfig,
};
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use aws_smithy_http_client::{Builder, ConnectorBuilder};
use rustls::pki_types::{CertificateDer, pem::PemObject};

use super::error::S3Error;
use crate::contract::Endpoint;

/// Environment variable naming a PEM bundle of extra trusted CAs.
pub const CA_BUNDLE_ENV: &str = "AWS_CA_BUNDLE";

/// How long a TCP (and TLS) connection may take to establish.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything the client builder needs.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// An S3-compatible store instead of AWS.
    pub endpoint: Option<Endpoint>,
    /// Region to sign for; `None` asks the default chain.
    pub region: Option<String>,
    /// `http://host/bucket/key` addressing.
    pub path_style: bool,
    /// How long a response may take to start arriving.
    pub read_timeout: Duration,
    /// A PEM bundle of CAs trusted besides the system roots.
    pub ca_bundle: Option<PathBuf>,
    /// Explicit keys; `None` uses the AWS default chain.
    pub credentials: Option<StaticCredentials>,
}

/// An access key, its secret and an optional session token. `Debug` shows
/// none of them, so a config can be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct StaticCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &"** redacted **")
            .field("secret_access_key", &"** redacted **")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "** redacted **"),
            )
            .finish()
    }
}

/// Build the S3 client for `cfg` (see the module docs for what is honoured).
pub async fn build_client(cfg: &ClientConfig) -> Result<Client, S3Error> {
    let http = http_client(cfg.ca_bundle.as_deref())?;
    let region = RegionProviderChain::first_try(cfg.region.clone().map(Region::new))
        .or_default_provider()
        .or_else(Region::from_static("us-east-1"));
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(cfg.read_timeout)
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
    if let Some(keys) = &cfg.credentials {
        loader = loader.credentials_provider(Credentials::new(
            &keys.access_key_id,
            &keys.secret_access_key,
            keys.session_token.clone(),
            None,
            "s3-seed",
        ));
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
fn http_client(ca_bundle: Option<&Path>) -> Result<aws_sdk_s3::config::SharedHttpClient, S3Error> {
    let mut trust = TrustStore::default();
    if let Some(path) = ca_bundle {
        trust = trust.with_pem_certificate(read_bundle(path)?);
    }
    let tls_context = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .map_err(|e| S3Error::Setup(format!("tls: {e}")))?;
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

/// The PEM bytes of a CA bundle that holds at least one certificate.
fn read_bundle(path: &Path) -> Result<Vec<u8>, S3Error> {
    let fail = |why: String| S3Error::Setup(format!("{CA_BUNDLE_ENV} {}: {why}", path.display()));
    let pem = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(e.to_string()))?;
    if certs.is_empty() {
        return Err(fail("no PEM certificate found".to_owned()));
    }
    Ok(pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_credentials() {
        let cfg = ClientConfig {
            endpoint: None,
            region: Some("eu-west-1".to_owned()),
            path_style: false,
            read_timeout: Duration::from_secs(1),
            ca_bundle: None,
            credentials: Some(StaticCredentials {
                access_key_id: "AKIDEXAMPLEKEY".to_owned(),
                secret_access_key: "wJalrXUtnFEMIsecret".to_owned(),
                session_token: Some("FwoGZXIvYXdzEtoken".to_owned()),
            }),
        };
        let shown = format!("{cfg:?} {cfg:#?}");
        for secret in [
            "AKIDEXAMPLEKEY",
            "wJalrXUtnFEMIsecret",
            "FwoGZXIvYXdzEtoken",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("eu-west-1"), "{shown}");
    }

    #[test]
    fn a_bundle_without_certificates_is_refused_naming_it() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().join("empty.pem");
        std::fs::write(&path, "not a certificate\n").expect("write the bundle");
        let err = read_bundle(&path).unwrap_err().to_string();
        assert!(err.starts_with("AWS_CA_BUNDLE "), "{err}");
        assert!(
            err.ends_with("empty.pem: no PEM certificate found"),
            "{err}"
        );
        let err = read_bundle(&dir.path().join("missing.pem")).unwrap_err();
        assert!(err.to_string().contains("missing.pem: "), "{err}");
    }
}
