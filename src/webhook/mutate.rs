//! The mutation: one StatefulSet (raw JSON) in, a JSON Patch or a denial out.
//!
//! [`mutate`] is pure and deterministic. It reads what it needs through a
//! small typed view ([`view`]), decides from the annotations (parsed only by
//! [`crate::contract`]), builds the desired copy of the object, and returns
//! the diff between the two ([`patch`]: `json_patch::diff`, after aligning
//! the init container array by name). Building a whole desired object and
//! diffing it, instead of writing patch operations by hand, gives three
//! properties by construction:
//!
//! - the patch applies under strict RFC 6902: every parent it adds into
//!   exists, or is added first by the diff itself, and keys are escaped;
//! - it is idempotent: on its own (API-server-defaulted) output the desired
//!   copy equals the input, so the diff is empty. This relies on the injected
//!   container spelling out every field the API server would default
//!   ([`container`]);
//! - it never touches what it did not mean to change, such as fields newer
//!   than the compiled Kubernetes API or `spec.volumeClaimTemplates`.
//!
//! On UPDATE an earlier injection is replaced in place (the `s3-seed` init
//! container is always first), never appended a second time. An object that
//! opted out but still carries an earlier injection gets it removed.

mod container;
mod patch;
mod view;

use serde_json::{Map, Value};
use thiserror::Error;

use crate::contract::{AnnotationError, CONFIG_HASH, STATUS, SeedSpec};

use super::InjectConfig;
pub use container::{CONTAINER_NAME, MOUNT_PATH, build_container, config_hash};
pub use view::Names;
use view::{Resolved, StatefulSetView};

/// Value of [`STATUS`] on a StatefulSet the webhook injected into.
pub const STATUS_INJECTED: &str = "injected";

/// What the webhook decided to do with one StatefulSet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Not opted in and nothing to clean up: left as it is.
    Untouched,
    /// Opted in: the init container with this configuration hash is in place
    /// (the patch is empty when it already was).
    Injected { config_hash: String },
    /// Opted out: an earlier injection was removed.
    Removed,
}

/// The result of [`mutate`]: what was decided, the patch that does it, and
/// the object after the patch.
#[derive(Debug, Clone, PartialEq)]
pub struct Mutation {
    pub action: Action,
    pub patch: json_patch::Patch,
    pub desired: Value,
}

impl Mutation {
    /// True when the object needs no change.
    pub fn is_empty(&self) -> bool {
        self.patch.0.is_empty()
    }
}

/// Why a StatefulSet was denied. Messages are lowercase, name the annotation
/// or field to fix, and list the valid choices where there are any.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MutateError {
    #[error(transparent)]
    Annotation(#[from] AnnotationError),
    #[error("object is not a valid StatefulSet: {0}")]
    Shape(String),
    #[error(
        "annotation s3-seed.io/volume: volume {name:?} does not exist (volumeClaimTemplates: {claims}; pod volumes: {volumes})"
    )]
    VolumeNotFound {
        name: String,
        claims: Names,
        volumes: Names,
    },
    #[error(
        "annotation s3-seed.io/volume is required unless the StatefulSet has exactly one volumeClaimTemplate (volumeClaimTemplates: {claims}; pod volumes: {volumes})"
    )]
    VolumeRequired { claims: Names, volumes: Names },
    #[error(
        "annotation s3-seed.io/volume: volume {0:?} is a hostPath volume; annotations never choose host paths"
    )]
    HostPath(String),
    #[error(
        "annotation s3-seed.io/volume: volume {name:?} is a read-only {kind} volume; name a volumeClaimTemplate or a writable pod volume"
    )]
    ReadOnlyVolume { name: String, kind: String },
    #[error(
        "spec.template.spec.containers: the name \"s3-seed\" is reserved for the injected init container; rename that container"
    )]
    ReservedName,
}

/// Decide what to do with one StatefulSet and compute the patch.
///
/// `object` is the StatefulSet exactly as received (the AdmissionRequest's
/// `object`, or a document given to `s3-seed inject`).
pub fn mutate(object: &Value, cfg: &InjectConfig) -> Result<Mutation, MutateError> {
    let view = StatefulSetView::parse(object)?;
    let (action, desired) = match SeedSpec::from_annotations(&view.annotations)? {
        Some(spec) => {
            let target = view.resolve_volume(spec.volume.as_deref())?;
            view.check_container_names()?;
            inject(object, &spec, &target, cfg)
        }
        None if view.carries_injection() => (Action::Removed, remove(object)),
        None => {
            return Ok(Mutation {
                action: Action::Untouched,
                patch: json_patch::Patch(Vec::new()),
                desired: object.clone(),
            });
        }
    };
    let patch = patch::between(object, &desired);
    Ok(Mutation {
        action,
        patch,
        desired,
    })
}

/// The desired object with the init container first, replacing any earlier
/// one, and the two marker annotations.
fn inject(
    object: &Value,
    spec: &SeedSpec,
    target: &Resolved,
    cfg: &InjectConfig,
) -> (Action, Value) {
    let container = build_container(spec, &target.name, cfg);
    let hash = config_hash(&container);
    let mut desired = object.clone();
    map_at(&mut desired, &["metadata", "annotations"])
        .insert(STATUS.to_owned(), STATUS_INJECTED.into());
    map_at(
        &mut desired,
        &["spec", "template", "metadata", "annotations"],
    )
    .insert(CONFIG_HASH.to_owned(), hash.as_str().into());
    let pod = map_at(&mut desired, &["spec", "template", "spec"]);
    let mut init = take_init_containers(pod);
    init.insert(0, container);
    pod.insert("initContainers".to_owned(), Value::Array(init));
    (Action::Injected { config_hash: hash }, desired)
}

/// The desired object without the init container and the markers. Maps and
/// arrays left empty are dropped, as the API server would store them.
fn remove(object: &Value) -> Value {
    let mut desired = object.clone();
    remove_key(&mut desired, &["metadata", "annotations"], STATUS);
    remove_key(
        &mut desired,
        &["spec", "template", "metadata", "annotations"],
        CONFIG_HASH,
    );
    let pod = map_at(&mut desired, &["spec", "template", "spec"]);
    let init = take_init_containers(pod);
    if !init.is_empty() {
        pod.insert("initContainers".to_owned(), Value::Array(init));
    }
    desired
}

/// Remove `initContainers` from a pod spec and return it without any
/// container named [`CONTAINER_NAME`].
fn take_init_containers(pod: &mut Map<String, Value>) -> Vec<Value> {
    let mut init = match pod.remove("initContainers") {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    };
    init.retain(|c| c.get("name").and_then(Value::as_str) != Some(CONTAINER_NAME));
    init
}

/// The map at `path`, creating missing (or null) maps on the way.
fn map_at<'a>(root: &'a mut Value, path: &[&str]) -> &'a mut Map<String, Value> {
    let mut node = root;
    for key in path {
        let map = as_map(node);
        node = map.entry(*key).or_insert_with(|| Value::Object(Map::new()));
    }
    as_map(node)
}

/// `value` as a map, replacing it with an empty one if it is not a map.
/// [`StatefulSetView::parse`] has already refused objects whose maps are of
/// another type, so the replacement only ever turns a `null` into `{}`.
fn as_map(value: &mut Value) -> &mut Map<String, Value> {
    if !value.is_object() {
        *value = Value::Object(Map::new());
    }
    value
        .as_object_mut()
        .expect("the value was made an object on the line above")
}

/// Remove `key` from the map at `path`, and the map itself if that leaves it
/// empty. Missing maps are left missing.
fn remove_key(root: &mut Value, path: &[&str], key: &str) {
    let (last, parents) = match path.split_last() {
        Some(split) => split,
        None => return,
    };
    let mut node = root;
    for p in parents {
        match node.get_mut(*p) {
            Some(next) => node = next,
            None => return,
        }
    }
    let Some(parent) = node.as_object_mut() else {
        return;
    };
    if let Some(Value::Object(map)) = parent.get_mut(*last) {
        map.remove(key);
        if map.is_empty() {
            parent.remove(*last);
        }
    }
}

#[cfg(test)]
mod tests;
