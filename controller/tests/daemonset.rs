//! The DaemonSet controller against a real API server: one pod per eligible node (nodeSelector
//! and taints honoured), new nodes get pods, nodes that stop matching lose them, a template
//! change rolls within maxUnavailable, and OnDelete waits for the user.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::Duration;

use common::{TestCluster, eventually, is_ready};
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use skiff_controller::ControllerKind;

const T: Duration = Duration::from_secs(20);

/// The newest ControllerRevision of DaemonSet `name`: its template hash and number.
async fn newest_revision(dss: &Api<DaemonSet>, name: &str) -> Option<(String, i64)> {
    let ds = dss.get(name).await.ok()?;
    let api: Api<ControllerRevision> = Api::namespaced(dss.clone().into_client(), &ds.namespace()?);
    let list = api.list(&ListParams::default()).await.ok()?;
    list.items
        .into_iter()
        .filter(|r| {
            r.owner_references()
                .iter()
                .any(|o| Some(&o.uid) == ds.uid().as_ref())
        })
        .max_by_key(|r| r.revision)
        .map(|r| (r.labels()["controller-revision-hash"].clone(), r.revision))
}

async fn add_node(cluster: &TestCluster, name: &str, labels: Value, taints: Value) {
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    let node: Node = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels}, "spec": {"taints": taints}}))
    .unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
    let status = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

fn daemonset(name: &str, strategy: Value, node_selector: Value) -> DaemonSet {
    serde_json::from_value(json!({"metadata": {"name": name},
        "spec": {"selector": {"matchLabels": {"app": name}}, "updateStrategy": strategy,
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"nodeSelector": node_selector,
                                       "containers": [{"name": "c", "image": "busybox", "env": [{"name": "V", "value": "1"}]}]}}}}))
    .unwrap()
}

/// Live (not terminating) pods of `app`, by the node they are bound to.
async fn pods_by_node(pods: &Api<Pod>, app: &str) -> BTreeMap<String, Vec<Pod>> {
    let list = pods
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap();
    let mut out: BTreeMap<String, Vec<Pod>> = BTreeMap::new();
    for p in list {
        if p.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let node = p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        out.entry(node).or_default().push(p);
    }
    out
}

fn node_set(m: &BTreeMap<String, Vec<Pod>>) -> Vec<String> {
    m.keys().cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemonset_runs_one_pod_per_eligible_node() {
    let mut cluster = TestCluster::start().await;
    let worker = json!({"role": "worker"});
    add_node(&cluster, "n1", worker.clone(), json!([])).await;
    add_node(&cluster, "n2", worker.clone(), json!([])).await;
    add_node(
        &cluster,
        "tainted",
        worker.clone(),
        json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]),
    )
    .await;
    // Default daemon tolerations admit a cordoned node.
    add_node(
        &cluster,
        "cordoned",
        worker.clone(),
        json!([{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]),
    )
    .await;
    add_node(&cluster, "other", json!({"role": "db"}), json!([])).await;
    cluster.fake_kubelet(&["n1"], Duration::ZERO);
    cluster.start_controllers(&[ControllerKind::DaemonSet]);

    let dss: Api<DaemonSet> = Api::namespaced(cluster.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "default");
    let ds = daemonset("agent", json!({"type": "RollingUpdate"}), worker.clone());
    let ds = dss.create(&PostParams::default(), &ds).await.unwrap();
    let uid = ds.uid().unwrap();

    eventually(T, "status for 3 ready nodes", || async {
        let st = dss.get("agent").await.unwrap().status?;
        let want = (3, 3, 3, 3, Some(3), Some(0), 0, Some(1));
        let got = (
            st.desired_number_scheduled,
            st.current_number_scheduled,
            st.number_ready,
            st.number_available.unwrap_or(0),
            st.updated_number_scheduled,
            st.number_unavailable.or(Some(0)),
            st.number_misscheduled,
            st.observed_generation,
        );
        (got == want).then_some(())
    })
    .await;
    let by_node = pods_by_node(&pods, "agent").await;
    assert_eq!(node_set(&by_node), ["cordoned", "n1", "n2"]);
    let (hash, revision) = newest_revision(&dss, "agent").await.unwrap();
    assert_eq!(revision, 1);
    for (node, ps) in &by_node {
        assert_eq!(ps.len(), 1, "one pod on {node}");
        let p = &ps[0];
        assert!(p.name_any().starts_with("agent-"));
        assert_eq!(p.labels()["controller-revision-hash"], hash);
        let r = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (r.kind.as_str(), r.uid.as_str(), r.controller),
            ("DaemonSet", uid.as_str(), Some(true))
        );
        let spec = p.spec.as_ref().unwrap();
        let terms = &spec
            .affinity
            .as_ref()
            .unwrap()
            .node_affinity
            .as_ref()
            .unwrap()
            .required_during_scheduling_ignored_during_execution
            .as_ref()
            .unwrap()
            .node_selector_terms;
        let field = &terms[0].match_fields.as_ref().unwrap()[0];
        assert_eq!(
            (field.key.as_str(), field.operator.as_str()),
            ("metadata.name", "In")
        );
        assert_eq!(field.values.as_deref(), Some(&[node.clone()][..]));
        let tolerated: Vec<_> = spec
            .tolerations
            .iter()
            .flatten()
            .filter_map(|t| t.key.clone())
            .collect();
        assert!(tolerated.contains(&"node.kubernetes.io/not-ready".to_string()));
    }

    // A new matching node gets a pod.
    add_node(&cluster, "n3", worker.clone(), json!([])).await;
    eventually(T, "pod on n3", || async {
        let m = pods_by_node(&pods, "agent").await;
        (node_set(&m) == ["cordoned", "n1", "n2", "n3"]).then_some(())
    })
    .await;

    // A node that loses the label loses its pod; the status follows.
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    nodes
        .patch(
            "n2",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"labels": {"role": null}}})),
        )
        .await
        .unwrap();
    eventually(T, "pod gone from n2", || async {
        let m = pods_by_node(&pods, "agent").await;
        let st = dss.get("agent").await.unwrap().status?;
        (node_set(&m) == ["cordoned", "n1", "n3"]
            && st.desired_number_scheduled == 3
            && st.number_ready == 3)
            .then_some(())
    })
    .await;
    // A NoExecute taint evicts; deleting a node removes its pod.
    nodes
        .patch(
            "n3",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"taints": [{"key": "x", "effect": "NoExecute"}]}})),
        )
        .await
        .unwrap();
    nodes
        .delete("cordoned", &DeleteParams::default())
        .await
        .unwrap();
    eventually(T, "only n1 left", || async {
        let m = pods_by_node(&pods, "agent").await;
        (node_set(&m) == ["n1"]).then_some(())
    })
    .await;
    // Never two pods on one node: let it settle and look again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let m = pods_by_node(&pods, "agent").await;
    assert_eq!(m.values().map(Vec::len).collect::<Vec<_>>(), [1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemonset_rolls_within_max_unavailable_and_on_delete_waits() {
    let mut cluster = TestCluster::start().await;
    let names = ["n1", "n2", "n3", "n4", "n5"];
    cluster.add_nodes(&names).await;
    cluster.fake_kubelet(&names, Duration::from_millis(400));
    cluster.start_controllers(&[ControllerKind::DaemonSet]);
    let dss: Api<DaemonSet> = Api::namespaced(cluster.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "default");
    let ds = daemonset(
        "roll",
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}}),
        json!({}),
    );
    dss.create(&PostParams::default(), &ds).await.unwrap();
    eventually(T, "5 available", || async {
        let st = dss.get("roll").await.unwrap().status?;
        (st.number_available == Some(5)).then_some(())
    })
    .await;

    // A poller counts nodes with a Ready, live pod every 50 ms during the rollout.
    let stop = Arc::new(AtomicBool::new(false));
    let lowest = Arc::new(AtomicI32::new(i32::MAX));
    let poller = {
        let (pods, stop, lowest) = (pods.clone(), stop.clone(), lowest.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let m = pods_by_node(&pods, "roll").await;
                let up = m.values().filter(|ps| ps.iter().any(is_ready)).count() as i32;
                lowest.fetch_min(up, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let env = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox", "env": [{"name": "V", "value": "2"}]}]}}}});
    dss.patch("roll", &PatchParams::default(), &Patch::Strategic(&env))
        .await
        .unwrap();
    let hash = eventually(T, "rollout done", || async {
        let ds = dss.get("roll").await.unwrap();
        let st = ds.status.clone()?;
        let (hash, revision) = newest_revision(&dss, "roll").await?;
        if revision != 2 {
            return None;
        }
        let m = pods_by_node(&pods, "roll").await;
        let all_new = m.len() == 5
            && m.values().all(|ps| {
                ps.len() == 1
                    && ps[0].labels()["controller-revision-hash"] == hash
                    && is_ready(&ps[0])
            });
        (all_new
            && st.updated_number_scheduled == Some(5)
            && st.number_available == Some(5)
            && st.observed_generation == Some(2))
        .then_some(hash)
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    poller.await.unwrap();
    let low = lowest.load(Ordering::Relaxed);
    assert!(
        low >= 3,
        "available nodes dropped to {low}, below 5 - maxUnavailable"
    );
    assert!(low < 5, "the poller never saw the rollout ({low})");
    assert_eq!(newest_revision(&dss, "roll").await.unwrap().1, 2);

    // OnDelete: a template change leaves pods alone until one is deleted.
    let on_delete = json!({"spec": {"updateStrategy": {"type": "OnDelete", "rollingUpdate": null},
        "template": {"spec": {"containers": [{"name": "c", "image": "busybox", "env": [{"name": "V", "value": "3"}]}]}}}});
    dss.patch("roll", &PatchParams::default(), &Patch::Merge(&on_delete))
        .await
        .unwrap();
    eventually(T, "revision 3 observed", || async {
        let ds = dss.get("roll").await.unwrap();
        (ds.status?.observed_generation == Some(3)).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let m = pods_by_node(&pods, "roll").await;
    assert!(
        m.values()
            .all(|ps| ps[0].labels()["controller-revision-hash"] == hash),
        "OnDelete replaced pods"
    );
    let victim = m["n3"][0].name_any();
    pods.delete(&victim, &DeleteParams::default())
        .await
        .unwrap();
    eventually(T, "n3 replaced with the new template", || async {
        let m = pods_by_node(&pods, "roll").await;
        let p = m.get("n3")?.first()?;
        (p.name_any() != victim && p.labels()["controller-revision-hash"] != hash).then_some(())
    })
    .await;
    let st = dss.get("roll").await.unwrap().status.unwrap();
    assert!(st.updated_number_scheduled.unwrap_or(0) <= 1);
}
