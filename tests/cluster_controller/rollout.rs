//! A change of the source rolls the pods once; a partition and `OnDelete`
//! are respected.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;

use crate::common::cluster::wait_for;
use crate::fixture::{Fixture, POLL, WAIT};

/// Two poll intervals with their jitter, and time for the API round trips.
fn two_polls() -> Duration {
    POLL.mul_f64(2.2) + Duration::from_secs(3)
}

#[test]
#[ignore = "needs the test control plane (tests/cluster/test.sh)"]
fn a_changed_object_rolls_every_pod_once() {
    let f = Fixture::new("ctl-roll", &[]);
    f.put("app/a.txt", b"one");
    f.put("app/b.txt", b"two");
    f.create("web", 3, &f.opted_in("app/"), json!({}));
    let before = f.wait_settled("web", 3);
    let first = f.wait_recorded("web");
    assert_eq!(
        f.revisions("web").1,
        None,
        "the first revision seen is only recorded"
    );
    let generation = f.sts("web")["metadata"]["generation"].clone();

    f.put("app/a.txt", b"one, changed");
    let (second, rolled) = f.wait_new_revision("web", &first, two_polls());
    assert_eq!(
        rolled.as_deref(),
        Some(second.as_str()),
        "both annotations in one patch"
    );
    let after = f.wait_settled("web", 3);
    let old: BTreeSet<_> = before.values().map(|(uid, _)| uid).collect();
    for (pod, (uid, _)) in &after {
        assert!(!old.contains(uid), "pod {pod} was not replaced");
    }
    let written = f.controller_write("web");
    assert!(
        written.is_some(),
        "the controller's write is in managedFields"
    );

    f.wait_polls(5);
    assert_eq!(
        f.revisions("web"),
        (Some(second.clone()), Some(second.clone()))
    );
    let sts = f.sts("web");
    assert_eq!(
        sts["metadata"]["generation"],
        json!(generation.as_i64().unwrap_or(0) + 1)
    );
    assert_eq!(
        f.controller_write("web"),
        written,
        "a further write after the rollout"
    );
    assert_eq!(f.controller_revisions("web"), 2, "one template change only");
    assert_eq!(
        f.controller
            .metric("s3_seed_controller_rollouts_started_total"),
        1.0
    );
    let note = format!("source revision {first} -> {second}: 1 changed");
    let events = f.events("web");
    assert!(
        events
            .iter()
            .any(|(reason, n)| reason == "RolloutStarted" && *n == note),
        "{events:?}"
    );

    let (polls, lists, all) = f.polls_and_requests();
    assert!(polls >= 7, "{polls} polls");
    assert_eq!(lists, polls, "one ListObjectsV2 per poll (two keys)");
    assert_eq!(all, lists, "nothing but listings: {:?}", f.s3.counts());
}

#[test]
#[ignore = "needs the test control plane (tests/cluster/test.sh)"]
fn a_partition_keeps_the_pods_below_it() {
    let f = Fixture::new("ctl-part", &[]);
    f.put("app/a.txt", b"one");
    let strategy =
        json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}});
    f.create("web", 3, &f.opted_in("app/"), strategy);
    let before = f.wait_settled("web", 3);
    let first = f.wait_recorded("web");

    f.put("app/a.txt", b"two");
    let (second, rolled) = f.wait_new_revision("web", &first, two_polls());
    assert_eq!(rolled.as_deref(), Some(second.as_str()));
    let replaced = |pod: &str, uid: &str| {
        let pods = f.pods("web");
        match pods.get(pod) {
            Some((now, true)) if now != uid => Ok(()),
            other => Err(format!("{pod}: {other:?}")),
        }
    };
    wait_for("web-2 replaced", WAIT, || {
        replaced("web-2", &before["web-2"].0)
    });
    f.wait_polls(3);
    let pods = f.pods("web");
    for pod in ["web-0", "web-1"] {
        assert_eq!(pods[pod].0, before[pod].0, "{pod} is below the partition");
    }
    // The partial rollout counts as finished: the next change rolls again.
    let updated = pods["web-2"].0.clone();
    f.put("app/a.txt", b"three");
    let (third, rolled) = f.wait_new_revision("web", &second, two_polls());
    assert_eq!(rolled.as_deref(), Some(third.as_str()));
    wait_for("web-2 replaced again", WAIT, || replaced("web-2", &updated));
    let pods = f.pods("web");
    for pod in ["web-0", "web-1"] {
        assert_eq!(pods[pod].0, before[pod].0, "{pod} is below the partition");
    }
}

#[test]
#[ignore = "needs the test control plane (tests/cluster/test.sh)"]
fn on_delete_is_recorded_not_restarted() {
    let f = Fixture::new("ctl-ondelete", &[]);
    f.put("app/a.txt", b"one");
    f.create(
        "web",
        3,
        &f.opted_in("app/"),
        json!({"updateStrategy": {"type": "OnDelete"}}),
    );
    let before = f.wait_settled("web", 3);
    let first = f.wait_recorded("web");
    let generation = f.sts("web")["metadata"]["generation"].clone();

    f.put("app/b.txt", b"new");
    let (second, rolled) = f.wait_new_revision("web", &first, two_polls());
    assert_eq!(rolled, None, "OnDelete: the template is not touched");
    f.wait_polls(3);
    assert_eq!(f.sts("web")["metadata"]["generation"], generation);
    let pods = f.pods("web");
    for (pod, (uid, _)) in &before {
        assert_eq!(&pods[pod].0, uid, "{pod} was restarted");
    }
    assert_eq!(f.controller_revisions("web"), 1);
    let events = f.events("web");
    let said = events.iter().any(|(reason, note)| {
        reason == "RevisionRecorded"
            && note.contains(&format!("{first} -> {second} (1 added)"))
            && note.contains("OnDelete")
    });
    assert!(said, "{events:?}");
}
