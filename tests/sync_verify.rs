//! Verification of multipart objects that carry only a composite (per-part)
//! CRC32, against the harness playing a store that keeps per-part CRCs: the
//! ranges never cross an upload part (read from the server's request log),
//! every part and the composite value are checked, a corrupted part fails the
//! run naming key and part, a throttled GetObjectAttributes is retried, a
//! store without GetObjectAttributes still gets the file (unverified, the
//! multipart ETag tried with a part size that is a wrong guess), and an
//! interrupted download resumes and verifies.

mod common;

use std::path::Path;

use common::s3::{Fault, Marking, Rule, S3Server};
use common::sync::{
    client, config, corrupt_once_then_always, data, expect_tree, interrupt_after_two_slow_gets,
    ranges_seen, resume_record,
};
use s3_seed::sync::{self, SyncConfig};

/// Upload part size: not a multiple of the sync's 1 MiB ranges.
const UPLOAD_PART: usize = 5 * 1024 * 1024 + 3 * 1024;
/// Ranges per upload: 6 in each full part (5 × 1 MiB + 3 KiB), 1 in the last.
const RANGES: u64 = 13;

/// A 3-part multipart object at `key` whose store reports a composite CRC32.
async fn composite_object(s3: &S3Server, key: &str, marking: Marking) -> Vec<u8> {
    let body = data(31, 2 * UPLOAD_PART + 100_000);
    let etag = s3.put_multipart(key, &body, UPLOAD_PART).await;
    assert!(etag.ends_with("-3\""), "{etag}");
    s3.report_composite(key, UPLOAD_PART, marking);
    body
}

fn config_1mib(s3: &S3Server, prefix: &str, target: &Path) -> SyncConfig {
    let mut cfg = config(s3, prefix, target);
    cfg.part_size = 1024 * 1024;
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composite_crc32_objects_are_verified_part_by_part() {
    let s3 = S3Server::start().await;
    for (name, marking) in [("s3", Marking::S3), ("moto", Marking::Moto)] {
        let key = format!("{name}/big");
        let body = composite_object(&s3, &key, marking).await;
        s3.reset_counts();
        let target = tempfile::tempdir().unwrap();
        let cfg = config_1mib(&s3, &format!("{name}/"), target.path());
        let s = sync::run(&cfg, &client(&s3).await).await.unwrap();
        assert_eq!((s.verified, s.unverified), (1, 0), "{name}");
        expect_tree(target.path(), &[("big", &body)]);
        let state = std::fs::read(target.path().join(".s3-seed/state.json")).unwrap();
        let state: serde_json::Value = serde_json::from_slice(&state).unwrap();
        assert_eq!(state["entries"]["big"]["verified"], "crc32-composite");

        let counts = s3.counts();
        assert_eq!(counts.op("GetObjectAttributes"), 2, "3 parts, 2 a page");
        assert_eq!(counts.ranged_gets, RANGES, "{name}");
        let up = UPLOAD_PART as u64;
        let seen = ranges_seen(&s3);
        for (first, last) in &seen {
            assert_eq!(first / up, last / up, "{first}-{last} crosses a part");
            assert!(last - first < 1024 * 1024, "{first}-{last} is a range");
        }
        let covered: u64 = seen.iter().map(|(a, b)| b - a + 1).sum();
        assert_eq!(covered, body.len() as u64, "every byte once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_part_is_refetched_once_then_fails_naming_key_and_part() {
    let s3 = S3Server::start().await;
    let body = composite_object(&s3, "p/big", Marking::S3).await;
    let target = tempfile::tempdir().unwrap();
    let cfg = config_1mib(&s3, "p/", target.path());
    // Every range is corrupted; part 1 is checked first.
    corrupt_once_then_always(&s3, &cfg, "p/big", &body, "crc32 of part 1 ").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_get_object_attributes_the_file_is_installed_unverified() {
    let s3 = S3Server::start().await;
    let body = composite_object(&s3, "p/big", Marking::S3).await;
    let refusals = [
        (501, "NotImplemented"),
        (403, "AccessDenied"),
        (400, "InvalidRequest"),
    ];
    for (status, code) in refusals {
        s3.clear_faults();
        s3.reset_counts();
        let refuse = Rule::new(Fault::Error { status, code }).op("GetObjectAttributes");
        s3.inject(refuse.times(u32::MAX));
        let target = tempfile::tempdir().unwrap();
        let s = sync::run(&config_1mib(&s3, "p/", target.path()), &client(&s3).await).await;
        let s = s.unwrap_or_else(|e| panic!("{code}: {e}"));
        assert_eq!((s.verified, s.unverified), (0, 1), "{code}");
        expect_tree(target.path(), &[("big", &body)]);
        let counts = s3.counts();
        assert_eq!(counts.op("GetObjectAttributes"), 1, "{code}: not retried");
        // The multipart ETag is then tried with 5 MiB parts inferred from the
        // size (the upload's are 5 MiB + 3 KiB): a wrong guess, so the file
        // is unverified, not failed. The ranges are the guessed parts.
        let mib5 = 5 * 1024 * 1024;
        let seen = ranges_seen(&s3);
        assert_eq!(seen[..2], [(0, mib5 - 1), (mib5, 2 * mib5 - 1)]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_get_object_attributes_is_retried() {
    let s3 = S3Server::start().await;
    let body = composite_object(&s3, "p/big", Marking::S3).await;
    s3.reset_counts();
    s3.inject(Rule::new(Fault::slow_down()).op("GetObjectAttributes"));
    let target = tempfile::tempdir().unwrap();
    let s = sync::run(&config_1mib(&s3, "p/", target.path()), &client(&s3).await).await;
    assert_eq!((s.unwrap().verified, s3.counts().faults), (1, 1));
    expect_tree(target.path(), &[("big", &body)]);
    assert_eq!(
        s3.counts().op("GetObjectAttributes"),
        3,
        "503, then two pages"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_composite_download_resumes_and_verifies() {
    let s3 = S3Server::start().await;
    let body = composite_object(&s3, "p/big", Marking::S3).await;
    let target = tempfile::tempdir().unwrap();
    let mut cfg = config_1mib(&s3, "p/", target.path());
    cfg.concurrency = 2;
    interrupt_after_two_slow_gets(&s3);
    let err = sync::run(&cfg, &client(&s3).await).await.unwrap_err();
    assert!(err.to_string().contains("p/big"), "{err}");
    let record = resume_record(target.path()).await;
    let done = record["done"].as_object().map_or(0, |d| d.len());
    let split = record["upload_parts"].as_array().map(Vec::len) == Some(3);
    assert!(
        done >= 1 && split,
        "record: {done} ranges, parts recorded: {split}"
    );

    s3.clear_faults();
    s3.reset_counts();
    let s = sync::run(&cfg, &client(&s3).await).await.unwrap();
    assert_eq!(
        (s.verified, s.unverified),
        (1, 0),
        "resumed ranges still verify"
    );
    expect_tree(target.path(), &[("big", &body)]);
    assert_eq!(
        s3.counts().ranged_gets,
        RANGES - done as u64,
        "only the missing ranges"
    );
}
