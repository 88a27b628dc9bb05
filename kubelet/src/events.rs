//! Pod events (Pulling, Pulled, Created, Started, Killing, BackOff, Unhealthy, FailedMount)
//! written as core/v1 Events from the kubelet, without blocking the pod worker.

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, PostParams};
use serde_json::json;

/// Event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// `Normal`.
    Normal,
    /// `Warning`.
    Warning,
}

/// Writes events for one node.
#[derive(Clone)]
pub struct Recorder {
    client: kube::Client,
    node: String,
}

impl Recorder {
    /// A recorder reporting as the kubelet of `node`.
    pub fn new(client: kube::Client, node: &str) -> Self {
        Self {
            client,
            node: node.into(),
        }
    }

    /// Records an event about `pod` (and one of its containers) in the background.
    pub fn record(
        &self,
        pod: &Pod,
        container: Option<&str>,
        kind: EventType,
        reason: &str,
        message: String,
    ) {
        let m = &pod.metadata;
        let ns = m.namespace.clone().unwrap_or_else(|| "default".into());
        let name = m.name.clone().unwrap_or_default();
        let now = jiff::Timestamp::now();
        let mut involved = json!({
            "apiVersion": "v1", "kind": "Pod", "namespace": ns, "name": name,
            "uid": m.uid, "resourceVersion": m.resource_version,
        });
        if let Some(c) = container {
            let is_init = pod
                .spec
                .as_ref()
                .and_then(|s| s.init_containers.as_ref())
                .is_some_and(|ics| ics.iter().any(|i| i.name == c));
            let field = if is_init {
                "initContainers"
            } else {
                "containers"
            };
            involved["fieldPath"] = json!(format!("spec.{field}{{{c}}}"));
        }
        let ev = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": format!("{name}.{:x}", now.as_nanosecond()), "namespace": ns},
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "type": match kind { EventType::Normal => "Normal", EventType::Warning => "Warning" },
            "source": {"component": "kubelet", "host": self.node},
            "reportingComponent": "kubelet",
            "reportingInstance": self.node,
            "firstTimestamp": now.to_string(),
            "lastTimestamp": now.to_string(),
            "count": 1,
        });
        let Ok(ev) = serde_json::from_value::<Event>(ev) else {
            return;
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        tokio::spawn(async move {
            if let Err(e) = api.create(&PostParams::default(), &ev).await {
                tracing::debug!(error = %e, "event not recorded");
            }
        });
    }
}
