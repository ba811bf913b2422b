//! Resume records of large downloads: `.s3-seed/tmp/<id>.part.json` next to
//! the preallocated `<id>.part`.
//!
//! A record lists the parts whose bytes are known to be on disk, with their
//! CRCs so the full-object checksum can still be combined after a restart. It
//! is only rewritten after an `fdatasync` of the part file, so every part it
//! names is durable. A rerun reuses the record only for the same key, ETag,
//! size, part size, checksum kind and upload parts (ranges never cross an
//! upload part when its per-part CRCs are checked, so the parts shape the
//! ranges); anything else starts over.

use std::collections::BTreeMap;

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
    /// Range index → CRC of that part (0 when no CRC is computed).
    pub done: BTreeMap<u64, u64>,
}

impl Record {
    /// The record file name for a part file name.
    pub fn name(tmp: &str) -> String {
        format!("{tmp}.json")
    }

    /// A usable record for exactly this download, if one exists.
    pub fn load(target: &Target, tmp: &str, want: &Record) -> Option<Record> {
        let bytes = target.read_temp(&Self::name(tmp))?;
        let rec: Record = serde_json::from_slice(&bytes).ok()?;
        let same = rec.key == want.key
            && rec.etag == want.etag
            && rec.size == want.size
            && rec.part_size == want.part_size
            && rec.crc == want.crc
            && rec.upload_parts == want.upload_parts
            && rec.done.keys().all(|i| *i < want.parts());
        same.then_some(rec)
    }

    /// Bytes already on disk for this key/ETag/size, whatever the part size
    /// (for the free-space check, before the HEAD says more).
    pub fn peek(target: &Target, tmp: &str, key: &str, etag: &str, size: u64) -> Option<u64> {
        let bytes = target.read_temp(&Self::name(tmp))?;
        let rec: Record = serde_json::from_slice(&bytes).ok()?;
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
    fn load_rejects_another_version() {
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
        };
        target
            .write_temp_atomic(&Record::name("x.part"), &rec.to_json())
            .unwrap();
        assert_eq!(Record::load(&target, "x.part", &rec), Some(rec.clone()));
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
            assert_eq!(Record::load(&target, "x.part", &other), None, "{other:?}");
        }
    }
}
