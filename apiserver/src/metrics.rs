//! Prometheus metrics of the API server: request counts and latency per verb and resource,
//! open watches per resource, and watchers per watch cache.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Renders one in-process component's exposition (OpenMetrics text).
pub type ComponentMetrics = Arc<dyn Fn() -> String + Send + Sync>;

/// The components running in this process beside the API server (the scheduler and the
/// controller-manager of `skiff server`), whose metrics `/metrics` serves after its own.
static COMPONENTS: RwLock<Vec<ComponentMetrics>> = RwLock::new(Vec::new());

/// Adds a component whose metrics the API server's `/metrics` appends to its own.
pub fn add_component(render: ComponentMetrics) {
    COMPONENTS
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .push(render);
}

/// Every added component's samples, each without its closing `# EOF`.
fn components_text() -> String {
    let components = COMPONENTS.read().unwrap_or_else(|e| e.into_inner());
    components
        .iter()
        .map(|render| {
            let text = render();
            let body = text.trim_end().trim_end_matches("# EOF").trim_end();
            if body.is_empty() {
                String::new()
            } else {
                format!("{body}\n")
            }
        })
        .collect()
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    verb: String,
    resource: String,
    subresource: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    verb: String,
    resource: String,
    subresource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WatchLabels {
    resource: String,
}

/// The server's metrics. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<LatencyLabels, Histogram>,
    watches: Family<WatchLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Decrements the open-watch gauge when a watch ends.
pub struct WatchGuard {
    gauge: Gauge,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

impl Metrics {
    /// A fresh registry with the API server's metrics.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<LatencyLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        let watches = Family::<WatchLabels, Gauge>::default();
        registry.register(
            "apiserver_request",
            "Requests by verb, resource and HTTP code",
            requests.clone(),
        );
        registry.register(
            "apiserver_request_duration_seconds",
            "Request latency by verb and resource",
            latency.clone(),
        );
        registry.register(
            "apiserver_longrunning_watches",
            "Open watch requests by resource",
            watches.clone(),
        );
        Self {
            registry: Arc::new(Mutex::new(registry)),
            requests,
            latency,
            watches,
        }
    }

    /// Records one finished request. Watches are recorded when they start.
    pub fn observe(
        &self,
        verb: &str,
        resource: &str,
        subresource: &str,
        code: u16,
        elapsed: Duration,
    ) {
        self.requests
            .get_or_create(&RequestLabels {
                verb: verb.into(),
                resource: resource.into(),
                subresource: subresource.into(),
                code: code.to_string(),
            })
            .inc();
        if verb != "watch" {
            self.latency
                .get_or_create(&LatencyLabels {
                    verb: verb.into(),
                    resource: resource.into(),
                    subresource: subresource.into(),
                })
                .observe(elapsed.as_secs_f64());
        }
    }

    /// Counts an open watch until the guard drops.
    pub fn watch_started(&self, resource: &str) -> WatchGuard {
        let gauge = self
            .watches
            .get_or_create(&WatchLabels {
                resource: resource.into(),
            })
            .clone();
        gauge.inc();
        WatchGuard { gauge }
    }

    /// The text exposition, plus watchers per watch cache.
    pub fn render(&self, cache_watchers: &[(String, usize)]) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry.lock().expect("metrics lock")).expect("metrics encode");
        let body = out.trim_end().trim_end_matches("# EOF").to_string();
        let mut s = body;
        s.push_str("# HELP apiserver_watch_cache_watchers Watchers subscribed to each watch cache.\n# TYPE apiserver_watch_cache_watchers gauge\n");
        let mut sorted = cache_watchers.to_vec();
        sorted.sort();
        for (prefix, n) in sorted {
            s.push_str(&format!(
                "apiserver_watch_cache_watchers{{prefix=\"{prefix}\"}} {n}\n"
            ));
        }
        s.push_str(&components_text());
        s.push_str("# EOF\n");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_requests_and_watches() {
        let m = Metrics::new();
        m.observe("get", "pods", "", 200, Duration::from_millis(3));
        let g = m.watch_started("pods");
        let text = m.render(&[("/registry/core/pods/".into(), 1)]);
        assert!(text.contains("apiserver_request_total{verb=\"get\",resource=\"pods\",subresource=\"\",code=\"200\"} 1"), "{text}");
        assert!(
            text.contains("apiserver_longrunning_watches{resource=\"pods\"} 1"),
            "{text}"
        );
        assert!(text.contains("apiserver_watch_cache_watchers{prefix=\"/registry/core/pods/\"} 1"));
        drop(g);
        assert!(
            m.render(&[])
                .contains("apiserver_longrunning_watches{resource=\"pods\"} 0")
        );
        // A component in the same process: its samples before the one closing marker.
        add_component(Arc::new(|| {
            "# TYPE scheduler_x counter\nscheduler_x_total 3\n# EOF\n".into()
        }));
        let text = m.render(&[]);
        assert!(text.ends_with("scheduler_x_total 3\n# EOF\n"), "{text}");
        assert_eq!(text.matches("# EOF").count(), 1, "{text}");
    }
}
