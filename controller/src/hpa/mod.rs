//! The horizontal pod autoscaler controller (`horizontalpodautoscaling`): every sync
//! period each HorizontalPodAutoscaler's target is read through its scale subresource,
//! pod usage through the resource metrics API, and the target rescaled as
//! kube-controller-manager's podautoscaler does. `replica_calc` proposes from metrics,
//! `behavior` normalizes, `metric_replicas` runs each metric spec, `reconcile` drives one
//! sync and writes status, conditions and events.

pub mod behavior;
pub mod conditions;
pub mod metric_replicas;
pub mod metrics_source;
pub mod reconcile;
pub mod replica_calc;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use skiff_client::controller::drive;
use skiff_client::events::{EventRecorder, Reporter};
use skiff_client::{ReadyGate, watched_store};

use crate::Shutdown;
use crate::error::Error;
use crate::metrics::timed;
use crate::replicaset::key_of;
use behavior::History;
pub use metrics_source::{PodMetricsSource, ResourceMetricsApi};

/// The controller's settings, named after kube-controller-manager's flags.
#[derive(Clone)]
pub struct HpaOptions {
    /// `--horizontal-pod-autoscaler-sync-period` (15 s).
    pub sync_period: Duration,
    /// `--horizontal-pod-autoscaler-downscale-stabilization` (5 m).
    pub downscale_stabilization: Duration,
    /// `--horizontal-pod-autoscaler-tolerance` (0.1).
    pub tolerance: f64,
    /// `--horizontal-pod-autoscaler-cpu-initialization-period` (5 m).
    pub cpu_initialization_period: Duration,
    /// `--horizontal-pod-autoscaler-initial-readiness-delay` (30 s).
    pub initial_readiness_delay: Duration,
    /// Where usage comes from; `None` reads the resource metrics API.
    pub metrics: Option<Arc<dyn PodMetricsSource>>,
}

impl Default for HpaOptions {
    fn default() -> Self {
        HpaOptions {
            sync_period: Duration::from_secs(15),
            downscale_stabilization: Duration::from_secs(300),
            tolerance: 0.1,
            cpu_initialization_period: Duration::from_secs(300),
            initial_readiness_delay: Duration::from_secs(30),
            metrics: None,
        }
    }
}

impl std::fmt::Debug for HpaOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HpaOptions")
            .field("sync_period", &self.sync_period)
            .field("downscale_stabilization", &self.downscale_stabilization)
            .field("tolerance", &self.tolerance)
            .field("cpu_initialization_period", &self.cpu_initialization_period)
            .field("initial_readiness_delay", &self.initial_readiness_delay)
            .field("metrics", &self.metrics.as_ref().map(|_| "custom"))
            .finish()
    }
}

/// What the reconciler shares between calls.
pub struct HpaContext {
    client: Client,
    options: HpaOptions,
    metrics: Arc<dyn PodMetricsSource>,
    pods: Store<Pod>,
    pods_ready: ReadyGate,
    events: EventRecorder,
    /// Recommendations and scale events by HPA key.
    history: Mutex<HashMap<String, History>>,
}

async fn reconcile_hpa(
    hpa: Arc<HorizontalPodAutoscaler>,
    ctx: Arc<HpaContext>,
) -> Result<Action, Error> {
    if ctx.pods_ready.wait().await.is_err() {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    reconcile::sync(&hpa, &ctx).await?;
    Ok(Action::requeue(ctx.options.sync_period))
}

fn error_policy(hpa: Arc<HorizontalPodAutoscaler>, err: &Error, ctx: Arc<HpaContext>) -> Action {
    tracing::warn!(hpa = %key_of(hpa.as_ref()), error = %err, "horizontal pod autoscaler sync failed");
    Action::requeue(ctx.options.sync_period)
}

/// Runs the HPA controller until `shutdown`.
pub async fn run(client: Client, options: HpaOptions, shutdown: Shutdown) -> anyhow::Result<()> {
    let (pods, pods_ready, pod_events) = watched_store::<Pod>(&client);
    let metrics = options
        .metrics
        .clone()
        .unwrap_or_else(|| Arc::new(ResourceMetricsApi::new(client.clone())));
    // Status writes must not cause a sync of their own: syncs follow the sync period,
    // and spec changes (a new generation) start one at once.
    let hpas = watcher::watcher(
        Api::<HorizontalPodAutoscaler>::all(client.clone()),
        watcher::Config::default(),
    );
    let (reader, writer) = kube::runtime::reflector::store();
    let stream = kube::runtime::reflector(writer, hpas)
        .default_backoff()
        .applied_objects()
        .predicate_filter(kube::runtime::predicates::generation, Default::default());
    // The pod store fills as its stream is polled; pod changes alone start no sync.
    let controller = Controller::for_stream(stream, reader)
        .watches_stream(pod_events, |_pod: Pod| {
            std::iter::empty::<ObjectRef<HorizontalPodAutoscaler>>()
        });
    let ctx = Arc::new(HpaContext {
        // core/v1 Events, one per occurrence, as kube-controller-manager's HPA records
        // them: each rescale's "New size" stays visible in `kubectl describe hpa`.
        events: EventRecorder::core_v1(
            client.clone(),
            Reporter {
                component: "horizontal-pod-autoscaler".into(),
                ..Reporter::default()
            },
        ),
        client,
        options,
        metrics,
        pods,
        pods_ready,
        history: Mutex::new(HashMap::new()),
    });
    let timed_reconcile = |obj, ctx| timed("horizontalpodautoscaling", reconcile_hpa(obj, ctx));
    drive(controller, &shutdown, timed_reconcile, error_policy, ctx).await;
    Ok(())
}
