//! One test's world: a namespace, an S3 server (on a runtime of its own, so
//! it answers while the test thread blocks in kubectl), the credentials
//! Secret, and a controller confined to the namespace; and readers of what
//! the API server stored.

use std::collections::BTreeMap;
use std::sync::Once;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::cluster::controller::Controller;
use crate::common::cluster::{Namespace, kubectl, wait_for};
use crate::common::s3::{ACCESS_KEY, REGION, S3Server, SECRET_KEY};

/// The controller's poll interval (`--poll-interval-secs 2`).
pub const POLL: Duration = Duration::from_secs(2);
/// Longest wait for pods and rollouts.
pub const WAIT: Duration = Duration::from_secs(120);
/// The Secret every opted-in StatefulSet names, unless a test says otherwise.
pub const CREDS: &str = "s3-creds";
/// The annotation the controller writes, as a JSON pointer token.
const REVISION: &str = "s3-seed.io~1source-revision";
/// The controller's field manager.
const MANAGER: &str = "s3-seed-controller";

pub struct Fixture {
    // Dropped in this order: the controller first, the runtime last.
    pub controller: Controller,
    pub ns: Namespace,
    pub s3: S3Server,
    rt: tokio::runtime::Runtime,
}

impl Fixture {
    /// A namespace `prefix-…`, an empty bucket, the Secret, and a running
    /// controller with `args` besides the harness defaults.
    pub fn new(prefix: &str, args: &[&str]) -> Fixture {
        no_stale_webhook();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime for the S3 server");
        let s3 = rt.block_on(S3Server::start());
        let ns = Namespace::create(prefix, &[]);
        let secret = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": CREDS},
            "stringData": {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY},
        });
        ns.apply(&secret.to_string())
            .expect_ok("create the credentials Secret");
        let controller = Controller::start(&ns.name, args, &[]);
        Fixture {
            controller,
            ns,
            s3,
            rt,
        }
    }

    /// Upload `body` at `key` (never counted by the server).
    pub fn put(&self, key: &str, body: &[u8]) {
        self.rt.block_on(self.s3.put(key, body));
    }

    /// The annotations of a StatefulSet that opted in on `prefix`.
    pub fn opted_in(&self, prefix: &str) -> BTreeMap<&'static str, String> {
        BTreeMap::from([
            ("s3-seed.io/source", self.s3.uri(prefix)),
            ("s3-seed.io/endpoint", self.s3.endpoint()),
            ("s3-seed.io/path-style", "true".to_owned()),
            ("s3-seed.io/region", REGION.to_owned()),
            ("s3-seed.io/credentials-secret", CREDS.to_owned()),
            ("s3-seed.io/rollout", "on-change".to_owned()),
        ])
    }

    /// Create StatefulSet `name` with `replicas`, `annotations`, and `spec`
    /// fields merged over the defaults (an updateStrategy, minReadySeconds).
    pub fn create(
        &self,
        name: &str,
        replicas: u32,
        annotations: &BTreeMap<&'static str, String>,
        spec: Value,
    ) {
        let mut sts = json!({
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": name, "annotations": annotations},
            "spec": {
                "replicas": replicas,
                "serviceName": name,
                "podManagementPolicy": "Parallel",
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]},
                },
            },
        });
        if let (Some(base), Value::Object(extra)) = (sts["spec"].as_object_mut(), spec) {
            base.extend(extra);
        }
        self.ns
            .kubectl(&["create", "-f", "-"], Some(&sts.to_string()))
            .expect_ok("create the StatefulSet");
    }

    pub fn sts(&self, name: &str) -> Value {
        self.ns.get("statefulset", name)
    }

    /// (recorded on the StatefulSet, rolled out on its pod template).
    pub fn revisions(&self, name: &str) -> (Option<String>, Option<String>) {
        let sts = self.sts(name);
        let at = |path: &str| {
            sts.pointer(&format!("{path}/{REVISION}"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        (
            at("/metadata/annotations"),
            at("/spec/template/metadata/annotations"),
        )
    }

    /// Wait for the first revision to be recorded; returns it.
    pub fn wait_recorded(&self, name: &str) -> String {
        wait_for("the first recorded revision", WAIT, || {
            match self.revisions(name) {
                (Some(r), _) => Ok(r),
                none => Err(format!("{none:?}\n{}", self.controller.log())),
            }
        })
    }

    /// Wait until the recorded revision differs from `old`, within
    /// `timeout`; returns (recorded, rolled).
    pub fn wait_new_revision(
        &self,
        name: &str,
        old: &str,
        timeout: Duration,
    ) -> (String, Option<String>) {
        wait_for("a new recorded revision", timeout, || {
            match self.revisions(name) {
                (Some(r), rolled) if r != old => Ok((r, rolled)),
                other => Err(format!("{other:?}\n{}", self.controller.log())),
            }
        })
    }

    /// Pods of StatefulSet `name`: name -> (uid, ready).
    pub fn pods(&self, name: &str) -> BTreeMap<String, (String, bool)> {
        let pods = self.ns.kubectl(
            &["get", "pods", "-l", &format!("app={name}"), "-o", "json"],
            None,
        );
        let pods = pods.json("list pods");
        pods["items"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .map(|p| {
                let ready = crate::common::cluster::kubectl::condition(p, "Ready") == Some("True");
                (
                    p["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    (
                        p["metadata"]["uid"].as_str().unwrap_or_default().to_owned(),
                        ready,
                    ),
                )
            })
            .collect()
    }

    /// Wait until `replicas` pods run the StatefulSet's update revision, are
    /// Ready, and the status says the rollout is complete.
    pub fn wait_settled(&self, name: &str, replicas: usize) -> BTreeMap<String, (String, bool)> {
        wait_for("a settled StatefulSet", WAIT, || {
            let sts = self.sts(name);
            let s = &sts["status"];
            let done = s["observedGeneration"] == sts["metadata"]["generation"]
                && s["updatedReplicas"] == json!(replicas)
                && s["readyReplicas"] == json!(replicas)
                && s["currentRevision"] == s["updateRevision"];
            let pods = self.pods(name);
            if done && pods.len() == replicas && pods.values().all(|(_, ready)| *ready) {
                Ok(pods)
            } else {
                Err(format!("status {s}, pods {pods:?}"))
            }
        })
    }

    /// When the controller last wrote the StatefulSet (its managedFields
    /// entry), or `None` if it never did.
    pub fn controller_write(&self, name: &str) -> Option<String> {
        let args = [
            "get",
            "statefulset",
            name,
            "-o",
            "json",
            "--show-managed-fields",
        ];
        let sts = self.ns.kubectl(&args, None).json("get the StatefulSet");
        let fields = sts["metadata"]["managedFields"].as_array()?.clone();
        fields
            .iter()
            .find(|f| f["manager"] == MANAGER)
            .map(|f| f["time"].as_str().unwrap_or_default().to_owned())
    }

    /// ControllerRevisions of StatefulSet `name` (one per distinct template).
    pub fn controller_revisions(&self, name: &str) -> usize {
        self.ns
            .list("controllerrevisions")
            .iter()
            .filter(|r| r["metadata"]["ownerReferences"][0]["name"] == name)
            .count()
    }

    /// Events about StatefulSet `name`: (reason, note).
    pub fn events(&self, name: &str) -> Vec<(String, String)> {
        self.ns
            .list("events.events.k8s.io")
            .iter()
            .filter(|e| e["regarding"]["kind"] == "StatefulSet" && e["regarding"]["name"] == name)
            .map(|e| {
                let text = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
                (text("reason"), text("note"))
            })
            .collect()
    }

    /// The controller's poll count and the S3 server's request counts, read
    /// so that no poll is half-way between them: (polls, ListObjectsV2,
    /// every request).
    pub fn polls_and_requests(&self) -> (u64, u64, u64) {
        let deadline = Instant::now() + WAIT;
        loop {
            let before = self.controller.metric("s3_seed_controller_polls_total");
            let counts = self.s3.counts();
            let after = self.controller.metric("s3_seed_controller_polls_total");
            let list = counts.op("ListObjectsV2");
            if before == after || Instant::now() > deadline {
                return (after as u64, list, counts.total());
            }
        }
    }

    /// Wait until the controller has polled `n` more times than now.
    pub fn wait_polls(&self, n: u64) {
        let start = self.controller.metric("s3_seed_controller_polls_total") as u64;
        wait_for("more polls", WAIT, || {
            let now = self.controller.metric("s3_seed_controller_polls_total") as u64;
            if now >= start + n {
                Ok(())
            } else {
                Err(format!("{now} polls, want {}", start + n))
            }
        });
    }
}

/// A registration a webhook test binary left behind points at a webhook
/// process that has exited; with `failurePolicy: Fail` it would refuse
/// every StatefulSet these tests create. (Those tests install it again.)
fn no_stale_webhook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = kubectl(
            &[
                "delete",
                "mutatingwebhookconfiguration",
                "s3-seed",
                "--ignore-not-found",
            ],
            None,
        );
    });
}
