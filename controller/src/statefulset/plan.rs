//! The StatefulSet update algorithm as a pure function (`stateful_set_control.go`): which
//! pods to create, delete or repair next, in ordinal order, under OrderedReady or Parallel
//! management, followed by RollingUpdate (highest ordinal first, at or above the partition,
//! at most maxUnavailable down) or nothing for OnDelete; and the replica counts of status.

use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;

use crate::pod_control::{is_available, is_ready};

/// What the planner needs of the set and its revisions.
#[derive(Debug, Clone)]
pub struct SetView {
    /// `spec.replicas`.
    pub replicas: i32,
    /// `spec.ordinals.start`.
    pub start: i32,
    /// OrderedReady (one at a time, each waiting for its predecessors) rather than Parallel.
    pub monotonic: bool,
    /// `updateStrategy.type: OnDelete`.
    pub on_delete: bool,
    /// `rollingUpdate.partition`: indexes below it keep the current revision.
    pub partition: i32,
    /// How many replicas a rolling update may take down at once (at least 1).
    pub max_unavailable: i32,
    /// `spec.minReadySeconds`.
    pub min_ready_seconds: i32,
    /// The set is being deleted: only status is kept.
    pub deleting: bool,
    /// The name of the current revision.
    pub current_revision: String,
    /// The name of the update revision.
    pub update_revision: String,
}

/// Which revision a new pod is made at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revision {
    /// `status.currentRevision`'s template.
    Current,
    /// The newest template.
    Update,
}

/// Why a pod is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteReason {
    /// It failed or succeeded; it is made again.
    Failed,
    /// Its ordinal is outside the set's range.
    ScaleDown,
    /// It runs an older revision.
    Update,
}

/// One action of the plan, in the order it must happen.
#[derive(Debug, Clone)]
pub enum Step {
    /// Create the claims and then the pod at this ordinal.
    Create { ordinal: i32, revision: Revision },
    /// Delete this pod.
    Delete { pod: Arc<Pod>, reason: DeleteReason },
    /// Repair the pod's identity labels or its claims' ownership.
    Repair { pod: Arc<Pod>, ordinal: i32 },
}

/// The replica counts of status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub replicas: i32,
    pub ready: i32,
    pub available: i32,
    pub current: i32,
    pub updated: i32,
}

/// The plan: steps in order, and the counts once they are done.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub counts: Counts,
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

fn running_and_ready(pod: &Pod) -> bool {
    phase(pod) == "Running" && is_ready(pod)
}

fn running_and_available(pod: &Pod, min_ready: i32, now: Timestamp) -> bool {
    running_and_ready(pod) && is_available(pod, min_ready, now)
}

fn healthy(pod: &Pod, min_ready: i32, now: Timestamp) -> bool {
    running_and_available(pod, min_ready, now) && !terminating(pod)
}

fn revision_of(pod: &Pod) -> &str {
    super::identity::pod_revision(pod)
}

/// Counts of what is observed (`computeReplicaStatus`).
fn observe(set: &SetView, pods: &[(i32, Arc<Pod>)], now: Timestamp) -> Counts {
    let mut c = Counts::default();
    for (_, p) in pods {
        c.replicas += 1;
        if running_and_ready(p) {
            c.ready += 1;
            if running_and_available(p, set.min_ready_seconds, now) {
                c.available += 1;
            }
        }
        if !terminating(p) {
            if revision_of(p) == set.current_revision {
                c.current += 1;
            }
            if revision_of(p) == set.update_revision {
                c.updated += 1;
            }
        }
    }
    c
}

impl Counts {
    fn add(&mut self, set: &SetView, revision: &str, delta: i32) {
        if revision == set.current_revision {
            self.current += delta;
        }
        if revision == set.update_revision {
            self.updated += delta;
        }
    }
}

/// The revision a new pod at index `index` (its ordinal less the start) gets
/// (`newVersionedStatefulSetPod`): below the partition of a rolling update the current one.
fn revision_for(set: &SetView, index: i32) -> Revision {
    if !set.on_delete && index < set.partition {
        Revision::Current
    } else {
        Revision::Update
    }
}

fn revision_name(set: &SetView, r: Revision) -> &str {
    match r {
        Revision::Current => &set.current_revision,
        Revision::Update => &set.update_revision,
    }
}

/// Plans the next steps for the set's pods (each with its ordinal). `needs_repair` says
/// whether a healthy-enough pod's identity labels or claims need fixing.
pub fn plan(
    set: &SetView,
    pods: &[(i32, Arc<Pod>)],
    now: Timestamp,
    needs_repair: impl Fn(&Pod, i32) -> bool,
) -> Plan {
    let mut counts = observe(set, pods, now);
    let mut steps = Vec::new();
    let size = set.replicas.max(0) as usize;
    let mut replicas: Vec<Option<Arc<Pod>>> = vec![None; size];
    let mut condemned: Vec<(i32, Arc<Pod>)> = Vec::new();
    for (ord, p) in pods {
        let index = ord - set.start;
        if index >= 0 && (index as usize) < size {
            replicas[index as usize] = Some(p.clone());
        } else {
            condemned.push((*ord, p.clone()));
        }
    }
    condemned.sort_by_key(|(ord, _)| *ord);
    if set.deleting {
        return Plan { steps, counts };
    }
    let min_ready = set.min_ready_seconds;
    let first_unhealthy = replicas
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.as_ref().map(|p| (set.start + i as i32, p)))
        .chain(condemned.iter().map(|(o, p)| (*o, p)))
        .filter(|(_, p)| !healthy(p, min_ready, now))
        .min_by_key(|(o, _)| *o)
        .map(|(o, _)| o);

    // Each ordinal of the range, in order.
    for (i, slot) in replicas.iter().enumerate() {
        let ordinal = set.start + i as i32;
        let pod = match slot {
            Some(p) if matches!(phase(p), "Failed" | "Succeeded") && !terminating(p) => {
                counts.replicas -= 1;
                counts.add(set, revision_of(p), -1);
                steps.push(Step::Delete {
                    pod: p.clone(),
                    reason: DeleteReason::Failed,
                });
                if set.monotonic {
                    return Plan { steps, counts };
                }
                continue;
            }
            Some(p) => p,
            None => {
                let revision = revision_for(set, i as i32);
                counts.replicas += 1;
                counts.add(set, revision_name(set, revision), 1);
                steps.push(Step::Create { ordinal, revision });
                if set.monotonic {
                    return Plan { steps, counts };
                }
                continue;
            }
        };
        if set.monotonic && (terminating(pod) || !running_and_available(pod, min_ready, now)) {
            // Every predecessor must be Running, Ready and available before the next.
            return Plan { steps, counts };
        }
        if !terminating(pod) && needs_repair(pod, ordinal) {
            steps.push(Step::Repair {
                pod: pod.clone(),
                ordinal,
            });
        }
    }

    // Scale down, highest ordinal first.
    for (ord, pod) in condemned.iter().rev() {
        if terminating(pod) {
            if set.monotonic {
                return Plan { steps, counts };
            }
            continue;
        }
        if set.monotonic && !running_and_ready(pod) && first_unhealthy != Some(*ord) {
            return Plan { steps, counts };
        }
        counts.add(set, revision_of(pod), -1);
        steps.push(Step::Delete {
            pod: pod.clone(),
            reason: DeleteReason::ScaleDown,
        });
        if set.monotonic {
            return Plan { steps, counts };
        }
    }

    if set.on_delete {
        return Plan { steps, counts };
    }
    // Rolling update: highest index at or above the partition first, while fewer than
    // maxUnavailable replicas are down.
    let unavailable = replicas
        .iter()
        .filter(|p| p.as_ref().is_none_or(|p| !healthy(p, min_ready, now)))
        .count() as i32;
    let mut budget = set.max_unavailable.max(1) - unavailable;
    let floor = set.partition.max(0) as usize;
    for slot in replicas.iter().skip(floor).rev() {
        if budget <= 0 {
            break;
        }
        let Some(pod) = slot else { continue };
        if revision_of(pod) != set.update_revision && !terminating(pod) {
            counts.add(set, revision_of(pod), -1);
            steps.push(Step::Delete {
                pod: pod.clone(),
                reason: DeleteReason::Update,
            });
            budget -= 1;
        }
    }
    Plan { steps, counts }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
