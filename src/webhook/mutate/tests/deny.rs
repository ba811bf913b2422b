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
        (
            "named source on a volume that does not exist",
            with(
                "statefulset-basic",
                &[
                    ("s3-seed.io/source.model", Some("s3://models/")),
                    ("s3-seed.io/volume.model", Some("wieghts")),
                ],
            ),
            &["annotation s3-seed.io/volume.model: volume \"wieghts\" does not exist"],
        ),
        (
            "named source, two claim templates, no volume",
            with(
                "statefulset-full",
                &[("s3-seed.io/source.model", Some("s3://models/"))],
            ),
            &["annotation s3-seed.io/volume.model is required unless"],
        ),
        (
            "named source on a read-only volume",
            with(
                "statefulset-full",
                &[
                    ("s3-seed.io/source.model", Some("s3://models/")),
                    ("s3-seed.io/volume.model", Some("config")),
                ],
            ),
            &["annotation s3-seed.io/volume.model: volume \"config\" is a read-only configMap"],
        ),
        (
            "two sources in the same directory",
            with(
                "statefulset-basic",
                &[("s3-seed.io/source.model", Some("s3://models/"))],
            ),
            &[
                "s3-seed.io/volume \"data\" without s3-seed.io/sub-path and s3-seed.io/volume.model \"data\" without s3-seed.io/sub-path.model",
                "two sources write to the same directory",
            ],
        ),
        (
            "a source inside another (the unnamed volume resolved, the named one explicit)",
            with(
                "statefulset-basic",
                &[
                    ("s3-seed.io/source.model", Some("s3://models/")),
                    ("s3-seed.io/volume.model", Some("data")),
                    ("s3-seed.io/sub-path.model", Some("models")),
                ],
            ),
            &["one source's directory is inside the other's"],
        ),
        (
            "suffixed key without its source",
            with(
                "statefulset-basic",
                &[("s3-seed.io/prune.modle", Some("false"))],
            ),
            &["annotation s3-seed.io/prune.modle: there is no s3-seed.io/source.modle"],
        ),
        (
            "invalid source name",
            with(
                "statefulset-basic",
                &[("s3-seed.io/source.Model", Some("s3://models/"))],
            ),
            &["\"Model\" is not a valid source name"],
        ),
        (
            "unknown suffixed key",
            with(
                "statefulset-basic",
                &[("s3-seed.io/sub-pth.model", Some("x"))],
            ),
            &["did you mean s3-seed.io/sub-path.model?"],
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

    // An init container of that name, on an object the webhook never
    // injected into, is the user's: refused, not replaced.
    let mut own = fixture("statefulset-basic");
    own["spec"]["template"]["spec"]["initContainers"] =
        json!([{"name": "s3-seed", "image": "their/own:1"}]);
    let err = mutate(&own, &cfg()).expect_err("their own s3-seed init container");
    assert_eq!(err, MutateError::ReservedInitName);
    let msg = err.to_string();
    assert!(
        msg.contains("reserved") && msg.contains("rename it"),
        "{msg}"
    );
    // With the marker it is an earlier injection, replaced.
    own["metadata"]["annotations"]["s3-seed.io/status"] = STATUS_INJECTED.into();
    let m = checked(&own, &cfg());
    assert_eq!(init_names(&m.desired), ["s3-seed"]);
    assert_eq!(
        injected(&m.desired)["image"],
        "registry.example/s3-seed:0.1.0"
    );
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
