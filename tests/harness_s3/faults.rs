//! Faults as the client sees them: error statuses and codes, rule matching
//! and retries, cut, stalled and corrupted bodies, latency, If-Match (GET and
//! HEAD) and mid-download replacement.

use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::StalledStreamProtectionConfig;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::error::ProvideErrorMetadata;
use bytes::Bytes;

use super::common::s3::{Fault, Rule, S3Server};
use super::{body, get, head_object, pattern, status, strict};
#[tokio::test]
async fn error_faults_reach_the_client_once_each() {
    let s3 = S3Server::start().await;
    s3.put("k", b"payload").await;
    let client = strict(&s3);
    let table = [
        (Fault::slow_down(), 503, "SlowDown"),
        (Fault::internal_error(), 500, "InternalError"),
        (Fault::unavailable(), 503, "ServiceUnavailable"),
        (Fault::too_many_requests(), 429, "TooManyRequests"),
    ];
    for (fault, want_status, want_code) in table {
        s3.inject(Rule::new(fault).op("GetObject").key("k"));
        let err = client
            .get_object()
            .bucket(s3.bucket())
            .key("k")
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            (status(&err), err.code()),
            (Some(want_status), Some(want_code))
        );
        assert_eq!(
            body(get(&client, "k", None).await).await.as_ref(),
            b"payload",
            "fires once"
        );
    }
    assert_eq!(s3.counts().faults, 4);
    assert_eq!(s3.faults_pending(), 0);
}

#[tokio::test]
async fn rules_match_by_op_key_and_range_and_retries_are_visible() {
    let s3 = S3Server::start().await;
    s3.put("x", &pattern(50)).await;
    s3.put("y", &pattern(50)).await;
    s3.inject(
        Rule::new(Fault::internal_error())
            .op("GetObject")
            .key("x")
            .ranged(true)
            .times(2),
    );
    let strict = strict(&s3);
    head_object(&strict, "x").await; // other op: no fault
    get(&strict, "x", None).await; // not ranged: no fault
    get(&strict, "y", Some("bytes=0-1")).await; // other key: no fault
    assert_eq!(s3.faults_pending(), 2);

    let retry = RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(5));
    let retrying = Client::from_conf(s3.config().retry_config(retry).build());
    s3.reset_counts();
    let out = get(&retrying, "x", Some("bytes=0-9")).await;
    assert_eq!(body(out).await, pattern(50)[..10]);
    let statuses: Vec<u16> = s3.requests().iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [500, 500, 206],
        "two injected failures, then the retry succeeds"
    );
}

#[tokio::test]
async fn cut_body_fails_the_read_after_k_bytes() {
    let s3 = S3Server::start().await;
    s3.put("big", &pattern(64 * 1024)).await;
    s3.inject(Rule::new(Fault::CutAfter(1000)).op("GetObject"));
    let out = get(&strict(&s3), "big", None).await;
    assert_eq!(
        out.content_length(),
        Some(64 * 1024),
        "headers arrive intact"
    );
    let err = out.body.collect().await.expect_err("body is cut");
    assert!(format!("{err:?}").contains("IncompleteBody"), "{err:?}");
    assert_eq!(s3.counts().get_bytes, 1000);
    assert_eq!(
        body(get(&strict(&s3), "big", None).await).await,
        pattern(64 * 1024),
        "next GET is whole"
    );
}

#[tokio::test]
async fn stall_trips_the_client_stall_timeout() {
    let s3 = S3Server::start().await;
    s3.put("big", &pattern(64 * 1024)).await;
    s3.inject(Rule::new(Fault::StallAfter(1024, Duration::from_secs(6))).op("GetObject"));
    let protection = StalledStreamProtectionConfig::enabled()
        .grace_period(Duration::from_secs(1))
        .build();
    let client = Client::from_conf(s3.config().stalled_stream_protection(protection).build());
    let started = Instant::now();
    let err = get(&client, "big", None)
        .await
        .body
        .collect()
        .await
        .expect_err("stalled body");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "client gave up before the stall ended"
    );
    assert!(
        format!("{err:?}").contains("ThroughputBelowMinimum"),
        "{err:?}"
    );
    assert_eq!(s3.counts().get_bytes, 1024);
}

#[tokio::test]
async fn short_stall_and_latency_delay_but_deliver_everything() {
    let s3 = S3Server::start().await;
    s3.put("big", &pattern(64 * 1024)).await;
    s3.inject(Rule::new(Fault::StallAfter(1024, Duration::from_millis(400))).op("GetObject"));
    s3.inject(Rule::new(Fault::Latency(Duration::from_millis(300))).op("HeadObject"));
    let client = strict(&s3);
    let started = Instant::now();
    assert_eq!(
        body(get(&client, "big", None).await).await,
        pattern(64 * 1024)
    );
    assert!(started.elapsed() >= Duration::from_millis(400));
    let started = Instant::now();
    head_object(&client, "big").await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(s3.counts().faults, 2);
}

#[tokio::test]
async fn if_match_mismatch_gives_412_ranged_or_not() {
    let s3 = S3Server::start().await;
    let old = s3.put("obj", b"version one").await;
    let new = s3.put("obj", b"version two!").await;
    assert_ne!(old, new);
    let client = strict(&s3);
    for range in [None, Some("bytes=0-3")] {
        let req = client
            .get_object()
            .bucket(s3.bucket())
            .key("obj")
            .set_range(range.map(str::to_owned));
        let err = req.clone().if_match(&old).send().await.unwrap_err();
        assert_eq!(
            (status(&err), err.code()),
            (Some(412), Some("PreconditionFailed"))
        );
        req.if_match(&new)
            .send()
            .await
            .expect("current etag matches");
    }
    let head = client.head_object().bucket(s3.bucket()).key("obj");
    let err = head.clone().if_match(&old).send().await.unwrap_err();
    assert_eq!(status(&err), Some(412), "HEAD too");
    let out = head
        .if_match(&new)
        .send()
        .await
        .expect("current etag matches");
    assert_eq!(out.e_tag(), Some(new.as_str()));
}

#[tokio::test]
async fn corrupt_flips_the_first_body_byte_once() {
    let s3 = S3Server::start().await;
    let data = pattern(5000);
    s3.put("k", &data).await;
    s3.inject(Rule::new(Fault::Corrupt).op("GetObject"));
    let client = strict(&s3);
    let mut want = data.clone();
    want[0] ^= 0xff;
    assert_eq!(body(get(&client, "k", None).await).await, want);
    assert_eq!(
        body(get(&client, "k", None).await).await,
        data,
        "fires once"
    );
    let counts = s3.counts();
    assert_eq!((counts.get_bytes, counts.faults), (10_000, 1));
}

#[tokio::test]
async fn replace_after_first_ranged_get_changes_the_etag_mid_download() {
    let s3 = S3Server::start().await;
    let v1 = pattern(4096);
    let etag = s3.put("obj", &v1).await;
    s3.inject(
        Rule::new(Fault::ReplaceAfter(Bytes::from_static(b"replaced")))
            .op("GetObject")
            .ranged(true),
    );
    let client = strict(&s3);
    let first = client
        .get_object()
        .bucket(s3.bucket())
        .key("obj")
        .range("bytes=0-1023")
        .if_match(&etag);
    assert_eq!(
        body(first.send().await.unwrap()).await,
        v1[..1024],
        "in-flight response keeps old bytes"
    );
    let second = client
        .get_object()
        .bucket(s3.bucket())
        .key("obj")
        .range("bytes=1024-2047")
        .if_match(&etag);
    assert_eq!(status(&second.send().await.unwrap_err()), Some(412));
    assert_eq!(
        body(get(&client, "obj", None).await).await.as_ref(),
        b"replaced"
    );
    let log = s3.requests();
    assert_eq!(
        log.iter().map(|r| r.status).collect::<Vec<_>>(),
        [206, 412, 200]
    );
    assert!(
        log[..2]
            .iter()
            .all(|r| r.if_match.as_deref() == Some(etag.as_str()))
    );
}
