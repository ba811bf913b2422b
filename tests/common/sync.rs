//! What the sync tests (`tests/sync_*.rs`) share on top of the S3 harness:
//! the client and [`SyncConfig`] a test hands to `s3_seed::sync::run` for a
//! harness server, the `s3-seed sync` binary configured by env vars as the
//! init container runs it, deterministic test data, and the target tree as
//! relative path → SHA-256, so one assertion compares a whole tree and a
//! failure prints short digests instead of megabytes.
//!
//! Sizes are small on purpose: [`config`] uses 256 KiB parts, so a test
//! exercises ranged downloads with a few hundred KiB of data.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use aws_sdk_s3::Client;
use s3_seed::contract::{S3Uri, env};
use s3_seed::s3::{ClientConfig, StaticCredentials};
use s3_seed::sync::{SyncConfig, SyncError};
use sha2::Digest as _;

use super::s3::{ACCESS_KEY, Counts, Fault, REGION, Rule, S3Server, SECRET_KEY};

/// Part size of [`config`]: objects larger than this are fetched in ranges of it.
pub const PART_SIZE: u64 = 256 * 1024;
/// Stall timeout of [`config`], and read timeout of [`client`].
pub const STALL_TIMEOUT: Duration = Duration::from_secs(2);

/// A client for `s3` built by the crate's own builder
/// (`s3_seed::s3::build_client`), so the sync under test talks through
/// exactly the client policy of the binary: no SDK retries (the sync's retry
/// budget sees every attempt), no stalled-stream protection (the sync's stall
/// timeout does that), response checksums validated only when required (a
/// corrupted body must reach the sync's own verification), the connect and
/// read timeouts. Only the keys are explicit, where the binary uses the AWS
/// default chain.
pub async fn client(s3: &S3Server) -> Client {
    let config = ClientConfig {
        endpoint: Some(s3.endpoint().parse().expect("harness endpoints are valid")),
        region: Some(REGION.to_owned()),
        path_style: true,
        read_timeout: STALL_TIMEOUT,
        ca_bundle: None,
        credentials: Some(StaticCredentials {
            access_key_id: ACCESS_KEY.to_owned(),
            secret_access_key: SECRET_KEY.to_owned(),
            session_token: None,
        }),
    };
    s3_seed::s3::build_client(&config)
        .await
        .expect("a client without a CA bundle always builds")
}

/// A sync of `prefix` of the harness bucket into `target`, with small test
/// sizes: [`PART_SIZE`] parts, 4 parallel GETs, 10 ms backoff, 2 s stall timeout.
pub fn config(s3: &S3Server, prefix: &str, target: &Path) -> SyncConfig {
    let source: S3Uri = s3.uri(prefix).parse().expect("harness URIs are valid");
    let mut cfg = SyncConfig::new(source, target.to_owned());
    cfg.part_size = PART_SIZE;
    cfg.concurrency = 4;
    cfg.retry_base = Duration::from_millis(10);
    cfg.stall_timeout = STALL_TIMEOUT;
    cfg
}

/// Makes the next ranged download stop midway with a resume record on
/// disk: two slow GETs (a checkpoint is written after one second), then
/// every GET refused with 403.
pub fn interrupt_after_two_slow_gets(s3: &S3Server) {
    let slow = Rule::new(Fault::Latency(Duration::from_millis(1300)));
    s3.inject(slow.op("GetObject").times(2));
    let denied = Fault::Error {
        status: 403,
        code: "AccessDenied",
    };
    s3.inject(Rule::new(denied).op("GetObject").times(u32::MAX));
}

/// Delay every GetObject by `delay`, so a run lasts long enough to watch
/// (or to kill at a chosen moment).
pub fn slow_gets(s3: &S3Server, delay: Duration) {
    s3.inject(
        Rule::new(Fault::Latency(delay))
            .op("GetObject")
            .times(u32::MAX),
    );
}

/// Deterministic pseudo-random bytes (xorshift), different for each `seed`,
/// so no two parts of an object are alike.
pub fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect()
}

/// SHA-256 of `bytes`, lowercase hex.
pub fn digest(bytes: &[u8]) -> String {
    format!("{:x}", sha2::Sha256::digest(bytes))
}

/// Every regular file under `dir` as relative path → [`digest`] of its
/// content, skipping s3-seed's own `.s3-seed` folder at the top. Symlinks
/// are not followed (and not listed).
pub fn tree(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(folder) = stack.pop() {
        let entries =
            std::fs::read_dir(&folder).unwrap_or_else(|e| panic!("read {}: {e}", folder.display()));
        for entry in entries.flatten() {
            let path = entry.path();
            let rel = path.strip_prefix(dir).expect("entries lie under dir");
            let rel = rel.to_string_lossy().into_owned();
            let kind = entry.file_type().expect("file type of a listed entry");
            if rel == ".s3-seed" {
                continue;
            } else if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() {
                let bytes = std::fs::read(&path).expect("read a file of the tree");
                out.insert(rel, digest(&bytes));
            }
        }
    }
    out
}

/// Assert that `dir` holds exactly these files with exactly these contents.
#[track_caller]
pub fn expect_tree(dir: &Path, want: &[(&str, &[u8])]) {
    let want: BTreeMap<String, String> = want
        .iter()
        .map(|(name, bytes)| ((*name).to_owned(), digest(bytes)))
        .collect();
    assert_eq!(tree(dir), want, "files in {}", dir.display());
}

/// Assert that `s3` saw exactly these requests per operation (and no other
/// operation) since start or its last `reset_counts`.
#[track_caller]
pub fn expect_ops(s3: &S3Server, want: &[(&str, u64)], why: &str) {
    let want: BTreeMap<String, u64> = want
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(op, n)| ((*op).to_owned(), *n))
        .collect();
    assert_eq!(s3.counts().ops, want, "{why}");
}

/// The integrity path of a ranged download of `key` (installed as `big`):
/// one corrupted range is refetched and the file verified; then, with every
/// range corrupted, the run fails with exit 8 naming the key and `why`, and
/// nothing is installed. Returns the counts of the first run.
pub async fn corrupt_once_then_always(
    s3: &S3Server,
    cfg: &SyncConfig,
    key: &str,
    body: &[u8],
    why: &str,
) -> Counts {
    s3.inject(Rule::new(Fault::Corrupt).op("GetObject").ranged(true));
    s3.reset_counts();
    let s = s3_seed::sync::run(cfg, &client(s3).await).await.unwrap();
    let counts = s3.counts();
    assert_eq!((s.verified, counts.faults), (1, 1), "refetched once");
    expect_tree(&cfg.target, &[("big", body)]);

    std::fs::remove_file(cfg.target.join("big")).unwrap();
    let always = Rule::new(Fault::Corrupt).op("GetObject").key(key);
    s3.inject(always.ranged(true).times(u32::MAX));
    let err = s3_seed::sync::run(cfg, &client(s3).await)
        .await
        .unwrap_err();
    assert!(
        matches!(err, SyncError::Integrity { key: ref k, .. } if k == key),
        "{err}"
    );
    expect_failure(&err, 8, &["integrity", &format!("\"{key}\""), why]);
    expect_tree(&cfg.target, &[]);
    counts
}

/// Assert that a run failed with exit code `code` and a message containing
/// every one of `parts`.
#[track_caller]
pub fn expect_failure(err: &SyncError, code: u8, parts: &[&str]) {
    let msg = err.to_string();
    assert_eq!(err.exit_code(), code, "exit code of: {msg}");
    for part in parts {
        assert!(msg.contains(part), "{part:?} is not in: {msg}");
    }
}

/// The `s3-seed sync` binary with a clean environment holding only what the
/// webhook gives the init container (`S3_SEED_*`, static AWS keys), for
/// `prefix` of the harness bucket into `target`, plus `extra`.
pub fn command(s3: &S3Server, prefix: &str, target: &Path, extra: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_s3-seed"));
    cmd.arg("sync").env_clear().env("PATH", "/usr/bin:/bin");
    cmd.envs([
        (env::SOURCE, s3.uri(prefix)),
        (env::TARGET, target.display().to_string()),
        (env::ENDPOINT, s3.endpoint()),
        (env::PATH_STYLE, "true".to_owned()),
        (env::REGION, REGION.to_owned()),
        (env::AWS_ACCESS_KEY_ID, ACCESS_KEY.to_owned()),
        (env::AWS_SECRET_ACCESS_KEY, SECRET_KEY.to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
    ]);
    cmd.envs(extra.iter().copied());
    cmd
}

/// Run `cmd` to completion on a blocking thread, so the in-process server
/// (a task of the same runtime) keeps answering it.
pub async fn output(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("run the s3-seed binary"))
        .await
        .expect("the blocking task is not cancelled")
}

/// [`command`] run to completion with [`output`].
pub async fn run_binary(
    s3: &S3Server,
    prefix: &str,
    target: &Path,
    extra: &[(&str, &str)],
) -> Output {
    output(command(s3, prefix, target, extra)).await
}

/// A test that cannot run in this environment says so and passes, except
/// under CI (`CI` set), where the environment is known to allow it: there a
/// skip is a failure, so the test can never silently stop proving anything.
pub fn skip(why: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "this test must run in CI, but: {why}"
    );
    eprintln!("SKIPPED: {why}");
}

/// (first, last) byte of every ranged GetObject `s3` saw, sorted.
pub fn ranges_seen(s3: &S3Server) -> Vec<(u64, u64)> {
    let mut seen: Vec<(u64, u64)> = s3
        .requests()
        .iter()
        .filter(|r| r.op == "GetObject")
        .filter_map(|r| r.range.as_deref()?.strip_prefix("bytes="))
        .map(|r| {
            let (a, b) = r.split_once('-').expect("ranges are first-last");
            (a.parse().unwrap(), b.parse().unwrap())
        })
        .collect();
    seen.sort_unstable();
    seen
}

/// The resume record (`.part.json`) under `target`. The last checkpoint of
/// a failed run runs on a blocking thread that may outlive the run by a
/// moment: wait up to 5 s for it.
pub async fn resume_record(target: &Path) -> serde_json::Value {
    for _ in 0..100 {
        let dir = std::fs::read_dir(target.join(".s3-seed/tmp")).unwrap();
        let record = dir
            .flatten()
            .find(|e| e.file_name().to_string_lossy().ends_with(".part.json"));
        if let Some(record) = record {
            let bytes = std::fs::read(record.path()).unwrap();
            return serde_json::from_slice(&bytes).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no resume record in {}", target.display());
}

/// Ranges done in the resume record under `target` (the most of any part
/// file), 0 until one exists.
pub fn recorded_ranges(target: &Path) -> usize {
    let Ok(dir) = std::fs::read_dir(target.join(".s3-seed/tmp")) else {
        return 0;
    };
    dir.flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".part.json"))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .map(|v| v["done"].as_object().map_or(0, |d| d.len()))
        .max()
        .unwrap_or(0)
}
