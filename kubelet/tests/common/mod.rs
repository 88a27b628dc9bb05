//! Test harness: the apiserver's in-process test server and kubelets with short timers.
#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use skiff_kubelet::{FakeImages, FakeRuntime, ImageService, Kubelet, KubeletConfig, Timers};
use skiff_runtime::pod::PodRuntime;

pub use skiff_apiserver::testkit::{TestApiServer as Api_, eventually};

/// Starts an in-process API server; it stops when dropped.
pub async fn start_api() -> Api_ {
    Api_::start().await
}

pub fn fast_timers() -> Timers {
    Timers {
        sync_interval: Duration::from_millis(100),
        node_status_interval: Duration::from_secs(2),
        node_status_check: Duration::from_millis(200),
        lease_interval: Duration::from_millis(300),
        backoff_base: Duration::from_millis(800),
        backoff_max: Duration::from_secs(4),
        backoff_reset: Duration::from_secs(30),
        volume_resync: Duration::from_millis(300),
    }
}

/// A running kubelet; dropping it stops the kubelet (containers stay).
pub struct Node_ {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Node_ {
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Node_ {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

pub fn start_kubelet(cfg: KubeletConfig) -> Node_ {
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        Kubelet::new(cfg)
            .run(async move {
                let _ = stop_rx.await;
            })
            .await
            .unwrap();
    });
    Node_ {
        stop: Some(stop),
        task: Some(task),
    }
}

pub fn fake_config(
    api: &Api_,
    name: &str,
    runtime: Arc<FakeRuntime>,
    images: Arc<FakeImages>,
) -> KubeletConfig {
    let rt: Arc<dyn PodRuntime> = runtime;
    let im: Arc<dyn ImageService> = images;
    let mut cfg = KubeletConfig::new(name, api.client.clone(), rt, im, api.dir().join(name));
    cfg.require_pod_cidr = false;
    cfg.node_ip = Some(Ipv4Addr::new(192, 0, 2, 10));
    cfg.timers = fast_timers();
    cfg
}

pub async fn create_pod(client: &kube::Client, v: serde_json::Value) -> Pod {
    let pod: Pod = serde_json::from_value(v).unwrap();
    Api::<Pod>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &pod)
        .await
        .unwrap()
}

pub async fn get_pod(client: &kube::Client, name: &str) -> Option<Pod> {
    Api::<Pod>::namespaced(client.clone(), "default")
        .get_opt(name)
        .await
        .unwrap()
}

/// Waits for the pod and returns it once `pred` holds.
pub async fn wait_pod(
    client: &kube::Client,
    name: &str,
    secs: u64,
    what: &str,
    pred: impl Fn(&Pod) -> bool,
) -> Pod {
    eventually(Duration::from_secs(secs), what, || async {
        get_pod(client, name).await.filter(|p| pred(p))
    })
    .await
}

pub fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

pub fn condition(p: &Pod, t: &str) -> Option<String> {
    p.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == t)
        .map(|c| c.status.clone())
}

pub fn cstatus<'a>(
    p: &'a Pod,
    name: &str,
) -> Option<&'a k8s_openapi::api::core::v1::ContainerStatus> {
    p.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == name)
}

pub fn container_id(p: &Pod, name: &str) -> Option<String> {
    cstatus(p, name)?
        .container_id
        .as_ref()?
        .strip_prefix("skiff://")
        .map(str::to_string)
}

pub async fn set_pod_cidr(client: &kube::Client, node: &str, cidr: &str) {
    let api: Api<Node> = Api::all(client.clone());
    api.patch(
        node,
        &PatchParams::default(),
        &Patch::Merge(&serde_json::json!({"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}})),
    )
    .await
    .unwrap();
}
