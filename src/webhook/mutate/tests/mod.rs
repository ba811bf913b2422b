//! Table tests for the mutation, on StatefulSets shaped as the API server
//! sends them (tests/fixtures/webhook/). Every successful case is also run
//! through [`checked`], which applies the patch with strict RFC 6902
//! semantics, compares it with the desired object, and proves idempotence,
//! determinism and that `volumeClaimTemplates` is never touched.
//!
//! `inject`: what is injected where; `lifecycle`: UPDATE, opting out and
//! objects left alone; `sources`: several sources; `deny`: refusals and
//! their messages.

mod deny;
mod inject;
mod lifecycle;
mod sources;

use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::contract::{ENABLED, ROLLOUT, SOURCE, SUB_PATH, VOLUME};

pub(crate) fn config_with_image(image: &str) -> InjectConfig {
    InjectConfig {
        image: image.to_owned(),
        ..InjectConfig::default()
    }
}

pub(super) fn cfg() -> InjectConfig {
    config_with_image("registry.example/s3-seed:0.1.0")
}

pub(super) fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/webhook/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A fixture with annotations set (`Some`) or removed (`None`).
pub(super) fn with(name: &str, edits: &[(&str, Option<&str>)]) -> Value {
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
pub(super) fn checked(object: &Value, cfg: &InjectConfig) -> Mutation {
    let m = mutate(object, cfg).unwrap_or_else(|e| panic!("unexpected denial: {e}"));
    let planned = plan(&object.to_string(), cfg).expect("plan admits what mutate admits");
    assert_eq!(planned.patch, m.patch, "plan and mutate patch alike");
    assert_eq!(planned.action, m.action);
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

pub(super) fn init_containers(object: &Value) -> Vec<Value> {
    object
        .pointer("/spec/template/spec/initContainers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

pub(super) fn init_names(object: &Value) -> Vec<String> {
    init_containers(object)
        .iter()
        .filter_map(|c| c["name"].as_str().map(str::to_owned))
        .collect()
}

pub(super) fn injected(object: &Value) -> Value {
    init_containers(object)
        .into_iter()
        .next()
        .expect("an init container")
}

pub(super) fn env_of(container: &Value) -> Vec<(String, Value)> {
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

pub(super) fn env_names(container: &Value) -> Vec<String> {
    env_of(container).into_iter().map(|(n, _)| n).collect()
}

/// Annotations to set (`Some`) or remove (`None`).
pub(super) type Edits = &'static [(&'static str, Option<&'static str>)];

pub(super) struct InjectCase {
    name: &'static str,
    fixture: &'static str,
    edits: Edits,
    init: &'static [&'static str],
    volume: &'static str,
    sub_path: Option<&'static str>,
    env: &'static [&'static str],
}
