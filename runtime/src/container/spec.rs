//! What a container is made of: the on-disk `config.json` the runtime writes at create and
//! the shim and the container's init process read.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::cgroups::{CgroupConfig, Resources};
use crate::syscall::Rlimit;

/// A container's full configuration, fixed at create.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContainerSpec {
    /// Unique container id (a directory name).
    pub id: String,
    /// The prepared root filesystem directory (plain directory or overlay mount point).
    pub rootfs: PathBuf,
    /// Image layers, lowest first. When set, the root filesystem is an overlay of them at
    /// `<container dir>/rootfs` (made at create, removed at delete) and `rootfs` is that.
    #[serde(default)]
    pub layers: Vec<PathBuf>,
    /// Mount the root filesystem read-only (`readOnlyRootFilesystem`).
    #[serde(default)]
    pub readonly_rootfs: bool,
    /// The process to run.
    pub process: ProcessSpec,
    /// Hostname, set only when the container has its own UTS namespace.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Bind and tmpfs mounts, applied in order after the standard ones.
    #[serde(default)]
    pub mounts: Vec<MountSpec>,
    /// Namespaces to join (from the pod sandbox) instead of creating.
    #[serde(default)]
    pub namespaces: NamespaceSpec,
    /// Where the cgroup lives and what it limits.
    pub cgroup: CgroupConfig,
    /// Limits applied to the container cgroup.
    #[serde(default)]
    pub resources: Resources,
    /// The CRI-format log file.
    pub log_path: PathBuf,
    /// Install the default seccomp filter.
    #[serde(default = "yes")]
    pub seccomp: bool,
    /// Extra capabilities beyond the default set (names like `CAP_NET_ADMIN`).
    #[serde(default)]
    pub add_capabilities: Vec<String>,
    /// Capabilities removed from the default set.
    #[serde(default)]
    pub drop_capabilities: Vec<String>,
    /// Free-form metadata (the pod runtime records sandbox id and container name here).
    #[serde(default)]
    pub annotations: std::collections::BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

/// The process started in the container.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ProcessSpec {
    /// argv; `args[0]` is looked up in `PATH` from `env` when it has no `/`.
    pub args: Vec<String>,
    /// `KEY=value` pairs.
    #[serde(default)]
    pub env: Vec<String>,
    /// Working directory inside the container (created if missing).
    #[serde(default = "root_dir")]
    pub cwd: String,
    /// User and groups.
    #[serde(default)]
    pub user: User,
    /// Resource limits.
    #[serde(default)]
    pub rlimits: Vec<Rlimit>,
}

fn root_dir() -> String {
    "/".into()
}

/// Numeric user identity of a process.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct User {
    /// uid.
    pub uid: u32,
    /// gid.
    pub gid: u32,
    /// Supplementary groups.
    #[serde(default)]
    pub additional_gids: Vec<u32>,
}

/// A mount into the container.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MountSpec {
    /// Absolute path inside the container.
    pub destination: PathBuf,
    /// What to mount.
    pub kind: MountKind,
}

/// Kinds of container mounts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum MountKind {
    /// Bind a host file or directory.
    Bind {
        /// Host path.
        source: PathBuf,
        /// Read-only.
        #[serde(default)]
        readonly: bool,
    },
    /// A fresh tmpfs.
    Tmpfs {
        /// Size limit in bytes (0 = kernel default).
        #[serde(default)]
        size: u64,
        /// Permission bits of the root.
        #[serde(default = "tmpfs_mode")]
        mode: u32,
    },
}

fn tmpfs_mode() -> u32 {
    0o1777
}

/// Namespace files (`/proc/<pid>/ns/*` or bind-mounted nsfs files) to join. A `None`
/// namespace is created fresh. Mount and PID namespaces are always new.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct NamespaceSpec {
    /// Network namespace.
    pub net: Option<PathBuf>,
    /// UTS namespace.
    pub uts: Option<PathBuf>,
    /// IPC namespace.
    pub ipc: Option<PathBuf>,
}

/// Default `PATH` when the image sets none (Docker's).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl ProcessSpec {
    /// The `PATH` the process sees.
    pub fn path_var(&self) -> &str {
        self.env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH)
    }
}
