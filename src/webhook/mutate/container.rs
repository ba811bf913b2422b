//! The injected init container, built as a typed k8s-openapi `Container`.
//!
//! Two rules shape it. First, it is a fixed point of the API server's
//! defaulting: every field the API server would fill in on a container
//! (`imagePullPolicy`, `terminationMessagePath`, `terminationMessagePolicy`)
//! is set here explicitly, so the object the API server hands back on the
//! next UPDATE already equals what the webhook would build and the patch is
//! empty. Second, it passes Pod Security "restricted" and OpenShift
//! restricted-v2 without touching the pod: no privilege escalation, every
//! capability dropped, non-root, RuntimeDefault seccomp, read-only root
//! filesystem, and no user/group IDs (OpenShift assigns those per namespace).
//!
//! Annotations only reach it through environment variables and the volume
//! mount; image, command, resources and security context are the admin's.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, EnvVar, EnvVarSource, ResourceRequirements, SeccompProfile,
    SecretKeySelector, SecurityContext, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::contract::{SeedSpec, SourceName, env};
use crate::webhook::InjectConfig;

/// Name of the injected init container, reserved in every mutated pod.
pub const CONTAINER_NAME: &str = "s3-seed";
/// Where the unnamed source's volume is mounted inside the init container.
pub const MOUNT_PATH: &str = "/s3-seed/volume";
/// Named source NAME is mounted at `SOURCES_PATH/NAME`.
pub const SOURCES_PATH: &str = "/s3-seed/sources";
/// The binary inside the image; set as `command` so that an image with
/// another entrypoint cannot change what runs.
const BINARY: &str = "/usr/local/bin/s3-seed";
const TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";

/// The volume each source of a spec writes into, by source name.
pub type Volumes = BTreeMap<Option<SourceName>, String>;

/// Where the source `name` is mounted: its target in the container.
pub fn mount_path(name: Option<&SourceName>) -> String {
    match name {
        Some(name) => format!("{SOURCES_PATH}/{name}"),
        None => MOUNT_PATH.to_owned(),
    }
}

/// The init container for `spec`, writing each source into its volume of
/// `volumes`, as the JSON the API server stores. Every source has its own
/// (volume, sub-path): the contract refuses two that share one.
pub fn build_container(spec: &SeedSpec, volumes: &Volumes, cfg: &InjectConfig) -> Value {
    let mounts = (spec.sources.iter())
        .filter_map(|(name, source)| {
            Some(VolumeMount {
                name: volumes.get(name)?.clone(),
                mount_path: mount_path(name.as_ref()),
                sub_path: source.sub_path.as_ref().map(ToString::to_string),
                ..VolumeMount::default()
            })
        })
        .collect();
    let container = Container {
        name: CONTAINER_NAME.to_owned(),
        image: Some(cfg.image.clone()),
        image_pull_policy: Some(pull_policy(cfg)),
        command: Some(vec![BINARY.to_owned()]),
        args: Some(vec!["sync".to_owned()]),
        env: Some(env_vars(spec, cfg)),
        volume_mounts: Some(mounts),
        resources: Some(resources(cfg)),
        security_context: Some(security_context()),
        termination_message_path: Some(TERMINATION_MESSAGE_PATH.to_owned()),
        termination_message_policy: Some("FallbackToLogsOnError".to_owned()),
        ..Container::default()
    };
    serde_json::to_value(&container)
        .expect("a k8s-openapi Container has string keys and always serializes")
}

/// First 16 hex digits of the SHA-256 of the container's canonical JSON
/// (serde_json maps are sorted, so equal containers give equal bytes).
pub fn config_hash(container: &Value) -> String {
    let digest = Sha256::digest(container.to_string().as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The environment of `s3-seed sync`, sorted by name: the spec's variables
/// with the admin's defaults filled in, the mount paths, the admin's tuning,
/// and the credentials as references to each Secret (never their values).
fn env_vars(spec: &SeedSpec, cfg: &InjectConfig) -> Vec<EnvVar> {
    let mut spec = spec.clone();
    let shared = &mut spec.connection;
    shared.region = shared.region.take().or_else(|| cfg.default_region.clone());
    shared.endpoint = (shared.endpoint.take()).or_else(|| cfg.default_endpoint.clone());
    shared.path_style = shared.path_style.or(cfg.default_path_style);
    let mut plain = spec.env(mount_path);
    if let Some(n) = cfg.sync_concurrency {
        plain.push((env::CONCURRENCY, n.to_string()));
    }
    if let Some(bytes) = cfg.sync_part_size {
        plain.push((env::PART_SIZE, bytes.to_string()));
    }
    if cfg.sync_trust_installed {
        plain.push((env::TRUST_INSTALLED, "true".to_owned()));
    }
    let mut vars: Vec<EnvVar> = plain
        .into_iter()
        .map(|(name, value)| EnvVar {
            name: name.to_owned(),
            value: Some(value),
            value_from: None,
        })
        .collect();
    let shared = spec.connection.credentials_secret.as_deref();
    let secrets = shared.map(|s| (s, String::new())).into_iter().chain(
        (spec.key_prefixes().into_iter()).map(|(secret, prefix)| (secret, format!("{prefix}_"))),
    );
    for (secret, prefix) in secrets {
        for (key, optional) in env::AWS_KEYS {
            vars.push(secret_ref(&format!("{prefix}{key}"), key, secret, optional));
        }
    }
    vars.sort_by(|a, b| a.name.cmp(&b.name));
    vars
}

/// `name` from the key `key` of Secret `secret`.
fn secret_ref(name: &str, key: &str, secret: &str, optional: bool) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                key: key.to_owned(),
                name: secret.to_owned(),
                optional: Some(optional),
            }),
            ..EnvVarSource::default()
        }),
    }
}

fn resources(cfg: &InjectConfig) -> ResourceRequirements {
    let q = |s: &str| Quantity(s.to_owned());
    let requests = BTreeMap::from([
        ("cpu".to_owned(), q(&cfg.cpu_request)),
        ("memory".to_owned(), q(&cfg.memory_request)),
    ]);
    let mut limits = BTreeMap::from([("memory".to_owned(), q(&cfg.memory_limit))]);
    if let Some(cpu) = &cfg.cpu_limit {
        limits.insert("cpu".to_owned(), q(cpu));
    }
    ResourceRequirements {
        requests: Some(requests),
        limits: Some(limits),
        claims: None,
    }
}

fn security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            add: None,
        }),
        run_as_non_root: Some(true),
        read_only_root_filesystem: Some(true),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_owned(),
            localhost_profile: None,
        }),
        ..SecurityContext::default()
    }
}

/// The admin's policy, or the API server's default: `Always` for images
/// tagged `latest` or untagged (without digest), `IfNotPresent` otherwise.
fn pull_policy(cfg: &InjectConfig) -> String {
    if let Some(policy) = &cfg.image_pull_policy {
        return policy.clone();
    }
    let (name, has_digest) = match cfg.image.split_once('@') {
        Some((name, _)) => (name, true),
        None => (cfg.image.as_str(), false),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    let tag = last.split_once(':').map(|(_, tag)| tag);
    match (tag, has_digest) {
        (Some("latest"), _) | (None, false) => "Always",
        _ => "IfNotPresent",
    }
    .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(image: &str) -> InjectConfig {
        crate::webhook::mutate::tests::config_with_image(image)
    }

    #[test]
    fn pull_policy_follows_the_api_server_rule() {
        let cases = [
            ("s3-seed", "Always"),
            ("s3-seed:latest", "Always"),
            ("registry:5000/s3-seed", "Always"),
            ("registry:5000/s3-seed:0.1.0", "IfNotPresent"),
            ("s3-seed@sha256:abcd", "IfNotPresent"),
            ("s3-seed:latest@sha256:abcd", "Always"),
            ("registry.example/org/s3-seed:v1", "IfNotPresent"),
        ];
        for (image, want) in cases {
            assert_eq!(pull_policy(&cfg(image)), want, "{image}");
        }
        let mut admin = cfg("s3-seed:latest");
        admin.image_pull_policy = Some("Never".to_owned());
        assert_eq!(pull_policy(&admin), "Never");
    }

    #[test]
    fn config_hash_is_16_hex_digits_and_tracks_content() {
        let a = serde_json::json!({"name": "s3-seed", "image": "a"});
        let b = serde_json::json!({"image": "a", "name": "s3-seed"});
        let c = serde_json::json!({"name": "s3-seed", "image": "b"});
        let h = config_hash(&a);
        assert_eq!(h.len(), 16);
        assert!(h.chars().all(|c| c.is_ascii_hexdigit()), "{h}");
        assert_eq!(h, config_hash(&b), "key order must not matter");
        assert_ne!(h, config_hash(&c));
    }
}
