//! One sync per target at a time: an exclusive `flock` on
//! `TARGET/.s3-seed/lock`, kept by the [`Target`] (so for as long as any
//! work of the run, even a blocking write finishing after a failure, can
//! still touch the target).
//!
//! Two runs on one target would share `.s3-seed/tmp/`, the resume records
//! and the state file; the lock makes every other part of the sync free to
//! assume it is alone. The kernel drops the lock when the holder's file is
//! closed, so a holder killed with SIGKILL never leaves a stale lock. The
//! holder writes `pid N on host H` into the file, so a run that has to wait
//! can say who it waits for. It waits at most `--lock-timeout-secs`, then
//! fails with [`SyncError::Locked`] (its own exit code).

use std::fs::{File, TryLockError};
use std::os::unix::fs::FileExt as _;
use std::time::{Duration, Instant};

use super::error::SyncError;
use super::keys::RESERVED;
use super::target::Target;

const FILE: &str = "lock";
/// How often a waiting run tries again.
const POLL: Duration = Duration::from_millis(100);

/// The held lock; dropping it (or the process dying) releases it.
#[derive(Debug)]
pub struct TargetLock {
    _file: File,
}

/// What a waiting run does next.
#[derive(Debug, PartialEq, Eq)]
pub enum Wait {
    /// Sleep this long, then try again.
    Retry(Duration),
    GiveUp,
}

/// Pure: after `waited` of at most `timeout`, try again (never sleeping past
/// the deadline) or give up.
pub fn next(waited: Duration, timeout: Duration) -> Wait {
    match timeout.checked_sub(waited) {
        Some(left) if !left.is_zero() => Wait::Retry(POLL.min(left)),
        _ => Wait::GiveUp,
    }
}

/// Take the target's lock, waiting at most `timeout` for another run to end.
pub async fn acquire(target: &Target, timeout: Duration) -> Result<TargetLock, SyncError> {
    let file = target.open_meta(FILE, false)?;
    let path = target.path().join(RESERVED).join(FILE);
    let started = Instant::now();
    let mut seen = None;
    loop {
        match file.try_lock() {
            Ok(()) => {
                announce(&file);
                return Ok(TargetLock { _file: file });
            }
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(e)) => return Err(SyncError::io(path, e)),
        }
        let holder = holder(&file);
        if seen.as_ref() != Some(&holder) {
            tracing::warn!(
                %holder,
                timeout_s = timeout.as_secs(),
                "another s3-seed sync is running on this target; waiting for it to finish"
            );
            seen = Some(holder.clone());
        }
        match next(started.elapsed(), timeout) {
            Wait::Retry(pause) => tokio::time::sleep(pause).await,
            Wait::GiveUp => {
                return Err(SyncError::Locked {
                    dir: target.path().to_owned(),
                    holder,
                    waited_secs: started.elapsed().as_secs(),
                });
            }
        }
    }
}

/// Write who holds the lock (best effort: it only serves messages).
fn announce(file: &File) {
    let host = rustix::system::uname();
    let line = format!(
        "pid {} on host {}\n",
        std::process::id(),
        host.nodename().to_string_lossy()
    );
    let _ = file.set_len(0);
    let _ = file.write_all_at(line.as_bytes(), 0);
}

/// Who holds the lock, as its holder wrote it: one short printable line.
fn holder(file: &File) -> String {
    let mut buf = [0u8; 200];
    let n = file.read_at(&mut buf, 0).unwrap_or(0);
    describe(&String::from_utf8_lossy(&buf[..n]))
}

/// Pure: the holder's line for a message, or why it is unknown.
pub fn describe(text: &str) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    let clean: String = line.chars().filter(|c| !c.is_control()).take(120).collect();
    if clean.is_empty() {
        "an unnamed process (it has not written its pid yet)".to_owned()
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_until_the_deadline_and_no_longer() {
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        let cases = [
            (s(0), s(300), Wait::Retry(POLL)),
            (s(299), s(300), Wait::Retry(POLL)),
            (ms(299_950), s(300), Wait::Retry(ms(50))),
            (s(300), s(300), Wait::GiveUp),
            (s(301), s(300), Wait::GiveUp),
            (s(0), s(0), Wait::GiveUp),
        ];
        for (waited, timeout, want) in cases {
            assert_eq!(next(waited, timeout), want, "{waited:?} of {timeout:?}");
        }
    }

    #[test]
    fn describes_the_holder_in_one_clean_line() {
        let cases = [
            ("pid 7 on host web-0\n", "pid 7 on host web-0"),
            ("pid 7 on host a\x1b[31m\nsecond", "pid 7 on host a[31m"),
            ("", "an unnamed process (it has not written its pid yet)"),
            (
                "  \n",
                "an unnamed process (it has not written its pid yet)",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(describe(text), want, "{text:?}");
        }
    }

    #[tokio::test]
    async fn a_second_lock_waits_for_the_bound_and_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let target = Target::open(dir.path()).unwrap();
        let held = acquire(&target, Duration::ZERO).await.unwrap();
        let started = Instant::now();
        let err = acquire(&target, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(300));
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        assert_eq!(err.exit_code(), 10);
        drop(held);
        acquire(&target, Duration::ZERO).await.unwrap();
    }
}
