//! Pacing: changes seen while a rollout is in flight coalesce into one
//! later rollout, at the latest revision.

use std::time::Duration;

use serde_json::json;

use crate::common::cluster::wait_for;
use crate::fixture::{Fixture, POLL, WAIT};

#[test]
#[ignore = "needs the test control plane (tests/cluster/test.sh)"]
fn five_changes_during_a_rollout_make_at_most_one_more() {
    let f = Fixture::new("ctl-coalesce", &[]);
    f.put("app/a.txt", b"0");
    f.create("web", 3, &f.opted_in("app/"), json!({}));
    f.wait_settled("web", 3);
    let first = f.wait_recorded("web");
    // A LimitRange no pod of this namespace meets holds the rollout in
    // flight: the StatefulSet deletes web-2 to replace it, and the new one
    // is refused at admission until the LimitRange is gone.
    let hold = json!({
        "apiVersion": "v1", "kind": "LimitRange",
        "metadata": {"name": "hold"},
        "spec": {"limits": [{"type": "Pod", "min": {"cpu": "100"}}]},
    });
    f.ns.apply(&hold.to_string())
        .expect_ok("create the LimitRange");

    f.put("app/a.txt", b"1");
    let (second, rolled) = f.wait_new_revision("web", &first, POLL * 3 + Duration::from_secs(3));
    assert_eq!(rolled.as_deref(), Some(second.as_str()));
    for i in 2..7 {
        f.put("app/a.txt", i.to_string().as_bytes());
        std::thread::sleep(Duration::from_millis(700));
    }
    f.wait_polls(2);
    let status = f.sts("web")["status"].clone();
    assert_ne!(
        status["currentRevision"], status["updateRevision"],
        "{status}"
    );
    assert_eq!(
        f.revisions("web"),
        (Some(second.clone()), Some(second.clone())),
        "written during the rollout"
    );

    f.ns.kubectl(&["delete", "limitrange", "hold"], None)
        .expect_ok("delete the LimitRange");
    let last = wait_for("the last revision rolled out", WAIT, || {
        let (recorded, rolled) = f.revisions("web");
        match (&recorded, &rolled) {
            (Some(r), Some(t)) if r == t && *r != second => Ok(r.clone()),
            _ => Err(format!("{recorded:?} {rolled:?}")),
        }
    });
    f.wait_settled("web", 3);
    f.wait_polls(3);
    assert_eq!(f.revisions("web"), (Some(last.clone()), Some(last)));
    assert_eq!(
        f.controller
            .metric("s3_seed_controller_rollouts_started_total"),
        2.0
    );
    assert_eq!(
        f.controller_revisions("web"),
        3,
        "the initial template and two rollouts"
    );
}
