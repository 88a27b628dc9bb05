//! Two controller-managers with leader election: one Lease holder, pods created once.

mod common;

use std::time::Duration;

use common::{TestCluster, eventually};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;
use skiff_controller::{ControllerKind, ControllerOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_managers_act_once() {
    let mut cluster = TestCluster::start().await;
    for id in ["cm-a", "cm-b"] {
        cluster.start_controllers_with(ControllerOptions {
            controllers: [ControllerKind::ReplicaSet].into(),
            leader_elect: true,
            identity: id.into(),
            ..Default::default()
        });
    }
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), "kube-system");
    let holder = eventually(Duration::from_secs(10), "lease held", || async {
        leases
            .get_opt("skiff-controller-manager")
            .await
            .ok()
            .flatten()?
            .spec?
            .holder_identity
    })
    .await;
    assert!(holder == "cm-a" || holder == "cm-b");

    let rss: Api<ReplicaSet> = Api::namespaced(cluster.client.clone(), "default");
    let rs: ReplicaSet = serde_json::from_value(json!({"metadata": {"name": "le"},
        "spec": {"replicas": 5, "selector": {"matchLabels": {"app": "le"}},
                 "template": {"metadata": {"labels": {"app": "le"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}})).unwrap();
    rss.create(&PostParams::default(), &rs).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "default");
    eventually(Duration::from_secs(10), "5 pods", || async {
        (pods
            .list(&ListParams::default().labels("app=le"))
            .await
            .ok()?
            .items
            .len()
            == 5)
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        pods.list(&ListParams::default().labels("app=le"))
            .await
            .unwrap()
            .items
            .len(),
        5
    );
    let still = leases
        .get("skiff-controller-manager")
        .await
        .unwrap()
        .spec
        .unwrap()
        .holder_identity
        .unwrap();
    assert_eq!(still, holder, "the holder renews and keeps the lease");
}
