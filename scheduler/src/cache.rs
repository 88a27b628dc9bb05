//! The scheduler's view of the cluster: nodes with the pods on them and what those pods
//! use, including pods the scheduler has assumed onto a node before the binding is seen.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};

use crate::podinfo::{HostPort, PodInfo};
use crate::resources::{Resources, node_allocatable};

/// How long an assumed pod whose binding succeeded may stay unconfirmed by the watch.
pub const ASSUMED_TTL: Duration = Duration::from_secs(30);

/// One node and the pods on it.
#[derive(Debug, Clone, Default)]
pub struct NodeInfo {
    /// The node; `None` while pods point at a node the watch has not delivered yet.
    pub node: Option<Arc<Node>>,
    /// The node's name.
    pub name: String,
    /// The node's labels.
    pub labels: std::collections::BTreeMap<String, String>,
    /// Allocatable resources.
    pub allocatable: Resources,
    /// Sum of the pods' requests.
    pub requested: Resources,
    /// Sum of the pods' requests with scoring defaults.
    pub non_zero_requested: Resources,
    /// Pods on the node (assumed ones included).
    pub pods: Vec<Arc<PodInfo>>,
    /// Host ports in use.
    pub used_ports: Vec<HostPort>,
    /// Images present on the node (every name) and their sizes in bytes.
    pub images: HashMap<String, i64>,
    /// How many pods here have any (anti-)affinity term.
    pub pods_with_affinity: usize,
    /// How many pods here have a required anti-affinity term.
    pub pods_with_required_anti_affinity: usize,
}

impl NodeInfo {
    /// A node info for `node` with no pods.
    pub fn new(node: Arc<Node>) -> NodeInfo {
        let mut info = NodeInfo::default();
        info.set_node(node);
        info
    }

    fn set_node(&mut self, node: Arc<Node>) {
        self.name = node.metadata.name.clone().unwrap_or_default();
        self.labels = node.metadata.labels.clone().unwrap_or_default();
        self.allocatable = node_allocatable(&node);
        self.images.clear();
        for img in node.status.iter().flat_map(|s| s.images.iter().flatten()) {
            for name in img.names.iter().flatten() {
                self.images
                    .insert(name.clone(), img.size_bytes.unwrap_or(0));
            }
        }
        self.node = Some(node);
    }

    /// Adds a pod's usage.
    pub fn add_pod(&mut self, pod: Arc<PodInfo>) {
        self.requested.add(&pod.requests);
        self.non_zero_requested.add(&pod.non_zero_requests);
        self.used_ports.extend(pod.host_ports.iter().cloned());
        if pod.has_affinity() {
            self.pods_with_affinity += 1;
        }
        if !pod.required_anti_affinity.is_empty() {
            self.pods_with_required_anti_affinity += 1;
        }
        self.pods.push(pod);
    }

    /// Removes a pod's usage; false when the pod was not here.
    pub fn remove_pod(&mut self, key: &str) -> bool {
        let Some(i) = self.pods.iter().position(|p| p.key == key) else {
            return false;
        };
        let pod = self.pods.swap_remove(i);
        self.requested.sub(&pod.requests);
        self.non_zero_requested.sub(&pod.non_zero_requests);
        for hp in &pod.host_ports {
            if let Some(j) = self.used_ports.iter().position(|u| u == hp) {
                self.used_ports.swap_remove(j);
            }
        }
        if pod.has_affinity() {
            self.pods_with_affinity -= 1;
        }
        if !pod.required_anti_affinity.is_empty() {
            self.pods_with_required_anti_affinity -= 1;
        }
        true
    }
}

#[derive(Debug)]
struct PodState {
    node: String,
    /// Set while the pod is assumed (not yet seen bound); the deadline after which an
    /// unconfirmed assumption is dropped, once its binding finished.
    assumed: Option<Option<Instant>>,
}

/// Nodes and the pods placed on them.
#[derive(Debug, Default)]
pub struct Cache {
    nodes: HashMap<String, NodeInfo>,
    /// Names of nodes with a Node object, in a stable order for round-robin search.
    order: Vec<String>,
    pods: HashMap<String, PodState>,
    /// How many nodes hold each image name.
    image_nodes: HashMap<String, usize>,
    /// Claims, volumes and classes.
    pub storage: crate::volumes::Storage,
}

impl Cache {
    /// An empty cache.
    pub fn new() -> Cache {
        Cache::default()
    }

    /// Adds or replaces a node; returns true when it is new.
    pub fn upsert_node(&mut self, node: Arc<Node>) -> bool {
        let name = node.metadata.name.clone().unwrap_or_default();
        let entry = self.nodes.entry(name.clone()).or_default();
        let new = entry.node.is_none();
        for img in entry.images.keys() {
            if let Some(n) = self.image_nodes.get_mut(img) {
                *n = n.saturating_sub(1);
            }
        }
        entry.set_node(node);
        for img in entry.images.keys() {
            *self.image_nodes.entry(img.clone()).or_default() += 1;
        }
        if new {
            self.order.push(name);
        }
        new
    }

    /// Removes a node (pods that still point at it keep a placeholder).
    pub fn remove_node(&mut self, name: &str) {
        if let Some(info) = self.nodes.get_mut(name) {
            for img in info.images.keys() {
                if let Some(n) = self.image_nodes.get_mut(img) {
                    *n = n.saturating_sub(1);
                }
            }
            info.node = None;
            info.images.clear();
            if info.pods.is_empty() {
                self.nodes.remove(name);
            }
        }
        self.order.retain(|n| n != name);
    }

    /// Names of all nodes with a Node object.
    pub fn node_names(&self) -> &[String] {
        &self.order
    }

    /// A node by name (only those with a Node object).
    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.nodes.get(name).filter(|n| n.node.is_some())
    }

    /// All nodes with a Node object, in round-robin order.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeInfo> {
        self.order.iter().filter_map(|n| self.nodes.get(n))
    }

    /// How many nodes report `image`.
    pub fn nodes_with_image(&self, image: &str) -> usize {
        self.image_nodes.get(image).copied().unwrap_or(0)
    }

    /// Records a bound pod as the watch reports it (confirming an assumption, or moving it
    /// if it landed elsewhere). Returns true if the pod was not known before.
    pub fn add_bound_pod(&mut self, pod: Arc<Pod>) -> bool {
        let info = Arc::new(PodInfo::new(pod));
        let node = info
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        let known = self.remove_from_node(&info.key);
        self.nodes.entry(node.clone()).or_insert_with(|| NodeInfo {
            name: node.clone(),
            ..NodeInfo::default()
        });
        if let Some(n) = self.nodes.get_mut(&node) {
            n.add_pod(info.clone());
        }
        self.pods.insert(
            info.key.clone(),
            PodState {
                node,
                assumed: None,
            },
        );
        !known
    }

    /// Removes a pod (deleted or finished). Returns true if it was known.
    pub fn remove_pod(&mut self, key: &str) -> bool {
        let known = self.remove_from_node(key);
        self.pods.remove(key);
        known
    }

    fn remove_from_node(&mut self, key: &str) -> bool {
        let Some(state) = self.pods.get(key) else {
            return false;
        };
        if let Some(n) = self.nodes.get_mut(&state.node) {
            n.remove_pod(key);
            if n.node.is_none() && n.pods.is_empty() {
                self.nodes.remove(&state.node);
            }
        }
        true
    }

    /// Places a pod on a node before its binding is observed, so later decisions see the
    /// capacity as taken.
    pub fn assume(&mut self, pod: Arc<PodInfo>, node: &str) {
        self.remove_from_node(&pod.key);
        let key = pod.key.clone();
        if let Some(n) = self.nodes.get_mut(node) {
            n.add_pod(pod);
        }
        self.pods.insert(
            key,
            PodState {
                node: node.to_string(),
                assumed: Some(None),
            },
        );
    }

    /// Keys of every pod the cache places on a node.
    pub fn pod_keys(&self) -> impl Iterator<Item = &String> {
        self.pods.keys()
    }

    /// Whether the pod is assumed and not yet confirmed.
    pub fn is_assumed(&self, key: &str) -> bool {
        self.pods.get(key).is_some_and(|s| s.assumed.is_some())
    }

    /// Whether the cache holds the pod on a node (assumed or bound).
    pub fn has_pod(&self, key: &str) -> bool {
        self.pods.contains_key(key)
    }

    /// The binding of an assumed pod succeeded: start its confirmation deadline.
    pub fn finish_binding(&mut self, key: &str, now: Instant) {
        if let Some(PodState {
            assumed: Some(deadline),
            ..
        }) = self.pods.get_mut(key)
        {
            *deadline = Some(now + ASSUMED_TTL);
        }
    }

    /// Drops an assumption (binding failed).
    pub fn forget(&mut self, key: &str) {
        if self.is_assumed(key) {
            self.remove_pod(key);
        }
    }

    /// Drops assumptions whose confirmation never arrived; returns how many.
    pub fn expire_assumed(&mut self, now: Instant) -> usize {
        let expired: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, s)| matches!(s.assumed, Some(Some(d)) if d <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for k in &expired {
            self.remove_pod(k);
        }
        expired.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name},
                "status": {"allocatable": {"cpu": "2", "memory": "1Gi", "pods": "10"},
                  "images": [{"names": ["docker.io/library/nginx:latest"], "sizeBytes": 100}]}}))
            .unwrap(),
        )
    }

    fn pod(name: &str, node: Option<&str>, cpu: &str) -> Arc<Pod> {
        let mut spec =
            json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]});
        if let Some(n) = node {
            spec["nodeName"] = json!(n);
        }
        Arc::new(
            serde_json::from_value(
                json!({"metadata": {"name": name, "namespace": "ns"}, "spec": spec}),
            )
            .unwrap(),
        )
    }

    #[test]
    fn assumed_pod_takes_capacity_until_forgotten() {
        let mut c = Cache::new();
        c.upsert_node(node("n1"));
        c.assume(Arc::new(PodInfo::new(pod("a", None, "500m"))), "n1");
        assert_eq!(c.node("n1").unwrap().requested.milli_cpu, 500);
        assert!(c.is_assumed("ns/a"));
        c.forget("ns/a");
        assert_eq!(c.node("n1").unwrap().requested.milli_cpu, 0);
    }

    #[test]
    fn watch_confirms_assumption_without_double_counting() {
        let mut c = Cache::new();
        c.upsert_node(node("n1"));
        c.upsert_node(node("n2"));
        c.assume(Arc::new(PodInfo::new(pod("a", None, "500m"))), "n1");
        c.add_bound_pod(pod("a", Some("n1"), "500m"));
        assert!(!c.is_assumed("ns/a"));
        assert_eq!(c.node("n1").unwrap().requested.milli_cpu, 500);
        // Bound elsewhere by someone else: moves.
        c.add_bound_pod(pod("a", Some("n2"), "500m"));
        assert_eq!(c.node("n1").unwrap().requested.milli_cpu, 0);
        assert_eq!(c.node("n2").unwrap().pods.len(), 1);
        c.remove_pod("ns/a");
        assert_eq!(c.node("n2").unwrap().requested.milli_cpu, 0);
    }

    #[test]
    fn assumptions_expire_after_binding_without_confirmation() {
        let mut c = Cache::new();
        c.upsert_node(node("n1"));
        c.assume(Arc::new(PodInfo::new(pod("a", None, "1"))), "n1");
        let now = Instant::now();
        assert_eq!(
            c.expire_assumed(now + ASSUMED_TTL * 2),
            0,
            "binding not finished yet"
        );
        c.finish_binding("ns/a", now);
        assert_eq!(c.expire_assumed(now + ASSUMED_TTL * 2), 1);
        assert!(!c.has_pod("ns/a"));
    }

    #[test]
    fn pods_on_unknown_nodes_are_kept_until_the_node_arrives() {
        let mut c = Cache::new();
        c.add_bound_pod(pod("a", Some("late"), "1"));
        assert!(c.node("late").is_none());
        c.upsert_node(node("late"));
        assert_eq!(c.node("late").unwrap().requested.milli_cpu, 1000);
        assert_eq!(c.nodes_with_image("docker.io/library/nginx:latest"), 1);
        c.remove_node("late");
        assert_eq!(c.nodes_with_image("docker.io/library/nginx:latest"), 0);
        assert!(c.node_names().is_empty());
    }
}
