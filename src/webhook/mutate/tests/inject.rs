//! What is injected, where, and with which environment.

use super::*;

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
    admin.sync_trust_installed = true;
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
    assert_eq!(basic["S3_SEED_TRUST_INSTALLED"], "true");
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
