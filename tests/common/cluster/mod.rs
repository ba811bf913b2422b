//! The real control plane of the cluster tests (`tests/cluster/up.sh`: etcd,
//! kube-apiserver, kube-controller-manager, kube-scheduler and kwok, built
//! from the pinned Go modules) as a fixture: [`cluster()`] gives every test
//! of a binary the same running cluster, and [`kubectl`] talks to it as an
//! admin would.
//!
//! Either the cluster is already running (`S3_SEED_CLUSTER=DIR`, a directory
//! that `up.sh DIR` made ready: CI starts one for all cluster test binaries)
//! or the first test starts `up.sh` in a temporary directory. That child
//! lives exactly as long as the test process: its stdin is a pipe that only
//! this process holds, and up.sh shuts down when it reads end-of-file, so a
//! panicking or killed test run leaves no control plane behind.
//!
//! Tests share the cluster, so each works in its own namespace
//! ([`Namespace::create`]) and asserts on what the API server stored. A
//! cluster this process started leaves its logs in `/tmp/s3-seed-cluster-test.*/logs`.
//!
//! [`webhook`] installs s3-seed with certificates from `s3-seed certs`,
//! [`cert_manager`] with cert-manager running and issuing them.

pub mod cert_manager;
pub mod controller;
pub mod kubectl;
pub mod webhook;

pub use kubectl::{Namespace, kubectl, wait_for};

use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a control plane may take to start: a cold build of its binaries
/// is done before (`tests/cluster/build.sh`), so this is startup alone.
const STARTUP: Duration = Duration::from_secs(240);

/// A running control plane.
pub struct Cluster {
    dir: PathBuf,
    /// `Some` when this process started it: holds the child and its stdin.
    _owned: Option<Owned>,
}

struct Owned {
    _child: Mutex<Child>,
    _stdin: ChildStdin,
}

impl Cluster {
    /// The admin kubeconfig.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// Where up.sh keeps each component's log (`kube-apiserver.log`, ...).
    pub fn logs(&self) -> PathBuf {
        self.dir.join("logs")
    }

    /// How many requests `verb` on Secret `namespace/name` the API server
    /// has answered for `s3-seed` (its User-Agent), from its audit log
    /// (up.sh audits Secrets only).
    pub fn secret_requests(&self, verb: &str, namespace: &str, name: &str) -> usize {
        let log = std::fs::read_to_string(self.logs().join("audit.log")).unwrap_or_default();
        log.lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|event| {
                let object = &event["objectRef"];
                let agent = event["userAgent"].as_str().unwrap_or_default();
                agent.starts_with("s3-seed/")
                    && event["verb"] == verb
                    && object["resource"] == "secrets"
                    && object["namespace"] == namespace
                    && object["name"] == name
            })
            .count()
    }

    /// A value from up.sh's `DIR/env` (`SERVICE_CIDR`, `FENCE`), or "".
    pub fn env(&self, key: &str) -> String {
        let env = std::fs::read_to_string(self.dir.join("env")).unwrap_or_default();
        env.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or_default()
            .to_string()
    }
}

/// The control plane for this test process, started on first use.
pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| match std::env::var_os("S3_SEED_CLUSTER") {
        Some(dir) => reuse(PathBuf::from(dir)),
        None => start(),
    })
}

fn reuse(dir: PathBuf) -> Cluster {
    assert!(
        dir.join("ready").exists(),
        "S3_SEED_CLUSTER={} is not a ready cluster (no ready file; start one with \
         `bash tests/cluster/up.sh {0}`)",
        dir.display()
    );
    Cluster { dir, _owned: None }
}

fn start() -> Cluster {
    // Kept after the run: up.sh removes its data but leaves the logs there.
    let dir = tempfile::Builder::new()
        .prefix("s3-seed-cluster-test.")
        .tempdir()
        .expect("create a directory for the control plane")
        .keep();
    let up = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cluster/up.sh");
    let mut child = Command::new("bash")
        .arg(&up)
        .arg(&dir)
        .env("S3_SEED_CLUSTER_STOP_ON_EOF", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("up.log")).expect("create up.log"))
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}", up.display()));
    let stdin = child.stdin.take().expect("stdin is piped");
    let deadline = Instant::now() + STARTUP;
    while !dir.join("ready").exists() {
        let exited = child.try_wait().expect("poll up.sh");
        if exited.is_some() || Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("up.log")).unwrap_or_default();
            panic!("the control plane did not start ({exited:?}); up.sh said:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Cluster {
        dir,
        _owned: Some(Owned {
            _child: Mutex::new(child),
            _stdin: stdin,
        }),
    }
}
