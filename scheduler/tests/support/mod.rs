//! The apiserver's in-process test server, and builders for hollow nodes and pods.
#![allow(dead_code)]

use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio::sync::oneshot;

pub use skiff_apiserver::testkit::{TestApiServer as ApiServer, eventually};

/// Starts an in-process API server; it stops when dropped.
pub async fn start() -> ApiServer {
    ApiServer::start().await
}

/// A hollow node: Ready, with the given allocatable resources, labels, and spec fields.
pub fn node(name: &str, cpu: &str, memory: &str, labels: Value, spec: Value) -> Node {
    let mut labels = labels;
    labels["kubernetes.io/hostname"] = json!(name);
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": spec,
        "status": {
            "capacity": {"cpu": cpu, "memory": memory, "pods": "110"},
            "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "hollow"}]
        }
    }))
    .expect("node")
}

pub async fn create_node(client: &Client, node: Node) {
    let api: Api<Node> = Api::all(client.clone());
    let created = api
        .create(&PostParams::default(), &node)
        .await
        .expect("create node");
    // Status may be dropped on create (status subresource); write it explicitly.
    let mut with_status = created.clone();
    with_status.status = node.status.clone();
    api.replace_status(
        created.metadata.name.as_deref().unwrap(),
        &PostParams::default(),
        &with_status,
    )
    .await
    .expect("node status");
}

/// A pod in `default` with one container requesting `cpu`, plus extra spec fields.
pub fn pod(name: &str, cpu: &str, labels: Value, extra: Value) -> Pod {
    let mut spec = json!({"containers": [{"name": "c", "image": "busybox",
        "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}]});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    serde_json::from_value(
        json!({"metadata": {"name": name, "namespace": "default", "labels": labels}, "spec": spec}),
    )
    .expect("pod")
}

pub async fn create_pod(client: &Client, pod: Pod) {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), &pod)
        .await
        .expect("create pod");
}

/// The node a pod is bound to, once bound.
pub async fn node_of(client: &Client, name: &str) -> String {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    eventually(
        Duration::from_secs(20),
        &format!("pod {name} bound"),
        || {
            let api = api.clone();
            async move {
                api.get(name)
                    .await
                    .ok()
                    .and_then(|p| p.spec.and_then(|s| s.node_name))
            }
        },
    )
    .await
}

/// Events about a pod with a reason.
pub async fn events_for(client: &Client, pod: &str, reason: &str) -> Vec<Event> {
    let api: Api<Event> = Api::namespaced(client.clone(), "default");
    api.list(&ListParams::default())
        .await
        .expect("list events")
        .items
        .into_iter()
        .filter(|e| {
            e.involved_object.name.as_deref() == Some(pod) && e.reason.as_deref() == Some(reason)
        })
        .collect()
}

/// Starts a scheduler without leader election; returns a handle that stops it on drop.
pub fn spawn_scheduler(client: &Client, opts: skiff_scheduler::SchedulerOptions) -> StopOnDrop {
    let (tx, rx) = oneshot::channel::<()>();
    let client = client.clone();
    let handle = tokio::spawn(async move {
        skiff_scheduler::run(client, opts, async move {
            let _ = rx.await;
        })
        .await
    });
    StopOnDrop {
        stop: Some(tx),
        handle: Some(handle),
    }
}

pub struct StopOnDrop {
    stop: Option<oneshot::Sender<()>>,
    pub handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl StopOnDrop {
    /// Stops the scheduler and waits for it (lease released).
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.expect("scheduler task").expect("scheduler result");
        }
    }
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

pub fn no_election() -> skiff_scheduler::SchedulerOptions {
    skiff_scheduler::SchedulerOptions {
        leader_election: None,
        ..Default::default()
    }
}
