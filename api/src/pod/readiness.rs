//! Whether a pod is Ready and since when, and whether it has been Ready long enough to
//! count as available (Kubernetes' `podutil.IsPodReady` and `IsPodAvailable`).

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{Pod, PodCondition};

/// The pod's `Ready` condition, if it has one.
pub fn ready_condition(pod: &Pod) -> Option<&PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

/// When the pod's Ready condition turned True, if it is Ready (the inner `None`: Ready, at
/// an unknown time).
pub fn ready_since(pod: &Pod) -> Option<Option<Timestamp>> {
    let c = ready_condition(pod)?;
    (c.status == "True").then(|| c.last_transition_time.as_ref().map(|t| t.0))
}

/// Whether the pod is Ready.
pub fn is_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// Whether the pod has been Ready for at least `min_ready_seconds` at `now`; with no
/// minimum, Ready is enough.
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    match ready_since(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(None) => false,
        Some(Some(t)) => t + SignedDuration::from_secs(i64::from(min_ready_seconds)) <= now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    fn pod(conditions: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "status": {"phase": "Running", "conditions": conditions},
        }))
        .unwrap()
    }

    fn ready_at(s: i64) -> Pod {
        pod(json!([{"type": "Ready", "status": "True", "lastTransitionTime": at(s).to_string()}]))
    }

    #[test]
    fn ready_is_the_ready_condition_true() {
        assert!(is_ready(&ready_at(1000)));
        assert_eq!(ready_since(&ready_at(1000)), Some(Some(at(1000))));
        let not_ready = pod(json!([{"type": "Ready", "status": "False"}]));
        assert!(!is_ready(&not_ready));
        let other = pod(json!([{"type": "ContainersReady", "status": "True"}]));
        assert!(!is_ready(&other));
        assert_eq!(
            ready_since(&pod(json!([{"type": "Ready", "status": "True"}]))),
            Some(None)
        );
    }

    #[test]
    fn availability_waits_for_min_ready_seconds() {
        let p = ready_at(1000);
        assert!(is_available(&p, 0, at(1000)));
        assert!(!is_available(&p, 10, at(1005)));
        assert!(is_available(&p, 10, at(1010)));
        let not_ready = pod(json!([{"type": "Ready", "status": "False"}]));
        assert!(!is_available(&not_ready, 0, at(2000)));
    }
}
