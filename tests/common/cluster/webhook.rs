//! s3-seed installed on the test control plane the way an admin installs it,
//! with the webhook process running on this machine: [`installed()`].
//!
//! `s3-seed certs` writes a CA and a serving certificate for
//! `s3-seed-webhook.s3-seed.svc` into a copy of `certs/`; the self-managed
//! overlay, rendered by `kubectl kustomize`, is applied unchanged with
//! `kubectl apply --server-side --validate=strict`, so the
//! MutatingWebhookConfiguration keeps its `service` reference and gets the
//! test CA as caBundle. The API server resolves that reference to the
//! Service's ClusterIP; `tests/cluster/netns.sh` routes exactly that address
//! into a network namespace, where `s3-seed webhook` listens on the Service
//! port. So the API server calls the real binary over TLS, checking the
//! certificate against the caBundle, as in a cluster.
//!
//! [`Install::serve`] is that second half alone, for an overlay applied some
//! other way: the cert-manager tests (`cert_manager.rs`) serve the
//! certificate that cert-manager issued into the overlay's Secret.
//!
//! The webhook and the registration are shared by every test of a binary.
//! Tests that stop the webhook or read its counters take [`exclusive()`];
//! every other test that sends StatefulSets through it takes [`shared()`].

use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use serde_json::{Value, json};

use super::{cluster, kubectl, wait_for};

/// Namespace and Service of the webhook, as in manifests/base.
pub const NAMESPACE: &str = "s3-seed";
pub const SERVICE: &str = "s3-seed-webhook";
/// The webhook's name in the MutatingWebhookConfiguration.
pub const WEBHOOK: &str = "statefulsets.s3-seed.io";
/// Every overlay, in the order the overlay test applies them (the last one is
/// the installation the other tests use).
pub const OVERLAYS: [&str; 4] = [
    "base",
    "overlays/openshift",
    "overlays/cert-manager",
    "overlays/self-managed",
];

const READY: Duration = Duration::from_secs(60);

static GATE: RwLock<()> = RwLock::new(());

/// Held by tests that send StatefulSets through the webhook.
pub fn shared() -> RwLockReadGuard<'static, ()> {
    let guard = GATE.read().unwrap_or_else(|e| e.into_inner());
    installed();
    guard
}

/// Held by tests that must be alone with the webhook: they stop it, re-apply
/// the overlays or count admissions.
pub fn exclusive() -> RwLockWriteGuard<'static, ()> {
    let guard = GATE.write().unwrap_or_else(|e| e.into_inner());
    installed();
    guard
}

/// The installation, made on first use.
pub struct Install {
    /// A copy of `manifests/` and `certs/` (with the generated certificates).
    pub root: PathBuf,
    /// The Service's ClusterIP, routed into the network namespace.
    pub cluster_ip: String,
    netns: String,
    webhook: Mutex<Option<Child>>,
    _netns_child: Mutex<Child>,
    _netns_stdin: ChildStdin,
}

pub fn installed() -> &'static Install {
    static INSTALL: OnceLock<Install> = OnceLock::new();
    INSTALL.get_or_init(install)
}

fn install() -> Install {
    let root = prepare();
    generate_certs(&root.join("certs"));
    apply_overlay(&root, "overlays/self-managed").expect_ok("apply the self-managed overlay");
    Install::serve(root)
}

/// `s3-seed certs` for the webhook Service into `dir`: `ca.crt`, `ca.key`,
/// `tls.crt`, `tls.key`.
pub fn generate_certs(dir: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_s3-seed"))
        .args([
            "certs",
            "--service",
            SERVICE,
            "--namespace",
            NAMESPACE,
            "--out",
        ])
        .arg(dir)
        .output()
        .expect("run s3-seed certs");
    assert!(
        out.status.success(),
        "s3-seed certs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Checks that the webhook can be served (root, and a fenced cluster range),
/// and returns a fresh copy of `manifests/` and `certs/` to install from.
pub fn prepare() -> PathBuf {
    assert!(
        is_root(),
        "the webhook tests need root (a network namespace for the webhook)"
    );
    let fence = cluster().env("FENCE");
    assert!(
        !fence.is_empty(),
        "the control plane has no unreachable route for its addresses (up.sh not run as root)"
    );
    copy_manifests()
}

impl Install {
    /// Serves an applied installation: routes the webhook Service's ClusterIP
    /// into a network namespace and starts `s3-seed webhook` there with
    /// `root/certs/tls.crt` and `tls.key` (`root/certs/ca.crt` is the CA that
    /// [`Install::get`] trusts), then waits until the API server calls it.
    pub fn serve(root: PathBuf) -> Install {
        let service = kubectl(
            &["-n", NAMESPACE, "get", "service", SERVICE, "-o", "json"],
            None,
        )
        .json("get the webhook Service");
        let cluster_ip = service["spec"]["clusterIP"]
            .as_str()
            .expect("a ClusterIP")
            .to_string();
        let (netns, netns_child, netns_stdin) = start_netns(&root, &cluster_ip);
        let install = Install {
            root,
            cluster_ip,
            netns,
            webhook: Mutex::new(None),
            _netns_child: Mutex::new(netns_child),
            _netns_stdin: netns_stdin,
        };
        install.start_webhook();
        install
    }

    /// Starts `s3-seed webhook` in the network namespace and waits until the
    /// API server gets its patch.
    pub fn start_webhook(&self) {
        let mut slot = self.webhook.lock().unwrap_or_else(|e| e.into_inner());
        assert!(slot.is_none(), "the webhook is already running");
        let certs = self.root.join("certs");
        let log = std::fs::File::create(self.root.join("webhook.log")).expect("create webhook.log");
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.netns,
                env!("CARGO_BIN_EXE_s3-seed"),
                "webhook",
            ])
            .args([
                "--listen",
                "0.0.0.0:443",
                "--shutdown-delay-secs",
                "0",
                "--shutdown-grace-secs",
                "1",
            ])
            .arg("--tls-cert")
            .arg(certs.join("tls.crt"))
            .arg("--tls-key")
            .arg(certs.join("tls.key"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log file"))
            .stderr(log)
            .spawn()
            .expect("start s3-seed webhook");
        *slot = Some(child);
        drop(slot);
        self.wait_until_called();
    }

    /// Waits until the API server gets the webhook's patch: a server-side dry
    /// run of an annotated StatefulSet comes back injected.
    pub fn wait_until_called(&self) {
        wait_for("the API server to call the webhook", READY, || {
            let run = kubectl(
                &["create", "--dry-run=server", "-o", "json", "-f", "-"],
                Some(&probe_statefulset().to_string()),
            );
            if !run.ok {
                return Err(run.stderr);
            }
            let sts: Value = serde_json::from_str(&run.stdout).map_err(|e| e.to_string())?;
            match sts["spec"]["template"]["spec"]["initContainers"][0]["name"].as_str() {
                Some("s3-seed") => Ok(()),
                _ => Err("not injected yet".into()),
            }
        });
    }

    /// Whether the webhook process is running (started and not stopped).
    pub fn is_running(&self) -> bool {
        self.webhook
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Kills the webhook process (as a crash would) and waits for it to exit.
    pub fn stop_webhook(&self) {
        let mut slot = self.webhook.lock().unwrap_or_else(|e| e.into_inner());
        let mut child = slot.take().expect("the webhook is running");
        child.kill().expect("kill the webhook");
        child.wait().expect("reap the webhook");
    }

    /// The sum of `s3_seed_admissions_total` over all labels, read from the
    /// webhook's /metrics through the Service address.
    pub fn admissions(&self) -> u64 {
        let metrics = self.get("/metrics");
        metrics
            .lines()
            .filter(|l| l.starts_with("s3_seed_admissions_total"))
            .map(|l| {
                let value = l.rsplit(' ').next().unwrap_or_default();
                value
                    .parse::<f64>()
                    .unwrap_or_else(|e| panic!("metric line {l:?}: {e}")) as u64
            })
            .sum()
    }

    /// `GET PATH` on the webhook at the Service's DNS name and ClusterIP,
    /// trusting only the test CA.
    pub fn get(&self, path: &str) -> String {
        let host = format!("{SERVICE}.{NAMESPACE}.svc");
        let out = Command::new("curl")
            .args(["-fsS", "--max-time", "5", "--noproxy", "*", "--cacert"])
            .arg(self.root.join("certs/ca.crt"))
            .args(["--resolve", &format!("{host}:443:{}", self.cluster_ip)])
            .arg(format!("https://{host}{path}"))
            .output()
            .expect("run curl");
        assert!(
            out.status.success(),
            "GET {path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// `kubectl kustomize` of an overlay of the copied manifests, applied with
/// server-side apply and strict field validation.
pub fn apply_overlay(root: &Path, overlay: &str) -> super::kubectl::Run {
    apply_rendered(&render(root, overlay), &[])
}

/// The documents of a rendered overlay.
pub fn render(root: &Path, overlay: &str) -> Vec<Value> {
    let dir = root.join("manifests").join(overlay);
    let yaml = kubectl(&["kustomize", dir.to_str().expect("utf-8 path")], None)
        .expect_ok(&format!("kubectl kustomize manifests/{overlay}"));
    serde_yaml_ng::Deserializer::from_str(&yaml)
        .map(|doc| serde::Deserialize::deserialize(doc).expect("rendered YAML"))
        .filter(|doc: &Value| !doc.is_null())
        .collect()
}

/// Applies documents as one List with server-side apply and strict field
/// validation, leaving out the kinds in `skip_kinds` (kinds whose CRDs the
/// control plane does not have).
pub fn apply_rendered(docs: &[Value], skip_kinds: &[&str]) -> super::kubectl::Run {
    let items: Vec<&Value> = docs
        .iter()
        .filter(|d| !skip_kinds.contains(&d["kind"].as_str().unwrap_or_default()))
        .collect();
    let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
    kubectl(
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--validate=strict",
            "-f",
            "-",
        ],
        Some(&list.to_string()),
    )
}

fn copy_manifests() -> PathBuf {
    let root = tempfile::Builder::new()
        .prefix("s3-seed-install.")
        .tempdir()
        .expect("create a directory for the manifests")
        .keep();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let status = Command::new("cp")
        .arg("-r")
        .arg(repo.join("manifests"))
        .arg(repo.join("certs"))
        .arg(&root)
        .status()
        .expect("run cp");
    assert!(status.success(), "copy manifests/ and certs/");
    for stale in ["ca.crt", "ca.key", "tls.crt", "tls.key"] {
        let _ = std::fs::remove_file(root.join("certs").join(stale));
    }
    root
}

fn start_netns(root: &Path, ip: &str) -> (String, Child, ChildStdin) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cluster/netns.sh");
    let log = std::fs::File::create(root.join("netns.log")).expect("create netns.log");
    let mut child = Command::new("bash")
        .arg(&script)
        .arg(root)
        .arg(ip)
        .env("S3_SEED_CLUSTER_STOP_ON_EOF", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("run netns.sh");
    let stdin = child.stdin.take().expect("stdin is piped");
    let name = wait_for("the network namespace", READY, || {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            let log = std::fs::read_to_string(root.join("netns.log")).unwrap_or_default();
            panic!("netns.sh exited ({status}):\n{log}");
        }
        std::fs::read_to_string(root.join("netns"))
            .map(|s| s.trim().to_string())
            .map_err(|e| e.to_string())
    });
    (name, child, stdin)
}

/// A minimal StatefulSet that opts in, for probing the webhook.
pub fn probe_statefulset() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {
            "name": "probe",
            "namespace": "default",
            "annotations": {"s3-seed.io/source": "s3://probe-bucket/"},
        },
        "spec": {
            "serviceName": "probe",
            "selector": {"matchLabels": {"app": "probe"}},
            "template": {
                "metadata": {"labels": {"app": "probe"}},
                "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]},
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
            }],
        },
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}
