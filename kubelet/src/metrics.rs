//! The kubelet's Prometheus metrics, served on the node server's `/metrics`: pod start
//! latency (`kubelet_pod_start_duration_seconds`), probe results (`prober_probe_total`)
//! and the latency, count and errors of every runtime operation
//! (`kubelet_runtime_operations_*` by `operation_type`), under the kubelet's own names,
//! labels and buckets. One [`KubeletMetrics`] per kubelet, so hollow nodes sharing a
//! process keep their own figures.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use skiff_runtime::cgroups::CgroupStats;
use skiff_runtime::container::{AttachSession, ExecOutput, ExecRequest, ProcessSpec};
use skiff_runtime::pod::{
    ContainerConfig, ContainerStatus, PodRuntime, PodSandboxConfig, Result, SandboxStatus,
};

use crate::probes::ProbeKind;

/// The content type of [`KubeletMetrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The kubelet's `PodStartDuration` buckets, in seconds.
const POD_START_BUCKETS: &[f64] = &[
    0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 20.0, 30.0, 45.0, 60.0, 120.0, 180.0, 240.0,
    300.0, 360.0, 480.0, 600.0, 900.0, 1200.0, 1800.0, 2700.0, 3600.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProbeLabels {
    probe_type: String,
    result: String,
    container: String,
    pod: String,
    namespace: String,
    pod_uid: String,
}

/// One probe run, for [`KubeletMetrics::probe`].
pub struct ProbeRun<'a> {
    /// Which probe.
    pub kind: ProbeKind,
    /// Whether it succeeded.
    pub ok: bool,
    /// Container name.
    pub container: &'a str,
    /// Pod name.
    pub pod: &'a str,
    /// Pod namespace.
    pub namespace: &'a str,
    /// Pod UID.
    pub pod_uid: &'a str,
}

/// Renders another node component's metrics (the cluster DNS, the service proxy) in the
/// Prometheus text format, without a closing `# EOF`.
pub type ComponentMetrics = Arc<dyn Fn() -> String + Send + Sync>;

/// One kubelet's metrics.
pub struct KubeletMetrics {
    registry: Mutex<Registry>,
    /// The node's other components, rendered after the kubelet's own samples.
    components: Mutex<Vec<ComponentMetrics>>,
    pod_start: Histogram,
    probes: Family<ProbeLabels, Counter>,
    /// The probe label sets recorded per pod UID, to drop when the pod goes.
    probe_keys: Mutex<HashMap<String, HashSet<ProbeLabels>>>,
    operations: Family<OperationLabels, Counter>,
    operation_errors: Family<OperationLabels, Counter>,
    operation_duration: Family<OperationLabels, Histogram>,
}

impl Default for KubeletMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl KubeletMetrics {
    /// Fresh metrics in their own registry.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let pod_start = Histogram::new(POD_START_BUCKETS.iter().copied());
        let probes = Family::<ProbeLabels, Counter>::default();
        let operations = Family::<OperationLabels, Counter>::default();
        let operation_errors = Family::<OperationLabels, Counter>::default();
        let operation_duration = Family::<OperationLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.5, 14))
        });
        registry.register(
            "kubelet_pod_start_duration_seconds",
            "Duration in seconds from kubelet seeing a pod for the first time to the pod starting to run",
            pod_start.clone(),
        );
        registry.register(
            "prober_probe",
            "Cumulative number of a liveness, readiness or startup probe for a container by result.",
            probes.clone(),
        );
        registry.register(
            "kubelet_runtime_operations",
            "Cumulative number of runtime operations by operation type.",
            operations.clone(),
        );
        registry.register(
            "kubelet_runtime_operations_errors",
            "Cumulative number of runtime operation errors by operation type.",
            operation_errors.clone(),
        );
        registry.register(
            "kubelet_runtime_operations_duration_seconds",
            "Duration in seconds of runtime operations. Broken down by operation type.",
            operation_duration.clone(),
        );
        Self {
            registry: Mutex::new(registry),
            components: Mutex::default(),
            pod_start,
            probes,
            probe_keys: Mutex::default(),
            operations,
            operation_errors,
            operation_duration,
        }
    }

    /// A pod first seen `since` ago reached Running.
    pub fn pod_started(&self, since: Duration) {
        self.pod_start.observe(since.as_secs_f64());
    }

    /// One probe run.
    pub fn probe(&self, run: ProbeRun<'_>) {
        let labels = ProbeLabels {
            probe_type: run.kind.title().into(),
            result: if run.ok { "successful" } else { "failed" }.into(),
            container: run.container.into(),
            pod: run.pod.into(),
            namespace: run.namespace.into(),
            pod_uid: run.pod_uid.into(),
        };
        self.probes.get_or_create(&labels).inc();
        self.probe_keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(labels.pod_uid.clone())
            .or_default()
            .insert(labels);
    }

    /// Forgets the probe series of a pod that left the node (as the kubelet does when
    /// its prober workers stop).
    pub fn forget_pod(&self, pod_uid: &str) {
        let keys = self
            .probe_keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(pod_uid)
            .unwrap_or_default();
        for k in keys {
            self.probes.remove(&k);
        }
    }

    /// One runtime operation of `operation_type` that took `elapsed`.
    pub fn operation(&self, operation_type: &str, elapsed: Duration, ok: bool) {
        let l = OperationLabels {
            operation_type: operation_type.into(),
        };
        self.operations.get_or_create(&l).inc();
        if !ok {
            self.operation_errors.get_or_create(&l).inc();
        }
        self.operation_duration
            .get_or_create(&l)
            .observe(elapsed.as_secs_f64());
    }

    /// The OpenMetrics text exposition (ends with `# EOF`).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &registry);
        drop(registry);
        let components = self.components.lock().unwrap_or_else(|e| e.into_inner());
        if components.is_empty() {
            return out;
        }
        let mut body = out.strip_suffix("# EOF\n").unwrap_or(&out).to_string();
        for render in components.iter() {
            let text = render();
            let text = text.trim_end().trim_end_matches("# EOF").trim_end();
            if !text.is_empty() {
                body.push_str(text);
                body.push('\n');
            }
        }
        body.push_str("# EOF\n");
        body
    }

    /// Adds a node component whose metrics [`KubeletMetrics::render`] appends to the
    /// kubelet's own (one `/metrics` per node, as the agent is one process).
    pub fn add_component(&self, render: ComponentMetrics) {
        self.components
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(render);
    }
}

/// A [`PodRuntime`] that records every call's latency and outcome under the kubelet's
/// operation types (its `instrumentedRuntimeService`). Waits for exit, log paths and
/// interactive sessions (exec and attach streams, which last as long as the user keeps them) pass
/// through unrecorded.
pub struct InstrumentedRuntime {
    inner: Arc<dyn PodRuntime>,
    metrics: Arc<KubeletMetrics>,
}

impl InstrumentedRuntime {
    /// Wraps `inner`, recording into `metrics`.
    pub fn new(inner: Arc<dyn PodRuntime>, metrics: Arc<KubeletMetrics>) -> Self {
        Self { inner, metrics }
    }

    async fn timed<T>(&self, op: &str, fut: impl Future<Output = Result<T>>) -> Result<T> {
        let start = Instant::now();
        let out = fut.await;
        self.metrics.operation(op, start.elapsed(), out.is_ok());
        out
    }
}

#[async_trait::async_trait]
impl PodRuntime for InstrumentedRuntime {
    async fn run_pod_sandbox(&self, config: PodSandboxConfig) -> Result<String> {
        self.timed("run_podsandbox", self.inner.run_pod_sandbox(config))
            .await
    }
    async fn stop_pod_sandbox(&self, id: &str) -> Result<()> {
        self.timed("stop_podsandbox", self.inner.stop_pod_sandbox(id))
            .await
    }
    async fn remove_pod_sandbox(&self, id: &str) -> Result<()> {
        self.timed("remove_podsandbox", self.inner.remove_pod_sandbox(id))
            .await
    }
    async fn pod_sandbox_status(&self, id: &str) -> Result<SandboxStatus> {
        self.timed("podsandbox_status", self.inner.pod_sandbox_status(id))
            .await
    }
    async fn list_pod_sandboxes(&self) -> Result<Vec<SandboxStatus>> {
        self.timed("list_podsandbox", self.inner.list_pod_sandboxes())
            .await
    }
    async fn create_container(&self, sandbox_id: &str, config: ContainerConfig) -> Result<String> {
        self.timed(
            "create_container",
            self.inner.create_container(sandbox_id, config),
        )
        .await
    }
    async fn start_container(&self, id: &str) -> Result<()> {
        self.timed("start_container", self.inner.start_container(id))
            .await
    }
    async fn stop_container(&self, id: &str, grace: Duration) -> Result<()> {
        self.timed("stop_container", self.inner.stop_container(id, grace))
            .await
    }
    async fn remove_container(&self, id: &str) -> Result<()> {
        self.timed("remove_container", self.inner.remove_container(id))
            .await
    }
    async fn container_status(&self, id: &str) -> Result<ContainerStatus> {
        self.timed("container_status", self.inner.container_status(id))
            .await
    }
    async fn list_containers(&self) -> Result<Vec<ContainerStatus>> {
        self.timed("list_containers", self.inner.list_containers())
            .await
    }
    async fn wait_container(&self, id: &str, timeout: Option<Duration>) -> Result<Option<i32>> {
        self.inner.wait_container(id, timeout).await
    }
    async fn exec_sync(
        &self,
        id: &str,
        args: Vec<String>,
        timeout: Duration,
    ) -> Result<ExecOutput> {
        self.timed("exec_sync", self.inner.exec_sync(id, args, timeout))
            .await
    }
    async fn exec_process(&self, id: &str, command: Vec<String>) -> Result<ProcessSpec> {
        self.inner.exec_process(id, command).await
    }
    async fn exec(&self, id: &str, request: ExecRequest) -> Result<i32> {
        self.inner.exec(id, request).await
    }
    async fn log_path(&self, id: &str) -> Result<PathBuf> {
        self.inner.log_path(id).await
    }
    async fn attach(&self, id: &str, stdin: bool) -> Result<AttachSession> {
        self.inner.attach(id, stdin).await
    }
    async fn container_stats(&self, id: &str) -> Result<CgroupStats> {
        self.timed("container_stats", self.inner.container_stats(id))
            .await
    }
    async fn port_forward(&self, sandbox_id: &str, port: u16) -> Result<tokio::net::TcpStream> {
        self.timed("port_forward", self.inner.port_forward(sandbox_id, port))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
        text.lines().find(|l| l.starts_with(prefix))
    }

    #[tokio::test]
    async fn runtime_calls_are_counted_and_timed_by_operation_type() {
        let metrics = Arc::new(KubeletMetrics::new());
        let rt = InstrumentedRuntime::new(Arc::new(crate::FakeRuntime::default()), metrics.clone());
        let id = rt
            .run_pod_sandbox(PodSandboxConfig {
                name: "web".into(),
                namespace: "default".into(),
                uid: "u1".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        rt.list_pod_sandboxes().await.unwrap();
        rt.list_pod_sandboxes().await.unwrap();
        assert!(rt.container_status("no-such-container").await.is_err());
        rt.stop_pod_sandbox(&id).await.unwrap();
        let text = metrics.render();
        let op = |name: &str, op: &str| {
            line(&text, &format!("{name}{{operation_type=\"{op}\"}} "))
                .map(|l| l.rsplit(' ').next().unwrap().to_string())
        };
        assert_eq!(
            op("kubelet_runtime_operations_total", "run_podsandbox").as_deref(),
            Some("1")
        );
        assert_eq!(
            op("kubelet_runtime_operations_total", "list_podsandbox").as_deref(),
            Some("2")
        );
        assert_eq!(
            op(
                "kubelet_runtime_operations_errors_total",
                "container_status"
            )
            .as_deref(),
            Some("1")
        );
        assert_eq!(
            op("kubelet_runtime_operations_errors_total", "list_podsandbox"),
            None
        );
        assert_eq!(
            op(
                "kubelet_runtime_operations_duration_seconds_count",
                "stop_podsandbox"
            )
            .as_deref(),
            Some("1")
        );
        // The kubelet's buckets: 5 ms growing by 2.5.
        assert!(
            text.contains(
                "kubelet_runtime_operations_duration_seconds_bucket{le=\"0.005\",operation_type=\"run_podsandbox\"}"
            ) || text.contains(
                "kubelet_runtime_operations_duration_seconds_bucket{operation_type=\"run_podsandbox\",le=\"0.005\"}"
            ),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn other_components_follow_the_kubelets_samples_before_one_closing_marker() {
        let m = KubeletMetrics::new();
        m.pod_started(Duration::from_millis(700));
        m.add_component(Arc::new(|| {
            "# TYPE dns_queries counter\ndns_queries_total 3\n".into()
        }));
        m.add_component(Arc::new(|| "proxy_syncs_total 2\n# EOF\n".into()));
        m.add_component(Arc::new(String::new));
        let text = m.render();
        let dns = text.find("dns_queries_total 3").expect("dns samples");
        let proxy = text.find("proxy_syncs_total 2").expect("proxy samples");
        let own = text
            .find("kubelet_pod_start_duration_seconds_count 1")
            .expect("own samples");
        assert!(own < dns && dns < proxy, "{text}");
        assert_eq!(text.matches("# EOF").count(), 1, "{text}");
        assert!(text.ends_with("proxy_syncs_total 2\n# EOF\n"), "{text}");
    }

    #[test]
    fn pod_starts_and_probe_results_under_the_kubelet_names() {
        let m = KubeletMetrics::new();
        m.pod_started(Duration::from_millis(1500));
        let run = |kind, ok, uid| ProbeRun {
            kind,
            ok,
            container: "app",
            pod: "web",
            namespace: "default",
            pod_uid: uid,
        };
        m.probe(run(ProbeKind::Readiness, true, "u1"));
        m.probe(run(ProbeKind::Readiness, true, "u1"));
        m.probe(run(ProbeKind::Liveness, false, "u1"));
        m.probe(run(ProbeKind::Readiness, true, "u2"));
        let text = m.render();
        assert!(
            text.contains("kubelet_pod_start_duration_seconds_bucket{le=\"1.0\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("kubelet_pod_start_duration_seconds_bucket{le=\"2.0\"} 1"),
            "{text}"
        );
        assert!(text.contains("kubelet_pod_start_duration_seconds_count 1"));
        assert!(
            text.contains(
                "prober_probe_total{probe_type=\"Readiness\",result=\"successful\",container=\"app\",pod=\"web\",namespace=\"default\",pod_uid=\"u1\"} 2"
            ),
            "{text}"
        );
        assert!(text.contains(
            "prober_probe_total{probe_type=\"Liveness\",result=\"failed\",container=\"app\",pod=\"web\",namespace=\"default\",pod_uid=\"u1\"} 1"
        ));
        m.forget_pod("u1");
        let text = m.render();
        assert!(!text.contains("pod_uid=\"u1\""), "{text}");
        assert!(text.contains("pod_uid=\"u2\""), "{text}");
    }
}
