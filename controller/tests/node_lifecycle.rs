//! The node lifecycle controller against a real API server: a node whose Lease stops being
//! renewed goes Unknown, is tainted, its pods go not Ready and those with short
//! tolerations are evicted; when it renews again and reports Ready its taints are lifted;
//! a cluster whose every node is lost taints none NoExecute (full disruption).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{TestCluster, eventually, is_ready};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use skiff_controller::node_lifecycle::NodeLifecycleOptions;
use skiff_controller::{ControllerKind, ControllerOptions};

/// Renews node `name`'s Lease every 200 ms while `alive` holds (a kubelet's heartbeat).
fn heartbeat(client: Client, name: &str, alive: Arc<AtomicBool>) {
    let name = name.to_string();
    tokio::spawn(async move {
        let leases: Api<Lease> = Api::namespaced(client, "kube-node-lease");
        loop {
            if alive.load(Ordering::Relaxed) {
                let now = k8s_openapi::jiff::Timestamp::now().to_string();
                let lease: Lease = serde_json::from_value(json!({
                    "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": name},
                    "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": now},
                }))
                .unwrap();
                if leases.create(&PostParams::default(), &lease).await.is_err() {
                    let patch = json!({"spec": {"renewTime": now}});
                    let _ = leases
                        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
}

fn start(cluster: &mut TestCluster) {
    cluster.start_controllers_with(ControllerOptions {
        controllers: [ControllerKind::NodeLifecycle].into_iter().collect(),
        leader_elect: false,
        node_lifecycle: NodeLifecycleOptions {
            grace_period: Duration::from_secs(2),
            monitor_period: Duration::from_millis(300),
            ..Default::default()
        },
        ..Default::default()
    });
}

/// Creates a Running, Ready pod bound to `node` with `tolerations`.
async fn running_pod(client: &Client, name: &str, node: &str, tolerations: serde_json::Value) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"nodeName": node, "tolerations": tolerations,
                 "containers": [{"name": "c", "image": "busybox"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let status = json!({"status": {"phase": "Running", "podIP": "10.244.1.5",
        "conditions": [{"type": "Ready", "status": "True"}, {"type": "ContainersReady", "status": "True"}]}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

fn taint_keys(node: &Node) -> Vec<String> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|t| format!("{}:{}", t.key, t.effect))
        .collect()
}

fn ready_condition(node: &Node) -> Option<(String, Option<String>, Option<String>)> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_node_goes_unknown_is_tainted_and_its_pods_evicted_then_recovers() {
    let mut cluster = TestCluster::start().await;
    let client = cluster.client.clone();
    let nodes: Api<Node> = Api::all(client.clone());
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    cluster.add_nodes(&["n1", "n2", "n3"]).await;
    let n2_alive = Arc::new(AtomicBool::new(true));
    for n in ["n1", "n3"] {
        heartbeat(client.clone(), n, Arc::new(AtomicBool::new(true)));
    }
    heartbeat(client.clone(), "n2", n2_alive.clone());
    let unreachable_for = |secs: Option<i64>| {
        json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                "effect": "NoExecute", "tolerationSeconds": secs}])
    };
    running_pod(&client, "short", "n2", unreachable_for(Some(2))).await;
    running_pod(&client, "defaulted", "n2", json!([])).await;
    running_pod(&client, "forever", "n2", unreachable_for(None)).await;
    running_pod(&client, "elsewhere", "n1", json!([])).await;
    // The API server gave the pod without tolerations Kubernetes' 300 s defaults.
    let defaulted = pods.get("defaulted").await.unwrap();
    let tolerations = defaulted.spec.unwrap().tolerations.unwrap();
    assert!(
        tolerations
            .iter()
            .all(|t| t.toleration_seconds == Some(300))
            && tolerations.len() == 2,
        "{tolerations:?}"
    );
    start(&mut cluster);

    n2_alive.store(false, Ordering::Relaxed);
    let lost = eventually(
        Duration::from_secs(15),
        "n2 unknown and tainted",
        || async {
            let n = nodes.get("n2").await.unwrap();
            let t = taint_keys(&n);
            (t.contains(&"node.kubernetes.io/unreachable:NoExecute".to_string())
                && t.contains(&"node.kubernetes.io/unreachable:NoSchedule".to_string()))
            .then_some(n)
        },
    )
    .await;
    assert_eq!(
        ready_condition(&lost),
        Some((
            "Unknown".into(),
            Some("NodeStatusUnknown".into()),
            Some("Kubelet stopped posting node status.".into())
        ))
    );
    let every_unknown = lost.status.as_ref().unwrap().conditions.as_ref().unwrap();
    assert!(
        every_unknown.iter().all(|c| c.status == "Unknown"),
        "{every_unknown:?}"
    );
    for healthy in ["n1", "n3"] {
        let n = nodes.get(healthy).await.unwrap();
        assert_eq!(ready_condition(&n).unwrap().0, "True", "{healthy}");
        assert!(taint_keys(&n).is_empty(), "{healthy}: {:?}", taint_keys(&n));
    }
    // Its pods leave their Services: not Ready at once.
    eventually(Duration::from_secs(5), "n2's pods not ready", || async {
        let all = ["short", "defaulted", "forever"];
        let mut none_ready = true;
        for p in all {
            if let Some(pod) = pods.get_opt(p).await.unwrap() {
                none_ready &= !is_ready(&pod);
            }
        }
        none_ready.then_some(())
    })
    .await;
    // The pod tolerating 2 s goes after them; the others stay.
    let short = eventually(Duration::from_secs(10), "short evicted", || async {
        let p = pods.get("short").await.unwrap();
        p.metadata.deletion_timestamp.is_some().then_some(p)
    })
    .await;
    let target = short
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "DisruptionTarget")
        .expect("DisruptionTarget condition");
    assert_eq!(target.reason.as_deref(), Some("DeletionByTaintManager"));
    for stays in ["defaulted", "forever", "elsewhere"] {
        let p = pods.get(stays).await.unwrap();
        assert!(
            p.metadata.deletion_timestamp.is_none(),
            "{stays} was evicted"
        );
    }
    assert!(is_ready(&pods.get("elsewhere").await.unwrap()));

    // n2 comes back: it renews its Lease and reports Ready; its taints are lifted.
    n2_alive.store(true, Ordering::Relaxed);
    let status = json!({"status": {"conditions": [{"type": "Ready", "status": "True",
        "reason": "KubeletReady", "lastHeartbeatTime": k8s_openapi::jiff::Timestamp::now().to_string()}]}});
    nodes
        .patch_status("n2", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "n2's taints lifted", || async {
        let n = nodes.get("n2").await.unwrap();
        (taint_keys(&n).is_empty() && ready_condition(&n).unwrap().0 == "True").then_some(())
    })
    .await;
    cluster.stop_controllers();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_lost_is_full_disruption_and_evicts_nothing() {
    let mut cluster = TestCluster::start().await;
    let client = cluster.client.clone();
    let nodes: Api<Node> = Api::all(client.clone());
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    cluster.add_nodes(&["solo"]).await;
    let alive = Arc::new(AtomicBool::new(true));
    heartbeat(client.clone(), "solo", alive.clone());
    running_pod(
        &client,
        "quick",
        "solo",
        json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                "effect": "NoExecute", "tolerationSeconds": 1}]),
    )
    .await;
    start(&mut cluster);
    alive.store(false, Ordering::Relaxed);
    eventually(Duration::from_secs(15), "solo unknown", || async {
        let n = nodes.get("solo").await.unwrap();
        taint_keys(&n)
            .contains(&"node.kubernetes.io/unreachable:NoSchedule".to_string())
            .then_some(())
    })
    .await;
    // Several monitor periods and the pod's toleration later: still no NoExecute taint.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let n = nodes.get("solo").await.unwrap();
    assert_eq!(
        taint_keys(&n),
        ["node.kubernetes.io/unreachable:NoSchedule"]
    );
    let quick = pods.get("quick").await.unwrap();
    assert!(quick.metadata.deletion_timestamp.is_none());
    assert!(!is_ready(&quick), "the lost node's pod is not ready");
    assert_eq!(quick.name_any(), "quick");
    cluster.stop_controllers();
}
