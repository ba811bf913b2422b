//! Failure paths of `s3-seed sync`: objects replaced mid-download (412),
//! injected 5xx/throttling/cut/stalled bodies, exhausted retries, corrupted
//! bytes (caught by our hash or by the SDK's CRC check), a real full or
//! read-only filesystem, and a folder of the target the process cannot write.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_s3::types::ChecksumAlgorithm::{Crc32, Crc64Nvme};
use common::s3::{Fault, Rule, S3Server};
use common::sync::{
    client, command, config, data, expect_failure, expect_ops, expect_tree, output, skip, tree,
};
use s3_seed::sync::{self, SyncError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_replaced_during_ranged_download_restarts_on_412() {
    let s3 = S3Server::start().await;
    let v1 = data(1, 2 * 1024 * 1024);
    let v2 = data(2, 2 * 1024 * 1024 + 5000);
    s3.put_with_checksum("p/big", &v1, Crc32).await;
    let replace = Fault::ReplaceAfter(v2.clone().into());
    s3.inject(Rule::new(replace).op("GetObject").key("p/big").ranged(true));
    let target = tempfile::tempdir().unwrap();
    let mut cfg = config(&s3, "p/", target.path());
    cfg.concurrency = 2;
    let s = sync::run(&cfg, &client(&s3).await).await.unwrap();
    assert_eq!(s.downloaded, 1);
    expect_tree(target.path(), &[("big", &v2)]);
    assert_eq!(
        s3.faults_pending(),
        0,
        "the object was replaced mid-download"
    );
    let log = s3.requests();
    assert!(
        log.iter().any(|r| r.op == "GetObject" && r.status == 412),
        "a range of the old version was refused: {log:?}"
    );
    let heads = s3.counts().op("HeadObject");
    assert!(
        heads >= 2,
        "the object was re-examined after the 412 (heads: {heads})"
    );

    // the state records the new version: a warm run fetches nothing
    s3.reset_counts();
    let s = sync::run(&cfg, &client(&s3).await).await.unwrap();
    assert_eq!(s.skipped, 1);
    expect_ops(&s3, &[("ListObjectsV2", 1)], "warm after the restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_faults_are_retried() {
    let s3 = S3Server::start().await;
    let big = data(3, 1024 * 1024);
    let small = data(4, 100_000);
    s3.put_with_checksum("p/big", &big, Crc32).await;
    s3.put_with_checksum("p/small", &small, Crc32).await;
    // One each, on the next five GETs in this order; the stall outlasts the test.
    for fault in [
        Fault::slow_down(),
        Fault::internal_error(),
        Fault::CutAfter(10_000),
        Fault::StallAfter(5_000, Duration::from_secs(60)),
        Fault::unavailable(),
    ] {
        s3.inject(Rule::new(fault).op("GetObject"));
    }
    let target = tempfile::tempdir().unwrap();
    let mut cfg = config(&s3, "p/", target.path());
    cfg.stall_timeout = Duration::from_millis(500);
    let started = Instant::now();
    let s = sync::run(&cfg, &client(&s3).await).await.unwrap();
    expect_tree(target.path(), &[("big", &big), ("small", &small)]);
    assert_eq!((s.verified, s.unverified), (2, 0));
    assert_eq!(s3.faults_pending(), 0, "every fault was hit");
    let counts = s3.counts();
    assert_eq!(counts.faults, 5);
    assert_eq!(
        counts.op("GetObject"),
        5 + 5,
        "4 ranges + 1 small GET, plus one retry per fault"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_source_fails_within_the_retry_budget() {
    let s3 = S3Server::start().await;
    s3.put("p/a", b"x").await;
    let dead = Rule::new(Fault::internal_error())
        .op("GetObject")
        .key("p/a");
    s3.inject(dead.times(u32::MAX));
    let target = tempfile::tempdir().unwrap();
    let mut cfg = config(&s3, "p/", target.path());
    cfg.retry_budget = 3;
    let err = sync::run(&cfg, &client(&s3).await).await.unwrap_err();
    expect_failure(&err, 9, &["\"p/a\"", "budget"]);
    expect_ops(
        &s3,
        &[("ListObjectsV2", 1), ("GetObject", 4)],
        "one attempt plus three retries",
    );
    assert!(tree(target.path()).is_empty(), "no partial file is visible");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_bytes_are_caught_by_md5_and_refetched_once() {
    let s3 = S3Server::start().await;
    let raw = b"bytes without a checksum: only the md5 etag";
    let big_raw = data(5, 600_000); // ranged, md5 read back
    s3.put("p/raw", raw).await;
    s3.put("p/big-raw", &big_raw).await;
    let target = tempfile::tempdir().unwrap();
    let cfg = config(&s3, "p/", target.path());
    // corrupted once: refetched and fine
    s3.inject(Rule::new(Fault::Corrupt).op("GetObject"));
    let s = sync::run(&cfg, &client(&s3).await).await.unwrap();
    assert_eq!((s.verified, s.downloaded), (2, 2));
    assert_eq!(s3.counts().faults, 1);
    expect_tree(target.path(), &[("big-raw", &big_raw), ("raw", raw)]);

    // corrupted every time: an integrity failure naming the key
    std::fs::remove_file(target.path().join("big-raw")).unwrap();
    let always = Rule::new(Fault::Corrupt).op("GetObject").key("p/big-raw");
    s3.inject(always.times(u32::MAX));
    let err = sync::run(&cfg, &client(&s3).await).await.unwrap_err();
    assert!(
        matches!(err, SyncError::Integrity { ref key, .. } if key == "p/big-raw"),
        "{err}"
    );
    expect_failure(&err, 8, &["integrity", "\"p/big-raw\""]);
    expect_tree(target.path(), &[("raw", raw)]);
}

/// The SDK checks the CRC S3 sends with a whole-object GET and fails the
/// body stream; that is corruption too: one refetch, then exit 8 naming the
/// key, on one line, in a few seconds (not 8 attempts of backoff).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_bytes_of_an_object_with_a_crc_fail_after_one_refetch() {
    for (algorithm, key) in [(Crc32, "p/crc32"), (Crc64Nvme, "p/crc64")] {
        let s3 = S3Server::start().await;
        let bytes = data(8, 5_000);
        s3.put_with_checksum(key, &bytes, algorithm.clone()).await;
        let (target, logs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let log = logs.path().join("termination-log");
        let env = [("S3_SEED_TERMINATION_LOG", log.to_str().unwrap())];

        // corrupted once: the refetch is fine
        s3.inject(Rule::new(Fault::Corrupt).op("GetObject").key(key));
        let out = output(command(&s3, "p/", target.path(), &env)).await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        expect_tree(target.path(), &[(&key[2..], &bytes)]);
        assert_eq!(s3.counts().op("GetObject"), 2, "{key}: one refetch");

        // corrupted every time
        std::fs::remove_file(target.path().join(&key[2..])).unwrap();
        s3.reset_counts();
        let always = Rule::new(Fault::Corrupt).op("GetObject").key(key);
        s3.inject(always.times(u32::MAX));
        let started = Instant::now();
        let out = output(command(&s3, "p/", target.path(), &env)).await;
        let took = started.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(8), "{key}: {stderr}");
        assert_eq!(s3.counts().op("GetObject"), 2, "{key}: exactly one refetch");
        assert!(took < Duration::from_secs(10), "{key}: took {took:?}");
        let line = std::fs::read_to_string(&log).unwrap();
        assert_eq!(line.lines().count(), 1, "{line}");
        let want = format!("integrity check failed for key \"{key}\": body checksum mismatch");
        assert!(line.contains(&want), "{line}");
        assert!(
            !line.contains("Error {") && !stderr.contains("Error {"),
            "{line}"
        );
        expect_tree(target.path(), &[]);
    }
}

/// A real, small filesystem: mount a 1 MiB tmpfs with `options` (root only;
/// skipped with a message where mounting is not allowed).
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(options: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Self(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0.path())
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_filesystem_fails_early_or_cleanly() {
    let Some(fs) = Tmpfs::mount("size=1m") else {
        skip("cannot mount a tmpfs here");
        return;
    };
    let s3 = S3Server::start().await;
    s3.put_with_checksum("p/a", &data(6, 1_500_000), Crc32)
        .await;
    let cfg = config(&s3, "p/", fs.0.path());
    let err = sync::run(&cfg, &client(&s3).await).await.unwrap_err();
    assert!(
        matches!(
            err,
            SyncError::DiskSpace {
                need: 1_500_000,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(s3.counts().op("GetObject"), 0, "checked before any GET");

    // lie about the free space: the write itself hits ENOSPC
    let mut cfg = cfg;
    cfg.free_space_override = Some(u64::MAX);
    let err = sync::run(&cfg, &client(&s3).await).await.unwrap_err();
    expect_failure(&err, 6, &["disk full"]);
    assert!(tree(fs.0.path()).is_empty(), "no partial file is visible");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_volume_says_so() {
    let Some(fs) = Tmpfs::mount("ro,size=1m") else {
        skip("cannot mount a read-only tmpfs here");
        return;
    };
    let s3 = S3Server::start().await;
    s3.put("p/a", b"a").await;
    for target in [fs.0.path().to_owned(), fs.0.path().join("data")] {
        let cfg = config(&s3, "p/", &target);
        let err = sync::run(&cfg, &client(&s3).await).await.unwrap_err();
        let want = format!(
            "cannot write to {}: the volume is mounted read-only",
            target.display()
        );
        expect_failure(&err, 7, &[&want, "EROFS"]);
        assert!(!err.to_string().contains("fsGroup"), "{err}");
    }
    assert_eq!(s3.counts().op("GetObject"), 0);
}

/// A folder inside the target that the sync's user cannot write (left by an
/// earlier container running as root): exit 7 naming that folder, its
/// owner and the sync's uid and gid. As root, the binary runs as 65534 and
/// the folder is root's; otherwise the folder is the user's own, mode 0555.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_the_sync_cannot_write_is_named_with_uid_and_gid() {
    let root = rustix::process::getuid().is_root();
    let s3 = S3Server::start().await;
    s3.put("p/sub/x", b"x").await;
    s3.put("p/sub/deeper/y", b"y").await;
    let volume = tempfile::tempdir().unwrap();
    let open =
        |p: &Path| std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o777)).unwrap();
    open(volume.path());
    let target = volume.path().join("data");
    let sub = target.join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o555)).unwrap();
    let (uid, gid) = if root {
        std::os::unix::fs::chown(&target, Some(65534), Some(65534)).unwrap();
        (65534, 65534)
    } else {
        let ids = (rustix::process::getuid(), rustix::process::getgid());
        (ids.0.as_raw(), ids.1.as_raw())
    };
    let log = volume.path().join("termination-log");
    let env = [("S3_SEED_TERMINATION_LOG", log.to_str().unwrap())];
    let mut cmd = command(&s3, "p/", &target, &env);
    if root {
        cmd.uid(uid).gid(gid);
    }
    let out = output(cmd).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{stderr}");
    let line = std::fs::read_to_string(&log).unwrap();
    let owner = if root {
        "uid 0 gid 0"
    } else {
        &format!("uid {uid} gid {gid}")
    };
    let want = format!(
        "cannot write to {} as uid {uid} gid {gid} (owned by {owner}, mode 0555)",
        sub.display()
    );
    assert!(line.contains(&want), "{line}");
    assert!(!line.contains("os error"), "{line}");
    open(&sub);
}
