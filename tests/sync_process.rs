//! The `s3-seed sync` binary as the init container runs it: configured by
//! `S3_SEED_*` env vars, killed with SIGKILL mid-download and rerun, run as an
//! unprivileged user, and printing its JSON summary, progress and
//! termination-log line.

mod common;

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::types::ChecksumAlgorithm::Crc32;
use common::s3::{S3Server, SECRET_KEY};
use common::sync::{
    PART_SIZE, client, command, config, data, digest, output, recorded_ranges, run_binary, skip,
    slow_gets, tree,
};
use s3_seed::sync;

/// Seed a 4 MiB `p/big` and a small object, run the binary with slow GETs
/// and kill it with SIGKILL once its resume record lists `parts` parts.
/// Returns the big object's bytes and the parts recorded at the kill.
async fn killed_after_parts(s3: &S3Server, target: &Path, parts: usize) -> (Vec<u8>, usize) {
    let big = data(7, 4 * 1024 * 1024);
    s3.put_with_checksum("p/big", &big, Crc32).await;
    s3.put_with_checksum("p/small", b"small", Crc32).await;
    slow_gets(s3, Duration::from_millis(250));
    let env = [
        ("S3_SEED_PART_SIZE", "256KiB"),
        ("S3_SEED_CONCURRENCY", "2"),
    ];
    let mut child = command(s3, "p/", target, &env)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60); // generous on a loaded machine
    while recorded_ranges(target) < parts {
        assert!(Instant::now() < deadline, "no resume record appeared");
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before it could be killed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(!target.join("big").exists(), "no partial file is visible");
    (big, recorded_ranges(target))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_download_then_rerun_resumes() {
    let s3 = S3Server::start().await;
    let size = 4 * 1024 * 1024;
    let target = tempfile::tempdir().unwrap();
    let (big, done) = killed_after_parts(&s3, target.path(), 2).await;

    s3.clear_faults();
    s3.settle().await;
    s3.reset_counts();
    let mut cfg = config(&s3, "p/", target.path());
    cfg.concurrency = 2;
    let s = sync::run(&cfg, &client(&s3).await).await.unwrap();
    let files = tree(target.path());
    assert_eq!(
        files["big"],
        digest(&big),
        "the resumed file is byte-identical"
    );
    assert_eq!(files["small"], digest(b"small"));
    let fetched = s3.counts().get_bytes;
    let left = size as u64 - done as u64 * PART_SIZE;
    assert!(
        fetched <= left + 5,
        "rerun fetched {fetched} bytes although {done} parts were on disk"
    );
    assert_eq!(
        s.verified, s.downloaded,
        "resumed parts still verify (combined CRC)"
    );
    let leftovers = std::fs::read_dir(target.path().join(".s3-seed/tmp"))
        .unwrap()
        .count();
    assert_eq!(leftovers, 0, "temporary files are cleaned after success");
}

/// A part recorded as done whose bytes on disk were changed after the kill
/// (by a second writer, a bad disk, anything) is fetched again, not trusted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumed_parts_are_read_back_not_trusted() {
    let s3 = S3Server::start().await;
    let target = tempfile::tempdir().unwrap();
    let (big, done) = killed_after_parts(&s3, target.path(), 2).await;
    let tmp = target.path().join(".s3-seed/tmp");
    let names: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    let record = names
        .iter()
        .find(|p| p.to_string_lossy().ends_with(".part.json"));
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(record.unwrap()).unwrap()).unwrap();
    let part: u64 = record["done"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let file = names
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "part"))
        .unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(file).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &[0; 4096], part * PART_SIZE + 100).unwrap();

    s3.clear_faults();
    s3.settle().await;
    s3.reset_counts();
    let mut cfg = config(&s3, "p/", target.path());
    cfg.concurrency = 2;
    let s = sync::run(&cfg, &client(&s3).await).await.unwrap();
    assert_eq!(
        tree(target.path())["big"],
        digest(&big),
        "the zeroed part was fetched again"
    );
    assert_eq!(s.verified, s.downloaded);
    let fetched = s3.counts().get_bytes;
    let left = big.len() as u64 - (done as u64 - 1) * PART_SIZE;
    assert!(
        fetched <= left + 5,
        "only the tampered part was fetched again ({fetched} bytes)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_summary_and_progress_lines() {
    let s3 = S3Server::start().await;
    s3.put_with_checksum("p/big", &data(8, 2 * 1024 * 1024), Crc32)
        .await;
    slow_gets(&s3, Duration::from_millis(200));
    let target = tempfile::tempdir().unwrap();
    let env = [
        ("S3_SEED_PART_SIZE", "256KiB"),
        ("S3_SEED_CONCURRENCY", "1"),
        ("S3_SEED_SUMMARY_FORMAT", "json"),
        ("S3_SEED_PROGRESS_INTERVAL_SECS", "1"),
        ("S3_SEED_LOG_FORMAT", "json"),
    ];
    let out = run_binary(&s3, "p/", target.path(), &env).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "one summary line: {stdout}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    for (field, want) in [
        ("listed", 1),
        ("downloaded", 1),
        ("skipped", 0),
        ("pruned", 0),
        ("verified", 1),
    ] {
        assert_eq!(v[field], want, "{field} in {stdout}");
    }
    assert_eq!(v["bytes"], 2 * 1024 * 1024);
    assert!(v["seconds"].as_f64().unwrap() > 1.0 && v["mb_per_s"].as_f64().unwrap() > 0.0);
    let progress: serde_json::Value = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["message"] == "progress")
        .unwrap_or_else(|| panic!("no progress line in {stderr}"));
    assert_eq!(progress["total_bytes"], 2 * 1024 * 1024, "{progress}");
    assert!(progress["bytes"].as_u64().unwrap() > 0, "{progress}");
    assert!(progress["mb_per_s"].as_f64().unwrap() > 0.0, "{progress}");
    assert!(progress["eta_s"].as_u64().is_some(), "{progress}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_exit_code_and_termination_log() {
    let s3 = S3Server::start().await;
    s3.list_extra("p/../../etc/passwd", 4);
    let target = tempfile::tempdir().unwrap();
    let log = target.path().join("termination-log");
    let env = [("S3_SEED_TERMINATION_LOG", log.to_str().unwrap())];
    let out = run_binary(&s3, "p/", target.path(), &env).await;
    assert_eq!(out.status.code(), Some(5));
    let line = std::fs::read_to_string(&log).unwrap();
    assert_eq!(line.lines().count(), 1);
    assert!(
        line.contains("key \"p/../../etc/passwd\" is rejected"),
        "{line}"
    );
    assert!(!line.contains(SECRET_KEY));
    assert_eq!(s3.counts().op("GetObject"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unwritable_target_names_uid_gid_and_fsgroup() {
    if rustix::process::getuid().as_raw() != 0 {
        skip("needs root to run the binary as another user");
        return;
    }
    let s3 = S3Server::start().await;
    let volume = tempfile::tempdir().unwrap(); // root-owned, 0700
    let logs = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        logs.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let log = logs.path().join("termination-log");
    let target = volume.path().join("data");
    let mut cmd = command(
        &s3,
        "p/",
        &target,
        &[("S3_SEED_TERMINATION_LOG", log.to_str().unwrap())],
    );
    cmd.uid(65534).gid(65534);
    let out = output(cmd).await;
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = std::fs::read_to_string(&log).unwrap();
    let want = format!(
        "cannot write to {} as uid 65534 gid 65534",
        target.display()
    );
    assert!(line.contains(&want), "{line}");
    assert!(line.contains("fsGroup"), "{line}");
    assert_eq!(s3.counts().total(), 0, "failed before talking to S3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_endpoint_trusted_through_aws_ca_bundle() {
    let s3 = S3Server::start_tls().await;
    s3.put("p/a", b"over tls").await; // the harness's own client trusts the certificate
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, s3.ca_pem().expect("an HTTPS server")).unwrap();
    let target = dir.path().join("data");

    let out = run_binary(&s3, "p/", &target, &[("S3_SEED_RETRY_BUDGET", "1")]).await;
    let stderr = |out: &Output| String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "an unknown CA must not be trusted: {}",
        stderr(&out)
    );
    assert!(!target.join("a").exists());
    assert_eq!(s3.counts().total(), 0, "no request got past the handshake");

    let bundle = [("AWS_CA_BUNDLE", ca.to_str().unwrap())];
    let out = run_binary(&s3, "p/", &target, &bundle).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(target.join("a")).unwrap(), b"over tls");

    std::fs::write(&ca, "not a certificate").unwrap();
    let out = run_binary(&s3, "p/", &target, &bundle).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
}
