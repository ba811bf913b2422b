//! What must roll nothing: a quiet source, a restart, a StatefulSet that did
//! not opt in, a source that cannot be listed.

use std::collections::BTreeMap;

use serde_json::json;

use crate::common::cluster::{cluster, wait_for};
use crate::fixture::{CREDS, Fixture, WAIT};

#[test]
#[ignore = "needs the test control plane (tests/cluster/test.sh)"]
fn a_quiet_source_is_listed_and_never_written_again() {
    let f = Fixture::new("ctl-quiet", &[]);
    // 1,001 keys: two ListObjectsV2 pages a poll.
    for i in 0..1001 {
        f.put(&format!("big/k{i:04}"), b"x");
    }
    f.create("db", 1, &f.opted_in("big/"), json!({}));
    f.wait_settled("db", 1);
    let first = f.wait_recorded("db");
    let written = f.controller_write("db");
    assert!(
        written.is_some(),
        "the first revision is written by the controller"
    );
    let version = f.sts("db")["metadata"]["resourceVersion"].clone();

    f.wait_polls(8);
    let sts = f.sts("db");
    assert_eq!(
        sts["metadata"]["resourceVersion"], version,
        "the StatefulSet was written"
    );
    assert_eq!(f.revisions("db"), (Some(first), None));
    assert_eq!(sts["metadata"]["generation"], json!(1));
    let (polls, lists, all) = f.polls_and_requests();
    assert!(polls >= 9, "{polls} polls");
    assert_eq!(
        lists,
        2 * polls,
        "one ListObjectsV2 per 1,000 keys per poll"
    );
    assert_eq!(all, lists, "nothing but listings: {:?}", f.s3.counts());
    assert_eq!(
        cluster().secret_requests("get", &f.ns.name, CREDS),
        1,
        "the credentials Secret is read once, not on every poll"
    );
}

#[test]
#[ignore = "needs the test control plane (tests/cluster/test.sh)"]
fn a_restart_rolls_nothing() {
    let mut f = Fixture::new("ctl-restart", &[]);
    f.put("app/a.txt", b"one");
    f.create("web", 2, &f.opted_in("app/"), json!({}));
    let pods = f.wait_settled("web", 2);
    let first = f.wait_recorded("web");
    let written = f.controller_write("web");
    assert!(
        written.is_some(),
        "the controller's write is in managedFields"
    );

    for _ in 0..2 {
        f.controller.restart();
        f.wait_polls(3);
    }
    assert_eq!(f.revisions("web"), (Some(first), None));
    assert_eq!(f.controller_write("web"), written);
    assert_eq!(f.sts("web")["metadata"]["generation"], json!(1));
    assert_eq!(f.wait_settled("web", 2), pods, "pods were replaced");
}

#[test]
#[ignore = "needs the test control plane (tests/cluster/test.sh)"]
fn statefulsets_that_did_not_opt_in_are_never_touched() {
    let f = Fixture::new("ctl-optout", &[]);
    f.put("app/a.txt", b"one");
    let mut off = f.opted_in("app/");
    off.insert("s3-seed.io/rollout", "off".to_owned());
    let mut absent = f.opted_in("app/");
    absent.remove("s3-seed.io/rollout");
    let mut no_source = f.opted_in("app/");
    no_source.remove("s3-seed.io/source");
    let mut disabled = f.opted_in("app/");
    disabled.insert("s3-seed.io/enabled", "false".to_owned());
    let cases = [
        ("off", off),
        ("absent", absent),
        ("nosource", no_source),
        ("disabled", disabled),
    ];
    for (name, annotations) in &cases {
        f.create(name, 1, annotations, json!({}));
    }
    let versions: BTreeMap<_, _> = cases
        .iter()
        .map(|(name, _)| (*name, f.sts(name)["metadata"]["annotations"].clone()))
        .collect();
    for (name, _) in &cases {
        f.wait_settled(name, 1);
    }
    // Long enough for several polls, had there been any.
    std::thread::sleep(crate::fixture::POLL * 4);
    for (name, annotations) in &versions {
        assert_eq!(f.controller_write(name), None, "{name} written");
        assert_eq!(
            &f.sts(name)["metadata"]["annotations"],
            annotations,
            "{name}"
        );
    }
    assert_eq!(f.controller.metric("s3_seed_controller_polls_total"), 0.0);
    assert_eq!(
        f.controller
            .metric("s3_seed_controller_statefulsets_watched"),
        0.0
    );
    assert_eq!(f.s3.counts().total(), 0, "{:?}", f.s3.counts());
}

#[test]
#[ignore = "needs the test control plane (tests/cluster/test.sh)"]
fn a_missing_secret_is_told_in_an_event_and_nothing_is_written() {
    let f = Fixture::new("ctl-nosecret", &[]);
    f.put("app/a.txt", b"one");
    let mut annotations = f.opted_in("app/");
    annotations.insert("s3-seed.io/credentials-secret", "absent-creds".to_owned());
    f.create("web", 1, &annotations, json!({}));
    let note = wait_for("the SourceUnavailable event", WAIT, || {
        let events = f.events("web");
        events
            .iter()
            .find(|(reason, _)| reason == "SourceUnavailable")
            .map(|(_, note)| note.clone())
            .ok_or_else(|| format!("{events:?}"))
    });
    let want = format!(
        "source cannot be listed: secret \"absent-creds\" (s3-seed.io/credentials-secret) \
         not found in namespace \"{}\"; nothing was changed",
        f.ns.name
    );
    assert_eq!(note, want);
    f.wait_polls(2);
    assert_eq!(f.controller_write("web"), None);
    assert_eq!(f.revisions("web"), (None, None));
    assert_eq!(f.s3.counts().total(), 0, "{:?}", f.s3.counts());
    assert!(
        f.controller
            .metric_where("s3_seed_controller_polls_total", "result=\"error\"")
            >= 3.0
    );
}
