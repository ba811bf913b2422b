//! `s3-seed certs`: a CA and a serving certificate for the webhook Service.

use std::path::PathBuf;

/// Where and for whom to generate certificates.
#[derive(Debug, Clone)]
pub struct CertsConfig {
    pub service: String,
    pub namespace: String,
    pub out: PathBuf,
    pub days: u32,
    pub force: bool,
}

/// (Skeleton.)
pub fn run(_config: &CertsConfig) -> anyhow::Result<String> {
    anyhow::bail!("certs is not built yet")
}
