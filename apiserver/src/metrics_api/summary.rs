//! Reading a kubelet's Summary API answer (`/stats/summary`, stats/v1alpha1) into the
//! cumulative figures the metrics store turns into rates.

use jiff::Timestamp;
use serde::Deserialize;

/// One cumulative reading: CPU time used so far and the memory working set, at `time`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// When the kubelet read it.
    pub time: Timestamp,
    /// CPU time used since the container (or node) started, in nanoseconds.
    pub cpu_ns: u64,
    /// Memory working set in bytes.
    pub memory: u64,
}

/// A container's reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerReading {
    /// Container name.
    pub name: String,
    /// Its figures.
    pub reading: Reading,
}

/// A pod's container readings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodReading {
    /// Namespace of the pod.
    pub namespace: String,
    /// Name of the pod.
    pub name: String,
    /// One per running container with both CPU and memory figures.
    pub containers: Vec<ContainerReading>,
}

/// Everything one scrape of a node gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeReading {
    /// The node's own figures, when the kubelet had them.
    pub node: Option<Reading>,
    /// The pods'.
    pub pods: Vec<PodReading>,
}

#[derive(Deserialize)]
struct Summary {
    node: NodeStats,
    #[serde(default)]
    pods: Vec<PodStats>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NodeStats {
    cpu: Option<Cpu>,
    memory: Option<Memory>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodStats {
    pod_ref: PodRef,
    #[serde(default)]
    containers: Vec<ContainerStats>,
}

#[derive(Deserialize)]
struct PodRef {
    name: String,
    namespace: String,
}

#[derive(Deserialize)]
struct ContainerStats {
    name: String,
    cpu: Option<Cpu>,
    memory: Option<Memory>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Cpu {
    time: Timestamp,
    usage_core_nano_seconds: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Memory {
    working_set_bytes: Option<u64>,
}

/// A reading from CPU and memory stats, as metrics-server takes them: both figures must be
/// present, and the time is the CPU reading's (the one the rate is computed over).
fn reading(cpu: Option<&Cpu>, memory: Option<&Memory>) -> Option<Reading> {
    let cpu = cpu?;
    Some(Reading {
        time: cpu.time,
        cpu_ns: cpu.usage_core_nano_seconds?,
        memory: memory?.working_set_bytes?,
    })
}

/// Parses a Summary document; containers without CPU or memory figures are left out.
pub fn parse(body: &[u8]) -> Result<NodeReading, serde_json::Error> {
    let s: Summary = serde_json::from_slice(body)?;
    let pods = s
        .pods
        .iter()
        .map(|p| PodReading {
            namespace: p.pod_ref.namespace.clone(),
            name: p.pod_ref.name.clone(),
            containers: p
                .containers
                .iter()
                .filter_map(|c| {
                    Some(ContainerReading {
                        name: c.name.clone(),
                        reading: reading(c.cpu.as_ref(), c.memory.as_ref())?,
                    })
                })
                .collect(),
        })
        .collect();
    Ok(NodeReading {
        node: reading(s.node.cpu.as_ref(), s.node.memory.as_ref()),
        pods,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_node_pods_and_containers() {
        let body = br#"{
          "node": {"nodeName": "n1",
            "cpu": {"time": "2026-12-02T05:00:00Z", "usageCoreNanoSeconds": 5000, "usageNanoCores": 7},
            "memory": {"time": "2026-12-02T05:00:00Z", "workingSetBytes": 4096, "usageBytes": 8192}},
          "pods": [
            {"podRef": {"name": "web", "namespace": "default", "uid": "u"},
             "containers": [
               {"name": "app", "cpu": {"time": "2026-12-02T05:00:01Z", "usageCoreNanoSeconds": 10},
                "memory": {"time": "2026-12-02T05:00:01Z", "workingSetBytes": 20}},
               {"name": "nocpu", "memory": {"time": "2026-12-02T05:00:01Z", "workingSetBytes": 1}}
             ]}
          ]}"#;
        let r = parse(body).unwrap();
        let node = r.node.unwrap();
        assert_eq!((node.cpu_ns, node.memory), (5000, 4096));
        assert_eq!(r.pods.len(), 1);
        assert_eq!(r.pods[0].containers.len(), 1);
        let c = &r.pods[0].containers[0];
        assert_eq!(c.name, "app");
        assert_eq!((c.reading.cpu_ns, c.reading.memory), (10, 20));
        assert_eq!(c.reading.time, "2026-12-02T05:00:01Z".parse().unwrap());
    }

    #[test]
    fn node_without_figures_and_bad_documents() {
        let r = parse(br#"{"node": {"nodeName": "n1"}}"#).unwrap();
        assert_eq!(r.node, None);
        assert!(r.pods.is_empty());
        assert!(parse(b"not json").is_err());
    }
}
