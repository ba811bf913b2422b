//! Annotation keys: `s3-seed.io/FIELD` or `s3-seed.io/FIELD.NAME`.
//!
//! A key is parsed into a [`Key`] (the unsuffixed base key, and the source
//! name when there is one) instead of being looked up in a fixed list, so
//! that every source-specific and connection key can carry a name suffix
//! while StatefulSet-wide keys cannot. A key that is not valid gets the
//! closest valid key as a suggestion, suffix or not.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{
    AnnotationError, CONNECTION_KEYS, INPUT_KEYS, PREFIX, SOURCE_KEYS, SOURCE_REVISION, STATUS,
};
use crate::excerpt::Excerpt;

/// Longest source name.
pub const NAME_MAX: usize = 32;

/// The NAME of `s3-seed.io/source.NAME`: 1 to 32 lowercase letters, digits
/// and `-`, starting with a letter and not ending with `-`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourceName(String);

impl SourceName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a source name is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0} is not a valid source name: use 1-32 lowercase letters, digits and '-', starting with a letter and not ending with '-'"
)]
pub struct NameError(pub Excerpt);

impl FromStr for SourceName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = (1..=NAME_MAX).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && !s.ends_with('-')
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(NameError(s.into()))
        }
    }
}

impl fmt::Display for SourceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for SourceName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SourceName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One parsed annotation key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    /// The key without its suffix, one of the constants of the contract.
    pub base: &'static str,
    pub name: Option<SourceName>,
}

impl Key {
    pub fn new(base: &'static str, name: Option<&SourceName>) -> Self {
        Self {
            base,
            name: name.cloned(),
        }
    }

    /// Parse an annotation key; `Ok(None)` when it is not under [`PREFIX`].
    pub fn parse(key: &str) -> Result<Option<Self>, AnnotationError> {
        let Some(rest) = key.strip_prefix(PREFIX) else {
            return Ok(None);
        };
        let (field, suffix) = match rest.split_once('.') {
            Some((field, suffix)) => (field, Some(suffix)),
            None => (rest, None),
        };
        let base = INPUT_KEYS
            .iter()
            .chain([&STATUS, &SOURCE_REVISION])
            .find(|k| &k[PREFIX.len()..] == field)
            .copied();
        let unknown = || AnnotationError::Unknown {
            key: key.to_owned(),
            suggestion: closest_key(rest),
        };
        match (base, suffix) {
            (Some(base), None) => Ok(Some(Self { base, name: None })),
            (Some(base), Some(suffix)) if is_per_source(base) => match suffix.parse() {
                Ok(name) => Ok(Some(Self {
                    base,
                    name: Some(name),
                })),
                Err(error) => Err(AnnotationError::InvalidName {
                    key: key.to_owned(),
                    error,
                }),
            },
            // A StatefulSet-wide key with a suffix: the key without it.
            (Some(base), Some(_)) if INPUT_KEYS.contains(&base) => Err(AnnotationError::Unknown {
                key: key.to_owned(),
                suggestion: Some(base.to_owned()),
            }),
            _ => Err(unknown()),
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{}.{name}", self.base),
            None => f.write_str(self.base),
        }
    }
}

/// Keys that may carry a `.NAME` suffix.
fn is_per_source(base: &str) -> bool {
    SOURCE_KEYS.contains(&base) || CONNECTION_KEYS.contains(&base)
}

/// The valid key closest to a mistyped one (`rest` is the key without the
/// prefix), if any is reasonably close. A suffix that is a valid source name
/// is kept on the suggestion, and only keys that take one are suggested.
/// A distance is never less than the difference in length, so candidates
/// that cannot be close enough are skipped before the distance is computed:
/// its cost is the product of the lengths, and a key in a review can be
/// megabytes long.
fn closest_key(rest: &str) -> Option<String> {
    let named = rest
        .split_once('.')
        .filter(|(_, s)| s.parse::<SourceName>().is_ok());
    let (field, suffix, candidates): (&str, Option<&str>, Vec<&str>) = match named {
        Some((field, suffix)) => {
            let keys = SOURCE_KEYS.iter().chain(CONNECTION_KEYS.iter());
            (field, Some(suffix), keys.copied().collect())
        }
        None => (rest, None, INPUT_KEYS.to_vec()),
    };
    let length = field.chars().count();
    let close_enough = length.div_ceil(3).max(1);
    candidates
        .into_iter()
        .map(|k| (&k[PREFIX.len()..], k))
        .filter(|(name, _)| name.len().abs_diff(length) <= close_enough)
        .map(|(name, k)| (strsim::damerau_levenshtein(field, name), k))
        .filter(|(d, _)| *d <= close_enough)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| match suffix {
            Some(suffix) => format!("{k}.{suffix}"),
            None => k.to_owned(),
        })
}
