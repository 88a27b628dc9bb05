//! Taint-based eviction (Kubernetes' taint eviction controller): a pod on a node with
//! `NoExecute` taints is deleted at once when one of them is not tolerated, after the
//! shortest `tolerationSeconds` of the tolerations that match when all are, and never when
//! those tolerations carry no seconds.
//!
//! The clock starts at the taint's `timeAdded` (the latest of the node's `NoExecute`
//! taints), so a restarted controller keeps each pod's deadline instead of starting over.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, Taint, Toleration};
use skiff_api::scheduling::tolerates;

/// What happens to one pod on a `NoExecute`-tainted node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodEviction {
    /// It stays (no `NoExecute` taint, or tolerations without seconds).
    Keep,
    /// It is deleted now.
    Now,
    /// It is deleted at this time.
    At(Timestamp),
}

/// The decision for `pod` on a node with `taints` at `now`.
pub fn pod_eviction(pod: &Pod, taints: &[Taint], now: Timestamp) -> PodEviction {
    let no_execute: Vec<&Taint> = taints.iter().filter(|t| t.effect == "NoExecute").collect();
    if no_execute.is_empty() {
        return PodEviction::Keep;
    }
    let tolerations: &[Toleration] = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or(&[]);
    let mut used = Vec::new();
    for taint in &no_execute {
        match tolerations.iter().find(|t| tolerates(t, taint)) {
            Some(t) => used.push(t),
            None => return PodEviction::Now,
        }
    }
    let Some(seconds) = used.iter().filter_map(|t| t.toleration_seconds).min() else {
        return PodEviction::Keep;
    };
    if seconds <= 0 {
        return PodEviction::Now;
    }
    let since = no_execute
        .iter()
        .filter_map(|t| t.time_added.as_ref().map(|t| t.0))
        .max()
        .unwrap_or(now);
    let at = since + Duration::from_secs(seconds as u64);
    if at <= now {
        PodEviction::Now
    } else {
        PodEviction::At(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn pod(tolerations: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"spec": {"containers": [], "tolerations": tolerations}}))
            .unwrap()
    }

    fn unreachable(added: i64) -> Vec<Taint> {
        serde_json::from_value(json!([
            {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"},
            {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute",
             "timeAdded": at(added).to_string()},
        ]))
        .unwrap()
    }

    #[test]
    fn untolerated_goes_now_and_tolerated_after_its_seconds() {
        let taints = unreachable(0);
        assert_eq!(
            pod_eviction(&pod(json!([])), &taints, at(1)),
            PodEviction::Now
        );
        let short = pod(
            json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
            "effect": "NoExecute", "tolerationSeconds": 5}]),
        );
        assert_eq!(pod_eviction(&short, &taints, at(1)), PodEviction::At(at(5)));
        assert_eq!(pod_eviction(&short, &taints, at(5)), PodEviction::Now);
        let zero = pod(
            json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
            "tolerationSeconds": 0}]),
        );
        assert_eq!(pod_eviction(&zero, &taints, at(1)), PodEviction::Now);
        let forever = pod(json!([{"operator": "Exists"}]));
        assert_eq!(pod_eviction(&forever, &taints, at(1000)), PodEviction::Keep);
        // A NoSchedule taint alone evicts nothing.
        assert_eq!(
            pod_eviction(&pod(json!([])), &taints[..1], at(1)),
            PodEviction::Keep
        );
    }

    #[test]
    fn every_no_execute_taint_must_be_tolerated_and_the_shortest_time_wins() {
        let mut taints = unreachable(10);
        taints.push(
            serde_json::from_value(json!({"key": "dedicated", "value": "db",
                "effect": "NoExecute", "timeAdded": at(0).to_string()}))
            .unwrap(),
        );
        let one = pod(json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists"}]));
        assert_eq!(pod_eviction(&one, &taints, at(11)), PodEviction::Now);
        let both = pod(json!([
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "tolerationSeconds": 300},
            {"key": "dedicated", "value": "db", "tolerationSeconds": 30},
        ]));
        // The clock starts at the latest taint.
        assert_eq!(
            pod_eviction(&both, &taints, at(11)),
            PodEviction::At(at(40))
        );
    }
}
