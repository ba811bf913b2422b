//! Two syncs on one target: the second waits for the first (bounded by
//! `S3_SEED_LOCK_TIMEOUT_SECS`, naming the holder, exit code 10 when the
//! bound runs out), and over rounds of overlapping runs, either of them
//! killed with SIGKILL at fixed moments, every run that reports success left
//! a tree of exactly the right bytes and no file is ever corrupt.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::types::ChecksumAlgorithm::Crc32;
use common::s3::S3Server;
use common::sync::{command, data, digest, slow_gets, tree};

/// A large object (ranged, resumable) and two small ones.
const BIG: usize = 6 * 1024 * 1024;

fn env(lock_timeout: &str) -> Vec<(&'static str, String)> {
    vec![
        ("S3_SEED_PART_SIZE", "256KiB".to_owned()),
        ("S3_SEED_CONCURRENCY", "2".to_owned()),
        ("S3_SEED_SUMMARY_FORMAT", "json".to_owned()),
        ("S3_SEED_LOCK_TIMEOUT_SECS", lock_timeout.to_owned()),
    ]
}

/// Start `s3-seed sync` with stdout and stderr going to `logs/<name>.{out,err}`.
fn spawn(s3: &S3Server, target: &Path, logs: &Path, name: &str, lock_timeout: &str) -> Child {
    let out = std::fs::File::create(logs.join(format!("{name}.out"))).unwrap();
    let err = std::fs::File::create(logs.join(format!("{name}.err"))).unwrap();
    let env = env(lock_timeout);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    command(s3, "p/", target, &env)
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .unwrap()
}

fn log(logs: &Path, name: &str, ext: &str) -> String {
    std::fs::read_to_string(logs.join(format!("{name}.{ext}"))).unwrap_or_default()
}

/// Seed a new version of every object for `round`; returns the wanted tree.
async fn seed_round(s3: &S3Server, round: u64) -> BTreeMap<String, String> {
    let objects = [
        ("big", data(100 + round, BIG)),
        ("a", data(200 + round, 3000)),
        ("d/b", data(300 + round, 70_000)),
    ];
    let mut want = BTreeMap::new();
    for (name, body) in objects {
        s3.put_with_checksum(&format!("p/{name}"), &body, Crc32)
            .await;
        want.insert(name.to_owned(), digest(&body));
    }
    want
}

/// Wait for `child` without blocking the runtime (the server runs on it).
async fn wait(child: &mut Child) -> ExitStatus {
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One round: A starts; B starts `.0` ms later; `.1` names the run killed
/// with SIGKILL and when (ms after A started).
type Round = (u64, Option<(char, u64)>);

/// Run A and B of `round` on `target` as `plan` says; their exit statuses.
async fn run_round(
    s3: &S3Server,
    target: &Path,
    logs: &Path,
    round: usize,
    plan: Round,
) -> Vec<(char, ExitStatus)> {
    let (b_at, kill) = plan;
    let started = Instant::now();
    let name = |who: char| format!("r{round}-{who}");
    let mut runs = [
        ('A', Some(spawn(s3, target, logs, &name('A'), "60"))),
        ('B', None),
    ];
    let (mut b_started, mut killed, mut statuses) = (false, false, Vec::new());
    while statuses.len() < 2 {
        let ms = started.elapsed().as_millis() as u64;
        if !b_started && ms >= b_at {
            runs[1].1 = Some(spawn(s3, target, logs, &name('B'), "60"));
            b_started = true;
        }
        for (who, child) in runs.iter_mut() {
            let Some(c) = child else { continue };
            if !killed && kill.is_some_and(|(w, at)| w == *who && ms >= at) {
                let _ = c.kill();
                killed = true;
            }
            if let Some(status) = c.try_wait().unwrap() {
                statuses.push((*who, status));
                *child = None;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "round {round} hangs"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_runs_killed_on_a_schedule_never_install_wrong_bytes() {
    let s3 = S3Server::start().await;
    slow_gets(&s3, Duration::from_millis(60));
    let target = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    // The first round is the reported one: B 0.4 s after A, B killed 0.3 s later.
    let schedule: [Round; 6] = [
        (400, Some(('B', 700))),
        (200, Some(('A', 600))),
        (100, None),
        (300, Some(('A', 1300))),
        (500, Some(('B', 1500))),
        (0, Some(('A', 250))),
    ];
    let mut every_version = BTreeSet::new();
    let mut want = BTreeMap::new();
    for (round, plan) in schedule.into_iter().enumerate() {
        want = seed_round(&s3, round as u64).await;
        every_version.extend(want.values().cloned());
        let statuses = run_round(&s3, target.path(), logs.path(), round, plan).await;
        let files = tree(target.path());
        for (path, d) in &files {
            assert!(
                every_version.contains(d),
                "round {round}: {path} is corrupt"
            );
        }
        for (who, status) in statuses.iter().filter(|(_, s)| s.signal() != Some(9)) {
            let name = format!("r{round}-{who}");
            let err = log(logs.path(), &name, "err");
            assert!(
                status.success(),
                "round {round}: {who} failed ({status}): {err}"
            );
            let out = log(logs.path(), &name, "out");
            assert_eq!(files, want, "round {round}: {who} reported success: {out}");
        }
    }
    // A final run finds everything in place and verified: nothing to fetch.
    let mut check = spawn(&s3, target.path(), logs.path(), "final", "60");
    assert!(wait(&mut check).await.success());
    let summary: serde_json::Value =
        serde_json::from_str(&log(logs.path(), "final", "out")).unwrap();
    assert_eq!(summary["skipped"], 3, "{summary}");
    assert_eq!(tree(target.path()), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_names_the_holder_and_gives_up_after_the_bound() {
    let s3 = S3Server::start().await;
    let big = data(9, 2 * 1024 * 1024);
    s3.put_with_checksum("p/big", &big, Crc32).await;
    // 8 ranges, 2 at a time, 1.2 s each: the holder runs for over 4.8 s.
    slow_gets(&s3, Duration::from_millis(1200));
    let target = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let mut holder = spawn(&s3, target.path(), logs.path(), "holder", "60");
    let pid = format!("pid {} on host ", holder.id());
    let lock = target.path().join(".s3-seed/lock");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&lock).is_ok_and(|l| l.starts_with(&pid)) {
        assert!(
            Instant::now() < deadline,
            "the first run never took the lock"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let term = logs.path().join("termination-log");
    let mut cmd = command(
        &s3,
        "p/",
        target.path(),
        &[
            ("S3_SEED_LOCK_TIMEOUT_SECS", "1"),
            ("S3_SEED_TERMINATION_LOG", term.to_str().unwrap()),
        ],
    );
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let waited = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(10), "{stderr}");
    assert!(
        (Duration::from_secs(1)..Duration::from_secs(10)).contains(&waited),
        "waited {waited:?} for a 1 s bound"
    );
    assert!(stderr.contains("waiting for it to finish"), "{stderr}");
    assert!(stderr.contains(&pid), "the holder is named: {stderr}");
    let line = std::fs::read_to_string(&term).unwrap();
    assert!(
        line.contains(&pid) && line.contains("--lock-timeout-secs"),
        "{line}"
    );
    assert!(
        holder.try_wait().unwrap().is_none(),
        "the holder was still running"
    );

    assert!(
        wait(&mut holder).await.success(),
        "{}",
        log(logs.path(), "holder", "err")
    );
    assert_eq!(tree(target.path())["big"], digest(&big));
    // The holder is gone: the lock is free at once.
    let mut after = spawn(&s3, target.path(), logs.path(), "after", "0");
    assert!(
        wait(&mut after).await.success(),
        "{}",
        log(logs.path(), "after", "err")
    );
}
