//! `metrics.k8s.io/v1beta1` served by the API server itself, in place of metrics-server:
//! a scraper reads every Ready node's Summary API through the node relay each
//! `--metric-resolution` ([`scrape`]), this module keeps the last two readings per node,
//! pod and container in memory (never in the store) and turns them into usage rates, and
//! [`serve`] answers NodeMetrics and PodMetrics (get and list, read-only) from them.
//!
//! Not to be confused with `crate::metrics`, the server's own Prometheus metrics.

pub mod scrape;
pub mod serve;
pub mod summary;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use jiff::Timestamp;

pub use summary::{ContainerReading, NodeReading, PodReading, Reading};

/// metrics-server's default `--metric-resolution`.
pub const DEFAULT_METRIC_RESOLUTION: Duration = Duration::from_secs(15);

/// Usage over one collection window, as NodeMetrics and PodMetrics report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// The end of the window (the later reading's time).
    pub timestamp: Timestamp,
    /// The time between the two readings the rate is computed over.
    pub window: Duration,
    /// CPU in nanocores over the window.
    pub nano_cores: u64,
    /// Memory working set at `timestamp`, in bytes.
    pub memory: u64,
}

/// One pod's usage: every container's, all computed over windows ending in one scrape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodUsage {
    /// Per container (name, usage), in the kubelet's order.
    pub containers: Vec<(String, Usage)>,
}

/// The last reading of one series (a node or a container) and the usage it gave.
#[derive(Debug, Clone, Copy)]
struct Series {
    last: Reading,
    usage: Option<Usage>,
}

impl Series {
    /// The series after `next`: a rate when an earlier reading exists, is older and has
    /// used less CPU (a counter that went back means the container restarted).
    fn advance(prev: Option<&Series>, next: Reading) -> Series {
        let Some(prev) = prev else {
            return Series {
                last: next,
                usage: None,
            };
        };
        if next.time == prev.last.time {
            return *prev;
        }
        let elapsed = next.time.duration_since(prev.last.time);
        let usage = match Duration::try_from(elapsed) {
            Ok(window) if !window.is_zero() && next.cpu_ns >= prev.last.cpu_ns => Some(Usage {
                timestamp: next.time,
                window,
                nano_cores: ((next.cpu_ns - prev.last.cpu_ns) as u128 * 1_000_000_000
                    / window.as_nanos()) as u64,
                memory: next.memory,
            }),
            _ => None,
        };
        Series { last: next, usage }
    }
}

#[derive(Default)]
struct NodeEntry {
    node: Option<Series>,
    /// (namespace, pod name) → containers.
    pods: HashMap<(String, String), Vec<(String, Series)>>,
}

/// The in-memory metrics of every node and pod, fed by the scraper.
#[derive(Default)]
pub struct ResourceMetrics {
    nodes: RwLock<HashMap<String, NodeEntry>>,
}

impl ResourceMetrics {
    /// Takes in one scrape of `node`; pods absent from it are forgotten.
    pub fn record(&self, node: &str, reading: NodeReading) {
        let mut nodes = self.nodes.write().unwrap_or_else(|e| e.into_inner());
        let entry = nodes.entry(node.to_string()).or_default();
        let prev_pods = std::mem::take(&mut entry.pods);
        entry.node = reading
            .node
            .map(|r| Series::advance(entry.node.as_ref(), r));
        for pod in reading.pods {
            let key = (pod.namespace, pod.name);
            let before = prev_pods.get(&key);
            let containers = pod
                .containers
                .into_iter()
                .map(|c| {
                    let prev = before.and_then(|b| b.iter().find(|(n, _)| *n == c.name));
                    let series = Series::advance(prev.map(|(_, s)| s), c.reading);
                    (c.name, series)
                })
                .collect();
            entry.pods.insert(key, containers);
        }
    }

    /// Drops a node's metrics (it is gone, not Ready, or its kubelet did not answer).
    pub fn forget(&self, node: &str) {
        self.nodes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(node);
    }

    /// Keeps only the nodes `keep` accepts.
    pub fn retain_nodes(&self, keep: impl Fn(&str) -> bool) {
        self.nodes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|n, _| keep(n));
    }

    /// The node's usage, once two readings have been taken.
    pub fn node_usage(&self, node: &str) -> Option<Usage> {
        let nodes = self.nodes.read().unwrap_or_else(|e| e.into_inner());
        nodes.get(node)?.node?.usage
    }

    /// The pod's usage on `node`; `None` until every container it reports has a rate, as
    /// metrics-server leaves out a pod with any container not yet measured.
    pub fn pod_usage(&self, node: &str, namespace: &str, name: &str) -> Option<PodUsage> {
        let nodes = self.nodes.read().unwrap_or_else(|e| e.into_inner());
        let containers = nodes
            .get(node)?
            .pods
            .get(&(namespace.to_string(), name.to_string()))?;
        if containers.is_empty() {
            return None;
        }
        let containers = containers
            .iter()
            .map(|(n, s)| Some((n.clone(), s.usage?)))
            .collect::<Option<Vec<_>>>()?;
        Some(PodUsage { containers })
    }

    /// How many nodes and pods are held (for the server's own metrics and benchmarks).
    pub fn counts(&self) -> (usize, usize) {
        let nodes = self.nodes.read().unwrap_or_else(|e| e.into_inner());
        (nodes.len(), nodes.values().map(|n| n.pods.len()).sum())
    }
}
