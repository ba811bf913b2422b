//! Proves the in-process S3 harness.
mod common;

use common::s3::S3Server;

#[tokio::test]
async fn smoke() {
    let s3 = S3Server::start().await;
    s3.put("a.txt", b"hello").await;
    let out = s3.client().list_objects_v2().bucket(s3.bucket()).send().await.unwrap();
    println!("{out:?}");
    println!("{:?}", s3.counts());
    assert_eq!(s3.counts().op("ListObjectsV2"), 1);
}
