//! Resume records of large downloads: `.s3-seed/tmp/<id>.part.json`, naming
//! the preallocated part file `<id>.<random>.part` it describes.
//!
//! A record lists the parts whose bytes are on disk, with the CRC of each
//! (of the object's checksum kind, else CRC64NVME) so the full-object checksum
//! can still be combined after a restart. It is only rewritten after an
//! `fdatasync` of the part file. A rerun reuses the record only for the same
//! key, ETag, size, part size, checksum kind and upload parts (ranges never
//! cross an upload part when its per-part CRCs are checked, so the parts shape
//! the ranges); anything else starts over. A reused record is never trusted:
//! the rerun, holding the target lock, takes the part file over under a name
//! of its own, then reads every recorded part back from disk and keeps only
//! those whose CRC still matches ([`Record::recheck`]).
//!
//! A download checked against a multipart ETag ([`crate::sync::mpu`]) has
//! one range per upload part and keeps, instead of a CRC, the first 8 bytes
//! of each part's MD5; the recheck re-reads such a part from disk, hashes it
//! with MD5 and keeps its full MD5 (in memory) when the 8 bytes still match,
//! so a resumed download is checked as a fresh one is.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt as _;

use serde::{Deserialize, Serialize};

use crate::sync::parts;
use crate::sync::target::Target;
use crate::sync::verify::CrcKind;

/// What is already downloaded of one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub key: String,
    pub etag: String,
    pub size: u64,
    pub part_size: u64,
    pub crc: Option<CrcKind>,
    /// Sizes of the upload's parts when ranges must not cross them (composite
    /// checksums), else empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upload_parts: Vec<u64>,
    /// Ranges are upload parts, hashed with MD5 (see the module note).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub md5: bool,
    /// Range index → CRC of that part, of the kind [`Record::check_kind`]
    /// (with `md5`, the first 8 bytes of its MD5).
    pub done: BTreeMap<u64, u64>,
    /// Range index → MD5 of that part, when `md5` (never written to disk).
    #[serde(skip)]
    pub md5s: BTreeMap<u64, [u8; 16]>,
    /// The part file in `.s3-seed/tmp/` this record describes.
    #[serde(default)]
    pub file: String,
}

impl Record {
    /// The record file name for a temporary-file stem.
    pub fn name(stem: &str) -> String {
        format!("{stem}.part.json")
    }

    /// The record of `stem`, whatever download it describes.
    pub fn read(target: &Target, stem: &str) -> Option<Record> {
        let bytes = target.read_temp(&Self::name(stem))?;
        serde_json::from_slice(&bytes).ok()
    }

    /// The part file this record names, if it is a plain part-file name of
    /// `stem` (a planted `../x` never leaves `.s3-seed/tmp/`).
    pub fn part_file(&self, stem: &str) -> Option<&str> {
        let f = self.file.as_str();
        let plain = !f.contains('/') && f.starts_with(&format!("{stem}.")) && f.ends_with(".part");
        plain.then_some(f)
    }

    /// This record describes exactly the download `want`.
    pub fn matches(&self, want: &Record) -> bool {
        let rec = self;
        rec.key == want.key
            && rec.etag == want.etag
            && rec.size == want.size
            && rec.part_size == want.part_size
            && rec.crc == want.crc
            && rec.upload_parts == want.upload_parts
            && rec.md5 == want.md5
            && rec.done.keys().all(|i| *i < want.parts())
    }

    /// The CRC kept per part: the object's own kind, else CRC64NVME (only
    /// to recheck the parts on disk when resuming).
    pub fn check_kind(&self) -> CrcKind {
        self.crc.unwrap_or(CrcKind::Crc64nvme)
    }

    /// Read every recorded part back from `file` and keep only those whose
    /// bytes still have the recorded CRC; returns how many were dropped.
    /// `buf` is the read buffer (a pooled one, so this counts against the
    /// memory bound).
    pub fn recheck(&mut self, file: &File, buf: &mut [u8]) -> usize {
        let hash = if self.md5 {
            Hash::Md5
        } else {
            Hash::Crc(self.check_kind())
        };
        let ranges = self.ranges();
        let before = self.done.len();
        let md5s = &mut self.md5s;
        self.done.retain(|i, crc| {
            let read = parts::range_at(&ranges, *i).and_then(|&(start, len)| {
                hash_at(|b, at| file.read_at(b, at), start, len, hash, buf)
            });
            match read {
                Some((got, md5)) if got == *crc => {
                    if let Some(md5) = md5 {
                        md5s.insert(*i, md5);
                    }
                    true
                }
                _ => false,
            }
        });
        before - self.done.len()
    }

    /// Note range `i` as on disk, with its CRC or (for an `md5` record) MD5.
    pub fn mark_done(&mut self, i: u64, crc: Option<u64>, md5: Option<[u8; 16]>) {
        match md5.filter(|_| self.md5) {
            Some(md5) => {
                self.done.insert(i, md5_key(&md5));
                self.md5s.insert(i, md5);
            }
            None => {
                self.done.insert(i, crc.unwrap_or(0));
            }
        }
    }

    /// Bytes already on disk for this key/ETag/size, whatever the part size
    /// (for the free-space check, before the HEAD says more).
    pub fn peek(target: &Target, stem: &str, key: &str, etag: &str, size: u64) -> Option<u64> {
        let rec = Self::read(target, stem)?;
        let same = rec.key == key && rec.etag == etag && rec.size == size;
        (same && rec.parts() > *rec.done.keys().last().unwrap_or(&0)).then(|| rec.done_bytes())
    }

    /// Offset and length of every range, in order.
    pub fn ranges(&self) -> Vec<(u64, u64)> {
        parts::ranges(self.size, self.part_size, &self.upload_parts)
    }

    /// Number of ranges of the object.
    pub fn parts(&self) -> u64 {
        self.ranges().len() as u64
    }

    /// Bytes already on disk.
    pub fn done_bytes(&self) -> u64 {
        let ranges = self.ranges();
        let len = |i: &u64| parts::range_at(&ranges, *i).map(|r| r.1);
        self.done.keys().filter_map(len).sum()
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// What a recheck hashes a recorded range with.
#[derive(Debug, Clone, Copy)]
pub(super) enum Hash {
    Crc(CrcKind),
    Md5,
}

/// The first 8 bytes of an MD5, as recorded in `done`.
fn md5_key(md5: &[u8; 16]) -> u64 {
    let mut head = [0u8; 8];
    head.copy_from_slice(&md5[..8]);
    u64::from_be_bytes(head)
}

/// The recorded value (CRC, or [`md5_key`]) of `len` bytes at `start`,
/// read through `buf` by `read` (as `read_at` does: a short count is not an
/// error), with the full MD5 for [`Hash::Md5`]; `None` when they cannot all
/// be read.
pub(super) fn hash_at(
    mut read: impl FnMut(&mut [u8], u64) -> std::io::Result<usize>,
    start: u64,
    len: u64,
    hash: Hash,
    buf: &mut [u8],
) -> Option<(u64, Option<[u8; 16]>)> {
    let mut crc = match hash {
        Hash::Crc(kind) => Some(kind.digest()),
        Hash::Md5 => None,
    };
    let mut md5 = md5_many::Md5State::new();
    let (mut at, end) = (start, start + len);
    while at < end {
        let want = usize::try_from(end - at).map_or(buf.len(), |left| left.min(buf.len()));
        let n = read(&mut buf[..want], at).ok()?;
        if n == 0 {
            return None;
        }
        match crc.as_mut() {
            Some(d) => d.update(&buf[..n]),
            None => md5.update(&buf[..n]),
        }
        at += n as u64;
    }
    Some(match crc {
        Some(d) => (d.finalize(), None),
        None => {
            let md5 = md5.finalize();
            (md5_key(&md5), Some(md5))
        }
    })
}

#[cfg(test)]
mod tests {
    use md5::Digest as _;

    use super::*;

    #[test]
    fn parts_cover_the_object_exactly() {
        let rec = Record {
            key: "k".into(),
            etag: "e".into(),
            size: 10,
            part_size: 4,
            crc: None,
            upload_parts: vec![],
            md5: false,
            done: [(0, 0), (2, 0)].into(),
            md5s: BTreeMap::new(),
            file: String::new(),
        };
        assert_eq!(rec.parts(), 3);
        assert_eq!(rec.ranges(), [(0, 4), (4, 4), (8, 2)]);
        assert_eq!(rec.done_bytes(), 6);
        let split = Record {
            upload_parts: vec![5, 5],
            ..rec
        };
        assert_eq!(split.ranges(), [(0, 4), (4, 1), (5, 4), (9, 1)]);
        assert_eq!((split.parts(), split.done_bytes()), (4, 8));
    }

    #[test]
    fn matches_only_the_same_download() {
        let dir = tempfile::tempdir().unwrap();
        let target = Target::open(dir.path()).unwrap();
        let rec = Record {
            key: "k".into(),
            etag: "\"e\"".into(),
            size: 10,
            part_size: 4,
            crc: Some(CrcKind::Crc32),
            upload_parts: vec![],
            md5: false,
            done: [(1, 7)].into(),
            md5s: BTreeMap::new(),
            file: "x.0123.part".into(),
        };
        target
            .write_temp_atomic(&Record::name("x"), &rec.to_json())
            .unwrap();
        let read = Record::read(&target, "x").unwrap();
        assert_eq!(read, rec);
        assert!(read.matches(&rec));
        assert_eq!(read.part_file("x"), Some("x.0123.part"));
        for other in [
            Record {
                etag: "\"f\"".into(),
                ..rec.clone()
            },
            Record {
                size: 11,
                ..rec.clone()
            },
            Record {
                part_size: 5,
                ..rec.clone()
            },
            Record {
                crc: None,
                ..rec.clone()
            },
            Record {
                upload_parts: vec![6, 4],
                ..rec.clone()
            },
            Record {
                md5: true,
                ..rec.clone()
            },
        ] {
            assert!(!read.matches(&other), "{other:?}");
        }
        for planted in [
            "../x.1.part",
            "x.1/../../y.part",
            "y.1.part",
            "x.1.json",
            "",
        ] {
            let rec = Record {
                file: planted.into(),
                ..rec.clone()
            };
            assert_eq!(rec.part_file("x"), None, "{planted:?}");
        }
    }

    #[test]
    fn recheck_keeps_only_parts_whose_bytes_match() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let body: Vec<u8> = (0..40u8).collect();
        std::fs::write(&path, &body).unwrap();
        let file = File::options().read(true).write(true).open(&path).unwrap();
        for kind in [None, Some(CrcKind::Crc32)] {
            let probe = Record {
                key: "k".into(),
                etag: "e".into(),
                size: 40,
                part_size: 10,
                crc: kind,
                upload_parts: vec![],
                md5: false,
                done: BTreeMap::new(),
                md5s: BTreeMap::new(),
                file: String::new(),
            };
            let k = probe.check_kind();
            let crc = |r: std::ops::Range<usize>| k.checksum(&body[r]);
            let mut rec = Record {
                // part 0 right, part 1 with a wrong CRC, part 2 right but zeroed on disk below
                done: [
                    (0, crc(0..10)),
                    (1, crc(0..10)),
                    (2, crc(20..30)),
                    (3, crc(30..40)),
                ]
                .into(),
                ..probe
            };
            file.write_all_at(&[0; 10], 20).unwrap();
            let mut buf = [0u8; 4]; // smaller than a part: reads loop
            assert_eq!(rec.recheck(&file, &mut buf), 2, "{kind:?}");
            assert_eq!(rec.done.keys().copied().collect::<Vec<_>>(), [0, 3]);
            file.write_all_at(&body[20..30], 20).unwrap();
        }
    }

    #[test]
    fn recheck_of_an_md5_record_rehashes_parts_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let body: Vec<u8> = (0..30u8).collect();
        std::fs::write(&path, &body).unwrap();
        let file = File::options().read(true).write(true).open(&path).unwrap();
        let md5 = |r: std::ops::Range<usize>| <[u8; 16]>::from(md5::Md5::digest(&body[r]));
        let mut rec = Record {
            key: "k".into(),
            etag: "e".into(),
            size: 30,
            part_size: 10,
            crc: None,
            upload_parts: vec![10, 10, 10],
            md5: true,
            done: BTreeMap::new(),
            md5s: BTreeMap::new(),
            file: String::new(),
        };
        for (i, r) in [(0, 0..10), (1, 10..20), (2, 20..30)] {
            rec.mark_done(i, Some(99), Some(md5(r)));
        }
        let json = rec.to_json();
        assert!(
            !String::from_utf8_lossy(&json).contains("md5s"),
            "MD5s stay in memory"
        );
        let mut read: Record = serde_json::from_slice(&json).unwrap();
        assert!(read.md5 && read.md5s.is_empty());
        file.write_all_at(&[0; 3], 12).unwrap(); // part 1 changed on disk
        let mut buf = [0u8; 4];
        assert_eq!(read.recheck(&file, &mut buf), 1);
        assert_eq!(read.done.keys().copied().collect::<Vec<_>>(), [0, 2]);
        assert_eq!(read.md5s, [(0, md5(0..10)), (2, md5(20..30))].into());
    }
}
