//! The annotation contract shared by the webhook and the init container.
//!
//! Developers write `s3-seed.io/*` annotations on a StatefulSet. The webhook
//! parses them here into a [`SeedSpec`], and turns the spec into environment
//! variables of the injected container ([`SeedSpec::env`]). `s3-seed sync`
//! reads the same variables back through its flags, whose `env =` names are
//! the constants below. Adding an annotation means touching this module, its
//! table tests, and the one flag that consumes it.

mod values;

use std::collections::BTreeMap;

use thiserror::Error;

use crate::excerpt::Excerpt;
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
/// Written by the webhook on the StatefulSet; accepted as input, never read.
pub const STATUS: &str = "s3-seed.io/status";
/// Written by the webhook on the pod template: a hash of the injection, so a
/// changed configuration rolls the pods and an unchanged one does not.
pub const CONFIG_HASH: &str = "s3-seed.io/config-hash";

/// The keys a developer may write, in documentation order.
pub const INPUT_KEYS: [&str; 11] = [
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
];

/// Environment variables of `s3-seed sync`; the webhook sets them from a spec.
pub mod env {
    pub const SOURCE: &str = "S3_SEED_SOURCE";
    pub const TARGET: &str = "S3_SEED_TARGET";
    pub const INCLUDE: &str = "S3_SEED_INCLUDE";
    pub const EXCLUDE: &str = "S3_SEED_EXCLUDE";
    pub const NO_PRUNE: &str = "S3_SEED_NO_PRUNE";
    pub const ENDPOINT: &str = "S3_SEED_ENDPOINT";
    pub const PATH_STYLE: &str = "S3_SEED_PATH_STYLE";
    pub const REGION: &str = "S3_SEED_REGION";
    pub const CONCURRENCY: &str = "S3_SEED_CONCURRENCY";
    pub const PART_SIZE: &str = "S3_SEED_PART_SIZE";
    pub const LOG_FORMAT: &str = "S3_SEED_LOG_FORMAT";
    pub const SUMMARY_FORMAT: &str = "S3_SEED_SUMMARY_FORMAT";
    /// Keys of the credentials Secret, passed through under the same names.
    pub const AWS_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
    pub const AWS_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
    pub const AWS_SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";
}

/// Why the annotations of a StatefulSet were refused. Messages name the
/// annotation so the developer knows what to fix.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AnnotationError {
    #[error("annotation {key}: {error}")]
    Invalid {
        key: &'static str,
        error: ValueError,
    },
    #[error("unknown annotation {}{}", Excerpt::bare(key), suggestion.as_ref().map(|s| format!(" (did you mean {s}?)")).unwrap_or_default())]
    Unknown {
        key: String,
        suggestion: Option<&'static str>,
    },
}

/// What a developer asked for, parsed and validated.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SeedSpec {
    pub source: S3Uri,
    /// The volumeClaimTemplate or pod volume to fill; `None` means "the only
    /// volumeClaimTemplate", resolved by the mutation.
    pub volume: Option<String>,
    pub sub_path: Option<SubPath>,
    pub credentials_secret: Option<String>,
    pub region: Option<String>,
    pub endpoint: Option<Endpoint>,
    pub path_style: Option<bool>,
    pub include: GlobList,
    pub exclude: GlobList,
    pub prune: bool,
}

impl SeedSpec {
    /// Parse the `s3-seed.io/*` annotations of a StatefulSet.
    ///
    /// `Ok(None)` means "not opted in": no `source`, or `enabled: "false"`.
    /// Any unknown key under the prefix is an error, as is any value that does
    /// not parse. Annotations outside the prefix are ignored.
    pub fn from_annotations(
        annotations: &BTreeMap<String, String>,
    ) -> Result<Option<Self>, AnnotationError> {
        check_known_keys(annotations)?;
        let get = |key| annotations.get(key).map(String::as_str);
        if let Some(enabled) = get(ENABLED)
            && !parse_bool(enabled).map_err(invalid(ENABLED))?
        {
            return Ok(None);
        }
        let Some(source) = get(SOURCE) else {
            return Ok(None);
        };
        Ok(Some(Self {
            source: source.parse().map_err(invalid(SOURCE))?,
            volume: opt(get(VOLUME), VOLUME, |s| parse_k8s_name(s, false))?,
            sub_path: opt(get(SUB_PATH), SUB_PATH, str::parse)?,
            credentials_secret: opt(get(CREDENTIALS_SECRET), CREDENTIALS_SECRET, |s| {
                parse_k8s_name(s, true)
            })?,
            region: opt(get(REGION), REGION, parse_region)?,
            endpoint: opt(get(ENDPOINT), ENDPOINT, str::parse)?,
            path_style: opt(get(PATH_STYLE), PATH_STYLE, parse_bool)?,
            include: opt(get(INCLUDE), INCLUDE, str::parse)?.unwrap_or_default(),
            exclude: opt(get(EXCLUDE), EXCLUDE, str::parse)?.unwrap_or_default(),
            prune: opt(get(PRUNE), PRUNE, parse_bool)?.unwrap_or(true),
        }))
    }

    /// The plain (non-secret) environment of the injected `s3-seed sync`
    /// container, in a fixed order. Credentials are not here: the mutation
    /// adds them as `secretKeyRef`s from [`Self::credentials_secret`].
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![(env::SOURCE, self.source.to_string())];
        if !self.include.is_empty() {
            out.push((env::INCLUDE, self.include.to_string()));
        }
        if !self.exclude.is_empty() {
            out.push((env::EXCLUDE, self.exclude.to_string()));
        }
        if !self.prune {
            out.push((env::NO_PRUNE, "true".to_owned()));
        }
        if let Some(endpoint) = &self.endpoint {
            out.push((env::ENDPOINT, endpoint.to_string()));
        }
        if let Some(path_style) = self.path_style {
            out.push((env::PATH_STYLE, path_style.to_string()));
        }
        if let Some(region) = &self.region {
            out.push((env::REGION, region.clone()));
        }
        out
    }
}

fn invalid(key: &'static str) -> impl Fn(ValueError) -> AnnotationError {
    move |error| AnnotationError::Invalid { key, error }
}

fn opt<T>(
    value: Option<&str>,
    key: &'static str,
    parse: impl Fn(&str) -> Result<T, ValueError>,
) -> Result<Option<T>, AnnotationError> {
    value.map(|v| parse(v).map_err(invalid(key))).transpose()
}

fn check_known_keys(annotations: &BTreeMap<String, String>) -> Result<(), AnnotationError> {
    for key in annotations.keys().filter(|k| k.starts_with(PREFIX)) {
        if key == STATUS || INPUT_KEYS.contains(&key.as_str()) {
            continue;
        }
        return Err(AnnotationError::Unknown {
            key: key.clone(),
            suggestion: closest_key(key),
        });
    }
    Ok(())
}

/// The valid key closest to a mistyped one, if any is reasonably close.
fn closest_key(key: &str) -> Option<&'static str> {
    let name = key.trim_start_matches(PREFIX);
    let close_enough = name.chars().count().div_ceil(3).max(1);
    INPUT_KEYS
        .iter()
        .map(|k| (strsim::damerau_levenshtein(name, &k[PREFIX.len()..]), *k))
        .filter(|(d, _)| *d <= close_enough)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests;
