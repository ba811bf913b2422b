//! The controller's one decision, pure: given what a StatefulSet records,
//! what the last poll of its source found, and how its pods are doing,
//! record, roll out, wait, or leave it alone, and why.
//!
//! Two annotations carry the state, both named `s3-seed.io/source-revision`:
//! the StatefulSet's own (the revision last seen) and the pod template's
//! (the revision last rolled out; writing it is what makes the StatefulSet
//! controller replace the pods). The first revision ever seen is only
//! recorded, and a revision equal to the record changes nothing, so neither
//! a new StatefulSet nor a restarted controller rolls anything. A different
//! revision is written to both together, once the pacing allows it: the
//! StatefulSet's previous rollout has finished, the minimum interval since
//! the last one has passed, and fewer than the cluster-wide maximum are
//! rolling. Until then nothing is written, so every change seen meanwhile
//! coalesces into the one rollout that follows. `OnDelete` StatefulSets are
//! never restarted: the new revision is recorded, and the pods take it when
//! someone deletes them.

use std::time::Duration;

use super::revision::Revision;

/// How the StatefulSet replaces its pods after a template change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// `RollingUpdate` (the default), pods with an ordinal below
    /// `partition` excluded.
    RollingUpdate { partition: i32 },
    /// `OnDelete`: only deleted pods get the new template.
    OnDelete,
}

/// The parts of a StatefulSet's spec and status that say whether pods are
/// being replaced right now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress<'a> {
    pub generation: i64,
    pub observed_generation: i64,
    pub replicas: i32,
    pub ready: i32,
    pub updated: i32,
    pub current_revision: Option<&'a str>,
    pub update_revision: Option<&'a str>,
}

/// True while a rollout is in flight: the StatefulSet controller has not yet
/// seen the latest spec, or not every pod it should update runs the update
/// revision, or not every replica is ready. With a partition, the pods below
/// it stay at the current revision by design, so the revisions stay apart.
pub fn in_flight(p: &Progress<'_>, strategy: Strategy) -> bool {
    let partition = match strategy {
        Strategy::RollingUpdate { partition } => partition.clamp(0, p.replicas.max(0)),
        Strategy::OnDelete => 0,
    };
    p.observed_generation < p.generation
        || p.updated < p.replicas - partition
        || p.ready < p.replicas
        || (partition == 0 && p.current_revision != p.update_revision)
}

/// What the controller knows when it decides about one StatefulSet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts<'a> {
    /// `metadata.annotations["s3-seed.io/source-revision"]`.
    pub recorded: Option<&'a Revision>,
    /// The last poll of the source: its revision, or why it failed;
    /// `None` before the first poll.
    pub polled: Option<Result<&'a Revision, &'a str>>,
    pub strategy: Strategy,
    /// [`in_flight`] of this StatefulSet.
    pub in_flight: bool,
    /// Time since this controller last started a rollout of it (`None`:
    /// not since this process started).
    pub since_last_rollout: Option<Duration>,
    /// Other StatefulSets whose rollout is in flight.
    pub rolling_elsewhere: usize,
}

/// The admin's pacing flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacing {
    /// Least time between two rollouts of one StatefulSet.
    pub min_interval: Duration,
    /// StatefulSets rolling at once, cluster-wide (at least 1).
    pub max_rolling: usize,
}

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// No poll yet: nothing is known.
    NotPolled,
    /// The source could not be listed: say so, write nothing.
    Unavailable,
    /// The source is at the recorded revision.
    Unchanged,
    /// First revision seen: record it on the StatefulSet only.
    Record,
    /// A new revision: write it to the StatefulSet and its pod template.
    Rollout,
    /// A new revision of an `OnDelete` StatefulSet: record it only.
    RecordOnly,
    /// A new revision, held back.
    Wait(Wait),
}

/// Why a new revision is held back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// This StatefulSet's previous rollout is still in flight.
    InFlight,
    /// The last rollout started less than the minimum interval ago; this
    /// much is left.
    TooSoon(Duration),
    /// The cluster-wide number of rollouts in flight is reached.
    ClusterLimit,
}

impl Decision {
    /// A short name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotPolled => "not-polled",
            Self::Unavailable => "unavailable",
            Self::Unchanged => "unchanged",
            Self::Record => "record",
            Self::Rollout => "rollout",
            Self::RecordOnly => "record-on-delete",
            Self::Wait(Wait::InFlight) => "wait-in-flight",
            Self::Wait(Wait::TooSoon(_)) => "wait-min-interval",
            Self::Wait(Wait::ClusterLimit) => "wait-cluster-limit",
        }
    }
}

/// Decide what to do with one StatefulSet.
pub fn decide(facts: &Facts<'_>, pacing: &Pacing) -> Decision {
    let polled = match facts.polled {
        None => return Decision::NotPolled,
        Some(Err(_)) => return Decision::Unavailable,
        Some(Ok(revision)) => revision,
    };
    match facts.recorded {
        None => return Decision::Record,
        Some(recorded) if recorded == polled => return Decision::Unchanged,
        Some(_) => {}
    }
    if facts.strategy == Strategy::OnDelete {
        return Decision::RecordOnly;
    }
    if facts.in_flight {
        return Decision::Wait(Wait::InFlight);
    }
    if let Some(since) = facts.since_last_rollout
        && since < pacing.min_interval
    {
        return Decision::Wait(Wait::TooSoon(pacing.min_interval - since));
    }
    if facts.rolling_elsewhere >= pacing.max_rolling.max(1) {
        return Decision::Wait(Wait::ClusterLimit);
    }
    Decision::Rollout
}

#[cfg(test)]
mod tests;
