//! The range layout of every ranged download ([`ranges`]), and the composite
//! (per-part) CRCs of multipart uploads that the layout lets s3-seed check.
//!
//! S3 stores, for a multipart upload with CRC32 or CRC32C, one CRC per part
//! and reports `base64(CRC(part CRCs as big-endian bytes))-N` as the object's
//! checksum. That value says nothing about byte ranges that straddle parts,
//! so a large object with only such a checksum is fetched in ranges that
//! never cross a part boundary: the CRCs of a part's ranges combine into the
//! part's CRC, checked against what GetObjectAttributes lists for that part,
//! and the part CRCs rebuild the composite value the HEAD sent. Everything
//! here is pure; the request itself is [`crate::s3::object_parts`].

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::verify::{CrcKind, Offered};
use crate::s3::ObjectPart;

/// A composite CRC offered by a HEAD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offer {
    pub kind: CrcKind,
    /// The CRC of the part CRCs.
    pub value: u64,
    /// `N` of a `value-N` checksum (real S3); `None` when absent (moto).
    pub parts: Option<u64>,
}

/// One part of a multipart object, as GetObjectAttributes lists it (raw).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedPart {
    pub number: Option<i32>,
    pub size: Option<i64>,
    /// Base64 CRC of the part, of the offer's kind.
    pub crc: Option<String>,
}

impl ListedPart {
    /// A part as GetObjectAttributes listed it, with its CRC of `kind`.
    pub fn of(part: ObjectPart, kind: CrcKind) -> Self {
        Self {
            number: part.number,
            size: part.size,
            crc: match kind {
                CrcKind::Crc32c => part.crc32c,
                _ => part.crc32,
            },
        }
    }
}

/// A validated part: size and CRC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    pub size: u64,
    pub crc: u64,
}

/// The composite CRC32C or CRC32 in a HEAD's checksum headers, if any
/// (call it only when [`super::verify::expected`] found no full-object CRC).
pub fn offered(offered: Offered<'_>) -> Option<Offer> {
    [
        (CrcKind::Crc32c, offered.crc32c),
        (CrcKind::Crc32, offered.crc32),
    ]
    .into_iter()
    .find_map(|(kind, value)| {
        let (b64, parts) = match value?.split_once('-') {
            Some((b64, n)) => (b64, Some(n.parse::<u64>().ok()?)),
            None => (value?, None),
        };
        Some(Offer {
            kind,
            value: decode_crc32(b64)?,
            parts,
        })
    })
}

fn decode_crc32(b64: &str) -> Option<u64> {
    let bytes: [u8; 4] = STANDARD.decode(b64).ok()?.try_into().ok()?;
    Some(u64::from(u32::from_be_bytes(bytes)))
}

/// Check what GetObjectAttributes listed against the offer and the object
/// size; `Err` says why the parts cannot be used.
pub fn layout(offer: &Offer, size: u64, listed: &[ListedPart]) -> Result<Vec<Part>, String> {
    if listed.is_empty() {
        return Err("no parts listed".to_owned());
    }
    if let Some(n) = offer.parts.filter(|n| *n != listed.len() as u64) {
        return Err(format!("{} parts listed, checksum says {n}", listed.len()));
    }
    let mut last = 0;
    let mut parts = Vec::with_capacity(listed.len());
    for p in listed {
        let number = p.number.unwrap_or(0);
        if number <= last {
            return Err(format!("part numbers out of order at {number}"));
        }
        last = number;
        let size = p
            .size
            .and_then(|s| u64::try_from(s).ok())
            .filter(|s| *s > 0);
        let size = size.ok_or_else(|| format!("part {number} has no size"))?;
        let crc = p.crc.as_deref().and_then(decode_crc32);
        let crc = crc.ok_or_else(|| format!("part {number} has no {}", offer.kind.name()))?;
        parts.push(Part { size, crc });
    }
    let total: u64 = parts.iter().map(|p| p.size).sum();
    if total != size {
        return Err(format!("parts add up to {total} bytes, object has {size}"));
    }
    Ok(parts)
}

/// Range `i` of `ranges`, if there is one (indexes are `u64` in records).
pub fn range_at(ranges: &[(u64, u64)], i: u64) -> Option<&(u64, u64)> {
    usize::try_from(i).ok().and_then(|i| ranges.get(i))
}

/// Ranges (offset, length) of at most `part_size` bytes covering `size`
/// bytes, never crossing a boundary of `parts` (sizes; empty means one part).
pub fn ranges(size: u64, part_size: u64, parts: &[u64]) -> Vec<(u64, u64)> {
    let step = part_size.max(1);
    let whole = [size];
    let parts = if parts.is_empty() { &whole[..] } else { parts };
    let mut out = Vec::new();
    let mut start = 0;
    for end in parts.iter().scan(0, |end, p| {
        *end += p;
        Some(*end)
    }) {
        while start < end {
            let len = step.min(end - start);
            out.push((start, len));
            start += len;
        }
    }
    out
}

/// Check the CRCs of `ranges` (in order, planned by [`ranges`] from the
/// sizes of `parts`) against every part, then the composite value.
pub fn check(
    offer: &Offer,
    parts: &[Part],
    ranges: &[(u64, u64)],
    crcs: &[u64],
) -> Result<&'static str, String> {
    let kind = offer.kind;
    let mut joined = Vec::with_capacity(parts.len() * 4);
    let mut next = ranges.iter().zip(crcs).peekable();
    for (n, part) in (1..).zip(parts) {
        let (mut crc, mut covered) = (kind.checksum(&[]), 0);
        while covered < part.size {
            let Some(((_, len), range_crc)) = next.next() else {
                return Err(format!("ranges end before part {n}"));
            };
            crc = kind.combine(crc, *range_crc, *len);
            covered += len;
        }
        if crc != part.crc || covered != part.size {
            return Err(format!(
                "{} of part {n} of the downloaded bytes is {crc:x}, S3 says {:x}",
                kind.name(),
                part.crc
            ));
        }
        joined.extend_from_slice(&(crc as u32).to_be_bytes());
    }
    let got = kind.checksum(&joined);
    if got != offer.value {
        return Err(format!(
            "composite {} of the part checksums is {got:x}, S3 says {:x}",
            kind.name(),
            offer.value
        ));
    }
    Ok(match kind {
        CrcKind::Crc32c => "crc32c-composite",
        _ => "crc32-composite",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    type Ranges<'a> = &'a [(u64, u64)];

    #[test]
    fn ranges_split_at_part_boundaries() {
        let cases: [(u64, u64, &[u64], Ranges<'_>); 4] = [
            (10, 4, &[], &[(0, 4), (4, 4), (8, 2)]),
            (10, 4, &[5, 5], &[(0, 4), (4, 1), (5, 4), (9, 1)]),
            (10, 5, &[5, 5], &[(0, 5), (5, 5)]),
            (7, 100, &[3, 3, 1], &[(0, 3), (3, 3), (6, 1)]),
        ];
        for (size, part_size, parts, want) in cases {
            assert_eq!(
                ranges(size, part_size, parts),
                want,
                "{size} {part_size} {parts:?}"
            );
        }
    }

    #[test]
    fn offers_and_layouts() {
        let b64 = |v: u32| STANDARD.encode(v.to_be_bytes());
        let s3 = format!("{}-2", b64(7));
        let offer = offered(Offered {
            crc32: Some(&s3),
            ..Default::default()
        });
        let want = Offer {
            kind: CrcKind::Crc32,
            value: 7,
            parts: Some(2),
        };
        assert_eq!(offer, Some(want));
        let moto = b64(9);
        let crc32c = offered(Offered {
            crc32c: Some(&moto),
            ..Default::default()
        });
        assert_eq!(
            crc32c.map(|o| (o.kind, o.value, o.parts)),
            Some((CrcKind::Crc32c, 9, None))
        );
        let bad = offered(Offered {
            crc32: Some("AAAA-x"),
            crc64nvme: Some("AAAAAAAAAAA="),
            ..Default::default()
        });
        assert_eq!(bad, None);

        let part = |number, size, crc: Option<u32>| ListedPart {
            number: Some(number),
            size: Some(size),
            crc: crc.map(b64),
        };
        let good = [part(1, 6, Some(1)), part(2, 4, Some(2))];
        let parts = layout(&want, 10, &good).unwrap();
        assert_eq!(parts, [Part { size: 6, crc: 1 }, Part { size: 4, crc: 2 }]);
        let failures: [(&[ListedPart], u64, &str); 5] = [
            (&[], 10, "no parts listed"),
            (&good[..1], 6, "1 parts listed, checksum says 2"),
            (
                &[part(1, 6, Some(1)), part(2, 4, None)],
                10,
                "part 2 has no crc32",
            ),
            (
                &[part(2, 6, Some(1)), part(1, 4, Some(1))],
                10,
                "out of order at 1",
            ),
            (&good, 11, "parts add up to 10 bytes, object has 11"),
        ];
        for (listed, size, why) in failures {
            let err = layout(&want, size, listed).unwrap_err();
            assert!(err.contains(why), "{err} vs {why}");
        }
    }

    #[test]
    fn check_combines_ranges_into_parts_then_the_composite() {
        let body: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        for kind in [CrcKind::Crc32, CrcKind::Crc32c] {
            let sizes = [400u64, 400, 200];
            let mut start = 0;
            let parts: Vec<Part> = sizes
                .iter()
                .map(|&size| {
                    let crc = kind.checksum(&body[start..start + size as usize]);
                    start += size as usize;
                    Part { size, crc }
                })
                .collect();
            let joined: Vec<u8> = parts
                .iter()
                .flat_map(|p| (p.crc as u32).to_be_bytes())
                .collect();
            let offer = Offer {
                kind,
                value: kind.checksum(&joined),
                parts: Some(3),
            };
            let plan = ranges(1000, 300, &sizes);
            let crcs: Vec<u64> = plan
                .iter()
                .map(|(s, l)| kind.checksum(&body[*s as usize..(s + l) as usize]))
                .collect();
            let name = check(&offer, &parts, &plan, &crcs).unwrap();
            assert!(name.ends_with("-composite") && name.starts_with(kind.name()));
            let mut bad = crcs.clone();
            bad[2] ^= 1; // the range (400, 300): part 2
            let err = check(&offer, &parts, &plan, &bad).unwrap_err();
            assert!(err.contains("of part 2 "), "{err}");
            let wrong = Offer {
                value: offer.value ^ 1,
                ..offer
            };
            let err = check(&wrong, &parts, &plan, &crcs).unwrap_err();
            assert!(err.starts_with("composite"), "{err}");
        }
    }
}
