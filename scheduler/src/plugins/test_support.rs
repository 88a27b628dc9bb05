//! Builders for plugin unit tests: pods and nodes from JSON fragments.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{Value, json};

use crate::cache::{Cache, NodeInfo};
use crate::podinfo::PodInfo;

/// A pod named `p` in namespace `default` with the given spec (containers defaulted).
pub fn pod(spec: Value) -> PodInfo {
    named_pod("p", json!({}), spec)
}

/// A pod with a name, labels and spec.
pub fn named_pod(name: &str, labels: Value, mut spec: Value) -> PodInfo {
    if spec.get("containers").is_none() {
        spec["containers"] = json!([{"name": "c", "image": "busybox"}]);
    }
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "spec": spec
    }))
    .expect("test pod");
    PodInfo::new(Arc::new(pod))
}

fn node_object(name: &str, labels: Value, spec: Value, allocatable: Value) -> Arc<Node> {
    let mut labels = labels;
    labels["kubernetes.io/hostname"] = json!(name);
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "spec": spec,
            "status": {"allocatable": allocatable}
        }))
        .expect("test node"),
    )
}

/// A node with labels and spec and roomy allocatable resources.
pub fn node(name: &str, labels: Value, spec: Value) -> NodeInfo {
    NodeInfo::new(node_object(
        name,
        labels,
        spec,
        json!({"cpu": "8", "memory": "16Gi", "pods": "110"}),
    ))
}

/// A node with the given allocatable resources.
pub fn node_with(name: &str, allocatable: Value) -> NodeInfo {
    NodeInfo::new(node_object(name, json!({}), json!({}), allocatable))
}

/// n1 and n2 in zone a, n3 in zone b.
pub fn zone_nodes() -> Vec<(&'static str, Value)> {
    vec![
        ("n1", json!({"zone": "a"})),
        ("n2", json!({"zone": "a"})),
        ("n3", json!({"zone": "b"})),
    ]
}

/// A cache of labelled nodes with pods (name, node, labels, spec) bound to them.
pub fn cache_with(nodes: Vec<(&str, Value)>, pods: &[(&str, &str, Value, Value)]) -> Cache {
    let mut cache = Cache::new();
    for (name, labels) in nodes {
        cache.upsert_node(node_object(
            name,
            labels,
            json!({}),
            json!({"cpu": "8", "memory": "16Gi", "pods": "110"}),
        ));
    }
    for (name, node, labels, spec) in pods {
        let mut spec = spec.clone();
        spec["nodeName"] = json!(node);
        let info = named_pod(name, labels.clone(), spec);
        cache.add_bound_pod(info.pod.clone());
    }
    cache
}
