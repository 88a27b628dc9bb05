//! Nodes: podCIDR/podCIDRs kept in step, allocatable defaulted from capacity, the pod
//! CIDR and provider ID fixed once set, the node table and `spec.unschedulable`.

use std::collections::BTreeSet;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Node;
use serde_json::{Value, json};

use super::table::{AGE, NAME, age, col, name, wide};
use super::{Column, Strategy, decode, with_typed};
use crate::error::Cause;

/// Strategy for core/v1 nodes.
pub struct NodeStrategy;

fn default_node(node: &mut Node) {
    if let Some(spec) = node.spec.as_mut() {
        // As Kubernetes' v1 conversion: podCIDRs wins, and podCIDR is its first entry (a
        // patch of podCIDR alone cannot move a node's range).
        match (&spec.pod_cidr, &spec.pod_cidrs) {
            (_, Some(cs)) if !cs.is_empty() => spec.pod_cidr = Some(cs[0].clone()),
            (Some(c), _) if !c.is_empty() => spec.pod_cidrs = Some(vec![c.clone()]),
            _ => {}
        }
    }
    if let Some(status) = node.status.as_mut()
        && status.allocatable.is_none()
    {
        status.allocatable.clone_from(&status.capacity);
    }
}

impl Strategy for NodeStrategy {
    fn keeps_status_on_create(&self) -> bool {
        true
    }

    fn default(&self, obj: &mut Value) {
        with_typed::<Node>(obj, default_node);
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        let (Some(n), Some(o)) = (decode::<Node>(new), decode::<Node>(old)) else {
            return Vec::new();
        };
        let (ns, os) = (n.spec.unwrap_or_default(), o.spec.unwrap_or_default());
        let mut out = Vec::new();
        let old_cidrs = os.pod_cidrs.unwrap_or_default();
        if !old_cidrs.is_empty() && ns.pod_cidrs.unwrap_or_default() != old_cidrs {
            out.push(Cause::forbidden(
                "spec.podCIDRs",
                "node updates may not change podCIDR except from \"\" to valid",
            ));
        }
        let old_provider = os.provider_id.unwrap_or_default();
        if !old_provider.is_empty() && ns.provider_id.unwrap_or_default() != old_provider {
            out.push(Cause::forbidden(
                "spec.providerID",
                "node updates may not change providerID except from \"\" to valid",
            ));
        }
        out
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col("Status", "string", "The status of the node"),
            col("Roles", "string", "The roles of the node"),
            AGE,
            col("Version", "string", "Kubelet Version reported by the node."),
            wide(
                "Internal-IP",
                "string",
                "List of addresses reachable to the node. Queried from cloud provider, if available.",
            ),
            wide(
                "External-IP",
                "string",
                "List of addresses reachable to the node. Queried from cloud provider, if available.",
            ),
            wide(
                "OS-Image",
                "string",
                "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
            ),
            wide(
                "Kernel-Version",
                "string",
                "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
            ),
            wide(
                "Container-Runtime",
                "string",
                "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).",
            ),
        ]
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        node_cells(obj, Timestamp::now())
    }

    fn field(&self, obj: &Value, path: &str) -> Option<String> {
        (path == "spec.unschedulable").then(|| {
            obj.pointer("/spec/unschedulable")
                .and_then(Value::as_bool)
                .unwrap_or(false)
                .to_string()
        })
    }
}

/// Roles from `node-role.kubernetes.io/<role>` labels and `kubernetes.io/role`.
fn roles(node: &Node) -> String {
    let mut roles = BTreeSet::new();
    for (k, v) in node.metadata.labels.iter().flatten() {
        if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
            if !role.is_empty() {
                roles.insert(role.to_string());
            }
        } else if k == "kubernetes.io/role" && !v.is_empty() {
            roles.insert(v.clone());
        }
    }
    if roles.is_empty() {
        "<none>".into()
    } else {
        roles.into_iter().collect::<Vec<_>>().join(",")
    }
}

fn node_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let node: Node = decode(obj).unwrap_or_default();
    let status = node.status.clone().unwrap_or_default();
    let mut state: Vec<String> = Vec::new();
    if let Some(c) = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
    {
        state.push(if c.status == "True" {
            "Ready".into()
        } else {
            "NotReady".into()
        });
    }
    if state.is_empty() {
        state.push("Unknown".into());
    }
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        state.push("SchedulingDisabled".into());
    }
    let address = |ty: &str| {
        status
            .addresses
            .iter()
            .flatten()
            .find(|a| a.type_ == ty)
            .map(|a| a.address.clone())
            .unwrap_or_else(|| "<none>".into())
    };
    let info = status.node_info.clone().unwrap_or_default();
    let or_unknown = |s: String| {
        if s.is_empty() {
            "<unknown>".to_string()
        } else {
            s
        }
    };
    vec![
        name(obj),
        json!(state.join(",")),
        json!(roles(&node)),
        age(obj, now),
        json!(info.kubelet_version),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(or_unknown(info.os_image)),
        json!(or_unknown(info.kernel_version)),
        json!(or_unknown(info.container_runtime_version)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_row_for_a_cordoned_control_plane() {
        let now: Timestamp = "2024-01-01T05:03:00Z".parse().unwrap();
        let node = json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "n1", "creationTimestamp": "2024-01-01T00:00:00Z",
                "labels": {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/hostname": "n1"}},
            "spec": {"unschedulable": true},
            "status": {
                "conditions": [{"type": "Ready", "status": "True"}],
                "addresses": [{"type": "InternalIP", "address": "10.0.0.2"}],
                "nodeInfo": {"kubeletVersion": "v1.33.0", "osImage": "Debian", "kernelVersion": "6.1",
                    "containerRuntimeVersion": "skiff://0.1", "architecture": "amd64", "bootID": "", "machineID": "",
                    "kubeProxyVersion": "", "operatingSystem": "linux", "systemUUID": ""}
            }
        });
        assert_eq!(
            node_cells(&node, now),
            vec![
                json!("n1"),
                json!("Ready,SchedulingDisabled"),
                json!("control-plane"),
                json!("5h3m"),
                json!("v1.33.0"),
                json!("10.0.0.2"),
                json!("<none>"),
                json!("Debian"),
                json!("6.1"),
                json!("skiff://0.1")
            ]
        );
        assert_eq!(
            NodeStrategy.field(&node, "spec.unschedulable").as_deref(),
            Some("true")
        );
        let bare = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n2"}});
        assert_eq!(node_cells(&bare, now)[1], json!("Unknown"));
        assert_eq!(node_cells(&bare, now)[2], json!("<none>"));
    }

    #[test]
    fn pod_cidr_is_fixed_once_set() {
        let mut old = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"}, "spec": {"podCIDR": "10.244.1.0/24"}});
        NodeStrategy.default(&mut old);
        assert_eq!(old["spec"]["podCIDRs"], json!(["10.244.1.0/24"]));
        let mut new = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"}, "spec": {"podCIDR": "10.244.2.0/24"}});
        NodeStrategy.default(&mut new);
        let causes = NodeStrategy.validate_update(&new, &old);
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "spec.podCIDRs");
        // A merge patch of podCIDR alone keeps the old podCIDRs, which win.
        let mut patched = old.clone();
        patched["spec"]["podCIDR"] = json!("10.244.9.0/24");
        NodeStrategy.default(&mut patched);
        assert_eq!(patched["spec"]["podCIDR"], "10.244.1.0/24");
        assert!(NodeStrategy.validate_update(&patched, &old).is_empty());
        let mut unset = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"}});
        NodeStrategy.default(&mut unset);
        assert!(NodeStrategy.validate_update(&old, &unset).is_empty());
    }
}
