//! The kubelet: node registration and lease, one pod worker per pod bound to the node
//! (sandbox, containers, probes, volumes, status), adoption of what the runtime already
//! runs, the node's HTTPS server, and the hollow-node mode for scale tests. The node agent
//! (`skiff-agent`) assembles it with the node's other components.

pub mod config;
pub mod events;
pub mod fake;
pub mod hollow;
pub mod host;
pub mod images;
pub mod instances;
pub mod local_path;
pub mod metrics;
pub mod node;
pub mod pod_dns;
pub mod podspec;
pub mod probes;
pub mod server;
mod shared;
pub mod stats;
pub mod status;
pub mod volumes;
mod worker;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::watcher;
use serde_json::json;
use skiff_runtime::pod::{ContainerStatus, PodRuntime};
use tokio::sync::watch;

pub use config::{KUBELET_VERSION, KubeletConfig, Timers};
pub use fake::FakeRuntime;
pub use hollow::{HollowNodes, HollowServing, run_hollow_nodes, run_hollow_nodes_with};
pub use images::{FakeImages, ImageService, StoreImages};

use crate::host::HostFacts;
use crate::node::NodeAgent;
use crate::shared::Shared;

struct WorkerHandle {
    tx: watch::Sender<Option<Pod>>,
    task: tokio::task::JoinHandle<()>,
}

/// The node agent.
pub struct Kubelet {
    shared: Arc<Shared>,
    node: NodeAgent,
    node_name: String,
    max_pods: u32,
    require_pod_cidr: bool,
}

impl Kubelet {
    /// A kubelet from `config` (nothing runs until [`Kubelet::run`]).
    pub fn new(config: KubeletConfig) -> Self {
        let ip = config.node_ip.unwrap_or_else(node::detect_node_ip);
        let mut facts = HostFacts::detect(ip, &config.runtime_version);
        facts.kubelet_port = config.kubelet_port;
        let max_pods = config
            .max_pods
            .unwrap_or_else(|| node::default_max_pods(facts.cores));
        let node = NodeAgent::new(
            &config.node_name,
            config.client.clone(),
            facts.clone(),
            config.node_labels.clone(),
            config.root_dir.clone(),
            Some(max_pods),
        );
        let metrics = Arc::new(metrics::KubeletMetrics::new());
        let runtime: Arc<dyn PodRuntime> = Arc::new(metrics::InstrumentedRuntime::new(
            config.runtime,
            metrics.clone(),
        ));
        let shared = Shared {
            recorder: events::recorder(config.client.clone(), &config.node_name),
            client: config.client,
            runtime,
            metrics,
            images: config.images,
            root_dir: config.root_dir,
            allow_privileged: config.allow_privileged,
            cluster_dns: config.cluster_dns,
            cluster_domain: config.cluster_domain,
            host_ip: ip.to_string(),
            timers: config.timers,
            mount_tmpfs: config.require_pod_cidr,
            node_cpu_memory: (u64::from(facts.cores), facts.memory_bytes),
            index: Default::default(),
        };
        Self {
            shared: Arc::new(shared),
            node,
            node_name: config.node_name,
            max_pods,
            require_pod_cidr: config.require_pod_cidr,
        }
    }

    /// The container runtime (for the node's HTTPS server: logs, exec, attach, stats).
    pub fn runtime(&self) -> Arc<dyn PodRuntime> {
        self.shared.runtime.clone()
    }

    /// What the node server needs from this kubelet: container instances by pod and
    /// container name (kept current by the pod workers) and the runtime.
    pub fn container_lookup(&self) -> Arc<instances::KubeletLookup> {
        Arc::new(
            instances::KubeletLookup::new(self.shared.index.clone(), self.shared.runtime.clone())
                .with_metrics(self.shared.metrics.clone()),
        )
    }

    /// This kubelet's Prometheus metrics.
    pub fn metrics(&self) -> Arc<metrics::KubeletMetrics> {
        self.shared.metrics.clone()
    }

    /// The node's name.
    pub fn node_name(&self) -> &str {
        &self.node_name
    }

    /// Every instance of a pod's container the runtime holds, newest first (the first is
    /// the current one, the second the previous one for `logs --previous`).
    pub async fn container_instances(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
    ) -> Vec<ContainerStatus> {
        container_instances(&*self.shared.runtime, namespace, pod, container).await
    }

    /// The runtime id of a pod's container (its current instance).
    pub async fn container_id(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
    ) -> Option<String> {
        self.container_instances(namespace, pod, container)
            .await
            .into_iter()
            .next()
            .map(|c| c.id)
    }

    /// Runs the agent until `shutdown` completes. Containers keep running after it
    /// returns; a new kubelet over the same runtime adopts them.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        tokio::pin!(shutdown);
        let node = loop {
            match self.node.register().await {
                Ok(n) => break n,
                Err(e) => {
                    tracing::warn!(node = %self.node_name, error = %e, "node registration failed; retrying");
                    tokio::select! {
                        _ = &mut shutdown => return Ok(()),
                        _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    }
                }
            }
        };
        tracing::info!(node = %self.node_name, uid = ?node.metadata.uid, "node registered");
        let t = &self.shared.timers;
        let (ready_tx, ready_rx) = watch::channel(
            self.require_pod_cidr
                .then(|| "network not ready: waiting for the node's pod CIDR".to_string()),
        );
        let status = tokio::spawn(self.node.clone().status_loop(
            t.node_status_check,
            t.node_status_interval,
            ready_rx,
        ));
        let lease = tokio::spawn(self.node.clone().lease_loop(t.lease_interval));
        let _guard = AbortOnDrop(vec![status, lease]);
        if self.require_pod_cidr {
            tokio::select! {
                _ = &mut shutdown => return Ok(()),
                cidr = self.node.wait_pod_cidr(Duration::from_millis(500)) => {
                    tracing::info!(node = %self.node_name, cidr, "pod CIDR assigned");
                }
            }
            let _ = ready_tx.send(None);
        }
        tokio::select! {
            _ = &mut shutdown => {}
            r = self.watch_pods() => r?,
        }
        Ok(())
    }

    async fn watch_pods(&self) -> anyhow::Result<()> {
        let api: Api<Pod> = Api::all(self.shared.client.clone());
        let cfg = watcher::Config::default().fields(&format!("spec.nodeName={}", self.node_name));
        let mut stream = watcher(api, cfg).boxed();
        let mut workers: BTreeMap<String, WorkerHandle> = BTreeMap::new();
        let mut listing: Option<BTreeSet<String>> = None;
        while let Some(ev) = stream.next().await {
            workers.retain(|_, w| !w.task.is_finished());
            let ev = match ev {
                Ok(ev) => ev,
                Err(e) => {
                    tracing::warn!(node = %self.node_name, error = %e, "pod watch failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            match ev {
                watcher::Event::Init => listing = Some(BTreeSet::new()),
                watcher::Event::InitApply(p) => {
                    if let (Some(l), Some(uid)) = (listing.as_mut(), p.metadata.uid.clone()) {
                        l.insert(uid);
                    }
                    self.dispatch(&mut workers, p).await;
                }
                watcher::Event::InitDone => {
                    let seen = listing.take().unwrap_or_default();
                    for (uid, w) in &workers {
                        if !seen.contains(uid) {
                            let _ = w.tx.send(None);
                        }
                    }
                    self.remove_orphans(&seen, &workers).await;
                }
                watcher::Event::Apply(p) => self.dispatch(&mut workers, p).await,
                watcher::Event::Delete(p) => {
                    if let Some(w) = p.metadata.uid.as_ref().and_then(|u| workers.get(u)) {
                        let _ = w.tx.send(None);
                    }
                }
            }
        }
        Ok(())
    }

    async fn dispatch(&self, workers: &mut BTreeMap<String, WorkerHandle>, pod: Pod) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        if let Some(w) = workers.get(&uid) {
            let _ = w.tx.send(Some(pod));
            return;
        }
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded" | "Failed"))
            && pod.metadata.deletion_timestamp.is_none()
        {
            // Finished pods need no worker unless something of theirs is still here.
            let has_sandbox = self
                .shared
                .runtime
                .list_pod_sandboxes()
                .await
                .unwrap_or_default()
                .iter()
                .any(|s| s.config.uid == uid);
            if !has_sandbox {
                return;
            }
        }
        if workers.len() >= self.max_pods as usize && pod.metadata.deletion_timestamp.is_none() {
            self.reject(&pod, "OutOfpods", "Node didn't have enough resource: pods")
                .await;
            return;
        }
        let (tx, rx) = watch::channel(Some(pod.clone()));
        let worker = worker::PodWorker::new(self.shared.clone(), pod);
        let task = tokio::spawn(worker.run(rx));
        workers.insert(uid, WorkerHandle { tx, task });
    }

    async fn reject(&self, pod: &Pod, reason: &str, message: &str) {
        if pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed") {
            return;
        }
        let api: Api<Pod> = Api::namespaced(
            self.shared.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let patch = json!({"status": {"phase": "Failed", "reason": reason, "message": message}});
        let name = pod.metadata.name.clone().unwrap_or_default();
        let _ = api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await;
        self.shared.recorder.record(
            pod,
            None,
            events::EventType::Warning,
            reason,
            message.into(),
        );
    }

    /// Removes sandboxes whose pod no longer exists.
    async fn remove_orphans(
        &self,
        live: &BTreeSet<String>,
        workers: &BTreeMap<String, WorkerHandle>,
    ) {
        let Ok(sandboxes) = self.shared.runtime.list_pod_sandboxes().await else {
            return;
        };
        for sb in sandboxes {
            let uid = &sb.config.uid;
            if live.contains(uid) || workers.contains_key(uid) {
                continue;
            }
            tracing::info!(sandbox = %sb.id, pod = %sb.config.name, "removing orphaned sandbox");
            let _ = self.shared.runtime.stop_pod_sandbox(&sb.id).await;
            let _ = self.shared.runtime.remove_pod_sandbox(&sb.id).await;
            let (root, uid) = (self.shared.root_dir.clone(), uid.clone());
            let _ = tokio::task::spawn_blocking(move || worker::cleanup_pod_dir(&root, &uid)).await;
        }
    }
}

/// Every instance of a pod's container, newest first.
pub async fn container_instances(
    runtime: &dyn PodRuntime,
    namespace: &str,
    pod: &str,
    container: &str,
) -> Vec<ContainerStatus> {
    let Ok(sandboxes) = runtime.list_pod_sandboxes().await else {
        return Vec::new();
    };
    let ids: BTreeSet<String> = sandboxes
        .into_iter()
        .filter(|s| s.config.namespace == namespace && s.config.name == pod)
        .map(|s| s.id)
        .collect();
    let mut out: Vec<ContainerStatus> = runtime
        .list_containers()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|c| ids.contains(&c.sandbox_id) && c.name == container)
        .collect();
    out.sort_by_key(|c| std::cmp::Reverse(c.created_at));
    out
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        // Containers outlive the worker; a new kubelet adopts them.
        self.task.abort();
    }
}

struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}
