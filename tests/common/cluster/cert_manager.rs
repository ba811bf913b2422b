//! cert-manager on the test control plane, and s3-seed installed with the
//! `cert-manager` overlay: [`installed()`].
//!
//! `tests/cluster/cert-manager/build.sh` builds cert-manager's controller and
//! cainjector from its Go module and copies the CRDs of the same release
//! (`S3_SEED_CERT_MANAGER=DIR` names a build to use; CI's `test.sh` sets it).
//! [`CertManager::start`] applies those CRDs and runs both processes on this
//! machine against the cluster's admin kubeconfig, as cert-manager's pods
//! would run in a cluster. Each runs under `tests/cluster/tied.sh` with a pipe
//! on stdin that only this process holds, so neither outlives the test
//! process; their logs go to the control plane's log directory
//! (`cert-manager-controller.log`, `cert-manager-cainjector.log`, printed by
//! `test.sh` on a failure), and a wait here that times out prints their tails.
//!
//! The installation: the overlay is applied unchanged (`kubectl kustomize`,
//! server-side, strict), cert-manager issues the Certificate into the
//! Secret, the cainjector copies its `ca.crt` into the
//! MutatingWebhookConfiguration's caBundle, and the webhook is served
//! ([`Install::serve`]) with the Secret's `tls.crt` and `tls.key`. Nothing is
//! copied by the test into the registration.

use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use super::kubectl::{condition, wait_for_with};
use super::webhook::{Install, NAMESPACE, apply_overlay, prepare};
use super::{cluster, kubectl};

/// The overlay's Certificate and the Secret it names.
pub const CERTIFICATE: &str = "s3-seed-webhook";
pub const SECRET: &str = "s3-seed-webhook-tls";
/// The MutatingWebhookConfiguration the cainjector fills.
pub const REGISTRATION: &str = "s3-seed";

/// Issuing and injecting take a few seconds; a slow machine gets more.
const WAIT: Duration = Duration::from_secs(120);

/// The two cert-manager processes.
#[derive(Clone, Copy, Debug)]
pub enum Component {
    Controller,
    Cainjector,
}

impl Component {
    fn name(self) -> &'static str {
        match self {
            Component::Controller => "controller",
            Component::Cainjector => "cainjector",
        }
    }

    fn log(self) -> PathBuf {
        cluster()
            .logs()
            .join(format!("cert-manager-{}.log", self.name()))
    }
}

/// A running process; stopped by closing its stdin (tied.sh).
struct Tied {
    child: Child,
    stdin: ChildStdin,
}

/// cert-manager's CRDs applied, and its controller and cainjector running.
pub struct CertManager {
    dir: PathBuf,
    controller: Mutex<Option<Tied>>,
    cainjector: Mutex<Option<Tied>>,
}

impl CertManager {
    /// Applies the CRDs of the build, waits until they are Established, and
    /// starts the controller and the cainjector.
    pub fn start() -> CertManager {
        let dir = build_dir();
        let crds = dir.join("crds");
        let crds = crds.to_str().expect("utf-8 path");
        kubectl(&["apply", "--server-side", "-f", crds], None)
            .expect_ok("apply cert-manager's CRDs");
        kubectl(
            &[
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                "-f",
                crds,
            ],
            None,
        )
        .expect_ok("cert-manager's CRDs Established");
        let cm = CertManager {
            dir,
            controller: Mutex::new(None),
            cainjector: Mutex::new(None),
        };
        cm.start_component(Component::Controller);
        cm.start_component(Component::Cainjector);
        cm
    }

    /// The cert-manager release of the build (its `VERSION` file).
    pub fn version(&self) -> String {
        std::fs::read_to_string(self.dir.join("VERSION"))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    fn slot(&self, c: Component) -> std::sync::MutexGuard<'_, Option<Tied>> {
        match c {
            Component::Controller => &self.controller,
            Component::Cainjector => &self.cainjector,
        }
        .lock()
        .unwrap_or_else(|e| e.into_inner())
    }

    /// Starts one component (its log is appended to).
    pub fn start_component(&self, c: Component) {
        let mut slot = self.slot(c);
        assert!(
            slot.is_none(),
            "cert-manager {} is already running",
            c.name()
        );
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(c.log())
            .unwrap_or_else(|e| panic!("open {}: {e}", c.log().display()));
        let tied = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cluster/tied.sh");
        let mut child = Command::new("bash")
            .arg(tied)
            .arg(self.dir.join("bin").join(c.name()))
            .arg("--kubeconfig")
            .arg(cluster().kubeconfig())
            .arg("-v=2")
            .stdin(Stdio::piped())
            .stdout(log.try_clone().expect("clone the log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start cert-manager {}: {e}", c.name()));
        let stdin = child.stdin.take().expect("stdin is piped");
        *slot = Some(Tied { child, stdin });
    }

    /// Stops one component and waits until it has exited.
    pub fn stop_component(&self, c: Component) {
        let Tied { mut child, stdin } = self
            .slot(c)
            .take()
            .unwrap_or_else(|| panic!("cert-manager {} is not running", c.name()));
        drop(stdin);
        child.wait().expect("wait for tied.sh");
    }

    /// The last lines of both logs, and whether each process still runs.
    pub fn report(&self) -> String {
        let mut out = String::new();
        for c in [Component::Controller, Component::Cainjector] {
            let state = match self.slot(c).as_mut().map(|t| t.child.try_wait()) {
                Some(Ok(None)) => "running".to_string(),
                Some(Ok(Some(status))) => format!("exited: {status}"),
                Some(Err(e)) => format!("unknown: {e}"),
                None => "stopped by the test".to_string(),
            };
            let log = std::fs::read_to_string(c.log()).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(20)..].join("\n");
            out += &format!(
                "\n--- cert-manager {} ({state}), last lines of {}:\n{tail}",
                c.name(),
                c.log().display()
            );
        }
        out
    }

    /// [`wait_for_with`] that prints both logs' tails when it times out.
    pub fn wait_for<T>(&self, what: &str, probe: impl FnMut() -> Result<T, String>) -> T {
        wait_for_with(what, WAIT, || self.report(), probe)
    }
}

/// The build to use: `S3_SEED_CERT_MANAGER`, or build.sh's (cached) output.
fn build_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("S3_SEED_CERT_MANAGER") {
        return PathBuf::from(dir);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cluster/cert-manager/build.sh");
    let out = Command::new("bash")
        .arg(&script)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", script.display()));
    assert!(out.status.success(), "{} failed", script.display());
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// The Secret's PEM files, as cert-manager wrote them.
pub struct Issued {
    pub tls_crt: String,
    pub tls_key: String,
    pub ca_crt: String,
}

/// s3-seed installed with the cert-manager overlay, and cert-manager running.
pub struct Installed {
    pub cert_manager: CertManager,
    pub webhook: Install,
    /// The Secret when the webhook was started with it.
    pub issued: Issued,
}

pub fn installed() -> &'static Installed {
    static INSTALLED: OnceLock<Installed> = OnceLock::new();
    INSTALLED.get_or_init(install)
}

fn install() -> Installed {
    let root = prepare();
    // Whatever an earlier run or another overlay left: this run's Secret and
    // caBundle must come from cert-manager.
    kubectl(
        &[
            "delete",
            "mutatingwebhookconfiguration",
            REGISTRATION,
            "--ignore-not-found",
        ],
        None,
    )
    .expect_ok("delete the old registration");
    kubectl(
        &[
            "-n",
            NAMESPACE,
            "delete",
            "secret",
            SECRET,
            "--ignore-not-found",
        ],
        None,
    )
    .expect_ok("delete the old Secret");
    let cert_manager = CertManager::start();
    apply_overlay(&root, "overlays/cert-manager").expect_ok("apply the cert-manager overlay");
    let issued = wait_for_secret(&cert_manager);
    for (file, pem) in [
        ("tls.crt", &issued.tls_crt),
        ("tls.key", &issued.tls_key),
        ("ca.crt", &issued.ca_crt),
    ] {
        std::fs::write(root.join("certs").join(file), pem).expect("write the issued certificate");
    }
    // The registration was created without one: exactly the Secret's CA.
    let bundle = wait_for_ca_bundle(&cert_manager, &issued.ca_crt);
    assert_eq!(
        bundle, issued.ca_crt,
        "the first caBundle is the Secret's ca.crt"
    );
    let webhook = Install::serve(root);
    Installed {
        cert_manager,
        webhook,
        issued,
    }
}

/// Waits until the Certificate is Ready and its Secret holds `tls.crt`,
/// `tls.key` and `ca.crt`; returns them.
pub fn wait_for_secret(cm: &CertManager) -> Issued {
    cm.wait_for("the Certificate Ready and its Secret", || {
        let cert = kubectl(
            &[
                "-n",
                NAMESPACE,
                "get",
                "certificate",
                CERTIFICATE,
                "-o",
                "json",
            ],
            None,
        );
        if !cert.ok {
            return Err(cert.stderr);
        }
        let cert: Value = serde_json::from_str(&cert.stdout).map_err(|e| e.to_string())?;
        if condition(&cert, "Ready") != Some("True") {
            return Err(format!("Certificate status: {}", cert["status"]));
        }
        let secret = kubectl(
            &["-n", NAMESPACE, "get", "secret", SECRET, "-o", "json"],
            None,
        );
        if !secret.ok {
            return Err(secret.stderr);
        }
        let secret: Value = serde_json::from_str(&secret.stdout).map_err(|e| e.to_string())?;
        let field = |key: &str| -> Result<String, String> {
            let b64 = secret["data"][key]
                .as_str()
                .ok_or(format!("Secret has no {key}"))?;
            let pem = STANDARD.decode(b64).map_err(|e| format!("{key}: {e}"))?;
            String::from_utf8(pem).map_err(|e| format!("{key}: {e}"))
        };
        Ok(Issued {
            tls_crt: field("tls.crt")?,
            tls_key: field("tls.key")?,
            ca_crt: field("ca.crt")?,
        })
    })
}

/// The stored MutatingWebhookConfiguration.
pub fn registration() -> Value {
    kubectl(
        &[
            "get",
            "mutatingwebhookconfiguration",
            REGISTRATION,
            "-o",
            "json",
        ],
        None,
    )
    .json("get the MutatingWebhookConfiguration")
}

/// The registration's caBundle, decoded ("" when it has none).
pub fn ca_bundle() -> String {
    let mwc = registration();
    let b64 = mwc["webhooks"][0]["clientConfig"]["caBundle"]
        .as_str()
        .unwrap_or_default();
    let pem = STANDARD.decode(b64).expect("caBundle is base64");
    String::from_utf8(pem).expect("caBundle is PEM")
}

/// Replaces the registration's caBundle with `pem`, as an admin would.
pub fn set_ca_bundle(pem: &str) {
    let patch = serde_json::json!([{
        "op": "replace",
        "path": "/webhooks/0/clientConfig/caBundle",
        "value": STANDARD.encode(pem),
    }]);
    kubectl(
        &[
            "patch",
            "mutatingwebhookconfiguration",
            REGISTRATION,
            "--type=json",
            "-p",
            &patch.to_string(),
        ],
        None,
    )
    .expect_ok("set the caBundle");
}

/// The PEM certificate blocks in `text`, each from its BEGIN to its END line.
pub fn pem_certificates(text: &str) -> Vec<String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(begin) = rest.find(BEGIN) {
        let Some(len) = rest[begin..].find(END) else {
            break;
        };
        let end = begin + len + END.len();
        out.push(rest[begin..end].to_string());
        rest = &rest[end..];
    }
    out
}

/// Waits until the caBundle holds the certificate of `ca_crt`, and returns
/// the bundle. cert-manager merges (feature CAInjectorMerging, on by
/// default): it adds the CA to the certificates already there.
pub fn wait_for_ca_bundle(cm: &CertManager, ca_crt: &str) -> String {
    let want = pem_certificates(ca_crt);
    assert_eq!(want.len(), 1, "one certificate in ca.crt: {ca_crt}");
    cm.wait_for(
        "the cainjector to put the Secret's ca.crt into the caBundle",
        || {
            let bundle = ca_bundle();
            if pem_certificates(&bundle).contains(&want[0]) {
                Ok(bundle)
            } else if bundle.is_empty() {
                Err("the caBundle is empty".into())
            } else {
                Err(format!("the caBundle holds other certificates:\n{bundle}"))
            }
        },
    )
}
