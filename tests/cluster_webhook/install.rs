//! Every rendered overlay is accepted by the real API server with
//! `kubectl apply --server-side --validate=strict`, is stored as rendered,
//! and the webhook's own pods pass Pod Security "restricted" in its
//! namespace. cert-manager's `Issuer` and `Certificate` are left out: they
//! need cert-manager's CRDs and cert-manager itself, which
//! `cluster_certmanager.rs` runs.

use serde_json::Value;

use crate::common::cluster::webhook::{
    NAMESPACE, OVERLAYS, apply_rendered, exclusive, installed, render,
};
use crate::common::cluster::{kubectl, wait_for};
use crate::stored::WAIT;

/// Kinds that need CRDs the control plane lacks, per overlay.
fn crd_kinds(overlay: &str) -> &'static [&'static str] {
    match overlay {
        "overlays/cert-manager" => &["Issuer", "Certificate"],
        _ => &[],
    }
}

fn get(doc: &Value) -> Value {
    let kind = doc["kind"].as_str().expect("kind");
    let name = doc["metadata"]["name"].as_str().expect("name");
    let mut args = vec!["get", kind, name, "-o", "json"];
    if let Some(ns) = doc["metadata"]["namespace"].as_str() {
        args.extend(["-n", ns]);
    }
    kubectl(&args, None).json(&format!("get {kind}/{name}"))
}

#[test]
#[ignore = "needs the control plane (tests/cluster/up.sh) and root"]
fn every_overlay_is_accepted_server_side_strict_and_stored_as_rendered() {
    let _alone = exclusive();
    let install = installed();
    for overlay in OVERLAYS {
        let docs = render(&install.root, overlay);
        let skip = crd_kinds(overlay);
        for kind in skip {
            assert!(
                docs.iter().any(|d| d["kind"] == *kind),
                "{overlay} renders a {kind}"
            );
        }
        let out = apply_rendered(&docs, skip).expect_ok(&format!("apply manifests/{overlay}"));
        let applied: Vec<&Value> = docs
            .iter()
            .filter(|d| !skip.contains(&d["kind"].as_str().unwrap_or_default()))
            .collect();
        assert_eq!(
            out.matches("serverside-applied").count(),
            applied.len(),
            "{overlay}:\n{out}"
        );

        for doc in applied {
            let stored = get(doc);
            let what = format!("{overlay}: {} {}", doc["kind"], doc["metadata"]["name"]);
            for part in ["labels", "annotations"] {
                for (k, v) in doc["metadata"][part].as_object().into_iter().flatten() {
                    assert_eq!(&stored["metadata"][part][k], v, "{what}: {part} {k}");
                }
            }
            if doc["kind"] == "MutatingWebhookConfiguration" {
                // The API server adds defaults; what was rendered is kept.
                let (mut want, got) = (doc["webhooks"][0].clone(), &stored["webhooks"][0]);
                // kustomize copies the Secret's base64 wrapped at 76 columns;
                // the API server stores the bytes and returns them unwrapped.
                if let Some(ca) = want["clientConfig"]["caBundle"].as_str() {
                    want["clientConfig"]["caBundle"] =
                        ca.split_whitespace().collect::<String>().into();
                }
                for key in [
                    "name",
                    "clientConfig",
                    "rules",
                    "namespaceSelector",
                    "matchConditions",
                    "failurePolicy",
                ] {
                    assert_eq!(got[key], want[key], "{what}: webhook {key}");
                }
            }
        }
    }

    // The last overlay applied is the installation: the API server calls the
    // webhook again, through the Service reference and the test CA.
    installed().wait_until_called();
    let mwc = kubectl(
        &[
            "get",
            "mutatingwebhookconfiguration",
            "s3-seed",
            "-o",
            "json",
        ],
        None,
    )
    .json("get the MutatingWebhookConfiguration");
    let client = &mwc["webhooks"][0]["clientConfig"];
    assert_eq!(client["service"]["name"], "s3-seed-webhook");
    assert_eq!(client["service"]["port"], 443);
    assert!(
        client["url"].is_null(),
        "no url: the Service reference is used"
    );
    assert!(client["caBundle"].as_str().is_some_and(|b| !b.is_empty()));
}

#[test]
#[ignore = "needs the control plane (tests/cluster/up.sh) and root"]
fn strict_validation_refuses_an_unknown_field() {
    let _alone = exclusive();
    let mut docs = render(&installed().root, "overlays/self-managed");
    let service = docs
        .iter_mut()
        .find(|d| d["kind"] == "Service")
        .expect("a Service");
    service["spec"]["clusterIp"] = "None".into();
    let err = apply_rendered(&docs, &[]).expect_err("a Service with a misspelt field");
    assert!(err.contains(r#"unknown field "clusterIp""#), "{err}");
}

#[test]
#[ignore = "needs the control plane (tests/cluster/up.sh) and root"]
fn the_webhook_pods_pass_restricted_pod_security_in_their_namespace() {
    let _webhook = crate::common::cluster::webhook::shared();
    let labels =
        kubectl(&["get", "namespace", NAMESPACE, "-o", "json"], None).json("get namespace");
    assert_eq!(
        labels["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
    let deploy = wait_for("the webhook Deployment ready", WAIT, || {
        let d = kubectl(
            &[
                "-n",
                NAMESPACE,
                "get",
                "deployment",
                "s3-seed-webhook",
                "-o",
                "json",
            ],
            None,
        )
        .json("get the Deployment");
        let want = &d["spec"]["replicas"];
        if &d["status"]["readyReplicas"] == want {
            Ok(d)
        } else {
            Err(d["status"].to_string())
        }
    });
    assert_eq!(deploy["spec"]["replicas"], 2);
}
