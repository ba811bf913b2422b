//! `s3-seed sync` against an in-process S3 (s3s-fs): what ends up on disk and
//! how many requests the server saw.

mod sync_harness;

use std::os::unix::fs::symlink;

use s3_seed::sync::{self, SyncError};
use sync_harness::{Server, config, data, tree};

fn expect_tree(dir: &std::path::Path, want: &[(&str, &[u8])]) {
    let got = tree(dir);
    let names: Vec<&str> = got.keys().map(String::as_str).collect();
    let want_names: Vec<&str> = want.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, want_names, "files in {}", dir.display());
    for (name, bytes) in want {
        assert!(got[*name] == *bytes, "content of {name} differs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_then_warm_sync() {
    let s3 = Server::start().await;
    let big = data(1, 3 * 1024 * 1024 + 123); // 13 ranges of 256 KiB
    let small: Vec<Vec<u8>> = (0..5).map(|i| data(10 + i, 8 * 1024)).collect();
    s3.put("models/big.bin", &big).await;
    for (i, d) in small.iter().enumerate() {
        s3.put(&format!("models/cfg/{i}.json"), d).await;
    }
    s3.put("models/empty", b"").await;
    s3.put_raw("models/raw.txt", b"no checksum, md5 etag only");
    s3.put("other/x", b"not in the prefix").await;
    let target = tempfile::tempdir().unwrap();
    let cfg = config("models/", target.path());
    s3.shared.reset_counts();

    let cold = sync::run(&cfg, &s3.client()).await.unwrap();
    let mut want: Vec<(String, Vec<u8>)> = vec![("big.bin".into(), big.clone())];
    want.extend(
        small
            .iter()
            .enumerate()
            .map(|(i, d)| (format!("cfg/{i}.json"), d.clone())),
    );
    want.push(("empty".into(), vec![]));
    want.push(("raw.txt".into(), b"no checksum, md5 etag only".to_vec()));
    want.sort();
    let want_ref: Vec<(&str, &[u8])> = want
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    expect_tree(target.path(), &want_ref);
    assert_eq!((cold.listed, cold.downloaded, cold.skipped), (8, 8, 0));
    assert_eq!((cold.verified, cold.unverified), (8, 0), "{cold:?}");
    let (lists, gets, heads) = s3.shared.counts();
    assert_eq!(
        (lists, gets, heads),
        (1, 7 + 13, 1),
        "1 LIST, a GET per small object and per range, a HEAD per large object"
    );

    s3.shared.reset_counts();
    let warm = sync::run(&cfg, &s3.client()).await.unwrap();
    assert_eq!(
        s3.shared.counts(),
        (1, 0, 0),
        "a warm sync is one LIST, no GET, no HEAD"
    );
    assert_eq!((warm.skipped, warm.downloaded, warm.bytes), (8, 0, 0));
    expect_tree(target.path(), &want_ref);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_object_of_same_size_is_downloaded_again() {
    let s3 = Server::start().await;
    s3.put("p/a", b"version-1").await;
    s3.put("p/b", b"unchanged").await;
    let target = tempfile::tempdir().unwrap();
    let cfg = config("p/", target.path());
    sync::run(&cfg, &s3.client()).await.unwrap();
    s3.put("p/a", b"version-2").await;
    s3.shared.reset_counts();
    let s = sync::run(&cfg, &s3.client()).await.unwrap();
    assert_eq!((s.downloaded, s.skipped), (1, 1));
    assert_eq!(s3.shared.counts(), (1, 1, 0));
    expect_tree(target.path(), &[("a", b"version-2"), ("b", b"unchanged")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locally_modified_file_is_restored() {
    let s3 = Server::start().await;
    s3.put("p/a", b"from s3").await;
    let target = tempfile::tempdir().unwrap();
    let cfg = config("p/", target.path());
    sync::run(&cfg, &s3.client()).await.unwrap();
    std::fs::write(target.path().join("a"), b"tampered").unwrap();
    let s = sync::run(&cfg, &s3.client()).await.unwrap();
    assert_eq!(s.downloaded, 1);
    expect_tree(target.path(), &[("a", b"from s3")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_objects_are_pruned_and_users_files_kept() {
    let s3 = Server::start().await;
    s3.put("p/keep", b"k").await;
    s3.put("p/d/gone", b"g").await;
    s3.put("p/gone-too", b"g").await;
    let target = tempfile::tempdir().unwrap();
    let mut cfg = config("p/", target.path());
    sync::run(&cfg, &s3.client()).await.unwrap();
    std::fs::write(target.path().join("mine.txt"), b"user data").unwrap();
    std::fs::write(target.path().join("d/mine-too"), b"user data").unwrap();
    s3.delete("p/d/gone");
    s3.delete("p/gone-too");

    cfg.prune = false;
    let s = sync::run(&cfg, &s3.client()).await.unwrap();
    assert_eq!(s.pruned, 0);
    assert_eq!(tree(target.path()).len(), 5, "--no-prune keeps everything");

    cfg.prune = true;
    let s = sync::run(&cfg, &s3.client()).await.unwrap();
    assert_eq!(
        s.pruned, 2,
        "entries kept by --no-prune are still s3-seed's to prune"
    );
    expect_tree(
        target.path(),
        &[
            ("d/mine-too", b"user data"),
            ("keep", b"k"),
            ("mine.txt", b"user data"),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn include_and_exclude_globs() {
    let s3 = Server::start().await;
    for key in ["p/a.bin", "p/a.txt", "p/sub/b.bin", "p/sub/deep/c.bin"] {
        s3.put(key, key.as_bytes()).await;
    }
    let target = tempfile::tempdir().unwrap();
    let mut cfg = config("p/", target.path());
    cfg.include = "**/*.bin".parse().unwrap();
    cfg.exclude = "sub/deep/**".parse().unwrap();
    let s = sync::run(&cfg, &s3.client()).await.unwrap();
    assert_eq!((s.listed, s.downloaded), (4, 2));
    expect_tree(
        target.path(),
        &[("a.bin", b"p/a.bin"), ("sub/b.bin", b"p/sub/b.bin")],
    );
    assert_eq!(s3.shared.counts().1, 2, "excluded keys are never fetched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_object_source() {
    let s3 = Server::start().await;
    s3.put("models/big.bin", b"weights").await;
    s3.put("models/big.bin.sha256", b"sum").await;
    let target = tempfile::tempdir().unwrap();
    let cfg = config("models/big.bin", target.path());
    let s = sync::run(&cfg, &s3.client()).await.unwrap();
    assert_eq!(s.downloaded, 1);
    expect_tree(target.path(), &[("big.bin", b"weights")]);

    s3.shared
        .extra_keys
        .lock()
        .unwrap()
        .push(("models/big.bin/oops".into(), 1));
    let err = sync::run(&cfg, &s3.client()).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("\"models/big.bin\" is both a file and a folder prefix"),
        "{err}"
    );
    assert_eq!(err.exit_code(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_keys_fail_the_run_before_any_download() {
    let s3 = Server::start().await;
    s3.put("p/fine", b"ok").await;
    let target = tempfile::tempdir().unwrap();
    let cfg = config("p/", target.path());
    for key in [
        "p/../escape",
        "p/a//b",
        "p/./a",
        "p/a\\b",
        "p/.s3-seed/state.json",
    ] {
        *s3.shared.extra_keys.lock().unwrap() = vec![(key.to_owned(), 3)];
        s3.shared.reset_counts();
        let err = sync::run(&cfg, &s3.client()).await.unwrap_err();
        assert!(matches!(err, SyncError::HostileKey { .. }), "{key}: {err}");
        assert!(err.to_string().contains(&format!("{key:?}")), "{err}");
        assert_eq!(err.exit_code(), 5);
        assert_eq!(s3.shared.counts().1, 0, "no GET once a key is rejected");
    }
    assert!(!target.path().parent().unwrap().join("escape").exists());
    assert!(tree(target.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_and_folder_conflict_is_a_clear_error() {
    let s3 = Server::start().await;
    s3.put("p/x", b"file").await;
    // s3s-fs stores keys as files, so the child key only exists in the listing
    s3.shared
        .extra_keys
        .lock()
        .unwrap()
        .push(("p/x/y".into(), 5));
    let target = tempfile::tempdir().unwrap();
    let err = sync::run(&config("p/", target.path()), &s3.client())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "key \"p/x\" is both a file and a folder prefix (of \"p/x/y\")"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_symlinks_are_never_followed() {
    let s3 = Server::start().await;
    s3.put("p/secret", b"from s3").await;
    s3.put("p/dir/file", b"from s3").await;
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("victim"), b"precious").unwrap();
    let target = tempfile::tempdir().unwrap();
    let cfg = config("p/", target.path());

    symlink(outside.path().join("victim"), target.path().join("secret")).unwrap();
    let err = sync::run(&cfg, &s3.client()).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("secret is a symlink where a file must go"),
        "{err}"
    );
    assert_eq!(err.exit_code(), 5);

    std::fs::remove_file(target.path().join("secret")).unwrap();
    symlink(outside.path(), target.path().join("dir")).unwrap();
    let err = sync::run(&cfg, &s3.client()).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("dir is a symlink where a folder must be"),
        "{err}"
    );

    assert_eq!(
        std::fs::read(outside.path().join("victim")).unwrap(),
        b"precious"
    );
    assert_eq!(
        std::fs::read_dir(outside.path()).unwrap().count(),
        1,
        "nothing written outside"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_enough_disk_space_fails_before_any_get() {
    let s3 = Server::start().await;
    s3.put("p/a", &data(1, 300_000)).await;
    let target = tempfile::tempdir().unwrap();
    let mut cfg = config("p/", target.path());
    cfg.free_space_override = Some(1000);
    s3.shared.reset_counts();
    let err = sync::run(&cfg, &s3.client()).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("need 300000 bytes") && msg.contains("1000 bytes free"),
        "{msg}"
    );
    assert!(msg.contains(&target.path().display().to_string()), "{msg}");
    assert_eq!(err.exit_code(), 6);
    assert_eq!(s3.shared.counts(), (1, 0, 0));
}
