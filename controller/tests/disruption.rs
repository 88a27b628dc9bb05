//! PodDisruptionBudgets against a real API server: the disruption controller's status for a
//! ReplicaSet's pods, and the eviction subresource's answers (no budget, no disruption left,
//! dry run, one taken, more than one budget).

mod common;

use std::time::Duration;

use common::{TestCluster, eventually};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, EvictParams, ListParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use skiff_controller::ControllerKind;

const T: Duration = Duration::from_secs(20);

async fn create_rs(client: &Client, name: &str, replicas: i32) {
    let rs: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}},
    }))
    .unwrap();
    let api: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), &rs).await.unwrap();
}

async fn create_pdb(client: &Client, name: &str, app: &str, spec: Value) {
    let mut spec = spec;
    spec["selector"] = json!({"matchLabels": {"app": app}});
    let pdb: PodDisruptionBudget = serde_json::from_value(
        json!({"metadata": {"name": name, "namespace": "default"}, "spec": spec}),
    )
    .unwrap();
    let api: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), &pdb).await.unwrap();
}

async fn ready_pods(client: &Client, app: &str, want: usize) -> Vec<String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    eventually(T, "ready pods", || async {
        let list = pods
            .list(&ListParams::default().labels(&format!("app={app}")))
            .await
            .ok()?;
        let names: Vec<String> = list
            .items
            .iter()
            .filter(|p| common::is_ready(p) && p.metadata.deletion_timestamp.is_none())
            .map(|p| p.name_any())
            .collect();
        (names.len() == want).then_some(names)
    })
    .await
}

async fn allowed(client: &Client, name: &str, want: i32) -> PodDisruptionBudget {
    let api: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "default");
    eventually(T, "budget status", || async {
        let pdb = api.get(name).await.ok()?;
        let s = pdb.status.as_ref()?;
        (s.observed_generation == pdb.metadata.generation && s.disruptions_allowed == want)
            .then_some(pdb)
    })
    .await
}

/// The eviction's error, as kube reports the Status.
async fn evict(client: &Client, pod: &str, dry_run: bool) -> Result<(), kube::core::ErrorResponse> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let params = EvictParams {
        post_options: PostParams {
            dry_run,
            ..Default::default()
        },
        ..Default::default()
    };
    match pods.evict(pod, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) => Err(*e),
        Err(e) => panic!("eviction of {pod} failed: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budgets_refuse_and_allow_evictions() {
    let mut cluster = TestCluster::start().await;
    // Evictions' 429s are asserted, so the client must not retry them.
    let client = cluster.client_without_retries().await;
    cluster.add_nodes(&["n1"]).await;
    cluster.fake_kubelet(&["n1"], Duration::ZERO);
    cluster.start_controllers(&[ControllerKind::ReplicaSet, ControllerKind::Disruption]);
    create_rs(&client, "web", 2).await;
    let pods = ready_pods(&client, "web", 2).await;

    // No budget: the pod goes.
    create_rs(&client, "free", 1).await;
    let free = ready_pods(&client, "free", 1).await;
    evict(&client, &free[0], false).await.unwrap();

    // minAvailable 2 of 2: nothing may go, and the 429 says why.
    create_pdb(&client, "web", "web", json!({"minAvailable": 2})).await;
    let pdb = allowed(&client, "web", 0).await;
    let s = pdb.status.unwrap();
    assert_eq!(
        (s.expected_pods, s.desired_healthy, s.current_healthy),
        (2, 2, 2)
    );
    let c = &s.conditions.unwrap()[0];
    assert_eq!(
        (c.type_.as_str(), c.status.as_str(), c.reason.as_str()),
        ("DisruptionAllowed", "False", "InsufficientPods")
    );
    let e = evict(&client, &pods[0], false).await.unwrap_err();
    assert_eq!((e.code, e.reason.as_str()), (429, "TooManyRequests"));
    assert_eq!(
        e.message,
        "Cannot evict pod as it would violate the pod's disruption budget."
    );

    // minAvailable 1 of 2: one eviction is taken, the next is refused.
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "default");
    let mut pdb = budgets.get("web").await.unwrap();
    pdb.spec.as_mut().unwrap().min_available =
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1));
    budgets
        .replace("web", &PostParams::default(), &pdb)
        .await
        .unwrap();
    allowed(&client, "web", 1).await;
    evict(&client, &pods[0], true).await.unwrap();
    assert_eq!(
        budgets
            .get("web")
            .await
            .unwrap()
            .status
            .unwrap()
            .disruptions_allowed,
        1,
        "dry run changes nothing"
    );
    evict(&client, &pods[0], false).await.unwrap();
    let after = budgets.get("web").await.unwrap().status.unwrap();
    assert_eq!(after.disruptions_allowed, 0);
    // The eviction records the pod in disruptedPods before deleting it; the controller
    // drops the entry once it sees the pod deleted (as Kubernetes' does), so the entry may
    // already be gone: what must hold is that the pod was deleted.
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let deleted = match pod_api.get_opt(&pods[0]).await.unwrap() {
        None => true,
        Some(p) => p.metadata.deletion_timestamp.is_some(),
    };
    assert!(deleted, "the evicted pod is deleted");

    // A second budget over the same pods: the eviction cannot choose.
    create_pdb(&client, "web-2", "web", json!({"maxUnavailable": 1})).await;
    let e = evict(&client, &pods[1], false).await.unwrap_err();
    assert_eq!(e.code, 500);
    assert_eq!(
        e.message,
        "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
    );
    cluster.stop_controllers();
}
