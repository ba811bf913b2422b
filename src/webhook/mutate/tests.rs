//! Table tests for the mutation.

use super::*;

pub(crate) fn config_with_image(image: &str) -> InjectConfig {
    InjectConfig {
        image: image.to_owned(),
        image_pull_policy: None,
        cpu_request: "100m".to_owned(),
        memory_request: "64Mi".to_owned(),
        cpu_limit: None,
        memory_limit: "256Mi".to_owned(),
        default_region: None,
        default_endpoint: None,
        default_path_style: None,
        sync_concurrency: None,
        sync_part_size: None,
    }
}
