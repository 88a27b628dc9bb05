//! The [`PodRuntime`] trait the kubelet drives (sandboxes, containers, exec, logs, stats)
//! and its types; [`SkiffRuntime`] is the real implementation on this machine.

mod image;
#[cfg(test)]
mod root_tests;
mod runtime;
mod sandbox;

pub use image::{parse_user, process_from_image};
pub use runtime::{RuntimeConfig, SkiffRuntime};
pub use sandbox::{SandboxRecord, SandboxState};

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cgroups::{CgroupStats, Resources};
use crate::container::{
    AttachSession, ContainerError, ExecOutput, MountSpec, ProcessSpec, Status, StdioSpec,
};
use crate::network::{DnsConfig, NetworkError};

/// Errors of the pod runtime, each mapping to a reason the kubelet reports.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A container verb failed.
    #[error(transparent)]
    Container(#[from] ContainerError),
    /// Sandbox networking failed.
    #[error(transparent)]
    Network(#[from] NetworkError),
    /// A cgroup operation failed.
    #[error(transparent)]
    Cgroup(#[from] crate::cgroups::CgroupError),
    /// No such sandbox or container.
    #[error("{kind} {id} not found")]
    NotFound {
        /// `sandbox` or `container`.
        kind: &'static str,
        /// The id.
        id: String,
    },
    /// The request cannot be carried out as given.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The root filesystem could not be prepared.
    #[error("root filesystem: {0}")]
    Rootfs(String),
    /// Sandbox state I/O failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl RuntimeError {
    /// The Kubernetes reason for a failed container operation.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Network(_) => "CreatePodSandboxError",
            Self::Rootfs(_) => "CreateContainerError",
            Self::Invalid(_) => "CreateContainerConfigError",
            Self::NotFound { .. } => "NotFound",
            _ => "CreateContainerError",
        }
    }
}

/// Result of a pod runtime call.
pub type Result<T> = std::result::Result<T, RuntimeError>;

/// What the kubelet asks for when it starts a pod.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PodSandboxConfig {
    /// Pod name.
    pub name: String,
    /// Pod namespace.
    pub namespace: String,
    /// Pod uid.
    pub uid: String,
    /// Hostname inside the pod (defaults to the pod name).
    #[serde(default)]
    pub hostname: String,
    /// Share the node's network namespace.
    #[serde(default)]
    pub host_network: bool,
    /// DNS settings (the node default when `None`).
    #[serde(default)]
    pub dns: Option<DnsConfig>,
    /// Pod-level limits on the pod cgroup.
    #[serde(default)]
    pub resources: Resources,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Where a container's root filesystem comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RootfsSource {
    /// A prepared directory used in place.
    Directory(PathBuf),
    /// Image layers (lowest first, `ImageInfo::layers`), overlaid per container.
    Image {
        /// Unpacked layer directories.
        layers: Vec<PathBuf>,
    },
}

/// What the kubelet asks for when it creates a container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerConfig {
    /// Container name within the pod.
    pub name: String,
    /// Root filesystem.
    pub rootfs: RootfsSource,
    /// The process.
    pub process: ProcessSpec,
    /// Volume mounts (bind and tmpfs).
    #[serde(default)]
    pub mounts: Vec<MountSpec>,
    /// Limits.
    #[serde(default)]
    pub resources: Resources,
    /// `readOnlyRootFilesystem`.
    #[serde(default)]
    pub readonly_rootfs: bool,
    /// CRI log file (defaults to `<sandbox>/logs/<name>_<id>.log`).
    #[serde(default)]
    pub log_path: Option<PathBuf>,
    /// Capabilities added to the default set.
    #[serde(default)]
    pub add_capabilities: Vec<String>,
    /// Capabilities dropped from the default set.
    #[serde(default)]
    pub drop_capabilities: Vec<String>,
    /// `stdin`, `stdinOnce` and `tty` of the pod spec.
    #[serde(default)]
    pub stdio: StdioSpec,
}

/// A sandbox as the kubelet sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxStatus {
    /// Sandbox id.
    pub id: String,
    /// The config it was created with.
    pub config: PodSandboxConfig,
    /// Ready or not.
    pub state: SandboxState,
    /// The pod IP.
    pub ip: Option<Ipv4Addr>,
    /// Creation time.
    pub created_at: jiff::Timestamp,
}

/// A container as the kubelet sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerStatus {
    /// Container id.
    pub id: String,
    /// Owning sandbox.
    pub sandbox_id: String,
    /// Name within the pod.
    pub name: String,
    /// Lifecycle status.
    pub status: Status,
    /// Host pid while running.
    pub pid: Option<i32>,
    /// Created.
    pub created_at: jiff::Timestamp,
    /// Started.
    pub started_at: Option<jiff::Timestamp>,
    /// Finished.
    pub finished_at: Option<jiff::Timestamp>,
    /// Exit code once stopped.
    pub exit_code: Option<i32>,
    /// `OOMKilled`, `Error`, `Completed`.
    pub reason: Option<String>,
    /// CRI log file.
    pub log_path: PathBuf,
}

/// The node's container runtime, as the kubelet drives it (object-safe).
#[async_trait::async_trait]
pub trait PodRuntime: Send + Sync {
    /// Creates a pod sandbox (namespaces, network, cgroup); returns its id.
    async fn run_pod_sandbox(&self, config: PodSandboxConfig) -> Result<String>;
    /// Stops every container of the sandbox and releases its network.
    async fn stop_pod_sandbox(&self, id: &str) -> Result<()>;
    /// Removes a sandbox and its containers.
    async fn remove_pod_sandbox(&self, id: &str) -> Result<()>;
    /// Status of one sandbox.
    async fn pod_sandbox_status(&self, id: &str) -> Result<SandboxStatus>;
    /// Every sandbox.
    async fn list_pod_sandboxes(&self) -> Result<Vec<SandboxStatus>>;
    /// Creates a container in a sandbox; returns its id.
    async fn create_container(&self, sandbox_id: &str, config: ContainerConfig) -> Result<String>;
    /// Starts a created container.
    async fn start_container(&self, id: &str) -> Result<()>;
    /// SIGTERM, `grace`, SIGKILL.
    async fn stop_container(&self, id: &str, grace: Duration) -> Result<()>;
    /// Removes a container (killing it if needed).
    async fn remove_container(&self, id: &str) -> Result<()>;
    /// Status of one container.
    async fn container_status(&self, id: &str) -> Result<ContainerStatus>;
    /// Every container.
    async fn list_containers(&self) -> Result<Vec<ContainerStatus>>;
    /// Waits up to `timeout` for the container to exit; its exit code, or `None`.
    async fn wait_container(&self, id: &str, timeout: Option<Duration>) -> Result<Option<i32>>;
    /// Runs a command in the container and captures its output (probes, `exec` without
    /// a stream).
    async fn exec_sync(&self, id: &str, args: Vec<String>, timeout: Duration)
    -> Result<ExecOutput>;
    /// The process an exec of `command` in container `id` runs: the container's own env,
    /// user and working directory, with `command` as its argv.
    async fn exec_process(&self, id: &str, command: Vec<String>) -> Result<ProcessSpec>;
    /// Runs a command with the given stdio (pipes or a TTY) and returns its exit code.
    async fn exec(&self, id: &str, request: crate::container::ExecRequest) -> Result<i32>;
    /// The container's CRI log file.
    async fn log_path(&self, id: &str) -> Result<PathBuf>;
    /// Opens an attach session with the running container (see
    /// [`crate::container::Container::attach`]); `stdin` needs a container created with
    /// `stdin`.
    async fn attach(&self, id: &str, stdin: bool) -> Result<AttachSession> {
        let _ = (id, stdin);
        Err(RuntimeError::Invalid(
            "attach is not supported by this runtime".into(),
        ))
    }
    /// CPU and memory usage of a container.
    async fn container_stats(&self, id: &str) -> Result<CgroupStats>;
    /// A TCP connection to `port` on the loopback of sandbox `sandbox_id`'s network
    /// namespace (`kubectl port-forward`).
    async fn port_forward(&self, sandbox_id: &str, port: u16) -> Result<tokio::net::TcpStream> {
        let _ = (sandbox_id, port);
        Err(RuntimeError::Invalid(
            "port forwarding is not supported by this runtime".into(),
        ))
    }
}
