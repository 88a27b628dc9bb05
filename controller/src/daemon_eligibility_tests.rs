//! Unit tests for daemon pod eligibility.

use super::*;
use serde_json::{Value, json};

fn node(name: &str, labels: Value, taints: Value) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"taints": taints},
    }))
    .unwrap()
}

fn spec(v: Value) -> PodSpec {
    let mut v = v;
    v["containers"] = json!([{"name": "c", "image": "i"}]);
    serde_json::from_value(v).unwrap()
}

fn fit(run: bool, stay: bool) -> NodeFit {
    NodeFit {
        should_run: run,
        should_continue_running: stay,
    }
}

#[test]
fn node_selector_and_node_name_gate_the_node() {
    let s = spec(json!({"nodeSelector": {"disk": "ssd"}}));
    let ssd = node("a", json!({"disk": "ssd"}), json!([]));
    let hdd = node("b", json!({"disk": "hdd"}), json!([]));
    assert_eq!(node_fit(&s, &ssd), fit(true, true));
    assert_eq!(node_fit(&s, &hdd), fit(false, false));
    let pinned = spec(json!({"nodeName": "b"}));
    assert_eq!(node_fit(&pinned, &ssd), fit(false, false));
    assert_eq!(node_fit(&pinned, &hdd), fit(true, true));
}

#[test]
fn required_affinity_terms_are_ored_and_expressions_anded() {
    let s = spec(
        json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]},
                                  {"key": "gpu", "operator": "DoesNotExist"}]},
            {"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["8"]}]},
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["special"]}]},
        ]}}}}),
    );
    let cases = [
        ("n", json!({"zone": "a"}), true),
        ("n", json!({"zone": "a", "gpu": "1"}), false),
        ("n", json!({"zone": "c"}), false),
        ("n", json!({"cores": "16"}), true),
        ("n", json!({"cores": "8"}), false),
        ("n", json!({"cores": "many"}), false),
        ("special", json!({}), true),
    ];
    for (name, labels, want) in cases {
        let got = node_fit(&s, &node(name, labels.clone(), json!([]))).should_run;
        assert_eq!(got, want, "{name} {labels}");
    }
    // An empty term matches nothing.
    let empty = spec(
        json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{}]}}}}),
    );
    assert!(!node_fit(&empty, &node("n", json!({}), json!([]))).should_run);
}

#[test]
fn gt_takes_exactly_one_integer_as_the_scheduler_does() {
    // Kubernetes' labels.NewRequirement refuses Gt/Lt with other than one value, so the
    // term matches no node; this controller used to compare against the first value.
    let s = spec(
        json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [
            {"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["8", "100"]}]},
        ]}}}}),
    );
    let n = node("n", json!({"cores": "16"}), json!([]));
    assert_eq!(node_fit(&s, &n), fit(false, false));
}

#[test]
fn taints_stop_new_pods_and_noexecute_evicts() {
    let plain = spec(json!({}));
    let no_schedule = node(
        "n",
        json!({}),
        json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]),
    );
    let no_execute = node(
        "n",
        json!({}),
        json!([{"key": "dedicated", "effect": "NoExecute"}]),
    );
    let prefer = node(
        "n",
        json!({}),
        json!([{"key": "x", "effect": "PreferNoSchedule"}]),
    );
    assert_eq!(node_fit(&plain, &no_schedule), fit(false, true));
    assert_eq!(node_fit(&plain, &no_execute), fit(false, false));
    assert_eq!(node_fit(&plain, &prefer), fit(true, true));

    let tolerant = spec(
        json!({"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}]}),
    );
    assert_eq!(node_fit(&tolerant, &no_schedule), fit(true, true));
    let wrong_value = spec(json!({"tolerations": [{"key": "dedicated", "value": "web"}]}));
    assert_eq!(node_fit(&wrong_value, &no_schedule), fit(false, true));
    let everything = spec(json!({"tolerations": [{"operator": "Exists"}]}));
    assert_eq!(node_fit(&everything, &no_execute), fit(true, true));
}

#[test]
fn default_daemon_tolerations_cover_node_conditions() {
    let plain = spec(json!({}));
    for (key, effect) in [
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ] {
        let n = node("n", json!({}), json!([{"key": key, "effect": effect}]));
        assert_eq!(node_fit(&plain, &n), fit(true, true), "{key}");
    }
    let net = node(
        "n",
        json!({}),
        json!([{"key": "node.kubernetes.io/network-unavailable", "effect": "NoSchedule"}]),
    );
    assert_eq!(node_fit(&plain, &net), fit(false, true));
    let host = spec(json!({"hostNetwork": true}));
    assert_eq!(node_fit(&host, &net), fit(true, true));
    // Defaults replace a template toleration for the same key and effect, no duplicates.
    let mut s = spec(
        json!({"tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}]}),
    );
    add_default_tolerations(&mut s);
    let t = s.tolerations.unwrap();
    assert_eq!(t.len(), 6);
    assert!(t.iter().all(|t| t.toleration_seconds.is_none()));
}

#[test]
fn pinning_replaces_required_terms_and_target_node_reads_it_back() {
    let mut s = spec(json!({"affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]},
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 1, "preference": {"matchExpressions": [{"key": "x", "operator": "Exists"}]}}]}}}));
    assert_eq!(target_node(&s), None);
    pin_to_node(&mut s, "n7");
    assert_eq!(target_node(&s).as_deref(), Some("n7"));
    let na = s.affinity.as_ref().unwrap().node_affinity.as_ref().unwrap();
    let terms = &na
        .required_during_scheduling_ignored_during_execution
        .as_ref()
        .unwrap()
        .node_selector_terms;
    assert_eq!(terms.len(), 1);
    assert!(terms[0].match_expressions.is_none());
    assert!(
        na.preferred_during_scheduling_ignored_during_execution
            .is_some()
    );
    s.node_name = Some("bound".into());
    assert_eq!(target_node(&s).as_deref(), Some("bound"));
}
