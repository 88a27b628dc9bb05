//! The collection loop: every resolution, the Summary API of every Ready node, read through
//! the node relay with the API server's kubelet-client identity, several nodes at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;

use crate::handlers::ApiState;
use crate::handlers::node_relay::kubelet_endpoint;

/// How many kubelets are read at the same time.
const PARALLEL_SCRAPES: usize = 64;
/// metrics-server's `--kubelet-request-timeout`.
const MAX_SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);

fn ready(node: &Value) -> bool {
    node.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c["type"].as_str() == Some("Ready") && c["status"].as_str() == Some("True")
            })
        })
}

/// The (name, kubelet endpoint) of every Ready node with an address.
fn targets(nodes: &[Arc<Value>]) -> Vec<(String, SocketAddr)> {
    nodes
        .iter()
        .filter(|n| ready(n))
        .filter_map(|n| {
            let name = n.pointer("/metadata/name")?.as_str()?;
            Some((name.to_string(), kubelet_endpoint(n, name).ok()?))
        })
        .collect()
}

/// One collection round: reads every Ready node and records what it answered; nodes that
/// are gone, not Ready or did not answer lose their metrics.
pub async fn scrape_once(state: &ApiState, timeout: Duration) {
    let Some(relay) = state.kubelet.clone() else {
        return;
    };
    let nodes = match skiff_api::resources::find("", "v1", "nodes")
        .and_then(|info| state.caches.get(&info.key_prefix()))
    {
        Some(cache) => cache.snapshot().await.0,
        None => return,
    };
    let targets = targets(&nodes);
    let metrics = state.resource_metrics.clone();
    metrics.retain_nodes(|n| targets.iter().any(|(t, _)| t == n));
    let mut answers = futures::stream::iter(targets)
        .map(|(name, addr)| {
            let relay = relay.clone();
            async move {
                let got = relay.get(addr, "/stats/summary", timeout).await;
                (name, got)
            }
        })
        .buffer_unordered(PARALLEL_SCRAPES);
    while let Some((name, got)) = answers.next().await {
        match got.map(|body| super::summary::parse(&body)) {
            Ok(Ok(reading)) => metrics.record(&name, reading),
            Ok(Err(e)) => {
                tracing::warn!(node = %name, error = %e, "unreadable stats summary");
                metrics.forget(&name);
            }
            Err(e) => {
                tracing::debug!(node = %name, error = %e.message, "stats summary not read");
                metrics.forget(&name);
            }
        }
    }
}

/// Collects every `resolution` until the task is dropped.
pub async fn run(state: ApiState, resolution: Duration) {
    let timeout = resolution.min(MAX_SCRAPE_TIMEOUT);
    let mut tick = tokio::time::interval(resolution);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        scrape_once(&state, timeout).await;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_ready_nodes_with_an_address_are_read() {
        let node = |name: &str, ready: &str, ip: Option<&str>| {
            let mut n = json!({"metadata": {"name": name}, "status": {
                "conditions": [{"type": "Ready", "status": ready}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10251}}}});
            if let Some(ip) = ip {
                n["status"]["addresses"] = json!([{"type": "InternalIP", "address": ip}]);
            }
            n
        };
        let nodes = [
            node("a", "True", Some("10.0.0.1")),
            node("b", "False", Some("10.0.0.2")),
            node("c", "True", None),
        ]
        .map(Arc::new);
        let t = targets(&nodes);
        assert_eq!(
            t,
            vec![("a".to_string(), "10.0.0.1:10251".parse().unwrap())]
        );
    }
}
