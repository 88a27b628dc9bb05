//! The ReplicaSet controller against a real API server: keeps N pods, replaces deleted
//! ones, scales both ways, adopts a matching orphan, and reports status.

mod common;

use std::time::Duration;

use common::{TestCluster, eventually};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use skiff_controller::ControllerKind;

const T: Duration = Duration::from_secs(15);

async fn active_pods(pods: &Api<Pod>) -> Vec<Pod> {
    let list = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    list.into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicaset_keeps_replicas_replaces_and_scales() {
    let mut cluster = TestCluster::start().await;
    cluster.add_nodes(&["n1", "n2"]).await;
    cluster.fake_kubelet(&["n1", "n2"], Duration::ZERO);
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "default");
    let rss: Api<ReplicaSet> = Api::namespaced(cluster.client.clone(), "default");

    // An orphan that matches is adopted rather than duplicated.
    let orphan: Pod = serde_json::from_value(
        json!({"metadata": {"name": "orphan", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
    )
    .unwrap();
    pods.create(&PostParams::default(), &orphan).await.unwrap();

    cluster.start_controllers(&[ControllerKind::ReplicaSet]);
    let rs: ReplicaSet = serde_json::from_value(json!({"metadata": {"name": "web"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}})).unwrap();
    let rs = rss.create(&PostParams::default(), &rs).await.unwrap();
    let uid = rs.uid().unwrap();

    eventually(T, "3 ready replicas", || async {
        let st = rss.get("web").await.unwrap().status?;
        (st.ready_replicas == Some(3) && st.replicas == 3 && st.observed_generation == Some(1))
            .then_some(())
    })
    .await;
    let ps = active_pods(&pods).await;
    assert_eq!(ps.len(), 3);
    assert!(
        ps.iter().any(|p| p.name_any() == "orphan"),
        "orphan adopted"
    );
    for p in &ps {
        let r = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (r.uid.as_str(), r.controller, r.block_owner_deletion),
            (uid.as_str(), Some(true), Some(true))
        );
    }
    let new_pod = ps.iter().find(|p| p.name_any() != "orphan").unwrap();
    assert!(new_pod.name_any().starts_with("web-"));

    // A deleted pod is replaced.
    pods.delete(&new_pod.name_any(), &DeleteParams::default())
        .await
        .unwrap();
    eventually(T, "replacement", || async {
        let ps = active_pods(&pods).await;
        (ps.len() == 3 && ps.iter().all(|p| p.name_any() != new_pod.name_any())).then_some(())
    })
    .await;

    // Releasing: a pod relabelled away loses its ownerReference and is replaced.
    pods.patch(
        "orphan",
        &PatchParams::default(),
        &Patch::Merge(&json!({"metadata": {"labels": {"app": "other"}}})),
    )
    .await
    .unwrap();
    eventually(T, "orphan released and replaced", || async {
        let o = pods.get("orphan").await.unwrap();
        let released = o
            .metadata
            .owner_references
            .as_ref()
            .is_none_or(|r| r.is_empty());
        (released && active_pods(&pods).await.len() == 3).then_some(())
    })
    .await;

    // Scale up then down.
    for n in [7, 1] {
        rss.patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": n}})),
        )
        .await
        .unwrap();
        eventually(T, &format!("{n} replicas"), || async {
            let st = rss.get("web").await.unwrap().status?;
            let count = active_pods(&pods).await.len();
            (count == n as usize && st.available_replicas == Some(n) && st.replicas == n)
                .then_some(())
        })
        .await;
    }
    // Never more than asked: let the dust settle and count again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(active_pods(&pods).await.len(), 1);
}
