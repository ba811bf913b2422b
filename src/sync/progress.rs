//! Progress counters shared by the download workers, and the task that logs
//! them every few seconds (bytes, rate, ETA) while downloads run.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tracing::Instrument as _;

/// Counters updated by workers.
#[derive(Debug)]
pub struct Progress {
    started: Instant,
    total_bytes: u64,
    total_files: u64,
    bytes: AtomicU64,
    files: AtomicU64,
    reused: AtomicU64,
}

impl Progress {
    pub fn new(total_bytes: u64, total_files: u64) -> Self {
        Self {
            started: Instant::now(),
            total_bytes,
            total_files,
            bytes: AtomicU64::new(0),
            files: AtomicU64::new(0),
            reused: AtomicU64::new(0),
        }
    }

    /// Bytes received from S3 (including those of attempts that were retried).
    pub fn add_bytes(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }

    /// Bytes of an installed object taken from the file it replaces.
    pub fn add_reused(&self, n: u64) {
        self.reused.fetch_add(n, Ordering::Relaxed);
    }

    pub fn reused(&self) -> u64 {
        self.reused.load(Ordering::Relaxed)
    }

    pub fn file_done(&self) {
        self.files.fetch_add(1, Ordering::Relaxed);
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Log one progress line.
    pub fn log(&self) {
        let done = self.bytes();
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = done as f64 / secs;
        let left = self.total_bytes.saturating_sub(done) as f64;
        // seconds left at the average rate so far (unknown before the first byte)
        let eta_s = (rate > 0.0).then(|| (left / rate).ceil() as u64);
        tracing::info!(
            bytes = done,
            total_bytes = self.total_bytes,
            files = self.files.load(Ordering::Relaxed),
            total_files = self.total_files,
            mb_per_s = (rate / 1e5).round() / 10.0,
            eta_s,
            "progress"
        );
    }

    /// Log every `every` until the returned handle is aborted, in the
    /// caller's span (which names the source when a run has several).
    pub fn spawn_reporter(self: &Arc<Self>, every: Duration) -> JoinHandle<()> {
        let me = Arc::clone(self);
        tokio::spawn(
            async move {
                let mut tick = tokio::time::interval(every);
                tick.tick().await; // the first tick is immediate
                loop {
                    tick.tick().await;
                    me.log();
                }
            }
            .in_current_span(),
        )
    }
}
