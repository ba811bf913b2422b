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
//!
//! The webhook calls [`plan`], which takes the object as JSON text and never
//! decodes it whole: it reads the typed view and copies out the parts the
//! mutation may write ([`scope`]), and diffs those. [`mutate`] builds the
//! whole desired object as well (for `s3-seed inject` and the tests), and
//! its patch is the same one.

mod container;
mod patch;
mod scope;
mod view;

use serde_json::{Map, Value};
use thiserror::Error;

use crate::contract::{
    AnnotationError, CONFIG_HASH, Key, Placement, SOURCE_REVISION, STATUS, SeedSpec, VOLUME,
    check_overlaps,
};
use crate::excerpt::Excerpt;

use super::InjectConfig;
pub use container::{
    CONTAINER_NAME, MOUNT_PATH, SOURCES_PATH, Volumes, build_container, config_hash, mount_path,
};
pub use view::Names;
use view::StatefulSetView;

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
    /// For the user, admitted or not (AdmissionResponse `warnings`).
    pub warnings: Vec<String>,
}

impl Mutation {
    /// True when the object needs no change.
    pub fn is_empty(&self) -> bool {
        self.patch.0.is_empty()
    }
}

/// Why a StatefulSet was denied. Messages are lowercase, name the annotation
/// or field to fix, and list the valid choices where there are any. Names
/// taken from the object are quoted as [`Excerpt`]s.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MutateError {
    #[error(transparent)]
    Annotation(#[from] AnnotationError),
    #[error("object is not a valid StatefulSet: {0}")]
    Shape(String),
    #[error(
        "annotation {key}: volume {} does not exist (volumeClaimTemplates: {claims}; pod volumes: {volumes})",
        Excerpt::new(name)
    )]
    VolumeNotFound {
        key: String,
        name: String,
        claims: Names,
        volumes: Names,
    },
    #[error(
        "annotation {key} is required unless the StatefulSet has exactly one volumeClaimTemplate (volumeClaimTemplates: {claims}; pod volumes: {volumes})"
    )]
    VolumeRequired {
        key: String,
        claims: Names,
        volumes: Names,
    },
    #[error(
        "annotation {key}: volume {} is a hostPath volume; annotations never choose host paths",
        Excerpt::new(name)
    )]
    HostPath { key: String, name: String },
    #[error(
        "annotation {key}: volume {} is a read-only {} volume; name a volumeClaimTemplate or a writable pod volume",
        Excerpt::new(name),
        Excerpt::bare(kind)
    )]
    ReadOnlyVolume {
        key: String,
        name: String,
        kind: String,
    },
    #[error(
        "spec.template.spec.containers: the name \"s3-seed\" is reserved for the injected init container; rename that container"
    )]
    ReservedName,
    #[error(
        "spec.template.spec.initContainers: the name \"s3-seed\" is reserved for the injected init container, and this StatefulSet has no s3-seed.io/status: injected annotation, so that init container is not s3-seed's; rename it"
    )]
    ReservedInitName,
}

/// What [`plan`] decided, and the patch that does it.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub action: Action,
    pub patch: json_patch::Patch,
    /// For the user, admitted or not (AdmissionResponse `warnings`).
    pub warnings: Vec<String>,
}

/// Decide what to do with one StatefulSet and compute the patch.
///
/// `object` is the StatefulSet exactly as received (the AdmissionRequest's
/// `object`, or a document given to `s3-seed inject`).
pub fn mutate(object: &Value, cfg: &InjectConfig) -> Result<Mutation, MutateError> {
    let view = StatefulSetView::parse(object)?;
    let (action, desired) = desire(&view, object, cfg)?;
    let scope = scope::of_value(object);
    let (_, desired_scope) = desire(&view, &scope, cfg)?;
    let patch = patch::between(&scope, &desired_scope);
    Ok(Mutation {
        action,
        patch,
        desired,
        warnings: view.template_warnings(),
    })
}

/// [`mutate`]'s decision and patch for an object given as JSON text,
/// without decoding the whole object or building the whole desired one.
pub fn plan(object: &str, cfg: &InjectConfig) -> Result<Plan, MutateError> {
    let view = StatefulSetView::parse_json(object)?;
    let scope = scope::of_json(object).map_err(|e| MutateError::Shape(e.to_string()))?;
    let (action, desired) = desire(&view, &scope, cfg)?;
    let patch = patch::between(&scope, &desired);
    Ok(Plan {
        action,
        patch,
        warnings: view.template_warnings(),
    })
}

/// The decision, applied to `base`: the whole object, or its scope.
fn desire(
    view: &StatefulSetView,
    base: &Value,
    cfg: &InjectConfig,
) -> Result<(Action, Value), MutateError> {
    Ok(match SeedSpec::from_annotations(&view.annotations)? {
        Some(spec) => {
            let volumes = resolve_volumes(view, &spec)?;
            view.check_container_names()?;
            inject(base, &spec, &volumes, cfg)
        }
        None if view.carries_injection() => (Action::Removed, remove(base)),
        None => (Action::Untouched, base.clone()),
    })
}

/// The volume of every source, refusing two sources whose directories are
/// the same or nested on one volume.
fn resolve_volumes(view: &StatefulSetView, spec: &SeedSpec) -> Result<Volumes, MutateError> {
    let mut volumes = Volumes::new();
    for (name, source) in &spec.sources {
        let key = Key::new(VOLUME, name.as_ref());
        let resolved = view.resolve_volume(source.volume.as_deref(), &key)?;
        volumes.insert(name.clone(), resolved.name);
    }
    let placements: Vec<Placement<'_>> = (spec.sources.iter())
        .filter_map(|(name, source)| {
            Some(Placement {
                name: name.as_ref(),
                volume: volumes.get(name)?,
                sub_path: source.sub_path.as_ref(),
            })
        })
        .collect();
    check_overlaps(&placements)?;
    Ok(volumes)
}

/// The desired object with the init container first, replacing any earlier
/// one, and the two marker annotations.
fn inject(
    object: &Value,
    spec: &SeedSpec,
    volumes: &Volumes,
    cfg: &InjectConfig,
) -> (Action, Value) {
    let container = build_container(spec, volumes, cfg);
    let hash = config_hash(&container);
    let mut desired = object.clone();
    // A new configuration rolls the pods by itself (its hash is on the
    // template), so the controller's record of the source is reset with it:
    // the controller then records the revision it sees next instead of
    // rolling the pods a second time.
    let pointer = "/spec/template/metadata/annotations/s3-seed.io~1config-hash";
    if object.pointer(pointer).and_then(Value::as_str) != Some(hash.as_str()) {
        remove_key(&mut desired, &["metadata", "annotations"], SOURCE_REVISION);
    }
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

/// The desired object without the init container and the markers (the
/// controller's source revisions included). Maps and arrays left empty are
/// dropped, as the API server would store them.
fn remove(object: &Value) -> Value {
    let mut desired = object.clone();
    let template = ["spec", "template", "metadata", "annotations"];
    for key in [STATUS, SOURCE_REVISION] {
        remove_key(&mut desired, &["metadata", "annotations"], key);
    }
    for key in [CONFIG_HASH, SOURCE_REVISION] {
        remove_key(&mut desired, &template, key);
    }
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
