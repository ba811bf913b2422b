//! The admin's defaults for the connection annotations a StatefulSet leaves
//! out (`--default-region`, `--default-endpoint`, `--default-path-style`):
//! one set of flags, flattened into `webhook`, `inject` and `controller`,
//! so they read the same environment variables and one ConfigMap or
//! Deployment env feeds them all; the controller then lists a source the
//! way the sync the webhook injected will.

use clap::Args;

use crate::contract::{Endpoint, parse_bool, parse_region};
use crate::controller::config::SourceDefaults;

#[derive(Debug, Clone, Args)]
pub struct DefaultsFlags {
    /// Region used when a StatefulSet has no s3-seed.io/region annotation.
    #[arg(long, env = "S3_SEED_DEFAULT_REGION", value_parser = parse_region)]
    pub default_region: Option<String>,

    /// Endpoint used when a StatefulSet has no s3-seed.io/endpoint annotation.
    #[arg(long, env = "S3_SEED_DEFAULT_ENDPOINT")]
    pub default_endpoint: Option<Endpoint>,

    /// Path-style addressing when a StatefulSet has no s3-seed.io/path-style annotation.
    #[arg(long, env = "S3_SEED_DEFAULT_PATH_STYLE", value_parser = parse_bool)]
    pub default_path_style: Option<bool>,
}

impl From<DefaultsFlags> for SourceDefaults {
    fn from(f: DefaultsFlags) -> Self {
        Self {
            region: f.default_region,
            endpoint: f.default_endpoint,
            path_style: f.default_path_style,
        }
    }
}
