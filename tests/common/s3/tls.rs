//! HTTPS for the S3 server: a fresh self-signed certificate for 127.0.0.1 per
//! server, the acceptor that serves it, and an SDK HTTP client that trusts it.
//!
//! The certificate is self-signed (its own trust anchor) so a test can hand
//! the one PEM to a client as the CA to trust, as `AWS_CA_BUNDLE` expects.
//! The crypto provider is named explicitly, so nothing depends on a
//! process-wide default being installed.

use std::sync::Arc;

use aws_sdk_s3::config::SharedHttpClient;
use aws_smithy_http_client::tls::{Provider, TlsContext, TrustStore, rustls_provider::CryptoMode};
use rustls::ServerConfig;
use rustls::pki_types::PrivateKeyDer;
use tokio_rustls::TlsAcceptor;

/// A TLS acceptor for a new self-signed `127.0.0.1` certificate, and that certificate (PEM).
pub(crate) fn self_signed() -> (TlsAcceptor, String) {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
        .expect("generate a self-signed certificate for 127.0.0.1");
    let key = PrivateKeyDer::try_from(cert.signing_key.serialize_der())
        .expect("rcgen serializes keys as PKCS#8");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("aws-lc-rs supports the default protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .expect("the key is the certificate's own");
    (TlsAcceptor::from(Arc::new(config)), cert.cert.pem())
}

/// An SDK HTTP client that trusts only the certificates in `pem`.
pub(crate) fn trusting(pem: &str) -> SharedHttpClient {
    let trust = TrustStore::empty().with_pem_certificate(pem.as_bytes());
    let context = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .expect("a TLS context from one valid PEM certificate");
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(context)
        .build_https()
}
