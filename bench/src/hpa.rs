//! HPA reaction: from the moment load starts to the controller's first scale decision and
//! to the new replicas Ready, at kube-controller-manager's default settings (15 s sync
//! period, usage sampled every 15 s as metrics-server's default resolution) and at short
//! test settings, beside the Kubernetes default path computed from the same run.
//!
//! The API server (embedded store), the ReplicaSet, Deployment and HPA controllers run in
//! this process; a stand-in kubelet binds pods and reports them Running and Ready at once;
//! usage comes from a source that refreshes its samples every `resolution`, as a metrics
//! pipeline does, so load becomes visible at the first sample after it starts.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use skiff_apiserver::testkit::TestApiServer;
use skiff_controller::hpa::metrics_source::{
    ContainerMetrics, MetricsError, PodMetrics, PodMetricsMeta,
};
use skiff_controller::hpa::{HpaOptions, PodMetricsSource};
use skiff_controller::{ControllerKind, ControllerOptions};

use crate::stats;

/// Options of the HPA benchmark.
pub struct HpaBenchOptions {
    /// Rounds per setting.
    pub rounds: usize,
}

/// Usage sampled every `resolution`: 100 % of the 100m request once a sample is taken
/// after the load started, 10 % before.
struct SampledUsage {
    client: Client,
    origin: Instant,
    resolution: Duration,
    load_since: Mutex<Option<Instant>>,
}

impl SampledUsage {
    /// The time of the latest sample at `now`.
    fn last_sample(&self, now: Instant) -> Instant {
        let n = (now - self.origin).as_nanos() / self.resolution.as_nanos().max(1);
        self.origin + self.resolution * n as u32
    }

    fn loaded(&self) -> bool {
        let since = *self.load_since.lock().unwrap_or_else(|e| e.into_inner());
        since.is_some_and(|t| self.last_sample(Instant::now()) >= t)
    }
}

impl PodMetricsSource for SampledUsage {
    fn pod_metrics<'a>(
        &'a self,
        namespace: &'a str,
        selector: &'a str,
    ) -> BoxFuture<'a, Result<Vec<PodMetrics>, MetricsError>> {
        Box::pin(async move {
            let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
            let list = pods
                .list(&ListParams::default().labels(selector))
                .await
                .map_err(MetricsError::Api)?;
            let cpu = if self.loaded() { "100m" } else { "10m" };
            Ok(list
                .items
                .iter()
                .map(|p| PodMetrics {
                    metadata: PodMetricsMeta { name: p.name_any() },
                    timestamp: jiff::Timestamp::now(),
                    window: format!("{}s", self.resolution.as_secs().max(1)),
                    containers: vec![ContainerMetrics {
                        name: "c".into(),
                        usage: [("cpu".to_string(), cpu.to_string())].into(),
                    }],
                })
                .collect())
        })
    }
}

/// Binds pods to node `n1` and reports them Running and Ready, started and ready at once.
async fn stand_in_kubelet(client: Client) {
    let pods: Api<Pod> = Api::all(client.clone());
    loop {
        for pod in pods
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default()
        {
            let ns = pod.namespace().unwrap_or_default();
            let name = pod.name_any();
            let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
            if pod.metadata.deletion_timestamp.is_some() {
                let _ = api
                    .delete(&name, &DeleteParams::default().grace_period(0))
                    .await;
            } else if pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_ref())
                .is_none()
            {
                let body = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
                    "target": {"kind": "Node", "name": "n1"}});
                let _ = api
                    .create_subresource::<_, serde_json::Value>(
                        "binding",
                        &name,
                        &PostParams::default(),
                        &body,
                    )
                    .await;
            } else if pod.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Running") {
                let now = jiff::Timestamp::now().to_string();
                let status = json!({"status": {"phase": "Running", "startTime": now,
                    "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}]}});
                let _ = api
                    .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                    .await;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One setting's figures: load start → decision, load start → new replicas Ready (ms).
struct Reaction {
    decision: Vec<Duration>,
    ready: Vec<Duration>,
}

async fn measure(sync: Duration, resolution: Duration, rounds: usize) -> Result<Reaction> {
    let api = TestApiServer::start().await;
    let client = api.client.clone();
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "n1"}}))?,
        )
        .await?;
    let usage = Arc::new(SampledUsage {
        client: client.clone(),
        origin: Instant::now(),
        resolution,
        load_since: Mutex::new(None),
    });
    let options = ControllerOptions {
        controllers: [
            ControllerKind::ReplicaSet,
            ControllerKind::Deployment,
            ControllerKind::HorizontalPodAutoscaler,
        ]
        .into_iter()
        .collect(),
        leader_elect: false,
        hpa: HpaOptions {
            sync_period: sync,
            // Scale-down is not measured; it must not undo a round before the next.
            downscale_stabilization: Duration::ZERO,
            cpu_initialization_period: Duration::ZERO,
            initial_readiness_delay: Duration::ZERO,
            metrics: Some(usage.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let controllers = tokio::spawn(skiff_controller::run(client.clone(), options, async move {
        let _ = stop_rx.await;
    }));
    let kubelet = tokio::spawn(stand_in_kubelet(client.clone()));

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let d = json!({"metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "busybox",
                    "resources": {"requests": {"cpu": "100m"}}}]}}}});
    deployments
        .create(&PostParams::default(), &serde_json::from_value(d)?)
        .await?;
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), "default");
    let h = json!({"metadata": {"name": "web"}, "spec": {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "minReplicas": 1, "maxReplicas": 2,
        "metrics": [{"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": 50}}}]}});
    hpas.create(&PostParams::default(), &serde_json::from_value(h)?)
        .await?;

    let mut out = Reaction {
        decision: vec![],
        ready: vec![],
    };
    for round in 0..rounds {
        // Idle at 1 replica with a valid metric, then wait a random part of a period so
        // load starts at an arbitrary phase of the sync and sample clocks.
        wait_for(&deployments, Duration::from_secs(120), |d| {
            replicas(d) == (1, 1)
        })
        .await?;
        wait_valid_metric(&hpas).await?;
        let jitter = (round as u64 * 7919 + 3) % sync.max(resolution).as_millis().max(1) as u64;
        tokio::time::sleep(Duration::from_millis(jitter)).await;
        let start = Instant::now();
        *usage.load_since.lock().unwrap_or_else(|e| e.into_inner()) = Some(start);
        wait_for(&deployments, Duration::from_secs(120), |d| {
            replicas(d).0 == 2
        })
        .await?;
        out.decision.push(start.elapsed());
        wait_for(&deployments, Duration::from_secs(120), |d| {
            replicas(d) == (2, 2)
        })
        .await?;
        out.ready.push(start.elapsed());
        // Load stops; the HPA brings it back to 1 (no scale-down window here).
        *usage.load_since.lock().unwrap_or_else(|e| e.into_inner()) = None;
        eprintln!(
            "  round {}: decision {:?}, ready {:?}",
            round + 1,
            out.decision[round],
            out.ready[round]
        );
    }
    let _ = stop_tx.send(());
    kubelet.abort();
    let _ = tokio::time::timeout(Duration::from_secs(10), controllers).await;
    Ok(out)
}

/// (spec.replicas, status.readyReplicas).
fn replicas(d: &Deployment) -> (i32, i32) {
    let spec = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let ready = d
        .status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    (spec, ready)
}

async fn wait_for(
    api: &Api<Deployment>,
    timeout: Duration,
    f: impl Fn(&Deployment) -> bool,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(d) = api.get("web").await
            && f(&d)
        {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "deployment did not reach the state in {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn wait_valid_metric(api: &Api<HorizontalPodAutoscaler>) -> Result<()> {
    for _ in 0..6000 {
        let h = api.get("web").await.context("reading the HPA")?;
        let ok = h
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| {
                c.iter()
                    .any(|c| c.type_ == "ScalingActive" && c.status == "True")
            })
            && h.status.as_ref().is_some_and(|s| s.desired_replicas == 1);
        if ok {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    anyhow::bail!("the HPA never reported a valid metric")
}

/// `p50 / max s`.
fn summary(v: &[Duration]) -> String {
    let max = v.iter().max().copied().unwrap_or_default();
    format!(
        "{:.1} / {:.1} s",
        stats::summarize(v).p50 / 1000.0,
        max.as_secs_f64()
    )
}

/// Runs both settings and renders the section.
pub async fn run(opts: &HpaBenchOptions) -> Result<String> {
    eprintln!("default settings (15 s sync, 15 s resolution) ...");
    let default = measure(
        Duration::from_secs(15),
        Duration::from_secs(15),
        opts.rounds,
    )
    .await?;
    eprintln!("test settings (1 s sync, 1 s resolution) ...");
    let test = measure(Duration::from_secs(1), Duration::from_secs(1), opts.rounds).await?;
    // The Kubernetes default path, from this run: load shows in the next 15 s sample and is
    // acted on at the next 15 s sync (each wait uniform over its period: 15 s on average,
    // 30 s at worst), plus what the decision-to-Ready step took here.
    let ready_after: Vec<Duration> = default
        .ready
        .iter()
        .zip(&default.decision)
        .map(|(r, d)| r.saturating_sub(*d))
        .collect();
    let step = stats::summarize(&ready_after).p50 / 1000.0;
    Ok(format!(
        "In-process API server (embedded store), the ReplicaSet, Deployment and HPA controllers, and a stand-in kubelet that reports pods Running and Ready at once; usage from a source that refreshes its samples every resolution period (the metrics pipeline's role). A Deployment of 1 replica requesting 100m CPU, an HPA at 50 % (max 2); load (100 % of request) starts at an arbitrary phase of both clocks; {} rounds per setting; p50 / max.\n\n\
| measurement | skiff, default (15 s sync, 15 s resolution) | skiff, test (1 s sync, 1 s resolution) | Kubernetes default path (computed) |\n\
|---|---|---|---|\n\
| load start → first scale decision | {} | {} | 15.0 s expected / 30.0 s worst (15 s resolution + 15 s sync) |\n\
| load start → new replica Ready | {} | {} | {:.1} s expected / {:.1} s worst (+ decision → Ready measured here) |\n",
        opts.rounds,
        summary(&default.decision),
        summary(&test.decision),
        summary(&default.ready),
        summary(&test.ready),
        15.0 + step,
        30.0 + step,
    ))
}
