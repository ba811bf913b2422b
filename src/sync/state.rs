//! The durable record of what s3-seed placed in the target:
//! `TARGET/.s3-seed/state.json`.
//!
//! It is what makes a warm sync free (no GET, no HEAD) and what makes prune
//! safe (only paths recorded here are ever removed). It is written last, after
//! every file it lists is installed and its folder fsynced, through a temporary
//! file, fsync and rename, so after a crash it is either the old record or the
//! new one. A missing, unreadable or foreign-version file is treated as empty:
//! everything is downloaded again and nothing is pruned.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::delta::PartSums;
use super::error::SyncError;
use super::keys::VersionToken;
use super::target::Target;

/// Version of the file layout; another value is ignored.
pub const VERSION: u32 = 1;
const FILE: &str = "state.json";

/// The whole state file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    /// The `s3://` source the entries came from.
    pub source: String,
    /// Keyed by path relative to the target.
    pub entries: BTreeMap<String, Entry>,
}

/// One file s3-seed installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub key: String,
    pub size: u64,
    pub etag: Option<String>,
    /// Last-Modified from the listing (Unix seconds).
    pub last_modified: Option<i64>,
    /// The installed file's mtime, nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// How the content was verified (`crc64nvme`, `crc32c`, `crc32`, `md5`,
    /// `crc32-composite`, `crc32c-composite`, `md5-of-parts`),
    /// or `None` when S3 offered nothing to verify against.
    pub verified: Option<String>,
    /// The installed file's inode: with `size` and `mtime_ns`, what says the
    /// file is still the one installed (for a delta transfer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ino: Option<u64>,
    /// The upload's parts and their checksums, when the store listed them
    /// (what a later delta transfer compares, [`super::delta`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<PartSums>,
}

impl Entry {
    /// The version of the object this file was installed from.
    pub fn version(&self) -> Option<VersionToken> {
        VersionToken::new(
            &self.key,
            self.size,
            self.etag.as_deref(),
            self.last_modified,
        )
    }
}

impl State {
    pub fn new(source: String) -> Self {
        Self {
            version: VERSION,
            source,
            entries: BTreeMap::new(),
        }
    }

    /// Read the state file; `None` when missing or unusable (logged).
    pub fn load(target: &Target) -> Option<Self> {
        let bytes = target.read_meta(FILE)?;
        match serde_json::from_slice::<Self>(&bytes) {
            Ok(state) if state.version == VERSION => Some(state),
            Ok(state) => {
                tracing::warn!(
                    version = state.version,
                    "ignoring state file of another version"
                );
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "ignoring unreadable state file; everything will be downloaded again");
                None
            }
        }
    }

    /// Write the state file atomically and durably.
    pub fn save(&self, target: &Target) -> Result<(), SyncError> {
        let bytes = serde_json::to_vec(self).map_err(|e| SyncError::Io {
            path: target.path().join(".s3-seed").join(FILE),
            source: std::io::Error::other(e),
        })?;
        target.write_meta_atomic(FILE, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let target = Target::open(dir.path()).unwrap();
        assert_eq!(State::load(&target), None);
        let mut state = State::new("s3://b/p/".into());
        state.entries.insert(
            "a/b".into(),
            Entry {
                key: "p/a/b".into(),
                size: 3,
                etag: Some("\"x\"".into()),
                last_modified: Some(1),
                mtime_ns: 5,
                verified: Some("crc32".into()),
                ino: Some(4),
                parts: Some(PartSums {
                    algorithm: super::super::delta::Algorithm::Crc32,
                    parts: vec![super::super::delta::PartSum {
                        size: 3,
                        checksum: "AAAAAA==".into(),
                    }],
                }),
            },
        );
        state.save(&target).unwrap();
        assert_eq!(State::load(&target), Some(state));
        // A state file written before inodes and parts were recorded still loads.
        std::fs::write(
            dir.path().join(".s3-seed/state.json"),
            br#"{"version":1,"source":"s3://b","entries":{"a":{"key":"a","size":1,"etag":null,"last_modified":null,"mtime_ns":2,"verified":null}}}"#,
        )
        .unwrap();
        let old = State::load(&target).unwrap();
        assert_eq!(
            (old.entries["a"].ino, old.entries["a"].parts.as_ref()),
            (None, None)
        );
        std::fs::write(dir.path().join(".s3-seed/state.json"), b"{not json").unwrap();
        assert_eq!(State::load(&target), None);
        std::fs::write(
            dir.path().join(".s3-seed/state.json"),
            br#"{"version":99,"source":"s3://b","entries":{}}"#,
        )
        .unwrap();
        assert_eq!(State::load(&target), None);
    }
}
