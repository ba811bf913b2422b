//! Delta transfers against the harness playing a store that lists per-part
//! CRC32s (GetObjectAttributes) of a 4-part upload: a first sync installs
//! it, then the object is replaced and the server counts what the second
//! sync fetches. Same bytes under a new ETag: no GET at all. One part
//! changed: exactly that part's bytes. Every part changed, or the part
//! layout changed, or the installed file modified by the application: the
//! whole object. A file changed behind s3-seed's back with its size and
//! mtime put back: the reused bytes are rechecked, so the tampered part is
//! fetched. Killed with SIGKILL mid-delta: the installed file stays the old
//! version, and the rerun ends with the new bytes.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::s3::{Marking, S3Server};
use common::sync::{
    client, command, config, data, digest, expect_tree, ranges_seen, recorded_ranges, slow_gets,
    tree,
};
use s3_seed::sync::{self, Summary, SyncConfig};

const KIB: usize = 1024;
/// Upload part size: each full part is two of the sync's 256 KiB ranges.
const PART: usize = 300 * KIB;
/// Four parts, the last one 100 KiB.
const SIZE: usize = 3 * PART + 100 * KIB;
const KEY: &str = "p/big";

/// An object whose part `i` is `data(seeds[i], ..)`, so a test changes a
/// part by changing its seed.
fn body(seeds: [u64; 4]) -> Vec<u8> {
    let sizes = [PART, PART, PART, SIZE - 3 * PART];
    let parts = seeds
        .iter()
        .zip(sizes)
        .map(|(seed, size)| data(*seed, size));
    parts.flatten().collect()
}

/// Put `body` at [`KEY`] as an upload of `part` parts would be stored, with
/// the composite CRC32 and the part CRC32s a store reports for it.
async fn publish(s3: &S3Server, body: &[u8], part: usize) -> String {
    let etag = s3.put_as_multipart(KEY, body, part).await;
    s3.report_composite(KEY, part, Marking::S3);
    etag
}

/// Install `first` with a first sync; returns its config.
async fn installed(s3: &S3Server, target: &Path, first: &[u8]) -> SyncConfig {
    publish(s3, first, PART).await;
    let cfg = config(s3, "p/", target);
    let s = sync::run(&cfg, &client(s3).await).await.unwrap();
    assert_eq!((s.downloaded, s.verified, s.reused_bytes), (1, 1, 0));
    let entry = &state(target)["entries"]["big"];
    assert_eq!(entry["parts"]["algorithm"], "crc32", "{entry}");
    assert_eq!(entry["parts"]["parts"].as_array().map(Vec::len), Some(4));
    assert!(entry["ino"].as_u64().is_some(), "{entry}");
    cfg
}

fn state(target: &Path) -> serde_json::Value {
    let bytes = std::fs::read(target.join(".s3-seed/state.json")).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// Sync again with fresh counts; the summary, and the bytes sent by the server.
async fn resync(s3: &S3Server, cfg: &SyncConfig) -> (Summary, u64) {
    s3.reset_counts();
    let s = sync::run(cfg, &client(s3).await).await.unwrap();
    assert_eq!((s.downloaded, s.verified), (1, 1), "{s:?}");
    (s, s3.counts().get_bytes)
}

/// (first, last) byte of part `i` (from 0) of [`PART`]-byte parts.
fn part_bytes(i: usize) -> (u64, u64) {
    let end = SIZE.min((i + 1) * PART);
    ((i * PART) as u64, end as u64 - 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_bytes_under_a_new_etag_are_not_fetched_at_all() {
    let s3 = S3Server::start().await;
    let target = tempfile::tempdir().unwrap();
    let v1 = body([1, 2, 3, 4]);
    let cfg = installed(&s3, target.path(), &v1).await;
    publish(&s3, &v1, PART).await;
    let etag = "5eed5eed5eed5eed5eed5eed5eed5eed-4";
    s3.set_etag(KEY, etag);

    let (s, bytes) = resync(&s3, &cfg).await;
    let counts = s3.counts();
    assert_eq!(counts.op("GetObject"), 0, "{counts:?}");
    assert_eq!(
        (bytes, s.bytes, s.reused_bytes),
        (0, 0, SIZE as u64),
        "{s:?}"
    );
    expect_tree(target.path(), &[("big", &v1)]);
    let entry = &state(target.path())["entries"]["big"];
    assert_eq!(entry["etag"], format!("\"{etag}\""));
    assert_eq!(entry["verified"], "crc32-composite");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_changed_part_is_the_only_one_fetched() {
    let s3 = S3Server::start().await;
    let target = tempfile::tempdir().unwrap();
    let cfg = installed(&s3, target.path(), &body([1, 2, 3, 4])).await;
    let v2 = body([1, 20, 3, 4]);
    publish(&s3, &v2, PART).await;

    let (s, bytes) = resync(&s3, &cfg).await;
    let (first, last) = part_bytes(1);
    let seen = ranges_seen(&s3);
    assert!(
        seen.iter().all(|(a, b)| *a >= first && *b <= last),
        "only part 2 is asked: {seen:?}"
    );
    let part = last - first + 1;
    assert_eq!((bytes, s.bytes), (part, part), "exactly part 2's bytes");
    assert_eq!(s.reused_bytes, SIZE as u64 - part);
    assert!(
        s.text().contains(&format!(
            "{part} bytes (+ {} reused) in",
            SIZE as u64 - part
        )),
        "{}",
        s.text()
    );
    assert_eq!(tree(target.path())["big"], digest(&v2), "SHA-256 on disk");
    assert_eq!(
        state(target.path())["entries"]["big"]["verified"],
        "crc32-composite"
    );

    // The new state entry is the next delta's base: change part 4 now.
    let v3 = body([1, 20, 3, 40]);
    publish(&s3, &v3, PART).await;
    let (s, bytes) = resync(&s3, &cfg).await;
    let (first, last) = part_bytes(3);
    assert_eq!(ranges_seen(&s3), [(first, last)]);
    assert_eq!((bytes, s.reused_bytes), (last - first + 1, first), "{s:?}");
    expect_tree(target.path(), &[("big", &v3)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_parts_changed_or_a_new_layout_fetch_everything() {
    let s3 = S3Server::start().await;
    let v1 = body([1, 2, 3, 4]);
    // (case, new bytes, new upload part size)
    let cases = [
        ("every part changed", body([10, 20, 30, 40]), PART),
        ("same bytes in 200 KiB parts", v1.clone(), 200 * KIB),
        (
            "same part count, other sizes",
            v1.clone(),
            256 * KIB + 4 * KIB,
        ),
    ];
    for (case, v2, part) in cases {
        let target = tempfile::tempdir().unwrap();
        let cfg = installed(&s3, target.path(), &v1).await;
        publish(&s3, &v2, part).await;
        let (s, bytes) = resync(&s3, &cfg).await;
        assert_eq!((bytes, s.reused_bytes), (SIZE as u64, 0), "{case}");
        expect_tree(target.path(), &[("big", &v2)]);
        let parts = &state(target.path())["entries"]["big"]["parts"]["parts"];
        let n = SIZE.div_ceil(part);
        assert_eq!(parts.as_array().map(Vec::len), Some(n), "{case}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_modified_by_the_application_is_downloaded_whole() {
    let s3 = S3Server::start().await;
    let target = tempfile::tempdir().unwrap();
    let cfg = installed(&s3, target.path(), &body([1, 2, 3, 4])).await;
    // The application rewrites part 3 in place: same size, new bytes, new mtime.
    let path = target.path().join("big");
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &[0xAA; 4096], 2 * PART as u64 + 10).unwrap();
    drop(file);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), SIZE as u64);
    let v2 = body([11, 2, 3, 4]);
    publish(&s3, &v2, PART).await;

    let (s, bytes) = resync(&s3, &cfg).await;
    assert_eq!((bytes, s.reused_bytes), (SIZE as u64, 0), "{s:?}");
    expect_tree(target.path(), &[("big", &v2)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reused_bytes_are_rechecked_so_a_tampered_part_is_fetched() {
    tampered_part_is_fetched(false).await;
}

/// `--trust-installed` skips the read back only of a cloned part that is
/// one range: these parts are two ranges each, so they are still hashed
/// (and on ext4, where the tests run, nothing is cloned at all).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_installed_still_hashes_parts_of_several_ranges() {
    tampered_part_is_fetched(true).await;
}

async fn tampered_part_is_fetched(trust_installed: bool) {
    let s3 = S3Server::start().await;
    let target = tempfile::tempdir().unwrap();
    let mut cfg = installed(&s3, target.path(), &body([1, 2, 3, 4])).await;
    cfg.trust_installed = trust_installed;
    // Part 3 changed behind s3-seed's back, with its mtime put back: size,
    // mtime and inode all say the file is untouched.
    let path = target.path().join("big");
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &[0xAA; 4096], 2 * PART as u64 + 10).unwrap();
    file.set_modified(mtime).unwrap();
    drop(file);
    let v2 = body([11, 2, 3, 4]);
    publish(&s3, &v2, PART).await;

    let (s, bytes) = resync(&s3, &cfg).await;
    let (p1, p3) = (part_bytes(0), part_bytes(2));
    let want: Vec<(u64, u64)> = [p1, p3]
        .into_iter()
        .flat_map(|(a, b)| [(a, a + 256 * 1024 - 1), (a + 256 * 1024, b)])
        .collect();
    assert_eq!(ranges_seen(&s3), want, "part 1 (changed) and 3 (tampered)");
    assert_eq!(bytes, 2 * PART as u64);
    assert_eq!(s.reused_bytes, SIZE as u64 - 2 * PART as u64);
    expect_tree(target.path(), &[("big", &v2)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_delta_the_installed_file_stays_and_a_rerun_is_right() {
    let s3 = S3Server::start().await;
    let target = tempfile::tempdir().unwrap();
    let v1 = body([1, 2, 3, 4]);
    let cfg = installed(&s3, target.path(), &v1).await;
    s3.reset_counts();
    // Parts 2 to 4 changed: part 1's two ranges are reused, five are fetched.
    let v2 = body([1, 20, 30, 40]);
    publish(&s3, &v2, PART).await;
    slow_gets(&s3, Duration::from_millis(600));
    let env = [
        ("S3_SEED_PART_SIZE", "256KiB"),
        ("S3_SEED_CONCURRENCY", "1"),
    ];
    let mut child = command(&s3, "p/", target.path(), &env)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // A checkpoint with the two reused ranges and at least one fetched.
    let deadline = Instant::now() + Duration::from_secs(60);
    while recorded_ranges(target.path()) < 3 {
        assert!(Instant::now() < deadline, "no resume record appeared");
        let running = child.try_wait().unwrap().is_none();
        assert!(running, "finished before it could be killed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let seen = ranges_seen(&s3);
    assert!(
        seen.iter().all(|(a, _)| *a >= PART as u64),
        "the killed run was a delta (part 1 never asked): {seen:?}"
    );
    assert_eq!(
        tree(target.path())["big"],
        digest(&v1),
        "the installed file is intact"
    );

    s3.clear_faults();
    s3.settle().await;
    let (_, bytes) = resync(&s3, &cfg).await;
    expect_tree(target.path(), &[("big", &v2)]);
    // The rerun resumes the record (reused and fetched ranges, read back).
    let changed = (SIZE - PART) as u64;
    assert!(
        bytes < changed,
        "rerun fetched {bytes} of {changed} changed bytes"
    );
    let left = std::fs::read_dir(target.path().join(".s3-seed/tmp")).unwrap();
    assert_eq!(left.count(), 0, "temporary files are cleaned after success");
}
