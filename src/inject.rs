//! `s3-seed inject`: mutate manifests offline exactly as the webhook would.

use std::path::Path;

use crate::webhook::InjectConfig;

/// (Skeleton: implemented by the webhook work.)
pub fn run(_file: &Path, _config: &InjectConfig) -> anyhow::Result<()> {
    anyhow::bail!("inject is not built yet")
}
