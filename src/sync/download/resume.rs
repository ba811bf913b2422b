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
    /// Range index → CRC of that part, of the kind [`Record::check_kind`].
    pub done: BTreeMap<u64, u64>,
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
        let (ranges, kind) = (self.ranges(), self.check_kind());
        let before = self.done.len();
        self.done.retain(|i, crc| {
            let range = usize::try_from(*i).ok().and_then(|i| ranges.get(i));
            range.is_some_and(|&(start, len)| crc_at(file, start, len, kind, buf) == Some(*crc))
        });
        before - self.done.len()
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
        let len = |i: &u64| usize::try_from(*i).ok().and_then(|i| ranges.get(i));
        self.done.keys().filter_map(len).map(|r| r.1).sum()
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// The CRC of `len` bytes of `file` at `start`, read through `buf`; `None`
/// when they cannot all be read.
fn crc_at(file: &File, start: u64, len: u64, kind: CrcKind, buf: &mut [u8]) -> Option<u64> {
    let mut digest = kind.digest();
    let (mut at, end) = (start, start + len);
    while at < end {
        let want = usize::try_from(end - at).map_or(buf.len(), |left| left.min(buf.len()));
        let n = file.read_at(&mut buf[..want], at).ok()?;
        if n == 0 {
            return None;
        }
        digest.update(&buf[..n]);
        at += n as u64;
    }
    Some(digest.finalize())
}

#[cfg(test)]
mod tests {
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
            done: [(0, 0), (2, 0)].into(),
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
            done: [(1, 7)].into(),
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
                done: BTreeMap::new(),
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
}
