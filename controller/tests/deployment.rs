//! The Deployment controller (with the ReplicaSet controller) against a real API server:
//! a rolling update stays within maxSurge/maxUnavailable, `rollout undo`'s JSON patch reuses
//! the old ReplicaSet, and Recreate stops old pods before starting new ones.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{TestCluster, eventually, is_ready};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use skiff_controller::ControllerKind;

const T: Duration = Duration::from_secs(30);

fn deployment(name: &str, replicas: i32, strategy: Value) -> Deployment {
    serde_json::from_value(json!({"metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}, "strategy": strategy,
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "c", "image": "busybox", "env": [{"name": "V", "value": "1"}]}]}}}}))
    .unwrap()
}

/// `kubectl rollout status`'s test for a finished rollout.
async fn rollout_done(api: &Api<Deployment>, name: &str) -> Option<()> {
    let d = api.get(name).await.ok()?;
    let st = d.status?;
    let desired = d.spec?.replicas.unwrap_or(1);
    let updated = st.updated_replicas.unwrap_or(0);
    (st.observed_generation >= d.metadata.generation
        && updated >= desired
        && st.replicas.unwrap_or(0) <= updated
        && st.available_replicas.unwrap_or(0) >= updated)
        .then_some(())
}

async fn live_pods(client: &Client, app: &str) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let list = pods
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap();
    list.into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

async fn replicasets(client: &Client, app: &str) -> Vec<ReplicaSet> {
    let api: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    api.list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap()
        .items
}

fn rev(o: &impl kube::Resource) -> String {
    o.meta()
        .annotations
        .as_ref()
        .and_then(|a| a.get("deployment.kubernetes.io/revision").cloned())
        .unwrap_or_default()
}

async fn setup() -> TestCluster {
    let mut cluster = TestCluster::start().await;
    cluster.add_nodes(&["n1", "n2"]).await;
    cluster.fake_kubelet(&["n1", "n2"], Duration::from_millis(300));
    cluster.start_controllers(&[ControllerKind::ReplicaSet, ControllerKind::Deployment]);
    cluster
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_respects_surge_and_unavailability_then_rolls_back() {
    let cluster = setup().await;
    let api: Api<Deployment> = Api::namespaced(cluster.client.clone(), "default");
    let strategy =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}});
    api.create(&PostParams::default(), &deployment("web", 4, strategy))
        .await
        .unwrap();
    eventually(T, "first rollout", || rollout_done(&api, "web")).await;
    let first = replicasets(&cluster.client, "web").await;
    assert_eq!(first.len(), 1);
    let rs1 = first[0].clone();
    let hash = rs1.labels()["pod-template-hash"].clone();
    assert_eq!(rs1.name_any(), format!("web-{hash}"));
    assert_eq!(rev(&rs1), "1");

    // Poll every 50 ms while the template changes.
    let stats = Arc::new(Mutex::new((i32::MAX, 0i32)));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let (client, stats, stop) = (cluster.client.clone(), stats.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let pods = live_pods(&client, "web").await;
                let available = pods.iter().filter(|p| is_ready(p)).count() as i32;
                {
                    let mut s = stats.lock().unwrap();
                    s.0 = s.0.min(available);
                    s.1 = s.1.max(pods.len() as i32);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox", "env": [{"name": "V", "value": "2"}]}]}}}});
    api.patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    eventually(T, "second rollout", || rollout_done(&api, "web")).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    poller.await.unwrap();
    let (min_available, max_total) = *stats.lock().unwrap();
    assert!(min_available >= 3, "available fell to {min_available}");
    assert!(max_total <= 5, "total rose to {max_total}");

    let d = api.get("web").await.unwrap();
    assert_eq!(rev(&d), "2");
    let conds = d.status.unwrap().conditions.unwrap();
    let progressing = conds.iter().find(|c| c.type_ == "Progressing").unwrap();
    assert_eq!(
        progressing.reason.as_deref(),
        Some("NewReplicaSetAvailable")
    );
    assert!(
        conds
            .iter()
            .any(|c| c.type_ == "Available" && c.status == "True")
    );
    let rss = replicasets(&cluster.client, "web").await;
    assert_eq!(rss.len(), 2);
    let old = rss.iter().find(|r| r.name_any() == rs1.name_any()).unwrap();
    assert_eq!(old.spec.as_ref().unwrap().replicas, Some(0));

    // kubectl rollout undo: a JSON patch with the old ReplicaSet's template (hash label dropped).
    let mut template =
        serde_json::to_value(old.spec.as_ref().unwrap().template.as_ref().unwrap()).unwrap();
    template["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("pod-template-hash");
    let annotations =
        serde_json::to_value(api.get("web").await.unwrap().metadata.annotations).unwrap();
    let undo = json!([{"op": "replace", "path": "/spec/template", "value": template},
                      {"op": "replace", "path": "/metadata/annotations", "value": annotations}]);
    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::<Value>::Json(serde_json::from_value(undo).unwrap()),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    eventually(T, "rollback", || async {
        rollout_done(&api, "web").await?;
        let rss = replicasets(&cluster.client, "web").await;
        let back = rss.iter().find(|r| r.name_any() == rs1.name_any())?;
        (rev(back) == "3" && back.spec.as_ref()?.replicas == Some(4)).then_some(())
    })
    .await;
    assert_eq!(
        replicasets(&cluster.client, "web").await.len(),
        2,
        "the old ReplicaSet was reused"
    );
    let pods = live_pods(&cluster.client, "web").await;
    assert!(pods.iter().all(|p| p.labels()["pod-template-hash"] == hash));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreate_stops_old_pods_before_starting_new_ones() {
    let cluster = setup().await;
    let api: Api<Deployment> = Api::namespaced(cluster.client.clone(), "default");
    api.create(
        &PostParams::default(),
        &deployment("rec", 3, json!({"type": "Recreate"})),
    )
    .await
    .unwrap();
    eventually(T, "first rollout", || rollout_done(&api, "rec")).await;
    let mixed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let (client, mixed, stop) = (cluster.client.clone(), mixed.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Terminating pods count too: Recreate waits until they are gone.
                let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
                let all = pods
                    .list(&ListParams::default().labels("app=rec"))
                    .await
                    .unwrap();
                let hashes: std::collections::BTreeSet<String> = all
                    .iter()
                    .map(|p| p.labels()["pod-template-hash"].clone())
                    .collect();
                if hashes.len() > 1 {
                    mixed.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        })
    };
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "2024-01-01T00:00:00Z"}}}}});
    api.patch("rec", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    eventually(T, "recreate rollout", || rollout_done(&api, "rec")).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    poller.await.unwrap();
    assert!(
        !mixed.load(std::sync::atomic::Ordering::Relaxed),
        "old and new pods coexisted"
    );
    assert_eq!(live_pods(&cluster.client, "rec").await.len(), 3);
    assert_eq!(rev(&api.get("rec").await.unwrap()), "2");
}
