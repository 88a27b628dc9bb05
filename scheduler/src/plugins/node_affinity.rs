//! NodeAffinity: `nodeSelector` and required node affinity as a filter, preferred node
//! affinity as a score; plus NodeName and NodeUnschedulable, the other node-only filters.

use k8s_openapi::api::core::v1::Taint;
use skiff_api::scheduling::tolerated;

use crate::cache::NodeInfo;
use crate::framework::{CycleState, Failure};
use crate::podinfo::PodInfo;

/// Reason of NodeAffinity failures.
pub const ERR_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
/// Reason of NodeName failures.
pub const ERR_NODE_NAME: &str = "node(s) didn't match the requested node name";
/// Reason of NodeUnschedulable failures.
pub const ERR_UNSCHEDULABLE: &str = "node(s) were unschedulable";

/// Filter: nodeSelector and required node affinity.
pub fn filter(_: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<(), Failure> {
    if pod.required_node_affinity.matches(&node.name, &node.labels) {
        Ok(())
    } else {
        Err(Failure::unresolvable(ERR_AFFINITY))
    }
}

/// Filter: `spec.nodeName`, when set, must name this node.
pub fn filter_node_name(_: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<(), Failure> {
    match pod.pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
        Some(n) if !n.is_empty() && n != node.name => Err(Failure::unresolvable(ERR_NODE_NAME)),
        _ => Ok(()),
    }
}

/// Filter: a cordoned node takes only pods tolerating its unschedulable taint.
pub fn filter_unschedulable(_: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<(), Failure> {
    let cordoned = node
        .node
        .as_ref()
        .and_then(|n| n.spec.as_ref())
        .and_then(|s| s.unschedulable)
        .unwrap_or(false);
    if !cordoned {
        return Ok(());
    }
    let taint = Taint {
        key: "node.kubernetes.io/unschedulable".into(),
        effect: "NoSchedule".into(),
        ..Taint::default()
    };
    let tolerations = pod
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or(&[]);
    if tolerated(tolerations, &taint) {
        Ok(())
    } else {
        Err(Failure::unresolvable(ERR_UNSCHEDULABLE))
    }
}

/// Score: the sum of weights of the preferred node affinity terms the node matches.
pub fn score(_: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
    pod.preferred_node_affinity.score(&node.name, &node.labels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::test_support::{node, pod};
    use serde_json::json;

    fn expr(key: &str, op: &str, values: &[&str]) -> serde_json::Value {
        json!({"key": key, "operator": op, "values": values})
    }

    fn with_required(terms: serde_json::Value) -> PodInfo {
        pod(
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}}),
        )
    }

    #[test]
    fn node_selector_must_match_all_labels() {
        let p = pod(json!({"nodeSelector": {"disk": "ssd", "zone": "a"}}));
        let s = CycleState::default();
        assert!(
            filter(
                &s,
                &p,
                &node("n", json!({"disk": "ssd", "zone": "a"}), json!({}))
            )
            .is_ok()
        );
        let err = filter(&s, &p, &node("n", json!({"disk": "ssd"}), json!({}))).unwrap_err();
        assert_eq!(err.reasons, vec![ERR_AFFINITY.to_string()]);
    }

    #[test]
    fn match_expression_operators() {
        let s = CycleState::default();
        let labels = json!({"zone": "a", "cores": "8"});
        let n = node("n1", labels, json!({}));
        let ok = |e: serde_json::Value| {
            filter(&s, &with_required(json!([{"matchExpressions": [e]}])), &n).is_ok()
        };
        assert!(ok(expr("zone", "In", &["a", "b"])));
        assert!(!ok(expr("zone", "In", &["b"])));
        assert!(ok(expr("zone", "NotIn", &["b"])));
        assert!(!ok(expr("zone", "NotIn", &["a"])));
        assert!(ok(expr("missing", "NotIn", &["a"])));
        assert!(ok(expr("zone", "Exists", &[])));
        assert!(!ok(expr("zone", "DoesNotExist", &[])));
        assert!(ok(expr("missing", "DoesNotExist", &[])));
        assert!(ok(expr("cores", "Gt", &["4"])));
        assert!(!ok(expr("cores", "Gt", &["8"])));
        assert!(ok(expr("cores", "Lt", &["9"])));
        assert!(!ok(expr("zone", "Lt", &["9"])));
    }

    #[test]
    fn terms_are_ored_and_fields_match_the_name() {
        let s = CycleState::default();
        let n = node("n1", json!({"zone": "a"}), json!({}));
        let p = with_required(json!([
            {"matchExpressions": [expr("zone", "In", &["b"])]},
            {"matchFields": [expr("metadata.name", "In", &["n1"])]}
        ]));
        assert!(filter(&s, &p, &n).is_ok());
        let p = with_required(json!([{"matchFields": [expr("metadata.name", "NotIn", &["n1"])]}]));
        assert!(filter(&s, &p, &n).is_err());
        let p = with_required(json!([{}]));
        assert!(filter(&s, &p, &n).is_err(), "an empty term matches nothing");
    }

    #[test]
    fn preferred_terms_sum_weights() {
        let s = CycleState::default();
        let p = pod(
            json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 10, "preference": {"matchExpressions": [expr("zone", "In", &["a"])]}},
                {"weight": 5, "preference": {"matchExpressions": [expr("disk", "Exists", &[])]}}
            ]}}}),
        );
        assert_eq!(
            score(
                &s,
                &p,
                &node("n", json!({"zone": "a", "disk": "x"}), json!({}))
            ),
            15
        );
        assert_eq!(
            score(&s, &p, &node("n", json!({"zone": "b"}), json!({}))),
            0
        );
    }

    #[test]
    fn node_name_and_cordon() {
        let s = CycleState::default();
        let p = pod(json!({"nodeName": "n2"}));
        assert!(filter_node_name(&s, &p, &node("n2", json!({}), json!({}))).is_ok());
        assert!(filter_node_name(&s, &p, &node("n1", json!({}), json!({}))).is_err());
        let cordoned = node("n1", json!({}), json!({"unschedulable": true}));
        let err = filter_unschedulable(&s, &pod(json!({})), &cordoned).unwrap_err();
        assert_eq!(err.reasons, vec![ERR_UNSCHEDULABLE.to_string()]);
        let tolerant = pod(
            json!({"tolerations": [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]}),
        );
        assert!(filter_unschedulable(&s, &tolerant, &cordoned).is_ok());
    }
}
