//! What a DaemonSet reconcile should do, computed without I/O: which nodes get a pod, which
//! pods go (wrong node, duplicates, failed, rolled out), and the status counts — after
//! Kubernetes' `manage`, `rollingUpdate` and `updateDaemonSetStatus`.

use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::daemon_eligibility::NodeFit;
use crate::pod_control::{is_available, is_ready};
use crate::rollout::scaled_value;

pub use crate::revision_history::CONTROLLER_REVISION_HASH;

/// One node as the planner sees it.
#[derive(Debug, Clone)]
pub struct NodeDaemons {
    /// The node's name.
    pub name: String,
    /// Whether the DaemonSet belongs here.
    pub fit: NodeFit,
    /// The DaemonSet's pods targeting this node that have not finished (terminating
    /// included), oldest first.
    pub pods: Vec<Arc<Pod>>,
}

/// How a DaemonSet replaces pods whose template is out of date.
#[derive(Debug, Clone, PartialEq)]
pub enum UpdateStrategy {
    /// Only when the user deletes them.
    OnDelete,
    /// Replace up to these many at a time (int or percent of desired nodes).
    RollingUpdate {
        /// `rollingUpdate.maxUnavailable`.
        max_unavailable: Option<IntOrString>,
        /// `rollingUpdate.maxSurge`.
        max_surge: Option<IntOrString>,
    },
}

/// The pods to create and delete in one reconcile.
#[derive(Debug, Default)]
pub struct Plan {
    /// Nodes that get a new pod.
    pub create_on: Vec<String>,
    /// Pods to delete.
    pub delete: Vec<Arc<Pod>>,
}

impl Plan {
    /// Whether the plan changes nothing.
    pub fn is_empty(&self) -> bool {
        self.create_on.is_empty() && self.delete.is_empty()
    }
}

/// The DaemonSet status counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DaemonCounts {
    /// Nodes that should run the pod.
    pub desired: i32,
    /// Of those, nodes running at least one daemon pod.
    pub current: i32,
    /// Nodes running the pod that should not.
    pub misscheduled: i32,
    /// Nodes whose oldest daemon pod is Ready.
    pub ready: i32,
    /// Nodes whose oldest daemon pod is available.
    pub available: i32,
    /// Nodes whose oldest daemon pod has the current template.
    pub updated: i32,
}

impl DaemonCounts {
    /// `desired - available`, as `numberUnavailable`.
    pub fn unavailable(&self) -> i32 {
        (self.desired - self.available).max(0)
    }
}

fn terminating(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_some()
}

fn failed(p: &Pod) -> bool {
    matches!(
        p.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Failed" | "Succeeded")
    )
}

/// Whether `pod` carries the template `hash`.
pub fn is_updated(pod: &Pod, hash: &str) -> bool {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(CONTROLLER_REVISION_HASH))
        .is_some_and(|h| h == hash)
}

/// The first step: pods where they belong (`manage`). Failed pods are deleted and replaced;
/// a node that should run the pod and has none gets one; a node the DaemonSet no longer
/// fits loses its pods; extra pods on a node are trimmed to the oldest (with surge, the
/// oldest current and the oldest old pod).
pub fn manage(nodes: &[NodeDaemons], hash: &str, surge: bool) -> Plan {
    let mut plan = Plan::default();
    for node in nodes {
        let (dead, live): (Vec<_>, Vec<_>) = node.pods.iter().cloned().partition(|p| failed(p));
        plan.delete.extend(dead);
        if node.fit.should_run && live.is_empty() {
            plan.create_on.push(node.name.clone());
            continue;
        }
        let running: Vec<Arc<Pod>> = live.into_iter().filter(|p| !terminating(p)).collect();
        if !node.fit.should_continue_running {
            plan.delete.extend(running);
            continue;
        }
        if surge {
            let (mut newest_kept, mut old_kept) = (false, false);
            for p in running {
                let slot = if is_updated(&p, hash) {
                    &mut newest_kept
                } else {
                    &mut old_kept
                };
                if *slot {
                    plan.delete.push(p);
                } else {
                    *slot = true;
                }
            }
        } else {
            plan.delete.extend(running.into_iter().skip(1));
        }
    }
    plan
}

/// `(maxSurge, maxUnavailable)` as node counts for `desired` nodes; both round up, and both
/// zero means one unavailable so the update can move.
pub fn update_budget(strategy: &UpdateStrategy, desired: i32) -> (i32, i32) {
    let UpdateStrategy::RollingUpdate {
        max_unavailable,
        max_surge,
    } = strategy
    else {
        return (0, 0);
    };
    let surge = scaled_value(max_surge.as_ref(), desired, true).max(0);
    let mut unavailable = scaled_value(max_unavailable.as_ref(), desired, true).max(0);
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable)
}

/// The second step, once `manage` has nothing to do: replace out-of-date pods. Without
/// surge an old pod is deleted (and recreated by the next `manage`) only while fewer than
/// `maxUnavailable` nodes are unavailable, unavailable old pods first and free; with surge a
/// new pod starts beside the old one on up to `maxSurge` nodes and the old pod is deleted
/// once the new one is available.
pub fn rolling_update(
    nodes: &[NodeDaemons],
    hash: &str,
    strategy: &UpdateStrategy,
    desired: i32,
    min_ready_seconds: i32,
    now: Timestamp,
) -> Plan {
    let (max_surge, max_unavailable) = update_budget(strategy, desired);
    let available = |p: &Pod| is_available(p, min_ready_seconds, now);
    let mut plan = Plan::default();
    let mut candidates: Vec<(String, Arc<Pod>)> = Vec::new();
    let mut used = 0;
    for node in nodes.iter().filter(|n| n.fit.should_continue_running) {
        let live: Vec<&Arc<Pod>> = node
            .pods
            .iter()
            .filter(|p| !terminating(p) && !failed(p))
            .collect();
        let new = live.iter().find(|p| is_updated(p, hash));
        let old = live.iter().find(|p| !is_updated(p, hash));
        match (new, old) {
            (None, None) => {
                // Nothing alive here: a pod is being replaced or about to be created.
                if node.fit.should_run || !node.pods.is_empty() {
                    used += 1;
                }
            }
            (Some(n), None) => {
                if !available(n) {
                    used += 1;
                }
            }
            (Some(n), Some(o)) => {
                if available(n) {
                    plan.delete.push(Arc::clone(o));
                } else {
                    used += 1;
                }
            }
            (None, Some(o)) => {
                if !available(o) {
                    // Already unavailable: replacing it costs nothing.
                    if max_surge > 0 && node.fit.should_run {
                        plan.create_on.push(node.name.clone());
                    } else {
                        plan.delete.push(Arc::clone(o));
                    }
                } else {
                    candidates.push((node.name.clone(), Arc::clone(o)));
                }
            }
        }
    }
    if max_surge > 0 {
        let room = (max_surge - used).max(0) as usize;
        for (node, _) in candidates.into_iter().take(room) {
            let fits = nodes.iter().any(|n| n.name == node && n.fit.should_run);
            if fits {
                plan.create_on.push(node);
            }
        }
    } else {
        let room = (max_unavailable - used).max(0) as usize;
        plan.delete
            .extend(candidates.into_iter().take(room).map(|(_, p)| p));
    }
    plan
}

/// The status counts (`updateDaemonSetStatus`): each node is judged by its oldest pod.
pub fn counts(
    nodes: &[NodeDaemons],
    hash: &str,
    min_ready_seconds: i32,
    now: Timestamp,
) -> DaemonCounts {
    let mut c = DaemonCounts::default();
    for node in nodes {
        let oldest = node.pods.iter().find(|p| !failed(p));
        if !node.fit.should_run {
            if oldest.is_some() {
                c.misscheduled += 1;
            }
            continue;
        }
        c.desired += 1;
        let Some(pod) = oldest else { continue };
        c.current += 1;
        if is_ready(pod) {
            c.ready += 1;
            if is_available(pod, min_ready_seconds, now) {
                c.available += 1;
            }
        }
        if is_updated(pod, hash) {
            c.updated += 1;
        }
    }
    c
}

#[cfg(test)]
#[path = "daemon_plan_tests.rs"]
mod tests;
