//! `rollout status|history|undo|restart sts/...` against the real API router on an
//! embedded store, with the StatefulSet controller running and pods reported Ready by hand.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use skiff_apiserver::handlers::{ApiState, router};
use skiff_apiserver::storage::embedded::EmbeddedStore;
use skiff_controller::{ControllerKind, ControllerOptions};

use super::super::Ctx;
use super::super::resource::resolve_local;
use super::super::{rollout_history, rollout_status};

/// An API server on 127.0.0.1 with the StatefulSet controller; the directory holds its store.
async fn start() -> (Ctx, tempfile::TempDir, tokio::sync::oneshot::Sender<()>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("store.db")).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = ApiState::new(Arc::new(store), &addr.to_string());
    skiff_apiserver::server::bootstrap(&state).await.unwrap();
    tokio::spawn(async move { axum::serve(listener, router(state)).await.unwrap() });
    let config = kube::Config::new(format!("http://{addr}").parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = ControllerOptions {
        controllers: [ControllerKind::StatefulSet].into(),
        leader_elect: false,
        ..Default::default()
    };
    let c = client.clone();
    tokio::spawn(async move {
        let _ = skiff_controller::run(c, options, async move {
            let _ = stopped.await;
        })
        .await;
    });
    // A stand-in kubelet: every pod Running and Ready.
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    tokio::spawn(async move {
        loop {
            for p in pods
                .list(&ListParams::default())
                .await
                .into_iter()
                .flatten()
            {
                if p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") {
                    continue;
                }
                let now = jiff::Timestamp::now().to_string();
                let st = json!({"status": {"phase": "Running", "conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": now}]}});
                let _ = pods
                    .patch_status(&p.name_any(), &PatchParams::default(), &Patch::Merge(&st))
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let ctx = Ctx {
        client,
        namespace: "default".into(),
        explicit_namespace: false,
    };
    (ctx, dir, stop)
}

fn image_of(set: &StatefulSet) -> String {
    let spec = set.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    spec.containers[0].image.clone().unwrap()
}

#[tokio::test]
async fn statefulset_rollout_verbs() {
    let (ctx, _dir, _stop) = start().await;
    let sets: Api<StatefulSet> = Api::default_namespaced(ctx.client.clone());
    let set: StatefulSet = serde_json::from_value(json!({"metadata": {"name": "web"},
        "spec": {"replicas": 2, "serviceName": "web", "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}}}}))
    .unwrap();
    sets.create(&PostParams::default(), &set).await.unwrap();
    let res = resolve_local("sts").expect("sts is a short name of statefulsets");
    let timeout = Some(Duration::from_secs(20));
    // Waits, watching, until both pods are ready and every replica is updated.
    rollout_status::run(&ctx, &res, "web", 0, true, timeout)
        .await
        .unwrap();
    let st = sets.get("web").await.unwrap().status.unwrap();
    assert_eq!(st.ready_replicas, Some(2));

    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox:2"}]}}}});
    sets.patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    rollout_status::run(&ctx, &res, "web", 0, true, timeout)
        .await
        .unwrap();
    let st = sets.get("web").await.unwrap().status.unwrap();
    assert_eq!(st.updated_replicas, Some(2));
    assert_eq!(st.current_revision, st.update_revision);

    rollout_history::history(&ctx, &res, "web", 0)
        .await
        .unwrap();
    rollout_history::history(&ctx, &res, "web", 1)
        .await
        .unwrap();
    let missing = rollout_history::history(&ctx, &res, "web", 9)
        .await
        .unwrap_err();
    assert_eq!(missing.to_string(), "unable to find the specified revision");

    // Undo restores the previous revision's template, and the controller rolls to it.
    rollout_history::undo(&ctx, &res, "web", 0).await.unwrap();
    assert_eq!(image_of(&sets.get("web").await.unwrap()), "busybox:1");
    rollout_status::run(&ctx, &res, "web", 0, true, timeout)
        .await
        .unwrap();

    super::restart(&ctx, &res, "web").await.unwrap();
    let set = sets.get("web").await.unwrap();
    let annotations = set
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap();
    assert!(
        annotations
            .annotations
            .as_ref()
            .unwrap()
            .contains_key("kubectl.kubernetes.io/restartedAt")
    );
    assert_eq!(set.metadata.generation, Some(4));
}
