//! What every pod worker of one kubelet shares: clients, runtime, images, node facts and
//! timers.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;

use skiff_runtime::pod::PodRuntime;

use crate::config::Timers;
use crate::events::Recorder;
use crate::images::ImageService;

/// Shared by the pod workers of one kubelet.
pub struct Shared {
    /// API client.
    pub client: kube::Client,
    /// Container runtime (instrumented: every call lands in `metrics`).
    pub runtime: Arc<dyn PodRuntime>,
    /// Prometheus metrics.
    pub metrics: Arc<crate::metrics::KubeletMetrics>,
    /// Images.
    pub images: Arc<dyn ImageService>,
    /// Kubelet state root.
    pub root_dir: PathBuf,
    /// Privileged containers allowed.
    pub allow_privileged: bool,
    /// Cluster DNS for pods.
    pub cluster_dns: Option<Ipv4Addr>,
    /// Cluster domain.
    pub cluster_domain: String,
    /// The node's IP (`status.hostIP`).
    pub host_ip: String,
    /// Timers.
    pub timers: Timers,
    /// Event recorder.
    pub recorder: Recorder,
    /// Mount tmpfs for memory-backed volumes (off for hollow nodes).
    pub mount_tmpfs: bool,
    /// Node cores and memory bytes (resourceFieldRef defaults).
    pub node_cpu_memory: (u64, u64),
    /// Current and previous container instances per pod, for the node server.
    pub index: Arc<crate::instances::ContainerIndex>,
}
