//! Idempotence as the API server sees it, on examples/web-statefulset.yaml:
//! re-applying the same manifest (client-side apply, server-side apply, and
//! a full replace with the un-injected text) keeps `metadata.generation` and
//! creates no ControllerRevision; a new source changes the generation and
//! the config hash with still one injection; `s3-seed.io/enabled: "false"`
//! and removing the source annotation remove the injection and its markers.

use std::path::Path;

use crate::common::cluster::Namespace;
use crate::common::cluster::webhook::shared;
use crate::stored::{
    RESTRICTED, assert_injected_once_first, assert_not_injected, config_hash, env, pod_spec,
    revisions, settled,
};

const NAME: &str = "web";
const SOURCE: &str = "s3-seed.io/source: s3://my-bucket/web/";

fn example() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/web-statefulset.yaml");
    let text = std::fs::read_to_string(path).expect("read the example");
    assert!(text.contains(SOURCE), "the example still sets {SOURCE}");
    text
}

fn generation(sts: &serde_json::Value) -> u64 {
    sts["metadata"]["generation"].as_u64().expect("generation")
}

#[test]
#[ignore = "needs the control plane (tests/cluster/up.sh) and root"]
fn reapply_is_a_no_op_and_changes_and_opt_outs_are_seen_by_the_api_server() {
    let _webhook = shared();
    let ns = Namespace::create("idempotence", &[RESTRICTED]);
    let original = example();
    ns.apply(&original).expect_ok("apply the example");
    let first = settled(&ns, NAME);
    assert_injected_once_first(&first);
    let revs = revisions(&ns, NAME);
    assert_eq!(revs.len(), 1, "{revs:?}");

    // Three ways of sending the same manifest again.
    let again: [(&str, &[&str]); 3] = [
        ("kubectl apply", &["apply", "-f", "-"]),
        (
            "kubectl apply --server-side",
            &["apply", "--server-side", "--force-conflicts", "-f", "-"],
        ),
        ("kubectl replace", &["replace", "-f", "-"]),
    ];
    for (what, args) in again {
        ns.kubectl(args, Some(&original)).expect_ok(what);
        let sts = settled(&ns, NAME);
        assert_eq!(
            generation(&sts),
            generation(&first),
            "{what}: same generation"
        );
        assert_eq!(config_hash(&sts), config_hash(&first), "{what}: same hash");
        assert_eq!(pod_spec(&sts), pod_spec(&first), "{what}: same pod spec");
        assert_eq!(
            revisions(&ns, NAME),
            revs,
            "{what}: no new ControllerRevision"
        );
    }

    // A new source: a new generation and hash, still one injection.
    let moved = original.replace(SOURCE, "s3-seed.io/source: s3://my-bucket/web-v2/");
    ns.kubectl(&["apply", "-f", "-"], Some(&moved))
        .expect_ok("apply a new source");
    let changed = settled(&ns, NAME);
    assert_eq!(generation(&changed), generation(&first) + 1);
    assert_ne!(config_hash(&changed), config_hash(&first));
    assert_injected_once_first(&changed);
    assert_eq!(
        env(pod_spec(&changed), "S3_SEED_SOURCE").as_deref(),
        Some("s3://my-bucket/web-v2/")
    );
    assert_eq!(revisions(&ns, NAME).len(), 2, "one new ControllerRevision");

    // Opt out with enabled: "false".
    let disabled = moved.replace(
        "s3-seed.io/source:",
        "s3-seed.io/enabled: \"false\"\n    s3-seed.io/source:",
    );
    ns.kubectl(&["apply", "-f", "-"], Some(&disabled))
        .expect_ok("apply enabled: false");
    let off = settled(&ns, NAME);
    assert_not_injected(&off);
    assert_eq!(generation(&off), generation(&changed) + 1);

    // Back on, then opt out by removing the source annotation.
    ns.kubectl(&["apply", "-f", "-"], Some(&moved))
        .expect_ok("re-enable");
    assert_injected_once_first(&settled(&ns, NAME));
    let without_source: String = moved
        .lines()
        .filter(|l| !l.contains("s3-seed.io/source:"))
        .map(|l| format!("{l}\n"))
        .collect();
    ns.kubectl(&["apply", "-f", "-"], Some(&without_source))
        .expect_ok("remove the source annotation");
    let removed = settled(&ns, NAME);
    assert_not_injected(&removed);
    assert!(
        removed["metadata"]["annotations"]
            .get("s3-seed.io/source")
            .is_none()
    );
}
