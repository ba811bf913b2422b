//! Several sources: one init container for all of them, one mount each,
//! one `secretKeyRef` set per Secret, and UPDATEs that add or remove a
//! source in place.

use super::*;
use crate::contract::{SourceEntry, parse_entries};

/// `statefulset-full` with a second, named source from another bucket and
/// another Secret, on the second claim template.
fn model_and_dataset() -> Value {
    with(
        "statefulset-full",
        &[
            (
                "s3-seed.io/source.dataset",
                Some("s3://datasets/wiki/2025/"),
            ),
            ("s3-seed.io/volume.dataset", Some("scratch")),
            ("s3-seed.io/credentials-secret.dataset", Some("datasets-s3")),
            (
                "s3-seed.io/endpoint.dataset",
                Some("https://s3.eu-west-1.amazonaws.com"),
            ),
            ("s3-seed.io/path-style.dataset", Some("false")),
            ("s3-seed.io/include.dataset", Some("*.parquet")),
        ],
    )
}

fn mounts(container: &Value) -> Vec<(String, String, Option<String>)> {
    container["volumeMounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .map(|m| {
            let s = |k: &str| m[k].as_str().map(str::to_owned);
            (
                s("name").unwrap_or_default(),
                s("mountPath").unwrap_or_default(),
                s("subPath"),
            )
        })
        .collect()
}

fn entries(container: &Value) -> Vec<SourceEntry> {
    let env: BTreeMap<_, _> = env_of(container).into_iter().collect();
    let text = env["S3_SEED_SOURCES"].as_str().expect("a plain value");
    parse_entries(text).expect("the webhook writes entries sync reads")
}

#[test]
fn two_sources_from_two_buckets_with_two_secrets() {
    let m = checked(&model_and_dataset(), &cfg());
    assert_eq!(
        init_names(&m.desired),
        ["s3-seed", "wait-for-db", "log-shipper"]
    );
    let c = injected(&m.desired);
    assert_eq!(
        mounts(&c),
        [
            ("weights".into(), MOUNT_PATH.into(), Some("llama".into())),
            ("scratch".into(), "/s3-seed/sources/dataset".into(), None),
        ]
    );
    let env: BTreeMap<_, _> = env_of(&c).into_iter().collect();
    assert_eq!(env["S3_SEED_SOURCE"], "s3://models/llama/v2/");
    assert_eq!(env["S3_SEED_TARGET"], MOUNT_PATH);
    assert_eq!(env["S3_SEED_ENDPOINT"], "http://minio.minio.svc:9000");
    let secret = |name: &str, key: &str, optional: bool| json!({"secretKeyRef": {"name": name, "key": key, "optional": optional}});
    for (prefix, name) in [("", "models-s3"), ("S3_SEED_KEYS_1_", "datasets-s3")] {
        for (key, optional) in [
            ("AWS_ACCESS_KEY_ID", false),
            ("AWS_SECRET_ACCESS_KEY", false),
            ("AWS_SESSION_TOKEN", true),
        ] {
            assert_eq!(
                env[&format!("{prefix}{key}")],
                secret(name, key, optional),
                "{prefix}{key}"
            );
        }
    }
    assert_eq!(env.len(), 15, "{:?}", env.keys());
    assert_eq!(
        entries(&c),
        [SourceEntry {
            name: "dataset".parse().expect("name"),
            source: "s3://datasets/wiki/2025/".parse().expect("uri"),
            target: "/s3-seed/sources/dataset".into(),
            include: "*.parquet".parse().expect("glob"),
            exclude: Default::default(),
            prune: true,
            endpoint: Some("https://s3.eu-west-1.amazonaws.com".parse().expect("url")),
            region: None,
            path_style: Some(false),
            credentials: Some("S3_SEED_KEYS_1".to_owned()),
        }]
    );
}

#[test]
fn one_named_source_alone() {
    let object = with(
        "statefulset-basic",
        &[
            (SOURCE, None),
            ("s3-seed.io/source.site", Some("s3://shop-assets/site/v4/")),
        ],
    );
    let m = checked(&object, &cfg());
    let c = injected(&m.desired);
    assert_eq!(
        mounts(&c),
        [("data".into(), "/s3-seed/sources/site".into(), None)]
    );
    assert_eq!(
        env_names(&c),
        ["S3_SEED_SOURCES"],
        "no unnamed source, no shared settings"
    );
    assert_eq!(
        entries(&c)[0].target,
        std::path::Path::new("/s3-seed/sources/site")
    );
}

#[test]
fn sixteen_sources_get_sixteen_mounts() {
    let names: Vec<String> = (1..=16).map(|i| format!("part-{i:02}")).collect();
    let mut object = fixture("statefulset-basic");
    let annotations = map_at(&mut object, &["metadata", "annotations"]);
    annotations.remove(SOURCE);
    for name in &names {
        annotations.insert(
            format!("{SOURCE}.{name}"),
            format!("s3://parts/{name}/").into(),
        );
        annotations.insert(format!("{SUB_PATH}.{name}"), name.clone().into());
    }
    let m = checked(&object, &cfg());
    let c = injected(&m.desired);
    let got = mounts(&c);
    assert_eq!(got.len(), 16);
    for ((volume, path, sub), name) in got.iter().zip(&names) {
        assert_eq!(volume, "data");
        assert_eq!(path, &format!("/s3-seed/sources/{name}"));
        assert_eq!(sub.as_deref(), Some(name.as_str()));
    }
    let targets: Vec<_> = entries(&c).into_iter().map(|e| e.target).collect();
    assert_eq!(targets.len(), 16);
    assert_eq!(init_names(&m.desired), ["s3-seed"], "one container for all");
}

#[test]
fn update_adds_and_removes_a_source_in_place() {
    let one = checked(&fixture("statefulset-full"), &cfg()).desired;
    let mut two = one.clone();
    let annotations = map_at(&mut two, &["metadata", "annotations"]);
    annotations.insert(
        "s3-seed.io/source.dataset".into(),
        "s3://datasets/x/".into(),
    );
    annotations.insert("s3-seed.io/volume.dataset".into(), "scratch".into());
    let added = checked(&two, &cfg());
    let c = injected(&added.desired);
    assert_eq!(mounts(&c).len(), 2);
    assert_eq!(
        init_names(&added.desired),
        ["s3-seed", "wait-for-db", "log-shipper"]
    );
    for op in &added.patch.0 {
        let path = op.path().to_string();
        assert!(
            !path.starts_with("/spec/template/spec/initContainers/1")
                && path != "/spec/template/spec/initContainers/0"
                && path != "/spec/template/spec/initContainers",
            "in place, not replaced or appended: {path}"
        );
    }
    let hash = "/spec/template/metadata/annotations/s3-seed.io~1config-hash";
    assert_ne!(added.desired.pointer(hash), one.pointer(hash));

    // Removing it again gives exactly the single-source injection back.
    let mut back = added.desired.clone();
    let annotations = map_at(&mut back, &["metadata", "annotations"]);
    annotations.remove("s3-seed.io/source.dataset");
    annotations.remove("s3-seed.io/volume.dataset");
    let removed = checked(&back, &cfg());
    assert_eq!(removed.desired, one);
    assert!(!removed.is_empty());
}

#[test]
fn a_single_unnamed_source_is_injected_as_before() {
    // The named form leaves the old container untouched: no new variable,
    // the same one mount, so upgrading the webhook rolls no pod.
    let c = injected(&checked(&fixture("statefulset-basic"), &cfg()).desired);
    assert_eq!(env_names(&c), ["S3_SEED_SOURCE", "S3_SEED_TARGET"]);
    assert_eq!(mounts(&c), [("data".into(), MOUNT_PATH.into(), None)]);
}

#[test]
fn annotations_on_the_pod_template_are_warned_about() {
    let mut object = with("statefulset-basic", &[(SOURCE, None)]);
    let template = map_at(
        &mut object,
        &["spec", "template", "metadata", "annotations"],
    );
    template.insert(SOURCE.into(), "s3://shop-assets/site/v3/".into());
    template.insert("example.com/other".into(), "x".into());
    let m = checked(&object, &cfg());
    assert_eq!(m.action, Action::Untouched);
    assert_eq!(
        m.warnings,
        [
            "spec.template.metadata.annotations: s3-seed.io/source is ignored on the pod template; s3-seed reads s3-seed.io/* annotations from the StatefulSet's metadata.annotations, move it there"
        ]
    );
    let planned = plan(&object.to_string(), &cfg()).expect("plan");
    assert_eq!(planned.warnings, m.warnings);
    // Our own hash on the template is no mistake.
    let injected = checked(&fixture("statefulset-basic"), &cfg());
    assert!(injected.warnings.is_empty());
    assert!(
        mutate(&injected.desired, &cfg())
            .expect("again")
            .warnings
            .is_empty()
    );
}
