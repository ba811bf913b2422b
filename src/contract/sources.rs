//! The sources of a StatefulSet: what each one is, how it connects, where
//! it lands, and how several of them reach `s3-seed sync` in one container.
//!
//! The unnamed source (keys without a suffix) travels in the single-source
//! variables (`S3_SEED_SOURCE`, `S3_SEED_TARGET`, ...), exactly as before
//! sources had names, so a StatefulSet with one unnamed source gets the same
//! container it always got. Named sources travel together in
//! `S3_SEED_SOURCES`, a JSON array of [`SourceEntry`]; an entry leaves out
//! what it shares with the unsuffixed connection keys, which stay in
//! `S3_SEED_ENDPOINT`, `S3_SEED_REGION`, `S3_SEED_PATH_STYLE` and the AWS
//! key variables. A source whose Secret differs from the shared one reads its
//! keys from variables under a prefix of its own ([`SourceEntry::credentials`]).

use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::keys::{Key, SourceName};
use super::values::{Endpoint, GlobList, S3Uri, SubPath, parse_region};
use super::{AnnotationError, SUB_PATH, VOLUME};

/// At most this many sources per StatefulSet.
pub const MAX_SOURCES: usize = 16;

/// Connection settings. On [`super::SeedSpec`] they are the unsuffixed keys,
/// shared by every source; on a [`SourceSpec`] they are its `.NAME`
/// overrides only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Connection {
    pub credentials_secret: Option<String>,
    pub region: Option<String>,
    pub endpoint: Option<Endpoint>,
    pub path_style: Option<bool>,
}

impl Connection {
    /// These settings, with `fallback` where they are silent.
    pub fn or(&self, fallback: &Connection) -> Connection {
        Connection {
            credentials_secret: (self.credentials_secret.clone())
                .or_else(|| fallback.credentials_secret.clone()),
            region: self.region.clone().or_else(|| fallback.region.clone()),
            endpoint: self.endpoint.clone().or_else(|| fallback.endpoint.clone()),
            path_style: self.path_style.or(fallback.path_style),
        }
    }
}

/// One source, as its annotations describe it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SourceSpec {
    pub source: S3Uri,
    /// The volumeClaimTemplate or pod volume to fill; `None` means "the only
    /// volumeClaimTemplate", resolved by the mutation.
    pub volume: Option<String>,
    pub sub_path: Option<SubPath>,
    pub include: GlobList,
    pub exclude: GlobList,
    pub prune: bool,
    /// `.NAME` connection keys; empty for the unnamed source.
    pub connection: Connection,
}

/// Where one source lands: a resolved volume and its sub-path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement<'a> {
    pub name: Option<&'a SourceName>,
    pub volume: &'a str,
    pub sub_path: Option<&'a SubPath>,
}

/// Refuse two sources whose targets are the same directory, or one inside
/// the other, on the same volume: each would prune the other's files.
pub fn check_overlaps(placements: &[Placement<'_>]) -> Result<(), AnnotationError> {
    let parts = |p: &Placement<'_>| -> Vec<String> {
        p.sub_path
            .map(|s| s.as_str().split('/').map(str::to_owned).collect())
            .unwrap_or_default()
    };
    for (i, a) in placements.iter().enumerate() {
        for b in &placements[i + 1..] {
            let (pa, pb) = (parts(a), parts(b));
            if a.volume != b.volume || !(pa.starts_with(&pb) || pb.starts_with(&pa)) {
                continue;
            }
            return Err(AnnotationError::Overlap {
                first: describe(a),
                second: describe(b),
                same: pa == pb,
            });
        }
    }
    Ok(())
}

/// `s3-seed.io/sub-path.NAME "x" on volume "v"`, for an overlap message.
fn describe(p: &Placement<'_>) -> String {
    let volume = crate::excerpt::Excerpt::new(p.volume);
    match p.sub_path {
        Some(sub) => format!(
            "{} {} on volume {volume}",
            Key::new(SUB_PATH, p.name),
            crate::excerpt::Excerpt::new(sub.as_str())
        ),
        None => format!(
            "{} {volume} without {}",
            Key::new(VOLUME, p.name),
            Key::new(SUB_PATH, p.name)
        ),
    }
}

/// One named source in `S3_SEED_SOURCES`. Fields left out take the
/// single-source flags' values (connection) or the defaults (filters, prune).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SourceEntry {
    pub name: SourceName,
    #[serde(with = "text")]
    pub source: S3Uri,
    pub target: PathBuf,
    #[serde(default, skip_serializing_if = "GlobList::is_empty", with = "text")]
    pub include: GlobList,
    #[serde(default, skip_serializing_if = "GlobList::is_empty", with = "text")]
    pub exclude: GlobList,
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub prune: bool,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_text")]
    pub endpoint: Option<Endpoint>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "region"
    )]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_style: Option<bool>,
    /// A prefix P: the source's keys are read from `P_AWS_ACCESS_KEY_ID`,
    /// `P_AWS_SECRET_ACCESS_KEY` and (if set) `P_AWS_SESSION_TOKEN` instead of
    /// the AWS default chain. Never the keys themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<String>,
}

/// Parse the value of `S3_SEED_SOURCES`.
pub fn parse_entries(s: &str) -> Result<Vec<SourceEntry>, String> {
    if s.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(s).map_err(|e| format!("not a JSON array of sources: {e}"))
}

/// The value of `S3_SEED_SOURCES` for these entries.
pub fn render_entries(entries: &[SourceEntry]) -> String {
    serde_json::to_string(entries).expect("source entries have string keys and always serialize")
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

fn region<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|s| parse_region(&s).map_err(serde::de::Error::custom))
        .transpose()
}

/// (De)serialize a contract value through its `Display` and `FromStr`.
mod text {
    use super::*;

    pub fn serialize<T: std::fmt::Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: std::str::FromStr<Err: std::fmt::Display>,
        D: Deserializer<'de>,
    {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// [`text`] for an optional value.
mod opt_text {
    use super::*;

    pub fn serialize<T: std::fmt::Display, S: Serializer>(
        v: &Option<T>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.collect_str(v),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<Option<T>, D::Error>
    where
        T: std::str::FromStr<Err: std::fmt::Display>,
        D: Deserializer<'de>,
    {
        Option::<String>::deserialize(d)?
            .map(|s| s.parse().map_err(serde::de::Error::custom))
            .transpose()
    }
}
