//! The cluster DNS server's Prometheus metrics: queries by protocol, responses by code,
//! cache hits and misses, and upstream latency.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolLabel {
    protocol: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RcodeLabel {
    rcode: &'static str,
    /// `cluster` (answered from the index) or `upstream` (forwarded or from the cache).
    source: &'static str,
}

/// The counters of one DNS server.
pub struct DnsMetrics {
    registry: Registry,
    queries: Family<ProtocolLabel, Counter>,
    responses: Family<RcodeLabel, Counter>,
    cache_hits: Counter,
    cache_misses: Counter,
    upstream_errors: Counter,
    upstream_latency: Histogram,
}

impl Default for DnsMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("skiff_dns");
        let queries = Family::<ProtocolLabel, Counter>::default();
        let responses = Family::<RcodeLabel, Counter>::default();
        let cache_hits = Counter::default();
        let cache_misses = Counter::default();
        let upstream_errors = Counter::default();
        let upstream_latency = Histogram::new(
            [
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]
            .into_iter(),
        );
        registry.register("queries", "DNS queries received", queries.clone());
        registry.register(
            "responses",
            "DNS responses sent, by response code",
            responses.clone(),
        );
        registry.register(
            "cache_hits",
            "Upstream answers served from the cache",
            cache_hits.clone(),
        );
        registry.register(
            "cache_misses",
            "Queries forwarded to an upstream resolver",
            cache_misses.clone(),
        );
        registry.register(
            "upstream_errors",
            "Forwarded queries no upstream resolver answered",
            upstream_errors.clone(),
        );
        registry.register(
            "upstream_duration_seconds",
            "Time an upstream resolver took to answer",
            upstream_latency.clone(),
        );
        DnsMetrics {
            registry,
            queries,
            responses,
            cache_hits,
            cache_misses,
            upstream_errors,
            upstream_latency,
        }
    }
}

impl DnsMetrics {
    /// Counts a query received over `protocol` (`udp`, `tcp`).
    pub fn query(&self, protocol: &'static str) {
        self.queries
            .get_or_create(&ProtocolLabel { protocol })
            .inc();
    }

    /// Counts a response with `rcode` from the index (`cluster`) or upstream.
    pub fn response(&self, rcode: &'static str, source: &'static str) {
        self.responses
            .get_or_create(&RcodeLabel { rcode, source })
            .inc();
    }

    /// Counts a cache hit or miss.
    pub fn cache(&self, hit: bool) {
        if hit {
            self.cache_hits.inc();
        } else {
            self.cache_misses.inc();
        }
    }

    /// Records one upstream exchange of `seconds`, or a failed one.
    pub fn upstream(&self, seconds: Option<f64>) {
        match seconds {
            Some(s) => self.upstream_latency.observe(s),
            None => {
                self.upstream_errors.inc();
            }
        }
    }

    /// The metrics in the Prometheus text format.
    pub fn metrics_text(&self) -> String {
        crate::metrics::component_text(&self.registry)
    }
}
