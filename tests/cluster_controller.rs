//! `s3-seed controller` against the real control plane (tests/cluster/up.sh:
//! the API server, the StatefulSet controller, kwok taking pods to Ready),
//! polling an in-process S3 server: a changed source rolls an opted-in
//! StatefulSet once; a quiet source, a restart, a StatefulSet that did not
//! opt in and a missing Secret roll nothing; changes during a rollout
//! coalesce; a partition and `OnDelete` are respected; a Secret is read once,
//! and again when its credentials are rotated.
//!
//! Each test has its own namespace, S3 server and controller process
//! (`--watch-namespace`, 2 s polls). Assertions are on what the API server
//! stored (annotations, generation, managedFields, pods, ControllerRevisions,
//! Events) and on what the S3 server counted, checked against the
//! controller's own poll counter.
//!
//! Needs the built control plane: `bash tests/cluster/test.sh cluster_controller`
//! (README, Development).

mod common;
#[path = "cluster_controller/credentials.rs"]
mod credentials;
#[path = "cluster_controller/fixture.rs"]
mod fixture;
#[path = "cluster_controller/pacing.rs"]
mod pacing;
#[path = "cluster_controller/quiet.rs"]
mod quiet;
#[path = "cluster_controller/rollout.rs"]
mod rollout;
