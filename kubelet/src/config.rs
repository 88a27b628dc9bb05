//! The kubelet's settings: identity, the runtime and images it drives, node limits, DNS
//! for pods, and the timers (shortened in tests).

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use skiff_runtime::pod::PodRuntime;

use crate::images::ImageService;

/// Version reported as `nodeInfo.kubeletVersion`.
pub const KUBELET_VERSION: &str = concat!("v1.33.0-skiff.", env!("CARGO_PKG_VERSION"));

/// Timers of the kubelet.
#[derive(Debug, Clone)]
pub struct Timers {
    /// How often each pod worker re-checks its containers without being told to.
    pub sync_interval: Duration,
    /// Node status is written at least this often even when nothing changed.
    pub node_status_interval: Duration,
    /// How often the node checks whether its status changed.
    pub node_status_check: Duration,
    /// Lease renewal period.
    pub lease_interval: Duration,
    /// First CrashLoopBackOff delay.
    pub backoff_base: Duration,
    /// Longest CrashLoopBackOff delay.
    pub backoff_max: Duration,
    /// Running this long resets the back-off.
    pub backoff_reset: Duration,
    /// How often configMap, secret and downwardAPI volumes are refreshed.
    pub volume_resync: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            sync_interval: Duration::from_secs(1),
            node_status_interval: Duration::from_secs(60),
            node_status_check: Duration::from_secs(10),
            lease_interval: Duration::from_secs(10),
            backoff_base: Duration::from_secs(10),
            backoff_max: Duration::from_secs(300),
            backoff_reset: Duration::from_secs(600),
            volume_resync: Duration::from_secs(10),
        }
    }
}

/// Everything a [`crate::Kubelet`] is built from.
pub struct KubeletConfig {
    /// The Node's name.
    pub node_name: String,
    /// API client with the node's credentials.
    pub client: kube::Client,
    /// The container runtime.
    pub runtime: Arc<dyn PodRuntime>,
    /// The node's images.
    pub images: Arc<dyn ImageService>,
    /// Kubelet state: pod volumes and container root filesystems.
    pub root_dir: PathBuf,
    /// Maximum pods (default min(110, 10 × cores)).
    pub max_pods: Option<u32>,
    /// Allow `privileged: true` containers.
    pub allow_privileged: bool,
    /// The cluster DNS server given to pods.
    pub cluster_dns: Option<Ipv4Addr>,
    /// Cluster domain (`cluster.local`).
    pub cluster_domain: String,
    /// The node's address (detected when `None`).
    pub node_ip: Option<Ipv4Addr>,
    /// `containerRuntimeVersion` (`skiff://<version>`).
    pub runtime_version: String,
    /// Wait for `spec.podCIDR` before starting sandboxes (false for hollow nodes).
    pub require_pod_cidr: bool,
    /// Extra node labels.
    pub node_labels: std::collections::BTreeMap<String, String>,
    /// Port of the node's HTTPS server, published in the Node status.
    pub kubelet_port: u16,
    /// Timers.
    pub timers: Timers,
}

impl KubeletConfig {
    /// A config with defaults for everything but identity, client, runtime and images.
    pub fn new(
        node_name: impl Into<String>,
        client: kube::Client,
        runtime: Arc<dyn PodRuntime>,
        images: Arc<dyn ImageService>,
        root_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            node_name: node_name.into(),
            client,
            runtime,
            images,
            root_dir: root_dir.into(),
            max_pods: None,
            allow_privileged: false,
            cluster_dns: None,
            cluster_domain: "cluster.local".into(),
            node_ip: None,
            runtime_version: format!("skiff://{}", env!("CARGO_PKG_VERSION")),
            require_pod_cidr: true,
            node_labels: Default::default(),
            kubelet_port: crate::server::DEFAULT_PORT,
            timers: Timers::default(),
        }
    }
}
