//! The placement journal: `TARGET/.s3-seed/journal`, what s3-seed placed
//! since the state file was last written.
//!
//! The state file is written once, at the end of a successful run, so a run
//! killed with SIGKILL or failing half-way would leave the files it already
//! installed unknown to the next run, and never pruned. Instead, every file
//! is journaled before it is renamed into place: one JSON line (source, path,
//! state entry, and the device and inode of the temporary file, which the
//! rename keeps), appended and made durable before the rename; concurrent
//! installs share one `fdatasync` (group commit).
//!
//! The next run folds the journal into the state it loads ([`fold`], pure):
//! a line counts only if the file at its path is still that very inode, so a
//! line written just before a crash that prevented the rename never claims
//! a file s3-seed did not place. Once the state file has been written, the
//! journal is emptied. A torn last line (a crash mid-append) is ignored: its
//! rename never happened.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead as _, BufReader, Write as _};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};

use super::error::SyncError;
use super::keys::{RESERVED, RelPath};
use super::state::{Entry, State};
use super::target::{FileId, Target};

const FILE: &str = "journal";

/// One journal line: a file s3-seed was about to rename into place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placed {
    /// The `s3://` source of the run that placed it.
    pub source: String,
    /// Path relative to the target.
    pub path: String,
    /// The file's identity (of the temporary file; the rename keeps it).
    pub id: FileId,
    pub entry: Entry,
}

/// The journal of the running sync (opened under the target lock).
#[derive(Debug)]
pub struct Journal {
    /// The append handle and the number of lines appended by this run.
    appender: Mutex<(File, u64)>,
    /// A second handle on the same file for `fdatasync`, and how many of this
    /// run's lines are known durable.
    syncer: Mutex<(File, u64)>,
    path: std::path::PathBuf,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Journal {
    /// Open the journal for appending (creating it if needed).
    pub fn open(target: &Target) -> Result<Self, SyncError> {
        let path = target.path().join(RESERVED).join(FILE);
        let file = target.open_meta(FILE, true)?;
        let sync = file.try_clone().map_err(|e| SyncError::io(&path, e))?;
        Ok(Self {
            appender: Mutex::new((file, 0)),
            syncer: Mutex::new((sync, 0)),
            path,
        })
    }

    /// Append `placed` and return once it is durable (blocking).
    pub fn record(&self, placed: &Placed) -> Result<(), SyncError> {
        let mut line = serde_json::to_vec(placed).map_err(|e| self.err(e.into()))?;
        line.push(b'\n');
        let seq = {
            let mut app = lock(&self.appender);
            app.0.write_all(&line).map_err(|e| self.err(e))?;
            app.1 += 1;
            app.1
        };
        let mut synced = lock(&self.syncer);
        if synced.1 < seq {
            // Everything appended so far goes durable with this one call.
            let upto = lock(&self.appender).1;
            synced.0.sync_data().map_err(|e| self.err(e))?;
            synced.1 = upto;
        }
        Ok(())
    }

    /// Empty the journal, once the state file records everything in it.
    pub fn clear(&self) -> Result<(), SyncError> {
        let app = lock(&self.appender);
        if app.0.metadata().map_err(|e| self.err(e))?.len() == 0 {
            return Ok(());
        }
        app.0.set_len(0).map_err(|e| self.err(e))?;
        app.0.sync_data().map_err(|e| self.err(e))
    }

    fn err(&self, e: std::io::Error) -> SyncError {
        SyncError::io(&self.path, e)
    }
}

/// The lines of the journal left by earlier runs; unreadable lines are skipped.
pub fn read(target: &Target) -> Vec<Placed> {
    let Ok(file) = target.open_meta(FILE, false) else {
        return Vec::new();
    };
    BufReader::new(file)
        .split(b'\n')
        .map_while(Result::ok)
        .filter_map(|line| serde_json::from_slice(&line).ok())
        .collect()
}

/// The state to plan from: the state file with the journal folded in, the
/// journal's files identified on disk first.
pub fn recover(target: &Target, state: Option<State>, placed: Vec<Placed>) -> Option<State> {
    if placed.is_empty() {
        return state;
    }
    let rels: Vec<RelPath> = placed
        .iter()
        .filter_map(|p| RelPath::parse(&p.path).ok())
        .collect();
    let ids = target.ids_many(rels.iter());
    let folded = fold(state, placed, &ids);
    tracing::info!(
        entries = folded.as_ref().map_or(0, |s| s.entries.len()),
        "folded the placement journal of an interrupted run into the state"
    );
    folded
}

/// Pure: fold journal lines, in order, into `state`. A line is taken only
/// when `ids` shows the very file it recorded at its path; a later line
/// for the same path wins. When the lines and the state disagree on the
/// source, the result has no source (nothing is skipped as unchanged, and
/// every entry is a prune candidate).
pub fn fold(
    state: Option<State>,
    placed: Vec<Placed>,
    ids: &HashMap<RelPath, Option<FileId>>,
) -> Option<State> {
    let placed_here = |p: &Placed| {
        let rel = RelPath::parse(&p.path).ok();
        rel.and_then(|r| ids.get(&r).copied().flatten()) == Some(p.id)
    };
    let taken: Vec<Placed> = placed.into_iter().filter(placed_here).collect();
    let Some(first) = taken.first() else {
        return state;
    };
    let mut out = state.unwrap_or_else(|| State::new(first.source.clone()));
    if taken.iter().any(|p| p.source != out.source) {
        out.source = String::new();
    }
    for p in taken {
        out.entries.insert(p.path, p.entry);
    }
    Some(out)
}

#[cfg(test)]
mod tests;
