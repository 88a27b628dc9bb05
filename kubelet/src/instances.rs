//! Which container instances each pod on this node has: an index the pod workers keep
//! current so that the node server's synchronous [`ContainerLookup`] never waits on the
//! runtime. Everything else the server does (exec, attach, logs, stats) goes to the
//! runtime through [`PodRuntime`].

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use skiff_runtime::pod::PodRuntime;

use crate::metrics::KubeletMetrics;
use crate::server::ContainerLookup;

/// Runtime ids of one container name's instances.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceIds {
    /// The current instance (running or last exited).
    pub current: Option<String>,
    /// The instance before it, kept for `logs --previous`.
    pub previous: Option<String>,
}

#[derive(Debug, Default)]
struct PodEntry {
    uid: String,
    containers: HashMap<String, InstanceIds>,
}

/// Which container instances each pod on this node has, by namespace and pod name.
#[derive(Debug, Default)]
pub struct ContainerIndex {
    pods: RwLock<HashMap<(String, String), PodEntry>>,
}

impl ContainerIndex {
    /// Records pod `namespace/name` (uid `uid`) with its containers' instances; replaces
    /// whatever an older pod of the same name left.
    pub fn publish(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        containers: impl IntoIterator<Item = (String, InstanceIds)>,
    ) {
        let entry = PodEntry {
            uid: uid.into(),
            containers: containers.into_iter().collect(),
        };
        let mut pods = self.pods.write().unwrap_or_else(|e| e.into_inner());
        pods.insert((namespace.into(), name.into()), entry);
    }

    /// Forgets pod `namespace/name` if it is still the one with `uid` (a newer pod of the
    /// same name keeps its entry).
    pub fn remove(&self, namespace: &str, name: &str, uid: &str) {
        let mut pods = self.pods.write().unwrap_or_else(|e| e.into_inner());
        let key = (namespace.to_string(), name.to_string());
        if pods.get(&key).is_some_and(|e| e.uid == uid) {
            pods.remove(&key);
        }
    }

    /// The instances of `container` in pod `namespace/pod`.
    pub fn get(&self, namespace: &str, pod: &str, container: &str) -> Option<InstanceIds> {
        let pods = self.pods.read().unwrap_or_else(|e| e.into_inner());
        pods.get(&(namespace.to_string(), pod.to_string()))?
            .containers
            .get(container)
            .cloned()
    }
}

/// [`ContainerLookup`] over a kubelet's [`ContainerIndex`] and runtime.
pub struct KubeletLookup {
    index: Arc<ContainerIndex>,
    runtime: Arc<dyn PodRuntime>,
    metrics: Option<Arc<KubeletMetrics>>,
}

impl KubeletLookup {
    /// A lookup over `index` and `runtime`.
    pub fn new(index: Arc<ContainerIndex>, runtime: Arc<dyn PodRuntime>) -> Self {
        Self {
            index,
            runtime,
            metrics: None,
        }
    }

    /// The same lookup, serving the kubelet's `metrics` on `/metrics`.
    pub fn with_metrics(mut self, metrics: Arc<KubeletMetrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }
}

impl ContainerLookup for KubeletLookup {
    fn container_id(&self, namespace: &str, pod: &str, container: &str) -> Option<String> {
        self.index.get(namespace, pod, container)?.current
    }

    fn previous_container_id(&self, namespace: &str, pod: &str, container: &str) -> Option<String> {
        self.index.get(namespace, pod, container)?.previous
    }

    fn runtime(&self) -> Arc<dyn PodRuntime> {
        self.runtime.clone()
    }

    fn metrics(&self) -> Option<Arc<KubeletMetrics>> {
        self.metrics.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(current: &str, previous: Option<&str>) -> InstanceIds {
        InstanceIds {
            current: Some(current.into()),
            previous: previous.map(str::to_string),
        }
    }

    #[tokio::test]
    async fn lookups_follow_what_the_worker_published() {
        let index = Arc::new(ContainerIndex::default());
        index.publish(
            "ns",
            "web",
            "u1",
            [("app".to_string(), ids("c2", Some("c1")))],
        );
        let lookup = KubeletLookup::new(index.clone(), Arc::new(crate::FakeRuntime::default()));
        assert_eq!(
            lookup.container_id("ns", "web", "app").as_deref(),
            Some("c2")
        );
        assert_eq!(
            lookup.previous_container_id("ns", "web", "app").as_deref(),
            Some("c1")
        );
        assert_eq!(lookup.container_id("ns", "web", "other"), None);
        assert_eq!(lookup.container_id("other", "web", "app"), None);
        let p =
            crate::server::exec::exec_process(&*lookup.runtime(), "c2", vec!["sh".into()]).await;
        assert_eq!(p.args, ["sh"]);
        assert!(p.env.iter().any(|e| e.starts_with("PATH=")));
    }

    #[test]
    fn removal_by_an_old_pod_keeps_the_new_pod_of_the_same_name() {
        let index = ContainerIndex::default();
        index.publish("ns", "web", "old", [("app".to_string(), ids("a", None))]);
        index.publish("ns", "web", "new", [("app".to_string(), ids("b", None))]);
        index.remove("ns", "web", "old");
        assert_eq!(index.get("ns", "web", "app"), Some(ids("b", None)));
        index.remove("ns", "web", "new");
        assert_eq!(index.get("ns", "web", "app"), None);
    }
}
