//! The garbage collector against a real API server, with ConfigMaps as owners and
//! dependents: background deletion of orphans-by-deletion, foreground waiting on a blocking
//! dependent, and orphaning. The `foregroundDeletion`/`orphan` finalizers are added by the
//! test, as the API server will add them for `propagationPolicy` Foreground/Orphan.

mod common;

use std::time::Duration;

use common::{TestCluster, eventually};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use skiff_controller::ControllerKind;

const T: Duration = Duration::from_secs(15);

async fn owner(api: &Api<ConfigMap>, name: &str, finalizers: &[&str]) -> String {
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": name, "finalizers": finalizers}}))
            .unwrap();
    api.create(&PostParams::default(), &cm)
        .await
        .unwrap()
        .uid()
        .unwrap()
}

async fn dependent(api: &Api<ConfigMap>, name: &str, owner: &str, uid: &str, finalizers: &[&str]) {
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": name, "finalizers": finalizers,
        "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": owner, "uid": uid, "blockOwnerDeletion": true}]}}))
    .unwrap();
    api.create(&PostParams::default(), &cm).await.unwrap();
}

async fn gone(api: &Api<ConfigMap>, name: &str) -> Option<()> {
    api.get_opt(name).await.unwrap().is_none().then_some(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_collector_background_foreground_and_orphan() {
    let mut cluster = TestCluster::start().await;
    cluster.start_controllers(&[ControllerKind::GarbageCollector]);
    let api: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), "default");

    // Background: the dependent goes after its owner.
    let uid = owner(&api, "bg", &[]).await;
    dependent(&api, "bg-dep", "bg", &uid, &[]).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        api.get_opt("bg-dep").await.unwrap().is_some(),
        "a dependent with a live owner stays"
    );
    api.delete("bg", &DeleteParams::background()).await.unwrap();
    eventually(T, "background dependent deleted", || gone(&api, "bg-dep")).await;

    // Orphan: the dependent stays, without the reference; the owner goes.
    let uid = owner(&api, "orph", &["orphan"]).await;
    dependent(&api, "orph-dep", "orph", &uid, &[]).await;
    api.delete("orph", &DeleteParams::orphan()).await.unwrap();
    eventually(T, "orphaned owner deleted", || gone(&api, "orph")).await;
    let dep = api.get("orph-dep").await.unwrap();
    assert!(
        dep.metadata.owner_references.unwrap_or_default().is_empty(),
        "reference stripped"
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        api.get_opt("orph-dep").await.unwrap().is_some(),
        "orphan kept"
    );

    // Foreground: the owner waits for its blocking dependent.
    let uid = owner(&api, "fg", &["foregroundDeletion"]).await;
    dependent(&api, "fg-dep", "fg", &uid, &["skiff.test/hold"]).await;
    api.delete("fg", &DeleteParams::foreground()).await.unwrap();
    eventually(T, "dependent being deleted", || async {
        api.get("fg-dep")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .map(|_| ())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let o = api
        .get_opt("fg")
        .await
        .unwrap()
        .expect("owner waits for its dependent");
    assert!(o.metadata.deletion_timestamp.is_some());
    api.patch(
        "fg-dep",
        &PatchParams::default(),
        &Patch::Merge(&json!({"metadata": {"finalizers": []}})),
    )
    .await
    .unwrap();
    eventually(T, "dependent gone", || gone(&api, "fg-dep")).await;
    eventually(T, "owner gone after its dependent", || gone(&api, "fg")).await;
}
