//! The PersistentVolume binder against a real API server: the default class assigned to a
//! claim naming none, static binding of an Immediate claim, a WaitForFirstConsumer claim
//! waiting until the scheduler's node annotation and then handed to its provisioner, and
//! the protection finalizer lifted once no pod uses the claim.

mod common;

use std::time::Duration;

use common::{TestCluster, eventually};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use skiff_controller::ControllerKind;

const T: Duration = Duration::from_secs(20);

async fn create<K>(api: &Api<K>, obj: serde_json::Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    api.create(
        &PostParams::default(),
        &serde_json::from_value(obj).unwrap(),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_get_the_default_class_bind_statically_and_wait_for_their_consumer() {
    let mut c = TestCluster::start().await;
    c.start_controllers(&[ControllerKind::PersistentVolumeBinder]);
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(c.client.clone(), "default");
    let volumes: Api<PersistentVolume> = Api::all(c.client.clone());

    // No class named: the default one (the built-in local-path, WaitForFirstConsumer).
    create(
        &claims,
        json!({"metadata": {"name": "plain"}, "spec": {"accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "1Gi"}}}}),
    )
    .await;
    eventually(T, "default class", || async {
        let pvc = claims.get("plain").await.unwrap();
        (pvc.spec?.storage_class_name? == "local-path").then_some(())
    })
    .await;
    // It waits for its consumer; once the scheduler picked a node it goes to the provisioner.
    let patch = json!({"metadata": {"annotations": {"volume.kubernetes.io/selected-node": "n1"}}});
    claims
        .patch("plain", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    eventually(T, "handed to the provisioner", || async {
        let pvc = claims.get("plain").await.unwrap();
        let a = pvc.metadata.annotations?;
        (a.get("volume.kubernetes.io/storage-provisioner")? == "skiff.io/local-path").then_some(())
    })
    .await;

    // An Immediate claim of a class without provisioner binds to a fitting static volume.
    create(
        &Api::<k8s_openapi::api::storage::v1::StorageClass>::all(c.client.clone()),
        json!({"metadata": {"name": "manual"}, "provisioner": "kubernetes.io/no-provisioner",
            "volumeBindingMode": "Immediate"}),
    )
    .await;
    create(&volumes, json!({"metadata": {"name": "pv-small"}, "spec": {"capacity": {"storage": "1Gi"},
        "accessModes": ["ReadWriteOnce"], "storageClassName": "manual", "hostPath": {"path": "/tmp/x"}}}))
    .await;
    create(
        &claims,
        json!({"metadata": {"name": "static"}, "spec": {"accessModes": ["ReadWriteOnce"],
        "storageClassName": "manual", "resources": {"requests": {"storage": "512Mi"}}}}),
    )
    .await;
    eventually(T, "static binding", || async {
        let pvc = claims.get("static").await.unwrap();
        let pv = volumes.get("pv-small").await.unwrap();
        (pvc.status?.phase? == "Bound"
            && pvc.spec?.volume_name? == "pv-small"
            && pv.status?.phase? == "Bound")
            .then_some(())
    })
    .await;

    // Deleting the claim releases the volume (Retain keeps it Released).
    claims
        .delete("static", &DeleteParams::default())
        .await
        .unwrap();
    eventually(T, "claim gone and volume released", || async {
        let gone = claims.get_opt("static").await.unwrap().is_none();
        let pv = volumes.get("pv-small").await.unwrap();
        (gone && pv.status?.phase? == "Released").then_some(())
    })
    .await;
}
