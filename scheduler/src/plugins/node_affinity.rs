//! NodeAffinity: `nodeSelector` and required node affinity as a filter, preferred node
//! affinity as a score; plus NodeName and NodeUnschedulable, the other node-only filters.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm, Pod, Taint};

use crate::cache::NodeInfo;
use crate::framework::{CycleState, Failure};
use crate::plugins::taints::tolerates;
use crate::podinfo::PodInfo;

/// Reason of NodeAffinity failures.
pub const ERR_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
/// Reason of NodeName failures.
pub const ERR_NODE_NAME: &str = "node(s) didn't match the requested node name";
/// Reason of NodeUnschedulable failures.
pub const ERR_UNSCHEDULABLE: &str = "node(s) were unschedulable";

fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or(&[]);
    let as_int = |s: &str| s.parse::<i64>().ok();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), [bound]) = (value.and_then(as_int), values) else {
                return false;
            };
            let Some(bound) = as_int(bound) else {
                return false;
            };
            if r.operator == "Gt" {
                v > bound
            } else {
                v < bound
            }
        }
        _ => false,
    }
}

/// Whether one node selector term (expressions and fields ANDed) matches the node. A term
/// with neither matches nothing, as in Kubernetes.
pub fn term_matches(
    term: &NodeSelectorTerm,
    node_name: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or(&[]);
    let fields = term.match_fields.as_deref().unwrap_or(&[]);
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs
        .iter()
        .all(|r| requirement_matches(r, labels.get(&r.key).map(String::as_str)))
        && fields.iter().all(|r| {
            r.key == "metadata.name"
                && matches!(r.operator.as_str(), "In" | "NotIn")
                && requirement_matches(r, Some(node_name))
        })
}

/// Whether the pod's nodeSelector and required node affinity admit a node with these labels.
pub fn required_matches(pod: &Pod, node_name: &str, labels: &BTreeMap<String, String>) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return true;
    };
    if let Some(sel) = &spec.node_selector
        && !sel.iter().all(|(k, v)| labels.get(k) == Some(v))
    {
        return false;
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    match required {
        Some(r) => r
            .node_selector_terms
            .iter()
            .any(|t| term_matches(t, node_name, labels)),
        None => true,
    }
}

/// Filter: nodeSelector and required node affinity.
pub fn filter(_: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<(), Failure> {
    if required_matches(&pod.pod, &node.name, &node.labels) {
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
    if tolerations.iter().any(|t| tolerates(t, &taint)) {
        Ok(())
    } else {
        Err(Failure::unresolvable(ERR_UNSCHEDULABLE))
    }
}

/// Score: the sum of weights of the preferred node affinity terms the node matches.
pub fn score(_: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
    pod.pod
        .spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .into_iter()
        .flatten()
        .filter(|p| p.weight != 0 && term_matches(&p.preference, &node.name, &node.labels))
        .map(|p| i64::from(p.weight))
        .sum()
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
