//! The service proxy's Prometheus metrics, under kube-proxy's names: how long rule syncs
//! take (all, full and partial), when the last one succeeded, how many failed, and how
//! long a change waited for its sync.

use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The datapath is IPv4 (kube-proxy labels these metrics by family).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FamilyLabel {
    ip_family: &'static str,
}

const IPV4: FamilyLabel = FamilyLabel { ip_family: "IPv4" };

fn sync_buckets() -> Histogram {
    // kube-proxy's: 1 ms doubling, 15 buckets.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// `registry` in the Prometheus text format without the closing `# EOF`: a node
/// component's metrics, served after the kubelet's on the node's `/metrics`.
pub fn component_text(registry: &Registry) -> String {
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, registry).is_err() {
        out.clear();
    }
    if let Some(body) = out.strip_suffix("# EOF\n") {
        out.truncate(body.len());
    }
    out
}

/// The metrics of one service proxy.
pub struct ProxyMetrics {
    registry: Registry,
    sync: Histogram,
    full: Histogram,
    partial: Histogram,
    pending: Histogram,
    last_sync: Family<FamilyLabel, Gauge<f64, AtomicU64>>,
    failures: Family<FamilyLabel, Counter>,
}

impl Default for ProxyMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("kubeproxy");
        let (sync, full, partial, pending) = (
            sync_buckets(),
            sync_buckets(),
            sync_buckets(),
            sync_buckets(),
        );
        let last_sync = Family::<FamilyLabel, Gauge<f64, AtomicU64>>::default();
        let failures = Family::<FamilyLabel, Counter>::default();
        registry.register(
            "sync_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds",
            sync.clone(),
        );
        registry.register(
            "sync_full_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds for full resyncs",
            full.clone(),
        );
        registry.register(
            "sync_partial_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds for partial resyncs",
            partial.clone(),
        );
        registry.register(
            "sync_proxy_rules_pending_duration_seconds",
            "Time from the first unsynced change to the start of the sync that applied it",
            pending.clone(),
        );
        registry.register(
            "sync_proxy_rules_last_timestamp_seconds",
            "The last time proxy rules were successfully synced",
            last_sync.clone(),
        );
        // prometheus-client appends `_total` to counters.
        registry.register(
            "sync_proxy_rules_nftables_sync_failures",
            "Cumulative proxy nftables sync failures",
            failures.clone(),
        );
        ProxyMetrics {
            registry,
            sync,
            full,
            partial,
            pending,
            last_sync,
            failures,
        }
    }
}

impl ProxyMetrics {
    /// Records a successful sync (`full` or partial) that took `took`, started after its
    /// oldest change had waited `waited`.
    pub fn synced(&self, full: bool, took: Duration, waited: Option<Duration>) {
        let s = took.as_secs_f64();
        self.sync.observe(s);
        if full { &self.full } else { &self.partial }.observe(s);
        if let Some(w) = waited {
            self.pending.observe(w.as_secs_f64());
        }
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.last_sync.get_or_create(&IPV4).set(now);
    }

    /// Counts a refused transaction.
    pub fn sync_failed(&self) {
        self.failures.get_or_create(&IPV4).inc();
    }

    /// The metrics in the Prometheus text format, without the closing `# EOF` (they are
    /// served beside other components').
    pub fn metrics_text(&self) -> String {
        component_text(&self.registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str, prefix: &str) -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(prefix))?
            .rsplit(' ')
            .next()?
            .parse()
            .ok()
    }

    #[test]
    fn syncs_and_failures_are_counted_under_kube_proxys_names() {
        let m = ProxyMetrics::default();
        m.synced(true, Duration::from_millis(30), None);
        m.synced(
            false,
            Duration::from_millis(2),
            Some(Duration::from_millis(15)),
        );
        m.sync_failed();
        let text = m.metrics_text();
        assert_eq!(
            sample(&text, "kubeproxy_sync_proxy_rules_duration_seconds_count"),
            Some(2.0)
        );
        assert_eq!(
            sample(
                &text,
                "kubeproxy_sync_full_proxy_rules_duration_seconds_count"
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                "kubeproxy_sync_partial_proxy_rules_duration_seconds_count"
            ),
            Some(1.0)
        );
        let sum = sample(
            &text,
            "kubeproxy_sync_full_proxy_rules_duration_seconds_sum",
        )
        .unwrap();
        assert!((sum - 0.03).abs() < 1e-9, "{sum}");
        assert_eq!(
            sample(
                &text,
                "kubeproxy_sync_proxy_rules_pending_duration_seconds_count"
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                "kubeproxy_sync_proxy_rules_nftables_sync_failures_total{ip_family=\"IPv4\"}"
            ),
            Some(1.0)
        );
        let last = sample(
            &text,
            "kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family=\"IPv4\"}",
        )
        .unwrap();
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!((now - last).abs() < 60.0, "{last} vs {now}");
        assert!(!text.contains("# EOF"));
    }
}
