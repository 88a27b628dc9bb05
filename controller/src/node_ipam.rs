//! Node IPAM: gives every Node a `spec.podCIDR` from the cluster range. The allocation state
//! is rebuilt from the Nodes the watch shows, so it survives restarts and a deleted Node's
//! range becomes free again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::Mutex;

use crate::Shutdown;
use crate::cidr_set::CidrSet;
use crate::error::{Error, Result};
use crate::metrics::timed;
use skiff_client::controller::drive;

/// What the IPAM reconciler shares between calls.
pub struct IpamContext {
    nodes: Api<Node>,
    store: Store<Node>,
    cluster_cidr: IpNet,
    node_mask: u8,
    /// Ranges patched onto nodes whose update the watch has not shown yet, so two nodes
    /// reconciled back to back never get the same range. One lock serialises allocation.
    in_flight: Mutex<HashMap<String, IpNet>>,
}

/// The ranges a Node already carries.
fn node_cidrs(node: &Node) -> Vec<IpNet> {
    let spec = node.spec.as_ref();
    let mut out: Vec<IpNet> = spec
        .and_then(|s| s.pod_cidrs.clone())
        .unwrap_or_default()
        .iter()
        .chain(spec.and_then(|s| s.pod_cidr.as_ref()))
        .filter_map(|c| c.parse().ok())
        .collect();
    out.dedup();
    out
}

/// Whether the Node called `name` in `nodes` already carries a range.
fn has_range(nodes: &[Arc<Node>], name: &str) -> bool {
    nodes
        .iter()
        .any(|n| n.name_any() == name && !node_cidrs(n).is_empty())
}

/// Ensures one Node has a range.
async fn reconcile(node: Arc<Node>, ctx: Arc<IpamContext>) -> Result<Action> {
    let name = node.name_any();
    if !node_cidrs(&node).is_empty() || node.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let mut in_flight = ctx.in_flight.lock().await;
    if ctx.store.wait_until_ready().await.is_err() {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let nodes = ctx.store.state();
    // Forget ranges the watch now shows on their node, or whose node is gone.
    in_flight.retain(|n, _| {
        nodes
            .iter()
            .any(|x| x.name_any() == *n && node_cidrs(x).is_empty())
    });
    // The object this call was queued with can predate our own patch (with many nodes the
    // lock is held for a while): the store's copy decides, or a second range would be
    // patched on and refused (podCIDR may only change from "").
    if has_range(&nodes, &name) {
        return Ok(Action::await_change());
    }
    if in_flight.contains_key(&name) {
        return Ok(Action::requeue(Duration::from_secs(5)));
    }
    let mut set =
        CidrSet::new(ctx.cluster_cidr, ctx.node_mask).map_err(|_| Error::CidrExhausted {
            cluster_cidr: ctx.cluster_cidr.to_string(),
            node: name.clone(),
        })?;
    for cidr in nodes
        .iter()
        .flat_map(|n| node_cidrs(n))
        .chain(in_flight.values().copied())
    {
        // A range outside the cluster CIDR (set by hand) does not constrain us.
        let _ = set.occupy(&cidr);
    }
    let cidr = set.allocate().ok_or_else(|| Error::CidrExhausted {
        cluster_cidr: ctx.cluster_cidr.to_string(),
        node: name.clone(),
    })?;
    let patch = json!({"spec": {"podCIDR": cidr.to_string(), "podCIDRs": [cidr.to_string()]}});
    ctx.nodes
        .patch(&name, &crate::patch_params(), &Patch::Merge(&patch))
        .await
        .map_err(Error::api(&name))?;
    tracing::info!(node = %name, pod_cidr = %cidr, "allocated pod CIDR");
    in_flight.insert(name, cidr);
    Ok(Action::await_change())
}

fn error_policy(node: Arc<Node>, err: &Error, _ctx: Arc<IpamContext>) -> Action {
    tracing::warn!(node = %node.name_any(), error = %err, "node ipam reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

/// Runs the Node IPAM controller until `shutdown`.
pub async fn run(
    client: Client,
    cluster_cidr: IpNet,
    node_mask: u8,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    // Fail early on a mask that cannot cut the range, rather than on every node.
    CidrSet::new(cluster_cidr, node_mask)?;
    let nodes: Api<Node> = Api::all(client);
    let controller = Controller::new(nodes.clone(), watcher::Config::default());
    let ctx = Arc::new(IpamContext {
        nodes,
        store: controller.store(),
        cluster_cidr,
        node_mask,
        in_flight: Mutex::new(HashMap::new()),
    });
    let timed_reconcile = |obj, ctx| timed("nodeipam", reconcile(obj, ctx));
    drive(controller, &shutdown, timed_reconcile, error_policy, ctx).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NodeSpec;

    #[test]
    fn reads_both_cidr_fields() {
        let mut node = Node::default();
        assert!(node_cidrs(&node).is_empty());
        node.spec = Some(NodeSpec {
            pod_cidr: Some("10.244.3.0/24".into()),
            pod_cidrs: Some(vec!["10.244.3.0/24".into()]),
            ..Default::default()
        });
        assert_eq!(
            node_cidrs(&node),
            vec!["10.244.3.0/24".parse::<IpNet>().unwrap()]
        );
    }

    #[test]
    fn a_stale_queued_node_is_judged_by_the_store() {
        let node = |name: &str, cidr: Option<&str>| {
            let mut n = Node::default();
            n.metadata.name = Some(name.into());
            n.spec = Some(NodeSpec {
                pod_cidr: cidr.map(String::from),
                ..Default::default()
            });
            Arc::new(n)
        };
        let nodes = vec![node("a", Some("10.244.0.0/24")), node("b", None)];
        assert!(has_range(&nodes, "a"));
        assert!(!has_range(&nodes, "b"));
        assert!(!has_range(&nodes, "c"));
    }
}
