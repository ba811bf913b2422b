//! Shared test support: certificates and TLS clients (`tls`), an in-process
//! S3 server with request counting and fault injection (`s3`), what the
//! sync tests build on it (`sync`), and the real control plane of the
//! cluster tests with kubectl helpers (`cluster`).
#![allow(dead_code, unused_imports)]

pub mod cluster;
pub mod s3;
pub mod sync;
pub mod tls;
