//! The S3 side shared by every component that talks to a bucket (the sync
//! today, a controller that lists sources next): the SDK client built the way
//! s3-seed needs it ([`client`]), the retry policy and the classification of
//! SDK errors ([`retry`]) read from their chain of causes (`cause`), and the
//! few requests that are not downloads: listing ([`list`], whose pages must
//! follow the rules of `pages`), HEAD and GetObjectAttributes ([`object`]).
//!
//! Nothing here knows about targets, plans or exit codes. Failures are an
//! [`S3Error`] that carries only non-secret detail (code, status, message);
//! each caller maps it into its own error at its boundary, naming the source
//! and key it was working on.

mod cause;
pub mod client;
mod error;
pub mod list;
pub mod object;
mod pages;
pub mod retry;

pub use client::{CA_BUNDLE_ENV, ClientConfig, StaticCredentials, build_client};
pub use error::{GaveUp, S3Error};
pub use list::{Listed, VersionToken, list};
pub use object::{Checksums, Head, ObjectPart, head, object_parts};
pub use retry::{Class, Retry, classify, classify_body, with_retry};
