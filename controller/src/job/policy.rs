//! Pure Job rules: the pod-creation back-off after failures (10 s doubling, capped at
//! 6 min), which rule of a `podFailurePolicy` a failed pod matches, and when a pod counts
//! as failed or finished.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{PodFailurePolicy, PodFailurePolicyRule};
use k8s_openapi::api::core::v1::Pod;

/// The first delay before a failed pod is replaced (Kubernetes' DefaultJobPodFailureBackOff).
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(10);
/// The longest delay (MaxJobPodFailureBackOff).
pub const MAX_BACKOFF: Duration = Duration::from_secs(360);

/// The delay after `failures` consecutive failures: 0 for none, then 10 s, 20 s, 40 s, ...
/// up to 6 min.
pub fn backoff_delay(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let factor = 1u64 << (failures - 1).min(16);
    (INITIAL_BACKOFF * factor as u32).min(MAX_BACKOFF)
}

/// How long pod creation must still wait at `now`, after `failures` consecutive failures the
/// last of which ended at `last_failure`.
pub fn remaining_backoff(
    now: Timestamp,
    last_failure: Option<Timestamp>,
    failures: u32,
) -> Duration {
    let Some(last) = last_failure else {
        return Duration::ZERO;
    };
    let ready_at = last + backoff_delay(failures);
    if ready_at <= now {
        Duration::ZERO
    } else {
        ready_at.duration_since(now).unsigned_abs()
    }
}

/// What a pod failure policy decided for a failed pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    /// `FailJob`, `FailIndex`, `Ignore` or `Count`.
    pub action: String,
    /// The Kubernetes message, e.g. `Container main for pod ns/p failed with exit code 42
    /// matching FailJob rule at index 0`.
    pub message: String,
}

/// The first rule of `policy` that a failed `pod` matches (`matchPodFailurePolicy`), or
/// `None` when no rule matches (the failure then counts against the back-off limit).
pub fn match_pod_failure_policy(policy: &PodFailurePolicy, pod: &Pod) -> Option<Matched> {
    let key = format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.name.as_deref().unwrap_or("")
    );
    for (i, rule) in policy.rules.iter().enumerate() {
        if let Some(container) = match_exit_codes(rule, pod) {
            let (name, code) = container;
            return Some(Matched {
                action: rule.action.clone(),
                message: format!(
                    "Container {name} for pod {key} failed with exit code {code} matching {} rule at index {i}",
                    rule.action
                ),
            });
        }
        if let Some(cond) = match_conditions(rule, pod) {
            return Some(Matched {
                action: rule.action.clone(),
                message: format!(
                    "Pod {key} has condition {cond} matching {} rule at index {i}",
                    rule.action
                ),
            });
        }
    }
    None
}

/// The first container (init containers first) whose non-zero exit code the rule matches.
fn match_exit_codes(rule: &PodFailurePolicyRule, pod: &Pod) -> Option<(String, i32)> {
    let req = rule.on_exit_codes.as_ref()?;
    let status = pod.status.as_ref()?;
    let statuses = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    for cs in statuses {
        if req.container_name.as_deref().is_some_and(|n| n != cs.name) {
            continue;
        }
        let Some(code) = cs
            .state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .map(|t| t.exit_code)
        else {
            continue;
        };
        if code == 0 {
            continue;
        }
        let listed = req.values.contains(&code);
        let hit = match req.operator.as_str() {
            "In" => listed,
            "NotIn" => !listed,
            _ => false,
        };
        if hit {
            return Some((cs.name.clone(), code));
        }
    }
    None
}

fn match_conditions(rule: &PodFailurePolicyRule, pod: &Pod) -> Option<String> {
    let patterns = rule.on_pod_conditions.as_ref()?;
    let conditions = pod.status.as_ref()?.conditions.as_ref()?;
    patterns.iter().find_map(|p| {
        let want = if p.status.is_empty() {
            "True"
        } else {
            &p.status
        };
        conditions
            .iter()
            .find(|c| c.type_ == p.type_ && c.status == want)
            .map(|c| c.type_.clone())
    })
}

/// The pod's phase.
pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// Whether the pod ended in success.
pub fn succeeded(pod: &Pod) -> bool {
    phase(pod) == "Succeeded"
}

/// Whether the pod counts as failed: phase Failed, or deleted before it succeeded.
pub fn failed(pod: &Pod) -> bool {
    phase(pod) == "Failed" || (pod.metadata.deletion_timestamp.is_some() && !succeeded(pod))
}

/// When the pod's last container stopped (or the pod was deleted), for the back-off clock.
pub fn finished_at(pod: &Pod) -> Option<Timestamp> {
    let status = pod.status.as_ref();
    let ended = status
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0)
        .max();
    ended
        .or_else(|| pod.metadata.deletion_timestamp.as_ref().map(|t| t.0))
        .or_else(|| pod.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn backoff_doubles_from_ten_seconds_to_six_minutes() {
        let secs: Vec<u64> = (0..8).map(|n| backoff_delay(n).as_secs()).collect();
        assert_eq!(secs, [0, 10, 20, 40, 80, 160, 320, 360]);
        assert_eq!(backoff_delay(60), MAX_BACKOFF);
        let t: Timestamp = "2024-01-01T00:00:00Z".parse().unwrap();
        let now = t + Duration::from_secs(15);
        assert_eq!(remaining_backoff(now, Some(t), 2), Duration::from_secs(5));
        assert_eq!(remaining_backoff(now, Some(t), 1), Duration::ZERO);
        assert_eq!(remaining_backoff(now, None, 3), Duration::ZERO);
    }

    fn failed_pod(exit: i32, conditions: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "status": {"phase": "Failed", "conditions": conditions,
                "containerStatuses": [{"name": "main", "image": "i", "imageID": "", "ready": false,
                    "restartCount": 0, "state": {"terminated": {"exitCode": exit}}}]}
        }))
        .unwrap()
    }

    fn policy(rules: serde_json::Value) -> PodFailurePolicy {
        serde_json::from_value(json!({"rules": rules})).unwrap()
    }

    #[test]
    fn first_matching_rule_wins() {
        let p = policy(json!([
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
            {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}},
            {"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [1, 2]}},
        ]));
        let m = match_pod_failure_policy(&p, &failed_pod(42, json!([]))).unwrap();
        assert_eq!(m.action, "FailJob");
        assert_eq!(
            m.message,
            "Container main for pod ns/p failed with exit code 42 matching FailJob rule at index 1"
        );
        assert_eq!(
            match_pod_failure_policy(&p, &failed_pod(7, json!([])))
                .unwrap()
                .action,
            "Count"
        );
        assert_eq!(
            match_pod_failure_policy(&p, &failed_pod(1, json!([]))),
            None
        );
        let disrupted = failed_pod(1, json!([{"type": "DisruptionTarget", "status": "True"}]));
        assert_eq!(
            match_pod_failure_policy(&p, &disrupted).unwrap().action,
            "Ignore"
        );
    }

    #[test]
    fn deleted_unfinished_pods_count_as_failed() {
        let mut pod = failed_pod(1, json!([]));
        assert!(failed(&pod));
        pod.status.as_mut().unwrap().phase = Some("Running".into());
        assert!(!failed(&pod));
        pod.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::now()),
        );
        assert!(failed(&pod));
    }
}
