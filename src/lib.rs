//! s3-seed: a mutating admission webhook that injects an init container into
//! annotated StatefulSets, and that init container's `sync`, which brings a
//! volume up to date with an S3 prefix.
//!
//! The crate is a library so that integration tests and the demo can drive
//! each component with a client pointed at a local server; `main.rs` only
//! parses the command line and dispatches.
#![forbid(unsafe_code)]

pub mod certs;
pub mod cli;
pub mod contract;
pub mod controller;
pub mod excerpt;
pub mod inject;
mod json_scalars;
pub mod s3;
pub mod sync;
pub mod telemetry;
pub mod webhook;
