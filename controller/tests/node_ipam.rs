//! Node IPAM against a real API server: ranges handed out, distinct, stable across a
//! controller restart, and reused after a Node is deleted.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{TestCluster, eventually};
use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams};
use skiff_controller::ControllerKind;

async fn cidrs(nodes: &Api<Node>) -> Vec<(String, Option<String>)> {
    let list = nodes.list(&ListParams::default()).await.unwrap();
    list.into_iter()
        .map(|n| (n.name_any(), n.spec.and_then(|s| s.pod_cidr)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_ipam_assigns_distinct_stable_ranges_and_releases_them() {
    let mut cluster = TestCluster::start().await;
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    cluster.add_nodes(&["n1", "n2", "n3"]).await;
    cluster.start_controllers(&[ControllerKind::NodeIpam]);
    let first = eventually(Duration::from_secs(10), "cidrs on all nodes", || async {
        let c = cidrs(&nodes).await;
        c.iter().all(|(_, c)| c.is_some()).then_some(c)
    })
    .await;
    let distinct: BTreeSet<_> = first.iter().map(|(_, c)| c.clone().unwrap()).collect();
    assert_eq!(distinct.len(), 3, "{first:?}");
    assert!(
        distinct
            .iter()
            .all(|c| c.starts_with("10.244.") && c.ends_with(".0/24")),
        "{distinct:?}"
    );

    // A restarted manager keeps what nodes carry and gives a new node a fresh range.
    cluster.stop_controllers();
    cluster.start_controllers(&[ControllerKind::NodeIpam]);
    cluster.add_nodes(&["n4"]).await;
    let second = eventually(Duration::from_secs(10), "cidr on n4", || async {
        let c = cidrs(&nodes).await;
        c.iter().all(|(_, c)| c.is_some()).then_some(c)
    })
    .await;
    for (name, cidr) in &first {
        assert!(
            second.contains(&(name.clone(), cidr.clone())),
            "{name} changed range"
        );
    }
    let n4 = second
        .iter()
        .find(|(n, _)| n == "n4")
        .unwrap()
        .1
        .clone()
        .unwrap();
    assert!(!distinct.contains(&n4), "n4 got a taken range {n4}");

    // Deleting n2 frees its range for the next node.
    let n2 = first
        .iter()
        .find(|(n, _)| n == "n2")
        .unwrap()
        .1
        .clone()
        .unwrap();
    nodes.delete("n2", &DeleteParams::default()).await.unwrap();
    eventually(Duration::from_secs(5), "n2 gone", || async {
        nodes.get_opt("n2").await.unwrap().is_none().then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.add_nodes(&["n5"]).await;
    let n5 = eventually(Duration::from_secs(10), "cidr on n5", || async {
        nodes
            .get("n5")
            .await
            .ok()
            .and_then(|n| n.spec.and_then(|s| s.pod_cidr))
    })
    .await;
    assert_eq!(n5, n2, "the released range is reused first");
}
