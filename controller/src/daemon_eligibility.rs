//! Which nodes a DaemonSet's pod belongs on: the template's nodeName, nodeSelector and
//! required node affinity, and the node's taints against the template's tolerations plus the
//! tolerations Kubernetes adds to every daemon pod (`NodeShouldRunDaemonPod`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, PodSpec,
    Toleration,
};
use skiff_api::scheduling::{RequiredNodeAffinity, find_untolerated_taint};

/// Whether a daemon pod should be placed on a node, and whether one already there may stay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeFit {
    /// A daemon pod should run here (new pods are created).
    pub should_run: bool,
    /// A daemon pod already here may keep running (false: delete it).
    pub should_continue_running: bool,
}

const NOT_READY: &str = "node.kubernetes.io/not-ready";
const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
const DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
const MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
const PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";
const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
const NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";

fn exists(key: &str, effect: &str) -> Toleration {
    Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        ..Default::default()
    }
}

/// Adds the tolerations Kubernetes gives every daemon pod (`AddOrUpdateDaemonPodTolerations`),
/// replacing any the template already has for the same key and effect.
pub fn add_default_tolerations(spec: &mut PodSpec) {
    let mut defaults = vec![
        exists(NOT_READY, "NoExecute"),
        exists(UNREACHABLE, "NoExecute"),
        exists(DISK_PRESSURE, "NoSchedule"),
        exists(MEMORY_PRESSURE, "NoSchedule"),
        exists(PID_PRESSURE, "NoSchedule"),
        exists(UNSCHEDULABLE, "NoSchedule"),
    ];
    if spec.host_network == Some(true) {
        defaults.push(exists(NETWORK_UNAVAILABLE, "NoSchedule"));
    }
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    for d in defaults {
        tolerations.retain(|t| !(t.key == d.key && t.effect == d.effect));
        tolerations.push(d);
    }
}

/// Where a daemon pod from `template` stands on `node` (Kubernetes' `NodeShouldRunDaemonPod`):
/// a node that fails nodeName, nodeSelector or affinity runs nothing; an untolerated
/// NoSchedule taint stops new pods but lets running ones stay; an untolerated NoExecute taint
/// evicts them too.
pub fn node_fit(template: &PodSpec, node: &Node) -> NodeFit {
    let mut spec = template.clone();
    add_default_tolerations(&mut spec);
    let name = node.metadata.name.as_deref().unwrap_or("");
    let empty = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    let fits_name = spec
        .node_name
        .as_deref()
        .is_none_or(|n| n.is_empty() || n == name);
    if !fits_name || !RequiredNodeAffinity::of(&spec).matches(name, labels) {
        return NodeFit {
            should_run: false,
            should_continue_running: false,
        };
    }
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or(&[]);
    let tolerations = spec.tolerations.as_deref().unwrap_or(&[]);
    let untolerated = |effects: &[&str]| {
        find_untolerated_taint(taints, tolerations, |t| {
            effects.contains(&t.effect.as_str())
        })
        .is_some()
    };
    NodeFit {
        should_run: !untolerated(&["NoSchedule", "NoExecute"]),
        should_continue_running: !untolerated(&["NoExecute"]),
    }
}

/// Pins `spec` to `node` the way the DaemonSet controller does: the required node affinity
/// becomes the single term `matchFields metadata.name In [node]` (the controller has already
/// checked the template's own terms), so the scheduler places the pod and still applies
/// its other filters (`ReplaceDaemonSetPodNodeNameNodeAffinity`).
pub fn pin_to_node(spec: &mut PodSpec, node: &str) {
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    let node_affinity = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    node_affinity.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_fields: Some(vec![NodeSelectorRequirement {
                key: "metadata.name".into(),
                operator: "In".into(),
                values: Some(vec![node.into()]),
            }]),
            match_expressions: None,
        }],
    });
}

/// The node a daemon pod is for: its nodeName once bound, otherwise the node its
/// `metadata.name` affinity pins it to (`util.GetTargetNodeName`).
pub fn target_node(spec: &PodSpec) -> Option<String> {
    if let Some(n) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return Some(n.to_string());
    }
    spec.affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|r| r.key == "metadata.name" && r.operator == "In")?
        .values
        .as_ref()?
        .first()
        .cloned()
}

#[cfg(test)]
#[path = "daemon_eligibility_tests.rs"]
mod tests;
