//! The HTTP side of `metrics.k8s.io/v1beta1`: discovery documents, and get and list of
//! NodeMetrics (`nodes`) and PodMetrics (`pods`, namespaced) with label and field
//! selectors, answered and worded as metrics-server does. Read-only: other verbs get 405.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::Method;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use skiff_api::fields::FieldSelector;
use skiff_api::labels::Selector;

use super::{PodUsage, Usage};
use crate::error::ApiError;
use crate::handlers::object::read_core;
use crate::handlers::{ApiState, json_response};

/// The served group.
pub const GROUP: &str = "metrics.k8s.io";
/// The served version.
pub const VERSION: &str = "v1beta1";
const GROUP_VERSION: &str = "metrics.k8s.io/v1beta1";

/// The group's entry in `/apis` (an APIGroup body).
pub fn api_group() -> Value {
    let version = json!({"groupVersion": GROUP_VERSION, "version": VERSION});
    json!({"name": GROUP, "versions": [version.clone()], "preferredVersion": version})
}

/// The `metrics.k8s.io/v1beta1` APIResourceList.
pub fn resource_list() -> Value {
    let entry = |name: &str, kind: &str, namespaced: bool| {
        json!({"name": name, "singularName": "", "namespaced": namespaced, "kind": kind,
               "verbs": ["get", "list"]})
    };
    json!({
        "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": GROUP_VERSION,
        "resources": [entry("nodes", "NodeMetrics", false), entry("pods", "PodMetrics", true)],
    })
}

/// What a path under `/apis/metrics.k8s.io` addresses.
#[derive(Debug, PartialEq, Eq)]
enum Target<'a> {
    Group,
    Resources,
    Nodes(Option<&'a str>),
    /// (namespace or all, name)
    Pods(Option<&'a str>, Option<&'a str>),
}

fn target<'a>(segs: &[&'a str]) -> Option<Target<'a>> {
    Some(match segs {
        [] => Target::Group,
        [VERSION] => Target::Resources,
        [VERSION, "nodes"] => Target::Nodes(None),
        [VERSION, "nodes", name] => Target::Nodes(Some(name)),
        [VERSION, "pods"] => Target::Pods(None, None),
        [VERSION, "namespaces", ns, "pods"] => Target::Pods(Some(ns), None),
        [VERSION, "namespaces", ns, "pods", name] => Target::Pods(Some(ns), Some(name)),
        _ => return None,
    })
}

/// Answers a request whose path is under `/apis/metrics.k8s.io`; `None` for other paths.
pub async fn serve(
    state: &ApiState,
    method: &Method,
    segs: &[&str],
    query: Option<&str>,
) -> Option<Response> {
    let rest = match segs {
        ["apis", GROUP, rest @ ..] => rest,
        _ => return None,
    };
    Some(
        answer(state, method, rest, query)
            .await
            .unwrap_or_else(IntoResponse::into_response),
    )
}

/// The selectors of a list request.
struct ListQuery {
    labels: Selector,
    fields: FieldSelector,
}

fn list_query(query: Option<&str>) -> Result<(ListQuery, bool), ApiError> {
    let mut labels = Selector::everything();
    let mut fields = FieldSelector::default();
    let mut watch = false;
    for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match &*k {
            "labelSelector" => {
                labels = Selector::parse(&v).map_err(|e| ApiError::bad_request(e.0))?;
            }
            "fieldSelector" => {
                fields = FieldSelector::parse(&v).map_err(|e| ApiError::bad_request(e.0))?;
            }
            "watch" => watch = v == "true" || v == "1",
            _ => {}
        }
    }
    Ok((ListQuery { labels, fields }, watch))
}

async fn answer(
    state: &ApiState,
    method: &Method,
    rest: &[&str],
    query: Option<&str>,
) -> Result<Response, ApiError> {
    let target = target(rest).ok_or_else(|| {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    })?;
    if method != Method::GET {
        return Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({} is read-only)",
            GROUP
        )));
    }
    let (q, watch) = list_query(query)?;
    if watch {
        return Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ));
    }
    let body = match target {
        Target::Group => {
            let mut g = api_group();
            g["kind"] = json!("APIGroup");
            g["apiVersion"] = json!("v1");
            g
        }
        Target::Resources => resource_list(),
        Target::Nodes(Some(name)) => get_node(state, name).await?,
        Target::Nodes(None) => list_nodes(state, &q).await,
        Target::Pods(Some(ns), Some(name)) => get_pod(state, ns, name).await?,
        Target::Pods(ns, _) => list_pods(state, ns, &q).await,
    };
    Ok(json_response(200, &body))
}

/// Kubernetes' canonical form of a CPU quantity given in nanocores.
pub fn cpu_quantity(nano: u64) -> String {
    for (div, suffix) in [(1_000_000_000, ""), (1_000_000, "m"), (1_000, "u")] {
        if nano % div == 0 {
            return format!("{}{suffix}", nano / div);
        }
    }
    format!("{nano}n")
}

/// Kubernetes' canonical form of a binary (memory) quantity given in bytes.
pub fn memory_quantity(bytes: u64) -> String {
    if bytes == 0 {
        return "0".into();
    }
    for (shift, suffix) in [
        (60, "Ei"),
        (50, "Pi"),
        (40, "Ti"),
        (30, "Gi"),
        (20, "Mi"),
        (10, "Ki"),
    ] {
        if bytes % (1u64 << shift) == 0 {
            return format!("{}{suffix}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// A duration as Go's `time.Duration.String` writes it (metav1.Duration on the wire).
pub fn go_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".into();
    }
    let frac = |v: u128, unit: u128| {
        let whole = v / unit;
        let rest = v % unit;
        if rest == 0 {
            return whole.to_string();
        }
        let digits = unit.ilog10() as usize;
        let s = format!("{whole}.{rest:0digits$}");
        s.trim_end_matches('0').to_string()
    };
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    if ns < 1_000_000 {
        return format!("{}µs", frac(ns, 1_000));
    }
    if ns < 1_000_000_000 {
        return format!("{}ms", frac(ns, 1_000_000));
    }
    let secs = ns / 1_000_000_000;
    let (h, m) = (secs / 3600, secs % 3600 / 60);
    let s = frac(ns % 60_000_000_000, 1_000_000_000);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, m) => format!("{m}m{s}s"),
        (h, m) => format!("{h}h{m}m{s}s"),
    }
}

fn usage_json(u: &Usage) -> Value {
    json!({"cpu": cpu_quantity(u.nano_cores), "memory": memory_quantity(u.memory)})
}

fn seconds(t: jiff::Timestamp) -> String {
    jiff::Timestamp::from_second(t.as_second())
        .unwrap_or(t)
        .to_string()
}

fn meta(object: &Value, namespaced: bool) -> Value {
    let m = &object["metadata"];
    let mut out = Map::new();
    out.insert("name".into(), m["name"].clone());
    if namespaced {
        out.insert("namespace".into(), m["namespace"].clone());
    }
    out.insert(
        "creationTimestamp".into(),
        json!(seconds(jiff::Timestamp::now())),
    );
    if let Some(labels) = m.get("labels").filter(|l| l.is_object()) {
        out.insert("labels".into(), labels.clone());
    }
    Value::Object(out)
}

fn node_metrics(node: &Value, u: &Usage) -> Value {
    json!({
        "kind": "NodeMetrics", "apiVersion": GROUP_VERSION, "metadata": meta(node, false),
        "timestamp": seconds(u.timestamp), "window": go_duration(u.window), "usage": usage_json(u),
    })
}

fn pod_metrics(pod: &Value, u: &PodUsage) -> Value {
    let (timestamp, window) = u
        .containers
        .first()
        .map(|(_, c)| (c.timestamp, c.window))
        .unwrap_or((jiff::Timestamp::now(), Duration::ZERO));
    let containers: Vec<Value> = u
        .containers
        .iter()
        .map(|(name, c)| json!({"name": name, "usage": usage_json(c)}))
        .collect();
    json!({
        "kind": "PodMetrics", "apiVersion": GROUP_VERSION, "metadata": meta(pod, true),
        "timestamp": seconds(timestamp), "window": go_duration(window), "containers": containers,
    })
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"kind": kind, "apiVersion": GROUP_VERSION, "metadata": {}, "items": items})
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// The objects of a core kind from its watch cache.
async fn snapshot(state: &ApiState, plural: &str) -> Vec<std::sync::Arc<Value>> {
    let Some(info) = skiff_api::resources::find("", "v1", plural) else {
        return Vec::new();
    };
    match state.caches.get(&info.key_prefix()) {
        Some(cache) => cache.snapshot().await.0,
        None => Vec::new(),
    }
}

fn selected(object: &Value, q: &ListQuery) -> bool {
    let labels: BTreeMap<String, String> = object
        .pointer("/metadata/labels")
        .and_then(|l| serde_json::from_value(l.clone()).ok())
        .unwrap_or_default();
    q.labels.matches(&labels)
        && q.fields.matches(|f| match f {
            "metadata.name" => Some(str_at(object, "/metadata/name").to_string()),
            "metadata.namespace" => Some(str_at(object, "/metadata/namespace").to_string()),
            _ => None,
        })
}

async fn list_nodes(state: &ApiState, q: &ListQuery) -> Value {
    let metrics = &state.resource_metrics;
    let mut items: Vec<Value> = snapshot(state, "nodes")
        .await
        .iter()
        .filter(|n| selected(n, q))
        .filter_map(|n| {
            let usage = metrics.node_usage(str_at(n, "/metadata/name"))?;
            Some(node_metrics(n, &usage))
        })
        .collect();
    items.sort_by(|a, b| str_at(a, "/metadata/name").cmp(str_at(b, "/metadata/name")));
    list("NodeMetricsList", items)
}

async fn list_pods(state: &ApiState, namespace: Option<&str>, q: &ListQuery) -> Value {
    let metrics = &state.resource_metrics;
    let mut items: Vec<Value> = snapshot(state, "pods")
        .await
        .iter()
        .filter(|p| namespace.is_none_or(|ns| str_at(p, "/metadata/namespace") == ns))
        .filter(|p| selected(p, q))
        .filter_map(|p| {
            let usage = metrics.pod_usage(
                str_at(p, "/spec/nodeName"),
                str_at(p, "/metadata/namespace"),
                str_at(p, "/metadata/name"),
            )?;
            Some(pod_metrics(p, &usage))
        })
        .collect();
    items.sort_by(|a, b| {
        (
            str_at(a, "/metadata/namespace"),
            str_at(a, "/metadata/name"),
        )
            .cmp(&(
                str_at(b, "/metadata/namespace"),
                str_at(b, "/metadata/name"),
            ))
    });
    list("PodMetricsList", items)
}

async fn get_node(state: &ApiState, name: &str) -> Result<Value, ApiError> {
    let node = read_core(state, "nodes", None, name).await?;
    let usage = state
        .resource_metrics
        .node_usage(name)
        .ok_or_else(|| ApiError::not_found(GROUP, "nodemetrics", name))?;
    Ok(node_metrics(&node, &usage))
}

async fn get_pod(state: &ApiState, namespace: &str, name: &str) -> Result<Value, ApiError> {
    // metrics-server names the pod as namespace/name in both of its NotFound answers.
    let key = format!("{namespace}/{name}");
    let pod = read_core(state, "pods", Some(namespace), name)
        .await
        .map_err(|e| match e.code {
            404 => ApiError::not_found("", "pods", &key),
            _ => e,
        })?;
    let usage = state
        .resource_metrics
        .pod_usage(str_at(&pod, "/spec/nodeName"), namespace, name)
        .ok_or_else(|| ApiError::not_found(GROUP, "podmetrics", &key))?;
    Ok(pod_metrics(&pod, &usage))
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn quantities_are_canonical() {
        assert_eq!(cpu_quantity(0), "0");
        assert_eq!(cpu_quantity(1_500_000_000), "1500m");
        assert_eq!(cpu_quantity(2_000_000_000), "2");
        assert_eq!(cpu_quantity(123_456_789), "123456789n");
        assert_eq!(cpu_quantity(5_000), "5u");
        assert_eq!(memory_quantity(2 << 20), "2Mi");
        assert_eq!(memory_quantity(1536), "1536");
        assert_eq!(memory_quantity(3 << 10), "3Ki");
        assert_eq!(memory_quantity(0), "0");
    }

    #[test]
    fn durations_as_go_prints_them() {
        assert_eq!(go_duration(Duration::from_secs(15)), "15s");
        assert_eq!(go_duration(Duration::from_millis(1_500)), "1.5s");
        assert_eq!(go_duration(Duration::from_millis(60_500)), "1m0.5s");
        assert_eq!(go_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(go_duration(Duration::from_secs(3_601)), "1h0m1s");
        assert_eq!(go_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn paths_name_targets() {
        assert_eq!(target(&[]), Some(Target::Group));
        assert_eq!(
            target(&["v1beta1", "nodes", "n1"]),
            Some(Target::Nodes(Some("n1")))
        );
        assert_eq!(
            target(&["v1beta1", "namespaces", "d", "pods"]),
            Some(Target::Pods(Some("d"), None))
        );
        assert_eq!(target(&["v1beta1", "pods", "x"]), None);
        assert_eq!(target(&["v1", "nodes"]), None);
    }
}
