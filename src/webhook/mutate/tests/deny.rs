//! Refusals: each names what to fix.

use super::*;

#[test]
fn bad_input_is_denied_with_a_message_to_act_on() {
    let cases: &[(&str, Value, &[&str])] = &[
        (
            "no volume anywhere",
            fixture("statefulset-no-volumes"),
            &[
                "s3-seed.io/volume is required",
                "volumeClaimTemplates: none; pod volumes: none",
            ],
        ),
        (
            "two claim templates, no volume annotation",
            with("statefulset-full", &[(VOLUME, None)]),
            &[
                "s3-seed.io/volume is required unless",
                "volumeClaimTemplates: weights, scratch; pod volumes: logs, config, host-cache",
            ],
        ),
        (
            "volume that does not exist",
            with("statefulset-full", &[(VOLUME, Some("wieghts"))]),
            &[
                "\"wieghts\" does not exist",
                "weights, scratch",
                "logs, config, host-cache",
            ],
        ),
        (
            "host path",
            with("statefulset-full", &[(VOLUME, Some("host-cache"))]),
            &["s3-seed.io/volume", "hostPath", "never choose host paths"],
        ),
        (
            "configMap",
            with("statefulset-full", &[(VOLUME, Some("config"))]),
            &["s3-seed.io/volume", "read-only configMap"],
        ),
        (
            "absolute sub-path",
            with("statefulset-basic", &[(SUB_PATH, Some("/etc"))]),
            &["s3-seed.io/sub-path", "absolute"],
        ),
        (
            "dot-dot sub-path",
            with("statefulset-basic", &[(SUB_PATH, Some("a/../../b"))]),
            &["s3-seed.io/sub-path", ".."],
        ),
        (
            "unparsable source",
            with("statefulset-basic", &[(SOURCE, Some("https://bucket/x"))]),
            &["s3-seed.io/source", "s3://"],
        ),
        (
            "unknown key",
            with("statefulset-basic", &[("s3-seed.io/sub-pth", Some("x"))]),
            &[
                "unknown annotation s3-seed.io/sub-pth",
                "did you mean s3-seed.io/sub-path",
            ],
        ),
    ];
    for (name, object, needles) in cases {
        let err = mutate(object, &cfg()).expect_err(name).to_string();
        for needle in *needles {
            assert!(err.contains(needle), "{name}: {err:?} lacks {needle:?}");
        }
        assert!(err.starts_with(char::is_lowercase), "{name}: {err}");
    }
}

#[test]
fn read_only_and_reserved_names_are_denied() {
    let mut pvc_ro = fixture("statefulset-pod-volume");
    pvc_ro["spec"]["template"]["spec"]["volumes"][0] =
        json!({"name": "warm", "persistentVolumeClaim": {"claimName": "warm", "readOnly": true}});
    let err = mutate(&pvc_ro, &cfg()).expect_err("read-only claim");
    assert!(
        matches!(err, MutateError::ReadOnlyVolume { ref kind, .. } if kind == "persistentVolumeClaim")
    );

    let mut clash = fixture("statefulset-basic");
    clash["spec"]["template"]["spec"]["containers"][0]["name"] = "s3-seed".into();
    assert_eq!(mutate(&clash, &cfg()), Err(MutateError::ReservedName));
}

#[test]
fn malformed_objects_are_shape_errors() {
    let mut no_containers = fixture("statefulset-basic");
    no_containers["spec"]["template"]["spec"]
        .as_object_mut()
        .expect("pod spec")
        .remove("containers");
    let mut bool_annotation = fixture("statefulset-basic");
    bool_annotation["metadata"]["annotations"]["s3-seed.io/prune"] = false.into();
    let cases = [
        (json!("a string"), "invalid type"),
        (json!({"metadata": {}}), "missing field `spec`"),
        (no_containers, "missing field `containers`"),
        (bool_annotation, "\"s3-seed.io/prune\" must be a string"),
    ];
    for (object, needle) in cases {
        match mutate(&object, &cfg()) {
            Err(MutateError::Shape(msg)) => assert!(msg.contains(needle), "{msg}"),
            other => panic!("expected a shape error with {needle:?}, got {other:?}"),
        }
    }
}
