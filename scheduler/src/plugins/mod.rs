//! The filter and score plugins and their order and weights (kube-scheduler's defaults).

pub mod fit;
pub mod image;
pub mod interpod;
pub mod node_affinity;
pub mod spread;
pub mod taints;
pub mod volume_binding;

#[cfg(test)]
pub(crate) mod test_support;

use crate::framework::{FilterFn, Normalize, ScorePlugin};

/// Filters in kube-scheduler's order; the first failing one decides a node's reason.
pub static FILTERS: &[(&str, FilterFn)] = &[
    ("NodeUnschedulable", node_affinity::filter_unschedulable),
    ("NodeName", node_affinity::filter_node_name),
    ("TaintToleration", taints::filter),
    ("NodeAffinity", node_affinity::filter),
    ("NodePorts", taints::filter_ports),
    ("NodeResourcesFit", fit::filter),
    ("VolumeBinding", volume_binding::filter),
    ("PodTopologySpread", spread::filter),
    ("InterPodAffinity", interpod::filter),
];

/// Scores with kube-scheduler's default weights.
pub static SCORES: &[ScorePlugin] = &[
    ScorePlugin {
        name: "TaintToleration",
        score: taints::score,
        normalize: Normalize::Max { reverse: true },
        weight: 3,
    },
    ScorePlugin {
        name: "NodeAffinity",
        score: node_affinity::score,
        normalize: Normalize::Max { reverse: false },
        weight: 2,
    },
    ScorePlugin {
        name: "NodeResourcesFit",
        score: fit::least_allocated,
        normalize: Normalize::None,
        weight: 1,
    },
    ScorePlugin {
        name: "PodTopologySpread",
        score: spread::score,
        normalize: Normalize::Custom(spread::normalize),
        weight: 2,
    },
    ScorePlugin {
        name: "InterPodAffinity",
        score: interpod::score,
        normalize: Normalize::Custom(interpod::normalize),
        weight: 2,
    },
    ScorePlugin {
        name: "NodeResourcesBalancedAllocation",
        score: fit::balanced_allocation,
        normalize: Normalize::None,
        weight: 1,
    },
    ScorePlugin {
        name: "ImageLocality",
        score: image::score,
        normalize: Normalize::None,
        weight: 1,
    },
];
