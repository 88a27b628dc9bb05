//! TaintToleration: NoSchedule/NoExecute taints filter, PreferNoSchedule taints lower the
//! score; also NodePorts, the host-port conflict filter.

use k8s_openapi::api::core::v1::{Taint, Toleration};
use skiff_api::scheduling::taints::{find_untolerated_taint, is_scheduling_taint, tolerated};

use crate::cache::NodeInfo;
use crate::framework::{CycleState, Failure};
use crate::podinfo::PodInfo;

/// Reason of NodePorts failures.
pub const ERR_PORTS: &str = "node(s) didn't have free ports for the requested pod ports";

fn taints(node: &NodeInfo) -> &[Taint] {
    node.node
        .as_ref()
        .and_then(|n| n.spec.as_ref())
        .and_then(|s| s.taints.as_deref())
        .unwrap_or(&[])
}

fn tolerations(pod: &PodInfo) -> &[Toleration] {
    pod.pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or(&[])
}

/// Filter: every NoSchedule and NoExecute taint must be tolerated.
pub fn filter(_: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<(), Failure> {
    match find_untolerated_taint(taints(node), tolerations(pod), is_scheduling_taint) {
        None => Ok(()),
        Some(t) => Err(Failure::unresolvable(format!(
            "node(s) had untolerated taint {{{}: {}}}",
            t.key,
            t.value.as_deref().unwrap_or("")
        ))),
    }
}

/// Score (lower is better, normalised in reverse): PreferNoSchedule taints the pod does not
/// tolerate. Kubernetes first keeps the tolerations with no effect or PreferNoSchedule;
/// `tolerates` already refuses the others for these taints.
pub fn score(_: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
    let tols = tolerations(pod);
    taints(node)
        .iter()
        .filter(|taint| taint.effect == "PreferNoSchedule" && !tolerated(tols, taint))
        .count() as i64
}

/// Filter: the pod's host ports must be free on the node.
pub fn filter_ports(_: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<(), Failure> {
    let conflict = pod
        .host_ports
        .iter()
        .any(|want| node.used_ports.iter().any(|used| used.conflicts(want)));
    if conflict {
        Err(Failure::resolvable(ERR_PORTS))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::test_support::{node, pod};
    use serde_json::json;
    use std::sync::Arc;

    fn tainted(taints: serde_json::Value) -> NodeInfo {
        node("n", json!({}), json!({"taints": taints}))
    }

    #[test]
    fn untolerated_no_schedule_taint_fails_with_its_key_and_value() {
        let s = CycleState::default();
        let n = tainted(json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]));
        let err = filter(&s, &pod(json!({})), &n).unwrap_err();
        assert_eq!(
            err.reasons,
            vec!["node(s) had untolerated taint {dedicated: gpu}".to_string()]
        );
        assert!(!err.resolvable);
        let ok = pod(
            json!({"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]}),
        );
        assert!(filter(&s, &ok, &n).is_ok());
        let wrong_value = pod(json!({"tolerations": [{"key": "dedicated", "value": "cpu"}]}));
        assert!(filter(&s, &wrong_value, &n).is_err());
        let exists_all = pod(json!({"tolerations": [{"operator": "Exists"}]}));
        assert!(filter(&s, &exists_all, &n).is_ok());
        let other_effect = pod(
            json!({"tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}]}),
        );
        assert!(filter(&s, &other_effect, &n).is_err());
    }

    #[test]
    fn no_execute_filters_and_prefer_no_schedule_only_scores() {
        let s = CycleState::default();
        let n = tainted(json!([{"key": "k", "effect": "NoExecute"}]));
        assert_eq!(
            filter(&s, &pod(json!({})), &n).unwrap_err().reasons,
            vec!["node(s) had untolerated taint {k: }".to_string()]
        );
        let soft = tainted(
            json!([{"key": "a", "effect": "PreferNoSchedule"}, {"key": "b", "effect": "PreferNoSchedule"}]),
        );
        assert!(filter(&s, &pod(json!({})), &soft).is_ok());
        assert_eq!(score(&s, &pod(json!({})), &soft), 2);
        let tol = pod(
            json!({"tolerations": [{"key": "a", "operator": "Exists", "effect": "PreferNoSchedule"}]}),
        );
        assert_eq!(score(&s, &tol, &soft), 1);
    }

    #[test]
    fn host_ports_conflict_with_pods_on_the_node() {
        let s = CycleState::default();
        let mut n = node("n", json!({}), json!({}));
        let spec = json!({"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080}]}]});
        n.add_pod(Arc::new(pod(spec.clone())));
        assert_eq!(
            filter_ports(&s, &pod(spec), &n).unwrap_err().reasons,
            vec![ERR_PORTS.to_string()]
        );
        let other = json!({"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 8081}]}]});
        assert!(filter_ports(&s, &pod(other), &n).is_ok());
    }
}
