//! Where the HPA reads pod usage: the resource metrics API (metrics.k8s.io/v1beta1
//! PodMetrics, listed by label selector) behind [`PodMetricsSource`], so tests can feed
//! their own figures. Also the reduction of a PodMetrics list to one resource's
//! per-pod usage, as Kubernetes' resource metrics client does it.

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use skiff_api::quantity::Quantity;

use super::replica_calc::{PodMetric, PodMetricsInfo};

/// One container's usage in a PodMetrics.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct ContainerMetrics {
    /// The container's name.
    pub name: String,
    /// Usage by resource name (`cpu`, `memory`), as quantities.
    #[serde(default)]
    pub usage: BTreeMap<String, String>,
}

/// The metadata of a PodMetrics the HPA reads.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct PodMetricsMeta {
    /// The pod's name.
    #[serde(default)]
    pub name: String,
}

/// metrics.k8s.io/v1beta1 PodMetrics: one pod's usage over a window.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct PodMetrics {
    /// Names the pod.
    #[serde(default)]
    pub metadata: PodMetricsMeta,
    /// When the sample was taken (the end of the window).
    pub timestamp: Timestamp,
    /// The window the usage was averaged over, as a Go duration (`30s`).
    #[serde(default)]
    pub window: String,
    /// Per-container usage.
    #[serde(default)]
    pub containers: Vec<ContainerMetrics>,
}

#[derive(Debug, Deserialize)]
struct PodMetricsList {
    #[serde(default)]
    items: Vec<PodMetrics>,
}

/// Why pod metrics could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The metrics API answered with an error or could not be reached.
    #[error("unable to fetch metrics from resource metrics API: {0}")]
    Api(#[source] kube::Error),
    /// It answered with no metrics for the selector.
    #[error("no metrics returned from resource metrics API")]
    Empty,
}

/// A source of pod usage for the pods of a namespace matched by a label selector.
pub trait PodMetricsSource: Send + Sync {
    /// The PodMetrics of the pods in `namespace` matching `selector` (a label selector
    /// string, e.g. `app=web`).
    fn pod_metrics<'a>(
        &'a self,
        namespace: &'a str,
        selector: &'a str,
    ) -> BoxFuture<'a, Result<Vec<PodMetrics>, MetricsError>>;
}

/// The resource metrics API served at `/apis/metrics.k8s.io/v1beta1`.
pub struct ResourceMetricsApi {
    client: kube::Client,
}

impl ResourceMetricsApi {
    /// Reads through `client`.
    pub fn new(client: kube::Client) -> Self {
        ResourceMetricsApi { client }
    }
}

impl PodMetricsSource for ResourceMetricsApi {
    fn pod_metrics<'a>(
        &'a self,
        namespace: &'a str,
        selector: &'a str,
    ) -> BoxFuture<'a, Result<Vec<PodMetrics>, MetricsError>> {
        Box::pin(async move {
            let mut url = url_path(namespace);
            url.push_str("?labelSelector=");
            url.push_str(&encode(selector));
            let req = http::Request::get(url)
                .body(Vec::new())
                .map_err(|e| MetricsError::Api(kube::Error::HttpError(e)))?;
            let list: PodMetricsList = self.client.request(req).await.map_err(MetricsError::Api)?;
            Ok(list.items)
        })
    }
}

fn url_path(namespace: &str) -> String {
    format!("/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods")
}

/// Percent-encodes a query value (selectors carry `=`, `,`, `!`, spaces and parentheses).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Parses a Go duration as the metrics API writes it (`30s`, `1m0s`, `1.5s`, `500ms`).
pub fn parse_window(s: &str) -> SignedDuration {
    s.parse::<SignedDuration>()
        .or_else(|_| jiff::fmt::friendly::SpanParser::new().parse_duration(s))
        .unwrap_or(SignedDuration::ZERO)
}

/// `getPodMetrics`/`getContainerMetrics`: each pod's usage of `resource` (millis), summed
/// over its containers or taken from the named one. A pod missing the resource in a
/// container (or the named container) has no metric.
pub fn usage_of(items: &[PodMetrics], resource: &str, container: Option<&str>) -> PodMetricsInfo {
    let mut out = PodMetricsInfo::new();
    for m in items {
        let value_of = |c: &ContainerMetrics| {
            c.usage
                .get(resource)
                .and_then(|q| Quantity::parse(q).ok())
                .map(|q| i64::try_from(q.milli_value()).unwrap_or(i64::MAX))
        };
        let value = match container {
            Some(name) => m
                .containers
                .iter()
                .find(|c| c.name == name)
                .and_then(value_of),
            None if m.containers.is_empty() => None,
            None => m.containers.iter().map(value_of).sum::<Option<i64>>(),
        };
        if let Some(value) = value {
            out.insert(
                m.metadata.name.clone(),
                PodMetric {
                    timestamp: m.timestamp,
                    window: parse_window(&m.window),
                    value,
                },
            );
        }
    }
    out
}
