//! Table tests for the mutation, on StatefulSets shaped as the API server
//! sends them (tests/fixtures/webhook/). Every successful case is also run
//! through [`checked`], which applies the patch with strict RFC 6902
//! semantics, compares it with the desired object, and proves idempotence,
//! determinism and that `volumeClaimTemplates` is never touched.

use serde_json::json;

use super::*;
use std::collections::BTreeMap;

use crate::spec::{ENABLED, SOURCE, SUB_PATH, VOLUME};

pub(crate) fn config_with_image(image: &str) -> InjectConfig {
    InjectConfig {
        image: image.to_owned(),
        ..InjectConfig::default()
    }
}

fn cfg() -> InjectConfig {
    config_with_image("registry.example/s3-seed:0.1.0")
}

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/webhook/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A fixture with annotations set (`Some`) or removed (`None`).
fn with(name: &str, edits: &[(&str, Option<&str>)]) -> Value {
    let mut object = fixture(name);
    let annotations = map_at(&mut object, &["metadata", "annotations"]);
    for (key, value) in edits {
        match value {
            Some(v) => annotations.insert((*key).to_owned(), (*v).into()),
            None => annotations.remove(*key),
        };
    }
    object
}

/// Mutate, then check the properties every successful mutation must have.
fn checked(object: &Value, cfg: &InjectConfig) -> Mutation {
    let m = mutate(object, cfg).unwrap_or_else(|e| panic!("unexpected denial: {e}"));
    let mut applied = object.clone();
    json_patch::patch(&mut applied, &m.patch).expect("the patch applies under strict RFC 6902");
    assert_eq!(
        applied, m.desired,
        "patch result differs from the desired object"
    );
    for op in &m.patch.0 {
        let path = op.path().to_string();
        assert!(!path.starts_with("/spec/volumeClaimTemplates"), "{path}");
    }
    let again = mutate(&m.desired, cfg).expect("own output is admitted");
    assert!(again.is_empty(), "not idempotent: {:?}", again.patch);
    let twice = mutate(object, cfg).expect("same input, same answer");
    assert_eq!(
        serde_json::to_vec(&twice.patch).ok(),
        serde_json::to_vec(&m.patch).ok(),
        "not deterministic"
    );
    m
}

fn init_containers(object: &Value) -> Vec<Value> {
    object
        .pointer("/spec/template/spec/initContainers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn init_names(object: &Value) -> Vec<String> {
    init_containers(object)
        .iter()
        .filter_map(|c| c["name"].as_str().map(str::to_owned))
        .collect()
}

fn injected(object: &Value) -> Value {
    init_containers(object)
        .into_iter()
        .next()
        .expect("an init container")
}

fn env_of(container: &Value) -> Vec<(String, Value)> {
    container["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|e| {
            let name = e["name"].as_str().unwrap_or_default().to_owned();
            let value = e
                .get("value")
                .cloned()
                .unwrap_or_else(|| e["valueFrom"].clone());
            (name, value)
        })
        .collect()
}

fn env_names(container: &Value) -> Vec<String> {
    env_of(container).into_iter().map(|(n, _)| n).collect()
}

/// Annotations to set (`Some`) or remove (`None`).
type Edits = &'static [(&'static str, Option<&'static str>)];

struct InjectCase {
    name: &'static str,
    fixture: &'static str,
    edits: Edits,
    init: &'static [&'static str],
    volume: &'static str,
    sub_path: Option<&'static str>,
    env: &'static [&'static str],
}

#[test]
fn injects_first_with_the_right_volume_and_env() {
    let cases = [
        InjectCase {
            name: "only claim template, no volume annotation",
            fixture: "statefulset-basic",
            edits: &[],
            init: &["s3-seed"],
            volume: "data",
            sub_path: None,
            env: &["S3_SEED_SOURCE", "S3_SEED_TARGET"],
        },
        InjectCase {
            name: "init containers and a native sidecar already there, every annotation",
            fixture: "statefulset-full",
            edits: &[],
            init: &["s3-seed", "wait-for-db", "log-shipper"],
            volume: "weights",
            sub_path: Some("llama"),
            env: &[
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
                "AWS_SESSION_TOKEN",
                "S3_SEED_ENDPOINT",
                "S3_SEED_EXCLUDE",
                "S3_SEED_INCLUDE",
                "S3_SEED_NO_PRUNE",
                "S3_SEED_PATH_STYLE",
                "S3_SEED_REGION",
                "S3_SEED_SOURCE",
                "S3_SEED_TARGET",
            ],
        },
        InjectCase {
            name: "second of two claim templates",
            fixture: "statefulset-full",
            edits: &[(VOLUME, Some("scratch")), (SUB_PATH, None)],
            init: &["s3-seed", "wait-for-db", "log-shipper"],
            volume: "scratch",
            sub_path: None,
            env: &[],
        },
        InjectCase {
            name: "writable pod volume next to read-only ones",
            fixture: "statefulset-full",
            edits: &[(VOLUME, Some("logs"))],
            init: &["s3-seed", "wait-for-db", "log-shipper"],
            volume: "logs",
            sub_path: Some("llama"),
            env: &[],
        },
        InjectCase {
            name: "emptyDir pod volume and no claim templates",
            fixture: "statefulset-pod-volume",
            edits: &[],
            init: &["s3-seed"],
            volume: "warm",
            sub_path: None,
            env: &["S3_SEED_SOURCE", "S3_SEED_TARGET"],
        },
        InjectCase {
            name: "earlier injection with an old source and image",
            fixture: "statefulset-injected-old",
            edits: &[],
            init: &["s3-seed"],
            volume: "data",
            sub_path: None,
            env: &["S3_SEED_SOURCE", "S3_SEED_TARGET"],
        },
    ];
    for case in cases {
        let object = with(case.fixture, case.edits);
        let m = checked(&object, &cfg());
        let name = case.name;
        assert!(matches!(m.action, Action::Injected { .. }), "{name}");
        assert_eq!(init_names(&m.desired), case.init, "{name}");
        let c = injected(&m.desired);
        let mounts = c["volumeMounts"].as_array().expect("mounts");
        assert_eq!(mounts.len(), 1, "{name}: exactly one mount");
        assert_eq!(mounts[0]["name"], case.volume, "{name}");
        assert_eq!(mounts[0]["mountPath"], MOUNT_PATH, "{name}");
        assert_eq!(mounts[0]["subPath"].as_str(), case.sub_path, "{name}");
        if !case.env.is_empty() {
            assert_eq!(env_names(&c), case.env, "{name}");
        }
    }
}

#[test]
fn env_values_and_secret_references() {
    let m = checked(&fixture("statefulset-full"), &cfg());
    let env: BTreeMap<_, _> = env_of(&injected(&m.desired)).into_iter().collect();
    assert_eq!(env["S3_SEED_SOURCE"], "s3://models/llama/v2/");
    assert_eq!(env["S3_SEED_TARGET"], MOUNT_PATH);
    assert_eq!(env["S3_SEED_INCLUDE"], "*.safetensors,tokenizer/**");
    assert_eq!(env["S3_SEED_NO_PRUNE"], "true");
    assert_eq!(env["S3_SEED_ENDPOINT"], "http://minio.minio.svc:9000");
    assert_eq!(env["S3_SEED_PATH_STYLE"], "true");
    let secret = |key: &str, optional: bool| json!({"secretKeyRef": {"name": "models-s3", "key": key, "optional": optional}});
    assert_eq!(env["AWS_ACCESS_KEY_ID"], secret("AWS_ACCESS_KEY_ID", false));
    assert_eq!(
        env["AWS_SECRET_ACCESS_KEY"],
        secret("AWS_SECRET_ACCESS_KEY", false)
    );
    assert_eq!(env["AWS_SESSION_TOKEN"], secret("AWS_SESSION_TOKEN", true));
}

#[test]
fn admin_defaults_apply_only_where_annotations_are_silent() {
    let mut admin = cfg();
    admin.default_region = Some("us-east-1".to_owned());
    admin.default_endpoint = Some("https://s3.internal".parse().expect("endpoint"));
    admin.default_path_style = Some(false);
    admin.sync_concurrency = Some(32);
    admin.sync_part_size = Some(16 * 1024 * 1024);
    let basic: BTreeMap<_, _> = env_of(&injected(
        &checked(&fixture("statefulset-basic"), &admin).desired,
    ))
    .into_iter()
    .collect();
    assert_eq!(basic["S3_SEED_REGION"], "us-east-1");
    assert_eq!(basic["S3_SEED_ENDPOINT"], "https://s3.internal");
    assert_eq!(basic["S3_SEED_PATH_STYLE"], "false");
    assert_eq!(basic["S3_SEED_CONCURRENCY"], "32");
    assert_eq!(basic["S3_SEED_PART_SIZE"], "16777216");
    let full: BTreeMap<_, _> = env_of(&injected(
        &checked(&fixture("statefulset-full"), &admin).desired,
    ))
    .into_iter()
    .collect();
    assert_eq!(full["S3_SEED_REGION"], "eu-west-1");
    assert_eq!(full["S3_SEED_ENDPOINT"], "http://minio.minio.svc:9000");
    assert_eq!(full["S3_SEED_PATH_STYLE"], "true");
}

#[test]
fn injected_container_is_restricted_and_fully_defaulted() {
    let mut admin = cfg();
    admin.cpu_limit = Some("1".to_owned());
    let original = fixture("statefulset-full");
    let m = checked(&original, &admin);
    let c = injected(&m.desired);
    assert_eq!(c["name"], CONTAINER_NAME);
    assert_eq!(c["image"], "registry.example/s3-seed:0.1.0");
    assert_eq!(c["command"], json!(["/usr/local/bin/s3-seed"]));
    assert_eq!(c["args"], json!(["sync"]));
    assert_eq!(
        c["securityContext"],
        json!({
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": true,
            "readOnlyRootFilesystem": true,
            "seccompProfile": {"type": "RuntimeDefault"}
        })
    );
    assert_eq!(c["imagePullPolicy"], "IfNotPresent");
    assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(c["terminationMessagePolicy"], "FallbackToLogsOnError");
    assert_eq!(
        c["resources"],
        json!({"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "256Mi"}})
    );
    let pod_sc = "/spec/template/spec/securityContext";
    assert_eq!(m.desired.pointer(pod_sc), original.pointer(pod_sc));
    let hash = m
        .desired
        .pointer("/spec/template/metadata/annotations/s3-seed.io~1config-hash");
    assert_eq!(hash.and_then(Value::as_str), Some(config_hash(&c).as_str()));
    let status = m
        .desired
        .pointer("/metadata/annotations/s3-seed.io~1status");
    assert_eq!(status.and_then(Value::as_str), Some(STATUS_INJECTED));
}

#[test]
fn patch_paths_escape_annotation_keys() {
    let m = checked(&fixture("statefulset-basic"), &cfg());
    let paths: Vec<String> = m.patch.0.iter().map(|op| op.path().to_string()).collect();
    assert!(
        paths.contains(&"/metadata/annotations/s3-seed.io~1status".to_owned()),
        "{paths:?}"
    );
    // The template had no annotations: the diff adds the whole map first.
    assert!(
        paths.contains(&"/spec/template/metadata/annotations".to_owned()),
        "{paths:?}"
    );
}

#[test]
fn config_hash_changes_with_the_source_only() {
    let hash = |object: &Value| match checked(object, &cfg()).action {
        Action::Injected { config_hash } => config_hash,
        other => panic!("not injected: {other:?}"),
    };
    let base = hash(&fixture("statefulset-basic"));
    let relabelled = {
        let mut o = fixture("statefulset-basic");
        o["metadata"]["labels"]["tier"] = "frontend".into();
        o["spec"]["replicas"] = 5.into();
        o
    };
    assert_eq!(
        hash(&relabelled),
        base,
        "unrelated edits must not roll pods"
    );
    let moved = with(
        "statefulset-basic",
        &[(SOURCE, Some("s3://shop-assets/site/v4/"))],
    );
    assert_ne!(hash(&moved), base, "a new source must roll pods");
}

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
