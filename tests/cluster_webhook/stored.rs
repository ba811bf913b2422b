//! Reading what the API server stored for a StatefulSet: the injected init
//! container, the markers, its revisions, and waiting for its controller.

use std::time::Duration;

use serde_json::Value;

use crate::common::cluster::{Namespace, wait_for};

/// Label that makes a namespace enforce Pod Security "restricted".
pub const RESTRICTED: (&str, &str) = ("pod-security.kubernetes.io/enforce", "restricted");
pub const WAIT: Duration = Duration::from_secs(120);

/// The init containers of a stored StatefulSet (or pod: `spec` of either).
fn init_containers(spec: &Value) -> Vec<Value> {
    spec["initContainers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

pub fn pod_spec(sts: &Value) -> &Value {
    &sts["spec"]["template"]["spec"]
}

/// How many init containers are named `s3-seed`.
pub fn injections(spec: &Value) -> usize {
    init_containers(spec)
        .iter()
        .filter(|c| c["name"] == "s3-seed")
        .count()
}

/// Exactly one `s3-seed` init container, and it is the first; the markers
/// are set. Returns that container.
pub fn assert_injected_once_first(sts: &Value) -> Value {
    let spec = pod_spec(sts);
    assert_eq!(injections(spec), 1, "one s3-seed init container: {spec}");
    assert_eq!(
        spec["initContainers"][0]["name"], "s3-seed",
        "s3-seed first: {spec}"
    );
    assert_eq!(
        sts["metadata"]["annotations"]["s3-seed.io/status"],
        "injected"
    );
    assert!(config_hash(sts).is_some(), "a config hash on the template");
    spec["initContainers"][0].clone()
}

/// No `s3-seed` init container and neither marker.
pub fn assert_not_injected(sts: &Value) {
    assert_eq!(
        injections(pod_spec(sts)),
        0,
        "no s3-seed init container: {sts}"
    );
    assert!(
        sts["metadata"]["annotations"]
            .get("s3-seed.io/status")
            .is_none(),
        "{sts}"
    );
    assert!(config_hash(sts).is_none(), "{sts}");
}

pub fn config_hash(sts: &Value) -> Option<String> {
    sts["spec"]["template"]["metadata"]["annotations"]["s3-seed.io/config-hash"]
        .as_str()
        .map(str::to_owned)
}

/// The value of env var `name` of the `s3-seed` init container in `spec`.
pub fn env(spec: &Value, name: &str) -> Option<String> {
    init_containers(spec)
        .iter()
        .find(|c| c["name"] == "s3-seed")?["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)?["value"]
        .as_str()
        .map(str::to_owned)
}

/// The StatefulSet once its controller has seen the current generation and
/// recorded an update revision.
pub fn settled(ns: &Namespace, name: &str) -> Value {
    wait_for(&format!("statefulset {name} observed"), WAIT, || {
        let sts = ns.get("statefulset", name);
        let observed = sts["status"]["observedGeneration"] == sts["metadata"]["generation"];
        if observed && sts["status"]["updateRevision"].is_string() {
            Ok(sts)
        } else {
            Err(format!(
                "generation {}, status {}",
                sts["metadata"]["generation"], sts["status"]
            ))
        }
    })
}

/// The StatefulSet once every replica runs the current revision and is Ready.
pub fn rolled_out(ns: &Namespace, name: &str) -> Value {
    wait_for(
        &format!("statefulset {name} rolled out and ready"),
        WAIT,
        || {
            let sts = ns.get("statefulset", name);
            let st = &sts["status"];
            let want = &sts["spec"]["replicas"];
            let done = st["observedGeneration"] == sts["metadata"]["generation"]
                && st["updateRevision"].is_string()
                && st["currentRevision"] == st["updateRevision"]
                && &st["updatedReplicas"] == want
                && &st["readyReplicas"] == want;
            if done {
                Ok(sts)
            } else {
                Err(format!("status {st}"))
            }
        },
    )
}

/// Names of the ControllerRevisions owned by StatefulSet `name`, sorted.
pub fn revisions(ns: &Namespace, name: &str) -> Vec<String> {
    let mut names: Vec<String> = ns
        .list("controllerrevisions")
        .iter()
        .filter(|r| {
            r["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|o| {
                    o.iter()
                        .any(|o| o["kind"] == "StatefulSet" && o["name"] == name)
                })
        })
        .filter_map(|r| r["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// The pods of StatefulSet `name` (by owner), sorted by name.
pub fn pods(ns: &Namespace, name: &str) -> Vec<Value> {
    let mut pods: Vec<Value> = ns
        .list("pods")
        .into_iter()
        .filter(|p| {
            p["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|o| {
                    o.iter()
                        .any(|o| o["kind"] == "StatefulSet" && o["name"] == name)
                })
        })
        .collect();
    pods.sort_by(|a, b| {
        a["metadata"]["name"]
            .as_str()
            .cmp(&b["metadata"]["name"].as_str())
    });
    pods
}
