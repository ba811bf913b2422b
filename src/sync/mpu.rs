//! Multipart ETags (`md5(part MD5s)-N`) and the part layout that checks one.
//!
//! S3's ETag of a multipart upload without SSE-KMS/SSE-C is the MD5 of the
//! concatenated binary MD5s of its parts, then `-N`. Checking it needs the
//! part boundaries: the sizes GetObjectAttributes lists (store-confirmed),
//! else a part size inferred from N and the object size (the common clients
//! upload fixed-size parts; a size counts only if it gives exactly N parts).
//! Ranges are then cut one per upload part, each hashed with MD5 as it is
//! written, and [`check`] compares the MD5 of the MD5s with the ETag. A
//! mismatch is corruption only when the store confirmed the boundaries; with
//! an inferred size it may just be the wrong guess, so the object stays
//! unverified with the reason logged. Everything here is pure.

use super::verify::md5_etag;

/// The state file's `verified` value for an object checked this way.
pub const VERIFIED: &str = "md5-of-parts";

const MIB: u64 = 1024 * 1024;

/// Part sizes tried, in order, when the store lists no parts: aws-cli and
/// boto3 (8 MiB, doubled for very large files), minio-go (16 MiB), rclone and
/// the Go/JS SDKs (5 MiB), s3cmd (15 MiB), then round sizes.
pub const CANDIDATES: [u64; 13] = [
    8 * MIB,
    16 * MIB,
    5 * MIB,
    15 * MIB,
    32 * MIB,
    64 * MIB,
    10 * MIB,
    100 * MIB,
    128 * MIB,
    256 * MIB,
    512 * MIB,
    1024 * MIB,
    2048 * MIB,
];

/// A multipart ETag: the MD5 of the part MD5s and the number of parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Etag {
    pub md5: [u8; 16],
    pub parts: u64,
}

/// `"<32 hex>-N"` (1 ≤ N ≤ 10,000, S3's limit); `None` for anything else
/// (a single-part MD5, an SSE-KMS/SSE-C ETag, another store's format).
pub fn parse(etag: &str) -> Option<Etag> {
    let (hex, n) = etag.trim_matches('"').split_once('-')?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let parts = n.parse().ok().filter(|n| (1..=10_000).contains(n))?;
    Some(Etag {
        md5: md5_etag(hex)?,
        parts,
    })
}

/// The part sizes to check an ETag against, and where they came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub parts: Vec<u64>,
    /// The store gave the boundaries (or N = 1 leaves no choice): a
    /// mismatch is corruption.
    pub confirmed: bool,
    /// How the layout was found, for log lines.
    pub how: String,
}

/// The layout of `size` bytes in `n` parts: the sizes the store listed when
/// they add up (`listed`, or why there are none), else the first of
/// [`CANDIDATES`] that gives exactly `n` parts. `Err` says why there is none.
pub fn layout(size: u64, n: u64, listed: Result<Vec<u64>, String>) -> Result<Layout, String> {
    let listed = listed.and_then(|sizes| {
        let total: u64 = sizes.iter().sum();
        if sizes.len() as u64 != n {
            Err(format!("{} parts listed, the ETag says {n}", sizes.len()))
        } else if total != size || sizes.contains(&0) {
            Err(format!("parts add up to {total} bytes, object has {size}"))
        } else {
            Ok(sizes)
        }
    });
    let why = match listed {
        Ok(parts) => {
            return Ok(Layout {
                parts,
                confirmed: true,
                how: "the parts GetObjectAttributes lists".to_owned(),
            });
        }
        Err(why) => why,
    };
    if n == 1 {
        return Ok(Layout {
            parts: vec![size],
            confirmed: true,
            how: "one part".to_owned(),
        });
    }
    let fits = |c: &u64| c * (n - 1) < size && size <= c * n;
    let Some(part) = CANDIDATES.into_iter().find(fits) else {
        return Err(format!(
            "multipart ETag of {n} parts, no part list ({why}) and no common part size gives {n} parts of {size} bytes"
        ));
    };
    let mut parts = vec![part; usize::try_from(n - 1).unwrap_or(0)];
    parts.push(size - part * (n - 1));
    Ok(Layout {
        parts,
        confirmed: false,
        how: format!(
            "{} MiB parts inferred from the size (no part list: {why})",
            part / MIB
        ),
    })
}

/// The MD5 of the part MD5s, compared with the ETag.
pub fn check(etag: &Etag, md5s: &[[u8; 16]]) -> Result<&'static str, String> {
    if md5s.len() as u64 != etag.parts {
        return Err(format!(
            "{} part MD5s for an ETag of {} parts",
            md5s.len(),
            etag.parts
        ));
    }
    let mut outer = md5_many::Md5State::new();
    for m in md5s {
        outer.update(m);
    }
    let got = outer.finalize();
    if got == etag.md5 {
        Ok(VERIFIED)
    } else {
        Err(format!(
            "md5 of the part MD5s is {}, the ETag says {}",
            hex(&got),
            hex(&etag.md5)
        ))
    }
}

/// Why a mismatch against an inferred layout leaves the object unverified
/// (the guess may be wrong; only a store-confirmed layout proves corruption).
pub fn guessed(layout: &Layout, mismatch: &str) -> String {
    format!(
        "{}: {mismatch}; the part size was a guess, so this proves nothing",
        layout.how
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use md5::Digest as _;

    use super::*;

    #[test]
    fn parses_only_md5_multipart_etags() {
        let md5 = "25f9e794323b453885f5181f1b624d0b";
        let cases = [
            (format!("\"{md5}-3\""), Some(3)),
            (format!("{md5}-1"), Some(1)),
            (format!("\"{md5}-10000\""), Some(10_000)),
            (format!("\"{md5}\""), None),           // single part
            (format!("\"{md5}-0\""), None),         // no parts
            (format!("\"{md5}-10001\""), None),     // beyond S3's limit
            (format!("\"{md5}-+3\""), None),        // not digits
            (format!("\"{md5}-\""), None),          // no N
            (format!("\"{}-3\"", &md5[1..]), None), // 31 hex digits
            ("\"zz9e794323b453885f5181f1b624d0b0-2\"".to_owned(), None),
            // SSE-KMS and other stores: not 32 hex digits
            ("\"a1b2c3d4e5f6-2\"".to_owned(), None),
        ];
        for (etag, parts) in cases {
            assert_eq!(parse(&etag).map(|e| e.parts), parts, "{etag}");
        }
    }

    #[test]
    fn layouts_come_from_the_store_else_from_a_size_that_gives_n_parts() {
        let size = 25 * MIB + 12345; // the aws CLI's 4 parts of 8 MiB
        let listed = vec![8 * MIB, 8 * MIB, 8 * MIB, MIB + 12345];
        let none = || Err::<Vec<u64>, _>("501 NotImplemented".to_owned());
        // (size, n, listed) -> (parts, confirmed) or an error fragment
        type Listed = Result<Vec<u64>, String>;
        type Want = Result<(Vec<u64>, bool), &'static str>;
        let cases: Vec<(u64, u64, Listed, Want)> = vec![
            (size, 4, Ok(listed.clone()), Ok((listed.clone(), true))),
            // listed, odd sizes: taken as they are
            (
                10 * MIB,
                2,
                Ok(vec![7 * MIB, 3 * MIB]),
                Ok((vec![7 * MIB, 3 * MIB], true)),
            ),
            (size, 4, none(), Ok((listed.clone(), false))),
            // a listing that does not add up is ignored
            (size, 4, Ok(vec![size]), Ok((listed.clone(), false))),
            (
                size + 1,
                4,
                Ok(listed.clone()),
                Ok((vec![8 * MIB, 8 * MIB, 8 * MIB, MIB + 12346], false)),
            ),
            // 16 MiB parts: 8 MiB would give 8
            (
                40 * MIB,
                3,
                none(),
                Ok((vec![16 * MIB, 16 * MIB, 8 * MIB], false)),
            ),
            // 5 MiB parts: neither 8 nor 16 gives 7
            (
                33 * MIB,
                7,
                none(),
                Ok((
                    vec![
                        5 * MIB,
                        5 * MIB,
                        5 * MIB,
                        5 * MIB,
                        5 * MIB,
                        5 * MIB,
                        3 * MIB,
                    ],
                    false,
                )),
            ),
            // exactly N full parts
            (16 * MIB, 2, none(), Ok((vec![8 * MIB, 8 * MIB], false))),
            (7, 1, none(), Ok((vec![7], true))),
            // 7 MiB parts of 21 MiB + 1: 8 MiB also gives 3, so it is guessed (and will not match)
            (
                21 * MIB + 1,
                3,
                none(),
                Ok((vec![8 * MIB, 8 * MIB, 5 * MIB + 1], false)),
            ),
            // 7 MiB × 9 + 1: no candidate gives 10 parts
            (
                63 * MIB + 1,
                10,
                none(),
                Err("no common part size gives 10 parts"),
            ),
            (100, 3, none(), Err("501 NotImplemented")),
        ];
        for (size, n, listed, want) in cases {
            let got = layout(size, n, listed);
            match (&got, want) {
                (Ok(l), Ok((parts, confirmed))) => {
                    assert_eq!((&l.parts, l.confirmed), (&parts, confirmed), "{size} {n}");
                    assert_eq!(l.parts.iter().sum::<u64>(), size);
                }
                (Err(e), Err(frag)) => assert!(e.contains(frag), "{e} vs {frag}"),
                _ => panic!("{size} {n}: {got:?}"),
            }
        }
    }

    #[test]
    fn the_md5_of_part_md5s_is_the_etag() {
        // `printf 1234 | md5sum`, `printf 56789 | md5sum`, and (python's
        // hashlib) the MD5 of the two binary digests joined.
        let p1 = md5_etag("81dc9bdb52d04dc20036dbd8313ed055").unwrap();
        let p2 = md5_etag("099ebea48ea9666a7da2177267983138").unwrap();
        assert_eq!(p1, <[u8; 16]>::from(md5::Md5::digest(b"1234")));
        assert_eq!(p2, <[u8; 16]>::from(md5::Md5::digest(b"56789")));
        let etag = parse("\"d8399932ce6023ac3365f50fbbcde132-2\"").unwrap();
        assert_eq!(check(&etag, &[p1, p2]), Ok(VERIFIED));
        let err = check(&etag, &[p2, p1]).unwrap_err();
        assert!(err.contains("the ETag says"), "{err}");
        assert!(check(&etag, &[p1]).unwrap_err().contains("1 part MD5s"));
        // a whole-object MD5 is not the multipart ETag
        let whole: [u8; 16] = md5::Md5::digest(b"123456789").into();
        assert!(check(&Etag { parts: 1, ..etag }, &[whole]).is_err());
    }
}
