//! ReplicationControllers against a real API server, kept by the ReplicaSet logic: the
//! selector and labels defaulted from the template, N pods owned by the controller with a
//! v1 ReplicationController ownerReference, status, scaling through the scale subresource
//! (as `kubectl scale rc` does) and replacement of a deleted pod.

mod common;

use std::time::Duration;

use common::{TestCluster, eventually};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use skiff_controller::ControllerKind;

const T: Duration = Duration::from_secs(15);

async fn active_pods(pods: &Api<Pod>) -> Vec<Pod> {
    pods.list(&ListParams::default().labels("app=legacy"))
        .await
        .unwrap()
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_controllers_keep_scale_and_replace_pods() {
    let mut cluster = TestCluster::start().await;
    cluster.add_nodes(&["n1"]).await;
    cluster.fake_kubelet(&["n1"], Duration::ZERO);
    cluster.start_controllers(&[ControllerKind::ReplicationController]);
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "default");
    let rcs: Api<ReplicationController> = Api::namespaced(cluster.client.clone(), "default");
    // No selector and no labels: both come from the template, as Kubernetes defaults them.
    let rc: ReplicationController = serde_json::from_value(json!({"metadata": {"name": "legacy"},
        "spec": {"replicas": 2,
                 "template": {"metadata": {"labels": {"app": "legacy"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}))
    .unwrap();
    let rc = rcs.create(&PostParams::default(), &rc).await.unwrap();
    let spec = rc.spec.clone().unwrap();
    assert_eq!(
        spec.selector,
        Some([("app".into(), "legacy".into())].into())
    );
    assert_eq!(rc.labels().get("app").map(String::as_str), Some("legacy"));
    let uid = rc.uid().unwrap();

    eventually(T, "2 ready replicas", || async {
        let st = rcs.get("legacy").await.unwrap().status?;
        (st.replicas == 2 && st.ready_replicas == Some(2) && st.observed_generation == Some(1))
            .then_some(())
    })
    .await;
    let ps = active_pods(&pods).await;
    assert_eq!(ps.len(), 2);
    for p in &ps {
        let r = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (
                r.kind.as_str(),
                r.api_version.as_str(),
                r.uid.as_str(),
                r.controller
            ),
            ("ReplicationController", "v1", uid.as_str(), Some(true))
        );
        assert!(p.name_any().starts_with("legacy-"));
    }

    // The scale subresource, as `kubectl scale rc legacy --replicas=4` uses it.
    let scale = rcs.get_scale("legacy").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(2));
    assert_eq!(
        scale.status.unwrap().selector.as_deref(),
        Some("app=legacy")
    );
    rcs.patch_scale(
        "legacy",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 4}})),
    )
    .await
    .unwrap();
    eventually(T, "4 replicas", || async {
        let st = rcs.get("legacy").await.unwrap().status?;
        (active_pods(&pods).await.len() == 4 && st.ready_replicas == Some(4)).then_some(())
    })
    .await;

    // A deleted pod is replaced; scaling down removes pods.
    let victim = active_pods(&pods).await[0].name_any();
    pods.delete(&victim, &DeleteParams::default())
        .await
        .unwrap();
    eventually(T, "replacement", || async {
        let ps = active_pods(&pods).await;
        (ps.len() == 4 && ps.iter().all(|p| p.name_any() != victim)).then_some(())
    })
    .await;
    rcs.patch_scale(
        "legacy",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    eventually(T, "1 replica", || async {
        let st = rcs.get("legacy").await.unwrap().status?;
        (active_pods(&pods).await.len() == 1 && st.replicas == 1).then_some(())
    })
    .await;
    // A template that does not match the selector is refused with Kubernetes' message.
    let bad: ReplicationController = serde_json::from_value(json!({"metadata": {"name": "bad"},
        "spec": {"selector": {"app": "x"},
                 "template": {"metadata": {"labels": {"app": "y"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}))
    .unwrap();
    let err = rcs.create(&PostParams::default(), &bad).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("`selector` does not match template `labels`"),
        "{text}"
    );
}
