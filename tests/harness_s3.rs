//! Proves the in-process S3 harness (`tests/common/s3/mod.rs`) with the plain
//! aws-sdk-s3 client: the server counts exactly what was sent, every fault
//! kind reaches the client as that kind of failure, the HTTPS mode is trusted
//! only through its certificate, and the s3s-fs behaviour documented at the
//! top of `s3.rs` (checksums, ETags, key mapping) holds.

mod common;
#[path = "harness_s3/faults.rs"]
mod faults;
#[path = "harness_s3/store.rs"]
mod store;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use bytes::Bytes;
use common::s3::S3Server;

/// A client that shows every failure as it happened: no retries.
fn strict(s3: &S3Server) -> Client {
    Client::from_conf(s3.config().retry_config(RetryConfig::disabled()).build())
}

/// HTTP status of a failed call, as the server sent it.
fn status<E>(err: &SdkError<E, HttpResponse>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

/// GET `key` (optionally a range) from the harness bucket; panics on failure.
async fn get(client: &Client, key: &str, range: Option<&str>) -> GetObjectOutput {
    let req = client
        .get_object()
        .bucket(common::s3::BUCKET)
        .key(key)
        .set_range(range.map(str::to_owned));
    req.send()
        .await
        .unwrap_or_else(|e| panic!("get {key} {range:?}: {e:?}"))
}

/// HEAD `key` in the harness bucket; panics on failure.
async fn head_object(client: &Client, key: &str) -> HeadObjectOutput {
    let req = client.head_object().bucket(common::s3::BUCKET).key(key);
    req.send()
        .await
        .unwrap_or_else(|e| panic!("head {key}: {e:?}"))
}

/// The keys a ListObjectsV2 of the bucket (under `prefix`) returns, in order.
async fn list_keys(client: &Client, prefix: &str) -> Vec<String> {
    let req = client
        .list_objects_v2()
        .bucket(common::s3::BUCKET)
        .prefix(prefix);
    let out = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("list {prefix}: {e:?}"));
    out.contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect()
}

/// Read a whole GET body; panics if it fails.
async fn body(out: GetObjectOutput) -> Bytes {
    out.body
        .collect()
        .await
        .expect("read the whole body")
        .into_bytes()
}

/// Deterministic, non-repeating-per-byte test content.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[tokio::test]
async fn counts_each_operation_and_get_bytes_exactly() {
    let s3 = S3Server::start().await;
    let client = s3.client();
    s3.put("a.bin", &pattern(10)).await;
    s3.put("b.bin", &pattern(20)).await;
    assert_eq!(s3.counts().total(), 0, "seeding traffic is not counted");

    client
        .list_objects_v2()
        .bucket(s3.bucket())
        .send()
        .await
        .unwrap();
    head_object(&client, "a.bin").await;
    head_object(&client, "b.bin").await;
    assert_eq!(body(get(&client, "a.bin", None).await).await.len(), 10);
    assert_eq!(
        body(get(&client, "b.bin", Some("bytes=2-5")).await)
            .await
            .len(),
        4
    );
    client
        .put_object()
        .bucket(s3.bucket())
        .key("c")
        .body(vec![1, 2].into())
        .send()
        .await
        .unwrap();

    let counts = s3.counts();
    let expected = [
        ("GetObject", 2),
        ("HeadObject", 2),
        ("ListObjectsV2", 1),
        ("PutObject", 1),
    ];
    assert_eq!(
        counts.ops,
        expected.map(|(op, n)| (op.to_owned(), n)).into(),
        "{counts:?}"
    );
    assert_eq!(
        (counts.get_bytes, counts.ranged_gets, counts.faults),
        (14, 1, 0)
    );
    let log = s3.requests();
    assert_eq!(log[4].range.as_deref(), Some("bytes=2-5"));
    assert_eq!((log[4].key.as_deref(), log[4].status), (Some("b.bin"), 206));

    s3.reset_counts();
    assert_eq!(s3.counts(), common::s3::Counts::default());
    assert!(s3.requests().is_empty());
}

#[tokio::test]
async fn bad_signature_is_denied_and_counted_unclassified() {
    let s3 = S3Server::start().await;
    let creds =
        aws_sdk_s3::config::Credentials::new(common::s3::ACCESS_KEY, "wrong", None, None, "t");
    let client = Client::from_conf(s3.config().credentials_provider(creds).build());
    let err = client
        .list_objects_v2()
        .bucket(s3.bucket())
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), Some(403));
    assert_eq!(s3.counts().op("Unclassified"), 1);
}

#[tokio::test]
async fn dropping_the_server_closes_its_port() {
    let s3 = S3Server::start().await;
    let addr = s3.endpoint().trim_start_matches("http://").to_owned();
    tokio::net::TcpStream::connect(&addr)
        .await
        .expect("server is listening");
    drop(s3);
    tokio::task::yield_now().await;
    assert!(
        tokio::net::TcpStream::connect(&addr).await.is_err(),
        "port closed after drop"
    );
}

#[tokio::test]
async fn https_server_is_reached_only_through_its_certificate() {
    assert_eq!(
        S3Server::start().await.ca_pem(),
        None,
        "plain HTTP by default"
    );
    let s3 = S3Server::start_tls().await;
    assert!(
        s3.endpoint().starts_with("https://127.0.0.1:"),
        "{}",
        s3.endpoint()
    );
    let pem = s3.ca_pem().expect("an HTTPS server has a certificate");
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    s3.put("k", b"over tls").await;
    assert_eq!(
        body(get(&strict(&s3), "k", None).await).await.as_ref(),
        b"over tls",
        "the harness client trusts the certificate"
    );

    let default_roots = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .build_https();
    let conf = s3.config().http_client(default_roots);
    let untrusting = Client::from_conf(conf.retry_config(RetryConfig::disabled()).build());
    let req = untrusting.get_object().bucket(s3.bucket()).key("k");
    let err = req
        .send()
        .await
        .expect_err("an unknown certificate is refused");
    assert!(matches!(err, SdkError::DispatchFailure(_)), "{err:?}");
    assert_eq!(
        s3.counts().ops,
        [("GetObject".to_owned(), 1)].into(),
        "the refused handshake never became a request"
    );
}
