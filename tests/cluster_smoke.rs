//! The test control plane itself (tests/cluster/up.sh): it reports the
//! pinned Kubernetes version, the StatefulSet controller, the PV binder with
//! its provisioner, the scheduler and kwok take a StatefulSet with claim
//! templates to bound claims and Ready pods in a namespace that enforces Pod
//! Security "restricted", and Pod Security admission refuses a pod that
//! breaks the profile, so the cluster tests built on it can fail.
//!
//! Needs the built control plane: `cargo test --test cluster_smoke -- --ignored`
//! (see the README's Development section).

mod common;

use std::time::Duration;

use common::cluster::kubectl::condition;
use common::cluster::{Namespace, kubectl, wait_for};
use serde_json::{Value, json};

const RESTRICTED: (&str, &str) = ("pod-security.kubernetes.io/enforce", "restricted");
const WAIT: Duration = Duration::from_secs(120);

/// The Kubernetes version that tests/cluster/go.mod pins.
fn pinned_version() -> String {
    let gomod = include_str!("cluster/go.mod");
    gomod
        .lines()
        .find_map(|l| l.trim().strip_prefix("k8s.io/kubernetes "))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("tests/cluster/go.mod requires k8s.io/kubernetes")
        .to_string()
}

/// A container that meets Pod Security "restricted".
fn restricted_container() -> Value {
    json!({
        "name": "app",
        "image": "registry.example/app:1",
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": true,
            "runAsUser": 1000,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    })
}

fn statefulset(replicas: u32) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "smoke"},
        "spec": {
            "replicas": replicas,
            "serviceName": "smoke",
            "selector": {"matchLabels": {"app": "smoke"}},
            "template": {
                "metadata": {"labels": {"app": "smoke"}},
                "spec": {
                    "initContainers": [{
                        "name": "init",
                        "image": "registry.example/init:1",
                        "securityContext": restricted_container()["securityContext"],
                    }],
                    "containers": [restricted_container()],
                },
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "data"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "100Gi"}},
                },
            }],
        },
    })
}

#[test]
#[ignore = "needs the control plane (tests/cluster/up.sh)"]
fn reports_the_pinned_kubernetes_version() {
    let version = kubectl(&["version", "-o", "json"], None).json("kubectl version");
    assert_eq!(version["serverVersion"]["gitVersion"], pinned_version());
}

#[test]
#[ignore = "needs the control plane (tests/cluster/up.sh)"]
fn statefulset_in_a_restricted_namespace_gets_bound_claims_and_ready_pods() {
    let ns = Namespace::create("smoke", &[RESTRICTED]);
    ns.apply(&statefulset(3).to_string())
        .expect_ok("apply the StatefulSet");

    let sts = wait_for("3 ready replicas", WAIT, || {
        let sts = ns.get("statefulset", "smoke");
        match sts["status"]["readyReplicas"].as_u64() {
            Some(3) => Ok(sts),
            other => Err(format!("readyReplicas {other:?}")),
        }
    });
    assert_eq!(sts["status"]["replicas"], 3);

    let claims = ns.list("persistentvolumeclaims");
    let mut names: Vec<&str> = claims
        .iter()
        .filter_map(|c| c["metadata"]["name"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["data-smoke-0", "data-smoke-1", "data-smoke-2"]);
    for claim in &claims {
        assert_eq!(claim["status"]["phase"], "Bound", "{claim}");
        let pv = kubectl(
            &[
                "get",
                "pv",
                claim["spec"]["volumeName"].as_str().unwrap(),
                "-o",
                "json",
            ],
            None,
        )
        .json("get the bound PersistentVolume");
        assert_eq!(pv["status"]["phase"], "Bound");
        assert_eq!(pv["spec"]["capacity"]["storage"], "100Gi");
    }

    let pods = ns.list("pods");
    assert_eq!(pods.len(), 3);
    for pod in &pods {
        assert_eq!(pod["status"]["phase"], "Running", "{pod}");
        assert_eq!(condition(pod, "Ready"), Some("True"), "{pod}");
        assert_eq!(pod["spec"]["nodeName"], "kwok-node-0");
        assert_eq!(
            pod["status"]["initContainerStatuses"][0]["state"]["terminated"]["reason"],
            "Completed"
        );
    }
}

/// The same pod without its securityContext: refused where "restricted" is
/// enforced, created where nothing is (so the refusal is Pod Security's).
#[test]
#[ignore = "needs the control plane (tests/cluster/up.sh)"]
fn pod_security_refuses_a_pod_that_breaks_restricted() {
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "loose"},
        "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]},
    })
    .to_string();

    let restricted = Namespace::create("smoke-restricted", &[RESTRICTED]);
    let err = restricted
        .apply(&pod)
        .expect_err("a pod without securityContext");
    assert!(
        err.contains(r#"violates PodSecurity "restricted:latest""#),
        "{err}"
    );
    assert!(err.contains("allowPrivilegeEscalation != false"), "{err}");
    assert!(
        !restricted.kubectl(&["get", "pod", "loose"], None).ok,
        "nothing stored"
    );

    let open = Namespace::create("smoke-open", &[]);
    open.apply(&pod)
        .expect_ok("the same pod where nothing is enforced");
    assert_eq!(open.get("pod", "loose")["metadata"]["name"], "loose");
}
