//! The registration's matchConditions and namespaceSelector, evaluated by
//! the API server itself: only StatefulSets that opt in are sent (the
//! webhook's admissions counter does not move for any other), the excluded
//! namespaces are never sent, and with the webhook down `failurePolicy:
//! Fail` refuses an annotated StatefulSet while a plain one is created.

use serde_json::{Value, json};

use crate::common::cluster::webhook::{Install, WEBHOOK, exclusive, installed};
use crate::common::cluster::{Namespace, kubectl};
use crate::stored::{assert_injected_once_first, assert_not_injected};

fn statefulset(name: &str, annotations: Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {
            "replicas": 0,
            "serviceName": name,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]},
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
            }],
        },
    })
}

fn opted_in() -> Value {
    json!({"s3-seed.io/source": "s3://bucket/data/"})
}

#[test]
#[ignore = "needs the control plane (tests/cluster/up.sh) and root"]
fn statefulsets_without_the_source_annotation_never_reach_the_webhook() {
    let _alone = exclusive();
    let install = installed();
    let ns = Namespace::create("match", &[]);
    let before = install.admissions();

    // CREATE, UPDATE (spec and metadata) and a second kind of UPDATE of
    // StatefulSets that carry no s3-seed.io/source, now or before.
    ns.apply(&statefulset("plain", json!({})).to_string())
        .expect_ok("create plain");
    ns.apply(&statefulset("other", json!({"example.com/owner": "team-a"})).to_string())
        .expect_ok("create with another annotation");
    ns.kubectl(&["label", "statefulset", "plain", "tier=web"], None)
        .expect_ok("label plain");
    ns.kubectl(&["scale", "statefulset", "other", "--replicas=0"], None)
        .expect_ok("scale other");
    ns.kubectl(
        &["annotate", "statefulset", "plain", "example.com/note=x"],
        None,
    )
    .expect_ok("annotate plain");
    // A misspelt key without the source is not opted in either: it is
    // admitted unchanged, unchecked (the webhook never sees it).
    ns.apply(&statefulset("typo", json!({"s3-seed.io/sorce": "s3://bucket/"})).to_string())
        .expect_ok("create with a misspelt source key");
    assert_eq!(
        install.admissions(),
        before,
        "no admission for StatefulSets that do not opt in"
    );
    for name in ["plain", "other", "typo"] {
        assert_not_injected(&ns.get("statefulset", name));
    }

    // The counter does count: one opted-in CREATE moves it.
    ns.apply(&statefulset("seeded", opted_in()).to_string())
        .expect_ok("create opted in");
    assert_injected_once_first(&ns.get("statefulset", "seeded"));
    assert!(
        install.admissions() > before,
        "an opted-in StatefulSet reaches the webhook"
    );

    // Opting out keeps it on the webhook's path exactly once more (UPDATE
    // whose old object had the source), which removes the injection.
    let opted_in_count = install.admissions();
    ns.kubectl(
        &["annotate", "statefulset", "seeded", "s3-seed.io/source-"],
        None,
    )
    .expect_ok("remove the source annotation");
    assert_not_injected(&ns.get("statefulset", "seeded"));
    assert!(
        install.admissions() > opted_in_count,
        "the opt-out UPDATE was sent"
    );
    let after_opt_out = install.admissions();
    ns.kubectl(&["label", "statefulset", "seeded", "tier=web"], None)
        .expect_ok("label it");
    assert_eq!(
        install.admissions(),
        after_opt_out,
        "not sent once opted out"
    );
}

#[test]
#[ignore = "needs the control plane (tests/cluster/up.sh) and root"]
fn the_excluded_namespaces_are_never_sent() {
    let _alone = exclusive();
    let install = installed();
    let before = install.admissions();
    // An annotation the webhook would refuse: created all the same, unchanged.
    let refused_if_sent = json!({"s3-seed.io/source": "s3://bucket/", "s3-seed.io/sub-pth": "x"});
    for ns in ["kube-system", "kube-node-lease", "s3-seed"] {
        let name = format!("excluded-{}", std::process::id());
        let sts = statefulset(&name, refused_if_sent.clone());
        kubectl(&["-n", ns, "create", "-f", "-"], Some(&sts.to_string()))
            .expect_ok(&format!("create an annotated StatefulSet in {ns}"));
        let stored =
            kubectl(&["-n", ns, "get", "statefulset", &name, "-o", "json"], None).json("get it");
        assert_not_injected(&stored);
        kubectl(&["-n", ns, "delete", "statefulset", &name], None).expect_ok("delete it");
    }
    assert_eq!(
        install.admissions(),
        before,
        "nothing from the excluded namespaces"
    );
}

/// Restarts the webhook when a test that stopped it ends, even by a panic.
struct Restart(&'static Install);

impl Drop for Restart {
    fn drop(&mut self) {
        if !self.0.is_running() {
            self.0.start_webhook();
        }
    }
}

#[test]
#[ignore = "needs the control plane (tests/cluster/up.sh) and root"]
fn with_the_webhook_down_annotated_statefulsets_are_refused_and_plain_ones_created() {
    let _alone = exclusive();
    let install = installed();
    let ns = Namespace::create("down", &[]);
    install.stop_webhook();
    let restart = Restart(install);

    let err = ns
        .apply(&statefulset("seeded", opted_in()).to_string())
        .expect_err("an annotated StatefulSet with the webhook down");
    assert!(
        err.contains(&format!(r#"failed calling webhook "{WEBHOOK}""#)),
        "{err}"
    );
    assert!(
        !ns.kubectl(&["get", "statefulset", "seeded"], None).ok,
        "nothing stored"
    );
    ns.apply(&statefulset("plain", json!({})).to_string())
        .expect_ok("a plain StatefulSet with the webhook down");
    assert_not_injected(&ns.get("statefulset", "plain"));

    drop(restart);
    ns.apply(&statefulset("seeded", opted_in()).to_string())
        .expect_ok("the same, webhook back");
    assert_injected_once_first(&ns.get("statefulset", "seeded"));
}

/// A named source alone opts in, and `s3-seed.io/*` keys written on the pod
/// template instead of the StatefulSet reach the webhook, which admits the
/// object unchanged and warns: kubectl prints the warning.
#[test]
#[ignore = "needs the control plane (tests/cluster/up.sh) and root"]
fn named_sources_opt_in_and_template_annotations_are_warned_about() {
    let _alone = exclusive();
    let install = installed();
    let ns = Namespace::create("named", &[]);
    ns.apply(
        &statefulset(
            "named",
            json!({"s3-seed.io/source.site": "s3://bucket/site/"}),
        )
        .to_string(),
    )
    .expect_ok("create with a named source only");
    assert_injected_once_first(&ns.get("statefulset", "named"));

    let before = install.admissions();
    let mut misplaced = statefulset("misplaced", json!({}));
    misplaced["spec"]["template"]["metadata"]["annotations"] =
        json!({"s3-seed.io/source": "s3://bucket/data/"});
    let run = ns.apply(&misplaced.to_string());
    assert!(run.ok, "admitted: {}", run.stderr);
    assert!(
        run.stderr.contains(
            "Warning: spec.template.metadata.annotations: s3-seed.io/source is ignored on the pod template"
        ),
        "kubectl prints the webhook's warning: {}",
        run.stderr
    );
    assert!(
        install.admissions() > before,
        "the object reached the webhook"
    );
    assert_not_injected(&ns.get("statefulset", "misplaced"));
}
