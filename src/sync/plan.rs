//! The sync planner: listing + previous state + local facts → actions.
//!
//! Pure and table-tested: it does no I/O, so every decision about what to
//! skip, download, clear or prune can be read and tested in one place.
//!
//! - A selected object is **skipped** only when the previous state (for the
//!   same source) records the same version ([`super::keys::VersionToken`]: key, size and
//!   ETag, or Last-Modified when the store gives no ETag) and the file on disk
//!   is still a regular file with the recorded size and mtime. Anything else is **downloaded**: in one GET
//!   up to `part_size`, in ranged GETs above.
//! - A symlink, folder or special file where a file must go, or a symlink or
//!   non-folder where a folder must go, fails the plan naming it, unless it is
//!   a file s3-seed placed earlier that is no longer wanted; such files are
//!   **cleared first** so the new layout fits.
//! - Entries of the previous state that are no longer selected are
//!   **pruned** (or kept in the state with `--no-prune`). Nothing that is not
//!   in the previous state is ever pruned.
//! - A download carries the previous entry of its path (same source), so a
//!   changed large object can reuse the unchanged parts of the installed file
//!   ([`super::delta`] decides, once the new parts are listed).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use super::error::SyncError;
use super::keys::{Listed, RelPath, Wanted};
use super::state::{Entry, State};
use super::target::LocalFact;

/// Everything the planner looks at.
#[derive(Debug)]
pub struct PlanInput<'a> {
    pub source: &'a str,
    /// The target folder, only to name paths in errors.
    pub target: &'a Path,
    pub wanted: Vec<Wanted>,
    pub previous: Option<&'a State>,
    /// Facts for every wanted path and every previous entry.
    pub local: &'a HashMap<RelPath, LocalFact>,
    pub prune: bool,
    pub part_size: u64,
}

/// One object to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Download {
    pub rel: RelPath,
    pub object: Listed,
    /// Fetched as parallel ranged GETs (larger than `part_size`).
    pub ranged: bool,
    /// The state entry of the file installed at the path from this source,
    /// if any: a ranged download may reuse its unchanged parts
    /// ([`super::delta`]).
    pub installed: Option<Entry>,
}

/// What the sync will do.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Unchanged files, with their (still valid) state entries.
    pub skip: BTreeMap<String, Entry>,
    pub download: Vec<Download>,
    /// Old s3-seed files in the way of the new layout, removed before downloading.
    pub clear_first: Vec<RelPath>,
    /// Old s3-seed files no longer in the source, removed after success.
    pub prune: Vec<RelPath>,
    /// Old entries kept in the state although no longer selected (`--no-prune`).
    pub keep: BTreeMap<String, Entry>,
}

/// Decide what to do. Fails naming the first path that blocks the sync.
pub fn plan(input: PlanInput<'_>) -> Result<Plan, SyncError> {
    let same_source = input.previous.filter(|s| s.source == input.source);
    let empty = BTreeMap::new();
    let old = input.previous.map_or(&empty, |s| &s.entries);
    let wanted_paths: HashSet<&str> = input.wanted.iter().map(|w| w.rel.as_str()).collect();
    let obsolete: HashSet<&str> = old
        .keys()
        .map(String::as_str)
        .filter(|p| !wanted_paths.contains(p))
        .collect();
    let mut out = Plan::default();
    let mut clear: HashSet<String> = HashSet::new();
    for w in &input.wanted {
        let fact = input
            .local
            .get(&w.rel)
            .copied()
            .unwrap_or(LocalFact::Missing);
        let trusted = same_source.and_then(|s| s.entries.get(w.rel.as_str()));
        if let Some(entry) = trusted.filter(|e| unchanged(e, &w.object, fact)) {
            out.skip.insert(w.rel.to_string(), entry.clone());
            continue;
        }
        clear.extend(in_the_way(input.target, &w.rel, fact, &obsolete)?);
        out.download.push(Download {
            rel: w.rel.clone(),
            object: w.object.clone(),
            ranged: w.object.size > input.part_size,
            installed: trusted.cloned(),
        });
    }
    for path in obsolete {
        let rel = RelPath::parse(path).ok();
        match rel {
            Some(rel) if clear.contains(path) => out.clear_first.push(rel),
            Some(rel) if input.prune => out.prune.push(rel),
            _ => {
                out.keep.insert(path.to_owned(), old[path].clone());
            }
        }
    }
    out.clear_first.sort();
    out.prune.sort();
    Ok(out)
}

/// The state entry still describes both the object and the file on disk.
fn unchanged(entry: &Entry, object: &Listed, fact: LocalFact) -> bool {
    let same_version = entry.version().is_some_and(|v| object.version() == Some(v));
    let intact = fact
        == LocalFact::File {
            size: entry.size,
            mtime_ns: entry.mtime_ns,
        };
    same_version && intact
}

/// Old s3-seed files that must go for `rel` to be installed, or an error
/// naming what blocks it.
fn in_the_way(
    target: &Path,
    rel: &RelPath,
    fact: LocalFact,
    obsolete: &HashSet<&str>,
) -> Result<Vec<String>, SyncError> {
    let blocked = |path: &str, reason| SyncError::PathBlocked {
        path: target.join(path),
        reason,
    };
    match fact {
        LocalFact::Missing | LocalFact::File { .. } => Ok(Vec::new()),
        LocalFact::Symlink => Err(blocked(rel.as_str(), "is a symlink where a file must go")),
        LocalFact::Other => Err(blocked(
            rel.as_str(),
            "is a special file where a file must go",
        )),
        LocalFact::Dir => {
            let under = format!("{rel}/");
            let old: Vec<String> = obsolete
                .iter()
                .filter(|p| p.starts_with(&under))
                .map(|p| (*p).to_owned())
                .collect();
            if old.is_empty() {
                return Err(blocked(rel.as_str(), "is a folder where a file must go"));
            }
            Ok(old)
        }
        LocalFact::BlockedParent { depth, symlink } => {
            let parent: String = rel.components().take(depth).collect::<Vec<_>>().join("/");
            if !symlink && obsolete.contains(parent.as_str()) {
                return Ok(vec![parent]);
            }
            let reason = if symlink {
                "is a symlink where a folder must be"
            } else {
                "is not a folder but a folder must be there"
            };
            Err(blocked(&parent, reason))
        }
    }
}

#[cfg(test)]
mod tests;
