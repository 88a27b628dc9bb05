//! The Summary API document (k8s.io/kubelet/pkg/apis/stats/v1alpha1): `node` and `pods`,
//! each with `cpu` and `memory` stats, pods with their `containers`.

use serde_json::{Value, json};

use super::{Figures, Summary};

fn cpu(time: &str, f: &Figures) -> Value {
    let mut v = json!({"time": time, "usageCoreNanoSeconds": f.cpu_ns});
    if let Some(r) = f.nano_cores {
        v["usageNanoCores"] = json!(r);
    }
    v
}

fn memory(time: &str, f: &Figures, available: Option<u64>) -> Value {
    let mut v = json!({
        "time": time, "usageBytes": f.memory_usage, "workingSetBytes": f.working_set,
        "rssBytes": f.rss, "pageFaults": f.page_faults, "majorPageFaults": f.major_page_faults,
    });
    if let Some(a) = available {
        v["availableBytes"] = json!(a);
    }
    v
}

/// The Summary document of node `node_name`.
pub fn render(node_name: &str, s: &Summary) -> Value {
    let time = s.time.to_string();
    let mut node = json!({"nodeName": node_name});
    if let Some(n) = &s.node {
        node["cpu"] = cpu(&time, &n.figures);
        node["memory"] = memory(&time, &n.figures, Some(n.available));
    }
    let pods: Vec<Value> = s
        .pods
        .iter()
        .map(|p| {
            let containers: Vec<Value> = p
                .containers
                .iter()
                .map(|c| {
                    json!({
                        "name": c.name,
                        "startTime": c.start_time.map(|t| t.to_string()),
                        "cpu": cpu(&time, &c.figures),
                        "memory": memory(&time, &c.figures, None),
                    })
                })
                .collect();
            json!({
                "podRef": {"name": p.name, "namespace": p.namespace, "uid": p.uid},
                "startTime": p.start_time.to_string(),
                "containers": containers,
                "cpu": cpu(&time, &p.figures),
                "memory": memory(&time, &p.figures, None),
            })
        })
        .collect();
    json!({"node": node, "pods": pods})
}
