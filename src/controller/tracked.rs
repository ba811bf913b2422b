//! What the controller remembers about each opted-in StatefulSet between
//! reconciles, in memory only: when its source is next polled, what the
//! last poll found, and the rollout it last started. Everything that must
//! survive a restart is on the StatefulSet itself (the two revision
//! annotations), so losing this costs at most a poll and the "what changed"
//! detail of the next Event, never a rollout.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use kube::runtime::reflector::ObjectRef;

use super::poll::Polled;
use super::revision::{Fingerprint, Revision};

/// Longest spread of first polls, so a controller that starts with many
/// StatefulSets does not list every source at once.
const FIRST_POLL_SPREAD: Duration = Duration::from_secs(60);

/// The delay before the first poll of a StatefulSet: `unit` (in `[0, 1)`)
/// of the spread, which is the interval or a minute, whichever is shorter.
pub fn first_delay(interval: Duration, unit: f64) -> Duration {
    interval
        .min(FIRST_POLL_SPREAD)
        .mul_f64(unit.clamp(0.0, 1.0))
}

/// The delay between two polls: the interval ±10%, by `unit` in `[0, 1)`.
pub fn next_delay(interval: Duration, unit: f64) -> Duration {
    interval.mul_f64(0.9 + 0.2 * unit.clamp(0.0, 1.0))
}

/// One StatefulSet's memory.
#[derive(Debug)]
pub struct Tracked {
    pub next_poll: Instant,
    /// The last poll: what it found, or why it failed.
    pub polled: Option<Result<Polled, String>>,
    /// The last poll has not been decided on yet (its failure is told in
    /// an Event once, its decision logged once).
    pub fresh: bool,
    /// The fingerprint of the recorded revision, to say what changed.
    pub baseline: Option<(Revision, Fingerprint)>,
    /// When this process last started a rollout, and the generation the
    /// patch gave the StatefulSet (it counts as rolling until its status
    /// has seen that generation).
    pub last_rollout: Option<(Instant, i64)>,
}

impl Tracked {
    pub fn new(first_poll: Instant) -> Self {
        Self {
            next_poll: first_poll,
            polled: None,
            fresh: false,
            baseline: None,
            last_rollout: None,
        }
    }

    /// The revision the last poll found, or why it failed.
    pub fn polled_revision(&self) -> Option<Result<&Revision, &str>> {
        self.polled.as_ref().map(|p| match p {
            Ok(polled) => Ok(&polled.revision),
            Err(reason) => Err(reason.as_str()),
        })
    }
}

/// The memory of every opted-in StatefulSet.
pub type Memory = HashMap<ObjectRef<StatefulSet>, Tracked>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_are_spread() {
        let five = Duration::from_secs(300);
        assert_eq!(first_delay(five, 0.0), Duration::ZERO);
        assert_eq!(first_delay(five, 0.5), Duration::from_secs(30));
        assert_eq!(
            first_delay(Duration::from_secs(2), 0.5),
            Duration::from_secs(1)
        );
        assert_eq!(next_delay(five, 0.0), Duration::from_secs(270));
        assert_eq!(next_delay(five, 0.5), Duration::from_secs(300));
        assert_eq!(next_delay(five, 1.0), Duration::from_secs(330));
        assert_eq!(next_delay(five, 7.0), Duration::from_secs(330));
    }
}
