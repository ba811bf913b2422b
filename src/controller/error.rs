//! The errors of the controller's boundary: why it could not start or run
//! ([`ControllerError`]), why one source could not be listed
//! ([`PollError`], told in an Event and never followed by a patch), and why
//! one reconcile failed ([`ReconcileError`], retried by the runtime).
//! Messages name the Secret, key or annotation involved, never a value read
//! from a Secret.

use std::net::SocketAddr;

use thiserror::Error;

use crate::contract::{AnnotationError, SourceName};
use crate::s3::S3Error;
use crate::sync::SyncError;

/// Why the controller stopped.
#[derive(Debug, Error)]
pub enum ControllerError {
    #[error("kubernetes client: {0}")]
    Client(kube::Error),
    #[error("kubernetes client configuration (in-cluster or KUBECONFIG): {0}")]
    Config(kube::config::InferConfigError),
    #[error("--metrics-listen {addr}: {error}")]
    Bind {
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("metrics server: {0}")]
    Serve(std::io::Error),
}

/// Why a source could not be listed.
#[derive(Debug, Error)]
pub enum PollError {
    #[error(transparent)]
    Annotation(#[from] AnnotationError),
    #[error("secret {name:?} ({key}) not found in namespace {namespace:?}")]
    SecretMissing {
        namespace: String,
        name: String,
        /// The annotation that names the Secret.
        key: String,
    },
    #[error("secret {name:?} ({key}) has no key {field} (or it is not UTF-8)")]
    SecretKey {
        name: String,
        key: String,
        field: &'static str,
    },
    #[error("secret {name:?} ({key}) cannot be read: {error}")]
    SecretRead {
        name: String,
        key: String,
        error: kube::Error,
    },
    #[error("s3 client: {0}")]
    Client(S3Error),
    #[error(transparent)]
    Select(#[from] SyncError),
    #[error("source {name}: {error}")]
    Source {
        name: SourceName,
        error: Box<PollError>,
    },
}

/// Why one reconcile failed; the runtime retries it.
#[derive(Debug, Error)]
pub enum ReconcileError {
    #[error("patch of statefulset {name}: {error}")]
    Patch { name: String, error: kube::Error },
}
