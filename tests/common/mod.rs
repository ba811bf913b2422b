//! Shared test support: certificates and TLS clients (`tls`), and an
//! in-process S3 server with request counting and fault injection (`s3`).
#![allow(dead_code, unused_imports)]

pub mod s3;
pub mod tls;
