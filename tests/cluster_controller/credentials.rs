//! Credentials from the Secret: read once and reused between polls, and read
//! again when they stop working (rotated: the Secret updated, the old key
//! revoked), without a warning or a missed change. Reads are counted in the
//! API server's audit log.

use serde_json::json;

use crate::common::cluster::cluster;
use crate::fixture::{CREDS, Fixture, WAIT};

#[test]
#[ignore = "needs the test control plane (tests/cluster/test.sh)"]
fn credentials_are_read_once_and_again_when_rotated() {
    let mut f = Fixture::new("ctl-rotate", &[]);
    f.put("app/a.txt", b"one");
    f.create("web", 1, &f.opted_in("app/"), json!({}));
    let first = f.wait_recorded("web");
    f.wait_polls(4);
    let reads = |f: &Fixture| cluster().secret_requests("get", &f.ns.name, CREDS);
    assert_eq!(reads(&f), 1, "the Secret is read once, not on every poll");

    // Rotate: the Secret gets the new key while the old one still works,
    // then the store revokes the old one.
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": CREDS},
        "stringData": {"AWS_ACCESS_KEY_ID": "AKIAROTATEDKEY", "AWS_SECRET_ACCESS_KEY": "rotated-secret"},
    });
    f.ns.apply(&secret.to_string())
        .expect_ok("update the Secret");
    f.wait_polls(1);
    assert_eq!(reads(&f), 1, "working credentials are reused");
    f.s3.rotate_keys("AKIAROTATEDKEY", "rotated-secret");
    f.put("app/a.txt", b"two");

    let (recorded, rolled) = f.wait_new_revision("web", &first, WAIT);
    assert_eq!(
        rolled.as_deref(),
        Some(recorded.as_str()),
        "the change rolled"
    );
    f.wait_polls(2);
    assert_eq!(reads(&f), 2, "read again once, when the cached key failed");
    let events = f.events("web");
    assert!(
        !events
            .iter()
            .any(|(reason, _)| reason == "SourceUnavailable"),
        "a rotation is not a warning: {events:?}"
    );
}
