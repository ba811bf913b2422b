//! Every mutated fixture is a valid StatefulSet: it validates against the
//! official Kubernetes v1.33 JSON schema (standalone-strict, vendored in
//! tests/fixtures/schema/ from the `kubernetes-validate` package, so the test
//! never skips), and it keeps the rules the API server enforces beyond the
//! schema: unique container names across init and regular containers,
//! mounts that name an existing pod volume or claim template, absolute mount
//! paths and relative sub-paths.

use std::collections::BTreeSet;

use s3_seed::webhook::{InjectConfig, mutate};
use serde_json::Value;

struct Validator {
    schemas: boon::Schemas,
    index: boon::SchemaIndex,
}

impl Validator {
    fn new() -> Self {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/schema/statefulset-apps-v1.json"
        );
        let schema: Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect("vendored schema"))
                .expect("schema JSON");
        let mut schemas = boon::Schemas::new();
        let mut compiler = boon::Compiler::new();
        let loc = "https://kubernetes.io/api/statefulset/apps/v1";
        compiler.add_resource(loc, schema).expect("add schema");
        let index = compiler.compile(loc, &mut schemas).expect("compile schema");
        Self { schemas, index }
    }

    /// Schema and semantic errors, empty when the object is valid.
    fn errors(&self, object: &Value) -> Vec<String> {
        let mut errors = match self.schemas.validate(object, self.index) {
            Ok(()) => Vec::new(),
            Err(e) => vec![format!("schema: {e:#}")],
        };
        errors.extend(semantic_errors(object));
        errors
    }
}

fn names<'a>(items: Option<&'a Value>, name_at: &str) -> Vec<&'a str> {
    items
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|i| i.pointer(name_at).and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default()
}

/// What the API server checks beyond the schema, for the parts we touch.
fn semantic_errors(sts: &Value) -> Vec<String> {
    let pod = &sts["spec"]["template"]["spec"];
    let mut errors = Vec::new();
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .filter_map(|k| pod.get(*k).and_then(Value::as_array))
        .flatten()
        .collect();
    let mut seen = BTreeSet::new();
    for name in containers.iter().filter_map(|c| c["name"].as_str()) {
        if !seen.insert(name) {
            errors.push(format!("duplicate container name {name:?}"));
        }
    }
    let mut volumes: BTreeSet<&str> = names(pod.get("volumes"), "/name").into_iter().collect();
    volumes.extend(names(
        sts["spec"].get("volumeClaimTemplates"),
        "/metadata/name",
    ));
    for c in &containers {
        for m in c
            .get("volumeMounts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let (name, path) = (
                m["name"].as_str().unwrap_or(""),
                m["mountPath"].as_str().unwrap_or(""),
            );
            if !volumes.contains(name) {
                errors.push(format!("{}: mount of unknown volume {name:?}", c["name"]));
            }
            if !path.starts_with('/') {
                errors.push(format!("{}: mountPath {path:?} is not absolute", c["name"]));
            }
            if let Some(sub) = m.get("subPath").and_then(Value::as_str)
                && (sub.starts_with('/') || sub.split('/').any(|p| p == ".."))
            {
                errors.push(format!("{}: subPath {sub:?} escapes the volume", c["name"]));
            }
        }
    }
    errors
}

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/webhook/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("fixture JSON")
}

fn annotated(name: &str, edits: &[(&str, Option<&str>)]) -> Value {
    let mut object = fixture(name);
    let annotations = object["metadata"]["annotations"]
        .as_object_mut()
        .expect("annotations");
    for (k, v) in edits {
        match v {
            Some(v) => annotations.insert((*k).to_owned(), (*v).into()),
            None => annotations.remove(*k),
        };
    }
    object
}

fn configs() -> Vec<InjectConfig> {
    let admin = InjectConfig {
        image: "registry.example:5000/platform/s3-seed@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".to_owned(),
        image_pull_policy: Some("Always".to_owned()),
        cpu_request: "250m".to_owned(),
        memory_request: "128Mi".to_owned(),
        cpu_limit: Some("2".to_owned()),
        memory_limit: "1Gi".to_owned(),
        default_region: Some("us-east-1".to_owned()),
        default_endpoint: Some("https://s3.internal.example".parse().expect("endpoint")),
        default_path_style: Some(true),
        sync_concurrency: Some(64),
        sync_part_size: Some(32 << 20),
        sync_trust_installed: true,
    };
    vec![InjectConfig::default(), admin]
}

#[test]
fn every_mutated_fixture_is_a_valid_statefulset() {
    let v = Validator::new();
    let objects = [
        fixture("statefulset-basic"),
        fixture("statefulset-full"),
        fixture("statefulset-pod-volume"),
        fixture("statefulset-injected-old"),
        annotated(
            "statefulset-full",
            &[
                ("s3-seed.io/volume", Some("scratch")),
                ("s3-seed.io/credentials-secret", None),
            ],
        ),
        annotated("statefulset-full", &[("s3-seed.io/volume", Some("logs"))]),
        annotated(
            "statefulset-basic",
            &[("s3-seed.io/sub-path", Some("a/b/c/"))],
        ),
        annotated(
            "statefulset-injected-old",
            &[("s3-seed.io/enabled", Some("false"))],
        ),
    ];
    let mut checked = 0;
    for object in &objects {
        assert_eq!(
            v.errors(object),
            Vec::<String>::new(),
            "fixture itself must be valid"
        );
        for cfg in configs() {
            let m = mutate(object, &cfg).unwrap_or_else(|e| panic!("denied: {e}"));
            let mut stored = object.clone();
            json_patch::patch(&mut stored, &m.patch).expect("patch applies");
            let errors = v.errors(&stored);
            assert!(
                errors.is_empty(),
                "{} is invalid after mutation: {errors:#?}",
                object["metadata"]["name"]
            );
            checked += 1;
        }
    }
    assert_eq!(checked, objects.len() * 2);
}

#[test]
fn the_validator_catches_what_the_api_server_would_refuse() {
    let v = Validator::new();
    let good = mutate(&fixture("statefulset-basic"), &InjectConfig::default())
        .expect("admitted")
        .desired;
    assert!(v.errors(&good).is_empty());
    type Breakage = (&'static str, fn(&mut Value));
    let breakages: [Breakage; 5] = [
        ("unknown container field", |o| {
            o["spec"]["template"]["spec"]["initContainers"][0]["runAs"] = 1.into()
        }),
        ("env value not a string", |o| {
            o["spec"]["template"]["spec"]["initContainers"][0]["env"][0]["value"] = true.into()
        }),
        ("duplicate name", |o| {
            o["spec"]["template"]["spec"]["containers"][0]["name"] = "s3-seed".into()
        }),
        ("unknown volume", |o| {
            o["spec"]["template"]["spec"]["initContainers"][0]["volumeMounts"][0]["name"] =
                "nope".into()
        }),
        ("relative mount", |o| {
            o["spec"]["template"]["spec"]["initContainers"][0]["volumeMounts"][0]["mountPath"] =
                "data".into()
        }),
    ];
    for (name, breaks) in breakages {
        let mut bad = good.clone();
        breaks(&mut bad);
        assert!(!v.errors(&bad).is_empty(), "{name} must be caught");
    }
}
