//! The Kubernetes side of the demo, played without a cluster: the
//! AdmissionReview the API server would send for the example StatefulSet,
//! applying the webhook's patch, and running the injected container the way
//! a container runtime would (its command and env from the patch, each volume
//! mount mapped to a local directory, secretKeyRefs resolved from the
//! example's Secret). The example gets a second, named source (`notes`), so
//! one container syncs two sources into two directories of the volume.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use base64::Engine;
use serde_json::{Value, json};

use crate::s3::{ACCESS_KEY, SECRET_KEY};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/web-statefulset.yaml");

/// The example's documents, by kind.
fn example_docs() -> Result<Vec<Value>> {
    let text = std::fs::read_to_string(EXAMPLE).with_context(|| format!("read {EXAMPLE}"))?;
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| Ok(serde::Deserialize::deserialize(doc)?))
        .collect()
}

/// The CREATE review for the example StatefulSet, pointed at the local S3,
/// with a second source `notes` next to the example's own.
pub fn admission_review(endpoint: &str, source: &str, notes: &str) -> Result<Value> {
    let mut sts = example_docs()?
        .into_iter()
        .find(|d| d["kind"] == "StatefulSet")
        .context("the example has no StatefulSet")?;
    let annotations = sts["metadata"]["annotations"]
        .as_object_mut()
        .context("the example StatefulSet has no annotations")?;
    // What a developer would change to use a MinIO-style store.
    annotations.insert("s3-seed.io/source".into(), source.into());
    annotations.insert("s3-seed.io/endpoint".into(), endpoint.into());
    annotations.insert("s3-seed.io/path-style".into(), "true".into());
    annotations.insert("s3-seed.io/region".into(), "us-east-1".into());
    // A second source, in its own directory of the same volume.
    annotations.insert("s3-seed.io/sub-path".into(), "site".into());
    annotations.insert("s3-seed.io/source.notes".into(), notes.into());
    annotations.insert("s3-seed.io/sub-path.notes".into(), "notes".into());
    sts["metadata"]["namespace"] = "demo".into();
    Ok(json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "0b6a2f7e-5d3c-4c1e-9a57-demo00000001",
            "kind": {"group": "apps", "version": "v1", "kind": "StatefulSet"},
            "resource": {"group": "apps", "version": "v1", "resource": "statefulsets"},
            "requestKind": {"group": "apps", "version": "v1", "kind": "StatefulSet"},
            "requestResource": {"group": "apps", "version": "v1", "resource": "statefulsets"},
            "name": "web",
            "namespace": "demo",
            "operation": "CREATE",
            "userInfo": {"username": "developer@example.com", "groups": ["system:authenticated"]},
            "object": sts,
            "oldObject": null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    }))
}

/// Apply the response's JSON Patch (strict RFC 6902) and return the injected
/// init container, after checking where and how it was injected.
pub fn injected_container(object: &Value, response: &Value) -> Result<Value> {
    ensure!(
        response["patchType"] == "JSONPatch",
        "no JSONPatch in the response"
    );
    let raw = base64::engine::general_purpose::STANDARD.decode(
        response["patch"]
            .as_str()
            .context("patch is not a string")?,
    )?;
    let patch: json_patch::Patch = serde_json::from_slice(&raw).context("parse the patch")?;
    let mut patched = object.clone();
    json_patch::patch(&mut patched, &patch).context("apply the patch")?;
    let spec = &patched["spec"]["template"]["spec"];
    let first = spec["initContainers"][0].clone();
    ensure!(
        first["name"] == "s3-seed",
        "s3-seed is not the first init container"
    );
    let sc = &first["securityContext"];
    ensure!(
        sc["allowPrivilegeEscalation"] == false
            && sc["readOnlyRootFilesystem"] == true
            && sc["runAsNonRoot"] == true
            && sc["capabilities"]["drop"] == json!(["ALL"])
            && sc.get("runAsUser").is_none(),
        "the injected securityContext is not restricted: {sc}"
    );
    ensure!(
        patched["metadata"]["annotations"]["s3-seed.io/status"] == "injected",
        "the StatefulSet is not marked as injected"
    );
    Ok(first)
}

/// The Secret's values as the kubelet would hand them to env `secretKeyRef`s,
/// with the demo's S3 credentials filled in for the placeholders.
fn secret_values() -> Result<BTreeMap<String, String>> {
    let secret = example_docs()?
        .into_iter()
        .find(|d| d["kind"] == "Secret")
        .context("the example has no Secret")?;
    let mut values: BTreeMap<String, String> =
        serde_json::from_value(secret["stringData"].clone()).context("read stringData")?;
    values.insert("AWS_ACCESS_KEY_ID".into(), ACCESS_KEY.into());
    values.insert("AWS_SECRET_ACCESS_KEY".into(), SECRET_KEY.into());
    Ok(values)
}

/// A process started like the injected container.
#[derive(Debug, Clone)]
pub struct Run {
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// Where each volume mount (with its subPath) lands locally, in the
    /// container's order (the unnamed source first).
    pub targets: Vec<PathBuf>,
}

impl Run {
    /// Map the container onto this machine: the image's binary is `binary`,
    /// the volume mount is a directory under `volumes`.
    pub fn from_container(container: &Value, binary: &Path, volumes: &Path) -> Result<Run> {
        let mut command: Vec<String> = serde_json::from_value(container["command"].clone())?;
        let args: Vec<String> =
            serde_json::from_value(container["args"].clone()).unwrap_or_default();
        ensure!(!command.is_empty(), "the injected container has no command");
        ensure!(
            command[0].ends_with("/s3-seed"),
            "unexpected entrypoint {}",
            command[0]
        );
        let mounts = container["volumeMounts"]
            .as_array()
            .context("no volumeMounts")?;
        let mut mapped = Vec::new();
        for mount in mounts {
            let mount_path = mount["mountPath"].as_str().context("no mountPath")?;
            let name = mount["name"].as_str().context("no volume name")?;
            let mut target = volumes.join(name);
            if let Some(sub) = mount["subPath"].as_str() {
                target = target.join(sub);
            }
            std::fs::create_dir_all(&target)?;
            mapped.push((mount_path.to_owned(), target));
        }
        let env = resolve_env(container, &mapped)?;
        command.extend(args);
        Ok(Run {
            program: binary.to_owned(),
            args: command.split_off(1),
            env,
            targets: mapped.into_iter().map(|(_, t)| t).collect(),
        })
    }

    /// Run to completion and print its summary lines (one per source).
    pub async fn execute(&self) -> Result<()> {
        let start = Instant::now();
        let output = tokio::process::Command::new(&self.program)
            .args(&self.args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .await
            .with_context(|| format!("start {}", self.program.display()))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            bail!(
                "s3-seed sync exited with {}:\n{stderr}{stdout}",
                output.status
            );
        }
        let summaries: Vec<&str> = stdout
            .lines()
            .filter(|l| l.starts_with("sync done"))
            .map(str::trim)
            .collect();
        ensure!(
            summaries.len() == self.targets.len(),
            "expected one summary line per source, got:\n{stdout}"
        );
        println!(
            "    $ s3-seed {} ({:.2} s)\n    {}",
            self.args.join(" "),
            start.elapsed().as_secs_f64(),
            summaries.join("\n    ")
        );
        Ok(())
    }
}

/// The container's env with secretKeyRefs resolved and every mount path
/// (also inside `S3_SEED_SOURCES`) mapped to its local directory.
fn resolve_env(container: &Value, mounts: &[(String, PathBuf)]) -> Result<Vec<(String, String)>> {
    let secret = secret_values()?;
    let mut env = Vec::new();
    println!("    env of the injected container:");
    for var in container["env"].as_array().context("no env")? {
        let name = var["name"]
            .as_str()
            .context("env without a name")?
            .to_owned();
        let value = if let Some(v) = var["value"].as_str() {
            (mounts.iter()).fold(v.to_owned(), |v, (mount_path, target)| {
                v.replace(mount_path.as_str(), &target.display().to_string())
            })
        } else if let Some(key) = var["valueFrom"]["secretKeyRef"]["key"].as_str() {
            match secret.get(key) {
                Some(v) => v.clone(),
                None if var["valueFrom"]["secretKeyRef"]["optional"] == true => continue,
                None => bail!("env {name}: the Secret has no key {key}"),
            }
        } else {
            bail!("env {name}: unsupported source {var}");
        };
        let shown = if var["value"].is_string() {
            value.as_str()
        } else {
            "<from Secret>"
        };
        println!("      {name}={shown}");
        env.push((name, value));
    }
    Ok(env)
}

/// The s3-seed binary next to this example (`target/<profile>/s3-seed`),
/// built first when it is missing and cargo is at hand.
pub fn sync_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("the demo does not run from target/<profile>/examples")?;
    let binary = profile_dir.join("s3-seed");
    if !binary.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let release = profile_dir.ends_with("release");
        let mut build = std::process::Command::new(cargo);
        build.args(["build", "--locked", "--bin", "s3-seed"]);
        if release {
            build.arg("--release");
        }
        let status = build
            .status()
            .context("run cargo build for the s3-seed binary")?;
        ensure!(status.success(), "cargo build --bin s3-seed failed");
    }
    ensure!(binary.exists(), "{} is missing", binary.display());
    Ok(binary)
}
