//! NodeResourcesFit (requests against allocatable, pod count) as a filter, and the
//! LeastAllocated and BalancedAllocation scores over CPU and memory.

use crate::cache::NodeInfo;
use crate::framework::{CycleState, Failure, MAX_NODE_SCORE};
use crate::podinfo::PodInfo;

/// Filter: the node has room for the pod's requests and one more pod.
pub fn filter(_: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<(), Failure> {
    let mut reasons = Vec::new();
    if node.pods.len() as i64 + 1 > node.allocatable.pods {
        reasons.push("Too many pods".to_string());
    }
    let want = &pod.requests;
    let free = |alloc: i64, used: i64| alloc - used;
    if want.milli_cpu > 0
        && want.milli_cpu > free(node.allocatable.milli_cpu, node.requested.milli_cpu)
    {
        reasons.push("Insufficient cpu".into());
    }
    if want.memory > 0 && want.memory > free(node.allocatable.memory, node.requested.memory) {
        reasons.push("Insufficient memory".into());
    }
    if want.ephemeral_storage > 0
        && want.ephemeral_storage
            > free(
                node.allocatable.ephemeral_storage,
                node.requested.ephemeral_storage,
            )
    {
        reasons.push("Insufficient ephemeral-storage".into());
    }
    for (name, amount) in &want.scalar {
        let alloc = node.allocatable.scalar.get(name).copied().unwrap_or(0);
        let used = node.requested.scalar.get(name).copied().unwrap_or(0);
        if *amount > 0 && *amount > alloc - used {
            reasons.push(format!("Insufficient {name}"));
        }
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(Failure {
            reasons,
            resolvable: true,
        })
    }
}

/// (requested including the pod, allocatable) for CPU and memory, with scoring defaults.
fn cpu_memory(pod: &PodInfo, node: &NodeInfo) -> [(i64, i64); 2] {
    [
        (
            node.non_zero_requested.milli_cpu + pod.non_zero_requests.milli_cpu,
            node.allocatable.milli_cpu,
        ),
        (
            node.non_zero_requested.memory + pod.non_zero_requests.memory,
            node.allocatable.memory,
        ),
    ]
}

/// Score: free share of CPU and memory after placing the pod, averaged (0–100).
pub fn least_allocated(_: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
    let parts = cpu_memory(pod, node);
    let sum: i64 = parts
        .iter()
        .map(|&(req, alloc)| {
            if alloc == 0 || req > alloc {
                0
            } else {
                (alloc - req) * MAX_NODE_SCORE / alloc
            }
        })
        .sum();
    sum / parts.len() as i64
}

/// Score: how evenly CPU and memory would be used (100 when the fractions are equal).
pub fn balanced_allocation(_: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
    let fractions: Vec<f64> = cpu_memory(pod, node)
        .iter()
        .map(|&(req, alloc)| {
            if alloc == 0 {
                1.0
            } else {
                (req as f64 / alloc as f64).min(1.0)
            }
        })
        .collect();
    let mean = fractions.iter().sum::<f64>() / fractions.len() as f64;
    let variance =
        fractions.iter().map(|f| (f - mean).powi(2)).sum::<f64>() / fractions.len() as f64;
    ((1.0 - variance.sqrt()) * MAX_NODE_SCORE as f64) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::test_support::{node_with, pod};
    use serde_json::json;
    use std::sync::Arc;

    fn req(cpu: &str, mem: &str) -> PodInfo {
        pod(
            json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": mem}}}]}),
        )
    }

    #[test]
    fn insufficient_resources_are_all_reported() {
        let s = CycleState::default();
        let n = node_with("n", json!({"cpu": "1", "memory": "1Gi", "pods": "10"}));
        assert!(filter(&s, &req("1", "1Gi"), &n).is_ok());
        let err = filter(&s, &req("1100m", "2Gi"), &n).unwrap_err();
        assert_eq!(err.reasons, vec!["Insufficient cpu", "Insufficient memory"]);
        assert!(err.resolvable);
    }

    #[test]
    fn existing_pods_consume_capacity_and_slots() {
        let s = CycleState::default();
        let mut n = node_with("n", json!({"cpu": "1", "memory": "1Gi", "pods": "2"}));
        n.add_pod(Arc::new(req("600m", "1Mi")));
        let err = filter(&s, &req("500m", "1Mi"), &n).unwrap_err();
        assert_eq!(err.reasons, vec!["Insufficient cpu"]);
        n.add_pod(Arc::new(req("1m", "1Mi")));
        let err = filter(&s, &req("1m", "1Mi"), &n).unwrap_err();
        assert_eq!(err.reasons, vec!["Too many pods"]);
    }

    #[test]
    fn init_containers_and_extended_resources_count() {
        let s = CycleState::default();
        let n = node_with("n", json!({"cpu": "1", "memory": "1Gi", "pods": "10"}));
        let p = pod(json!({"containers": [{"name": "c"}],
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2"}}}]}));
        assert_eq!(
            filter(&s, &p, &n).unwrap_err().reasons,
            vec!["Insufficient cpu"]
        );
        let gpu = pod(
            json!({"containers": [{"name": "c", "resources": {"requests": {"example.com/gpu": "1"}}}]}),
        );
        assert_eq!(
            filter(&s, &gpu, &n).unwrap_err().reasons,
            vec!["Insufficient example.com/gpu"]
        );
    }

    #[test]
    fn least_allocated_prefers_emptier_nodes() {
        let s = CycleState::default();
        let empty = node_with("a", json!({"cpu": "4", "memory": "4Gi", "pods": "10"}));
        let mut busy = node_with("b", json!({"cpu": "4", "memory": "4Gi", "pods": "10"}));
        busy.add_pod(Arc::new(req("2", "2Gi")));
        let p = req("1", "1Gi");
        assert_eq!(least_allocated(&s, &p, &empty), 75);
        assert_eq!(least_allocated(&s, &p, &busy), 25);
    }

    #[test]
    fn balanced_allocation_prefers_even_use() {
        let s = CycleState::default();
        let n = node_with("a", json!({"cpu": "4", "memory": "4Gi", "pods": "10"}));
        assert_eq!(balanced_allocation(&s, &req("2", "2Gi"), &n), 100);
        // cpu 100%, memory 0.25 → std 0.375 → 62.
        assert_eq!(balanced_allocation(&s, &req("4", "1Gi"), &n), 62);
    }
}
