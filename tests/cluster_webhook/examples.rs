//! Every example under examples/ as a developer applies it, each in its own
//! namespace that enforces Pod Security "restricted": stored with exactly one
//! `s3-seed` init container, first, and every replica created by the
//! StatefulSet controller (so Pod Security admitted the injected pod) and
//! taken to Ready by kwok.

use std::path::{Path, PathBuf};

use crate::common::cluster::Namespace;
use crate::common::cluster::kubectl::condition;
use crate::common::cluster::webhook::shared;
use crate::stored::{RESTRICTED, assert_injected_once_first, pods, rolled_out};

pub fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read examples/")
        .map(|e| e.expect("examples/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "examples found: {files:?}");
    files
}

/// Names of the StatefulSets in a manifest file.
fn statefulsets(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).expect("read example");
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| <serde_json::Value as serde::Deserialize>::deserialize(d).expect("example YAML"))
        .filter(|d| d["kind"] == "StatefulSet")
        .map(|d| d["metadata"]["name"].as_str().expect("name").to_owned())
        .collect()
}

#[test]
#[ignore = "needs the control plane (tests/cluster/up.sh) and root"]
fn every_example_is_stored_injected_once_and_its_pods_become_ready() {
    let _webhook = shared();
    for file in examples() {
        let ns = Namespace::create("example", &[RESTRICTED]);
        let path = file.to_str().expect("utf-8 path");
        ns.kubectl(&["apply", "-f", path], None)
            .expect_ok(&format!("kubectl apply -f {path}"));
        let names = statefulsets(&file);
        assert!(!names.is_empty(), "{path} has a StatefulSet");
        for name in names {
            let sts = rolled_out(&ns, &name);
            assert_injected_once_first(&sts);
            let pods = pods(&ns, &name);
            assert_eq!(
                Some(pods.len() as u64),
                sts["spec"]["replicas"].as_u64(),
                "{path}"
            );
            for pod in &pods {
                assert_eq!(
                    pod["spec"]["initContainers"][0]["name"], "s3-seed",
                    "{path}"
                );
                assert_eq!(condition(pod, "Ready"), Some("True"), "{path}: {pod}");
            }
        }
    }
}
