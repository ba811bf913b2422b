//! A read-only, typed view of the few parts of a StatefulSet the mutation
//! reads: annotations, claim template names, pod volumes and container names.
//!
//! The view is deserialized from the raw JSON with serde, ignoring every field
//! it does not name, so parsing it never constrains the rest of the object.
//! It is also where "is this a StatefulSet shape at all" and "which volume
//! does `s3-seed.io/volume` mean" are decided.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{CONTAINER_NAME, MutateError, STATUS_INJECTED};
use crate::contract::{CONFIG_HASH, Key, PREFIX, STATUS};
use crate::excerpt::{Excerpt, shorten_quoted};

/// Pod volume kinds whose mounts are always read-only.
const READ_ONLY_KINDS: [&str; 5] = ["configMap", "secret", "projected", "downwardAPI", "image"];

/// Names listed in an error message at most; the rest are counted.
const LISTED_NAMES: usize = 8;

/// A list of names for error messages: `a, b`, or `none`; each name is an
/// [`Excerpt`] and a long list ends with `and N more`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names(pub Vec<String>);

impl Names {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Names {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        for (i, name) in self.0.iter().take(LISTED_NAMES).enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{}", Excerpt::bare(name))?;
        }
        match self.0.len().checked_sub(LISTED_NAMES) {
            Some(more) if more > 0 => write!(f, " and {more} more"),
            _ => Ok(()),
        }
    }
}

/// The volume the init container mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Resolved {
    pub name: String,
}

#[derive(Deserialize)]
struct Raw {
    metadata: RawMeta,
    spec: RawSpec,
}

#[derive(Deserialize)]
struct RawMeta {
    #[serde(default)]
    annotations: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSpec {
    template: RawTemplate,
    #[serde(default)]
    volume_claim_templates: Option<Vec<RawClaim>>,
}

#[derive(Deserialize)]
struct RawClaim {
    metadata: RawName,
}

#[derive(Deserialize)]
struct RawTemplate {
    #[serde(default)]
    metadata: Option<RawMeta>,
    spec: RawPodSpec,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPodSpec {
    containers: Vec<RawName>,
    /// The mutation rewrites this array; only the names are read.
    #[serde(default, rename = "initContainers")]
    init_containers: Option<Vec<RawName>>,
    #[serde(default)]
    volumes: Option<Vec<RawVolume>>,
}

#[derive(Deserialize)]
struct RawName {
    name: String,
}

#[derive(Deserialize)]
struct RawVolume {
    name: String,
    #[serde(flatten)]
    source: BTreeMap<String, Value>,
}

/// What the mutation knows about a StatefulSet.
#[derive(Debug)]
pub(super) struct StatefulSetView {
    pub annotations: BTreeMap<String, String>,
    template_annotations: BTreeMap<String, String>,
    claims: Vec<String>,
    volumes: Vec<(String, BTreeMap<String, Value>)>,
    containers: Vec<String>,
    init_containers: Vec<String>,
}

impl StatefulSetView {
    /// Read the view, or explain which part of the object has the wrong shape.
    pub fn parse(object: &Value) -> Result<Self, MutateError> {
        Self::from_raw(Raw::deserialize(object))
    }

    /// [`Self::parse`] from JSON text, decoding only what the view names.
    pub fn parse_json(object: &str) -> Result<Self, MutateError> {
        Self::from_raw(serde_json::from_str(object))
    }

    fn from_raw(raw: Result<Raw, serde_json::Error>) -> Result<Self, MutateError> {
        let raw = raw.map_err(|e| MutateError::Shape(shorten_quoted(&e.to_string())))?;
        let template_meta = raw.spec.template.metadata.and_then(|m| m.annotations);
        let pod = raw.spec.template.spec;
        Ok(Self {
            annotations: string_map(raw.metadata.annotations, "metadata.annotations")?,
            template_annotations: string_map(template_meta, "spec.template.metadata.annotations")?,
            claims: (raw.spec.volume_claim_templates.unwrap_or_default())
                .into_iter()
                .map(|c| c.metadata.name)
                .collect(),
            volumes: (pod.volumes.unwrap_or_default())
                .into_iter()
                .map(|v| (v.name, v.source))
                .collect(),
            containers: pod.containers.into_iter().map(|c| c.name).collect(),
            init_containers: (pod.init_containers.unwrap_or_default())
                .into_iter()
                .map(|c| c.name)
                .collect(),
        })
    }

    /// True when the object still has the markers of an earlier injection.
    pub fn carries_injection(&self) -> bool {
        self.annotations.contains_key(STATUS) || self.template_annotations.contains_key(CONFIG_HASH)
    }

    /// True when the webhook injected into this object before: the init
    /// container named [`CONTAINER_NAME`] is then ours to replace.
    pub fn is_injected(&self) -> bool {
        self.annotations.get(STATUS).map(String::as_str) == Some(STATUS_INJECTED)
    }

    /// One warning per `s3-seed.io/*` annotation written on the pod
    /// template, where s3-seed never reads it (except its own config hash).
    pub fn template_warnings(&self) -> Vec<String> {
        (self.template_annotations.keys())
            .filter(|k| k.starts_with(PREFIX) && k.as_str() != CONFIG_HASH)
            .map(|k| {
                format!(
                    "spec.template.metadata.annotations: {} is ignored on the pod template; s3-seed reads s3-seed.io/* annotations from the StatefulSet's metadata.annotations, move it there",
                    Excerpt::bare(k)
                )
            })
            .collect()
    }

    /// The volume the `volume` annotation `key` names, or the only claim
    /// template when it is omitted. Host paths and read-only volumes are
    /// refused.
    pub fn resolve_volume(&self, name: Option<&str>, key: &Key) -> Result<Resolved, MutateError> {
        let key = key.to_string();
        let Some(name) = name else {
            return match self.claims.as_slice() {
                [only] => Ok(Resolved { name: only.clone() }),
                _ => Err(MutateError::VolumeRequired {
                    key,
                    claims: Names(self.claims.clone()),
                    volumes: self.volume_names(),
                }),
            };
        };
        if self.claims.iter().any(|c| c == name) {
            return Ok(Resolved {
                name: name.to_owned(),
            });
        }
        match self.volumes.iter().find(|(n, _)| n == name) {
            Some((_, source)) => check_writable(name, source, key),
            None => Err(MutateError::VolumeNotFound {
                key,
                name: name.to_owned(),
                claims: Names(self.claims.clone()),
                volumes: self.volume_names(),
            }),
        }
    }

    /// Refuse a regular container that already uses the reserved name, and
    /// an init container of that name on an object the webhook never
    /// injected into (on an injected one it is the earlier injection).
    pub fn check_container_names(&self) -> Result<(), MutateError> {
        if self.containers.iter().any(|c| c == CONTAINER_NAME) {
            return Err(MutateError::ReservedName);
        }
        if !self.is_injected() && self.init_containers.iter().any(|c| c == CONTAINER_NAME) {
            return Err(MutateError::ReservedInitName);
        }
        Ok(())
    }

    fn volume_names(&self) -> Names {
        Names(self.volumes.iter().map(|(n, _)| n.clone()).collect())
    }
}

/// A pod volume the init container may write to: not a host path, not a
/// read-only kind, not mounted with `readOnly: true`.
fn check_writable(
    name: &str,
    source: &BTreeMap<String, Value>,
    key: String,
) -> Result<Resolved, MutateError> {
    if source.contains_key("hostPath") {
        return Err(MutateError::HostPath {
            key,
            name: name.to_owned(),
        });
    }
    let read_only = |(kind, spec): (&String, &Value)| {
        READ_ONLY_KINDS.contains(&kind.as_str()) || spec.get("readOnly") == Some(&Value::Bool(true))
    };
    if let Some((kind, _)) = source.iter().find(|entry| read_only(*entry)) {
        return Err(MutateError::ReadOnlyVolume {
            key,
            name: name.to_owned(),
            kind: kind.clone(),
        });
    }
    Ok(Resolved {
        name: name.to_owned(),
    })
}

/// Annotations as strings; any other JSON type is a shape error naming the key.
fn string_map(
    map: Option<Map<String, Value>>,
    path: &str,
) -> Result<BTreeMap<String, String>, MutateError> {
    map.unwrap_or_default()
        .into_iter()
        .map(|(key, value)| match value {
            Value::String(s) => Ok((key, s)),
            other => Err(MutateError::Shape(format!(
                "{path}: the value of {} must be a string, got {}; quote it",
                Excerpt::new(&key),
                Excerpt::of_json(&other)
            ))),
        })
        .collect()
}
