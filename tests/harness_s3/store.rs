//! The store as a sync client sees it: ranges, checksums per algorithm,
//! multipart ETags, reported (composite) checksums, listings (ETags, injected
//! hostile keys) and the way s3s-fs maps odd keys, all as documented at the
//! top of `common/s3/mod.rs`.

use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, ChecksumType, ObjectAttributes};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::Digest as _;

use super::common::s3::{Marking, S3Server, composite_crc32};
use super::{body, get, head_object, list_keys, pattern, status, strict};
type Sums = [Option<String>; 5];

/// The five checksum fields of a PutObject, HeadObject or GetObject output.
macro_rules! checksums {
    ($o:expr) => {{
        let o = $o;
        let sums: Sums = [
            &o.checksum_crc32,
            &o.checksum_crc32_c,
            &o.checksum_crc64_nvme,
            &o.checksum_sha1,
            &o.checksum_sha256,
        ]
        .map(Clone::clone);
        sums
    }};
}

#[tokio::test]
async fn ranged_get_returns_content_range() {
    let s3 = S3Server::start().await;
    let data = pattern(100);
    s3.put("r", &data).await;
    let client = s3.client();
    for (range, first, last) in [
        ("bytes=0-9", 0, 9),
        ("bytes=90-", 90, 99),
        ("bytes=-5", 95, 99),
    ] {
        let out = get(&client, "r", Some(range)).await;
        assert_eq!(
            out.content_range(),
            Some(format!("bytes {first}-{last}/100").as_str())
        );
        assert_eq!(out.content_length(), Some(last - first + 1));
        assert_eq!(body(out).await, data[first as usize..=last as usize]);
    }
}

#[tokio::test]
async fn single_put_checksums_per_algorithm() {
    let s3 = S3Server::start().await;
    let client = s3.client();
    let data = pattern(3000);
    for algorithm in [
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc32C,
        ChecksumAlgorithm::Crc64Nvme,
        ChecksumAlgorithm::Sha1,
        ChecksumAlgorithm::Sha256,
    ] {
        let key = format!("sum-{}", algorithm.as_str());
        let put = s3.put_with_checksum(&key, &data, algorithm.clone()).await;
        let stored = checksums!(&put);
        assert_eq!(
            stored.iter().flatten().count(),
            1,
            "{algorithm:?}: {stored:?}"
        );
        let head = client.head_object().bucket(s3.bucket()).key(&key);
        assert_eq!(
            checksums!(&head.clone().send().await.unwrap()),
            stored,
            "HEAD, no mode"
        );
        let head = head
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .unwrap();
        assert_eq!(checksums!(&head), stored, "HEAD with ChecksumMode");
        let full = client
            .get_object()
            .bucket(s3.bucket())
            .key(&key)
            .checksum_mode(ChecksumMode::Enabled);
        let full = full.send().await.unwrap();
        assert_eq!(checksums!(&full), stored, "full GET");
        assert_eq!(body(full).await, data, "SDK validated the checksum");
        let ranged = client
            .get_object()
            .bucket(s3.bucket())
            .key(&key)
            .range("bytes=0-99");
        let ranged = ranged
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .unwrap();
        assert_eq!(
            checksums!(&ranged),
            [None, None, None, None, None],
            "no checksum on a range"
        );
    }
    let crc32 = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32IsoHdlc, &data) as u32;
    let head = head_object(&client, "sum-CRC32").await;
    assert_eq!(
        head.checksum_crc32(),
        Some(B64.encode(crc32.to_be_bytes()).as_str())
    );
    let head = head_object(&client, "sum-SHA256").await;
    assert_eq!(
        head.checksum_sha256(),
        Some(B64.encode(sha2::Sha256::digest(&data)).as_str())
    );
    let plain = s3.put("plain", &data).await;
    let head = head_object(&client, "plain").await;
    assert_eq!(
        (head.e_tag(), checksums!(&head)),
        (Some(plain.as_str()), [None, None, None, None, None])
    );
}

#[tokio::test]
async fn multipart_objects_have_part_count_etags_and_no_checksum() {
    let s3 = S3Server::start().await;
    let data = pattern(5 * 1024 * 1024 + 1024);
    let etag = s3.put_multipart("mp", &data, 5 * 1024 * 1024).await;
    assert!(etag.ends_with("-2\""), "{etag}");
    let client = s3.client();
    let head = client
        .head_object()
        .bucket(s3.bucket())
        .key("mp")
        .checksum_mode(ChecksumMode::Enabled);
    let head = head.send().await.unwrap();
    assert_eq!(
        (head.e_tag(), checksums!(&head)),
        (Some(etag.as_str()), [None, None, None, None, None])
    );
    assert_eq!(body(get(&client, "mp", None).await).await, data);

    // The documented quirk: multipart over a key that had a checksum keeps the stale one.
    s3.put_with_checksum("stale", b"old", ChecksumAlgorithm::Crc32)
        .await;
    s3.put_multipart("stale", b"new content", 5 * 1024 * 1024)
        .await;
    let head = head_object(&client, "stale").await;
    assert!(head.checksum_crc32().is_some() && head.e_tag().is_some_and(|e| e.ends_with("-1\"")));
}

#[tokio::test]
async fn reported_crc32_replaces_stored_checksums_where_s3_sends_them() {
    assert_eq!(
        composite_crc32(b"123456789", 4),
        "+vEo6Q==",
        "CRC32 of the CRC32s of 1234, 5678 and 9 (as Python's zlib computes it)"
    );
    let s3 = S3Server::start().await;
    let data = pattern(3000);
    let put = s3
        .put_with_checksum("k", &data, ChecksumAlgorithm::Sha256)
        .await;
    s3.put_with_checksum("other", &data, ChecksumAlgorithm::Sha256)
        .await;
    s3.report_crc32("k", "AAAAAA==-3", Some("COMPOSITE"));
    let reported = [Some("AAAAAA==-3".to_owned()), None, None, None, None];
    let client = strict(&s3);
    let head = client.head_object().bucket(s3.bucket()).key("k");
    let head = head.checksum_mode(ChecksumMode::Enabled).send().await;
    let head = head.unwrap();
    assert_eq!(checksums!(&head), reported);
    assert_eq!(head.checksum_type().map(|t| t.as_str()), Some("COMPOSITE"));
    assert_eq!(head.e_tag(), put.e_tag(), "ETag untouched");
    let full = client.get_object().bucket(s3.bucket()).key("k");
    let full = full.checksum_mode(ChecksumMode::Enabled).send().await;
    assert_eq!(checksums!(&full.unwrap()), reported, "whole GET");
    let ranged = get(&client, "k", Some("bytes=0-9")).await;
    assert_eq!(checksums!(&ranged), [None, None, None, None, None]);
    assert_eq!(body(ranged).await, data[..10], "bytes untouched");

    let list = client.list_objects_v2().bucket(s3.bucket()).send().await;
    let list = list.unwrap();
    let algorithms: Vec<_> = list
        .contents()
        .iter()
        .map(|o| (o.key(), o.checksum_algorithm().to_vec()))
        .collect();
    let (crc32, sha256) = (ChecksumAlgorithm::Crc32, ChecksumAlgorithm::Sha256);
    assert_eq!(
        algorithms,
        [(Some("k"), vec![crc32]), (Some("other"), vec![sha256])]
    );
    let types: Vec<_> = list.contents().iter().map(|o| o.checksum_type()).collect();
    let (composite, full) = (ChecksumType::Composite, ChecksumType::FullObject);
    assert_eq!(types, [Some(&composite), Some(&full)]);
}

/// Bitwise CRC32 (IEEE, reflected), independent of the harness's crc-fast.
fn slow_crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in data {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[tokio::test]
async fn reported_composite_serves_part_checksums_through_get_object_attributes() {
    assert_eq!(
        slow_crc32(b"123456789"),
        0xCBF4_3926,
        "the CRC32 check value"
    );
    let s3 = S3Server::start().await;
    let put = s3
        .put_with_checksum("k", b"123456789", ChecksumAlgorithm::Sha256)
        .await;
    s3.put("plain", b"x").await;
    let parts = s3.report_composite("k", 4, Marking::S3);
    let want: Vec<String> = [&b"1234"[..], b"5678", b"9"]
        .iter()
        .map(|p| B64.encode(slow_crc32(p).to_be_bytes()))
        .collect();
    assert_eq!(parts, want);
    let client = strict(&s3);
    let head = client.head_object().bucket(s3.bucket()).key("k");
    let head = head
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(head.checksum_crc32(), Some("+vEo6Q==-3"));
    assert_eq!(head.checksum_type(), Some(&ChecksumType::Composite));

    let mut pages = Vec::new();
    let mut marker = None;
    loop {
        let out = client
            .get_object_attributes()
            .bucket(s3.bucket())
            .key("k")
            .object_attributes(ObjectAttributes::Etag)
            .object_attributes(ObjectAttributes::ObjectParts)
            .object_attributes(ObjectAttributes::Checksum)
            .max_parts(1000)
            .set_part_number_marker(marker)
            .send()
            .await
            .unwrap();
        assert_eq!(
            out.e_tag().map(|e| e.trim_matches('"')),
            put.e_tag().map(|e| e.trim_matches('"'))
        );
        assert_eq!(out.object_size(), Some(9));
        let sum = out.checksum().unwrap();
        assert_eq!(sum.checksum_crc32(), Some("+vEo6Q==-3"));
        let op = out.object_parts().unwrap();
        assert_eq!(op.total_parts_count(), Some(3));
        pages.push(
            op.parts()
                .iter()
                .map(|p| {
                    (
                        p.part_number().unwrap(),
                        p.size().unwrap(),
                        p.checksum_crc32().unwrap().to_owned(),
                    )
                })
                .collect::<Vec<_>>(),
        );
        if op.is_truncated() != Some(true) {
            break;
        }
        marker = op.next_part_number_marker().map(str::to_owned);
    }
    let want_pages = vec![
        vec![(1, 4, want[0].clone()), (2, 4, want[1].clone())],
        vec![(3, 1, want[2].clone())],
    ];
    assert_eq!(pages, want_pages, "two parts a page, as documented");

    let plain = client
        .get_object_attributes()
        .bucket(s3.bucket())
        .key("plain");
    let plain = plain
        .object_attributes(ObjectAttributes::ObjectParts)
        .send()
        .await;
    let err = plain.unwrap_err();
    assert_eq!(status(&err), Some(501), "s3s-fs has no GetObjectAttributes");
    assert_eq!(s3.counts().op("GetObjectAttributes"), 3);

    s3.report_composite("k", 4, Marking::Moto);
    let head = head_object(&client, "k").await;
    assert_eq!(
        (head.checksum_crc32(), head.checksum_type()),
        (Some("+vEo6Q=="), None)
    );
}

#[tokio::test]
async fn listing_carries_etags_checksum_algorithms_and_injected_keys() {
    let s3 = S3Server::start().await;
    let plain = s3.put("dir/file", b"abc").await;
    s3.put_with_checksum("sum", b"abc", ChecksumAlgorithm::Crc32C)
        .await;
    let hostile = ["../x", "a//b", "./a", "a\\b", "/abs", "dir"];
    for key in hostile {
        s3.list_extra(key, 7);
    }
    let out = s3
        .client()
        .list_objects_v2()
        .bucket(s3.bucket())
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = out.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(
        keys,
        [
            "../x", "./a", "/abs", "a//b", "a\\b", "dir", "dir/file", "sum"
        ]
    );
    assert_eq!(out.key_count(), Some(8));
    let find = |k: &str| out.contents().iter().find(|o| o.key() == Some(k)).expect(k);
    assert_eq!(find("dir/file").e_tag(), Some(plain.as_str()));
    assert_eq!(
        find("sum").checksum_algorithm(),
        [ChecksumAlgorithm::Crc32C]
    );
    assert_eq!(find("../x").size(), Some(7));

    let keys = list_keys(&s3.client(), "a").await;
    assert_eq!(
        keys,
        ["a//b", "a\\b"],
        "injected entries respect the prefix"
    );

    s3.clear_list_extra();
    let keys = list_keys(&s3.client(), "").await;
    assert_eq!(keys, ["dir/file", "sum"], "cleared");
}

#[tokio::test]
async fn s3s_fs_maps_odd_keys_as_documented() {
    let s3 = S3Server::start().await;
    let client = strict(&s3);
    let put = |key: &'static str| {
        client
            .put_object()
            .bucket(s3.bucket())
            .key(key)
            .body(b"z".to_vec().into())
            .send()
    };
    for key in ["a//b", "./c", "f/../g", "../x", "d\\e"] {
        put(key).await.unwrap_or_else(|e| panic!("{key}: {e:?}"));
    }
    assert_eq!(status(&put("/abs").await.unwrap_err()), Some(500));
    assert_eq!(
        status(&put("a").await.unwrap_err()),
        Some(500),
        "a is already a folder prefix"
    );
    let keys = list_keys(&client, "").await;
    assert_eq!(keys, ["a/b", "c", "d\\e", "g"]);
    assert!(
        s3.root().join("x").is_file(),
        "../x lands beside the bucket"
    );
}
