//! The whole s3-seed flow on one machine, with no cluster:
//!
//! 1. an embedded S3 endpoint (s3s-fs, the same in-process server the tests
//!    use) seeded with a large file and a few small pages;
//! 2. the real webhook on a real TLS socket, with a freshly generated CA;
//! 3. the AdmissionReview the API server would send for
//!    `examples/web-statefulset.yaml` with a second, named source (`notes`)
//!    added, over HTTPS; the injected container is printed;
//! 4. the injected container's exact command and env, taken from the patch
//!    (secretKeyRefs resolved from the example's Secret, the volume mount
//!    mapped to a local directory, as a container runtime would), run twice:
//!    a cold sync of both sources, then a warm one that must download nothing.
//!
//! Each step is timed; the demo exits 0 when every step worked and non-zero
//! naming the step that did not. `DEMO_BIG_MIB` sets the size of the large
//! file (default 256).

mod https;
mod pod;
/// The in-process S3 server of the test suite (s3s + s3s-fs, with the
/// ETags in listings and `If-Match` that real S3 has, and request counting).
#[allow(dead_code, unused_imports)]
#[path = "../../tests/common/s3/mod.rs"]
mod s3;
/// The test suite's TLS helpers: certificate files as a mounted Secret, the
/// webhook started in-process, and an HTTPS client trusting one CA.
#[allow(dead_code, unused_imports)]
#[path = "../../tests/common/tls/mod.rs"]
mod tls;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use s3::S3Server;
use sha2::{Digest, Sha256};

const PREFIX: &str = "web/";
/// The second source: a few notes under their own prefix.
const NOTES: &str = "notes/";

fn notes() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("release.md", b"# release notes\n".to_vec()),
        ("2025/changes.md", b"- seeded from two sources\n".to_vec()),
    ]
}

/// Files placed in the bucket: (key under PREFIX, content). The big one is
/// added separately. `drafts/**` and `*.tmp` are excluded by the example's
/// annotations and must not reach the volume.
fn small_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("index.html", b"<h1>seeded by s3-seed</h1>\n".to_vec()),
        ("pages/about.html", b"<p>about</p>\n".to_vec()),
        ("pages/contact.html", b"<p>contact</p>\n".to_vec()),
        ("drafts/next.html", b"<p>not yet</p>\n".to_vec()),
        ("upload.tmp", b"partial upload\n".to_vec()),
    ]
}

struct Demo {
    steps: Vec<(String, Duration, String)>,
}

impl Demo {
    /// Run one step; a failure (or a panic inside it) names the step.
    async fn step<T: Send + 'static>(
        &mut self,
        name: &str,
        fut: impl Future<Output = Result<(T, String)>> + Send + 'static,
    ) -> Result<T> {
        println!("\n==> {name}");
        let start = Instant::now();
        let joined = tokio::spawn(fut).await;
        let elapsed = start.elapsed();
        let (value, note) = match joined {
            Ok(Ok(done)) => done,
            Ok(Err(e)) => bail!("step '{name}' failed: {e:#}"),
            Err(e) => bail!("step '{name}' failed: {e}"),
        };
        println!("    ok in {:.2} s: {note}", elapsed.as_secs_f64());
        self.steps.push((name.to_owned(), elapsed, note));
        Ok(value)
    }
}

fn main() -> ExitCode {
    s3_seed::cli::install_crypto_provider();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("demo failed: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\ndemo failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<()> {
    let binary = pod::sync_binary().context("locate the s3-seed binary")?;
    let work = tempfile::tempdir().context("create a work directory")?;
    let big_mib: usize = std::env::var("DEMO_BIG_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let mut demo = Demo { steps: Vec::new() };

    let (s3, big_sha256) = demo
        .step("start the embedded S3 endpoint", start_s3(big_mib))
        .await?;
    let s3 = std::sync::Arc::new(s3);
    let webhook = demo
        .step("start the webhook on a TLS socket", https::start_webhook())
        .await?;
    let uri = |prefix: &str| format!("s3://{}/{prefix}", s3.bucket());
    let review = pod::admission_review(&s3.endpoint(), &uri(PREFIX), &uri(NOTES))?;
    let object = review["request"]["object"].clone();
    let (response, webhook) = demo
        .step("send the AdmissionReview over HTTPS", async move {
            let response = https::post_review(&webhook, &review).await?;
            let note = "allowed, uid echoed, with a JSON Patch".to_owned();
            Ok(((response, webhook), note))
        })
        .await?;
    let container = demo
        .step("apply the patch", async move {
            let container = pod::injected_container(&object, &response)?;
            println!("{}", serde_yaml_ng::to_string(&container)?);
            Ok((
                container,
                "one init container for both sources, first, restricted".to_owned(),
            ))
        })
        .await?;

    let volume = work.path().join("volume");
    let run = pod::Run::from_container(&container, &binary, &volume)?;
    for (name, warm) in [
        ("cold sync (the injected command)", false),
        ("warm sync (pod restart)", true),
    ] {
        let (s3, run) = (std::sync::Arc::clone(&s3), run.clone());
        let (root, big_sha256) = (volume.clone(), big_sha256.clone());
        demo.step(name, async move {
            s3.reset_counts();
            run.execute().await?;
            let counts = s3.counts();
            let gets = counts.op("GetObject");
            let lists = counts.op("ListObjectsV2");
            check_volume(&root, &run.targets, &big_sha256)?;
            if warm {
                ensure!(gets == 0, "the warm sync sent {gets} GetObject requests, expected 0");
                ensure!(counts.op("HeadObject") == 0, "the warm sync sent HEAD requests");
            } else {
                ensure!(gets > 0, "the cold sync downloaded nothing");
            }
            Ok((
                (),
                format!(
                    "server saw {lists} LIST, {gets} GET, {} HEAD, {} bytes; every file checked on disk",
                    counts.op("HeadObject"),
                    counts.get_bytes
                ),
            ))
        })
        .await?;
    }
    webhook.running.stop().await?;
    print_summary(&demo);
    Ok(())
}

/// The seeded server, and the SHA-256 of the big object to check copies against.
async fn start_s3(big_mib: usize) -> Result<((S3Server, Vec<u8>), String)> {
    let s3 = S3Server::start().await;
    let big = pseudo_random(big_mib << 20);
    s3.put_with_checksum(
        &format!("{PREFIX}data/big.bin"),
        &big,
        aws_sdk_s3::types::ChecksumAlgorithm::Crc64Nvme,
    )
    .await;
    for (key, body) in small_files() {
        s3.put(&format!("{PREFIX}{key}"), &body).await;
    }
    for (key, body) in notes() {
        s3.put(&format!("{NOTES}{key}"), &body).await;
    }
    let note = format!(
        "{} with s3://{}/{PREFIX}: data/big.bin ({big_mib} MiB) and {} small files; {NOTES}: {} notes",
        s3.endpoint(),
        s3.bucket(),
        small_files().len(),
        notes().len()
    );
    Ok(((s3, Sha256::digest(&big).to_vec()), note))
}

/// Every expected file is on disk with the right content, in the directory
/// of its source; excluded ones are not.
fn check_volume(volume: &Path, targets: &[PathBuf], big_sha256: &[u8]) -> Result<()> {
    let [target, notes_dir] = targets else {
        bail!("expected two sources, got {targets:?}");
    };
    for (key, body) in notes() {
        let path = notes_dir.join(key);
        let data = std::fs::read(&path).with_context(|| format!("read {}", path.display()))?;
        ensure!(data == body, "{} differs from the object", path.display());
    }
    ensure!(
        !target.join("release.md").exists() && !notes_dir.join("index.html").exists(),
        "a source's files landed in the other's directory"
    );
    let big = target.join("data/big.bin");
    let got =
        Sha256::digest(std::fs::read(&big).with_context(|| format!("read {}", big.display()))?);
    ensure!(
        got[..] == *big_sha256,
        "{} does not match the object",
        big.display()
    );
    for (key, body) in small_files() {
        let path = target.join(key);
        let excluded = key.starts_with("drafts/") || key.ends_with(".tmp");
        match (excluded, std::fs::read(&path)) {
            (false, Ok(data)) => {
                ensure!(data == body, "{} differs from the object", path.display())
            }
            (false, Err(e)) => bail!("{} is missing: {e}", path.display()),
            (true, Ok(_)) => bail!("{} was excluded but copied", path.display()),
            (true, Err(_)) => {}
        }
    }
    ensure!(volume.exists(), "the volume directory is gone");
    Ok(())
}

/// Deterministic incompressible bytes (xorshift), cheap to regenerate for checks.
fn pseudo_random(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn print_summary(demo: &Demo) {
    println!("\nsummary");
    println!("| step | seconds | result |");
    println!("|---|---:|---|");
    for (name, elapsed, note) in &demo.steps {
        println!("| {name} | {:.2} | {note} |", elapsed.as_secs_f64());
    }
    println!("\nall steps passed");
}
