//! Verification of multipart uploads that carry no checksum at all (the
//! ETag is `md5(part MD5s)-N`): with the parts listed by GetObjectAttributes
//! (store-confirmed) a corrupted part is refetched once and then fails the
//! run; with the part size inferred from the size, an aws-cli-style upload is
//! verified, and an odd part size or a mismatch leaves the file unverified
//! with a logged reason. A resumed download still verifies. The server's
//! counts show the price: one GetObjectAttributes page, nothing else.

mod common;

use std::path::Path;

use common::s3::{Fault, Rule, S3Server};
use common::sync::{
    client, config, corrupt_once_then_always, data, expect_tree, interrupt_after_two_slow_gets,
    ranges_seen, resume_record, run_binary,
};
use s3_seed::sync;

const MIB: usize = 1024 * 1024;
/// The aws CLI's (and boto3's) multipart part size.
const AWS_PART: usize = 8 * MIB;
/// Four parts with the CLI's defaults (as `.ci/s3compat/scenario.py`).
const SIZE: usize = 3 * AWS_PART + MIB + 12345;

/// A multipart upload of `size` bytes in `part` parts at `key`, no checksum.
async fn upload(s3: &S3Server, key: &str, size: usize, part: usize, n: usize) -> Vec<u8> {
    let body = data(key.len() as u64 + 7, size);
    let etag = s3.put_multipart(key, &body, part).await;
    assert!(etag.ends_with(&format!("-{n}\"")), "{etag}");
    body
}

fn state_verified(target: &Path, rel: &str) -> serde_json::Value {
    let state = std::fs::read(target.join(".s3-seed/state.json")).unwrap();
    let state: serde_json::Value = serde_json::from_slice(&state).unwrap();
    state["entries"][rel]["verified"].clone()
}

/// One range per upload part of `part` bytes.
fn part_ranges(size: usize, part: usize) -> Vec<(u64, u64)> {
    (0..size.div_ceil(part))
        .map(|i| (i * part, (size.min((i + 1) * part)) - 1))
        .map(|(a, b)| (a as u64, b as u64))
        .collect()
}

/// 1, 2, 3, 4 and 10,000 parts, listed by the store (on pages of 1,000
/// as S3 lists them, and once on pages of 2) and, where a common part size
/// fits, inferred from the size (GetObjectAttributes is 501 on s3s-fs without
/// a listing): every one is verified by its ETag and fetched one GET per
/// part, each part exactly once, after one HEAD and the GetObjectAttributes
/// pages, nothing else. 10,000 parts are of 100 bytes, the last one small
/// (given the ETag such an upload gets: s3s-fs refuses parts under 5 MiB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_without_checksums_are_verified_by_their_multipart_etag() {
    let s3 = S3Server::start().await;
    // (name, size, part size, parts, parts per GetObjectAttributes page or
    // none listed)
    let cases = [
        ("one-listed", 9 * MIB, 9 * MIB, 1, Some(1000)),
        ("one-inferred", 9 * MIB, 9 * MIB, 1, None),
        ("two-listed", AWS_PART + 1, AWS_PART, 2, Some(1000)),
        ("two-inferred", 2 * AWS_PART, AWS_PART, 2, None),
        ("three-listed", 2 * AWS_PART + 5, AWS_PART, 3, Some(1000)),
        ("three-inferred", 2 * AWS_PART + 5, AWS_PART, 3, None),
        ("four-listed-paged", SIZE, AWS_PART, 4, Some(2)),
        ("four-inferred", SIZE, AWS_PART, 4, None),
        ("ten-thousand", 9_999 * 100 + 37, 100, 10_000, Some(1000)),
    ];
    for (name, size, part, n, page) in cases {
        let key = format!("{name}/big");
        let body = if n < 10_000 {
            upload(&s3, &key, size, part, n).await
        } else {
            let body = data(n as u64, size);
            let etag = s3.put_as_multipart(&key, &body, part).await;
            assert!(etag.ends_with("-10000\""), "{etag}");
            body
        };
        if let Some(page) = page {
            s3.set_attribute_page(page);
            s3.list_parts(&key, part);
        }
        s3.reset_counts();
        let target = tempfile::tempdir().unwrap();
        let mut cfg = config(&s3, &format!("{name}/"), target.path());
        cfg.concurrency = 8;
        let s = sync::run(&cfg, &client(&s3).await).await.unwrap();
        assert_eq!((s.verified, s.unverified), (1, 0), "{name}");
        expect_tree(target.path(), &[("big", &body)]);
        assert_eq!(
            state_verified(target.path(), "big"),
            "md5-of-parts",
            "{name}"
        );
        let counts = s3.counts();
        let pages = page.map_or(1, |page| n.div_ceil(page) as u64);
        let gets = n as u64;
        assert_eq!(ranges_seen(&s3), part_ranges(size, part), "{name}");
        assert_eq!(counts.op("GetObject"), gets, "{name}");
        assert_eq!(counts.get_bytes, size as u64, "{name}: each byte once");
        // One part: the boundary is known, but it is still asked (GetObjectAttributes
        // is asked whenever the HEAD offers no full-object check).
        assert_eq!(counts.op("GetObjectAttributes"), pages, "{name}");
        assert_eq!(counts.total(), 1 + 1 + pages + gets, "{name}: {counts:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_listed_parts_a_corrupted_part_is_refetched_once_then_fails() {
    let s3 = S3Server::start().await;
    let body = upload(&s3, "p/big", SIZE, AWS_PART, 4).await;
    s3.list_parts("p/big", AWS_PART);
    let target = tempfile::tempdir().unwrap();
    let cfg = config(&s3, "p/", target.path());
    let first = corrupt_once_then_always(&s3, &cfg, "p/big", &body, "md5 of the part MD5s").await;
    assert_eq!(first.ranged_gets, 8, "the whole object twice");
}

/// Run the binary on `prefix`; returns its exit code and stderr.
async fn run(s3: &S3Server, prefix: &str, target: &Path) -> (Option<i32>, String) {
    let out = run_binary(s3, prefix, target, &[]).await;
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_inferred_part_size_a_mismatch_is_unverified_not_fatal() {
    let s3 = S3Server::start().await;
    let body = upload(&s3, "c/big", SIZE, AWS_PART, 4).await;
    let always = Rule::new(Fault::Corrupt).op("GetObject").key("c/big");
    s3.inject(always.ranged(true).times(u32::MAX));
    let target = tempfile::tempdir().unwrap();
    let (code, stderr) = run(&s3, "c/", target.path()).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        state_verified(target.path(), "big"),
        serde_json::Value::Null
    );
    assert!(
        stderr.contains("installed without verification"),
        "{stderr}"
    );
    assert!(
        stderr.contains("8 MiB parts inferred from the size")
            && stderr.contains("the part size was a guess"),
        "{stderr}"
    );
    assert_eq!(s3.counts().faults, 4, "no refetch: one GET per part");
    // Installed as fetched (the first byte of each part flipped), as any
    // unverified object is.
    let on_disk = std::fs::read(target.path().join("big")).unwrap();
    assert_ne!(on_disk, body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_part_sizes_are_verified_when_listed_else_left_unverified_with_a_reason() {
    let s3 = S3Server::start().await;
    let odd = 7 * MIB;
    // (prefix, size, parts, listed, expected log): 20 MiB in 7 MiB parts is
    // 3 parts, which 8 MiB parts would also give (a wrong guess); 21 MiB + 1
    // is 4 parts, which no common size gives.
    let cases = [
        ("listed/", 20 * MIB, 3, true, None),
        (
            "guess/",
            20 * MIB,
            3,
            false,
            Some("the part size was a guess"),
        ),
        (
            "none/",
            21 * MIB + 1,
            4,
            false,
            Some("no common part size gives 4 parts"),
        ),
    ];
    for (prefix, size, n, listed, log) in cases {
        let key = format!("{prefix}big");
        let body = upload(&s3, &key, size, odd, n).await;
        if listed {
            s3.list_parts(&key, odd);
        }
        let target = tempfile::tempdir().unwrap();
        let (code, stderr) = run(&s3, prefix, target.path()).await;
        assert_eq!(code, Some(0), "{prefix}: {stderr}");
        expect_tree(target.path(), &[("big", &body)]);
        let verified = state_verified(target.path(), "big");
        match log {
            None => assert_eq!(verified, "md5-of-parts", "{prefix}"),
            Some(why) => {
                assert_eq!(verified, serde_json::Value::Null, "{prefix}");
                assert!(
                    stderr.contains("installed without verification"),
                    "{stderr}"
                );
                assert!(stderr.contains(why), "{prefix}: {why:?} not in {stderr}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_download_resumes_and_still_verifies_by_etag() {
    let s3 = S3Server::start().await;
    let body = upload(&s3, "r/big", SIZE, AWS_PART, 4).await;
    s3.list_parts("r/big", AWS_PART);
    let target = tempfile::tempdir().unwrap();
    let mut cfg = config(&s3, "r/", target.path());
    cfg.concurrency = 2;
    interrupt_after_two_slow_gets(&s3);
    let err = sync::run(&cfg, &client(&s3).await).await.unwrap_err();
    assert!(err.to_string().contains("r/big"), "{err}");
    let record = resume_record(target.path()).await;
    let done = record["done"].as_object().map_or(0, |d| d.len());
    let md5 = record["md5"] == true;
    assert!(done >= 1 && md5, "record: {done} parts, md5: {md5}");

    s3.clear_faults();
    s3.reset_counts();
    let s = sync::run(&cfg, &client(&s3).await).await.unwrap();
    assert_eq!(
        (s.verified, s.unverified),
        (1, 0),
        "resumed parts re-hashed"
    );
    expect_tree(target.path(), &[("big", &body)]);
    assert_eq!(state_verified(target.path(), "big"), "md5-of-parts");
    assert_eq!(
        s3.counts().ranged_gets,
        4 - done as u64,
        "only the missing parts"
    );
}
