//! Which listed keys belong to the source, and the file each one becomes.
//!
//! This is the security boundary between strings chosen by whoever can write
//! to the bucket and paths on the application's volume, so it is pure and
//! table-tested. A key is mapped component by component: absolute keys, empty,
//! `.` and `..` components, NUL, other control characters (a newline, an
//! escape: no file name a person or a log can read) and backslashes are
//! rejected, as is anything
//! under s3-seed's own `.s3-seed/` folder. Containment therefore holds by
//! construction (a [`RelPath`] has only normal components) instead of by a
//! string-prefix check on a joined path. Keys ending in `/` are folder markers
//! and produce no file.
//!
//! Source semantics: a prefix that is empty or ends in `/` is a folder. A
//! prefix without a trailing `/` is a single object when an object with exactly
//! that key exists, a folder (`prefix/`) when keys exist under it, and an error
//! when both do.

use std::collections::HashSet;
use std::fmt;

use glob::{MatchOptions, Pattern};

use super::error::SyncError;
pub use crate::s3::{Listed, VersionToken};

/// s3-seed's own folder inside the target; no key may map into it.
pub const RESERVED: &str = ".s3-seed";

/// Longest file name most Linux filesystems accept.
const NAME_MAX: usize = 255;

/// A relative path made only of normal components, joined by `/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelPath(String);

impl RelPath {
    /// Check one relative path (the part of a key below the source prefix).
    pub fn parse(rel: &str) -> Result<Self, &'static str> {
        if rel.is_empty() {
            return Err("maps to an empty path");
        }
        if rel.starts_with('/') {
            return Err("is absolute");
        }
        if rel.contains('\0') || rel.contains('\\') {
            return Err("contains a NUL or backslash");
        }
        if rel.chars().any(char::is_control) {
            return Err("contains a control character");
        }
        for (i, part) in rel.split('/').enumerate() {
            match part {
                "" => return Err("has an empty path component"),
                "." | ".." => return Err("has a '.' or '..' component"),
                RESERVED if i == 0 => return Err("maps into s3-seed's reserved .s3-seed folder"),
                p if p.len() > NAME_MAX => return Err("has a component longer than 255 bytes"),
                _ => {}
            }
        }
        Ok(Self(rel.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The components, never empty, never `.` or `..`.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The parent folder (`None` at the top of the target) and the file name.
    pub fn split_parent(&self) -> (Option<&str>, &str) {
        match self.0.rsplit_once('/') {
            Some((dir, name)) => (Some(dir), name),
            None => (None, &self.0),
        }
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A listed object selected for the target, with the file it becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub rel: RelPath,
    pub object: Listed,
}

/// Include/exclude globs compiled for matching keys relative to the prefix.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    include: Vec<Pattern>,
    exclude: Vec<Pattern>,
}

impl Filters {
    pub fn new(include: Vec<Pattern>, exclude: Vec<Pattern>) -> Self {
        Self { include, exclude }
    }

    /// `*` and `?` never cross `/`; `**` as a whole component does.
    pub fn accepts(&self, rel: &str) -> bool {
        let opts = MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: false,
        };
        let hit = |p: &Pattern| p.matches_with(rel, opts);
        (self.include.is_empty() || self.include.iter().any(hit)) && !self.exclude.iter().any(hit)
    }
}

/// Select the listed objects that belong to `prefix` and map them to paths.
///
/// Fails on the first hostile key or file/folder conflict, naming the key.
pub fn select(
    prefix: &str,
    listed: Vec<Listed>,
    filters: &Filters,
) -> Result<Vec<Wanted>, SyncError> {
    let folder = if prefix.is_empty() || prefix.ends_with('/') {
        prefix.to_owned()
    } else {
        let exact = listed.iter().position(|o| o.key == prefix);
        let under = format!("{prefix}/");
        let child = listed.iter().find(|o| o.key.starts_with(&under));
        match (exact, child) {
            (Some(_), Some(child)) => {
                return Err(SyncError::KeyConflict {
                    file: prefix.to_owned(),
                    child: child.key.clone(),
                });
            }
            (Some(i), None) => return single(listed.into_iter().nth(i), filters),
            (None, _) => under,
        }
    };
    let mut out = Vec::new();
    for object in listed {
        let Some(rel) = object.key.strip_prefix(folder.as_str()) else {
            continue;
        };
        if rel.is_empty() || rel.ends_with('/') || !filters.accepts(rel) {
            continue; // folder marker, or filtered out
        }
        let rel = RelPath::parse(rel).map_err(|reason| hostile(&object.key, reason))?;
        out.push(Wanted { rel, object });
    }
    check_conflicts(&out)?;
    Ok(out)
}

fn single(object: Option<Listed>, filters: &Filters) -> Result<Vec<Wanted>, SyncError> {
    let Some(object) = object else {
        return Ok(Vec::new());
    };
    let name = object.key.rsplit('/').next().unwrap_or_default();
    if !filters.accepts(name) {
        return Ok(Vec::new());
    }
    let rel = RelPath::parse(name).map_err(|reason| hostile(&object.key, reason))?;
    Ok(vec![Wanted { rel, object }])
}

fn hostile(key: &str, reason: &'static str) -> SyncError {
    SyncError::HostileKey {
        key: key.to_owned(),
        reason,
    }
}

/// A path that is a file must not also be a folder of another path.
fn check_conflicts(wanted: &[Wanted]) -> Result<(), SyncError> {
    let mut dirs: HashSet<&str> = HashSet::new();
    let mut child_of = std::collections::HashMap::new();
    for w in wanted {
        let s = w.rel.as_str();
        for (i, _) in s.match_indices('/') {
            if dirs.insert(&s[..i]) {
                child_of.insert(&s[..i], &w.object.key);
            }
        }
    }
    match wanted.iter().find(|w| dirs.contains(w.rel.as_str())) {
        Some(w) => Err(SyncError::KeyConflict {
            file: w.object.key.clone(),
            child: child_of[w.rel.as_str()].clone(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;
