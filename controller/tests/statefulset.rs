//! The StatefulSet controller against a real API server: pods made in ordinal order (each
//! waiting for its predecessor to be Running and Ready) from `ordinals.start`, with their
//! identity and one claim per template, scale down from the highest ordinal, Parallel
//! management, the claims' retention policy, partitioned rolling updates, OnDelete,
//! revisions and rollback, failed pods made again, orphans adopted and released.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{TestCluster, eventually};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use skiff_controller::ControllerKind;

const T: Duration = Duration::from_secs(20);

fn statefulset(name: &str, extra: Value) -> StatefulSet {
    let mut v = json!({"metadata": {"name": name},
        "spec": {"replicas": 3, "serviceName": name,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "busybox:1",
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}});
    merge(&mut v["spec"], extra);
    serde_json::from_value(v).unwrap()
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(a), Value::Object(b)) = (into.as_object_mut(), from) {
        for (k, v) in b {
            a.insert(k, v);
        }
    }
}

async fn start(kinds: &[ControllerKind]) -> (TestCluster, Api<StatefulSet>, Api<Pod>) {
    let mut cluster = TestCluster::start().await;
    cluster.start_controllers(kinds);
    let c = cluster.client.clone();
    (
        cluster,
        Api::default_namespaced(c.clone()),
        Api::default_namespaced(c),
    )
}

/// Names of the live (not being deleted) objects, sorted.
async fn live_names<K>(api: &Api<K>) -> Vec<String>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut names: Vec<String> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|o| o.meta().deletion_timestamp.is_none())
        .map(|o| o.name_any())
        .collect();
    names.sort();
    names
}

async fn live(pods: &Api<Pod>) -> Vec<String> {
    live_names(pods).await
}

async fn wait_pods(pods: &Api<Pod>, want: &[&str]) {
    eventually(T, &format!("pods {want:?}"), || async {
        (live(pods).await == want).then_some(())
    })
    .await;
}

/// Reports the pod Running and Ready, as its kubelet would.
async fn set_ready(pods: &Api<Pod>, name: &str) {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let status = json!({"status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": now}]}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

fn revision_label(p: &Pod) -> String {
    p.labels()["controller-revision-hash"].clone()
}

async fn claims(client: &Client) -> Vec<String> {
    live_names(&Api::<PersistentVolumeClaim>::default_namespaced(
        client.clone(),
    ))
    .await
}

/// Records the names of deleted pods in the order their deletions are seen.
fn record_deletions(client: &Client) -> Arc<Mutex<Vec<String>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let out = seen.clone();
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    tokio::spawn(async move {
        let mut events = watcher(pods, watcher::Config::default()).boxed();
        while let Some(Ok(e)) = events.next().await {
            if let watcher::Event::Delete(p) = e {
                out.lock().unwrap().push(p.name_any());
            }
        }
    });
    seen
}

async fn status(sets: &Api<StatefulSet>, name: &str) -> Value {
    serde_json::to_value(sets.get(name).await.unwrap().status).unwrap()
}

#[tokio::test]
async fn ordered_creation_identity_claims_and_scale_down() {
    let (cluster, sets, pods) = start(&[ControllerKind::StatefulSet]).await;
    let deleted = record_deletions(&cluster.client);
    sets.create(&PostParams::default(), &statefulset("web", json!({})))
        .await
        .unwrap();
    for (i, want) in [
        ["web-0"].as_slice(),
        &["web-0", "web-1"],
        &["web-0", "web-1", "web-2"],
    ]
    .into_iter()
    .enumerate()
    {
        wait_pods(&pods, want).await;
        // The next ordinal waits for this one to be Running and Ready.
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(live(&pods).await, want, "nothing ahead of an unready pod");
        // The claim exists before its pod.
        assert!(
            claims(&cluster.client)
                .await
                .contains(&format!("data-web-{i}"))
        );
        set_ready(&pods, &format!("web-{i}")).await;
    }
    let p = pods.get("web-1").await.unwrap();
    assert_eq!(p.labels()["statefulset.kubernetes.io/pod-name"], "web-1");
    assert_eq!(p.labels()["apps.kubernetes.io/pod-index"], "1");
    let spec = p.spec.as_ref().unwrap();
    assert_eq!(spec.hostname.as_deref(), Some("web-1"));
    assert_eq!(spec.subdomain.as_deref(), Some("web"));
    let vol = &spec.volumes.as_ref().unwrap()[0];
    assert_eq!(vol.name, "data");
    assert_eq!(
        vol.persistent_volume_claim.as_ref().unwrap().claim_name,
        "data-web-1"
    );
    let owner = &p.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.controller),
        ("StatefulSet", Some(true))
    );

    let st = eventually(T, "status of three ready", || async {
        let st = status(&sets, "web").await;
        (st["readyReplicas"] == 3 && st["availableReplicas"] == 3).then_some(st)
    })
    .await;
    assert_eq!(st["replicas"], 3);
    assert_eq!(st["currentReplicas"], 3);
    assert_eq!(st["updatedReplicas"], 3);
    assert_eq!(st["currentRevision"], st["updateRevision"]);
    assert_eq!(st["currentRevision"], revision_label(&p));
    assert_eq!(st["observedGeneration"], 1);
    assert_eq!(st["collisionCount"], 0);

    // Through the scale subresource, as an autoscaler would.
    let scale = sets.get_scale("web").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(3));
    assert_eq!(scale.status.unwrap().selector.as_deref(), Some("app=web"));
    let patch = json!({"spec": {"replicas": 1}});
    sets.patch_scale("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    wait_pods(&pods, &["web-0"]).await;
    eventually(T, "both deletions seen", || async {
        (deleted.lock().unwrap().len() >= 2).then_some(())
    })
    .await;
    assert_eq!(deleted.lock().unwrap()[..2], ["web-2", "web-1"]);
    // Retain: the claims stay for when the set grows again.
    assert_eq!(
        claims(&cluster.client).await,
        ["data-web-0", "data-web-1", "data-web-2"]
    );
    let set = sets.get("web").await.unwrap();
    assert_eq!(set.metadata.generation, Some(2), "a scale changes the spec");
}

#[tokio::test]
async fn ordinals_start_and_parallel_management() {
    let (cluster, sets, pods) = start(&[ControllerKind::StatefulSet]).await;
    let extra = json!({"podManagementPolicy": "Parallel", "ordinals": {"start": 5}});
    sets.create(&PostParams::default(), &statefulset("db", extra))
        .await
        .unwrap();
    // Parallel: every ordinal at once, none waiting for readiness.
    wait_pods(&pods, &["db-5", "db-6", "db-7"]).await;
    assert_eq!(
        claims(&cluster.client).await,
        ["data-db-5", "data-db-6", "data-db-7"]
    );
    let patch = json!({"spec": {"replicas": 1}});
    sets.patch("db", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    wait_pods(&pods, &["db-5"]).await;
    // Moving the start renames the range: db-5 goes, db-2 comes.
    let patch = json!({"spec": {"ordinals": {"start": 2}}});
    sets.patch("db", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    wait_pods(&pods, &["db-2"]).await;
}

#[tokio::test]
async fn delete_retention_policy_removes_claims_through_owners() {
    let (cluster, sets, pods) = start(&[
        ControllerKind::StatefulSet,
        ControllerKind::GarbageCollector,
        ControllerKind::PersistentVolumeBinder,
    ])
    .await;
    cluster.add_nodes(&["n1"]).await;
    cluster.fake_kubelet(&["n1"], Duration::ZERO);
    let extra = json!({"replicas": 2,
        "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete", "whenScaled": "Delete"}});
    sets.create(&PostParams::default(), &statefulset("kv", extra))
        .await
        .unwrap();
    wait_pods(&pods, &["kv-0", "kv-1"]).await;
    let uid = sets.get("kv").await.unwrap().uid().unwrap();
    let api: Api<PersistentVolumeClaim> = Api::default_namespaced(cluster.client.clone());
    let c = api.get("data-kv-0").await.unwrap();
    assert!(
        c.owner_references()
            .iter()
            .any(|r| r.uid == uid && r.kind == "StatefulSet")
    );
    let patch = json!({"spec": {"replicas": 1}});
    sets.patch("kv", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    // whenScaled: Delete hands the claim to its pod, which takes it along.
    eventually(T, "the scaled-away claim removed", || async {
        (claims(&cluster.client).await == ["data-kv-0"]).then_some(())
    })
    .await;
    // whenDeleted: Delete: the set takes the rest along.
    sets.delete("kv", &DeleteParams::default()).await.unwrap();
    eventually(T, "claims and pods gone", || async {
        (claims(&cluster.client).await.is_empty() && live(&pods).await.is_empty()).then_some(())
    })
    .await;
}

/// The set's ControllerRevisions, oldest number first: (name, number).
async fn revisions(client: &Client) -> Vec<(String, i64)> {
    let api: Api<ControllerRevision> = Api::default_namespaced(client.clone());
    let mut r: Vec<(String, i64)> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|r| (r.name_any(), r.revision))
        .collect();
    r.sort_by_key(|(_, n)| *n);
    r
}

async fn set_image(sets: &Api<StatefulSet>, name: &str, image: &str) {
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "c", "image": image, "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}}}});
    sets.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

/// Each pod's revision label, by ordinal.
async fn pod_revisions(pods: &Api<Pod>, names: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for n in names {
        out.push(revision_label(&pods.get(n).await.unwrap()));
    }
    out
}

async fn ready_cluster() -> (TestCluster, Api<StatefulSet>, Api<Pod>) {
    let (cluster, sets, pods) = start(&[ControllerKind::StatefulSet]).await;
    cluster.add_nodes(&["n1"]).await;
    cluster.fake_kubelet(&["n1"], Duration::ZERO);
    (cluster, sets, pods)
}

#[tokio::test]
async fn partitioned_rolling_update_then_full_rollout_and_rollback() {
    let (cluster, sets, pods) = ready_cluster().await;
    let extra =
        json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}});
    sets.create(&PostParams::default(), &statefulset("web", extra))
        .await
        .unwrap();
    let names = ["web-0", "web-1", "web-2"];
    wait_pods(&pods, &names).await;
    let first = eventually(T, "first revision", || async {
        let st = status(&sets, "web").await;
        (st["readyReplicas"] == 3).then(|| st["currentRevision"].as_str().unwrap().to_string())
    })
    .await;
    set_image(&sets, "web", "busybox:2").await;
    let st = eventually(T, "ordinals at or above the partition updated", || async {
        let st = status(&sets, "web").await;
        (st["updatedReplicas"] == 2 && st["readyReplicas"] == 3 && st["observedGeneration"] == 2)
            .then_some(st)
    })
    .await;
    let second = st["updateRevision"].as_str().unwrap().to_string();
    assert_ne!(first, second);
    assert_eq!(
        st["currentRevision"],
        first.as_str(),
        "the partition holds the rollout"
    );
    assert_eq!(st["currentReplicas"], 1);
    assert_eq!(
        pod_revisions(&pods, &names).await,
        [first.clone(), second.clone(), second.clone()]
    );
    let image = |p: &Pod| {
        p.spec.as_ref().unwrap().containers[0]
            .image
            .clone()
            .unwrap()
    };
    assert_eq!(image(&pods.get("web-0").await.unwrap()), "busybox:1");
    assert_eq!(image(&pods.get("web-2").await.unwrap()), "busybox:2");
    assert_eq!(
        revisions(&cluster.client).await,
        [(first.clone(), 1), (second.clone(), 2)]
    );

    // Partition 0 finishes the rollout and makes the new revision current.
    let patch = json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}});
    sets.patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    eventually(T, "rollout complete", || async {
        let st = status(&sets, "web").await;
        (st["currentRevision"] == second.as_str() && st["currentReplicas"] == 3).then_some(())
    })
    .await;
    assert_eq!(
        pod_revisions(&pods, &names).await,
        [second.clone(), second.clone(), second.clone()]
    );

    // Back to the first template: its revision is renumbered, not copied.
    set_image(&sets, "web", "busybox:1").await;
    eventually(T, "rolled back", || async {
        let st = status(&sets, "web").await;
        (st["currentRevision"] == first.as_str() && st["currentReplicas"] == 3).then_some(())
    })
    .await;
    assert_eq!(
        pod_revisions(&pods, &names).await,
        [first.clone(), first.clone(), first.clone()]
    );
    assert_eq!(revisions(&cluster.client).await, [(second, 2), (first, 3)]);
}

#[tokio::test]
async fn on_delete_updates_only_deleted_pods() {
    let (_cluster, sets, pods) = ready_cluster().await;
    let extra = json!({"replicas": 2, "updateStrategy": {"type": "OnDelete"}});
    sets.create(&PostParams::default(), &statefulset("web", extra))
        .await
        .unwrap();
    wait_pods(&pods, &["web-0", "web-1"]).await;
    let first = eventually(T, "ready", || async {
        let st = status(&sets, "web").await;
        (st["readyReplicas"] == 2).then(|| st["updateRevision"].as_str().unwrap().to_string())
    })
    .await;
    set_image(&sets, "web", "busybox:2").await;
    let second = eventually(T, "new update revision", || async {
        let st = status(&sets, "web").await;
        let u = st["updateRevision"].as_str().unwrap().to_string();
        (u != first).then_some(u)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        pod_revisions(&pods, &["web-0", "web-1"]).await,
        [first.clone(), first.clone()]
    );
    let old_uid = pods.get("web-1").await.unwrap().uid();
    pods.delete("web-1", &DeleteParams::default())
        .await
        .unwrap();
    eventually(T, "web-1 made again at the new revision", || async {
        let p = pods.get("web-1").await.ok()?;
        (p.uid() != old_uid && revision_label(&p) == second).then_some(())
    })
    .await;
    assert_eq!(pod_revisions(&pods, &["web-0"]).await, [first.clone()]);
}

#[tokio::test]
async fn failed_pods_are_replaced_and_orphans_adopted() {
    let (_cluster, sets, pods) = ready_cluster().await;
    // An orphan with the set's labels and a name of its range is adopted, not replaced.
    let orphan: Pod = serde_json::from_value(
        json!({"metadata": {"name": "web-0", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}}),
    )
    .unwrap();
    let orphan_uid = pods
        .create(&PostParams::default(), &orphan)
        .await
        .unwrap()
        .uid();
    // A pod with the labels but not a member's name is left alone.
    let stranger: Pod = serde_json::from_value(
        json!({"metadata": {"name": "helper", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}}),
    )
    .unwrap();
    pods.create(&PostParams::default(), &stranger)
        .await
        .unwrap();
    sets.create(
        &PostParams::default(),
        // OnDelete: the adopted pod, which has no revision, is not rolled away meanwhile.
        &statefulset(
            "web",
            json!({"replicas": 2, "updateStrategy": {"type": "OnDelete"}}),
        ),
    )
    .await
    .unwrap();
    wait_pods(&pods, &["helper", "web-0", "web-1"]).await;
    let set_uid = sets.get("web").await.unwrap().uid().unwrap();
    let adopted = eventually(T, "orphan adopted and labelled", || async {
        let p = pods.get("web-0").await.ok()?;
        let owned = p.owner_references().iter().any(|r| r.uid == set_uid);
        let labelled = p
            .labels()
            .get("statefulset.kubernetes.io/pod-name")
            .map(String::as_str)
            == Some("web-0");
        (owned && labelled).then_some(p)
    })
    .await;
    assert_eq!(adopted.uid(), orphan_uid);
    assert!(
        pods.get("helper")
            .await
            .unwrap()
            .owner_references()
            .is_empty()
    );

    let failed_uid = pods.get("web-1").await.unwrap().uid();
    let failed = json!({"status": {"phase": "Failed"}});
    eventually(T, "failed pod made again", || async {
        let p = pods.get("web-1").await.ok()?;
        if p.uid() == failed_uid {
            // Reported again each round: the stand-in kubelet keeps reporting it Running.
            let _ = pods
                .patch_status("web-1", &PatchParams::default(), &Patch::Merge(&failed))
                .await;
            return None;
        }
        p.metadata.deletion_timestamp.is_none().then_some(())
    })
    .await;

    // A pod relabelled out of the selector is released, not deleted.
    let patch = json!({"metadata": {"labels": {"app": "elsewhere"}}});
    pods.patch("web-0", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let released = eventually(T, "web-0 released", || async {
        let p = pods.get("web-0").await.ok()?;
        p.owner_references().is_empty().then_some(p)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let kept = pods.get("web-0").await.unwrap();
    assert_eq!(kept.uid(), released.uid(), "a released pod is left alone");
    assert_eq!(kept.uid(), orphan_uid);
    assert_eq!(kept.labels()["app"], "elsewhere");
}
