//! Pod events (Pulling, Pulled, Created, Started, Killing, BackOff, Unhealthy, FailedMount)
//! written as core/v1 Events by the client toolkit's recorder, reported as the kubelet of
//! one node, without blocking the pod worker.

use skiff_client::events::Reporter;
pub use skiff_client::events::{EventRecorder as Recorder, EventType};

/// A recorder reporting as the kubelet of `node` (`source`, `reportingComponent` and
/// `reportingInstance`).
pub fn recorder(client: kube::Client, node: &str) -> Recorder {
    let reporter = Reporter {
        component: "kubelet".into(),
        instance: Some(node.into()),
        host: Some(node.into()),
    };
    Recorder::core_v1(client, reporter)
}
