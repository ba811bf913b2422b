//! Shared test support: certificates and TLS clients (`tls`), an in-process
//! S3 server with request counting and fault injection (`s3`), and what the
//! sync tests build on it (`sync`).
#![allow(dead_code, unused_imports)]

pub mod s3;
pub mod sync;
pub mod tls;
