//! Listings a sync cannot trust, and keys no XML page can carry: a store
//! that loops its continuation token or stops making progress, a key with a
//! control character (readable only through `encoding-type=url`), and a
//! `<Size>` no object can have. Each fails naming the store's fault or the
//! key, in bounded time and requests.

mod common;

use std::time::Duration;

use common::s3::{Fault, Rule, S3Server};
use common::sync::{client, config, expect_failure, expect_tree, tree};
use s3_seed::sync::{self, Summary, SyncConfig, SyncError};

/// Run a sync that must end within 10 s (a looping listing would not).
async fn run(s3: &S3Server, cfg: &SyncConfig) -> Result<Summary, SyncError> {
    let client = client(s3).await;
    tokio::time::timeout(Duration::from_secs(10), sync::run(cfg, &client))
        .await
        .expect("the sync ended within 10 s")
}

/// Answer every ListObjectsV2 with `page`.
fn every_listing(s3: &S3Server, page: Fault) {
    s3.inject(Rule::new(page).op("ListObjectsV2").times(u32::MAX));
}

/// A sync of `p/` fails with exit 4 saying the store's listing is broken
/// and `why`, after exactly `lists` ListObjectsV2 requests and no GET.
async fn expect_broken(s3: &S3Server, why: &str, lists: u64) {
    s3.reset_counts();
    let target = tempfile::tempdir().unwrap();
    let err = run(s3, &config(s3, "p/", target.path())).await.unwrap_err();
    expect_failure(&err, 4, &["the store's listing is broken", why]);
    assert!(!err.to_string().contains("Error {"), "{err}");
    assert_eq!(s3.counts().op("ListObjectsV2"), lists, "{err}");
    assert_eq!(s3.counts().op("GetObject"), 0);
    assert!(tree(target.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_looping_continuation_token_fails_the_listing() {
    let s3 = S3Server::start().await;
    every_listing(&s3, Fault::listing(&[("p/a", "1")], Some("same-token")));
    // the token came back once
    expect_broken(&s3, "\"same-token\" again", 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_without_progress_fails_the_listing() {
    let s3 = S3Server::start().await;
    let first = Fault::listing(&[("p/a", "1"), ("p/b", "1")], Some("t1"));
    s3.inject(Rule::new(first).op("ListObjectsV2"));
    // new tokens every time, but the keys go back to the start
    for n in 2..50 {
        let again = Fault::listing(&[("p/a", "1")], Some(&format!("t{n}")));
        s3.inject(Rule::new(again).op("ListObjectsV2"));
    }
    expect_broken(&s3, "no key after \"p/b\"", 2).await;

    // a truncated page that gives no token would end the listing half-way
    s3.clear_faults();
    every_listing(&s3, Fault::listing(&[("p/a", "1")], Some("")));
    expect_broken(&s3, "truncated but gives no continuation token", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_character_key_is_rejected_by_name_unless_excluded() {
    let s3 = S3Server::start().await;
    // S3 lists these as `a+b%2Bc%25d.txt` under encoding-type=url
    s3.put("p/a b+c%d.txt", b"spaces, plus and percent").await;
    s3.put("p/ok", b"ok").await;
    s3.list_extra("p/bad\u{1}key", 3);
    let target = tempfile::tempdir().unwrap();
    let mut cfg = config(&s3, "p/", target.path());
    let err = run(&s3, &cfg).await.unwrap_err();
    expect_failure(
        &err,
        5,
        &["key \"p/bad\\u{1}key\" is rejected", "control character"],
    );
    assert!(!err.to_string().contains('\u{1}'), "escaped in the message");
    assert_eq!(s3.counts().op("GetObject"), 0);

    cfg.exclude = "bad*".parse().unwrap();
    let s = run(&s3, &cfg).await.unwrap();
    assert_eq!(s.downloaded, 2);
    expect_tree(
        target.path(),
        &[("a b+c%d.txt", b"spaces, plus and percent"), ("ok", b"ok")],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_impossible_size_is_a_clear_error() {
    for (size, why) in [
        ("18446744073709551615", "impossible size"),
        ("-1", "\"p/huge\" with the impossible size -1"),
    ] {
        let s3 = S3Server::start().await;
        every_listing(&s3, Fault::listing(&[("p/huge", size)], None));
        expect_broken(&s3, why, 1).await; // not retried
    }
}
