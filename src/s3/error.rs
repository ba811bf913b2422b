//! The error of the S3 boundary: why a request (after retries) or the client
//! set-up did not succeed. Every message is built from what S3 or the SDK
//! said (code, status, message), never from credentials or signed requests.

use thiserror::Error;

/// Why an S3 request, or building the client, failed.
#[derive(Debug, Error)]
pub enum S3Error {
    /// The client could not be set up (CA bundle, TLS).
    #[error("{0}")]
    Setup(String),
    /// `If-Match` failed: the object was replaced.
    #[error("the object changed")]
    Changed,
    /// The key (or bucket) does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Credentials were refused or are missing, or the request could not be built.
    #[error("{0}")]
    Credentials(String),
    /// The bytes received do not match the checksum S3 sent with them.
    #[error("{0}")]
    Integrity(String),
    /// Any other answer that a retry will not change, including an answer
    /// that cannot be used (say, GetObjectAttributes without parts).
    #[error("{0}")]
    Fatal(String),
    /// The request's attempts or the run's retry budget ran out.
    #[error(transparent)]
    GaveUp(#[from] GaveUp),
}

/// Retries are used up for a request about `key` (empty for a listing).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("download of key {key:?} failed: {reason}")]
pub struct GaveUp {
    pub key: String,
    pub reason: String,
}
