//! The annotation contract shared by the webhook and the init container.
//!
//! Developers write `s3-seed.io/*` annotations on a StatefulSet. The webhook
//! parses them here into a [`SeedSpec`], and turns the spec into environment
//! variables of the injected container ([`SeedSpec::env`]). `s3-seed sync`
//! reads the same variables back through its flags, whose `env =` names are
//! the constants below. Adding an annotation means touching this module, its
//! table tests, and the one flag that consumes it.
//!
//! Source-specific keys ([`SOURCE_KEYS`]) and connection keys
//! ([`CONNECTION_KEYS`]) may carry a `.NAME` suffix ([`keys`]): each name is
//! one more source of the same StatefulSet ([`sources`]). Keys without a
//! suffix describe the unnamed source; unsuffixed connection keys also apply
//! to every named source that does not override them.

mod keys;
mod rollout;
mod sources;
mod values;

use std::collections::{BTreeMap, BTreeSet};

use thiserror::Error;

use crate::excerpt::Excerpt;
pub use keys::{Key, NAME_MAX, NameError, SourceName};
pub use rollout::Rollout;
pub use sources::{
    Connection, MAX_SOURCES, Placement, SourceEntry, SourceSpec, check_overlaps, parse_entries,
    render_entries,
};
pub use values::{
    Endpoint, GlobList, S3Uri, SubPath, ValueError, parse_bool, parse_k8s_name, parse_region,
};

/// Every annotation key of the contract starts with this.
pub const PREFIX: &str = "s3-seed.io/";

pub const SOURCE: &str = "s3-seed.io/source";
pub const VOLUME: &str = "s3-seed.io/volume";
pub const SUB_PATH: &str = "s3-seed.io/sub-path";
pub const CREDENTIALS_SECRET: &str = "s3-seed.io/credentials-secret";
pub const REGION: &str = "s3-seed.io/region";
pub const ENDPOINT: &str = "s3-seed.io/endpoint";
pub const PATH_STYLE: &str = "s3-seed.io/path-style";
pub const INCLUDE: &str = "s3-seed.io/include";
pub const EXCLUDE: &str = "s3-seed.io/exclude";
pub const PRUNE: &str = "s3-seed.io/prune";
pub const ENABLED: &str = "s3-seed.io/enabled";
/// `on-change` lets `s3-seed controller` roll the pods when the source changes.
pub const ROLLOUT: &str = "s3-seed.io/rollout";
/// Written by the controller: the source revision last seen (on the
/// StatefulSet) and rolled out (on the pod template). Accepted as input,
/// never read by the webhook.
pub const SOURCE_REVISION: &str = "s3-seed.io/source-revision";
/// Written by the webhook on the StatefulSet; accepted as input, never read.
pub const STATUS: &str = "s3-seed.io/status";
/// Written by the webhook on the pod template: a hash of the injection, so a
/// changed configuration rolls the pods and an unchanged one does not.
pub const CONFIG_HASH: &str = "s3-seed.io/config-hash";

/// The keys a developer may write, in documentation order.
pub const INPUT_KEYS: [&str; 12] = [
    SOURCE,
    VOLUME,
    SUB_PATH,
    CREDENTIALS_SECRET,
    REGION,
    ENDPOINT,
    PATH_STYLE,
    INCLUDE,
    EXCLUDE,
    PRUNE,
    ENABLED,
    ROLLOUT,
];

/// Keys that describe one source; with a `.NAME` suffix, a named one.
pub const SOURCE_KEYS: [&str; 6] = [SOURCE, VOLUME, SUB_PATH, INCLUDE, EXCLUDE, PRUNE];

/// Keys of how a source connects: without a suffix they apply to every
/// source, and `.NAME` overrides them for one.
pub const CONNECTION_KEYS: [&str; 4] = [CREDENTIALS_SECRET, REGION, ENDPOINT, PATH_STYLE];

/// Environment variables of `s3-seed sync`; the webhook sets them from a spec.
pub mod env {
    pub const SOURCE: &str = "S3_SEED_SOURCE";
    pub const TARGET: &str = "S3_SEED_TARGET";
    pub const INCLUDE: &str = "S3_SEED_INCLUDE";
    pub const EXCLUDE: &str = "S3_SEED_EXCLUDE";
    pub const NO_PRUNE: &str = "S3_SEED_NO_PRUNE";
    /// Named sources: a JSON array of [`super::SourceEntry`].
    pub const SOURCES: &str = "S3_SEED_SOURCES";
    pub const ENDPOINT: &str = "S3_SEED_ENDPOINT";
    pub const PATH_STYLE: &str = "S3_SEED_PATH_STYLE";
    pub const REGION: &str = "S3_SEED_REGION";
    pub const CONCURRENCY: &str = "S3_SEED_CONCURRENCY";
    pub const PART_SIZE: &str = "S3_SEED_PART_SIZE";
    pub const TRUST_INSTALLED: &str = "S3_SEED_TRUST_INSTALLED";
    pub const LOG_FORMAT: &str = "S3_SEED_LOG_FORMAT";
    pub const SUMMARY_FORMAT: &str = "S3_SEED_SUMMARY_FORMAT";
    /// Keys of the credentials Secret, passed through under the same names.
    pub const AWS_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
    pub const AWS_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
    pub const AWS_SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";
    /// The three key variables, and whether each may be missing.
    pub const AWS_KEYS: [(&str, bool); 3] = [
        (AWS_ACCESS_KEY_ID, false),
        (AWS_SECRET_ACCESS_KEY, false),
        (AWS_SESSION_TOKEN, true),
    ];
    /// Prefix of the key variables of the `N`th Secret other than the shared
    /// one: `S3_SEED_KEYS_N_AWS_ACCESS_KEY_ID`, ...
    pub const KEYS_PREFIX: &str = "S3_SEED_KEYS_";
}

/// Why the annotations of a StatefulSet were refused. Messages name the
/// annotation so the developer knows what to fix.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AnnotationError {
    #[error("annotation {key}: {error}")]
    Invalid { key: String, error: ValueError },
    #[error("unknown annotation {}{}", Excerpt::bare(key), suggestion.as_ref().map(|s| format!(" (did you mean {s}?)")).unwrap_or_default())]
    Unknown {
        key: String,
        suggestion: Option<String>,
    },
    #[error("annotation {}: {error}", Excerpt::bare(key))]
    InvalidName { key: String, error: NameError },
    #[error(
        "annotation {key}: there is no {source_key}; add {source_key}, or {}",
        if *named { "correct the name after the '.'" } else { "write the key with a .NAME suffix for a named source" }
    )]
    MissingSource {
        key: String,
        source_key: String,
        named: bool,
    },
    #[error(
        "{count} sources (s3-seed.io/source and s3-seed.io/source.NAME): at most {MAX_SOURCES} are allowed per StatefulSet; merge sources under a common prefix"
    )]
    TooManySources { count: usize },
    #[error(
        "{first} and {second}: {}; give each source its own directory, side by side (e.g. sub-paths \"model\" and \"dataset\")",
        if *same { "two sources write to the same directory" } else { "one source's directory is inside the other's" }
    )]
    Overlap {
        first: String,
        second: String,
        same: bool,
    },
}

/// What a developer asked for, parsed and validated.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SeedSpec {
    /// Every source by name; `None` is the unnamed one and comes first.
    pub sources: BTreeMap<Option<SourceName>, SourceSpec>,
    /// The unsuffixed connection keys, shared by every source.
    pub connection: Connection,
}

impl SeedSpec {
    /// Parse the `s3-seed.io/*` annotations of a StatefulSet.
    ///
    /// `Ok(None)` means "not opted in": no `source` or `source.NAME`, or
    /// `enabled: "false"`. Any unknown key under the prefix is an error, as
    /// is any value that does not parse, a `.NAME` key without its
    /// `source.NAME`, and more than [`MAX_SOURCES`] sources. Annotations
    /// outside the prefix are ignored.
    pub fn from_annotations(
        annotations: &BTreeMap<String, String>,
    ) -> Result<Option<Self>, AnnotationError> {
        let mut values = BTreeMap::new();
        for (key, value) in annotations {
            if let Some(key) = Key::parse(key)? {
                values.insert(key, value.as_str());
            }
        }
        let get = |base, name: Option<&SourceName>| values.get(&Key::new(base, name)).copied();
        if let Some(enabled) = get(ENABLED, None)
            && !parse_bool(enabled).map_err(invalid(&Key::new(ENABLED, None)))?
        {
            return Ok(None);
        }
        let names: BTreeSet<Option<SourceName>> = (values.keys())
            .filter(|k| k.base == SOURCE)
            .map(|k| k.name.clone())
            .collect();
        check_sources_exist(values.keys(), &names)?;
        if names.is_empty() {
            return Ok(None);
        }
        if names.len() > MAX_SOURCES {
            return Err(AnnotationError::TooManySources { count: names.len() });
        }
        let mut sources = BTreeMap::new();
        for name in names {
            let spec = source_spec(&get, name.as_ref())?;
            sources.insert(name, spec);
        }
        Rollout::from_annotations(annotations)?;
        Ok(Some(Self {
            sources,
            connection: connection(&get, None)?,
        }))
    }

    /// The unnamed source, if there is one.
    pub fn unnamed(&self) -> Option<&SourceSpec> {
        self.sources.get(&None)
    }

    /// The environment-variable prefix of each Secret a named source uses
    /// instead of the shared one, numbered in name order from 1.
    pub fn key_prefixes(&self) -> BTreeMap<&str, String> {
        let shared = self.connection.credentials_secret.as_deref();
        let own: BTreeSet<&str> = (self.sources.values())
            .filter_map(|s| s.connection.credentials_secret.as_deref())
            .filter(|s| Some(*s) != shared)
            .collect();
        own.into_iter()
            .enumerate()
            .map(|(i, secret)| (secret, format!("{}{}", env::KEYS_PREFIX, i + 1)))
            .collect()
    }

    /// The plain (non-secret) environment of the injected `s3-seed sync`
    /// container, in a fixed order; `target` gives the directory each source
    /// is mounted at. Credentials are not here: the mutation adds them as
    /// `secretKeyRef`s, the shared Secret under the AWS names and each other
    /// Secret under its [`Self::key_prefixes`].
    pub fn env(
        &self,
        target: impl Fn(Option<&SourceName>) -> String,
    ) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(s) = self.unnamed() {
            out.push((env::SOURCE, s.source.to_string()));
            out.push((env::TARGET, target(None)));
            if !s.include.is_empty() {
                out.push((env::INCLUDE, s.include.to_string()));
            }
            if !s.exclude.is_empty() {
                out.push((env::EXCLUDE, s.exclude.to_string()));
            }
            if !s.prune {
                out.push((env::NO_PRUNE, "true".to_owned()));
            }
        }
        let entries = self.entries(target);
        if !entries.is_empty() {
            out.push((env::SOURCES, render_entries(&entries)));
        }
        let shared = &self.connection;
        if let Some(endpoint) = &shared.endpoint {
            out.push((env::ENDPOINT, endpoint.to_string()));
        }
        if let Some(path_style) = shared.path_style {
            out.push((env::PATH_STYLE, path_style.to_string()));
        }
        if let Some(region) = &shared.region {
            out.push((env::REGION, region.clone()));
        }
        out
    }

    /// The named sources as entries of `S3_SEED_SOURCES`.
    fn entries(&self, target: impl Fn(Option<&SourceName>) -> String) -> Vec<SourceEntry> {
        let prefixes = self.key_prefixes();
        let named = self
            .sources
            .iter()
            .filter_map(|(n, s)| Some((n.as_ref()?, s)));
        named
            .map(|(name, s)| SourceEntry {
                name: name.clone(),
                source: s.source.clone(),
                target: target(Some(name)).into(),
                include: s.include.clone(),
                exclude: s.exclude.clone(),
                prune: s.prune,
                endpoint: s.connection.endpoint.clone(),
                region: s.connection.region.clone(),
                path_style: s.connection.path_style,
                credentials: (s.connection.credentials_secret.as_deref())
                    .and_then(|secret| prefixes.get(secret).cloned()),
            })
            .collect()
    }
}

fn invalid(key: &Key) -> impl Fn(ValueError) -> AnnotationError {
    let key = key.to_string();
    move |error| AnnotationError::Invalid {
        key: key.clone(),
        error,
    }
}

/// Refuse a source-specific or named key whose source is not there.
fn check_sources_exist<'a>(
    keys: impl Iterator<Item = &'a Key>,
    names: &BTreeSet<Option<SourceName>>,
) -> Result<(), AnnotationError> {
    for key in keys {
        let orphan = match &key.name {
            Some(_) => !names.contains(&key.name),
            // Unsuffixed source keys matter only once some source exists.
            None => SOURCE_KEYS.contains(&key.base) && !names.is_empty() && !names.contains(&None),
        };
        if orphan {
            return Err(AnnotationError::MissingSource {
                key: key.to_string(),
                source_key: Key::new(SOURCE, key.name.as_ref()).to_string(),
                named: key.name.is_some(),
            });
        }
    }
    Ok(())
}

type Get<'a> = dyn Fn(&'static str, Option<&SourceName>) -> Option<&'a str> + 'a;

fn source_spec<'a>(
    get: &Get<'a>,
    name: Option<&SourceName>,
) -> Result<SourceSpec, AnnotationError> {
    let field = |base| (get(base, name), Key::new(base, name));
    let (source, key) = field(SOURCE);
    let source = source.unwrap_or_default();
    Ok(SourceSpec {
        source: source.parse().map_err(invalid(&key))?,
        volume: opt(field(VOLUME), |s| parse_k8s_name(s, false))?,
        sub_path: opt(field(SUB_PATH), str::parse)?,
        include: opt(field(INCLUDE), str::parse)?.unwrap_or_default(),
        exclude: opt(field(EXCLUDE), str::parse)?.unwrap_or_default(),
        prune: opt(field(PRUNE), parse_bool)?.unwrap_or(true),
        connection: match name {
            Some(_) => connection(get, name)?,
            None => Connection::default(),
        },
    })
}

fn connection<'a>(get: &Get<'a>, name: Option<&SourceName>) -> Result<Connection, AnnotationError> {
    let field = |base| (get(base, name), Key::new(base, name));
    Ok(Connection {
        credentials_secret: opt(field(CREDENTIALS_SECRET), |s| parse_k8s_name(s, true))?,
        region: opt(field(REGION), parse_region)?,
        endpoint: opt(field(ENDPOINT), str::parse)?,
        path_style: opt(field(PATH_STYLE), parse_bool)?,
    })
}

fn opt<T>(
    (value, key): (Option<&str>, Key),
    parse: impl Fn(&str) -> Result<T, ValueError>,
) -> Result<Option<T>, AnnotationError> {
    value.map(|v| parse(v).map_err(invalid(&key))).transpose()
}

#[cfg(test)]
mod tests;
