//! The one error type of the sync boundary.
//!
//! Every variant names what it is about (key, path, flag) so the one-line
//! reason written to the termination log is enough to act on, and every
//! variant maps to a documented process exit code ([`SyncError::exit_code`]).
//! Messages never contain credentials: SDK errors are reduced to their code,
//! status and message before they get here, and an [`S3Error`] becomes a
//! sync error only through [`SyncError::s3`] (or `From<GaveUp>`), which adds
//! the source and key it concerns.

use std::path::PathBuf;

use rustix::io::Errno;
use thiserror::Error;

use crate::s3::{GaveUp, S3Error};

/// Who owns a folder that refused a write, and its permission bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

/// `" (owned by uid U gid G, mode 0755)"`, or nothing when unknown.
fn owned_by(owner: &Option<Owner>) -> String {
    owner.map_or_else(String::new, |o| {
        format!(
            " (owned by uid {} gid {}, mode {:04o})",
            o.uid,
            o.gid,
            o.mode & 0o7777
        )
    })
}

/// Why a sync failed.
#[derive(Debug, Error)]
pub enum SyncError {
    /// The client could not be configured (CA bundle, proxy, credentials).
    #[error("configuration: {0}")]
    Config(String),
    /// Listing or reading the source failed in a way a retry will not fix.
    #[error("source {uri}: {reason}")]
    Source { uri: String, reason: String },
    /// A key that cannot be mapped safely to a path inside the target.
    #[error("key {key:?} is rejected: {reason}")]
    HostileKey { key: String, reason: &'static str },
    /// One key is a file and another uses it as a folder.
    #[error("key {file:?} is both a file and a folder prefix (of {child:?})")]
    KeyConflict { file: String, child: String },
    /// Something that is not ours stands where a file or folder must go.
    /// (Control characters in the path, which comes from an object key, are
    /// escaped, so the message stays one line.)
    #[error(
        "{} {reason}; move it away or exclude the key (s3-seed never writes through it)",
        escape_controls(path)
    )]
    PathBlocked { path: PathBuf, reason: &'static str },
    /// Not enough free space for what must be downloaded.
    #[error("not enough disk space in {dir}: need {need} bytes to download, {free} bytes free")]
    DiskSpace { dir: PathBuf, need: u64, free: u64 },
    /// The filesystem filled up while writing.
    #[error("disk full while writing {path}")]
    DiskFull { path: PathBuf },
    /// The process may not write to the target, or to a folder inside it.
    #[error(
        "cannot write to {} as uid {uid} gid {gid}{}: set the pod's securityContext.fsGroup \
         (e.g. fsGroup: {gid_hint}) so the volume is group-writable, or run as the volume's owner",
        dir.display(),
        owned_by(.owner)
    )]
    Permission {
        dir: PathBuf,
        uid: u32,
        gid: u32,
        gid_hint: u32,
        /// Owner and mode of `dir`, when it could be read.
        owner: Option<Owner>,
    },
    /// The target is on a filesystem mounted read-only.
    #[error(
        "cannot write to {}: the volume is mounted read-only (EROFS); mount it read-write \
         (no readOnly: true on the container's volumeMount or the volume)",
        dir.display()
    )]
    ReadOnly { dir: PathBuf },
    /// Downloaded bytes do not match what S3 says the object contains.
    #[error("integrity check failed for key {key:?}: {reason}")]
    Integrity { key: String, reason: String },
    /// A transfer still failed after retries, or the retry budget ran out.
    #[error("download of key {key:?} failed: {reason}")]
    Transfer { key: String, reason: String },
    /// Another sync held the target's lock for longer than the bound.
    #[error(
        "{dir} is being synced by another s3-seed run ({holder}); gave up after {waited_secs} s \
         (--lock-timeout-secs)"
    )]
    Locked {
        dir: PathBuf,
        holder: String,
        waited_secs: u64,
    },
    /// Any other local I/O failure.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// `path` for a one-line message: control characters escaped (`\n`,
/// `\u{2}`), everything else as it is.
fn escape_controls(path: &std::path::Path) -> String {
    crate::excerpt::escape_controls(&path.display().to_string())
}

impl SyncError {
    /// The process exit code documented in the README ("exit codes").
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Io { .. } => 1,
            Self::Config(_) => 3,
            Self::Source { .. } => 4,
            Self::HostileKey { .. } | Self::KeyConflict { .. } | Self::PathBlocked { .. } => 5,
            Self::DiskSpace { .. } | Self::DiskFull { .. } => 6,
            Self::Permission { .. } | Self::ReadOnly { .. } => 7,
            Self::Integrity { .. } => 8,
            Self::Transfer { .. } => 9,
            Self::Locked { .. } => 10,
        }
    }

    /// The sync error for an S3 request about `key` of `uri` (`""` for the
    /// bucket itself, or the client).
    pub fn s3(err: S3Error, uri: &str, key: &str) -> Self {
        let source = |reason: String| SyncError::Source {
            uri: uri.to_owned(),
            reason,
        };
        match err {
            S3Error::Setup(d) => SyncError::Config(d),
            S3Error::Changed => source(format!("key {key:?} changed repeatedly during the sync")),
            S3Error::NotFound(d) if key.is_empty() => source(format!("bucket not found ({d})")),
            S3Error::NotFound(d) => source(format!("key {key:?} not found ({d})")),
            S3Error::Credentials(d) => {
                SyncError::Config(format!("credentials or client setup: {d}"))
            }
            S3Error::Integrity(reason) => SyncError::Integrity {
                key: key.to_owned(),
                reason,
            },
            S3Error::Fatal(d) => source(if key.is_empty() {
                d
            } else {
                format!("key {key:?}: {d}")
            }),
            S3Error::GaveUp(e) => e.into(),
        }
    }

    /// The error for a write into `dir` that `errno` refused, for a process
    /// running as `ids` (uid, gid); `None` when `errno` is no refusal.
    pub fn refused(
        dir: impl Into<PathBuf>,
        errno: Errno,
        ids: (u32, u32),
        owner: Option<Owner>,
    ) -> Option<Self> {
        let dir = dir.into();
        let (uid, gid) = ids;
        match errno {
            Errno::ROFS => Some(Self::ReadOnly { dir }),
            Errno::ACCESS | Errno::PERM => Some(Self::Permission {
                dir,
                uid,
                gid,
                gid_hint: if gid == 0 { 1000 } else { gid },
                owner,
            }),
            _ => None,
        }
    }

    /// Wrap an I/O error with the path it concerns, recognising a full disk.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.raw_os_error() == Some(Errno::NOSPC.raw_os_error()) {
            Self::DiskFull { path }
        } else {
            Self::Io { path, source }
        }
    }
}

/// Retries ran out: the transfer of that key failed.
impl From<GaveUp> for SyncError {
    fn from(e: GaveUp) -> Self {
        Self::Transfer {
            key: e.key,
            reason: e.reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::s3::Retry;

    #[tokio::test]
    async fn exhausted_retries_are_transfer_failures() {
        let r = Retry::new(0, 2, Duration::from_millis(1));
        let err = SyncError::from(r.backoff(1, "k", "x").await.unwrap_err());
        assert!(err.to_string().contains("budget"), "{err}");
        assert_eq!(err.exit_code(), 9);
    }

    #[test]
    fn refused_writes_say_why() {
        let owner = Some(Owner {
            uid: 0,
            gid: 0,
            mode: 0o40555,
        });
        let cases = [
            (
                Errno::ROFS,
                Some("cannot write to /t/d: the volume is mounted read-only (EROFS)"),
            ),
            (
                Errno::ACCESS,
                Some("cannot write to /t/d as uid 7 gid 8 (owned by uid 0 gid 0, mode 0555): set"),
            ),
            (
                Errno::PERM,
                Some("cannot write to /t/d as uid 7 gid 8 (owned"),
            ),
            (Errno::NOSPC, None),
            (Errno::NOENT, None),
        ];
        for (errno, want) in cases {
            let err = SyncError::refused("/t/d", errno, (7, 8), owner);
            let msg = err.as_ref().map(ToString::to_string);
            match want {
                None => assert!(err.is_none(), "{errno:?}: {msg:?}"),
                Some(w) => {
                    let msg = msg.unwrap();
                    assert!(msg.starts_with(w), "{errno:?}: {msg}");
                    assert_eq!(err.unwrap().exit_code(), 7);
                    assert_eq!(msg.contains("fsGroup"), errno != Errno::ROFS, "{msg}");
                }
            }
        }
        let root = SyncError::refused("/t", Errno::ACCESS, (7, 0), None).unwrap();
        let msg = root.to_string();
        assert!(
            msg.starts_with("cannot write to /t as uid 7 gid 0: "),
            "{msg}"
        );
        assert!(msg.contains("fsGroup: 1000"), "{msg}");
    }

    #[test]
    fn exit_codes_are_distinct_per_class() {
        let nospc = std::io::Error::from_raw_os_error(Errno::NOSPC.raw_os_error());
        let cases: [(SyncError, u8); 7] = [
            (SyncError::io("/t/a", nospc), 6),
            (SyncError::io("/t/a", std::io::Error::other("x")), 1),
            (SyncError::Config("x".into()), 3),
            (
                SyncError::HostileKey {
                    key: "../x".into(),
                    reason: "r",
                },
                5,
            ),
            (
                SyncError::Integrity {
                    key: "k".into(),
                    reason: "r".into(),
                },
                8,
            ),
            (
                SyncError::Transfer {
                    key: "k".into(),
                    reason: "r".into(),
                },
                9,
            ),
            (
                SyncError::Locked {
                    dir: "/t".into(),
                    holder: "pid 1 on host h".into(),
                    waited_secs: 300,
                },
                10,
            ),
        ];
        for (err, code) in cases {
            assert_eq!(err.exit_code(), code, "{err}");
        }
    }

    #[test]
    fn a_blocked_path_from_a_key_prints_escaped_on_one_line() {
        // Found by the sync_keys fuzz target: a key's control characters
        // reached the termination log raw.
        let err = SyncError::PathBlocked {
            path: "/t/a\u{2}b\nc".into(),
            reason: "is a symlink",
        };
        let msg = err.to_string();
        assert!(!msg.chars().any(char::is_control), "{msg:?}");
        assert!(msg.starts_with(r"/t/a\u{2}b\nc is a symlink"), "{msg}");
    }
}
