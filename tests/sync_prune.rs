//! Prune after an interrupted run: files placed by a run killed with SIGKILL,
//! or by a run that failed half-way, are still s3-seed's, and a later run
//! prunes them once their keys are gone (the placement journal). The user's
//! own files are never touched.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::s3::{Fault, Rule, S3Server};
use common::sync::{client, command, config, data, expect_failure, expect_tree, slow_gets};
use s3_seed::sync;

/// Files directly in `dir` (0 if it does not exist yet).
fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.flatten().count())
}

/// `n` small objects under `p/new/`, and their keys.
async fn seed_new(s3: &S3Server, n: usize) -> Vec<String> {
    let mut keys = Vec::new();
    for i in 0..n {
        let key = format!("p/new/{i:03}");
        s3.put(&key, &data(i as u64, 100)).await;
        keys.push(key);
    }
    keys
}

/// The base objects, synced once, and a file of the user's in the target.
async fn synced_base(s3: &S3Server, target: &Path) -> Vec<(String, Vec<u8>)> {
    let mut base = Vec::new();
    for i in 0..5 {
        let (name, body) = (format!("base/{i}"), data(1000 + i, 50));
        s3.put(&format!("p/{name}"), &body).await;
        base.push((name, body));
    }
    let cfg = config(s3, "p/", target);
    sync::run(&cfg, &client(s3).await).await.unwrap();
    std::fs::write(target.join("mine.txt"), b"user data").unwrap();
    base.push(("mine.txt".to_owned(), b"user data".to_vec()));
    base
}

/// Delete `keys` from the source, then sync without faults.
async fn delete_and_sync(s3: &S3Server, keys: &[String], target: &Path) -> sync::Summary {
    s3.clear_faults();
    for key in keys {
        s3.delete(key).await;
    }
    let cfg = config(s3, "p/", target);
    sync::run(&cfg, &client(s3).await).await.unwrap()
}

#[track_caller]
fn expect_only(target: &Path, files: &[(String, Vec<u8>)]) {
    let want: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (n.as_str(), &b[..])).collect();
    expect_tree(target, &want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_placed_by_a_killed_run_are_pruned_later() {
    let s3 = S3Server::start().await;
    let target = tempfile::tempdir().unwrap();
    let base = synced_base(&s3, target.path()).await;
    let keys = seed_new(&s3, 400).await;
    slow_gets(&s3, Duration::from_millis(30));
    let mut child = command(&s3, "p/", target.path(), &[("S3_SEED_CONCURRENCY", "1")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let new_dir = target.path().join("new");
    let deadline = Instant::now() + Duration::from_secs(60); // generous on a loaded machine
    while count(&new_dir) < 60 {
        assert!(Instant::now() < deadline, "files did not land");
        assert!(child.try_wait().unwrap().is_none(), "finished too early");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().unwrap(); // SIGKILL: no exit path runs
    child.wait().unwrap();
    let landed = count(&new_dir);
    assert!((60..400).contains(&landed), "{landed} files landed");

    let s = delete_and_sync(&s3, &keys, target.path()).await;
    assert_eq!(s.pruned, landed as u64, "every file the killed run placed");
    assert_eq!(s.downloaded, 0, "the base files were not touched");
    expect_only(target.path(), &base);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_placed_by_a_failed_run_are_pruned_later() {
    let s3 = S3Server::start().await;
    let target = tempfile::tempdir().unwrap();
    let base = synced_base(&s3, target.path()).await;
    let mut keys = seed_new(&s3, 30).await;
    keys.push("p/zz-fails".to_owned());
    s3.put("p/zz-fails", b"never arrives").await;
    s3.inject(
        Rule::new(Fault::internal_error())
            .op("GetObject")
            .key("p/zz-fails")
            .times(u32::MAX),
    );
    let mut cfg = config(&s3, "p/", target.path());
    cfg.concurrency = 1; // 8 small objects in flight: the last key starts after most others
    cfg.retry_budget = 2;
    let err = sync::run(&cfg, &client(&s3).await).await.unwrap_err();
    expect_failure(&err, 9, &["p/zz-fails"]);
    let landed = count(&target.path().join("new"));
    assert!(landed > 0, "the failed run installed files first");

    let s = delete_and_sync(&s3, &keys, target.path()).await;
    // Installs in flight when the run failed may still land after it returned
    // (they keep the target lock until they are done), so at least `landed`.
    assert!(s.pruned >= landed as u64, "pruned {} of {landed}", s.pruned);
    expect_only(target.path(), &base);
}
