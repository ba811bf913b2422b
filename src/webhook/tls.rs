//! The serving certificate: rustls configuration and live reload.
//!
//! Kubernetes mounts the certificate Secret as a directory whose files are
//! symlinks through `..data`, and rotates it by swapping that one symlink.
//! A watch on the file paths misses the swap, so instead a background task
//! re-reads both files every `tls_reload` and compares their CONTENTS with
//! what is loaded. New contents that parse as a matching chain and key
//! replace the certificate for the next handshake; connections already open
//! keep theirs, so a rotation fails no request. New contents that do not
//! parse (or a key that does not match) keep the old certificate and log
//! one error per change. A cert read twice around the key read guards
//! against mixing the old certificate with the new key mid-swap.
//!
//! [`TlsError`] is this module's own error; the server wraps it.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use thiserror::Error;
use tokio::task::JoinHandle;
use tracing::{Instrument, error, info, info_span, warn};

use super::metrics::Metrics;

/// Why the certificate files cannot serve. Messages name the flag; each
/// message carries its cause, which is not repeated as a `source()`.
#[derive(Debug, Error)]
pub enum TlsError {
    #[error("cannot read {flag} {}: {error}", path.display())]
    ReadFile {
        flag: &'static str,
        path: PathBuf,
        error: io::Error,
    },
    #[error("--tls-cert is not a PEM certificate chain: {0}")]
    CertPem(String),
    #[error("--tls-key is not a PEM private key: {0}")]
    KeyPem(String),
    #[error("--tls-key does not belong to the certificate in --tls-cert: {0}")]
    KeyMismatch(rustls::Error),
    #[error("cannot configure TLS: {0}")]
    Config(rustls::Error),
}

/// The certificate handed to every new handshake; swapped on reload.
#[derive(Debug)]
pub struct CertStore {
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertStore {
    pub fn new(key: CertifiedKey) -> Self {
        Self {
            current: RwLock::new(Arc::new(key)),
        }
    }

    /// The certificate new handshakes get.
    pub fn current(&self) -> Arc<CertifiedKey> {
        // A poisoned lock still holds a complete Arc: keep serving it.
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn replace(&self, key: CertifiedKey) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(key);
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// Parse a PEM certificate chain (leaf first) and a PEM private key into a
/// matching pair.
pub fn load_pair(cert_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::CertPem(e.to_string()))?;
    if chain.is_empty() {
        return Err(TlsError::CertPem("no CERTIFICATE block found".into()));
    }
    // The error of a key parse never contains key material.
    let key =
        PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::KeyPem(e.to_string()))?;
    CertifiedKey::from_der(chain, key, &provider()).map_err(TlsError::KeyMismatch)
}

/// A rustls server configuration that takes its certificate from `store`:
/// TLS 1.2 and 1.3, ALPN h2 and http/1.1, no client authentication.
pub fn server_config(store: Arc<CertStore>) -> Result<rustls::ServerConfig, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_cert_resolver(store);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The installed process-wide provider, or aws-lc-rs when none is.
fn provider() -> CryptoProvider {
    CryptoProvider::get_default()
        .map(|p| (**p).clone())
        .unwrap_or_else(rustls::crypto::aws_lc_rs::default_provider)
}

async fn read_files(cert: &Path, key: &Path) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
    let read = |path: PathBuf, flag: &'static str| async move {
        tokio::fs::read(&path)
            .await
            .map_err(|error| TlsError::ReadFile { flag, path, error })
    };
    let cert_pem = read(cert.to_owned(), "--tls-cert").await?;
    let key_pem = read(key.to_owned(), "--tls-key").await?;
    Ok((cert_pem, key_pem))
}

/// Polls the certificate files and swaps the certificate in `store` when
/// their contents change to a valid pair.
pub struct Reloader {
    cert: PathBuf,
    key: PathBuf,
    store: Arc<CertStore>,
    metrics: Arc<Metrics>,
    /// The file contents last looked at (loaded or refused).
    seen: (Vec<u8>, Vec<u8>),
}

impl Reloader {
    /// Read and load the pair named by `--tls-cert` and `--tls-key`; an
    /// unusable pair at startup is an error, not a retry.
    pub async fn load(
        cert: PathBuf,
        key: PathBuf,
        metrics: Arc<Metrics>,
    ) -> Result<Self, TlsError> {
        let seen = read_files(&cert, &key).await?;
        let store = Arc::new(CertStore::new(load_pair(&seen.0, &seen.1)?));
        Ok(Self {
            cert,
            key,
            store,
            metrics,
            seen,
        })
    }

    /// The store the TLS acceptor resolves certificates from.
    pub fn store(&self) -> Arc<CertStore> {
        Arc::clone(&self.store)
    }

    /// Check every `interval` until the task is aborted.
    pub fn spawn(mut self, interval: Duration) -> JoinHandle<()> {
        let span = info_span!("tls_reload", cert = %self.cert.display());
        tokio::spawn(
            async move {
                let mut ticker = tokio::time::interval(interval);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                ticker.tick().await;
                loop {
                    ticker.tick().await;
                    self.check().await;
                }
            }
            .instrument(span),
        )
    }

    /// One poll: returns `Some(true)` when a new pair was loaded, `Some(false)`
    /// when new contents were refused, `None` when nothing changed.
    pub async fn check(&mut self) -> Option<bool> {
        let files = match self.read_stable().await {
            Ok(Some(files)) => files,
            Ok(None) => return None,
            Err(e) => {
                warn!(error = %e, "cannot read the certificate files; keeping the current certificate");
                return None;
            }
        };
        if files == self.seen {
            return None;
        }
        let result = load_pair(&files.0, &files.1);
        self.seen = files;
        let loaded = match result {
            Ok(key) => {
                self.store.replace(key);
                info!("serving certificate reloaded");
                true
            }
            Err(e) => {
                error!(error = %e, "new certificate files are not usable; keeping the current certificate");
                false
            }
        };
        self.metrics.tls_reload(loaded);
        Some(loaded)
    }

    /// Both files, or `None` when the certificate changed while the key was
    /// read (a rotation in progress: look again on the next tick).
    async fn read_stable(&self) -> Result<Option<(Vec<u8>, Vec<u8>)>, TlsError> {
        let (cert, key) = read_files(&self.cert, &self.key).await?;
        let (again, _) = read_files(&self.cert, &self.key).await?;
        Ok((cert == again).then_some((cert, key)))
    }
}
