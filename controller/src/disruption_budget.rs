//! A PodDisruptionBudget's status computed from its pods, as Kubernetes' disruption
//! controller does it (`getExpectedPodCount`, `buildDisruptedPodMap`, `countHealthyPods`,
//! `updatePdbStatus`): a pure function over the budget, its pods and their controllers'
//! scale, so the reconcile only gathers state and writes the result.

use std::collections::{BTreeMap, HashMap};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;
use skiff_api::disruption::{SYNC_FAILED, set_condition, update_disruption_allowed};
use skiff_api::pod::readiness::is_ready;

use crate::claim::controller_of;
use crate::rollout::scaled_value;

/// How long a pod stays in `status.disruptedPods` waiting for its deletion to be seen
/// (Kubernetes' `DeletionTimeout`).
pub const DELETION_TIMEOUT: SignedDuration = SignedDuration::from_secs(120);

/// The scale of the controllers the pods belong to, keyed by the uid of each pod's own
/// controller: the uid of the workload that owns the scale (a Deployment for its
/// ReplicaSets, so two ReplicaSets of one Deployment count once) and its replicas.
pub type ControllerScales = HashMap<String, (String, i32)>;

/// Whether the budget's expected pod count comes from the pods' controllers rather than
/// from the pods themselves (a percentage minAvailable, or any maxUnavailable).
pub fn needs_scale(pdb: &PodDisruptionBudget) -> bool {
    let spec = pdb.spec.as_ref();
    spec.is_some_and(|s| s.max_unavailable.is_some())
        || matches!(
            spec.and_then(|s| s.min_available.as_ref()),
            Some(IntOrString::String(_))
        )
}

/// The sum of the pods' controllers' scale (`getExpectedScale`); fails naming the first pod
/// without a controller or whose controller was not found.
pub fn expected_scale(pods: &[&Pod], scales: &ControllerScales) -> Result<i32, String> {
    let mut by_workload: BTreeMap<&str, i32> = BTreeMap::new();
    for pod in pods {
        let name = pod.metadata.name.as_deref().unwrap_or("");
        let Some(owner) = controller_of(*pod) else {
            return Err(format!("found no controller ref for pod \"{name}\""));
        };
        let Some((workload, replicas)) = scales.get(&owner.uid) else {
            return Err(format!("found no controllers for pod \"{name}\""));
        };
        by_workload.insert(workload, *replicas);
    }
    Ok(by_workload.values().sum())
}

/// `(expectedPods, desiredHealthy)` for the budget; `scale` is called only when the budget
/// needs its pods' controllers.
pub fn expected_and_desired(
    pdb: &PodDisruptionBudget,
    pod_count: i32,
    scale: impl FnOnce() -> Result<i32, String>,
) -> Result<(i32, i32), String> {
    let spec = pdb.spec.clone().unwrap_or_default();
    if let Some(max_unavailable) = &spec.max_unavailable {
        let expected = scale()?;
        let unavailable = scaled_value(Some(max_unavailable), expected, true);
        return Ok((expected, (expected - unavailable).max(0)));
    }
    match &spec.min_available {
        Some(IntOrString::Int(n)) => Ok((pod_count, *n)),
        Some(min @ IntOrString::String(_)) => {
            let expected = scale()?;
            Ok((expected, scaled_value(Some(min), expected, true)))
        }
        None => Ok((0, 0)),
    }
}

/// The budget's `disruptedPods` still pending: entries for listed pods not yet being deleted
/// whose deletion is not overdue, and the earliest time one expires (to recheck then).
pub fn pending_disruptions(
    pdb: &PodDisruptionBudget,
    pods: &[&Pod],
    now: Timestamp,
) -> (BTreeMap<String, Time>, Option<Timestamp>) {
    let known = pdb
        .status
        .as_ref()
        .and_then(|s| s.disrupted_pods.clone())
        .unwrap_or_default();
    let mut out = BTreeMap::new();
    let mut recheck: Option<Timestamp> = None;
    for pod in pods {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let name = pod.metadata.name.clone().unwrap_or_default();
        let Some(at) = known.get(&name) else {
            continue;
        };
        let expires = at.0 + DELETION_TIMEOUT;
        if expires <= now {
            tracing::info!(pod = %name, "pod was expected to be deleted but it was not");
            continue;
        }
        recheck = Some(recheck.map_or(expires, |r| r.min(expires)));
        out.insert(name, at.clone());
    }
    (out, recheck)
}

/// Ready pods not being deleted and not already counted as disrupted (`countHealthyPods`).
pub fn current_healthy(pods: &[&Pod], disrupted: &BTreeMap<String, Time>) -> i32 {
    pods.iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| !disrupted.contains_key(p.metadata.name.as_deref().unwrap_or("")))
        .filter(|p| is_ready(p))
        .count() as i32
}

/// The status the budget should have, and when to look at it again.
pub fn budget_status(
    pdb: &PodDisruptionBudget,
    pods: &[&Pod],
    scales: &ControllerScales,
    now: Timestamp,
) -> (PodDisruptionBudgetStatus, Option<Timestamp>) {
    let counts = expected_and_desired(pdb, pods.len() as i32, || expected_scale(pods, scales));
    let (expected, desired) = match counts {
        Ok(c) => c,
        Err(why) => return (sync_failed(pdb, &why, now), None),
    };
    let (disrupted, recheck) = pending_disruptions(pdb, pods, now);
    let healthy = current_healthy(pods, &disrupted);
    let allowed = if expected <= 0 {
        0
    } else {
        (healthy - desired).max(0)
    };
    let generation = pdb.meta().generation.unwrap_or(0);
    let mut status = PodDisruptionBudgetStatus {
        current_healthy: healthy,
        desired_healthy: desired,
        expected_pods: expected,
        disruptions_allowed: allowed,
        disrupted_pods: (!disrupted.is_empty()).then_some(disrupted),
        observed_generation: Some(generation),
        conditions: pdb.status.as_ref().and_then(|s| s.conditions.clone()),
    };
    update_disruption_allowed(&mut status, now);
    (status, recheck)
}

/// The fail-safe status (`failSafe`): nothing may be disrupted, and the condition says why.
fn sync_failed(pdb: &PodDisruptionBudget, why: &str, now: Timestamp) -> PodDisruptionBudgetStatus {
    let mut status = pdb.status.clone().unwrap_or_default();
    status.disruptions_allowed = 0;
    set_condition(&mut status, "False", SYNC_FAILED, why, now);
    status
}

#[cfg(test)]
#[path = "disruption_budget_tests.rs"]
mod tests;
