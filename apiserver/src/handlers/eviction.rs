//! POST pods/<name>/eviction (a policy/v1 Eviction, as `kubectl drain` sends it): the pod's
//! deletion, allowed only when the PodDisruptionBudget selecting it has a disruption to
//! spare, which the eviction takes in one conditional write of the budget's status
//! (kube-apiserver's `EvictionREST.Create` and `checkAndDecrement`).

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Value, json};
use skiff_api::disruption::update_disruption_allowed;
use skiff_api::labels::Selector;
use skiff_api::pod::readiness::is_ready;

use super::ApiState;
use super::delete::{DeleteOptions, delete};
use super::object::{ObjectRef, decode_kv, read};
use super::update::{UpdateScope, update};
use crate::error::ApiError;
use crate::storage::{ListOptions, Revision};

/// How often a budget write that lost a race is retried before giving up.
const RETRIES: usize = 5;

/// The Status of a successful eviction.
fn success() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})
}

/// 429: the budget refuses the eviction; kubectl drain retries and prints the message.
fn too_many_requests(cause: String, retry_after: u32) -> ApiError {
    let mut e = ApiError::new(
        429,
        "TooManyRequests",
        "Cannot evict pod as it would violate the pod's disruption budget.",
    );
    e.details = Some(json!({
        "causes": [{"reason": "DisruptionBudget", "message": cause}],
        "retryAfterSeconds": retry_after,
    }));
    e
}

/// Pods whose eviction disrupts nothing more: finished, not yet running, or already going.
fn budget_ignored(pod: &Value) -> bool {
    let phase = pod.pointer("/status/phase").and_then(Value::as_str);
    matches!(phase, Some("Succeeded" | "Failed" | "Pending") | None)
        || pod.pointer("/metadata/deletionTimestamp").is_some()
}

/// The namespace's budgets whose selector matches the pod (an empty or unparsable selector
/// matches nothing here), each with its revision.
async fn budgets_for(
    state: &ApiState,
    namespace: &str,
    pod: &Pod,
) -> Result<Vec<(Value, Revision)>, ApiError> {
    let kind = pdb_kind(state)?;
    let prefix = kind.info.namespace_prefix(namespace);
    let page = state
        .store
        .list(&prefix, ListOptions::default())
        .await
        .map_err(|e| ApiError::from_store(e, "policy", "poddisruptionbudgets", ""))?;
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    let mut out = Vec::new();
    for kv in &page.items {
        let obj = decode_kv(kv)?;
        let budget: PodDisruptionBudget = serde_json::from_value(obj.clone()).unwrap_or_default();
        let Some(sel) = budget.spec.and_then(|s| s.selector) else {
            continue;
        };
        match Selector::from_label_selector(&sel) {
            Ok(s) if !s.is_empty() && s.matches(&labels) => out.push((obj, kv.mod_revision)),
            _ => {}
        }
    }
    Ok(out)
}

fn pdb_kind(state: &ApiState) -> Result<&std::sync::Arc<crate::registry::Kind>, ApiError> {
    state
        .kinds
        .find("policy", "v1", "poddisruptionbudgets")
        .ok_or_else(|| ApiError::internal("poddisruptionbudgets are not served"))
}

/// What a budget says about evicting one more of its pods.
enum Verdict {
    /// Evict without taking a disruption (an unhealthy pod the policy lets go).
    Free,
    /// Take one disruption: the budget's status after it.
    Take(PodDisruptionBudgetStatus),
}

/// `checkAndDecrement` on the budget as stored, plus the unhealthy-pod policy.
fn judge(budget: &Value, pod_name: &str, pod_ready: bool) -> Result<Verdict, ApiError> {
    let b: PodDisruptionBudget = serde_json::from_value(budget.clone())
        .map_err(|e| ApiError::internal(format!("stored budget does not decode: {e}")))?;
    let name = b.metadata.name.clone().unwrap_or_default();
    let status = b.status.clone().unwrap_or_default();
    if !pod_ready {
        let policy = b
            .spec
            .as_ref()
            .and_then(|s| s.unhealthy_pod_eviction_policy.as_deref());
        let healthy_budget =
            status.current_healthy >= status.desired_healthy && status.desired_healthy > 0;
        if policy == Some("AlwaysAllow") || healthy_budget {
            return Ok(Verdict::Free);
        }
    }
    if status.observed_generation.unwrap_or(0) < b.metadata.generation.unwrap_or(0) {
        return Err(too_many_requests(
            format!("The disruption budget {name} is still being processed by the server."),
            10,
        ));
    }
    if status.disruptions_allowed < 0 {
        return Err(ApiError::new(
            403,
            "Forbidden",
            format!(
                "poddisruptionbudget.policy \"{name}\" is forbidden: pdb disruptions allowed is negative"
            ),
        ));
    }
    if status.disruptions_allowed == 0 {
        return Err(too_many_requests(
            format!(
                "The disruption budget {name} needs {} healthy pods and has {} currently",
                status.desired_healthy, status.current_healthy
            ),
            0,
        ));
    }
    let mut next = status;
    next.disruptions_allowed -= 1;
    let now = jiff::Timestamp::now();
    if next.disruptions_allowed == 0 {
        update_disruption_allowed(&mut next, now);
    }
    next.disrupted_pods
        .get_or_insert_with(Default::default)
        .insert(pod_name.to_string(), Time(now));
    Ok(Verdict::Take(next))
}

/// Takes one disruption from the budget for the pod, re-reading it after a lost race.
async fn take_disruption(
    state: &ApiState,
    namespace: &str,
    mut budget: (Value, Revision),
    pod_name: &str,
    pod_ready: bool,
    dry_run: bool,
) -> Result<(), ApiError> {
    let kind = pdb_kind(state)?;
    let name = budget
        .0
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let at = ObjectRef::new(&state.kinds, kind, Some(namespace), &name);
    for _ in 0..RETRIES {
        let next = match judge(&budget.0, pod_name, pod_ready)? {
            Verdict::Free => return Ok(()),
            Verdict::Take(_) if dry_run => return Ok(()),
            Verdict::Take(next) => next,
        };
        let mut obj = budget.0.clone();
        obj["status"] = serde_json::to_value(&next).map_err(ApiError::internal)?;
        match update(
            state,
            &at,
            obj,
            UpdateScope::Status,
            false,
            Some(budget.clone()),
            None,
        )
        .await
        {
            Ok(_) => return Ok(()),
            Err(e) if e.code == 409 && e.reason == "Conflict" => budget = read(state, &at).await?,
            Err(e) => return Err(e),
        }
    }
    Err(at.conflict("the disruption budget kept changing; try again"))
}

/// POST pods/<name>/eviction: deletes the pod with the Eviction's deleteOptions once its
/// disruption budget (if any) allows it.
pub async fn evict(
    state: &ApiState,
    at: &ObjectRef<'_>,
    eviction: Value,
    dry_run: bool,
) -> Result<Value, ApiError> {
    if let Some(name) = eviction.pointer("/metadata/name").and_then(Value::as_str)
        && name != at.name
    {
        return Err(ApiError::bad_request(format!(
            "name in URL does not match name in Eviction object: {} != {name}",
            at.name
        )));
    }
    let body = match eviction.get("deleteOptions") {
        Some(o) if !o.is_null() => serde_json::to_vec(o)
            .map_err(|e| ApiError::bad_request(format!("deleteOptions: {e}")))?,
        _ => Vec::new(),
    };
    let opts = DeleteOptions::parse(&state.kinds, &body, None, None, dry_run)?;
    let (pod_obj, _) = read(state, at).await?;
    if !budget_ignored(&pod_obj) {
        let pod: Pod = serde_json::from_value(pod_obj)
            .map_err(|e| ApiError::internal(format!("stored pod does not decode: {e}")))?;
        let namespace = at.namespace.unwrap_or("default");
        let mut budgets = budgets_for(state, namespace, &pod).await?;
        if budgets.len() > 1 {
            return Err(ApiError::new(
                500,
                "",
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
            ));
        }
        if let Some(budget) = budgets.pop() {
            take_disruption(
                state,
                namespace,
                budget,
                at.name,
                is_ready(&pod),
                opts.dry_run,
            )
            .await?;
        }
    }
    delete(state, at, &opts).await?;
    Ok(success())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(status: Value, generation: i64) -> Value {
        json!({"metadata": {"name": "web", "namespace": "default", "generation": generation},
            "spec": {"minAvailable": 2}, "status": status})
    }

    fn cause(e: &ApiError) -> (u16, &str) {
        let d = e.details.as_ref().unwrap();
        (e.code, d["causes"][0]["message"].as_str().unwrap())
    }

    #[test]
    fn refusals_say_why() {
        let full = json!({"observedGeneration": 1, "disruptionsAllowed": 0, "currentHealthy": 1, "desiredHealthy": 2, "expectedPods": 2});
        let Err(e) = judge(&budget(full.clone(), 1), "a", true) else {
            panic!("allowed")
        };
        assert_eq!(
            cause(&e),
            (
                429,
                "The disruption budget web needs 2 healthy pods and has 1 currently"
            )
        );
        assert_eq!(e.status()["reason"], "TooManyRequests");
        let Err(e) = judge(&budget(full, 2), "a", true) else {
            panic!("allowed")
        };
        assert_eq!(
            cause(&e),
            (
                429,
                "The disruption budget web is still being processed by the server."
            )
        );
    }

    #[test]
    fn a_taken_disruption_is_recorded() {
        let one = json!({"observedGeneration": 1, "disruptionsAllowed": 1, "currentHealthy": 3, "desiredHealthy": 2, "expectedPods": 3});
        let Ok(Verdict::Take(next)) = judge(&budget(one, 1), "a", true) else {
            panic!("refused")
        };
        assert_eq!(next.disruptions_allowed, 0);
        assert!(next.disrupted_pods.unwrap().contains_key("a"));
        assert_eq!(next.conditions.unwrap()[0].reason, "InsufficientPods");
    }

    #[test]
    fn unready_pods_follow_the_policy() {
        let none = json!({"observedGeneration": 1, "disruptionsAllowed": 0, "currentHealthy": 1, "desiredHealthy": 2, "expectedPods": 3});
        assert!(judge(&budget(none.clone(), 1), "a", false).is_err());
        let mut always = budget(none, 1);
        always["spec"]["unhealthyPodEvictionPolicy"] = json!("AlwaysAllow");
        assert!(matches!(judge(&always, "a", false), Ok(Verdict::Free)));
        let healthy = json!({"observedGeneration": 1, "disruptionsAllowed": 0, "currentHealthy": 2, "desiredHealthy": 2, "expectedPods": 3});
        assert!(matches!(
            judge(&budget(healthy, 1), "a", false),
            Ok(Verdict::Free)
        ));
    }
}
