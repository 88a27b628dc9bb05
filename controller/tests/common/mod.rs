//! Test cluster: the apiserver's in-process test server, the controllers under test, and a
//! stand-in for the scheduler and kubelets that binds pods to fake Nodes and reports them
//! Running and Ready.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use skiff_apiserver::testkit::TestApiServer;
pub use skiff_apiserver::testkit::eventually;
use skiff_controller::{ControllerKind, ControllerOptions};
use tokio::sync::oneshot;

/// A running API server and the client to reach it.
pub struct TestCluster {
    pub client: Client,
    api: TestApiServer,
    controllers_stop: Vec<oneshot::Sender<()>>,
    fake_kubelet_stop: Arc<AtomicBool>,
}

impl TestCluster {
    /// Starts an API server on a random loopback port.
    pub async fn start() -> TestCluster {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
            .with_test_writer()
            .try_init();
        let api = TestApiServer::start().await;
        TestCluster {
            client: api.client.clone(),
            api,
            controllers_stop: vec![],
            fake_kubelet_stop: Arc::new(AtomicBool::new(false)),
        }
    }

    /// A client that hands 429 and 503 answers back instead of retrying them.
    #[allow(dead_code)]
    pub async fn client_without_retries(&self) -> Client {
        self.api.client_without_retries().await
    }

    /// Starts the given controllers (no leader election).
    pub fn start_controllers(&mut self, kinds: &[ControllerKind]) {
        let options = ControllerOptions {
            controllers: kinds.iter().copied().collect::<BTreeSet<_>>(),
            leader_elect: false,
            ..Default::default()
        };
        self.start_controllers_with(options);
    }

    /// Starts a controller-manager with these options.
    pub fn start_controllers_with(&mut self, options: ControllerOptions) {
        let (tx, rx) = oneshot::channel::<()>();
        let client = self.client.clone();
        tokio::spawn(async move {
            if let Err(e) = skiff_controller::run(client, options, async move {
                let _ = rx.await;
            })
            .await
            {
                eprintln!("controller-manager exited: {e:#}");
            }
        });
        self.controllers_stop.push(tx);
    }

    /// Stops every controller-manager started so far.
    pub fn stop_controllers(&mut self) {
        for tx in self.controllers_stop.drain(..) {
            let _ = tx.send(());
        }
    }

    /// Creates Nodes `names` (Ready, schedulable).
    pub async fn add_nodes(&self, names: &[&str]) {
        let nodes: Api<Node> = Api::all(self.client.clone());
        for n in names {
            let node: Node = serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": n, "labels": {"kubernetes.io/hostname": n}},
            }))
            .unwrap();
            nodes
                .create(&PostParams::default(), &node)
                .await
                .expect("create node");
            let status = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
            nodes
                .patch_status(n, &PatchParams::default(), &Patch::Merge(&status))
                .await
                .expect("node status");
        }
    }

    /// Runs a fake scheduler+kubelet: binds pending pods round-robin to `nodes` (or to the node a
    /// DaemonSet pod's affinity names), reports them Running (Ready after `ready_after`), and
    /// finishes graceful deletions at once.
    pub fn fake_kubelet(&self, nodes: &[&str], ready_after: Duration) {
        let client = self.client.clone();
        let nodes: Vec<String> = nodes.iter().map(|s| s.to_string()).collect();
        let stop = self.fake_kubelet_stop.clone();
        tokio::spawn(async move {
            let pods: Api<Pod> = Api::all(client.clone());
            let mut next = 0usize;
            let mut bound_at: std::collections::HashMap<String, Instant> = Default::default();
            while !stop.load(Ordering::Relaxed) {
                if let Ok(list) = pods.list(&ListParams::default()).await {
                    for pod in list {
                        let ns = pod.namespace().unwrap_or_default();
                        let name = pod.name_any();
                        let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
                        let uid = pod.uid().unwrap_or_default();
                        if pod.metadata.deletion_timestamp.is_some() {
                            let _ = api
                                .delete(&name, &DeleteParams::default().grace_period(0))
                                .await;
                            continue;
                        }
                        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
                        if node.is_none() {
                            let target = affinity_node(&pod).unwrap_or_else(|| {
                                next += 1;
                                nodes[next % nodes.len()].clone()
                            });
                            let body = json!({"apiVersion": "v1", "kind": "Binding",
                                "metadata": {"name": name}, "target": {"kind": "Node", "name": target}});
                            let _ = api
                                .create_subresource::<_, serde_json::Value>(
                                    "binding",
                                    &name,
                                    &PostParams::default(),
                                    &body,
                                )
                                .await;
                            bound_at.insert(uid, Instant::now());
                            continue;
                        }
                        let since = *bound_at.entry(uid).or_insert_with(Instant::now);
                        let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
                        let ready = is_ready(&pod);
                        let want_ready = since.elapsed() >= ready_after;
                        if phase.as_deref() != Some("Running") || ready != want_ready {
                            let flag = if want_ready { "True" } else { "False" };
                            let status = json!({"status": {"phase": "Running", "podIP": "10.244.0.10",
                                "startTime": pod.status.as_ref().and_then(|s| s.start_time.clone()).map(|t| t.0.to_string()).unwrap_or_else(jiff_now),
                                "conditions": [{"type": "Ready", "status": flag, "lastTransitionTime": jiff_now()},
                                               {"type": "ContainersReady", "status": flag},
                                               {"type": "PodScheduled", "status": "True"}]}});
                            let _ = api
                                .patch_status(
                                    &name,
                                    &PatchParams::default(),
                                    &Patch::Merge(&status),
                                )
                                .await;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
    }
}

fn jiff_now() -> String {
    // Seconds precision, like the API server's timestamps.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    k8s_openapi::jiff::Timestamp::from_second(now)
        .unwrap()
        .to_string()
}

/// Whether the pod reports Ready=True.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The node a DaemonSet pod's `matchFields metadata.name` affinity pins it to.
fn affinity_node(pod: &Pod) -> Option<String> {
    let terms = pod
        .spec
        .as_ref()?
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?;
    terms
        .node_selector_terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|r| r.key == "metadata.name")?
        .values
        .as_ref()?
        .first()
        .cloned()
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        self.fake_kubelet_stop.store(true, Ordering::Relaxed);
        self.stop_controllers();
    }
}
