//! Pods: in a namespace that enforces Pod Security "restricted", the
//! StatefulSet controller creates every replica of an annotated StatefulSet
//! from the mutated template (Pod Security admission judged each injected
//! pod), kwok takes them to Ready, and a change of the source rolls every
//! pod to the new template.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::common::cluster::Namespace;
use crate::common::cluster::kubectl::condition;
use crate::common::cluster::webhook::shared;
use crate::stored::{RESTRICTED, assert_injected_once_first, config_hash, env, pods, rolled_out};

const REPLICAS: usize = 3;

fn statefulset(source: &str) -> Value {
    let restricted = json!({
        "allowPrivilegeEscalation": false,
        "capabilities": {"drop": ["ALL"]},
    });
    json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "seeded", "annotations": {"s3-seed.io/source": source}},
        "spec": {
            "replicas": REPLICAS,
            "serviceName": "seeded",
            "selector": {"matchLabels": {"app": "seeded"}},
            "template": {
                "metadata": {"labels": {"app": "seeded"}},
                "spec": {
                    "securityContext": {
                        "runAsNonRoot": true,
                        "runAsUser": 1000,
                        "fsGroup": 1000,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [{
                        "name": "app",
                        "image": "registry.example/app:1",
                        "securityContext": restricted,
                        "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": true}],
                    }],
                },
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}},
            }],
        },
    })
}

/// Every pod: Ready, at the StatefulSet's current revision, with the
/// injected container first and the template's config hash and source.
fn assert_pods_at(ns: &Namespace, sts: &Value, source: &str) -> BTreeSet<String> {
    let pods = pods(ns, "seeded");
    assert_eq!(pods.len(), REPLICAS);
    let revision = &sts["status"]["updateRevision"];
    let hash = config_hash(sts).expect("config hash");
    for pod in &pods {
        assert_eq!(condition(pod, "Ready"), Some("True"), "{pod}");
        assert_eq!(
            &pod["metadata"]["labels"]["controller-revision-hash"],
            revision
        );
        assert_eq!(
            pod["metadata"]["annotations"]["s3-seed.io/config-hash"],
            hash.as_str()
        );
        assert_eq!(pod["spec"]["initContainers"][0]["name"], "s3-seed");
        assert_eq!(env(&pod["spec"], "S3_SEED_SOURCE").as_deref(), Some(source));
    }
    pods.iter()
        .map(|p| p["metadata"]["uid"].as_str().expect("uid").to_owned())
        .collect()
}

#[test]
#[ignore = "needs the control plane (tests/cluster/up.sh) and root"]
fn every_replica_is_admitted_ready_and_rolled_on_a_source_change() {
    let _webhook = shared();
    let ns = Namespace::create("pods", &[RESTRICTED]);
    let (v1, v2) = ("s3://models/llama/v1/", "s3://models/llama/v2/");

    ns.apply(&statefulset(v1).to_string())
        .expect_ok("create the StatefulSet");
    let sts = rolled_out(&ns, "seeded");
    assert_injected_once_first(&sts);
    let first = assert_pods_at(&ns, &sts, v1);
    let claims = ns.list("persistentvolumeclaims");
    assert_eq!(claims.len(), REPLICAS);
    assert!(
        claims.iter().all(|c| c["status"]["phase"] == "Bound"),
        "claims bound"
    );

    ns.apply(&statefulset(v2).to_string())
        .expect_ok("change the source");
    let rolled = rolled_out(&ns, "seeded");
    assert_ne!(
        rolled["status"]["updateRevision"],
        sts["status"]["updateRevision"]
    );
    assert_ne!(config_hash(&rolled), config_hash(&sts));
    assert_injected_once_first(&rolled);
    let second = assert_pods_at(&ns, &rolled, v2);
    assert!(first.is_disjoint(&second), "every pod was replaced");
}
