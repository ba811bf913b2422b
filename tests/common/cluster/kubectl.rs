//! `kubectl` against the test control plane, and what tests build on it:
//! JSON reads of stored objects, per-test namespaces, and polling with a
//! deadline that fails with the last thing it saw.

use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::cluster;

/// The result of one kubectl run.
pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// stdout, or a panic with the command's stderr.
    pub fn expect_ok(self, what: &str) -> String {
        assert!(self.ok, "{what} failed:\n{}", self.stderr);
        self.stdout
    }

    /// stderr of a command that must have failed.
    pub fn expect_err(self, what: &str) -> String {
        assert!(!self.ok, "{what} succeeded but must fail:\n{}", self.stdout);
        self.stderr
    }

    /// stdout parsed as JSON.
    pub fn json(self, what: &str) -> Value {
        let out = self.expect_ok(what);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{what}: not JSON ({e}):\n{out}"))
    }
}

/// `kubectl ARGS` as the cluster's admin; `stdin` is fed to `-f -`.
pub fn kubectl(args: &[&str], stdin: Option<&str>) -> Run {
    let mut cmd = Command::new("kubectl");
    cmd.arg("--kubeconfig")
        .arg(cluster().kubeconfig())
        .arg("--request-timeout=30s")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let out = run(cmd, stdin).unwrap_or_else(|e| panic!("run kubectl {args:?}: {e}"));
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn run(mut cmd: Command, stdin: Option<&str>) -> std::io::Result<Output> {
    use std::io::Write as _;
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    if let Some(input) = stdin {
        // Dropped at the end of the block: kubectl sees end-of-file.
        child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(input.as_bytes())?;
    }
    child.wait_with_output()
}

/// Polls `probe` until it returns `Ok`, or panics after `timeout` naming
/// `what` and the last observation (its `Err`) and where the component logs are.
pub fn wait_for<T>(what: &str, timeout: Duration, probe: impl FnMut() -> Result<T, String>) -> T {
    let logs = || format!("(control plane logs: {})", cluster().logs().display());
    wait_for_with(what, timeout, logs, probe)
}

/// [`wait_for`], with `context()` (e.g. the tails of the logs of the
/// processes being waited for) in the panic message instead.
pub fn wait_for_with<T>(
    what: &str,
    timeout: Duration,
    context: impl FnOnce() -> String,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match probe() {
            Ok(v) => return v,
            Err(last) if Instant::now() > deadline => panic!(
                "timed out after {timeout:?} waiting for {what}; last seen: {last}\n{}",
                context()
            ),
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

/// A namespace of one test, deleted (without waiting) when dropped.
pub struct Namespace {
    pub name: String,
}

impl Namespace {
    /// Creates `PREFIX-N-PID` with `labels`, and waits for its `default`
    /// ServiceAccount (without it, the API server refuses every pod).
    pub fn create(prefix: &str, labels: &[(&str, &str)]) -> Namespace {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{prefix}-{}-{}",
            NEXT.fetch_add(1, Ordering::Relaxed),
            std::process::id()
        );
        let labels: serde_json::Map<String, Value> = labels
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        let ns = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": labels},
        });
        kubectl(&["create", "-f", "-"], Some(&ns.to_string())).expect_ok("create namespace");
        wait_for(
            "the default ServiceAccount",
            Duration::from_secs(60),
            || {
                let run = kubectl(&["-n", &name, "get", "serviceaccount", "default"], None);
                if run.ok { Ok(()) } else { Err(run.stderr) }
            },
        );
        Namespace { name }
    }

    /// `kubectl -n NAME ARGS`.
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        kubectl(&all, stdin)
    }

    /// `kubectl apply -f -` of `manifest` (YAML or JSON) in this namespace.
    pub fn apply(&self, manifest: &str) -> Run {
        self.kubectl(&["apply", "-f", "-"], Some(manifest))
    }

    /// The stored object, as JSON.
    pub fn get(&self, kind: &str, name: &str) -> Value {
        self.kubectl(&["get", kind, name, "-o", "json"], None)
            .json(&format!("get {kind}/{name}"))
    }

    /// The stored objects of a kind (the `items` of the list).
    pub fn list(&self, kind: &str) -> Vec<Value> {
        let list = self
            .kubectl(&["get", kind, "-o", "json"], None)
            .json(&format!("list {kind}"));
        match list["items"].as_array() {
            Some(items) => items.clone(),
            None => panic!("list {kind}: no items in {list}"),
        }
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = kubectl(&["delete", "namespace", &self.name, "--wait=false"], None);
    }
}

/// The status of `condition` in an object's `status.conditions`, if present.
pub fn condition<'a>(object: &'a Value, condition: &str) -> Option<&'a str> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == condition)?["status"]
        .as_str()
}
