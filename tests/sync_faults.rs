//! Failure paths of `s3-seed sync`: objects replaced mid-download (412),
//! injected 5xx/throttling/cut/stalled bodies, exhausted retries, corrupted
//! bytes, and a real full filesystem.

mod sync_harness;

use std::time::{Duration, Instant};

use s3_seed::sync::{self, SyncError};
use s3s::S3ErrorCode;
use sync_harness::{Fault, Server, config, data, tree};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_replaced_during_ranged_download_restarts_on_412() {
    let s3 = Server::start().await;
    let v1 = data(1, 2 * 1024 * 1024);
    let v2 = data(2, 2 * 1024 * 1024 + 5000);
    s3.put("p/big", &v1).await;
    *s3.shared.swap.lock().unwrap() = Some(("p/big".into(), v2.clone()));
    let target = tempfile::tempdir().unwrap();
    let mut cfg = config("p/", target.path());
    cfg.concurrency = 2;
    let s = sync::run(&cfg, &s3.client()).await.unwrap();
    assert_eq!(s.downloaded, 1);
    assert!(
        tree(target.path())["big"] == v2,
        "the new version, not a mix of both"
    );
    let (_, _, heads) = s3.shared.counts();
    assert!(
        heads >= 2,
        "the object was re-examined after the 412 (heads: {heads})"
    );

    // the state records the new version: a warm run fetches nothing
    s3.shared.reset_counts();
    let s = sync::run(&cfg, &s3.client()).await.unwrap();
    assert_eq!((s.skipped, s3.shared.counts()), (1, (1, 0, 0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_faults_are_retried() {
    let s3 = Server::start().await;
    let big = data(3, 1024 * 1024);
    let small = data(4, 100_000);
    s3.put("p/big", &big).await;
    s3.put("p/small", &small).await;
    *s3.shared.faults.lock().unwrap() = [
        Fault::Error(S3ErrorCode::SlowDown),
        Fault::Error(S3ErrorCode::InternalError),
        Fault::CutAfter(10_000),
        Fault::StallAfter(5_000),
        Fault::Error(S3ErrorCode::ServiceUnavailable),
    ]
    .into();
    let target = tempfile::tempdir().unwrap();
    let mut cfg = config("p/", target.path());
    cfg.stall_timeout = Duration::from_millis(500);
    let started = Instant::now();
    let s = sync::run(&cfg, &s3.client()).await.unwrap();
    let files = tree(target.path());
    assert!(files["big"] == big && files["small"] == small);
    assert_eq!(s.verified, 2);
    assert!(
        s3.shared.faults.lock().unwrap().is_empty(),
        "every fault was hit"
    );
    assert_eq!(
        s3.shared.counts().1,
        5 + 5,
        "4 ranges + 1 small GET, plus one retry per fault"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_source_fails_within_the_retry_budget() {
    let s3 = Server::start().await;
    s3.put("p/a", b"x").await;
    s3.shared
        .always
        .lock()
        .unwrap()
        .insert("p/a".into(), Fault::Error(S3ErrorCode::InternalError));
    let target = tempfile::tempdir().unwrap();
    let mut cfg = config("p/", target.path());
    cfg.retry_budget = 3;
    let err = sync::run(&cfg, &s3.client()).await.unwrap_err();
    assert_eq!(err.exit_code(), 9, "{err}");
    let msg = err.to_string();
    assert!(msg.contains("\"p/a\"") && msg.contains("budget"), "{msg}");
    assert_eq!(s3.shared.counts().1, 4, "one attempt plus three retries");
    assert!(tree(target.path()).is_empty(), "no partial file is visible");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_bytes_are_caught_by_md5_and_refetched_once() {
    let s3 = Server::start().await;
    s3.put_raw("p/raw", b"bytes without a checksum: only the md5 etag");
    s3.put_raw("p/big-raw", &data(5, 600_000)); // ranged, md5 read back
    let target = tempfile::tempdir().unwrap();
    let cfg = config("p/", target.path());
    // corrupted once: refetched and fine
    *s3.shared.faults.lock().unwrap() = [Fault::Corrupt].into();
    let s = sync::run(&cfg, &s3.client()).await.unwrap();
    assert_eq!(s.verified, 2);
    assert_eq!(
        tree(target.path())["raw"],
        b"bytes without a checksum: only the md5 etag"
    );

    // corrupted every time: an integrity failure naming the key
    std::fs::remove_file(target.path().join("big-raw")).unwrap();
    s3.shared
        .always
        .lock()
        .unwrap()
        .insert("p/big-raw".into(), Fault::Corrupt);
    let err = sync::run(&cfg, &s3.client()).await.unwrap_err();
    assert!(
        matches!(err, SyncError::Integrity { ref key, .. } if key == "p/big-raw"),
        "{err}"
    );
    assert_eq!(err.exit_code(), 8);
    assert!(!target.path().join("big-raw").exists());
}

/// A real, small filesystem: mount a 1 MiB tmpfs (root only; skipped with a
/// message where mounting is not allowed).
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount() -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
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
    let Some(fs) = Tmpfs::mount() else {
        eprintln!("SKIPPED: cannot mount a tmpfs here");
        return;
    };
    let s3 = Server::start().await;
    s3.put("p/a", &data(6, 1_500_000)).await;
    let cfg = config("p/", fs.0.path());
    s3.shared.reset_counts();
    let err = sync::run(&cfg, &s3.client()).await.unwrap_err();
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
    assert_eq!(s3.shared.counts().1, 0, "checked before any GET");

    // lie about the free space: the write itself hits ENOSPC
    let mut cfg = cfg;
    cfg.free_space_override = Some(u64::MAX);
    let err = sync::run(&cfg, &s3.client()).await.unwrap_err();
    assert_eq!(err.exit_code(), 6, "{err}");
    assert!(err.to_string().contains("disk full"), "{err}");
    assert!(tree(fs.0.path()).is_empty(), "no partial file is visible");
}
