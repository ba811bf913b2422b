//! UPDATE of an earlier injection, opting out, and objects left alone or
//! carrying fields the webhook does not know.

use super::*;

#[test]
fn update_replaces_an_earlier_injection_in_place() {
    let original = fixture("statefulset-injected-old");
    let m = checked(&original, &cfg());
    assert_eq!(init_names(&m.desired), ["s3-seed"]);
    let c = injected(&m.desired);
    assert_eq!(c["image"], "registry.example/s3-seed:0.1.0");
    assert_eq!(
        env_of(&c)[0],
        (
            "S3_SEED_SOURCE".to_owned(),
            json!("s3://shop-assets/site/v3/")
        )
    );
    // In place: every operation edits the existing container, none appends.
    for op in &m.patch.0 {
        let path = op.path().to_string();
        assert!(
            !path.starts_with("/spec/template/spec/initContainers/1"),
            "{path}"
        );
    }
    let hash = "/spec/template/metadata/annotations/s3-seed.io~1config-hash";
    assert_ne!(m.desired.pointer(hash), original.pointer(hash));
}

#[test]
fn an_earlier_injection_not_first_is_moved_first_once() {
    let mut object = fixture("statefulset-full");
    let stale = injected(&checked(&object, &cfg()).desired);
    object["metadata"]["annotations"]["s3-seed.io/status"] = STATUS_INJECTED.into();
    object["spec"]["template"]["spec"]["initContainers"]
        .as_array_mut()
        .expect("init containers")
        .push(stale);
    let m = checked(&object, &cfg());
    assert_eq!(
        init_names(&m.desired),
        ["s3-seed", "wait-for-db", "log-shipper"]
    );
    let first = &m.patch.0[0];
    assert!(
        matches!(first, json_patch::PatchOperation::Move(_)),
        "{first:?}"
    );
    assert_eq!(
        first.path().to_string(),
        "/spec/template/spec/initContainers/0"
    );
}

#[test]
fn other_init_containers_are_never_rewritten() {
    let m = checked(&fixture("statefulset-full"), &cfg());
    let init: Vec<_> = m
        .patch
        .0
        .iter()
        .filter(|op| op.path().to_string().contains("initContainers"))
        .collect();
    assert_eq!(init.len(), 1, "{init:?}");
    assert!(matches!(init[0], json_patch::PatchOperation::Add(_)));
    assert_eq!(
        init[0].path().to_string(),
        "/spec/template/spec/initContainers/0"
    );
}

#[test]
fn opting_out_removes_an_earlier_injection() {
    let cases: [(&str, Edits); 2] = [
        ("enabled: false", &[(ENABLED, Some("false"))]),
        ("source removed", &[(SOURCE, None)]),
    ];
    for (name, edits) in cases {
        let mut object = fixture("statefulset-full");
        object = checked(&object, &cfg()).desired;
        let annotations = map_at(&mut object, &["metadata", "annotations"]);
        for (key, value) in edits {
            match value {
                Some(v) => annotations.insert((*key).to_owned(), (*v).into()),
                None => annotations.remove(*key),
            };
        }
        let m = checked(&object, &cfg());
        assert_eq!(m.action, Action::Removed, "{name}");
        assert_eq!(
            init_names(&m.desired),
            ["wait-for-db", "log-shipper"],
            "{name}"
        );
        let removals: Vec<String> = m
            .patch
            .0
            .iter()
            .filter(|op| matches!(op, json_patch::PatchOperation::Remove(_)))
            .map(|op| op.path().to_string())
            .collect();
        assert!(
            removals.contains(&"/spec/template/spec/initContainers/0".to_owned()),
            "{removals:?}"
        );
        assert!(
            m.desired
                .pointer("/metadata/annotations/s3-seed.io~1status")
                .is_none()
        );
        assert!(
            m.desired
                .pointer("/spec/template/metadata/annotations")
                .is_none(),
            "{name}"
        );
    }
    // An injection into a pod with no other init container leaves none.
    let mut basic = checked(&fixture("statefulset-basic"), &cfg()).desired;
    basic["metadata"]["annotations"][ENABLED] = "false".into();
    let m = checked(&basic, &cfg());
    assert!(
        m.desired
            .pointer("/spec/template/spec/initContainers")
            .is_none()
    );
}

/// The controller's UPDATE: only the two `s3-seed.io/source-revision`
/// annotations change. The webhook admits it with an empty patch, and the
/// configuration hash stays what it was (the revision is not configuration).
#[test]
fn an_update_that_only_bumps_the_source_revision_gets_an_empty_patch() {
    let injected = checked(
        &with("statefulset-full", &[(ROLLOUT, Some("on-change"))]),
        &cfg(),
    );
    let hash = "/spec/template/metadata/annotations/s3-seed.io~1config-hash";
    for revision in ["0123456789abcdef", "fedcba9876543210"] {
        let object = rolled_out("statefulset-full", revision);
        let m = checked(&object, &cfg());
        assert!(m.is_empty(), "{revision}: {:?}", m.patch);
        assert_eq!(m.action, injected.action, "{revision}");
        assert_eq!(m.desired.pointer(hash), injected.desired.pointer(hash));
    }
}

/// A fixture opted in to rollouts, as the webhook stored it, after the
/// controller wrote `revision` to both annotations.
fn rolled_out(fixture: &str, revision: &str) -> Value {
    let mut object = checked(&with(fixture, &[(ROLLOUT, Some("on-change"))]), &cfg()).desired;
    for path in [
        &["metadata", "annotations"][..],
        &["spec", "template", "metadata", "annotations"][..],
    ] {
        map_at(&mut object, path).insert(SOURCE_REVISION.to_owned(), revision.into());
    }
    object
}

/// A change of configuration rolls the pods through the config hash; it
/// also drops the controller's record, so the controller records the next
/// revision instead of rolling a second time.
#[test]
fn a_new_configuration_resets_the_recorded_revision() {
    let mut object = rolled_out("statefulset-full", "0123456789abcdef");
    object["metadata"]["annotations"][SOURCE] = "s3://models/llama/v3/".into();
    let m = checked(&object, &cfg());
    let revision = "s3-seed.io~1source-revision";
    let recorded = format!("/metadata/annotations/{revision}");
    assert!(m.desired.pointer(&recorded).is_none(), "{:?}", m.patch);
    let rolled = format!("/spec/template/metadata/annotations/{revision}");
    assert_eq!(m.desired.pointer(&rolled), object.pointer(&rolled));
}

#[test]
fn opting_out_also_clears_the_source_revisions() {
    let mut object = rolled_out("statefulset-basic", "0123456789abcdef");
    object["metadata"]["annotations"][ENABLED] = "false".into();
    let m = checked(&object, &cfg());
    assert_eq!(m.action, Action::Removed);
    let revision = "s3-seed.io~1source-revision";
    for path in [
        "/metadata/annotations",
        "/spec/template/metadata/annotations",
    ] {
        let pointer = format!("{path}/{revision}");
        assert!(m.desired.pointer(&pointer).is_none(), "{pointer}");
    }
}

#[test]
fn not_opted_in_is_left_alone() {
    let cases = [
        with("statefulset-basic", &[(SOURCE, None)]),
        with("statefulset-basic", &[(ENABLED, Some("false"))]),
        with("statefulset-no-volumes", &[(SOURCE, None)]),
    ];
    for object in cases {
        let m = checked(&object, &cfg());
        assert_eq!(m.action, Action::Untouched);
        assert!(m.is_empty());
        assert_eq!(m.desired, object);
    }
}

#[test]
fn fields_unknown_to_the_compiled_api_survive() {
    let mut object = fixture("statefulset-basic");
    object["spec"]["template"]["spec"]["hostnameOverride"] = "from-the-future".into();
    object["spec"]["futureField"] = json!({"nested": [1, 2, 3]});
    object["metadata"]["futureMeta"] = true.into();
    let m = checked(&object, &cfg());
    for op in &m.patch.0 {
        let path = op.path().to_string();
        assert!(
            !path.contains("future") && !path.contains("hostnameOverride"),
            "{path}"
        );
    }
    assert_eq!(
        m.desired["spec"]["futureField"],
        json!({"nested": [1, 2, 3]})
    );
    assert_eq!(m.desired["metadata"]["futureMeta"], true);
}

#[test]
fn a_bare_manifest_without_defaults_is_mutated_too() {
    let object = json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db", "annotations": {"s3-seed.io/source": "s3://dumps/db/"}},
        "spec": {
            "selector": {"matchLabels": {"app": "db"}},
            "template": {
                "metadata": {"labels": {"app": "db"}},
                "spec": {"containers": [{"name": "db", "image": "postgres:17"}]}
            },
            "volumeClaimTemplates": [{"metadata": {"name": "pgdata"}}]
        }
    });
    let m = checked(&object, &cfg());
    assert_eq!(init_names(&m.desired), ["s3-seed"]);
    assert_eq!(injected(&m.desired)["volumeMounts"][0]["name"], "pgdata");
}
