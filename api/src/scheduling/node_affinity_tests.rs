//! Unit tests for node-selector and node-affinity matching, after Kubernetes'
//! nodeaffinity_test.go and labels selector semantics.

use super::*;
use serde_json::{Value, json};

fn labels(v: Value) -> BTreeMap<String, String> {
    serde_json::from_value(v).unwrap()
}

fn selector(terms: Value) -> NodeSelector {
    serde_json::from_value(json!({"nodeSelectorTerms": terms})).unwrap()
}

fn expr(key: &str, op: &str, values: &[&str]) -> Value {
    json!({"key": key, "operator": op, "values": values})
}

/// Whether one expression in one term matches node `n1` with these labels.
fn one(e: Value, node_labels: Value) -> bool {
    node_selector_matches(
        &selector(json!([{"matchExpressions": [e]}])),
        "n1",
        &labels(node_labels),
    )
}

#[test]
fn set_and_existence_operators() {
    let l = json!({"zone": "a"});
    assert!(one(expr("zone", "In", &["a", "b"]), l.clone()));
    assert!(!one(expr("zone", "In", &["b"]), l.clone()));
    assert!(one(expr("zone", "NotIn", &["b"]), l.clone()));
    assert!(!one(expr("zone", "NotIn", &["a"]), l.clone()));
    // NotIn and DoesNotExist match a node without the label.
    assert!(one(expr("missing", "NotIn", &["a"]), l.clone()));
    assert!(one(expr("missing", "DoesNotExist", &[]), l.clone()));
    assert!(one(expr("zone", "Exists", &[]), l.clone()));
    assert!(!one(expr("zone", "DoesNotExist", &[]), l.clone()));
    assert!(!one(expr("missing", "Exists", &[]), l.clone()));
    assert!(!one(expr("zone", "Near", &["a"]), l));
}

#[test]
fn gt_and_lt_compare_both_sides_as_integers() {
    let l = json!({"cores": "8", "zone": "a"});
    assert!(one(expr("cores", "Gt", &["4"]), l.clone()));
    assert!(!one(expr("cores", "Gt", &["8"]), l.clone()));
    assert!(one(expr("cores", "Lt", &["9"]), l.clone()));
    assert!(!one(expr("cores", "Lt", &["8"]), l.clone()));
    // A label that is not an integer, or is missing, does not match.
    assert!(!one(expr("zone", "Lt", &["9"]), l.clone()));
    assert!(!one(expr("missing", "Gt", &["1"]), l.clone()));
    // The value must be exactly one integer (labels.NewRequirement); the DaemonSet
    // controller used to take the first of several values where the scheduler refused.
    assert!(!one(expr("cores", "Gt", &["4", "100"]), l.clone()));
    assert!(!one(expr("cores", "Gt", &["four"]), l.clone()));
    assert!(!one(expr("cores", "Gt", &[]), l));
}

#[test]
fn requirements_that_do_not_parse_match_nothing() {
    let l = json!({"zone": "a"});
    // In/NotIn need values; Exists/DoesNotExist take none.
    assert!(!one(expr("missing", "NotIn", &[]), l.clone()));
    assert!(!one(expr("zone", "Exists", &["a"]), l.clone()));
    // A bad term spoils only itself: the other terms still decide.
    let s = selector(json!([
        {"matchExpressions": [expr("zone", "Exists", &["a"])]},
        {"matchExpressions": [expr("zone", "In", &["a"])]}
    ]));
    assert!(node_selector_matches(&s, "n1", &labels(l)));
}

#[test]
fn terms_are_ored_and_expressions_anded() {
    let s = selector(json!([
        {"matchExpressions": [expr("zone", "In", &["a", "b"]), expr("gpu", "DoesNotExist", &[])]},
        {"matchExpressions": [expr("cores", "Gt", &["8"])]}
    ]));
    let m = |l: Value| node_selector_matches(&s, "n", &labels(l));
    assert!(m(json!({"zone": "a"})));
    assert!(!m(json!({"zone": "a", "gpu": "1"})));
    assert!(m(json!({"cores": "16"})));
    assert!(!m(json!({"zone": "c", "cores": "8"})));
    // An empty term, and a selector of no terms, match nothing.
    assert!(!node_selector_matches(
        &selector(json!([{}])),
        "n",
        &labels(json!({}))
    ));
    assert!(!node_selector_matches(
        &selector(json!([])),
        "n",
        &labels(json!({}))
    ));
}

#[test]
fn match_fields_select_the_node_name() {
    let m = |field: Value, name: &str| {
        node_selector_matches(
            &selector(json!([{"matchFields": [field]}])),
            name,
            &labels(json!({})),
        )
    };
    assert!(m(expr("metadata.name", "In", &["n1"]), "n1"));
    assert!(!m(expr("metadata.name", "In", &["n1"]), "n2"));
    assert!(m(expr("metadata.name", "NotIn", &["n1"]), "n2"));
    assert!(!m(expr("metadata.name", "NotIn", &["n1"]), "n1"));
    // Field requirements take In or NotIn with exactly one value.
    assert!(!m(expr("metadata.name", "In", &["n1", "n2"]), "n1"));
    assert!(!m(expr("metadata.name", "Exists", &[]), "n1"));
    // Expressions and fields of one term are ANDed.
    let s = selector(json!([{
        "matchExpressions": [expr("zone", "In", &["a"])],
        "matchFields": [expr("metadata.name", "In", &["n1"])]
    }]));
    assert!(node_selector_matches(
        &s,
        "n1",
        &labels(json!({"zone": "a"}))
    ));
    assert!(!node_selector_matches(
        &s,
        "n2",
        &labels(json!({"zone": "a"}))
    ));
    assert!(!node_selector_matches(
        &s,
        "n1",
        &labels(json!({"zone": "b"}))
    ));
}

fn spec(v: Value) -> PodSpec {
    let mut v = v;
    v["containers"] = json!([{"name": "c"}]);
    serde_json::from_value(v).unwrap()
}

#[test]
fn required_affinity_adds_the_node_selector() {
    let s = spec(json!({
        "nodeSelector": {"disk": "ssd"},
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": [{"matchExpressions": [expr("zone", "In", &["a"])]}]}}}
    }));
    let r = RequiredNodeAffinity::of(&s);
    assert!(r.matches("n", &labels(json!({"disk": "ssd", "zone": "a"}))));
    assert!(!r.matches("n", &labels(json!({"disk": "hdd", "zone": "a"}))));
    assert!(!r.matches("n", &labels(json!({"disk": "ssd"}))));
    // Nothing required: every node.
    assert!(RequiredNodeAffinity::of(&spec(json!({}))).matches("n", &labels(json!({}))));
}

#[test]
fn preferred_terms_sum_the_weights_they_match() {
    let s = spec(
        json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 10, "preference": {"matchExpressions": [expr("zone", "In", &["a"])]}},
            {"weight": 5, "preference": {"matchExpressions": [expr("disk", "Exists", &[])]}},
            {"weight": 0, "preference": {"matchExpressions": [expr("zone", "Exists", &[])]}},
            {"weight": 7, "preference": {"matchExpressions": [expr("cores", "Gt", &["x"])]}}
        ]}}}),
    );
    let p = PreferredSchedulingTerms::of(&s);
    assert_eq!(
        p.score(
            "n",
            &labels(json!({"zone": "a", "disk": "x", "cores": "9"}))
        ),
        15
    );
    assert_eq!(p.score("n", &labels(json!({"zone": "b"}))), 0);
}
