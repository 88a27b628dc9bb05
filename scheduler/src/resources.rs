//! A node's allocatable resources in the scheduler's [`Resources`] amounts; a pod's
//! effective requests are the shared rule in `skiff_api::pod::requests`.

use k8s_openapi::api::core::v1::Node;

pub use skiff_api::pod::requests::Resources;

/// The node's allocatable resources (its capacity when allocatable is not reported).
pub fn node_allocatable(node: &Node) -> Resources {
    let status = node.status.as_ref();
    status
        .and_then(|s| s.allocatable.as_ref().or(s.capacity.as_ref()))
        .map(Resources::from_list)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn allocatable_falls_back_to_capacity() {
        let n: Node = serde_json::from_value(json!({
            "metadata": {"name": "n"},
            "status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110", "example.com/gpu": "2"}}
        }))
        .unwrap();
        let r = node_allocatable(&n);
        assert_eq!((r.milli_cpu, r.memory, r.pods), (4000, 8 << 30, 110));
        assert_eq!(r.scalar["example.com/gpu"], 2);
    }
}
