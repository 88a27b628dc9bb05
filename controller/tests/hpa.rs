//! HorizontalPodAutoscalers against a real API server, with usage from a fake metrics
//! source: a Deployment grows through its scale subresource under load, bounded by
//! maxReplicas, and shrinks back after the stabilization window; a target without
//! requests or without a scale subresource is reported in the conditions, nothing scaled;
//! bad HPAs are refused with 422.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use common::{TestCluster, eventually};
use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use skiff_controller::hpa::metrics_source::{
    ContainerMetrics, MetricsError, PodMetrics, PodMetricsMeta,
};
use skiff_controller::hpa::{HpaOptions, PodMetricsSource};
use skiff_controller::{ControllerKind, ControllerOptions};

const T: Duration = Duration::from_secs(30);

/// Every running pod of the selector uses `cpu` millicores and `memory` bytes.
struct FakeMetrics {
    client: Client,
    cpu: AtomicI64,
    memory: AtomicI64,
}

impl PodMetricsSource for FakeMetrics {
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
            let (cpu, memory) = (
                self.cpu.load(Ordering::SeqCst),
                self.memory.load(Ordering::SeqCst),
            );
            Ok(list
                .items
                .iter()
                .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
                .map(|p| PodMetrics {
                    metadata: PodMetricsMeta { name: p.name_any() },
                    timestamp: jiff::Timestamp::now(),
                    window: "1s".into(),
                    containers: vec![ContainerMetrics {
                        name: "c".into(),
                        usage: BTreeMap::from([
                            ("cpu".to_string(), format!("{cpu}m")),
                            ("memory".to_string(), memory.to_string()),
                        ]),
                    }],
                })
                .collect())
        })
    }
}

/// A cluster running the workload controllers and the HPA controller (0.5 s sync period,
/// no CPU initialization period), reading usage from the returned fake.
async fn cluster(cpu: i64, downscale: Duration) -> (TestCluster, Arc<FakeMetrics>) {
    let mut c = TestCluster::start().await;
    let metrics = Arc::new(FakeMetrics {
        client: c.client.clone(),
        cpu: AtomicI64::new(cpu),
        memory: AtomicI64::new(0),
    });
    c.add_nodes(&["n1"]).await;
    c.fake_kubelet(&["n1"], Duration::ZERO);
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
            sync_period: Duration::from_millis(500),
            downscale_stabilization: downscale,
            cpu_initialization_period: Duration::ZERO,
            initial_readiness_delay: Duration::ZERO,
            metrics: Some(metrics.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    c.start_controllers_with(options);
    (c, metrics)
}

async fn create_deployment(client: &Client, name: &str, replicas: i32, resources: Value) {
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "busybox", "resources": resources}]}}},
    }))
    .unwrap();
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), &d).await.unwrap();
}

async fn create_hpa(
    client: &Client,
    name: &str,
    spec: Value,
) -> Result<HorizontalPodAutoscaler, kube::Error> {
    let hpa: HorizontalPodAutoscaler = serde_json::from_value(
        json!({"metadata": {"name": name, "namespace": "default"}, "spec": spec}),
    )
    .unwrap();
    let api: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), &hpa).await
}

fn cpu_spec(target: &str, min: i32, max: i32, utilization: i32) -> Value {
    json!({"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
        "minReplicas": min, "maxReplicas": max,
        "metrics": [{"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": utilization}}}]})
}

async fn spec_replicas(client: &Client, name: &str) -> i32 {
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    api.get(name)
        .await
        .unwrap()
        .spec
        .unwrap()
        .replicas
        .unwrap_or(1)
}

async fn hpa_until(
    client: &Client,
    name: &str,
    what: &str,
    f: impl Fn(&HorizontalPodAutoscaler) -> bool,
) -> HorizontalPodAutoscaler {
    let api: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), "default");
    eventually(T, what, || async {
        let h = api.get(name).await.ok()?;
        f(&h).then_some(h)
    })
    .await
}

fn condition<'a>(
    h: &'a HorizontalPodAutoscaler,
    type_: &str,
) -> Option<(&'a str, &'a str, &'a str)> {
    h.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| {
            (
                c.status.as_str(),
                c.reason.as_deref().unwrap_or(""),
                c.message.as_deref().unwrap_or(""),
            )
        })
}

/// The messages of the core/v1 events about `name` with `reason`.
async fn event_notes(client: &Client, name: &str, reason: &str) -> Vec<String> {
    let api: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), "default");
    let list = api.list(&ListParams::default()).await.unwrap();
    list.items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(name))
        .filter(|e| e.reason.as_deref() == Some(reason))
        .filter_map(|e| e.message)
        .collect()
}

fn cpu_request() -> Value {
    json!({"requests": {"cpu": "100m", "memory": "64Mi"}})
}

#[tokio::test]
async fn cpu_load_grows_the_deployment_to_max_and_it_shrinks_after_the_window() {
    // 100m used of 100m requested: 200 % of a 50 % target.
    let (c, metrics) = cluster(100, Duration::from_secs(3)).await;
    create_deployment(&c.client, "web", 1, cpu_request()).await;
    create_hpa(&c.client, "web", cpu_spec("web", 1, 5, 50))
        .await
        .unwrap();

    // 1 → 2 → 4 → 5: each step doubles, the last one held to maxReplicas.
    let h = hpa_until(&c.client, "web", "scaled to max", |h| {
        let s = h.status.clone().unwrap_or_default();
        s.current_replicas == Some(5) && s.desired_replicas == 5
    })
    .await;
    assert_eq!(spec_replicas(&c.client, "web").await, 5);
    let (st, reason, _) = condition(&h, "ScalingLimited").unwrap();
    assert_eq!((st, reason), ("True", "TooManyReplicas"));
    assert_eq!(
        condition(&h, "ScalingActive").unwrap().1,
        "ValidMetricFound"
    );
    let current = &h.status.as_ref().unwrap().current_metrics.as_ref().unwrap()[0];
    assert_eq!(
        current
            .resource
            .as_ref()
            .unwrap()
            .current
            .average_utilization,
        Some(100)
    );
    assert!(h.status.as_ref().unwrap().last_scale_time.is_some());
    let notes = eventually(T, "rescale events", || async {
        let n = event_notes(&c.client, "web", "SuccessfulRescale").await;
        (n.len() >= 3).then_some(n)
    })
    .await;
    assert!(
        notes.contains(
            &"New size: 2; reason: cpu resource utilization (percentage of request) above target"
                .to_string()
        ),
        "{notes:?}"
    );
    // Never past max, whatever the load.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(spec_replicas(&c.client, "web").await, 5);

    // 10m of 100m: 10 % → ceil(5 × 0.2) = 1 once the 3 s window has passed.
    metrics.cpu.store(10, Ordering::SeqCst);
    hpa_until(&c.client, "web", "scaled to min", |h| {
        h.status.as_ref().and_then(|s| s.current_replicas) == Some(1)
    })
    .await;
    assert_eq!(spec_replicas(&c.client, "web").await, 1);
    let notes = event_notes(&c.client, "web", "SuccessfulRescale").await;
    assert!(
        notes.contains(&"New size: 1; reason: All metrics below target".to_string()),
        "{notes:?}"
    );
}

#[tokio::test]
async fn inside_the_tolerance_nothing_changes() {
    // 54m of 100m against 50 %: ratio 1.08, inside 0.1.
    let (c, _metrics) = cluster(54, Duration::from_secs(1)).await;
    create_deployment(&c.client, "calm", 2, cpu_request()).await;
    create_hpa(&c.client, "calm", cpu_spec("calm", 1, 5, 50))
        .await
        .unwrap();
    let h = hpa_until(&c.client, "calm", "a valid metric", |h| {
        condition(h, "ScalingActive").is_some_and(|c| c.1 == "ValidMetricFound")
    })
    .await;
    assert_eq!(h.status.unwrap().desired_replicas, 2);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(spec_replicas(&c.client, "calm").await, 2);
    assert!(
        event_notes(&c.client, "calm", "SuccessfulRescale")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn memory_average_value_with_behavior_policies() {
    let (c, metrics) = cluster(0, Duration::from_secs(1)).await;
    metrics.memory.store(200 * 1024 * 1024, Ordering::SeqCst);
    create_deployment(&c.client, "mem", 1, cpu_request()).await;
    // 200Mi per pod against 100Mi: double; one pod per 60 s at most.
    let spec = json!({"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "mem"},
        "minReplicas": 1, "maxReplicas": 10,
        "metrics": [{"type": "Resource", "resource": {"name": "memory",
            "target": {"type": "AverageValue", "averageValue": "100Mi"}}}],
        "behavior": {"scaleUp": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}}});
    create_hpa(&c.client, "mem", spec).await.unwrap();
    let h = hpa_until(&c.client, "mem", "first scale-up", |h| {
        h.status.as_ref().is_some_and(|s| s.desired_replicas == 2)
    })
    .await;
    let current = &h.status.as_ref().unwrap().current_metrics.as_ref().unwrap()[0];
    assert_eq!(
        current
            .resource
            .as_ref()
            .unwrap()
            .current
            .average_value
            .as_ref()
            .unwrap()
            .0,
        "209715200"
    );
    // Still asking for more, held by the policy.
    let h = hpa_until(&c.client, "mem", "held by the policy", |h| {
        condition(h, "ScalingLimited").is_some_and(|c| c.1 == "ScaleUpLimit")
    })
    .await;
    assert_eq!(h.status.unwrap().desired_replicas, 2);
    assert_eq!(spec_replicas(&c.client, "mem").await, 2);
}

#[tokio::test]
async fn a_target_without_requests_is_not_scaled() {
    let (c, _metrics) = cluster(100, Duration::from_secs(1)).await;
    create_deployment(&c.client, "noreq", 2, json!({})).await;
    create_hpa(&c.client, "noreq", cpu_spec("noreq", 1, 5, 50))
        .await
        .unwrap();
    // Until the pods run there are no metrics either; then the missing request shows.
    let h = hpa_until(
        &c.client,
        "noreq",
        "ScalingActive=False for the request",
        |h| {
            condition(h, "ScalingActive")
                .is_some_and(|c| c.0 == "False" && c.2.contains("missing request"))
        },
    )
    .await;
    let (_, reason, message) = condition(&h, "ScalingActive").unwrap();
    assert_eq!(reason, "FailedGetResourceMetric");
    assert!(
        message.starts_with("the HPA was unable to compute the replica count: failed to get cpu utilization: missing request for cpu in container c of Pod noreq-"),
        "{message}"
    );
    assert_eq!(condition(&h, "AbleToScale").unwrap().1, "SucceededGetScale");
    assert_eq!(spec_replicas(&c.client, "noreq").await, 2);
    let notes = eventually(T, "failure events", || async {
        let n = event_notes(&c.client, "noreq", "FailedComputeMetricsReplicas").await;
        let n: Vec<String> = n
            .into_iter()
            .filter(|n| n.contains("missing request"))
            .collect();
        (!n.is_empty()).then_some(n)
    })
    .await;
    assert!(notes[0].starts_with("invalid metrics (1 invalid out of 1), first error is: failed to get cpu utilization: missing request for cpu in container c of Pod"), "{notes:?}");
}

#[tokio::test]
async fn a_target_without_a_scale_subresource_is_reported() {
    let (c, _metrics) = cluster(100, Duration::from_secs(1)).await;
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(c.client.clone(), "default");
    let cm = serde_json::from_value(json!({"metadata": {"name": "settings"}})).unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let spec = json!({"scaleTargetRef": {"apiVersion": "v1", "kind": "ConfigMap", "name": "settings"},
        "minReplicas": 1, "maxReplicas": 3});
    create_hpa(&c.client, "cm", spec).await.unwrap();
    let h = hpa_until(&c.client, "cm", "AbleToScale=False", |h| {
        condition(h, "AbleToScale").is_some_and(|c| c.0 == "False")
    })
    .await;
    let (_, reason, message) = condition(&h, "AbleToScale").unwrap();
    assert_eq!(reason, "FailedGetScale");
    assert!(
        message.starts_with("the HPA controller was unable to get the target's current scale: "),
        "{message}"
    );
}

#[tokio::test]
async fn bad_hpas_are_refused() {
    let c = TestCluster::start().await;
    let err = create_hpa(&c.client, "bad", cpu_spec("web", 4, 2, 50))
        .await
        .unwrap_err();
    let kube::Error::Api(s) = err else {
        panic!("{err}")
    };
    assert_eq!(s.code, 422);
    assert!(
        s.message.contains(
            "spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`"
        ),
        "{}",
        s.message
    );

    let mut spec = cpu_spec("web", 1, 2, 50);
    spec["metrics"][0]["type"] = json!("Bogus");
    let err = create_hpa(&c.client, "bad", spec).await.unwrap_err();
    let kube::Error::Api(s) = err else {
        panic!("{err}")
    };
    assert_eq!(s.code, 422);
    assert!(
        s.message
            .contains("spec.metrics[0].type: Unsupported value: \"Bogus\""),
        "{}",
        s.message
    );

    let api: Api<HorizontalPodAutoscaler> = Api::namespaced(c.client.clone(), "default");
    assert!(
        api.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}
