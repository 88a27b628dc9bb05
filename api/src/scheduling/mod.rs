//! Kubernetes' placement rules shared by the scheduler and the DaemonSet controller: node
//! selector and node affinity matching, and taint toleration.

pub mod node_affinity;
pub mod taints;

pub use node_affinity::{
    NodeSelectorTerms, PreferredSchedulingTerms, RequiredNodeAffinity, node_selector_matches,
};
pub use taints::{find_untolerated_taint, tolerated, tolerates};
