//! A real API server started in-process, and builders for hollow nodes and pods.
#![allow(dead_code)]

use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde_json::{Value, json};
use skiff_apiserver::server::{self, ServerConfig};
use tokio::sync::oneshot;

/// A running API server; stops when dropped.
pub struct ApiServer {
    pub client: Client,
    _dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

pub async fn start() -> ApiServer {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = ServerConfig {
        data_dir: dir.path().to_path_buf(),
        etcd_endpoints: vec![],
        bind_address: "127.0.0.1".parse().unwrap(),
        secure_port: 0,
        event_ttl: skiff_apiserver::server::DEFAULT_EVENT_TTL,
    };
    let (ready_tx, ready_rx) = oneshot::channel();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let r = server::run(
            cfg,
            async move {
                let _ = stop_rx.await;
            },
            move |running| {
                let _ = ready_tx.send(running.admin_kubeconfig.clone());
            },
        )
        .await;
        if let Err(e) = r {
            eprintln!("api server failed: {e:#}");
        }
    });
    let path = ready_rx.await.expect("api server started");
    let kc = Kubeconfig::read_from(&path).expect("kubeconfig");
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("client config");
    let client = Client::try_from(config).expect("client");
    ApiServer {
        client,
        _dir: dir,
        stop: Some(stop_tx),
    }
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

/// Waits until `f` returns Some, polling every 100 ms, for at most `secs` seconds.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The node a pod is bound to, once bound.
pub async fn node_of(client: &Client, name: &str) -> String {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    eventually(20, &format!("pod {name} bound"), || {
        let api = api.clone();
        async move {
            api.get(name)
                .await
                .ok()
                .and_then(|p| p.spec.and_then(|s| s.node_name))
        }
    })
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
