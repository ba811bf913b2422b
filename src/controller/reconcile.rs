//! One reconcile of one StatefulSet: read it and, when due, poll its source;
//! ask [`decide`] what to do; then do it, and say so in an Event, a log
//! line and the metrics. Requeueing and backoff are the runtime's: the
//! returned [`Action`] asks to come back when the next poll is due (or when
//! a held-back rollout may go), and every change of the StatefulSet (its
//! status during a rollout, say) brings it back earlier, without a poll.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::Context;
use super::decide::{Decision, Facts, Progress, Strategy, Wait, decide, in_flight};
use super::error::ReconcileError;
use super::revision::{Changes, Revision};
use super::tracked::{Tracked, first_delay, next_delay};
use crate::contract::{Rollout, SOURCE_REVISION, SeedSpec};

/// The field manager of the controller's patches.
pub const FIELD_MANAGER: &str = "s3-seed-controller";
/// How soon a rollout held back by the cluster-wide limit is tried again.
const CLUSTER_RETRY: Duration = Duration::from_secs(5);

/// What the runtime calls for every StatefulSet event and requeue.
pub async fn reconcile(sts: Arc<StatefulSet>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let key = ObjectRef::from_obj(&*sts);
    let Some(spec) = opted_in(&sts) else {
        ctx.forget(&key);
        return Ok(Action::await_change());
    };
    poll_if_due(&ctx, &key, &sts, spec).await;
    let recorded = sts
        .annotations()
        .get(SOURCE_REVISION)
        .map(|v| Revision::stored(v));
    let strategy = strategy(&sts);
    // A rollout is started under the gate, so two reconciles never both
    // take the last slot of the cluster-wide limit.
    let _gate = if may_roll(&ctx, &key, recorded.as_ref(), strategy) {
        Some(ctx.gate.lock().await)
    } else {
        None
    };
    let (decision, plan) = {
        let memory = ctx.memory();
        let Some(tracked) = memory.get(&key) else {
            return Ok(Action::requeue(ctx.cfg.poll_interval));
        };
        let now = Instant::now();
        let facts = Facts {
            recorded: recorded.as_ref(),
            polled: tracked.polled_revision(),
            strategy,
            in_flight: rolling(&sts, strategy, tracked),
            since_last_rollout: tracked.last_rollout.map(|(at, _)| now - at),
            rolling_elsewhere: rolling_elsewhere(&ctx, &key, &memory),
        };
        let decision = decide(&facts, &ctx.cfg.pacing);
        (decision, Plan::of(tracked, recorded.as_ref()))
    };
    act(&ctx, &sts, &key, decision, plan).await
}

/// The spec of an opted-in StatefulSet (`Err`: opted in, but its
/// annotations do not parse), `None` when it is not opted in.
fn opted_in(sts: &StatefulSet) -> Option<Result<SeedSpec, String>> {
    let annotations = sts.annotations();
    if Rollout::from_annotations(annotations) != Ok(Rollout::OnChange) {
        return None;
    }
    match SeedSpec::from_annotations(annotations) {
        Ok(Some(spec)) => Some(Ok(spec)),
        Ok(None) => None,
        Err(e) => Some(Err(e.to_string())),
    }
}

/// Poll the source if this StatefulSet's poll is due, and remember the result.
async fn poll_if_due(
    ctx: &Context,
    key: &ObjectRef<StatefulSet>,
    sts: &StatefulSet,
    spec: Result<SeedSpec, String>,
) {
    let now = Instant::now();
    let due = {
        let mut memory = ctx.memory();
        let interval = ctx.cfg.poll_interval;
        let tracked = memory
            .entry(key.clone())
            .or_insert_with(|| Tracked::new(now + first_delay(interval, rand_unit())));
        let due = tracked.next_poll <= now;
        if due {
            tracked.next_poll = now + next_delay(interval, rand_unit());
        }
        ctx.metrics.set_watched(memory.len());
        due
    };
    if !due {
        return;
    }
    let namespace = sts.namespace().unwrap_or_default();
    let polled = match spec {
        Ok(spec) => ctx
            .poller
            .poll(&namespace, &spec)
            .await
            .map_err(|e| e.to_string()),
        Err(reason) => Err(reason),
    };
    ctx.metrics.poll(polled.is_ok());
    if let Some(tracked) = ctx.memory().get_mut(key) {
        tracked.polled = Some(polled);
        tracked.fresh = true;
    }
}

/// True when this reconcile may start a rollout (so it must take the gate).
fn may_roll(
    ctx: &Context,
    key: &ObjectRef<StatefulSet>,
    recorded: Option<&Revision>,
    strategy: Strategy,
) -> bool {
    let memory = ctx.memory();
    let polled = memory.get(key).and_then(|t| t.polled_revision());
    strategy != Strategy::OnDelete && matches!((recorded, polled), (Some(r), Some(Ok(p))) if r != p)
}

fn strategy(sts: &StatefulSet) -> Strategy {
    let update = sts.spec.as_ref().and_then(|s| s.update_strategy.as_ref());
    match update.and_then(|u| u.type_.as_deref()) {
        Some("OnDelete") => Strategy::OnDelete,
        _ => Strategy::RollingUpdate {
            partition: update
                .and_then(|u| u.rolling_update.as_ref())
                .and_then(|r| r.partition)
                .unwrap_or(0),
        },
    }
}

fn progress(sts: &StatefulSet) -> Progress<'_> {
    let status = sts.status.as_ref();
    Progress {
        generation: sts.metadata.generation.unwrap_or(0),
        observed_generation: status.and_then(|s| s.observed_generation).unwrap_or(0),
        replicas: sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        ready: status.and_then(|s| s.ready_replicas).unwrap_or(0),
        updated: status.and_then(|s| s.updated_replicas).unwrap_or(0),
        current_revision: status.and_then(|s| s.current_revision.as_deref()),
        update_revision: status.and_then(|s| s.update_revision.as_deref()),
    }
}

/// In flight by its status, or by the rollout this process started and
/// whose generation the status has not seen yet (the view may lag a patch).
fn rolling(sts: &StatefulSet, strategy: Strategy, tracked: &Tracked) -> bool {
    let p = progress(sts);
    let unseen = tracked
        .last_rollout
        .is_some_and(|(_, generation)| p.observed_generation < generation);
    unseen || in_flight(&p, strategy)
}

/// Opted-in StatefulSets other than `me` whose rollout is in flight.
fn rolling_elsewhere(
    ctx: &Context,
    me: &ObjectRef<StatefulSet>,
    memory: &super::tracked::Memory,
) -> usize {
    ctx.store
        .state()
        .iter()
        .filter(|sts| opted_in(sts).is_some())
        .filter(|sts| {
            let key = ObjectRef::from_obj(&***sts);
            if key == *me {
                return false;
            }
            match memory.get(&key) {
                Some(tracked) => rolling(sts, strategy(sts), tracked),
                None => in_flight(&progress(sts), strategy(sts)),
            }
        })
        .count()
}

/// What acting on a decision needs from the memory, copied out of its lock.
struct Plan {
    fresh: bool,
    next_poll: Instant,
    polled: Option<Result<Revision, String>>,
    /// What changed since the recorded revision, when known.
    changes: Option<Changes>,
}

impl Plan {
    fn of(tracked: &Tracked, recorded: Option<&Revision>) -> Self {
        let polled = tracked.polled.as_ref();
        let changes = match (&tracked.baseline, polled) {
            (Some((base, print)), Some(Ok(now))) if Some(base) == recorded => {
                Some(Changes::between(print, &now.fingerprint))
            }
            _ => None,
        };
        Self {
            fresh: tracked.fresh,
            next_poll: tracked.next_poll,
            polled: polled.map(|p| p.as_ref().map(|p| p.revision.clone()).map_err(Clone::clone)),
            changes,
        }
    }
}

/// Carry out `decision`, tell about it, and pick when to come back.
async fn act(
    ctx: &Context,
    sts: &StatefulSet,
    key: &ObjectRef<StatefulSet>,
    decision: Decision,
    plan: Plan,
) -> Result<Action, ReconcileError> {
    let recorded = sts.annotations().get(SOURCE_REVISION).cloned();
    let from = recorded.as_deref().unwrap_or("none");
    let to = match &plan.polled {
        Some(Ok(revision)) => revision.to_string(),
        _ => String::new(),
    };
    let changes = plan.changes.map_or_else(
        || {
            "what changed is not known (the recorded revision was not listed by this controller)"
                .to_owned()
        },
        |c| c.to_string(),
    );
    let mut requeue = plan.next_poll.saturating_duration_since(Instant::now());
    let loud = plan.fresh
        || matches!(
            decision,
            Decision::Record | Decision::Rollout | Decision::RecordOnly
        );
    log(
        sts,
        decision,
        from,
        &to,
        loud,
        plan.polled.as_ref().and_then(|p| p.as_ref().err()),
    );
    if loud {
        ctx.metrics.decision(decision.as_str());
    }
    match decision {
        Decision::NotPolled | Decision::Unchanged => {}
        Decision::Unavailable => {
            if plan.fresh {
                let reason = plan
                    .polled
                    .as_ref()
                    .and_then(|p| p.as_ref().err())
                    .cloned()
                    .unwrap_or_default();
                let note = format!("source cannot be listed: {reason}; nothing was changed");
                event(
                    ctx,
                    sts,
                    EventType::Warning,
                    "SourceUnavailable",
                    "Poll",
                    note,
                )
                .await;
            }
        }
        Decision::Record => {
            write(ctx, sts, &to, false).await?;
        }
        Decision::RecordOnly => {
            write(ctx, sts, &to, false).await?;
            let note = format!(
                "source revision {from} -> {to} ({changes}); updateStrategy OnDelete: \
                 pods are not restarted, each syncs the new revision when it is deleted"
            );
            event(
                ctx,
                sts,
                EventType::Normal,
                "RevisionRecorded",
                "Record",
                note,
            )
            .await;
        }
        Decision::Rollout => {
            let patched = write(ctx, sts, &to, true).await?;
            let generation = patched.metadata.generation.unwrap_or(0);
            if let Some(tracked) = ctx.memory().get_mut(key) {
                tracked.last_rollout = Some((Instant::now(), generation));
            }
            ctx.metrics.rollout_started();
            let note = format!("source revision {from} -> {to}: {changes}");
            event(
                ctx,
                sts,
                EventType::Normal,
                "RolloutStarted",
                "Rollout",
                note,
            )
            .await;
        }
        Decision::Wait(Wait::TooSoon(left)) => requeue = requeue.min(left),
        Decision::Wait(Wait::ClusterLimit) => requeue = requeue.min(CLUSTER_RETRY),
        Decision::Wait(Wait::InFlight) => {}
    }
    if let Some(tracked) = ctx.memory().get_mut(key) {
        tracked.fresh = false;
        remember_baseline(tracked, decision);
    }
    Ok(Action::requeue(requeue.max(Duration::from_millis(100))))
}

/// After a write, or a poll that matched the record, the polled fingerprint
/// is the one of the recorded revision.
fn remember_baseline(tracked: &mut Tracked, decision: Decision) {
    let settled = matches!(
        decision,
        Decision::Unchanged | Decision::Record | Decision::Rollout | Decision::RecordOnly
    );
    if let (true, Some(Ok(polled))) = (settled, &tracked.polled) {
        tracked.baseline = Some((polled.revision.clone(), polled.fingerprint.clone()));
    }
}

/// Record `revision` on the StatefulSet, and on its pod template when
/// `template` (which rolls the pods). The patch carries the resourceVersion
/// the decision was made on, so a decision on a stale view fails (409) and
/// is made again, instead of being applied twice.
async fn write(
    ctx: &Context,
    sts: &StatefulSet,
    revision: &str,
    template: bool,
) -> Result<StatefulSet, ReconcileError> {
    let mut patch = json!({"metadata": {
        "resourceVersion": sts.resource_version(),
        "annotations": {SOURCE_REVISION: revision},
    }});
    if template {
        patch["spec"] =
            json!({"template": {"metadata": {"annotations": {SOURCE_REVISION: revision}}}});
    }
    let namespace = sts.namespace().unwrap_or_default();
    let api: Api<StatefulSet> = Api::namespaced(ctx.kube.clone(), &namespace);
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    api.patch(&sts.name_any(), &params, &Patch::Merge(&patch))
        .await
        .map_err(|error| ReconcileError::Patch {
            name: format!("{namespace}/{}", sts.name_any()),
            error,
        })
}

/// Publish an Event on the StatefulSet; a failure is logged, not fatal.
async fn event(
    ctx: &Context,
    sts: &StatefulSet,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let ev = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note),
        action: action.to_owned(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &sts.object_ref(&())).await {
        tracing::warn!(namespace = sts.namespace().unwrap_or_default(), name = sts.name_any(), error = %e, "event not published");
    }
}

/// One structured line per decision: at info after a poll or for a write,
/// at debug when a change of the StatefulSet alone brought it back.
fn log(
    sts: &StatefulSet,
    decision: Decision,
    recorded: &str,
    polled: &str,
    loud: bool,
    reason: Option<&String>,
) {
    let namespace = sts.namespace().unwrap_or_default();
    let name = sts.name_any();
    let decision = decision.as_str();
    let reason = reason.map(String::as_str).unwrap_or("");
    if loud {
        tracing::info!(%namespace, %name, decision, recorded, polled, reason, "decision");
    } else {
        tracing::debug!(%namespace, %name, decision, recorded, polled, reason, "decision");
    }
}

/// The runtime's error policy: log, and try again soon.
pub fn error_policy(sts: Arc<StatefulSet>, error: &ReconcileError, _ctx: Arc<Context>) -> Action {
    tracing::warn!(
        namespace = sts.namespace().unwrap_or_default(),
        name = sts.name_any(),
        %error,
        "reconcile failed; retrying"
    );
    Action::requeue(Duration::from_secs(5))
}

/// A uniform number in `[0, 1)` for jitter.
fn rand_unit() -> f64 {
    use rand::{Rng, SeedableRng};
    rand::rngs::StdRng::from_os_rng().random::<f64>()
}
