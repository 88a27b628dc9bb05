//! Prometheus metrics of the controller-manager: reconciles, reconcile errors and reconcile
//! duration per controller, shared process-wide so the server can render them on /metrics.

use std::future::Future;
use std::sync::{LazyLock, Mutex};
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    controller: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabels {
    controller: String,
}

/// Reconcile metrics of every controller.
pub struct ControllerMetrics {
    registry: Mutex<Registry>,
    reconciles: Family<ResultLabels, Counter>,
    errors: Family<ControllerLabels, Counter>,
    duration: Family<ControllerLabels, Histogram>,
}

impl Default for ControllerMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ControllerMetrics {
    /// A fresh registry.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let reconciles = Family::<ResultLabels, Counter>::default();
        let errors = Family::<ControllerLabels, Counter>::default();
        let duration = Family::<ControllerLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 15))
        });
        registry.register(
            "controller_reconcile",
            "Reconciles per controller and result (success or error)",
            reconciles.clone(),
        );
        registry.register(
            "controller_reconcile_errors",
            "Reconciles per controller that returned an error",
            errors.clone(),
        );
        registry.register(
            "controller_reconcile_duration_seconds",
            "Time per reconcile, per controller",
            duration.clone(),
        );
        ControllerMetrics {
            registry: Mutex::new(registry),
            reconciles,
            errors,
            duration,
        }
    }

    /// Records one reconcile of `controller` that took `seconds`.
    pub fn observe(&self, controller: &str, ok: bool, seconds: f64) {
        let result = if ok { "success" } else { "error" };
        self.reconciles
            .get_or_create(&ResultLabels {
                controller: controller.into(),
                result: result.into(),
            })
            .inc();
        let c = ControllerLabels {
            controller: controller.into(),
        };
        if !ok {
            self.errors.get_or_create(&c).inc();
        }
        self.duration.get_or_create(&c).observe(seconds);
    }

    /// The Prometheus text exposition (ends with `# EOF`).
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry.lock().expect("metrics lock")).expect("metrics encode");
        out
    }
}

/// The process-wide metrics every controller records into.
pub static METRICS: LazyLock<ControllerMetrics> = LazyLock::new(ControllerMetrics::new);

/// The controller-manager's metrics in Prometheus text format.
pub fn metrics_text() -> String {
    METRICS.render()
}

/// Runs one reconcile of `controller`, recording its outcome and duration.
pub async fn timed<T, E>(
    controller: &str,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let start = Instant::now();
    let out = fut.await;
    METRICS.observe(controller, out.is_ok(), start.elapsed().as_secs_f64());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_successes_errors_and_durations_per_controller() {
        let m = ControllerMetrics::new();
        m.observe("daemonset", true, 0.002);
        m.observe("daemonset", false, 0.5);
        m.observe("replicaset", true, 0.001);
        let text = m.render();
        assert!(
            text.contains(
                r#"controller_reconcile_total{controller="daemonset",result="success"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"controller_reconcile_total{controller="daemonset",result="error"} 1"#)
        );
        assert!(text.contains(r#"controller_reconcile_errors_total{controller="daemonset"} 1"#));
        assert!(!text.contains(r#"controller_reconcile_errors_total{controller="replicaset"}"#));
        assert!(
            text.contains(
                r#"controller_reconcile_duration_seconds_count{controller="daemonset"} 2"#
            )
        );

        let r: Result<(), &str> = timed("metrics-test", async { Err("boom") }).await;
        assert!(r.is_err());
        assert!(
            metrics_text()
                .contains(r#"controller_reconcile_errors_total{controller="metrics-test"} 1"#)
        );
    }
}
