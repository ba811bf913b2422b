//! Delta transfers: which parts of a changed large object can be taken from
//! the file already installed instead of from S3. Pure; the I/O (stat, copy,
//! re-hash) is `download::reuse`.
//!
//! A file installed from a multipart upload whose store listed per-part
//! checksums has them in its state entry ([`PartSums`]), with what says the
//! file is still the one installed ([`Installed`]: size, mtime, inode). When
//! the object changes, GetObjectAttributes lists the new parts; if the layout
//! is the same (as many parts, each of the same size), the algorithm is the
//! same and the file on disk is untouched, every part whose checksum did not
//! change is reused and only the others are fetched ([`Decision::Delta`]).
//! Anything else is a full download, with the reason ([`Why`]).
//!
//! The decision trusts nothing it cannot check later: the reused bytes are
//! hashed again from the new temporary file and compared with the *new*
//! part checksum before they count, and the finished file is checked as any
//! ranged download is (each part, then the composite value). An equal
//! checksum here only says where re-reading is worth trying.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::state::Entry;
use super::verify::CrcKind;

/// A per-part checksum algorithm S3 can list in GetObjectAttributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    Crc32,
    Crc32c,
    Crc64nvme,
    Sha1,
    Sha256,
}

impl From<CrcKind> for Algorithm {
    fn from(kind: CrcKind) -> Self {
        match kind {
            CrcKind::Crc32 => Self::Crc32,
            CrcKind::Crc32c => Self::Crc32c,
            CrcKind::Crc64nvme => Self::Crc64nvme,
        }
    }
}

/// The parts of an upload and their checksums, in part order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartSums {
    pub algorithm: Algorithm,
    pub parts: Vec<PartSum>,
}

/// One part: its size and its checksum as S3 lists it (base64).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartSum {
    pub size: u64,
    pub checksum: String,
}

/// What identifies a file on disk as the one s3-seed installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Installed {
    pub size: u64,
    pub mtime_ns: i64,
    pub ino: u64,
}

/// Which parts (indices from 0, in order) to reuse and which to fetch, or a
/// full download and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Delta {
        reuse: Vec<usize>,
        fetch: Vec<usize>,
    },
    FullDownload(Why),
}

/// Why an object is downloaded whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// No state entry, or one without parts (or with inconsistent ones).
    NoRecordedParts,
    /// Nothing is installed at the path.
    Missing,
    /// The file is not the one installed (size, mtime or inode differ).
    Modified,
    Algorithm {
        was: Algorithm,
        now: Algorithm,
    },
    PartCount {
        was: usize,
        now: usize,
    },
    PartSize {
        part: usize,
        was: u64,
        now: u64,
    },
    /// Every part changed.
    NothingUnchanged,
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoRecordedParts => {
                f.write_str("no part checksums recorded for the installed file")
            }
            Self::Missing => f.write_str("no installed file"),
            Self::Modified => f.write_str("the installed file was modified (size, mtime or inode)"),
            Self::Algorithm { was, now } => write!(f, "part checksums were {was:?}, now {now:?}"),
            Self::PartCount { was, now } => write!(f, "{was} parts before, {now} now"),
            Self::PartSize { part, was, now } => {
                write!(f, "part {} was {was} bytes, now {now}", part + 1)
            }
            Self::NothingUnchanged => f.write_str("every part changed"),
        }
    }
}

/// Decide from the installed file's state `entry`, the new object's parts
/// and what is on disk at the path now (`None`: no regular file).
pub fn decide(entry: Option<&Entry>, new: &PartSums, local: Option<Installed>) -> Decision {
    use Decision::FullDownload as Full;
    let Some((entry, old)) = entry.and_then(|e| Some((e, e.parts.as_ref()?))) else {
        return Full(Why::NoRecordedParts);
    };
    let recorded_size = old
        .parts
        .iter()
        .try_fold(0u64, |n, p| n.checked_add(p.size));
    if recorded_size != Some(entry.size) || old.parts.is_empty() {
        return Full(Why::NoRecordedParts);
    }
    let Some(local) = local else {
        return Full(Why::Missing);
    };
    let installed = entry.ino.map(|ino| Installed {
        size: entry.size,
        mtime_ns: entry.mtime_ns,
        ino,
    });
    if installed != Some(local) {
        return Full(Why::Modified);
    }
    if old.algorithm != new.algorithm {
        return Full(Why::Algorithm {
            was: old.algorithm,
            now: new.algorithm,
        });
    }
    if old.parts.len() != new.parts.len() {
        return Full(Why::PartCount {
            was: old.parts.len(),
            now: new.parts.len(),
        });
    }
    let pairs = old.parts.iter().zip(&new.parts).enumerate();
    if let Some((part, (was, now))) = pairs.clone().find(|(_, (a, b))| a.size != b.size) {
        return Full(Why::PartSize {
            part,
            was: was.size,
            now: now.size,
        });
    }
    let (reuse, fetch): (Vec<_>, Vec<_>) = pairs.partition(|(_, (a, b))| a.checksum == b.checksum);
    if reuse.is_empty() {
        return Full(Why::NothingUnchanged);
    }
    Decision::Delta {
        reuse: reuse.into_iter().map(|(i, _)| i).collect(),
        fetch: fetch.into_iter().map(|(i, _)| i).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (name, state entry, new parts, file on disk, decision)
    type Case = (
        &'static str,
        Option<Entry>,
        PartSums,
        Option<Installed>,
        Decision,
    );

    fn sums(algorithm: Algorithm, parts: &[(u64, &str)]) -> PartSums {
        PartSums {
            algorithm,
            parts: parts
                .iter()
                .map(|(size, checksum)| PartSum {
                    size: *size,
                    checksum: (*checksum).to_owned(),
                })
                .collect(),
        }
    }

    fn entry(parts: Option<PartSums>, ino: Option<u64>) -> Entry {
        Entry {
            key: "p/big".into(),
            size: 25,
            etag: Some("\"old-3\"".into()),
            last_modified: Some(1),
            mtime_ns: 77,
            verified: Some("crc32-composite".into()),
            ino,
            parts,
        }
    }

    #[test]
    fn decides_delta_or_full_download_with_the_reason() {
        use Algorithm::{Crc32, Crc32c, Sha256};
        use Decision::{Delta, FullDownload as Full};
        let old = sums(Crc32, &[(10, "a"), (10, "b"), (5, "c")]);
        let stat = Installed {
            size: 25,
            mtime_ns: 77,
            ino: 9,
        };
        let ok = Some(stat);
        let good = entry(Some(old.clone()), Some(9));
        let delta = |reuse: &[usize], fetch: &[usize]| Delta {
            reuse: reuse.to_vec(),
            fetch: fetch.to_vec(),
        };
        let cases: Vec<Case> = vec![
            (
                "nothing changed",
                Some(good.clone()),
                old.clone(),
                ok,
                delta(&[0, 1, 2], &[]),
            ),
            (
                "one part changed",
                Some(good.clone()),
                sums(Crc32, &[(10, "a"), (10, "B"), (5, "c")]),
                ok,
                delta(&[0, 2], &[1]),
            ),
            (
                "last two changed",
                Some(good.clone()),
                sums(Crc32, &[(10, "a"), (10, "B"), (5, "C")]),
                ok,
                delta(&[0], &[1, 2]),
            ),
            (
                "all changed",
                Some(good.clone()),
                sums(Crc32, &[(10, "A"), (10, "B"), (5, "C")]),
                ok,
                Full(Why::NothingUnchanged),
            ),
            (
                "no entry",
                None,
                old.clone(),
                ok,
                Full(Why::NoRecordedParts),
            ),
            (
                "entry without parts",
                Some(entry(None, Some(9))),
                old.clone(),
                ok,
                Full(Why::NoRecordedParts),
            ),
            (
                "recorded parts do not add up to the file",
                Some(entry(Some(sums(Crc32, &[(10, "a"), (10, "b")])), Some(9))),
                old.clone(),
                ok,
                Full(Why::NoRecordedParts),
            ),
            (
                "recorded sizes overflow",
                Some(entry(
                    Some(sums(Crc32, &[(u64::MAX, "a"), (26, "b")])),
                    Some(9),
                )),
                old.clone(),
                ok,
                Full(Why::NoRecordedParts),
            ),
            (
                "file missing",
                Some(good.clone()),
                old.clone(),
                None,
                Full(Why::Missing),
            ),
            (
                "same size, other mtime",
                Some(good.clone()),
                old.clone(),
                Some(Installed {
                    mtime_ns: 78,
                    ..stat
                }),
                Full(Why::Modified),
            ),
            (
                "other size",
                Some(good.clone()),
                old.clone(),
                Some(Installed { size: 26, ..stat }),
                Full(Why::Modified),
            ),
            (
                "replaced (other inode)",
                Some(good.clone()),
                old.clone(),
                Some(Installed { ino: 10, ..stat }),
                Full(Why::Modified),
            ),
            (
                "no inode recorded",
                Some(entry(Some(old.clone()), None)),
                old.clone(),
                ok,
                Full(Why::Modified),
            ),
            (
                "algorithm changed",
                Some(good.clone()),
                sums(Crc32c, &[(10, "a"), (10, "b"), (5, "c")]),
                ok,
                Full(Why::Algorithm {
                    was: Crc32,
                    now: Crc32c,
                }),
            ),
            (
                "part count changed",
                Some(good.clone()),
                sums(Crc32, &[(10, "a"), (15, "b")]),
                ok,
                Full(Why::PartCount { was: 3, now: 2 }),
            ),
            (
                "part size changed, same total",
                Some(good.clone()),
                sums(Crc32, &[(10, "a"), (8, "b"), (7, "c")]),
                ok,
                Full(Why::PartSize {
                    part: 1,
                    was: 10,
                    now: 8,
                }),
            ),
            (
                "sha256 parts are compared the same way",
                Some(entry(Some(sums(Sha256, &[(20, "x"), (5, "y")])), Some(9))),
                sums(Sha256, &[(20, "x"), (5, "z")]),
                ok,
                delta(&[0], &[1]),
            ),
        ];
        for (name, entry, new, local, want) in cases {
            assert_eq!(decide(entry.as_ref(), &new, local), want, "{name}");
        }
    }

    #[test]
    fn reasons_read_as_sentences() {
        let why = Why::PartSize {
            part: 0,
            was: 8,
            now: 5,
        };
        assert_eq!(why.to_string(), "part 1 was 8 bytes, now 5");
        let json = serde_json::to_string(&sums(Algorithm::Crc64nvme, &[(1, "q")])).unwrap();
        assert_eq!(
            json,
            r#"{"algorithm":"crc64nvme","parts":[{"size":1,"checksum":"q"}]}"#
        );
    }
}
