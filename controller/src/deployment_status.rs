//! Deployment status as `kubectl rollout status` reads it: counts summed over the
//! ReplicaSets, and the Available and Progressing conditions with their Kubernetes reasons.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// What happened in this sync that the Progressing condition reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolloutEvent {
    /// The new ReplicaSet was created now.
    Created,
    /// Nothing notable.
    None,
}

/// The facts the status is computed from.
pub struct StatusInput<'a> {
    /// Every ReplicaSet the Deployment owns.
    pub all: &'a [ReplicaSet],
    /// The ReplicaSet of the current template, if it exists.
    pub new_rs: Option<&'a ReplicaSet>,
    /// `spec.replicas`.
    pub desired: i32,
    /// Absolute maxUnavailable.
    pub max_unavailable: i32,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// `spec.paused`.
    pub paused: bool,
    /// `spec.progressDeadlineSeconds`.
    pub progress_deadline: Option<i32>,
    /// The status currently stored.
    pub old: &'a DeploymentStatus,
    /// What this sync did.
    pub event: RolloutEvent,
    /// The clock.
    pub now: Timestamp,
}

fn rs_status(rs: &ReplicaSet) -> (i32, i32, i32) {
    let s = rs.status.clone().unwrap_or_default();
    (
        s.replicas,
        s.ready_replicas.unwrap_or(0),
        s.available_replicas.unwrap_or(0),
    )
}

fn rs_name(rs: Option<&ReplicaSet>) -> String {
    rs.and_then(|r| r.metadata.name.clone()).unwrap_or_default()
}

/// Sets `cond` in `conds`, keeping lastTransitionTime when the status did not change and
/// lastUpdateTime too when neither status nor reason changed (unless `touch`).
fn set_condition(conds: &mut Vec<DeploymentCondition>, mut cond: DeploymentCondition, touch: bool) {
    if let Some(cur) = conds.iter().find(|c| c.type_ == cond.type_)
        && cur.status == cond.status
    {
        cond.last_transition_time = cur.last_transition_time.clone();
        if cur.reason == cond.reason && !touch {
            cond.last_update_time = cur.last_update_time.clone();
            cond.message = cur.message.clone().or(cond.message);
        }
    }
    conds.retain(|c| c.type_ != cond.type_);
    conds.push(cond);
}

fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// Whether the rollout is complete: every desired replica updated and available, and no
/// old replica left.
pub fn is_complete(s: &DeploymentStatus, desired: i32) -> bool {
    s.updated_replicas.unwrap_or(0) == desired
        && s.replicas.unwrap_or(0) == desired
        && s.available_replicas.unwrap_or(0) == desired
}

/// The new status; the Progressing condition's deadline is judged against `now`.
pub fn compute(input: &StatusInput) -> DeploymentStatus {
    let (mut replicas, mut ready, mut available) = (0, 0, 0);
    for rs in input.all {
        let (r, rd, a) = rs_status(rs);
        replicas += r;
        ready += rd;
        available += a;
    }
    let updated = input.new_rs.map_or(0, |rs| rs_status(rs).0);
    let mut s = DeploymentStatus {
        replicas: Some(replicas),
        updated_replicas: Some(updated),
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        unavailable_replicas: Some((input.desired - available).max(0)),
        observed_generation: input.generation,
        collision_count: input.old.collision_count,
        conditions: None,
        terminating_replicas: None,
    };
    let now = input.now;
    let mut conds = input.old.conditions.clone().unwrap_or_default();
    if available >= input.desired - input.max_unavailable {
        set_condition(
            &mut conds,
            condition(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".into(),
                now,
            ),
            false,
        );
    } else {
        set_condition(
            &mut conds,
            condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.".into(),
                now,
            ),
            false,
        );
    }

    let name = rs_name(input.new_rs);
    let prev = conds.iter().find(|c| c.type_ == "Progressing").cloned();
    let prev_reason = prev
        .as_ref()
        .and_then(|c| c.reason.clone())
        .unwrap_or_default();
    let old_old = input.old.replicas.unwrap_or(0) - input.old.updated_replicas.unwrap_or(0);
    let progressed = updated > input.old.updated_replicas.unwrap_or(0)
        || replicas - updated < old_old
        || ready > input.old.ready_replicas.unwrap_or(0)
        || available > input.old.available_replicas.unwrap_or(0);
    let progressing = if input.paused {
        Some((
            condition(
                "Progressing",
                "Unknown",
                "DeploymentPaused",
                "Deployment is paused".into(),
                now,
            ),
            false,
        ))
    } else if prev_reason == "DeploymentPaused" {
        Some((
            condition(
                "Progressing",
                "Unknown",
                "DeploymentResumed",
                "Deployment is resumed".into(),
                now,
            ),
            false,
        ))
    } else if input.new_rs.is_some() && is_complete(&s, input.desired) {
        Some((
            condition(
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                format!("ReplicaSet \"{name}\" has successfully progressed."),
                now,
            ),
            false,
        ))
    } else if input.event == RolloutEvent::Created {
        Some((
            condition(
                "Progressing",
                "True",
                "NewReplicaSetCreated",
                format!("Created new replica set \"{name}\""),
                now,
            ),
            true,
        ))
    } else if progressed && input.new_rs.is_some() {
        Some((
            condition(
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                format!("ReplicaSet \"{name}\" is progressing."),
                now,
            ),
            true,
        ))
    } else if prev.is_none() && input.new_rs.is_some() {
        Some((
            condition(
                "Progressing",
                "True",
                "FoundNewReplicaSet",
                format!("Found new replica set \"{name}\""),
                now,
            ),
            true,
        ))
    } else if let (Some(p), Some(deadline)) = (&prev, input.progress_deadline) {
        let last = p.last_update_time.as_ref().map(|t| t.0).unwrap_or(now);
        let timed_out =
            p.status == "True" && last + SignedDuration::from_secs(i64::from(deadline)) < now;
        timed_out.then(|| {
            (
                condition(
                    "Progressing",
                    "False",
                    "ProgressDeadlineExceeded",
                    format!("ReplicaSet \"{name}\" has timed out progressing."),
                    now,
                ),
                false,
            )
        })
    } else {
        None
    };
    if let Some((c, touch)) = progressing {
        set_condition(&mut conds, c, touch);
    }
    // Kubernetes lists Available before Progressing.
    conds.sort_by_key(|c| if c.type_ == "Available" { 0 } else { 1 });
    s.conditions = Some(conds);
    s
}

/// How long until the Progressing deadline passes, if the rollout is still running.
pub fn until_deadline(
    status: &DeploymentStatus,
    deadline: Option<i32>,
    now: Timestamp,
) -> Option<SignedDuration> {
    let deadline = deadline?;
    let p = status
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Progressing")?;
    if p.status != "True" || p.reason.as_deref() == Some("NewReplicaSetAvailable") {
        return None;
    }
    let last = p.last_update_time.as_ref()?.0;
    Some((last + SignedDuration::from_secs(i64::from(deadline))).duration_since(now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rs(name: &str, replicas: i32, available: i32) -> ReplicaSet {
        serde_json::from_value(json!({"metadata": {"name": name},
            "status": {"replicas": replicas, "readyReplicas": available, "availableReplicas": available}})).unwrap()
    }

    fn reason(s: &DeploymentStatus, t: &str) -> (String, String) {
        let c = s
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == t)
            .unwrap();
        (c.status.clone(), c.reason.clone().unwrap())
    }

    #[test]
    fn counts_and_conditions_through_a_rollout() {
        let old = rs("web-old", 3, 3);
        let new = rs("web-new", 1, 0);
        let all = [old.clone(), new.clone()];
        let t0 = Timestamp::from_second(1_000).unwrap();
        let base = DeploymentStatus::default();
        let input = StatusInput {
            all: &all,
            new_rs: Some(&new),
            desired: 3,
            max_unavailable: 0,
            generation: Some(2),
            paused: false,
            progress_deadline: Some(600),
            old: &base,
            event: RolloutEvent::Created,
            now: t0,
        };
        let s = compute(&input);
        assert_eq!(
            (
                s.replicas,
                s.updated_replicas,
                s.available_replicas,
                s.unavailable_replicas
            ),
            (Some(4), Some(1), Some(3), Some(0))
        );
        assert_eq!(
            reason(&s, "Progressing"),
            ("True".into(), "NewReplicaSetCreated".into())
        );
        assert_eq!(
            reason(&s, "Available"),
            ("True".into(), "MinimumReplicasAvailable".into())
        );

        // No progress for longer than the deadline.
        let later = Timestamp::from_second(1_000 + 601).unwrap();
        let s2 = compute(&StatusInput {
            old: &s,
            event: RolloutEvent::None,
            now: later,
            ..input
        });
        assert_eq!(
            reason(&s2, "Progressing"),
            ("False".into(), "ProgressDeadlineExceeded".into())
        );
        assert!(!is_complete(&s2, 3));

        // Done.
        let done = [rs("web-new", 3, 3)];
        let s3 = compute(&StatusInput {
            all: &done,
            new_rs: Some(&done[0]),
            old: &s2,
            event: RolloutEvent::None,
            now: later,
            ..input
        });
        assert_eq!(
            reason(&s3, "Progressing"),
            ("True".into(), "NewReplicaSetAvailable".into())
        );
        assert!(is_complete(&s3, 3));
        assert_eq!(until_deadline(&s3, Some(600), later), None);
    }

    #[test]
    fn paused_and_unavailable() {
        let all = [rs("web-a", 3, 1)];
        let base = DeploymentStatus::default();
        let now = Timestamp::from_second(5).unwrap();
        let s = compute(&StatusInput {
            all: &all,
            new_rs: Some(&all[0]),
            desired: 3,
            max_unavailable: 1,
            generation: Some(1),
            paused: true,
            progress_deadline: Some(600),
            old: &base,
            event: RolloutEvent::None,
            now,
        });
        assert_eq!(
            reason(&s, "Available"),
            ("False".into(), "MinimumReplicasUnavailable".into())
        );
        assert_eq!(
            reason(&s, "Progressing"),
            ("Unknown".into(), "DeploymentPaused".into())
        );
    }
}
