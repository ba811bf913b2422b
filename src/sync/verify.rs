//! What S3 lets us verify, and the hashing that checks it.
//!
//! In order of preference: a full-object CRC (CRC64NVME, CRC32C, CRC32) that
//! S3 returns with `ChecksumMode::Enabled`, computed per range while streaming
//! and combined at the end (CRCs combine, so ranges can finish in any order);
//! else the MD5 that the ETag of a single-part upload is. Composite checksums
//! of multipart uploads and multipart ETags cannot be checked against
//! whole-object bytes: a large object with a composite CRC32/CRC32C is checked
//! part by part when the store lists its parts ([`super::parts`]); any
//! other such object is counted and logged as unverified, never passed off
//! as verified. A CRC is composite when its value ends in
//! `-N`, when `x-amz-checksum-type` says `COMPOSITE`, or when that header is
//! missing and the ETag is a multipart one (`…-N`): moto, for one, sends the
//! CRC of the part CRCs of a multipart upload with neither marker.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use crc_fast::CrcAlgorithm;
use serde::{Deserialize, Serialize};

use crate::s3::Head;

/// A full-object CRC S3 can return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CrcKind {
    Crc64nvme,
    Crc32c,
    Crc32,
}

impl CrcKind {
    fn algorithm(self) -> CrcAlgorithm {
        match self {
            Self::Crc64nvme => CrcAlgorithm::Crc64Nvme,
            Self::Crc32c => CrcAlgorithm::Crc32Iscsi,
            Self::Crc32 => CrcAlgorithm::Crc32IsoHdlc,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Crc64nvme => "crc64nvme",
            Self::Crc32c => "crc32c",
            Self::Crc32 => "crc32",
        }
    }

    /// Decode S3's base64 big-endian value; `None` for composite or malformed.
    fn decode(self, b64: &str) -> Option<u64> {
        let bytes = STANDARD.decode(b64).ok()?;
        match (self, bytes.len()) {
            (Self::Crc64nvme, 8) => Some(u64::from_be_bytes(bytes.try_into().ok()?)),
            (Self::Crc32c | Self::Crc32, 4) => {
                Some(u64::from(u32::from_be_bytes(bytes.try_into().ok()?)))
            }
            _ => None,
        }
    }

    /// CRC of one buffer.
    pub fn checksum(self, data: &[u8]) -> u64 {
        crc_fast::checksum(self.algorithm(), data)
    }

    /// CRC of `a ++ b` from the CRCs of `a` and `b` and the length of `b`.
    pub fn combine(self, a: u64, b: u64, b_len: u64) -> u64 {
        crc_fast::checksum_combine(self.algorithm(), a, b, b_len)
    }

    /// A streaming digest.
    pub fn digest(self) -> crc_fast::Digest {
        crc_fast::Digest::new(self.algorithm())
    }
}

/// What the downloaded bytes must hash to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    Crc(CrcKind, u64),
    Md5([u8; 16]),
    /// Nothing usable; the reason is logged with the key.
    Nothing(&'static str),
}

/// The checksum headers of a GetObject/HeadObject response.
#[derive(Debug, Clone, Copy, Default)]
pub struct Offered<'a> {
    pub crc64nvme: Option<&'a str>,
    pub crc32c: Option<&'a str>,
    pub crc32: Option<&'a str>,
    pub etag: Option<&'a str>,
    /// `x-amz-checksum-type`: `FULL_OBJECT` or `COMPOSITE`, when sent.
    pub checksum_type: Option<&'a str>,
}

impl<'a> Offered<'a> {
    /// What a HEAD offered.
    pub fn of_head(head: &'a Head) -> Self {
        let sums = &head.checksums;
        Self {
            crc64nvme: sums.crc64nvme.as_deref(),
            crc32c: sums.crc32c.as_deref(),
            crc32: sums.crc32.as_deref(),
            etag: head.etag.as_deref(),
            checksum_type: sums.checksum_type.as_deref(),
        }
    }
}

/// Pick the strongest check S3 offered.
pub fn expected(offered: Offered<'_>) -> Expected {
    let crcs = [
        (CrcKind::Crc64nvme, offered.crc64nvme),
        (CrcKind::Crc32c, offered.crc32c),
        (CrcKind::Crc32, offered.crc32),
    ];
    let multipart = offered.etag.is_some_and(|e| e.contains('-'));
    let full_object = offered
        .checksum_type
        .map_or(!multipart, |t| t.eq_ignore_ascii_case("FULL_OBJECT"));
    let mut composite = false;
    for (kind, value) in crcs {
        let Some(value) = value else { continue };
        match kind.decode(value) {
            Some(v) if full_object && !value.contains('-') => return Expected::Crc(kind, v),
            _ => composite = true,
        }
    }
    if let Some(md5) = offered.etag.and_then(md5_etag) {
        return Expected::Md5(md5);
    }
    Expected::Nothing(if composite {
        "only a composite (per-part) checksum and a multipart ETag are available"
    } else {
        "no full-object checksum and the ETag is not an MD5 (multipart or encrypted upload)"
    })
}

/// The MD5 in a single-part upload's ETag (`"32 hex digits"`).
pub(super) fn md5_etag(etag: &str) -> Option<[u8; 16]> {
    let hex = etag.trim_matches('"');
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Hashes bytes in order for one [`Expected`].
pub enum Hasher {
    Crc(CrcKind, Box<crc_fast::Digest>),
    Md5(md5_many::Md5State),
    None,
}

impl Hasher {
    pub fn new(expected: &Expected) -> Self {
        match expected {
            Expected::Crc(kind, _) => Self::Crc(*kind, Box::new(kind.digest())),
            Expected::Md5(_) => Self::Md5(md5_many::Md5State::new()),
            Expected::Nothing(_) => Self::None,
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Self::Crc(_, d) => d.update(data),
            Self::Md5(h) => h.update(data),
            Self::None => {}
        }
    }

    /// The CRC so far (for combining ranges); `None` for other hashers.
    pub fn crc(&self) -> Option<u64> {
        match self {
            Self::Crc(_, d) => Some(d.finalize()),
            _ => None,
        }
    }

    /// The MD5 so far (of one upload part); `None` for other hashers.
    pub fn md5(&self) -> Option<[u8; 16]> {
        match self {
            Self::Md5(h) => Some(h.finalize()),
            _ => None,
        }
    }

    /// Compare with what was expected: `Ok(Some(name))` verified,
    /// `Ok(None)` nothing to verify, `Err(reason)` mismatch.
    pub fn check(self, expected: &Expected) -> Result<Option<&'static str>, String> {
        match (self, expected) {
            (Self::Crc(kind, d), Expected::Crc(_, want)) => check_crc(kind, d.finalize(), *want),
            (Self::Md5(h), Expected::Md5(want)) => {
                let got = h.finalize();
                if &got == want {
                    Ok(Some("md5"))
                } else {
                    Err("md5 of the downloaded bytes differs from the ETag".to_owned())
                }
            }
            _ => Ok(None),
        }
    }
}

/// Compare a computed CRC with the expected one.
pub fn check_crc(kind: CrcKind, got: u64, want: u64) -> Result<Option<&'static str>, String> {
    if got == want {
        Ok(Some(kind.name()))
    } else {
        Err(format!(
            "{} of the downloaded bytes is {got:x}, S3 says {want:x}",
            kind.name()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        STANDARD.encode(bytes)
    }

    #[test]
    fn picks_the_strongest_offer() {
        let crc32 = b64(&0xcbf4_3926u32.to_be_bytes()); // CRC32 of "123456789"
        let c64 = b64(&0xae8b_1486_0a79_9888u64.to_be_bytes()); // CRC64NVME of "123456789"
        let md5 = "\"25f9e794323b453885f5181f1b624d0b\""; // MD5 of "123456789"
        let cases: [(Offered<'_>, Expected); 8] = [
            (
                Offered {
                    crc64nvme: Some(&c64),
                    crc32: Some(&crc32),
                    etag: Some(md5),
                    ..Default::default()
                },
                Expected::Crc(CrcKind::Crc64nvme, 0xae8b_1486_0a79_9888),
            ),
            (
                Offered {
                    crc32: Some(&crc32),
                    etag: Some(md5),
                    ..Default::default()
                },
                Expected::Crc(CrcKind::Crc32, 0xcbf4_3926),
            ),
            (
                Offered {
                    crc32c: Some("AAAAAA==-3"),
                    etag: Some("\"abc-3\""),
                    ..Default::default()
                },
                Expected::Nothing(
                    "only a composite (per-part) checksum and a multipart ETag are available",
                ),
            ),
            (
                Offered {
                    crc32c: Some("AAAAAA==-3"),
                    etag: Some(md5),
                    ..Default::default()
                },
                Expected::Md5(md5_etag(md5).unwrap()),
            ),
            (
                // moto: the CRC of the part CRCs, with no `-N` and no checksum type
                Offered {
                    crc32: Some(&crc32),
                    etag: Some("\"abc-3\""),
                    ..Default::default()
                },
                Expected::Nothing(
                    "only a composite (per-part) checksum and a multipart ETag are available",
                ),
            ),
            (
                Offered {
                    crc32: Some(&crc32),
                    etag: Some("\"abc-3\""),
                    checksum_type: Some("FULL_OBJECT"),
                    ..Default::default()
                },
                Expected::Crc(CrcKind::Crc32, 0xcbf4_3926),
            ),
            (
                Offered {
                    crc32: Some(&crc32),
                    etag: Some(md5),
                    checksum_type: Some("COMPOSITE"),
                    ..Default::default()
                },
                Expected::Md5(md5_etag(md5).unwrap()),
            ),
            (
                Offered {
                    etag: Some("\"0123-2\""),
                    ..Default::default()
                },
                Expected::Nothing(
                    "no full-object checksum and the ETag is not an MD5 (multipart or encrypted upload)",
                ),
            ),
        ];
        for (offered, want) in cases {
            assert_eq!(expected(offered), want, "{offered:?}");
        }
    }

    #[test]
    fn hashers_check_known_vectors() {
        let data = b"123456789";
        for (kind, want) in [
            (CrcKind::Crc32, 0xcbf4_3926),
            (CrcKind::Crc32c, 0xe306_9283),
            (CrcKind::Crc64nvme, 0xae8b_1486_0a79_9888),
        ] {
            let exp = Expected::Crc(kind, want);
            let mut h = Hasher::new(&exp);
            h.update(&data[..4]);
            h.update(&data[4..]);
            assert_eq!(h.check(&exp), Ok(Some(kind.name())));
            let joined = kind.combine(kind.checksum(&data[..4]), kind.checksum(&data[4..]), 5);
            assert_eq!(joined, want, "{kind:?}");
            let mut bad = Hasher::new(&exp);
            bad.update(b"12345678X");
            assert!(bad.check(&exp).is_err());
        }
        let exp = expected(Offered {
            etag: Some("\"25f9e794323b453885f5181f1b624d0b\""),
            ..Default::default()
        });
        let mut h = Hasher::new(&exp);
        h.update(data);
        assert_eq!(h.check(&exp), Ok(Some("md5")));
    }

    /// md5-many (the MD5 of the sync) against md-5 (the reference): sizes
    /// around the 64-byte block and its padding boundary, fed in chunks of
    /// every shape.
    #[test]
    fn md5_agrees_with_the_reference() {
        use md5::Digest as _;
        let data: Vec<u8> = (0..(1u32 << 20) + 77)
            .map(|i| (i * 31 + i / 97) as u8)
            .collect();
        for len in [
            0,
            1,
            55,
            56,
            63,
            64,
            65,
            119,
            120,
            128,
            1000,
            4096 + 3,
            data.len(),
        ] {
            let want: [u8; 16] = md5::Md5::digest(&data[..len]).into();
            for chunk in [1, 7, 64, 100, 65_536, usize::MAX] {
                let mut h = Hasher::new(&Expected::Md5(want));
                for piece in data[..len].chunks(chunk.min(len.max(1))) {
                    h.update(piece);
                }
                assert_eq!(h.md5(), Some(want), "{len} bytes in chunks of {chunk}");
                assert_eq!(h.check(&Expected::Md5(want)), Ok(Some("md5")));
            }
        }
    }
}
